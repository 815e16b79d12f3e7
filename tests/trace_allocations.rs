//! With `trace:` on, what the request path does for the trace context
//! allocates nothing: ids drawn (new trace or continued), the incoming
//! `traceparent`/`tracestate` read and removed, the outgoing `traceparent`
//! and the trace id written for the fast forward's head buffer. Counted by
//! an instrumented global allocator; one test in this binary, so no other
//! test's allocations are counted.
#![allow(clippy::unwrap_used)]

use farmgate::ground::trace_context::TraceContext;
use http::{HeaderMap, HeaderValue};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn the_trace_context_allocates_nothing_per_request() {
    let raw: farmgate::trace::RawTrace =
        yaml_serde::from_str("trusted_sources: [10.0.0.0/8, 192.168.0.0/16]").unwrap();
    let mut p = farmgate::ground::error::Problems::default();
    let spec = farmgate::trace::spec::build(&raw, &mut p);
    assert!(p.is_empty());
    const N: usize = 500;
    // Request heads made beforehand: a browser's, half with a trace context.
    let mut heads: Vec<HeaderMap> = (0..N)
        .map(|i| {
            let mut h = HeaderMap::new();
            h.insert("host", HeaderValue::from_static("shop.example.com"));
            h.insert("accept", HeaderValue::from_static("text/html"));
            if i % 2 == 0 {
                h.insert(
                    "traceparent",
                    HeaderValue::from_static(
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                );
                h.insert("tracestate", HeaderValue::from_static("vendor=1"));
            }
            h
        })
        .collect();
    let peers: [std::net::IpAddr; 2] =
        ["10.0.0.7".parse().unwrap(), "203.0.113.9".parse().unwrap()];
    let mut up = Vec::with_capacity(4096);
    let mut continued = 0;
    // Warm the thread's generator outside the counted region.
    let _ = TraceContext::start(true);

    let region = Region::new(GLOBAL);
    for (i, h) in heads.iter_mut().enumerate() {
        let ctx = spec.begin(peers[(i / 2) % 2], h);
        continued += usize::from(ctx.parent_id.is_some());
        up.clear();
        up.extend_from_slice(b"traceparent: ");
        up.extend_from_slice(&ctx.traceparent());
        up.extend_from_slice(b"\r\nx-trace-id: ");
        up.extend_from_slice(&ctx.trace_id_hex());
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(continued, N / 4, "trusted and traced: every fourth head");
    assert!(heads.iter().all(|h| !h.contains_key("traceparent")));
}
