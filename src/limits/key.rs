//! What a limit counts by (`key:`) and how a request's key becomes the
//! 64-bit hash the stores index by. Reading a key borrows from the request
//! head (a header value, a cookie or query parameter found in place) and
//! hashes it with a per-process random SipHash key, so nothing is copied
//! and a client cannot aim its keys at one bucket of the store. A limit
//! with `scope: cluster` hashes with a [`KeyHasher::Tier`] key instead,
//! derived from the tier's config, so every instance names a request key
//! by the same hash (the name of its counter in Redis).

use http::HeaderName;
use siphasher::sip::SipHasher13;
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
/// `capture` is the hash of the rule's capture (by the same `hasher`),
/// when the key is one.
#[inline]
pub fn of<R: RequestKeys>(
    key: &LimitKey,
    req: &R,
    capture: Option<u64>,
    hasher: &KeyHasher,
) -> Option<u64> {
    match key {
        LimitKey::ClientIp => Some(hasher.hash_ip(req.client_ip())),
        LimitKey::Header(name) => req.header(name).map(|v| hasher.hash(v)),
        LimitKey::Cookie(name) => req
            .cookies()
            .find_map(|h| cookie(h, name.as_bytes()))
            .map(|v| hasher.hash(v)),
        LimitKey::Query(name) => param(req.query(), name.as_bytes()).map(|v| hasher.hash(v)),
        LimitKey::Path => Some(hasher.hash(req.path())),
        LimitKey::RuleCapture(_) => capture,
    }
}

/// How a limit's keys become hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyHasher {
    /// The per-process random key: a local limit.
    #[default]
    Process,
    /// SipHash-1-3 under a key every instance of a tier derives alike from
    /// its config ([`KeyHasher::tier`]): a `scope: cluster` limit.
    Tier(u64, u64),
}

impl KeyHasher {
    /// The tier's hasher, keyed by `seed` (the tier's name and password).
    pub fn tier(seed: &[u8]) -> KeyHasher {
        let half = |n: u64| {
            let mut h = SipHasher13::new_with_keys(0x6661_726d_6761_7465, n);
            h.write(seed);
            h.finish()
        };
        KeyHasher::Tier(half(1), half(2))
    }

    /// The store hash of a key's bytes.
    #[inline]
    pub fn hash(&self, bytes: &[u8]) -> u64 {
        match *self {
            KeyHasher::Process => hash(bytes),
            KeyHasher::Tier(k0, k1) => {
                let mut h = SipHasher13::new_with_keys(k0, k1);
                h.write(bytes);
                h.finish()
            }
        }
    }

    /// The store hash of a client address (IPv4-mapped as IPv4).
    #[inline]
    pub fn hash_ip(&self, ip: IpAddr) -> u64 {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.hash(&v4.octets()),
            IpAddr::V6(v6) => self.hash(&v6.octets()),
        }
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
    KeyHasher::Process.hash_ip(ip)
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

    #[test]
    fn a_tier_hasher_is_the_same_in_every_process() {
        // Instances of a tier (other processes, other builds) must name a
        // key alike: a pure function of the seed, SipHash-1-3 as pinned by
        // the siphasher crate.
        let t = KeyHasher::tier(b"farmgate\0secret");
        assert_eq!(t, KeyHasher::tier(b"farmgate\0secret"));
        assert_ne!(t, KeyHasher::tier(b"farmgate\0other"));
        assert_eq!(t.hash(b"k-123"), t.hash(b"k-123"));
        let v4: IpAddr = "192.0.2.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(t.hash_ip(v4), t.hash_ip(mapped));
        assert_eq!(KeyHasher::Tier(1, 2).hash(b"abc"), {
            let mut h = SipHasher13::new_with_keys(1, 2);
            h.write(b"abc");
            h.finish()
        });
    }
}
