//! The cache's hit path, in process: build the key of a request, look it
//! up, check freshness against the request's directives, and build the
//! response (head cloned, body shared). This is what a HIT costs farmgate
//! besides HTTP parsing and socket I/O.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use farmgate::cache::conditional::Conditions;
use farmgate::cache::control::CacheControl;
use farmgate::cache::entry::{Entry, Received};
use farmgate::cache::policy::{self, RequestPolicy, Timing};
use farmgate::cache::store::Found;
use farmgate::cache::{key, respond, CacheSpec, CacheStore, QueryString};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use std::time::{Instant, SystemTime};

fn request(path: &str) -> http::request::Parts {
    Request::get(path)
        .header("host", "www.example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench")
        .header("accept", "text/css,*/*;q=0.1")
        .header("accept-encoding", "gzip, deflate, br")
        .header("accept-language", "en-GB,en;q=0.9")
        .header("x-forwarded-for", "203.0.113.7")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn stored(store: &CacheStore, parts: &http::request::Parts, vary: &str, body: usize) {
    let spec = CacheSpec::default();
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("cache-control", "public, max-age=3600"),
        ("content-type", "text/css; charset=utf-8"),
        ("etag", "\"5f3e-1a2b3c\""),
        ("last-modified", "Tue, 01 Apr 2025 10:00:00 GMT"),
        ("date", &httpdate::fmt_http_date(SystemTime::now())),
        ("server", "origin"),
    ] {
        h.insert(k, HeaderValue::from_str(v).unwrap());
    }
    if !vary.is_empty() {
        h.insert("vary", HeaderValue::from_str(vary).unwrap());
    }
    let now = SystemTime::now();
    let timing = Timing {
        request_time: now,
        response_time: now,
    };
    let req = RequestPolicy::from_headers(&parts.headers);
    let cc = CacheControl::from_headers(&h);
    let freshness = policy::evaluate(&spec, &req, StatusCode::OK, &h, &cc, timing).unwrap();
    let names = key::vary_names(&h);
    let mut values = Vec::new();
    key::vary_values(&names, &parts.headers, &mut values);
    let entry = Entry::new(
        Received {
            status: StatusCode::OK,
            headers: &h,
            freshness,
            received: Instant::now(),
            vary: names,
        },
        Bytes::from(vec![b'x'; body]),
        &spec,
    );
    let primary = key::primary(parts, QueryString::Include);
    store.insert(&primary, &values, entry);
}

fn hit(
    store: &CacheStore,
    parts: &http::request::Parts,
) -> http::Response<farmgate::proxy::body::ProxyBody> {
    let primary = key::primary(parts, QueryString::Include);
    let lookup = store.lookup(primary, &parts.headers);
    let Found::Entry(e) = lookup.found else {
        panic!("not stored")
    };
    let req = RequestPolicy::from_headers(&parts.headers);
    assert!(e.fresh_for(&req));
    let cond = Conditions::from_headers(&parts.headers);
    let mut r = respond::from_entry(&e, false, &cond);
    respond::mark(&mut r, true, respond::XCache::Hit);
    r
}

fn bench(c: &mut Criterion) {
    let store = CacheStore::new(256 << 20, QueryString::Include, Default::default());
    let plain = request("/static/app.css?v=42");
    stored(&store, &plain, "", 16 * 1024);
    let varied = request("/static/site.js");
    stored(&store, &varied, "Accept-Encoding", 64 * 1024);
    // Fill the store so lookups are not in a near-empty table.
    for i in 0..10_000 {
        stored(&store, &request(&format!("/filler/{i}")), "", 1024);
    }
    store.run_pending_tasks();

    c.bench_function("cache_hit/plain_16KiB", |b| {
        b.iter(|| black_box(hit(&store, &plain)))
    });
    c.bench_function("cache_hit/vary_64KiB", |b| {
        b.iter(|| black_box(hit(&store, &varied)))
    });
    c.bench_function("cache_key/primary", |b| {
        b.iter(|| black_box(key::primary(&plain, QueryString::Include)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
