//! What a limit counts by (`key:`) and how a request's key becomes the
//! 64-bit hash the stores index by. Reading a key borrows from the request
//! head (a header value, a cookie or query parameter found in place) and
//! hashes it with a per-process random SipHash key, so nothing is copied
//! and a client cannot aim its keys at one bucket of the store.

use http::HeaderName;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::OnceLock;

/// A limit's key, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address (the PROXY protocol's source when used).
    ClientIp,
    Header(HeaderName),
    Cookie(Box<str>),
    Query(Box<str>),
    /// The request path as sent (without the query).
    Path,
    /// A capture of the matching rule's pattern, `{R:n}`: only from rules.
    RuleCapture(usize),
}

impl LimitKey {
    /// Parses `client_ip`, `header:NAME`, `cookie:NAME`, `query:NAME`,
    /// `path` or `{R:n}`.
    pub fn parse(text: &str) -> Result<LimitKey, String> {
        let t = text.trim();
        let named = |kind: &str, rest: &str| -> Result<String, String> {
            let name = rest.trim();
            if name.is_empty() {
                Err(format!("{kind}: needs a name, e.g. {kind}:X-Api-Key"))
            } else {
                Ok(name.to_string())
            }
        };
        if let Some(rest) = t.strip_prefix("header:") {
            let name = named("header", rest)?;
            return HeaderName::from_bytes(name.as_bytes())
                .map(LimitKey::Header)
                .map_err(|_| format!("{name:?} is not a valid header name"));
        }
        if let Some(rest) = t.strip_prefix("cookie:") {
            return Ok(LimitKey::Cookie(named("cookie", rest)?.into()));
        }
        if let Some(rest) = t.strip_prefix("query:") {
            return Ok(LimitKey::Query(named("query", rest)?.into()));
        }
        if let Some(n) = t.strip_prefix("{R:").and_then(|r| r.strip_suffix('}')) {
            return n
                .parse()
                .map(LimitKey::RuleCapture)
                .map_err(|_| format!("{t:?}: expected {{R:n}} with n a capture group number"));
        }
        match t {
            "client_ip" => Ok(LimitKey::ClientIp),
            "path" => Ok(LimitKey::Path),
            _ => Err(format!(
                "unknown key {t:?}; expected client_ip, header:NAME, cookie:NAME, query:NAME, path or {{R:n}}"
            )),
        }
    }
}

/// What a limit may read of one request. The request stage implements it
/// over its head, whichever HTTP path parsed it.
pub trait RequestKeys {
    fn client_ip(&self) -> IpAddr;
    /// The first value of header `name`.
    fn header(&self, name: &HeaderName) -> Option<&[u8]>;
    /// Every `Cookie` header value, for finding one cookie.
    fn cookies(&self) -> impl Iterator<Item = &[u8]>;
    fn path(&self) -> &[u8];
    /// The query string without `?` (empty when none).
    fn query(&self) -> &[u8];
}

/// The key's hash for this request; `None` when the request has no such
/// key (no header, cookie or parameter): the limit does not apply to it.
/// `capture` is the hash of the rule's capture, when the key is one.
#[inline]
pub fn of<R: RequestKeys>(key: &LimitKey, req: &R, capture: Option<u64>) -> Option<u64> {
    match key {
        LimitKey::ClientIp => Some(hash_ip(req.client_ip())),
        LimitKey::Header(name) => req.header(name).map(hash),
        LimitKey::Cookie(name) => req
            .cookies()
            .find_map(|h| cookie(h, name.as_bytes()))
            .map(hash),
        LimitKey::Query(name) => param(req.query(), name.as_bytes()).map(hash),
        LimitKey::Path => Some(hash(req.path())),
        LimitKey::RuleCapture(_) => capture,
    }
}

fn hasher() -> &'static std::collections::hash_map::RandomState {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(Default::default)
}

/// The store hash of a key's bytes.
#[inline]
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = hasher().build_hasher();
    h.write(bytes);
    h.finish()
}

/// The store hash of a client address (an IPv4-mapped IPv6 address counts
/// as its IPv4 address).
#[inline]
pub fn hash_ip(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => hash(&v4.octets()),
        IpAddr::V6(v6) => hash(&v6.octets()),
    }
}

/// The value of cookie `name` in one `Cookie` header value.
fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let (k, v) = split_once(pair, b'=')?;
        (k.trim_ascii() == name).then(|| v.trim_ascii())
    })
}

/// The (raw, undecoded) value of parameter `name` in a query string.
fn param<'a>(query: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = split_once(pair, b'=').unwrap_or((pair, b""));
        (k == name).then_some(v)
    })
}

fn split_once(s: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == at)?;
    Some((&s[..i], &s[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_bad_ones_say_why() {
        assert_eq!(LimitKey::parse("client_ip"), Ok(LimitKey::ClientIp));
        assert_eq!(
            LimitKey::parse("header:X-Api-Key"),
            Ok(LimitKey::Header(HeaderName::from_static("x-api-key")))
        );
        assert_eq!(LimitKey::parse("{R:1}"), Ok(LimitKey::RuleCapture(1)));
        assert!(LimitKey::parse("cookie:")
            .unwrap_err()
            .contains("needs a name"));
        assert!(LimitKey::parse("ip").unwrap_err().contains("unknown key"));
    }

    #[test]
    fn cookies_and_parameters_are_found_in_place() {
        assert_eq!(cookie(b"a=1; sid=xyz ;b=2", b"sid"), Some(&b"xyz"[..]));
        assert_eq!(cookie(b"a=1", b"sid"), None);
        assert_eq!(param(b"x=1&key=abc&y", b"key"), Some(&b"abc"[..]));
        assert_eq!(param(b"x=1&y", b"y"), Some(&b""[..]));
        assert_eq!(param(b"", b"key"), None);
    }

    #[test]
    fn mapped_addresses_count_as_their_ipv4() {
        let v4: IpAddr = "192.0.2.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(hash_ip(v4), hash_ip(mapped));
        assert_ne!(hash_ip(v4), hash(b"192.0.2.1"));
    }
}
