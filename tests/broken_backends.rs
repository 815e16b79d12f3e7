//! Broken backends, written as raw TCP servers: closing mid-response,
//! garbage and invalid status lines, silence, headers trickled forever, a
//! huge header block, and ambiguous response framing. Nothing hangs, the
//! client gets a clean end or the right status, the failure is counted
//! against the server, and no backend can smuggle a response to a client.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;

use raw::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `proxy` is extra proxy YAML; the response timeout is 600ms unless it
/// sets one.
fn config(backend: &RawBackend, proxy: &str) -> String {
    let proxy = if proxy.contains("response_timeout") {
        proxy.to_string()
    } else {
        format!("  response_timeout: 600ms\n{proxy}")
    };
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         proxy:\n  retries: 0\n{proxy}\
         farms:\n  - name: web\n    servers:\n      - {{ name: raw, address: \"{}\" }}\n",
        backend.addr
    )
}

fn failures(fg: &farmgate::Running) -> u64 {
    fg.gateway
        .registry
        .get_or_create(&farmgate::farm::ServerKey {
            farm: "web".into(),
            server: "raw".into(),
        })
        .failures
        .load(Ordering::Relaxed)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[tokio::test]
async fn backend_closing_mid_body_ends_the_client_connection_and_counts() {
    for (what, reply) in [
        (
            "content-length",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf"[..],
        ),
        (
            "chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n",
        ),
    ] {
        let backend = RawBackend::start(Script::Reply(reply.to_vec())).await;
        let fg = common::start(&config(&backend, "")).await;
        let t = Instant::now();
        let r = exchange(fg.first_addr(), GET, Duration::from_secs(10)).await;
        assert!(r.closed, "{what}: client connection left hanging: {r:?}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: took {:?}",
            t.elapsed()
        );
        assert_eq!(r.status(), 200, "{what}: {r:?}");
        assert!(r.text.contains("half"), "{what}: {r:?}");
        // The client can tell the body is incomplete: no chunked terminator.
        assert!(!r.text.ends_with("0\r\n\r\n"), "{what}: {r:?}");
        common::wait_until(Duration::from_secs(5), "failure counted", || async {
            failures(&fg) == 1
        })
        .await;
    }
}

#[tokio::test]
async fn backend_closing_mid_body_resets_the_http2_stream() {
    let backend = RawBackend::start(Script::Reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf".to_vec(),
    ))
    .await;
    let fg = common::start(&config(&backend, "")).await;
    let addr = fg.first_addr();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut send = send.ready().await.unwrap();
    let req = http::Request::get(format!("http://{addr}/"))
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(5), body.data()).await {
            Err(_) => panic!("the HTTP/2 stream hangs"),
            Ok(Some(Ok(d))) => got.extend_from_slice(&d),
            Ok(Some(Err(e))) => break e,
            Ok(None) => panic!("the stream ended as if complete"),
        }
    };
    assert!(err.is_reset(), "{err:?}");
    assert_eq!(got, b"half");
    // The connection itself still works.
    let send = send.ready().await.unwrap();
    assert!(send.current_max_send_streams() > 0);
}

#[tokio::test]
async fn garbage_or_invalid_status_lines_are_502() {
    for reply in [
        &b"HELLO WORLD\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/3.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
        b"",
    ] {
        let backend = RawBackend::start(Script::Reply(reply.to_vec())).await;
        let fg = common::start(&config(&backend, "")).await;
        let r = exchange(
            fg.first_addr(),
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            r.status(),
            502,
            "{:?} -> {r:?}",
            String::from_utf8_lossy(reply)
        );
        assert!(
            failures(&fg) >= 1,
            "{:?} not counted",
            String::from_utf8_lossy(reply)
        );
    }
}

#[tokio::test]
async fn silent_backend_is_504_at_response_timeout() {
    let backend = RawBackend::start(Script::Silent).await;
    let fg = common::start(&config(&backend, "")).await;
    let t = Instant::now();
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(GET).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 504);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(failures(&fg), 1);
}

#[tokio::test]
async fn headers_trickled_forever_are_cut_at_response_timeout() {
    let backend = RawBackend::start(Script::Trickle {
        first: b"HTTP/1.1 200 OK\r\n".to_vec(),
        chunk: b"X-Slow: a\r\n".to_vec(),
        every: Duration::from_millis(20),
    })
    .await;
    let fg = common::start(&config(&backend, "")).await;
    let t = Instant::now();
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(GET).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 504);
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(failures(&fg), 1);
}

#[tokio::test]
async fn huge_response_header_block_is_502() {
    let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..20_000 {
        reply.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    reply.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let backend = RawBackend::start(Script::ReplyAndHang(reply)).await;
    let fg = common::start(&config(&backend, "  response_timeout: 5s\n")).await;
    let t = Instant::now();
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(GET).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 502);
    assert!(t.elapsed() < Duration::from_secs(4));
    assert_eq!(failures(&fg), 1);
}

#[tokio::test]
async fn a_backend_cannot_smuggle_a_response_to_the_client() {
    // Content-Length and Transfer-Encoding together: chunked wins (RFC 9112
    // §6.3) and the client gets one re-framed response.
    let backend = RawBackend::start(Script::Reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec(),
    ))
    .await;
    let fg = common::start(&config(&backend, "")).await;
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let r = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(r.statuses(), vec![200], "{r:?}");
    let lower = r.text.to_ascii_lowercase();
    assert!(!lower.contains("content-length: 3"), "{r:?}");
    assert!(
        lower.contains("transfer-encoding: chunked\r\n")
            && lower.ends_with("5\r\nhello\r\n0\r\n\r\n"),
        "{r:?}"
    );

    // A backend that sends a second, unrequested response after the first:
    // the client gets only the answer to what it asked, and its next
    // request on the same connection gets a real answer, never the extra.
    let backend = RawBackend::start(Script::ReplyAndHang(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle"
            .to_vec(),
    ))
    .await;
    let fg = common::start(&config(&backend, "")).await;
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(GET).await.unwrap();
    assert_eq!(read_response(&mut s).await, (200, "ok".to_string()));
    s.write_all(GET).await.unwrap();
    let (status, body) = read_response(&mut s).await;
    assert_ne!(body, "smuggle");
    assert_eq!((status, body.as_str()), (200, "ok"), "second answer");
}
