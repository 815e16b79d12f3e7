//! Revalidation of stale entries (RFC 9111 §4.3): the request to the
//! backend carries the entry's validators (If-None-Match from its ETag,
//! If-Modified-Since from its Last-Modified); a 304 answer updates the
//! stored head (§4.3.4) and restarts its freshness, keeping the body.

use super::config::CacheSpec;
use super::control::CacheControl;
use super::entry::Entry;
use super::policy::{self, RequestPolicy, Timing};
use http::header::{self, HeaderMap, HeaderName};
use std::sync::Arc;
use std::time::Instant;

/// Fields a 304 must not change in the stored head: they describe the
/// stored body, or are the cache's own business.
const KEEP_STORED: [HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::SET_COOKIE,
    header::AGE,
];

/// Makes the outgoing request conditional on `e`'s validators.
pub fn add_validators(request: &mut HeaderMap, e: &Entry) {
    if let Some(etag) = e.etag() {
        request.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(lm) = e.last_modified() {
        request.insert(header::IF_MODIFIED_SINCE, lm.clone());
    }
}

/// The entry refreshed by a 304 whose head is `update`, or `None` when
/// the updated response may no longer be stored (it then says, say,
/// `no-store`).
pub fn refresh(
    e: &Entry,
    update: &HeaderMap,
    req: &RequestPolicy,
    timing: Timing,
    received: Instant,
    spec: &CacheSpec,
    targeted: &[HeaderName],
) -> Option<Arc<Entry>> {
    let mut headers = e.headers.clone();
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, value) in update {
        if KEEP_STORED.contains(name) {
            continue;
        }
        if !replaced.contains(&name) {
            headers.remove(name);
            replaced.push(name);
        }
        headers.append(name.clone(), value.clone());
    }
    // The 304's Age (if any) still counts for the new initial age.
    let mut for_age = headers.clone();
    if let Some(age) = update.get(header::AGE) {
        for_age.insert(header::AGE, age.clone());
    }
    let cc = super::targeted::select(&for_age, targeted)
        .unwrap_or_else(|| CacheControl::from_headers(&for_age));
    let freshness = policy::evaluate(spec, req, e.status, &for_age, &cc, timing).ok()?;
    Some(Entry::assemble(
        e.status,
        headers,
        e.body.clone(),
        freshness,
        received,
        e.vary.clone(),
        spec,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Received;
    use http::{HeaderValue, StatusCode};
    use std::time::{Duration, SystemTime};

    fn timing() -> Timing {
        let t = SystemTime::now();
        Timing {
            request_time: t,
            response_time: t,
        }
    }

    #[test]
    fn a_304_updates_the_head_and_keeps_the_body() {
        let spec = CacheSpec::default();
        let mut h = HeaderMap::new();
        h.insert("cache-control", HeaderValue::from_static("max-age=0"));
        h.insert("etag", HeaderValue::from_static("\"v1\""));
        h.insert("x-version", HeaderValue::from_static("old"));
        let req = RequestPolicy::default();
        let cc = CacheControl::from_headers(&h);
        let f = policy::evaluate(&spec, &req, StatusCode::OK, &h, &cc, timing()).unwrap();
        let e = Entry::new(
            Received {
                status: StatusCode::OK,
                headers: &h,
                freshness: f,
                received: Instant::now(),
                vary: vec![],
            },
            bytes::Bytes::from_static(b"body"),
            &spec,
        );
        let mut out = HeaderMap::new();
        add_validators(&mut out, &e);
        assert_eq!(out["if-none-match"], "\"v1\"");

        let mut update = HeaderMap::new();
        update.insert("cache-control", HeaderValue::from_static("max-age=30"));
        update.insert("x-version", HeaderValue::from_static("new"));
        update.insert("content-length", HeaderValue::from_static("0"));
        let r = refresh(&e, &update, &req, timing(), Instant::now(), &spec, &[]).unwrap();
        assert_eq!(r.body, "body");
        assert_eq!(r.headers["x-version"], "new");
        assert_eq!(r.headers["content-length"], "4");
        assert_eq!(r.freshness.lifetime, Duration::from_secs(30));
        assert!(r.fresh_for(&req));

        update.insert("cache-control", HeaderValue::from_static("no-store"));
        assert!(refresh(&e, &update, &req, timing(), Instant::now(), &spec, &[]).is_none());
    }
}
