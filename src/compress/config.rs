//! The `compression` section (of a farm, or of a rule to override its
//! farm's): its serde shape mirroring the YAML and its compilation into the
//! runtime [`CompressSpec`]. Defaults and limits live here so `farmgate
//! check` reports every bad value with its key.

use super::negotiate::Algorithm;
use crate::ground::error::Problems;
use crate::ground::units::Size;
use serde::Deserialize;

/// Types compressed when `types` is not given: text and the structured
/// text formats web farms serve. Images, audio, video, archives and fonts
/// in woff/woff2 are compressed already.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/ld+json",
    "application/manifest+json",
    "application/problem+json",
    "application/graphql-response+json",
    "application/wasm",
    "application/vnd.ms-fontobject",
    "font/ttf",
    "font/otf",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
];

/// `compression` as written in the file.
#[derive(Debug, Deserialize, schemars::JsonSchema, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub types: Option<Vec<String>>,
    #[serde(default)]
    pub min_size: Option<Size>,
    #[serde(default)]
    pub level: Option<RawLevels>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawLevels {
    #[serde(default)]
    pub gzip: Option<i32>,
    #[serde(default)]
    pub br: Option<i32>,
    #[serde(default)]
    pub zstd: Option<i32>,
}

/// Compiled compression settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressSpec {
    /// Algorithms offered, best first (ties between q-values go to the
    /// earlier one).
    pub preference: Box<[Algorithm]>,
    pub types: TypeList,
    /// Bodies smaller than this go out as they are.
    pub min_size: u64,
    /// Level per algorithm, by [`Algorithm::index`].
    pub levels: [i32; 3],
}

impl Default for CompressSpec {
    fn default() -> Self {
        CompressSpec {
            preference: Algorithm::ALL.into(),
            types: TypeList::new(DEFAULT_TYPES.iter().copied()),
            min_size: 1024,
            levels: [5, 4, 3],
        }
    }
}

impl CompressSpec {
    #[inline]
    pub fn level(&self, a: Algorithm) -> i32 {
        self.levels[a.index()]
    }
}

/// Media types, exact (`application/json`) or whole top-level types
/// (`text/*`), lowercased once here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeList {
    exact: Box<[Box<str>]>,
    /// `text/` for `text/*`.
    prefixes: Box<[Box<str>]>,
}

impl TypeList {
    fn new<'a>(list: impl Iterator<Item = &'a str>) -> TypeList {
        let (mut exact, mut prefixes) = (Vec::new(), Vec::new());
        for t in list {
            let t = t.trim().to_ascii_lowercase();
            match t.strip_suffix('*') {
                Some(prefix) => prefixes.push(prefix.into()),
                None => exact.push(t.into()),
            }
        }
        TypeList {
            exact: exact.into(),
            prefixes: prefixes.into(),
        }
    }

    /// Does a `Content-Type` value (parameters allowed) name a listed type?
    pub fn matches(&self, content_type: &[u8]) -> bool {
        let end = memchr::memchr(b';', content_type).unwrap_or(content_type.len());
        let Ok(media) = std::str::from_utf8(&content_type[..end]) else {
            return false;
        };
        let media = media.trim();
        let starts = |p: &str| {
            media.len() >= p.len() && media.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        };
        self.exact.iter().any(|t| media.eq_ignore_ascii_case(t))
            || self.prefixes.iter().any(|p| starts(p))
    }
}

fn level_range(a: Algorithm) -> (i32, i32) {
    match a {
        Algorithm::Gzip => (1, 9),
        Algorithm::Brotli => (0, 11),
        Algorithm::Zstd => (1, 19),
    }
}

/// Compiles `raw` (found at key path `at`); `None` when it is off.
pub fn build(raw: &RawCompression, at: &str, p: &mut Problems) -> Option<CompressSpec> {
    let d = CompressSpec::default();
    let mut ok = true;
    let preference = match &raw.algorithms {
        None => d.preference,
        Some(list) => {
            let mut out = Vec::new();
            for (i, t) in list.iter().enumerate() {
                match Algorithm::from_token(t.trim()) {
                    Some(a) if out.contains(&a) => {
                        p.add(
                            format!("{at}.algorithms[{i}]"),
                            format!("{t:?} is listed twice"),
                        );
                        ok = false;
                    }
                    Some(a) => out.push(a),
                    None => {
                        p.add(
                            format!("{at}.algorithms[{i}]"),
                            format!("unknown algorithm {t:?}; use br, zstd or gzip"),
                        );
                        ok = false;
                    }
                }
            }
            if list.is_empty() {
                p.add(
                    format!("{at}.algorithms"),
                    "needs at least one of br, zstd, gzip (or set enabled: false)",
                );
                ok = false;
            }
            out.into()
        }
    };
    let types = match &raw.types {
        None => d.types,
        Some(list) => {
            for (i, t) in list.iter().enumerate() {
                if let Err(why) = check_type(t) {
                    p.add(format!("{at}.types[{i}]"), why);
                    ok = false;
                }
            }
            if list.is_empty() {
                p.add(format!("{at}.types"), "needs at least one media type");
                ok = false;
            }
            TypeList::new(list.iter().map(String::as_str))
        }
    };
    let mut levels = d.levels;
    if let Some(l) = raw.level {
        for (a, v) in [
            (Algorithm::Gzip, l.gzip),
            (Algorithm::Brotli, l.br),
            (Algorithm::Zstd, l.zstd),
        ] {
            let Some(v) = v else { continue };
            let (lo, hi) = level_range(a);
            if v < lo || v > hi {
                p.add(
                    format!("{at}.level.{}", a.token()),
                    format!("{v} is out of range; {} levels are {lo} to {hi}", a.token()),
                );
                ok = false;
            }
            levels[a.index()] = v;
        }
    }
    let spec = CompressSpec {
        preference,
        types,
        min_size: raw.min_size.map_or(d.min_size, |s| s.0),
        levels,
    };
    (ok && raw.enabled.unwrap_or(true)).then_some(spec)
}

/// `type/subtype` or `type/*`, in RFC 9110 token characters.
fn check_type(t: &str) -> Result<(), String> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match t.trim().split_once('/') {
        Some((ty, "*")) if token(ty) => Ok(()),
        Some((ty, sub)) if token(ty) && token(sub) => Ok(()),
        _ => Err(format!(
            "{t:?} is not a media type; write type/subtype or type/*"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let mut p = Problems::default();
        let spec = build(&RawCompression::default(), "c", &mut p).expect("on");
        assert!(p.is_empty());
        assert_eq!(
            &*spec.preference,
            &[Algorithm::Brotli, Algorithm::Zstd, Algorithm::Gzip]
        );
        assert_eq!(spec.min_size, 1024);
        assert_eq!(spec.level(Algorithm::Gzip), 5);
        assert_eq!(spec.level(Algorithm::Brotli), 4);
        assert_eq!(spec.level(Algorithm::Zstd), 3);
    }

    #[test]
    fn types_match_exactly_or_by_top_level_type() {
        let spec = CompressSpec::default();
        assert!(spec.types.matches(b"text/html; charset=utf-8"));
        assert!(spec.types.matches(b"Application/JSON"));
        assert!(spec.types.matches(b"image/svg+xml"));
        assert!(!spec.types.matches(b"image/png"));
        assert!(!spec.types.matches(b"application/jsonx"));
        assert!(!spec.types.matches(b"\xff"));
    }

    #[test]
    fn bad_values_are_problems_with_their_keys() {
        let mut p = Problems::default();
        let raw = RawCompression {
            algorithms: Some(vec!["br".into(), "deflate".into(), "br".into()]),
            types: Some(vec!["text".into()]),
            level: Some(RawLevels {
                gzip: Some(10),
                br: None,
                zstd: Some(0),
            }),
            ..Default::default()
        };
        assert!(build(&raw, "farms[0].compression", &mut p).is_none());
        let keys: Vec<&str> = p.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "farms[0].compression.algorithms[1]",
                "farms[0].compression.algorithms[2]",
                "farms[0].compression.types[0]",
                "farms[0].compression.level.gzip",
                "farms[0].compression.level.zstd",
            ]
        );
    }

    #[test]
    fn disabled_builds_nothing() {
        let mut p = Problems::default();
        let raw = RawCompression {
            enabled: Some(false),
            ..Default::default()
        };
        assert!(build(&raw, "c", &mut p).is_none());
        assert!(p.is_empty());
    }
}
