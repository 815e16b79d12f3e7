//! The `farms[].cache` section: its serde shape (mirroring the YAML) and its
//! compilation into the runtime [`CacheSpec`] a farm carries. Defaults and
//! limits live here so `farmgate check` reports every bad value with its key.

use crate::ground::error::Problems;
use crate::ground::units::{Dur, Size};
use http::header::HeaderName;
use serde::Deserialize;
use std::time::Duration;

/// Largest object the cache will hold; a moka weight is a `u32`.
const MAX_OBJECT_LIMIT: u64 = 1 << 30;

/// `farms[].cache` as written in the file.
#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub default_ttl: Option<Dur>,
    #[serde(default)]
    pub max_heuristic_ttl: Option<Dur>,
    #[serde(default)]
    pub query_string: Option<RawQueryString>,
    #[serde(default)]
    pub max_memory: Option<Size>,
    #[serde(default)]
    pub max_object_size: Option<Size>,
    #[serde(default)]
    pub request_consolidation: Option<bool>,
    #[serde(default)]
    pub stale_if_error: Option<Dur>,
    #[serde(default)]
    pub status_header: Option<bool>,
    /// Serve a stale response at once while one background request
    /// revalidates it, for this long past its freshness, when the response
    /// itself gives no `stale-while-revalidate` (RFC 5861). Default 0s.
    #[serde(default)]
    pub stale_while_revalidate: Option<Dur>,
    /// Targeted cache-control fields (RFC 9213) obeyed in this order; the
    /// first present and valid one replaces Cache-Control for the cache's
    /// own decisions. Default `[CDN-Cache-Control]`; `[]` turns it off.
    #[serde(default)]
    pub targeted_fields: Option<Vec<String>>,
    /// Targeted fields removed before the response reaches the client.
    /// Default: every listed field except `CDN-Cache-Control` (which is
    /// meant for CDNs further down the line too).
    #[serde(default)]
    pub strip_targeted: Option<Vec<String>>,
}

/// `query_string` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawQueryString {
    Include,
    Ignore,
}

/// Whether the query string is part of the cache key (ARR's "cache by query
/// string").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryString {
    #[default]
    Include,
    Ignore,
}

/// The compiled cache settings of one farm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSpec {
    /// Freshness given to cacheable responses that carry none; zero means
    /// the RFC 9111 heuristic only.
    pub default_ttl: Duration,
    /// Cap of the heuristic freshness (10% of the time since Last-Modified).
    pub max_heuristic_ttl: Duration,
    pub query_string: QueryString,
    pub max_memory: u64,
    pub max_object_size: u64,
    pub request_consolidation: bool,
    /// How long past its freshness a stored response may be served when the
    /// farm cannot answer; zero turns it off.
    pub stale_if_error: Duration,
    pub status_header: bool,
    /// Default stale-while-revalidate window; zero: only the response's.
    pub stale_while_revalidate: Duration,
}

/// The targeted cache-control fields of a farm (RFC 9213).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targeted {
    /// Obeyed in this order.
    pub names: Box<[HeaderName]>,
    /// Removed from responses to clients.
    pub strip: Box<[HeaderName]>,
}

impl Default for Targeted {
    fn default() -> Self {
        Targeted {
            names: Box::new([CDN_CACHE_CONTROL.clone()]),
            strip: Box::new([]),
        }
    }
}

/// RFC 9213's field, for every CDN.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// Compiles `targeted_fields` and `strip_targeted` of `raw` (at `at`).
pub fn build_targeted(raw: &RawCache, at: &str, p: &mut Problems) -> Targeted {
    let mut names_of = |list: &[String], key: &str| -> Vec<HeaderName> {
        list.iter()
            .enumerate()
            .filter_map(|(i, n)| match HeaderName::from_bytes(n.trim().as_bytes()) {
                Ok(h) => Some(h),
                Err(_) => {
                    p.add(
                        format!("{at}.{key}[{i}]"),
                        format!("{n:?} is not a header field name"),
                    );
                    None
                }
            })
            .collect()
    };
    let names = match &raw.targeted_fields {
        Some(list) => names_of(list, "targeted_fields"),
        None => vec![CDN_CACHE_CONTROL.clone()],
    };
    let strip = match &raw.strip_targeted {
        Some(list) => names_of(list, "strip_targeted"),
        None => names
            .iter()
            .filter(|n| **n != CDN_CACHE_CONTROL)
            .cloned()
            .collect(),
    };
    Targeted {
        names: names.into(),
        strip: strip.into(),
    }
}

impl Default for CacheSpec {
    fn default() -> Self {
        CacheSpec {
            default_ttl: Duration::ZERO,
            max_heuristic_ttl: Duration::from_secs(3600),
            query_string: QueryString::Include,
            max_memory: 256 << 20,
            max_object_size: 8 << 20,
            request_consolidation: true,
            stale_if_error: Duration::from_secs(300),
            status_header: true,
            stale_while_revalidate: Duration::ZERO,
        }
    }
}

/// Compiles `raw` (found at key path `at`); `None` when the cache is off.
pub fn build(raw: &RawCache, at: &str, p: &mut Problems) -> Option<CacheSpec> {
    let d = CacheSpec::default();
    let spec = CacheSpec {
        default_ttl: raw.default_ttl.map_or(d.default_ttl, |v| v.0),
        max_heuristic_ttl: raw.max_heuristic_ttl.map_or(d.max_heuristic_ttl, |v| v.0),
        query_string: match raw.query_string {
            Some(RawQueryString::Include) => QueryString::Include,
            Some(RawQueryString::Ignore) => QueryString::Ignore,
            None => d.query_string,
        },
        max_memory: raw.max_memory.map_or(d.max_memory, |v| v.0),
        max_object_size: raw.max_object_size.map_or(d.max_object_size, |v| v.0),
        request_consolidation: raw.request_consolidation.unwrap_or(d.request_consolidation),
        stale_if_error: raw.stale_if_error.map_or(d.stale_if_error, |v| v.0),
        status_header: raw.status_header.unwrap_or(d.status_header),
        stale_while_revalidate: raw
            .stale_while_revalidate
            .map_or(d.stale_while_revalidate, |v| v.0),
    };
    let mut ok = true;
    if spec.max_memory == 0 {
        p.add(format!("{at}.max_memory"), "must be greater than 0");
        ok = false;
    }
    if spec.max_object_size == 0 {
        p.add(format!("{at}.max_object_size"), "must be greater than 0");
        ok = false;
    } else if spec.max_object_size > MAX_OBJECT_LIMIT {
        p.add(
            format!("{at}.max_object_size"),
            "must be at most 1GiB (larger responses stream through uncached)",
        );
        ok = false;
    } else if spec.max_object_size > spec.max_memory {
        p.add(
            format!("{at}.max_object_size"),
            format!(
                "{} bytes is more than max_memory ({} bytes): no such object could be stored",
                spec.max_object_size, spec.max_memory
            ),
        );
        ok = false;
    }
    (ok && raw.enabled.unwrap_or(true)).then_some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let mut p = Problems::default();
        let spec = build(&RawCache::default(), "farms[0].cache", &mut p).expect("enabled");
        assert!(p.is_empty());
        assert_eq!(spec, CacheSpec::default());
        assert_eq!(spec.max_memory, 256 << 20);
        assert_eq!(spec.stale_if_error, Duration::from_secs(300));
    }

    #[test]
    fn targeted_fields_and_what_is_stripped() {
        let mut p = Problems::default();
        assert_eq!(
            build_targeted(&RawCache::default(), "c", &mut p),
            Targeted::default()
        );
        let raw = RawCache {
            targeted_fields: Some(vec![
                "Farmgate-Cache-Control".into(),
                "CDN-Cache-Control".into(),
            ]),
            ..Default::default()
        };
        let t = build_targeted(&raw, "c", &mut p);
        assert_eq!(t.names.len(), 2);
        assert_eq!(
            &*t.strip,
            &[HeaderName::from_static("farmgate-cache-control")]
        );
        let raw = RawCache {
            targeted_fields: Some(vec!["bad name".into()]),
            ..Default::default()
        };
        build_targeted(&raw, "c", &mut p);
        assert_eq!(p.0[0].0, "c.targeted_fields[0]");
    }

    #[test]
    fn disabled_builds_nothing() {
        let mut p = Problems::default();
        let raw = RawCache {
            enabled: Some(false),
            ..Default::default()
        };
        assert!(build(&raw, "c", &mut p).is_none());
        assert!(p.is_empty());
    }

    #[test]
    fn impossible_sizes_are_problems() {
        let mut p = Problems::default();
        let raw = RawCache {
            max_memory: Some(Size(1 << 20)),
            max_object_size: Some(Size(2 << 20)),
            ..Default::default()
        };
        assert!(build(&raw, "c", &mut p).is_none());
        assert_eq!(p.0[0].0, "c.max_object_size");
    }
}
