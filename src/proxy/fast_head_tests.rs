//! The fused writer against the way it replaces (`forward::prepare`, then
//! the prepared head written): every combination of the fields preparing
//! touches, every forwarding mode, trusted or not, `preserve_host` on and
//! off, with and without a client certificate, must give the same fields.

use super::*;
use crate::farm::state::{ServerKey, ServerState};
use crate::proxy::forward::prepare;
use crate::proxy::headers::ClientSide;
use http::HeaderValue;
use std::sync::Arc;

fn server() -> Server {
    Server {
        name: "s1".into(),
        address: "10.0.0.7:8080".into(),
        scheme: http::uri::Scheme::HTTP,
        authority: "10.0.0.7:8080".parse().expect("authority"),
        weight: 1,
        host_header: HeaderValue::from_static("10.0.0.7:8080"),
        state: Arc::new(ServerState::new(ServerKey {
            farm: "f".into(),
            server: "s1".into(),
        })),
        dns: None,
    }
}

/// The fields a test head may carry (each either absent or present).
const OPTIONAL: &[(&str, &str)] = &[
    ("host", "www.example"),
    ("x-forwarded-for", "198.51.100.1"),
    ("x-forwarded-for", "198.51.100.2, 198.51.100.3"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "origin.example"),
    ("te", "trailers"),
    ("te", "gzip"),
    ("transfer-encoding", "chunked"),
    ("content-length", "5"),
    ("connection", "keep-alive"),
    ("keep-alive", "timeout=5"),
    ("proxy-connection", "close"),
    ("upgrade", "websocket"),
    ("x-arr-clientcert", "Zm9yZ2Vk"),
    ("close", "a field named close"),
    ("connection", "close"),
];

/// The head as a request line and its fields, each name's values in
/// their order, the names sorted.
fn fields(head: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let mut fields: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap_or((l, ""));
            (n.to_string(), v.to_string())
        })
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    (first, fields)
}

#[test]
fn writes_the_fields_prepare_would() {
    let server = server();
    let ip = HeaderValue::from_static("192.0.2.9");
    let cert = HeaderValue::from_static("TUlJQw==");
    let mut compared = 0;
    let modes = [
        ForwardedFor::Append,
        ForwardedFor::Replace,
        ForwardedFor::Off,
    ];
    // Every subset of up to three fields, and a few thousand larger ones.
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let small = (0u32..(1 << OPTIONAL.len())).filter(|s| s.count_ones() <= 3);
    let large = (0..3_000).map(|_| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng as u32) & ((1 << OPTIONAL.len()) - 1)
    });
    for set in small.chain(large) {
        for absolute in [false, true] {
            let target = if absolute {
                "http://auth.example:81/p?q=1"
            } else {
                "/p?q=1"
            };
            let mut req = http::Request::builder().method("GET").uri(target);
            for (i, (n, v)) in OPTIONAL.iter().enumerate() {
                if set & (1 << i) != 0 {
                    req = req.header(*n, *v);
                }
            }
            let (parts, ()) = req.body(()).expect("request").into_parts();
            if !handles(&parts) {
                continue;
            }
            for mode in modes {
                for preserve in [false, true] {
                    for trusted in [false, true] {
                        for with_cert in [false, true] {
                            let spec = ProxySpec::for_tests(mode, preserve);
                            let client = ClientSide {
                                ip: &ip,
                                trusted,
                                proto: "http",
                                cert: with_cert.then_some(&cert),
                            };
                            let mut prepared = parts_clone(&parts);
                            prepare(&mut prepared, &spec, &client);
                            let mut want = Vec::new();
                            write_prepared(&mut want, &prepared, &server, preserve, None);
                            let mut got = Vec::new();
                            write_unprepared(&mut got, &parts, &server, &spec, &client, None);
                            assert_eq!(
                                fields(&got),
                                fields(&want),
                                "set {set:#x} absolute {absolute} {mode:?} preserve {preserve} trusted {trusted} cert {with_cert}"
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(compared > 50_000, "{compared}");
}

#[test]
fn connection_naming_other_fields_goes_through_prepare() {
    let req = |conn: &str| {
        let (parts, ()) = http::Request::builder()
            .uri("/")
            .header("connection", conn)
            .body(())
            .expect("request")
            .into_parts();
        handles(&parts)
    };
    assert!(req("keep-alive"));
    assert!(req("Close"));
    assert!(!req("close, x-secret"));
    assert!(!req("upgrade"));
}

fn parts_clone(p: &http::request::Parts) -> http::request::Parts {
    let mut req = http::Request::builder()
        .method(p.method.clone())
        .uri(p.uri.clone())
        .version(p.version)
        .body(())
        .expect("request");
    *req.headers_mut() = p.headers.clone();
    req.into_parts().0
}
