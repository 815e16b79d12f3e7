//! Parsing of the caching header fields (RFC 9111 §5): Cache-Control
//! directives, Expires, Age, Date and Last-Modified, and Pragma's old
//! `no-cache`. Every parser takes arbitrary bytes from clients or backends
//! and never panics: unknown directives are skipped, malformed freshness
//! values count as "already stale" (the RFC's advice), and numbers that
//! overflow saturate at 2^31 seconds (§1.2.2).

use http::header::{self, HeaderMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC 9111 §1.2.2: the value used when delta-seconds overflow.
pub const DELTA_MAX: u64 = 1 << 31;

/// The Cache-Control directives a shared cache acts on, from requests or
/// responses. Directives given twice keep their first value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    /// `no-cache`, qualified or not (a qualified one is treated as whole).
    pub no_cache: bool,
    /// `private`, qualified or not.
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub only_if_cached: bool,
    pub max_age: Option<Duration>,
    pub s_maxage: Option<Duration>,
    pub min_fresh: Option<Duration>,
    /// RFC 5861: how long past its freshness a response may be served
    /// while one revalidation runs in the background.
    pub stale_while_revalidate: Option<Duration>,
    /// RFC 5861: how long past its freshness a response may stand in for
    /// an error.
    pub stale_if_error: Option<Duration>,
}

impl CacheControl {
    /// Parses every Cache-Control field line of `headers` as one list.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut cc = CacheControl::default();
        for v in headers.get_all(header::CACHE_CONTROL) {
            cc.parse_into(v.as_bytes());
        }
        cc
    }

    /// Parses one field value into `self`.
    pub fn parse_into(&mut self, mut s: &[u8]) {
        while let Some((name, value, rest)) = next_directive(s) {
            s = rest;
            self.apply(name, value);
        }
    }

    fn apply(&mut self, name: &[u8], value: Option<&[u8]>) {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("no-store") {
            self.no_store = true;
        } else if is("no-cache") {
            self.no_cache = true;
        } else if is("private") {
            self.private = true;
        } else if is("public") {
            self.public = true;
        } else if is("must-revalidate") {
            self.must_revalidate = true;
        } else if is("proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if is("only-if-cached") {
            self.only_if_cached = true;
        } else if is("max-age") {
            self.max_age.get_or_insert(delta_or_stale(value));
        } else if is("s-maxage") {
            self.s_maxage.get_or_insert(delta_or_stale(value));
        } else if is("min-fresh") {
            if let Some(d) = value.and_then(parse_delta) {
                self.min_fresh.get_or_insert(d);
            }
        } else if is("stale-while-revalidate") {
            // An invalid window grants nothing (RFC 5861 §3).
            if let Some(d) = value.and_then(parse_delta) {
                self.stale_while_revalidate.get_or_insert(d);
            }
        } else if is("stale-if-error") {
            if let Some(d) = value.and_then(parse_delta) {
                self.stale_if_error.get_or_insert(d);
            }
        }
    }
}

/// A freshness value that does not parse counts as zero: "consider
/// responses that have invalid freshness information to be stale" (§4.2.1).
fn delta_or_stale(value: Option<&[u8]>) -> Duration {
    value.and_then(parse_delta).unwrap_or(Duration::ZERO)
}

/// Parses delta-seconds (`1*DIGIT`), saturating at [`DELTA_MAX`].
pub fn parse_delta(s: &[u8]) -> Option<Duration> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for d in s {
        n = n * 10 + u64::from(d - b'0');
        if n >= DELTA_MAX {
            return Some(Duration::from_secs(DELTA_MAX));
        }
    }
    Some(Duration::from_secs(n))
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// A directive's name, its value if any, and the input after it.
type Directive<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

/// Splits the next `name[=value]` off a directive list; the value is
/// unquoted (escapes kept as written, which is enough for our directives).
/// Returns `None` at the end of the input.
fn next_directive(s: &[u8]) -> Option<Directive<'_>> {
    let mut i = 0;
    loop {
        while i < s.len() && (s[i] == b',' || is_ws(s[i])) {
            i += 1;
        }
        if i >= s.len() {
            return None;
        }
        let start = i;
        while i < s.len() && s[i] != b',' && s[i] != b'=' {
            i += 1;
        }
        let name = trim(&s[start..i]);
        let mut value = None;
        if i < s.len() && s[i] == b'=' {
            i += 1;
            while i < s.len() && is_ws(s[i]) {
                i += 1;
            }
            if i < s.len() && s[i] == b'"' {
                i += 1;
                let vstart = i;
                while i < s.len() && s[i] != b'"' {
                    // A backslash escapes the next byte, even a quote.
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                let vend = i.min(s.len());
                value = Some(&s[vstart..vend]);
                // Skip the closing quote and anything up to the next comma.
                while i < s.len() && s[i] != b',' {
                    i += 1;
                }
            } else {
                let vstart = i;
                while i < s.len() && s[i] != b',' {
                    i += 1;
                }
                value = Some(trim(&s[vstart..i]));
            }
        }
        if !name.is_empty() {
            return Some((name, value, s.get(i..).unwrap_or(&[])));
        }
    }
}

/// `Pragma: no-cache`, honoured only when the request has no Cache-Control
/// (RFC 7234 §5.4; RFC 9111 deprecates Pragma but old clients still send it).
pub fn pragma_no_cache(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::CACHE_CONTROL)
        && headers.get_all(header::PRAGMA).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"no-cache"))
        })
}

/// Parses an HTTP date field (the first line of it).
pub fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    let v = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v.trim()).ok()
}

/// The Expires time; an invalid value (such as `0`) is a time in the past
/// (§5.3). `None` when there is no Expires field.
pub fn expires(headers: &HeaderMap) -> Option<SystemTime> {
    headers.get(header::EXPIRES)?;
    Some(date(headers, header::EXPIRES).unwrap_or(UNIX_EPOCH))
}

/// The Age field. Several values (`7200, 0`, or several field lines) are a
/// list: its first member counts; a member that is not a non-negative
/// integer makes the field ignored (§5.1).
pub fn age(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|v| {
            let first = v.as_bytes().split(|b| *b == b',').next()?;
            parse_delta(trim(first))
        })
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(s: &str) -> CacheControl {
        let mut c = CacheControl::default();
        c.parse_into(s.as_bytes());
        c
    }

    #[test]
    fn directives_and_values() {
        let c = cc("public, max-age=60, s-maxage=\"120\", must-revalidate");
        assert!(c.public && c.must_revalidate && !c.private);
        let w = cc("max-age=1, stale-while-revalidate=30, stale-if-error=x");
        assert_eq!(w.stale_while_revalidate, Some(Duration::from_secs(30)));
        assert_eq!(w.stale_if_error, None, "an invalid window grants nothing");
        assert_eq!(c.max_age, Some(Duration::from_secs(60)));
        assert_eq!(c.s_maxage, Some(Duration::from_secs(120)));
    }

    #[test]
    fn names_are_case_insensitive_and_spacing_is_lenient() {
        let c = cc("  No-Store ,PRIVATE,,\tMax-Age = 5 ");
        assert!(c.no_store && c.private);
        assert_eq!(c.max_age, Some(Duration::from_secs(5)));
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let c = cc("private=\"set-cookie, x-user\", max-age=10");
        assert!(c.private);
        assert_eq!(c.max_age, Some(Duration::from_secs(10)));
        let c = cc("no-cache=\"a\\\"b, c\", public");
        assert!(c.no_cache && c.public);
    }

    #[test]
    fn invalid_freshness_is_stale_and_first_value_wins() {
        assert_eq!(cc("max-age=abc").max_age, Some(Duration::ZERO));
        assert_eq!(cc("max-age=-5").max_age, Some(Duration::ZERO));
        assert_eq!(cc("max-age").max_age, Some(Duration::ZERO));
        assert_eq!(
            cc("max-age=10, max-age=99").max_age,
            Some(Duration::from_secs(10))
        );
        assert_eq!(cc("min-fresh=x").min_fresh, None);
    }

    #[test]
    fn huge_numbers_saturate() {
        assert_eq!(
            cc("max-age=99999999999999999999999999").max_age,
            Some(Duration::from_secs(DELTA_MAX))
        );
    }

    #[test]
    fn expires_age_and_pragma() {
        let mut h = HeaderMap::new();
        h.insert(header::EXPIRES, HeaderValue::from_static("0"));
        assert_eq!(expires(&h), Some(UNIX_EPOCH));
        h.insert(
            header::EXPIRES,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            expires(&h),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        // The obsolete formats a recipient must accept (RFC 9110 §5.6.7).
        for old in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            h.insert(header::EXPIRES, HeaderValue::from_static(old));
            assert_eq!(
                expires(&h),
                Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
                "{old}"
            );
        }
        h.insert(header::AGE, HeaderValue::from_static(" 42 "));
        assert_eq!(age(&h), Duration::from_secs(42));
        h.insert(header::AGE, HeaderValue::from_static("old"));
        assert_eq!(age(&h), Duration::ZERO);
        // A list: the first member (§5.1), whatever follows.
        h.insert(header::AGE, HeaderValue::from_static("7200, 0"));
        assert_eq!(age(&h), Duration::from_secs(7200));
        h.insert(header::AGE, HeaderValue::from_static("-1, 5"));
        assert_eq!(age(&h), Duration::ZERO);
        h.insert(header::AGE, HeaderValue::from_static("30"));
        h.append(header::AGE, HeaderValue::from_static("99"));
        assert_eq!(age(&h), Duration::from_secs(30));
        h.insert(header::PRAGMA, HeaderValue::from_static("No-Cache"));
        assert!(pragma_no_cache(&h));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
        assert!(!pragma_no_cache(&h));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let alphabet = b"=\",\\ \tmax-age0123456789privatenocs-";
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.u8(0..8) == 0 {
                        rng.u8(..)
                    } else {
                        alphabet[rng.usize(0..alphabet.len())]
                    }
                })
                .collect();
            let mut c = CacheControl::default();
            c.parse_into(&bytes);
            let _ = parse_delta(&bytes);
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let mut h = HeaderMap::new();
                h.insert(header::AGE, v.clone());
                h.insert(header::EXPIRES, v.clone());
                h.insert(header::PRAGMA, v);
                let _ = (age(&h), expires(&h), pragma_no_cache(&h));
            }
        }
    }
}
