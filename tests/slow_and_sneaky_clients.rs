//! Clients that try to hold farmgate's resources or slip past it: a request
//! body that stalls (`proxy.body_timeout`), a client that stops reading its
//! response (`proxy.send_timeout`), an `Upgrade: h2c` that would tunnel past
//! farmgate's rules, and a TLS connection that negotiated h2 but does not
//! speak it. Each is cut off or refused, counted, and releases the backend.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/tls.rs"]
mod tls;

use bytes::Bytes;
use common::*;
use farmgate::metrics::listener::ClientTimeout;
use http_body_util::{BodyExt, StreamBody};
use raw::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(backend: &Backend, proxy: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         proxy:\n{proxy}\
         farms:\n  - name: web\n    servers:\n      - {{ name: b1, address: \"{}\" }}\n",
        backend.addr
    )
}

fn timeouts(fg: &farmgate::Running, which: ClientTimeout) -> u64 {
    fg.gateway
        .metrics
        .listener(&"public".into())
        .client_timeouts[which as usize]
        .load(Ordering::Relaxed)
}

fn in_flight(fg: &farmgate::Running) -> u64 {
    fg.gateway.snapshot().farms[0].servers[0].state.in_flight()
}

/// A backend that reads the whole request body and answers with its size.
async fn body_reader() -> Backend {
    Backend::with_handler(
        "b1",
        Arc::new(|req| {
            Box::pin(async move {
                match req.into_body().collect().await {
                    Ok(b) => text_response(200, b.to_bytes().len().to_string()),
                    Err(_) => text_response(400, "broken body"),
                }
            })
        }),
    )
    .await
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_at_body_timeout_but_a_slow_one_is_not() {
    let b = body_reader().await;
    let fg = start(&config(&b, "  body_timeout: 400ms\n")).await;
    let addr = fg.first_addr();

    // Slow but steady: a byte every 100 ms is within the timeout.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        slow.write_all(b"x").await.unwrap();
    }
    assert_eq!(read_response(&mut slow).await, (200, "8".to_string()));

    // Stalled: ten bytes of a hundred, then nothing.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        "the upload reaches the backend",
        || async { in_flight(&fg) == 1 },
    )
    .await;
    let t = Instant::now();
    let r = read_until_close(&mut stalled, Duration::from_secs(5)).await;
    assert!(r.closed, "stalled upload not cut");
    assert!(t.elapsed() >= Duration::from_millis(300), "cut too early");
    assert_eq!(timeouts(&fg, ClientTimeout::Body), 1);
    wait_until(
        Duration::from_secs(5),
        "the backend request released",
        || async { in_flight(&fg) == 0 },
    )
    .await;
    assert_eq!(timeouts(&fg, ClientTimeout::Send), 0);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_at_send_timeout() {
    // 64 MiB, far more than the socket buffers between us and the client.
    let b = Backend::with_handler(
        "b1",
        Arc::new(|_req| {
            Box::pin(async move {
                let chunks = (0..1024).map(|_| {
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(
                        Bytes::from(vec![b'x'; 64 << 10]),
                    ))
                });
                let body = StreamBody::new(futures_util::stream::iter(chunks));
                http::Response::new(BodyExt::boxed(body))
            })
        }),
    )
    .await;
    let fg = start(&config(&b, "  send_timeout: 400ms\n")).await;
    let mut lazy = TcpStream::connect(fg.first_addr()).await.unwrap();
    lazy.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // Read a little, then stop.
    let mut first = [0u8; 1024];
    lazy.read_exact(&mut first).await.unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    wait_until(
        Duration::from_secs(10),
        "the slow reader cut off",
        || async { timeouts(&fg, ClientTimeout::Send) == 1 },
    )
    .await;
    wait_until(
        Duration::from_secs(5),
        "the backend connection released",
        || async { in_flight(&fg) == 0 },
    )
    .await;
    // A normal client is served as ever.
    let (status, _) = timed_get(fg.first_addr()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_stalled_head_is_counted_as_a_header_timeout() {
    let b = Backend::named("b1").await;
    let fg = start(&config(&b, "  header_timeout: 300ms\n")).await;
    let r = exchange(
        fg.first_addr(),
        b"GET / HTTP/1.1\r\nHost: t\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status(), 408);
    assert!(r.closed);
    assert_eq!(timeouts(&fg, ClientTimeout::Header), 1);
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn upgrade_h2c_is_never_forwarded() {
    let b = Backend::named("b1").await;
    let fg = start(&config(&b, "  connect_timeout: 1s\n")).await;
    let r = exchange(
        fg.first_addr(),
        b"GET /smuggle HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        Duration::from_millis(1500),
    )
    .await;
    // Served as plain HTTP/1.1: a 200, never a 101.
    assert_eq!(r.statuses(), vec![200], "{:?}", r.text);
    let seen = b.last_seen();
    assert_eq!(seen.uri.path(), "/smuggle");
    for name in ["upgrade", "http2-settings", "connection"] {
        assert!(
            !seen.headers.contains_key(name),
            "backend saw {name}: {:?}",
            seen.headers
        );
    }
}

/// Reads HTTP/2 frames until the server closes; returns (type, payload).
async fn frames_until_close<S: AsyncReadExt + Unpin>(s: &mut S) -> Vec<(u8, Vec<u8>)> {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut bytes)).await;
    let mut frames = Vec::new();
    let mut i = 0;
    while i + 9 <= bytes.len() {
        let len = (usize::from(bytes[i]) << 16)
            | (usize::from(bytes[i + 1]) << 8)
            | usize::from(bytes[i + 2]);
        let end = (i + 9 + len).min(bytes.len());
        frames.push((bytes[i + 3], bytes[i + 9..end].to_vec()));
        i += 9 + len;
    }
    frames
}

#[tokio::test]
async fn an_invalid_preface_after_alpn_h2_gets_goaway_protocol_error() {
    let b = Backend::named("b1").await;
    let certs = tls::CertDir::new();
    let site = certs.issue("site", &["site.test"]);
    let yaml = format!(
        "listeners:\n{}admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: b1, address: \"{}\" }}\n",
        tls::tls_listener_yaml("secure", &[site], ""),
        b.addr
    );
    let fg = start(&yaml).await;
    for attempt in [
        &b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"[..],
        &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..],
    ] {
        let mut s = tls::connect(fg.first_addr(), "site.test", certs.client(&["h2"]))
            .await
            .unwrap();
        assert_eq!(tls::alpn(&s).as_deref(), Some("h2"));
        s.write_all(attempt).await.unwrap();
        let frames = frames_until_close(&mut s).await;
        let goaway = frames
            .iter()
            .find(|(t, _)| *t == 0x7)
            .unwrap_or_else(|| panic!("no GOAWAY for {attempt:?}: {frames:?}"));
        assert_eq!(&goaway.1[4..8], &[0, 0, 0, 1], "not PROTOCOL_ERROR");
    }
    assert_eq!(b.hits(), 0, "an ALPN-h2 connection was served as HTTP/1.1");

    // A real HTTP/2 client on the same listener is served.
    let s = tls::connect(fg.first_addr(), "site.test", certs.client(&["h2"]))
        .await
        .unwrap();
    let mut sender = tls::Sender::new(s).await;
    let (status, version, body) = sender.get("site.test", "/").await;
    assert_eq!(
        (status, version, body.as_str()),
        (200, http::Version::HTTP_2, "b1")
    );
}
