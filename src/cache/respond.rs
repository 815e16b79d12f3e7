//! Responses the cache makes: a stored entry served (with its current Age),
//! a 304 for a client whose validators match, and the `X-Cache` status
//! header (HIT, MISS, STALE, BYPASS) when `status_header` is on.

use super::conditional::Conditions;
use super::entry::Entry;
use crate::proxy::body::ProxyBody;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The value of the `X-Cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XCache {
    Hit,
    Miss,
    Stale,
    Bypass,
}

impl XCache {
    fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            XCache::Hit => "HIT",
            XCache::Miss => "MISS",
            XCache::Stale => "STALE",
            XCache::Bypass => "BYPASS",
        })
    }
}

/// Sets `X-Cache` when `on`.
#[inline]
pub fn mark(resp: &mut Response<ProxyBody>, on: bool, x: XCache) {
    if on {
        resp.headers_mut().insert(X_CACHE.clone(), x.value());
    }
}

/// Serves `e`: a 304 if the client's conditionals match, the head alone
/// for HEAD, else the whole stored response. The body is shared, not
/// copied.
pub fn from_entry(e: &Entry, head_only: bool, cond: &Conditions) -> Response<ProxyBody> {
    let age = HeaderValue::from(e.age().as_secs());
    if !cond.is_empty() && cond.not_modified(e.etag(), e.modified_time()) {
        let mut r = not_modified(&e.headers);
        r.headers_mut().insert(header::AGE, age);
        return r;
    }
    let body = if head_only {
        ProxyBody::empty()
    } else {
        ProxyBody::full(e.body.clone())
    };
    let mut r = Response::new(body);
    *r.status_mut() = e.status;
    *r.headers_mut() = e.headers.clone();
    r.headers_mut().insert(header::AGE, age);
    r
}

/// Fields a 304 carries (RFC 9110 §15.4.5): those a cache needs to update
/// what it holds. Last-Modified only helps when there is no ETag.
const NOT_MODIFIED_FIELDS: [HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

/// A 304 built from the head of the response the client already has.
pub fn not_modified(head: &HeaderMap) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::empty());
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    let h = r.headers_mut();
    for name in &NOT_MODIFIED_FIELDS {
        for v in head.get_all(name) {
            h.append(name.clone(), v.clone());
        }
    }
    if !head.contains_key(header::ETAG) {
        if let Some(lm) = head.get(header::LAST_MODIFIED) {
            h.insert(header::LAST_MODIFIED, lm.clone());
        }
    }
    r
}
