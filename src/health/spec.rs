//! A farm's health settings compiled from `farms[].health_check`,
//! `live_traffic`, `min_servers` and `slow_start` into runtime structs. Only
//! `config::build` calls [`compile`]; the YAML types stop here.

use super::status_ranges::StatusSet;
use crate::ground::error::Problems;
use crate::ground::units::Dur;
use http::uri::PathAndQuery;
use http::{HeaderValue, Method};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The explicit URL test of a farm (ARR's "URL test").
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub method: Method,
    pub path: PathAndQuery,
    /// `Host` to send when the URL was absolute; else the server's host:port.
    pub host: Option<HeaderValue>,
    /// The URL as written, for messages and the verify report.
    pub url: Arc<str>,
    pub interval: Duration,
    pub timeout: Duration,
    pub acceptable: StatusSet,
    /// Text the body must contain.
    pub response_match: Option<Arc<str>>,
    /// Passes in a row that bring a server back (rise).
    pub healthy_threshold: u32,
    /// Failures in a row that take a server out (fall).
    pub unhealthy_threshold: u32,
    /// `type: grpc`: the standard gRPC health protocol
    /// (`grpc.health.v1.Health/Check`) for this service name ("" = the
    /// whole server) instead of the URL test.
    pub grpc: Option<Arc<str>>,
}

/// `health_check.type`.
#[derive(Debug, Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RawCheckType {
    /// An HTTP request to `url` (the default).
    #[default]
    Http,
    /// `grpc.health.v1.Health/Check` over HTTP/2 (h2c on http://, TLS with
    /// ALPN h2 on https://).
    Grpc,
}

/// The path of the gRPC health protocol's Check method.
pub const GRPC_HEALTH_PATH: &str = "/grpc.health.v1.Health/Check";

/// Passive checks on client traffic.
#[derive(Debug, Clone)]
pub struct LiveTraffic {
    /// Statuses that count as failures (connection errors and timeouts
    /// always do).
    pub failure_codes: StatusSet,
    /// More failures than this within `period` take a server out.
    pub max_failures: u32,
    pub period: Duration,
}

/// Everything a farm says about health, compiled.
#[derive(Debug, Clone, Default)]
pub struct HealthSpec {
    pub check: Option<Arc<HealthCheck>>,
    pub live: Option<LiveTraffic>,
    pub min_servers: u32,
    pub slow_start: Duration,
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_ACCEPTABLE: &str = "200-399";
pub const DEFAULT_FAILURE_CODES: &str = "500, 502-504";
pub const DEFAULT_MAX_FAILURES: u32 = 5;
pub const DEFAULT_FAILOVER_PERIOD: Duration = Duration::from_secs(30);
/// When fewer servers than this are healthy, all enabled servers serve;
/// 0 (as in ARR) turns the floor off.
pub const DEFAULT_MIN_SERVERS: u32 = 0;

/// The health keys of one farm as written: `health_check`, `live_traffic`,
/// `min_servers`, `slow_start` (they sit in the farm's own mapping).
#[derive(Debug, Clone, Copy)]
pub struct RawHealth<'a> {
    pub farm: &'a str,
    pub servers: usize,
    pub health_check: Option<&'a RawHealthCheck>,
    pub live_traffic: Option<&'a RawLiveTraffic>,
    pub min_servers: Option<u32>,
    pub slow_start: Option<Dur>,
}

/// `farms[].health_check`: the explicit URL test.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// `http` (default: a request to `url`) or `grpc` (the standard gRPC
    /// health protocol).
    #[serde(default, rename = "type")]
    pub kind: RawCheckType,
    /// The URL test's path or URL (type http).
    #[serde(default)]
    pub url: Option<String>,
    /// The service name asked about (type grpc; empty or absent: the whole
    /// server).
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub interval: Option<Dur>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub acceptable_status: Option<StatusText>,
    #[serde(default)]
    pub response_match: Option<String>,
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
}

/// `farms[].live_traffic`: passive checks on client traffic.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLiveTraffic {
    #[serde(default)]
    pub failure_codes: Option<StatusText>,
    #[serde(default)]
    pub max_failures: Option<u32>,
    #[serde(default)]
    pub failover_period: Option<Dur>,
}

/// A list of status codes and ranges (`"200, 204, 300-399"`); a single code
/// may be written as a bare number.
#[derive(Debug, Clone, Default)]
pub struct StatusText(pub String);

impl<'de> Deserialize<'de> for StatusText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StatusText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("status codes and ranges such as \"200, 204, 300-399\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StatusText, E> {
                Ok(StatusText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StatusText, E> {
                Ok(StatusText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StatusText, E> {
                Ok(StatusText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Compiles the health sections of farm `f` (at key path `at`).
pub fn compile(f: RawHealth<'_>, at: &str, p: &mut Problems) -> HealthSpec {
    let check = f
        .health_check
        .and_then(|h| compile_check(h, &format!("{at}.health_check"), p))
        .map(Arc::new);
    let live = f
        .live_traffic
        .map_or(Ok(None), |l| compile_live(l, &format!("{at}.live_traffic")))
        .unwrap_or_else(|(key, e)| {
            p.add(key, e);
            None
        });
    let min_servers = f.min_servers.unwrap_or(DEFAULT_MIN_SERVERS);
    if min_servers as usize > f.servers && f.servers > 0 {
        p.add(
            format!("{at}.min_servers"),
            format!(
                "min_servers is {min_servers} but farm {:?} has only {} server(s); \
                 the floor would always hold every server in rotation",
                f.farm, f.servers
            ),
        );
    }
    HealthSpec {
        check,
        live,
        min_servers,
        slow_start: f.slow_start.map_or(Duration::ZERO, |d| d.0),
    }
}

fn compile_check(h: &RawHealthCheck, at: &str, p: &mut Problems) -> Option<HealthCheck> {
    let before = p.0.len();
    let grpc = match (h.kind, &h.url) {
        (RawCheckType::Http, None) => {
            p.add(
                format!("{at}.url"),
                "the URL test needs a url (or type: grpc)",
            );
            None
        }
        (RawCheckType::Http, Some(_)) => {
            if h.service.is_some() {
                p.add(format!("{at}.service"), "service is for type: grpc");
            }
            None
        }
        (RawCheckType::Grpc, url) => {
            let mut not_for_grpc = |key: &str, set: bool| {
                if set {
                    p.add(
                        format!("{at}.{key}"),
                        "not used by type: grpc (the gRPC health protocol decides)",
                    );
                }
            };
            not_for_grpc("url", url.is_some());
            not_for_grpc("method", h.method.is_some());
            not_for_grpc("acceptable_status", h.acceptable_status.is_some());
            not_for_grpc("response_match", h.response_match.is_some());
            Some(Arc::<str>::from(h.service.as_deref().unwrap_or("")))
        }
    };
    let url = match &grpc {
        Some(service) => format!("grpc:{GRPC_HEALTH_PATH}({service})"),
        None => h.url.clone().unwrap_or_else(|| "/".into()),
    };
    let method = match h.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some(other) => {
            p.add(
                format!("{at}.method"),
                format!("unsupported method {other:?}; expected GET or HEAD"),
            );
            Method::GET
        }
    };
    let parsed = match &grpc {
        Some(_) => parse_url(GRPC_HEALTH_PATH),
        None => parse_url(&url),
    };
    let (path, host) = match parsed {
        Ok(v) => v,
        Err(e) => {
            p.add(format!("{at}.url"), e);
            (PathAndQuery::from_static("/"), None)
        }
    };
    let interval = h.interval.map_or(DEFAULT_INTERVAL, |d| d.0);
    if interval.is_zero() {
        p.add(format!("{at}.interval"), "must be greater than 0");
    }
    // A timeout longer than the interval is allowed: the supervisor never
    // runs two probes of one server at once.
    let timeout = h.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
    if timeout.is_zero() {
        p.add(format!("{at}.timeout"), "must be greater than 0");
    }
    let acceptable = h
        .acceptable_status
        .as_ref()
        .map_or(DEFAULT_ACCEPTABLE, |s| s.0.as_str());
    let acceptable = StatusSet::parse(acceptable).unwrap_or_else(|e| {
        p.add(format!("{at}.acceptable_status"), e);
        StatusSet::empty()
    });
    if acceptable.is_empty() && p.0.len() == before {
        p.add(
            format!("{at}.acceptable_status"),
            "lists no status code; no server could ever pass",
        );
    }
    let response_match = match h.response_match.as_deref() {
        Some("") => {
            p.add(
                format!("{at}.response_match"),
                "must not be empty; leave it out to accept any body",
            );
            None
        }
        Some(_) if method == Method::HEAD => {
            p.add(
                format!("{at}.response_match"),
                "a HEAD response has no body to match; use method GET",
            );
            None
        }
        other => other.map(Arc::from),
    };
    let mut threshold = |key: &str, v: Option<u32>| match v {
        Some(0) => {
            p.add(format!("{at}.{key}"), "must be at least 1");
            1
        }
        v => v.unwrap_or(1),
    };
    let healthy_threshold = threshold("healthy_threshold", h.healthy_threshold);
    let unhealthy_threshold = threshold("unhealthy_threshold", h.unhealthy_threshold);
    (p.0.len() == before).then(|| HealthCheck {
        method,
        path,
        host,
        url: url.as_str().into(),
        interval,
        timeout,
        acceptable,
        response_match,
        healthy_threshold,
        unhealthy_threshold,
        grpc,
    })
}

/// `/health` or `http://app.example/health` (the host becomes `Host`; the
/// probe still connects to each server's address with the server's scheme).
fn parse_url(url: &str) -> Result<(PathAndQuery, Option<HeaderValue>), String> {
    if url.starts_with('/') {
        let path = url
            .parse::<PathAndQuery>()
            .map_err(|_| format!("{url:?} is not a valid path"))?;
        return Ok((path, None));
    }
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!(
            "{url:?} is neither a path (\"/health\") nor an http(s):// URL"
        ));
    }
    let uri = url
        .parse::<http::Uri>()
        .map_err(|_| format!("{url:?} is not a valid URL"))?;
    let host = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .ok_or_else(|| format!("{url:?} has no host"))?;
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Ok((path, Some(host)))
}

fn compile_live(l: &RawLiveTraffic, at: &str) -> Result<Option<LiveTraffic>, (String, String)> {
    let codes = l
        .failure_codes
        .as_ref()
        .map_or(DEFAULT_FAILURE_CODES, |s| s.0.as_str());
    let failure_codes = StatusSet::parse(codes).map_err(|e| (format!("{at}.failure_codes"), e))?;
    let period = l.failover_period.map_or(DEFAULT_FAILOVER_PERIOD, |d| d.0);
    if period.is_zero() {
        return Ok(None);
    }
    if period < Duration::from_millis(16) {
        return Err((
            format!("{at}.failover_period"),
            "must be 0 (off) or at least 16ms".into(),
        ));
    }
    Ok(Some(LiveTraffic {
        failure_codes,
        max_failures: l.max_failures.unwrap_or(DEFAULT_MAX_FAILURES),
        period,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (p, h) = parse_url("/health?deep=1").expect("path");
        assert_eq!(p.as_str(), "/health?deep=1");
        assert!(h.is_none());
        let (p, h) = parse_url("http://shop.example:8080/ping").expect("absolute");
        assert_eq!(p.as_str(), "/ping");
        assert_eq!(h.expect("host"), "shop.example:8080");
        assert!(parse_url("health").is_err());
        let (_, h) = parse_url("https://x.example/health").expect("https");
        assert_eq!(h.expect("host"), "x.example");
        assert!(parse_url("ftp://x/health").is_err());
        assert!(parse_url("/bad path").is_err());
    }
}
