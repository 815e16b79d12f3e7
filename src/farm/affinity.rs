//! Cookie affinity (`farms[].affinity`): keeps a client on the server that
//! first answered it, the way ARR's client affinity does, without shared
//! state between farmgate instances.
//!
//! The cookie value is HMAC-SHA256(key, farm + server name) truncated to 128
//! bits, hex: it reveals no address, a forged or stale value matches no
//! server and is ignored, and two instances with the same config compute the
//! same value. The key is `affinity.secret`; without one it is a fixed,
//! public constant, so the value is still opaque and stable but anyone who
//! can guess a farm and server name can compute (and so target) a server's
//! cookie. Set a secret where that matters.
//!
//! Everything is computed at config build: each server's cookie value (for
//! the lookup) and its `Set-Cookie` header, plain and `Secure`. A request
//! does one hash-map lookup; a response appends a pre-built header.

use super::hash_key::cookie_value;
use super::Server;
use aws_lc_rs::hmac;
use http::HeaderValue;
use std::collections::HashMap;
use std::time::Duration;

/// Domain separation for the keyed hash, and the key when no secret is set.
const CONTEXT: &[u8] = b"farmgate-affinity-v1";

/// Bytes of the HMAC kept in the cookie (128 bits: unguessable, short).
const VALUE_BYTES: usize = 16;

/// What the config asked for, validated.
#[derive(Debug, Clone)]
pub struct AffinitySpec {
    pub cookie: String,
    pub ttl: Option<Duration>,
    pub secret: Option<String>,
}

/// Affinity compiled for one farm's server list.
#[derive(Debug)]
pub struct Affinity {
    cookie: Box<str>,
    /// Cookie value -> server index.
    by_value: HashMap<Box<[u8]>, usize>,
    /// Per server: the Set-Cookie header for plain and for TLS listeners.
    set_cookie: Vec<[HeaderValue; 2]>,
}

impl Affinity {
    /// Precomputes every server's cookie value and Set-Cookie header.
    pub fn new(spec: &AffinitySpec, farm: &str, servers: &[Server]) -> Result<Self, String> {
        let key = hmac::Key::new(
            hmac::HMAC_SHA256,
            spec.secret.as_deref().map_or(CONTEXT, str::as_bytes),
        );
        let max_age = spec
            .ttl
            .map(|t| {
                format!(
                    "; Max-Age={}",
                    t.as_secs() + u64::from(t.subsec_nanos() > 0)
                )
            })
            .unwrap_or_default();
        let mut by_value = HashMap::with_capacity(servers.len());
        let mut set_cookie = Vec::with_capacity(servers.len());
        for (i, s) in servers.iter().enumerate() {
            let value = cookie_value_for(&key, farm, &s.name);
            let plain = format!(
                "{}={value}; Path=/{max_age}; HttpOnly; SameSite=Lax",
                spec.cookie
            );
            let secure = format!("{plain}; Secure");
            let header = |text: String| {
                HeaderValue::from_str(&text).map_err(|_| format!("cannot build cookie {text:?}"))
            };
            set_cookie.push([header(plain)?, header(secure)?]);
            by_value.insert(value.into_bytes().into_boxed_slice(), i);
        }
        Ok(Affinity {
            cookie: spec.cookie.as_str().into(),
            by_value,
            set_cookie,
        })
    }

    /// The server the request's affinity cookie names, if it carries a valid
    /// one for this farm. Forged, stale or foreign values give None.
    #[inline]
    pub fn bound_server(&self, headers: &http::HeaderMap) -> Option<usize> {
        let value = cookie_value(headers, &self.cookie)?;
        self.by_value.get(value).copied()
    }

    /// The Set-Cookie header binding a client to `server`.
    #[inline]
    pub fn set_cookie(&self, server: usize, secure: bool) -> Option<&HeaderValue> {
        self.set_cookie.get(server).map(|h| &h[usize::from(secure)])
    }

    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }
}

/// The cookie value for a server of a farm under `key`.
fn cookie_value_for(key: &hmac::Key, farm: &str, server: &str) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(CONTEXT);
    ctx.update(&[0]);
    ctx.update(farm.as_bytes());
    ctx.update(&[0]);
    ctx.update(server.as_bytes());
    let tag = ctx.sign();
    let mut out = String::with_capacity(VALUE_BYTES * 2);
    for b in &tag.as_ref()[..VALUE_BYTES] {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Checks a cookie name: an RFC 9110 token (letters, digits and
/// ``!#$%&'*+-.^_`|~``), so it needs no quoting in a header.
pub fn validate_cookie_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the affinity cookie needs a name".into());
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cookie name {name:?} may only contain letters, digits and !#$%&'*+-.^_`|~"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::selection::testing::servers;

    fn spec(secret: Option<&str>, ttl: Option<Duration>) -> AffinitySpec {
        AffinitySpec {
            cookie: "FG".into(),
            ttl,
            secret: secret.map(Into::into),
        }
    }

    fn cookie_header(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&format!("other=1; FG={value}")).expect("header"),
        );
        h
    }

    fn value_of(a: &Affinity, i: usize) -> String {
        let text = a
            .set_cookie(i, false)
            .expect("server")
            .to_str()
            .expect("ascii");
        text["FG=".len()..text.find(';').expect("attrs")].to_string()
    }

    #[test]
    fn values_are_opaque_stable_and_keyed() {
        let s = servers(&[1, 1, 1]);
        let a = Affinity::new(&spec(Some("k1"), None), "web", &s).expect("build");
        let again = Affinity::new(&spec(Some("k1"), None), "web", &s).expect("build");
        let other_key = Affinity::new(&spec(Some("k2"), None), "web", &s).expect("build");
        let other_farm = Affinity::new(&spec(Some("k1"), None), "api", &s).expect("build");
        let v0 = value_of(&a, 0);
        assert_eq!(v0.len(), 32);
        assert!(!v0.contains("127") && !v0.contains("9000"));
        assert_eq!(v0, value_of(&again, 0), "same config, same value");
        assert_ne!(v0, value_of(&a, 1));
        assert_ne!(v0, value_of(&other_key, 0));
        assert_ne!(v0, value_of(&other_farm, 0));
    }

    #[test]
    fn lookup_accepts_own_values_only() {
        let s = servers(&[1, 1, 1]);
        let a = Affinity::new(&spec(None, None), "web", &s).expect("build");
        for i in 0..3 {
            assert_eq!(a.bound_server(&cookie_header(&value_of(&a, i))), Some(i));
        }
        assert_eq!(
            a.bound_server(&cookie_header("0123456789abcdef0123456789abcdef")),
            None
        );
        assert_eq!(a.bound_server(&cookie_header("")), None);
        assert_eq!(a.bound_server(&http::HeaderMap::new()), None);
    }

    #[test]
    fn set_cookie_attributes() {
        let s = servers(&[1]);
        let a =
            Affinity::new(&spec(None, Some(Duration::from_secs(3600))), "web", &s).expect("build");
        let plain = a
            .set_cookie(0, false)
            .expect("server")
            .to_str()
            .expect("ascii");
        assert!(
            plain.ends_with("; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"),
            "{plain}"
        );
        let secure = a
            .set_cookie(0, true)
            .expect("server")
            .to_str()
            .expect("ascii");
        assert!(secure.ends_with("; SameSite=Lax; Secure"), "{secure}");
        let session = Affinity::new(&spec(None, None), "web", &s).expect("build");
        let text = session
            .set_cookie(0, false)
            .expect("server")
            .to_str()
            .expect("ascii");
        assert!(!text.contains("Max-Age"), "{text}");
    }

    #[test]
    fn cookie_names() {
        assert!(validate_cookie_name("FARMGATE_AFFINITY").is_ok());
        for bad in ["", "a b", "a;b", "a=b", "é"] {
            assert!(validate_cookie_name(bad).is_err(), "{bad}");
        }
    }
}
