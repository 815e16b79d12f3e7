//! Cache keys. The primary key is the target of a GET: host, path and (when
//! `query_string: include`) the query. A response with `Vary` is stored
//! under a secondary key that adds the values of the request headers it
//! names, so a gzip answer never reaches a client that did not ask for it.
//!
//! Layout: `host \0 path[?query]`, then for Vary `\x01 id` and one
//! `\x01 =value` (or `\x01 !` when absent) per named header. Neither byte
//! can occur in a Host value, a path or a header value, so distinct
//! requests never share a key.

use super::config::QueryString;
use http::header::{self, HeaderMap, HeaderName};
use std::io::Write as _;

/// A cache key as the store holds it.
pub type Key = Box<[u8]>;

/// The primary key of a request.
pub fn primary(parts: &http::request::Parts, query: QueryString) -> Key {
    let host = parts
        .headers
        .get(header::HOST)
        .map(|h| h.as_bytes())
        .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes()))
        .unwrap_or_default();
    let q = match query {
        QueryString::Include => parts.uri.query(),
        QueryString::Ignore => None,
    };
    build(host, parts.uri.path(), q)
}

/// The primary key of `path_and_query` on `host` (for invalidation of a
/// Location after an unsafe request).
pub fn primary_for(host: &[u8], path_and_query: &str, query: QueryString) -> Key {
    let (path, q) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let q = if query == QueryString::Include {
        q
    } else {
        None
    };
    build(host, path, q)
}

fn build(host: &[u8], path: &str, query: Option<&str>) -> Key {
    let mut k = Vec::with_capacity(host.len() + path.len() + query.map_or(0, |q| q.len() + 1) + 1);
    k.extend(host.iter().map(u8::to_ascii_lowercase));
    k.push(0);
    k.extend_from_slice(path.as_bytes());
    if let Some(q) = query {
        k.push(b'?');
        k.extend_from_slice(q.as_bytes());
    }
    k.into_boxed_slice()
}

/// The path (and query) part of a key, for purging by prefix.
pub fn path_of(key: &[u8]) -> &[u8] {
    let start = key.iter().position(|b| *b == 0).map_or(0, |i| i + 1);
    let rest = &key[start..];
    let end = rest.iter().position(|b| *b == 1).unwrap_or(rest.len());
    &rest[..end]
}

/// The host part of a key.
pub fn host_of(key: &[u8]) -> &[u8] {
    let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
    &key[..end]
}

fn vary_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers.get_all(header::VARY).iter().flat_map(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .map(|t| t.trim_ascii())
            .filter(|t| !t.is_empty())
    })
}

/// `Vary: *`: no request can be known to match, so it is not stored.
pub fn vary_is_star(headers: &HeaderMap) -> bool {
    vary_tokens(headers).any(|t| t == b"*")
}

/// The request headers a response varies on, lower-cased, without
/// duplicates, in order; empty when it does not vary.
pub fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = Vec::new();
    for t in vary_tokens(headers) {
        if let Ok(n) = HeaderName::from_bytes(t) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// Appends the values `req` has for `names` (several lines of one header
/// joined by commas, surrounding spaces trimmed).
pub fn vary_values(names: &[HeaderName], req: &HeaderMap, out: &mut Vec<u8>) {
    for n in names {
        out.push(1);
        let mut values = req.get_all(n).iter().peekable();
        if values.peek().is_none() {
            out.push(b'!');
            continue;
        }
        out.push(b'=');
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(v.as_bytes().trim_ascii());
        }
    }
}

/// The secondary key of a request under a Vary marker numbered `id`.
pub fn secondary(primary: &[u8], id: u64, names: &[HeaderName], req: &HeaderMap) -> Key {
    let mut values = Vec::with_capacity(names.len() * 16);
    vary_values(names, req, &mut values);
    secondary_with(primary, id, &values)
}

/// The secondary key from values already gathered by [`vary_values`].
pub fn secondary_with(primary: &[u8], id: u64, values: &[u8]) -> Key {
    let mut k = Vec::with_capacity(primary.len() + 24 + values.len());
    k.extend_from_slice(primary);
    k.push(1);
    let _ = write!(k, "{id}");
    k.extend_from_slice(values);
    k.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Request};

    fn parts(uri: &str, hs: &[(&'static str, &'static str)]) -> http::request::Parts {
        let mut b = Request::get(uri);
        for (k, v) in hs {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn primary_uses_host_path_and_query() {
        let p = parts("/a/b?x=1", &[("host", "Example.COM")]);
        assert_eq!(
            &*primary(&p, QueryString::Include),
            b"example.com\0/a/b?x=1"
        );
        assert_eq!(&*primary(&p, QueryString::Ignore), b"example.com\0/a/b");
        let h2 = parts("http://h2.example:8443/z", &[]);
        assert_eq!(&*primary(&h2, QueryString::Include), b"h2.example:8443\0/z");
        assert_eq!(
            &*primary_for(b"example.com", "/a/b?x=1", QueryString::Include),
            b"example.com\0/a/b?x=1"
        );
    }

    #[test]
    fn vary_keys_separate_variants() {
        let mut resp = HeaderMap::new();
        resp.append(
            "vary",
            HeaderValue::from_static("Accept-Encoding, accept-encoding"),
        );
        resp.append("vary", HeaderValue::from_static(" Accept-Language"));
        let names = vary_names(&resp);
        assert_eq!(names, ["accept-encoding", "accept-language"]);
        let gzip = parts("/", &[("accept-encoding", "gzip")]);
        let plain = parts("/", &[]);
        let a = secondary(b"h\0/", 7, &names, &gzip.headers);
        let b = secondary(b"h\0/", 7, &names, &plain.headers);
        assert_ne!(a, b);
        assert_eq!(a, secondary(b"h\0/", 7, &names, &gzip.headers));
        assert_eq!(path_of(&a), b"/");
        assert_eq!(host_of(&a), b"h");
        assert!(!vary_is_star(&resp));
        resp.append("vary", HeaderValue::from_static("*"));
        assert!(vary_is_star(&resp));
    }
}
