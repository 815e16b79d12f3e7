//! `farms[].hash_key`: which part of a request the `hash` algorithm hashes
//! (`client_ip | header:NAME | cookie:NAME | query:NAME | path`), compiled
//! once at config build, and the stable 64-bit hash used for it and for the
//! consistent-hash ring.
//!
//! The hash is our own (FNV-1a with a murmur3 finaliser) rather than std's
//! `DefaultHasher`, whose output may change between Rust releases: two
//! farmgate instances with the same config must send a key to the same server.

use http::header::{HeaderName, COOKIE};
use http::request::Parts;
use std::net::IpAddr;

/// A 64-bit hash that is the same on every build and platform.
#[derive(Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// FNV-1a alone mixes its high bits poorly; fmix64 spreads them.
    #[inline]
    pub fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Hashes one byte string.
#[inline]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::default();
    h.write(bytes);
    h.finish()
}

/// The request part the `hash` algorithm keys on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP (with trusted proxies, the address they forwarded for).
    ClientIp,
    Header(HeaderName),
    Cookie(Box<str>),
    Query(Box<str>),
    Path,
}

impl HashKey {
    /// Parses the config text; the error says what is accepted.
    pub fn parse(text: &str) -> Result<HashKey, String> {
        let bad = || {
            format!(
                "unknown hash_key {text:?}; expected client_ip, path, header:NAME, cookie:NAME or query:NAME"
            )
        };
        let named = |name: &str| -> Result<(), String> {
            if name.is_empty() {
                Err(format!("hash_key {text:?} needs a name after the colon"))
            } else {
                Ok(())
            }
        };
        match text.split_once(':') {
            None => match text {
                "client_ip" => Ok(HashKey::ClientIp),
                "path" => Ok(HashKey::Path),
                _ => Err(bad()),
            },
            Some(("header", name)) => {
                named(name)?;
                HeaderName::from_bytes(name.as_bytes())
                    .map(HashKey::Header)
                    .map_err(|_| format!("hash_key {text:?}: {name:?} is not a valid header name"))
            }
            Some(("cookie", name)) => named(name).map(|_| HashKey::Cookie(name.into())),
            Some(("query", name)) => named(name).map(|_| HashKey::Query(name.into())),
            Some(_) => Err(bad()),
        }
    }

    /// The hash of this key in `head`, or None when the request lacks it
    /// (the `hash` policy then spreads such requests by rotation).
    /// `peer_trusted` says the peer is one of `proxy.trusted_proxies`.
    pub fn hash(&self, head: &Parts, peer: IpAddr, peer_trusted: bool) -> Option<u64> {
        match self {
            HashKey::ClientIp => {
                let ip = if peer_trusted {
                    forwarded_client(head).unwrap_or(peer)
                } else {
                    peer
                };
                Some(hash_ip(crate::ground::net::canonical_ip(ip)))
            }
            HashKey::Path => Some(stable_hash(head.uri.path().as_bytes())),
            HashKey::Header(name) => head.headers.get(name).map(|v| stable_hash(v.as_bytes())),
            HashKey::Cookie(name) => cookie_value(&head.headers, name).map(stable_hash),
            HashKey::Query(name) => {
                let query = head.uri.query()?;
                query.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == &**name).then(|| stable_hash(v.as_bytes()))
                })
            }
        }
    }
}

fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => stable_hash(&v4.octets()),
        IpAddr::V6(v6) => stable_hash(&v6.octets()),
    }
}

/// The client address a trusted proxy forwarded for: the last entry of
/// X-Forwarded-For (the one our trusted peer appended).
fn forwarded_client(head: &Parts) -> Option<IpAddr> {
    let last = head
        .headers
        .get_all(&crate::ground::net::X_FORWARDED_FOR)
        .iter()
        .next_back()?;
    let text = last.to_str().ok()?;
    text.rsplit(',').next()?.trim().parse().ok()
}

/// The first value of cookie `name` in the request's Cookie header(s),
/// as raw bytes (HTTP/2 may split cookies over several fields).
pub fn cookie_value<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h [u8]> {
    for field in headers.get_all(COOKIE) {
        for pair in field.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii_start();
            if let Some(rest) = pair.strip_prefix(name.as_bytes()) {
                if let Some(value) = rest.strip_prefix(b"=") {
                    return Some(value.trim_ascii_end());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn parses_every_form_and_rejects_others() {
        assert_eq!(HashKey::parse("client_ip"), Ok(HashKey::ClientIp));
        assert_eq!(HashKey::parse("path"), Ok(HashKey::Path));
        assert_eq!(
            HashKey::parse("header:X-Tenant"),
            Ok(HashKey::Header(HeaderName::from_static("x-tenant")))
        );
        assert_eq!(
            HashKey::parse("cookie:sid"),
            Ok(HashKey::Cookie("sid".into()))
        );
        assert_eq!(
            HashKey::parse("query:user"),
            Ok(HashKey::Query("user".into()))
        );
        for bad in ["ip", "header:", "header:bad name", "body:x", ""] {
            assert!(HashKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn same_key_same_hash_missing_key_none() {
        let key = HashKey::parse("query:user").expect("key");
        let a = key.hash(&head("/x?a=1&user=ann", &[]), PEER, false);
        let b = key.hash(&head("/y?user=ann", &[]), PEER, false);
        let c = key.hash(&head("/y?user=bob", &[]), PEER, false);
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(key.hash(&head("/y?other=1", &[]), PEER, false), None);
        assert_eq!(key.hash(&head("/y", &[]), PEER, false), None);
    }

    #[test]
    fn cookie_and_header_keys() {
        let key = HashKey::parse("cookie:sid").expect("key");
        let h = head("/", &[("cookie", "a=1; sid=xyz; b=2")]);
        assert_eq!(key.hash(&h, PEER, false), Some(stable_hash(b"xyz")));
        let h = head("/", &[("cookie", "sidx=1"), ("cookie", "sid=xyz")]);
        assert_eq!(key.hash(&h, PEER, false), Some(stable_hash(b"xyz")));
        let key = HashKey::parse("header:x-tenant").expect("key");
        let h = head("/", &[("x-tenant", "acme")]);
        assert_eq!(key.hash(&h, PEER, false), Some(stable_hash(b"acme")));
    }

    #[test]
    fn client_ip_uses_forwarded_address_only_from_trusted_peers() {
        let key = HashKey::ClientIp;
        let h = head("/", &[("x-forwarded-for", "203.0.113.1, 198.51.100.4")]);
        let trusted = key.hash(&h, PEER, true);
        let untrusted = key.hash(&h, PEER, false);
        assert_eq!(untrusted, Some(hash_ip(PEER)));
        assert_eq!(trusted, Some(hash_ip("198.51.100.4".parse().expect("ip"))));
    }

    #[test]
    fn hash_is_stable_across_builds() {
        // Pinned values: a change here breaks key placement across a tier.
        assert_eq!(stable_hash(b""), 0xefd01f60ba992926);
        assert_eq!(stable_hash(b"user-42"), 0xa39532c7ab051e8d);
    }
}
