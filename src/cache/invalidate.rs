//! Invalidation after unsafe requests (RFC 9111 §4.4): a POST, PUT,
//! DELETE or PATCH that succeeded changed the resource, so what is stored
//! for its URL, and for same-host URLs in Location and Content-Location,
//! must not be served again.

use super::key;
use super::FarmCache;
use crate::proxy::body::ProxyBody;
use http::header;
use http::Response;

/// Drops what `cache` holds for `primary` (and for the response's
/// Location and Content-Location on the same host) when `resp` is a
/// success or a redirect.
pub fn after_unsafe(cache: &FarmCache, primary: &[u8], resp: &Response<ProxyBody>) {
    let s = resp.status();
    if !(s.is_success() || s.is_redirection()) {
        return;
    }
    let store = &cache.store;
    let query = cache.spec.query_string;
    store.invalidate(primary);
    let host = key::host_of(primary);
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if v.starts_with('/') {
            store.invalidate(&key::primary_for(host, v, query));
        } else if let Ok(uri) = v.parse::<http::Uri>() {
            let same_host = uri
                .authority()
                .is_some_and(|a| a.as_str().as_bytes().eq_ignore_ascii_case(host));
            if let (true, Some(pq)) = (same_host, uri.path_and_query()) {
                store.invalidate(&key::primary_for(host, pq.as_str(), query));
            }
        }
    }
}
