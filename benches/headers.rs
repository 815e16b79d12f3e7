//! The header rewriting every forwarded request pays: hop-by-hop removal
//! and X-Forwarded-* on a realistic browser request head, plus the copy of
//! a head that a retryable request keeps for another attempt; and what a
//! request pays with `trace:` on (ids drawn, a `traceparent` read and
//! written into the fast forward's head buffer).

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use farmgate::config::snapshot::{ForwardedFor, ProxySpec};
use farmgate::proxy::headers::{apply_forwarded, strip_hop_by_hop, ClientSide};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// What a browser sends for a page (Chrome, HTTP/1.1, keep-alive).
const BROWSER_HEAD: &[(&str, &str)] = &[
    ("host", "shop.example.com"),
    ("connection", "keep-alive"),
    ("cache-control", "max-age=0"),
    (
        "sec-ch-ua",
        "\"Chromium\";v=\"130\", \"Not?A_Brand\";v=\"99\"",
    ),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    ("upgrade-insecure-requests", "1"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/130.0.0.0 Safari/537.36",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ),
    ("sec-fetch-site", "same-origin"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
    ("referer", "https://shop.example.com/cart"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-GB,en;q=0.9"),
    (
        "cookie",
        "session=3f9a7c1e5b2d4a6f8e0c; farmgate_web=web2; theme=dark",
    ),
];

fn head(extra: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in BROWSER_HEAD.iter().chain(extra) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            m.append(k, v);
        }
    }
    m
}

fn spec(mode: ForwardedFor) -> ProxySpec {
    ProxySpec {
        client_cert_header: http::HeaderName::from_static("x-arr-clientcert"),
        forwarded_for: mode,
        trusted_proxies: vec![],
        preserve_host: true,
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(90),
        retries: 1,
        max_request_body: 1 << 20,
        limits: Default::default(),
    }
}

fn rewrite(c: &mut Criterion) {
    let ip = HeaderValue::from_static("198.51.100.23");
    let client = ClientSide {
        cert: None,
        ip: &ip,
        trusted: false,
        proto: "https",
    };
    let host = HeaderValue::from_static("shop.example.com");
    let cases = [
        ("browser head", head(&[]), ForwardedFor::Append),
        (
            "browser head behind a CDN (XFF appended)",
            head(&[("x-forwarded-for", "203.0.113.7, 192.0.2.10")]),
            ForwardedFor::Append,
        ),
        (
            "browser head, Connection naming a header",
            head(&[("connection", "x-trace"), ("x-trace", "1")]),
            ForwardedFor::Replace,
        ),
    ];
    for (name, base, mode) in cases {
        let spec = spec(mode);
        c.bench_function(
            &format!("strip_hop_by_hop + apply_forwarded: {name}"),
            |b| {
                b.iter_batched_ref(
                    || base.clone(),
                    |h| {
                        strip_hop_by_hop(h);
                        apply_forwarded(h, &spec, &client, Some(&host));
                        black_box(h.len())
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    let base = head(&[]);
    c.bench_function("copy of a browser head (kept for a retry)", |b| {
        b.iter(|| black_box(base.clone()))
    });
}

fn trace(c: &mut Criterion) {
    use farmgate::ground::trace_context::TraceContext;
    let raw: farmgate::trace::RawTrace =
        yaml_serde::from_str("trusted_sources: [10.0.0.0/8]").expect("yaml");
    let mut p = farmgate::ground::error::Problems::default();
    let spec = farmgate::trace::spec::build(&raw, &mut p);
    c.bench_function("trace: new trace and span ids", |b| {
        b.iter(|| black_box(TraceContext::start(true)))
    });
    let cases = [
        ("new trace (no traceparent)", head(&[]), "192.0.2.1"),
        (
            "continued (trusted traceparent)",
            head(&[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )]),
            "10.1.2.3",
        ),
    ];
    for (name, base, peer) in cases {
        let peer: std::net::IpAddr = peer.parse().expect("ip");
        c.bench_function(&format!("trace: begin, browser head, {name}"), |b| {
            b.iter_batched_ref(
                || base.clone(),
                |h| black_box(spec.begin(peer, h)),
                BatchSize::SmallInput,
            )
        });
    }
    let ctx = TraceContext::start(true);
    let mut up = Vec::with_capacity(1024);
    c.bench_function("trace: traceparent into the head buffer", |b| {
        b.iter(|| {
            up.clear();
            up.extend_from_slice(b"traceparent: ");
            up.extend_from_slice(&black_box(&ctx).traceparent());
            up.extend_from_slice(b"\r\n");
            black_box(up.len())
        })
    });
}

criterion_group!(benches, rewrite, trace);
criterion_main!(benches);
