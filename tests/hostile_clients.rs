//! Hostile and broken clients over raw sockets: slow heads (slowloris, 408), a
//! connection cap under a flood, oversized and malformed heads. Each test
//! also shows that a normal client is served meanwhile.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::*;
use raw::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// One farm over `backend`; `listener` and `proxy` are extra YAML lines for
/// the listener (indented 4) and the proxy section (indented 2).
fn config(backend: &Backend, listener: &str, proxy: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n{listener}\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         proxy:\n  connect_timeout: 1s\n{proxy}\
         farms:\n  - name: web\n    servers:\n      - {{ name: b1, address: \"{}\" }}\n",
        backend.addr
    )
}

/// A normal client gets 200 from `addr` within `within`.
async fn normal_client_served(addr: SocketAddr, within: Duration) {
    let (status, took) = timed_get(addr).await;
    assert_eq!(status, 200);
    assert!(took < within, "normal request took {took:?}");
}

#[tokio::test]
async fn slow_request_head_is_cut_at_header_timeout_but_idle_keep_alive_is_not() {
    let b = Backend::named("b1").await;
    let fg = start(&config(
        &b,
        "",
        "  header_timeout: 300ms\n  idle_timeout: 5s\n",
    ))
    .await;
    let addr = fg.first_addr();

    // A head that never completes: answered 408 at header_timeout, closed.
    let t = Instant::now();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // A connection that sends nothing at all is cut the same way.
    let mut mute = TcpStream::connect(addr).await.unwrap();
    normal_client_served(addr, Duration::from_secs(2)).await;
    let r = read_until_close(&mut slow, Duration::from_secs(5)).await;
    assert!(r.closed, "slow head not cut");
    assert!(t.elapsed() >= Duration::from_millis(250), "cut too early");
    assert_eq!(r.status(), 408, "{:?}", r.text);
    assert!(r.text.contains("Connection: close"), "{:?}", r.text);
    // The one that sent nothing is closed without a word (as HAProxy and
    // nginx do: there is no request to answer).
    let r = read_until_close(&mut mute, Duration::from_secs(5)).await;
    assert!(r.closed);
    assert_eq!(r.text, "");

    // A head trickled byte by byte is cut too, although bytes keep coming.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let mut cut = false;
    for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ".iter().cycle() {
        if trickle.write_all(&[*b]).await.is_err() || t.elapsed() > Duration::from_secs(5) {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cut && t.elapsed() < Duration::from_secs(5),
        "trickled head not cut"
    );

    // A keep-alive connection idle for longer than header_timeout (but less
    // than idle_timeout) still serves its next request.
    let mut ka = TcpStream::connect(addr).await.unwrap();
    ka.write_all(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut ka).await.0, 200);
    tokio::time::sleep(Duration::from_millis(900)).await;
    ka.write_all(b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut ka).await.0, 200);
    assert_eq!(b.hits(), 3);
}

/// Opens `n` connections that each send the start of a head and then
/// nothing more.
async fn slowloris(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-a: ").await;
        conns.push(s);
    }
    conns
}

#[tokio::test]
async fn a_thousand_slowloris_connections_do_not_stop_a_normal_client() {
    let b = Backend::named("b1").await;
    // Default header_timeout (10s): the slow connections stay for the test.
    let fg = start(&config(&b, "", "")).await;
    let addr = fg.first_addr();
    let attackers = slowloris(addr, 1000).await;
    wait_until(Duration::from_secs(10), "1000 connections open", || async {
        fg.gateway.connections.active() >= 1000
    })
    .await;
    for _ in 0..5 {
        normal_client_served(addr, Duration::from_secs(1)).await;
    }
    drop(attackers);
}

#[tokio::test]
async fn at_max_connections_idle_and_slow_connections_make_room() {
    let b = Backend::named("b1").await;
    let fg = start(&config(&b, "    max_connections: 50\n", "")).await;
    let addr = fg.first_addr();
    let conns = fg
        .gateway
        .connections
        .listener(&std::sync::Arc::from("public"));

    // Fill the listener with slow heads, then flood it with 1000 more.
    let mut attackers = slowloris(addr, 50).await;
    wait_until(Duration::from_secs(5), "50 open", || async {
        conns.open() == 50
    })
    .await;
    attackers.extend(slowloris(addr, 1000).await);
    assert!(conns.open() <= 50, "cap exceeded: {}", conns.open());

    // Honest clients still get in: the oldest slow connection makes room.
    for _ in 0..5 {
        normal_client_served(addr, Duration::from_secs(2)).await;
    }
    assert!(conns.open() <= 50);
    let evicted = conns.evicted.load(std::sync::atomic::Ordering::Relaxed);
    assert!(evicted >= 1000);
    // Operators see it in /metrics.
    let exported = common::admin::Scrape::parse(&fg.gateway.metrics.encode()).value(
        "farmgate_connections_evicted_total",
        &[("listener", "public")],
    );
    assert!(exported >= evicted as f64, "{exported} < {evicted}");

    // A request in flight is never evicted to make room.
    let slow = Backend::with_handler(
        "slow",
        std::sync::Arc::new(|_req| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                text_response(200, "slow")
            })
        }),
    )
    .await;
    drop(attackers);
    let fg2 = start(&config(&slow, "    max_connections: 2\n", "")).await;
    let addr2 = fg2.first_addr();
    let mut busy = TcpStream::connect(addr2).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let flood = slowloris(addr2, 20).await;
    assert_eq!(read_response(&mut busy).await, (200, "slow".to_string()));
    drop(flood);
}

#[tokio::test]
async fn oversized_heads_get_431_and_too_many_fields_get_431() {
    let b = Backend::named("b1").await;
    let fg = start(&config(
        &b,
        "",
        "  max_header_size: 4KiB\n  max_headers: 20\n",
    ))
    .await;
    let addr = fg.first_addr();
    let wait = Duration::from_secs(5);

    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(5000)
    );
    let r = exchange(addr, big.as_bytes(), wait).await;
    assert_eq!(r.status(), 431, "{r:?}");
    assert!(r.closed);

    // Far over the limit (past hyper's own buffer): still 431.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(600 << 10)
    );
    let r = exchange(addr, huge.as_bytes(), wait).await;
    assert_eq!(r.status(), 431, "{}", &r.text[..r.text.len().min(200)]);

    let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..30 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let r = exchange(addr, many.as_bytes(), wait).await;
    assert_eq!(r.status(), 431, "{r:?}");
    assert!(r.closed);

    // Just under both limits is fine.
    let ok = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(3000)
    );
    assert_eq!(exchange(addr, ok.as_bytes(), wait).await.status(), 200);
    assert_eq!(b.hits(), 1, "refused requests never reach the backend");
    normal_client_served(addr, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn malformed_request_lines_and_headers_get_400_and_close() {
    let b = Backend::named("b1").await;
    let fg = start(&config(&b, "", "")).await;
    let addr = fg.first_addr();
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: t\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    ] {
        let r = exchange(addr, bad, Duration::from_secs(5)).await;
        assert_eq!(
            r.status(),
            400,
            "{:?} -> {r:?}",
            String::from_utf8_lossy(bad)
        );
        assert!(r.closed, "{:?} left open", String::from_utf8_lossy(bad));
    }
    assert_eq!(b.hits(), 0);
    normal_client_served(addr, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn chunked_body_growing_past_max_request_body_gets_413() {
    let b = Backend::with_handler(
        "b1",
        std::sync::Arc::new(|req| {
            Box::pin(async move {
                use http_body_util::BodyExt;
                let n = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes().len(),
                    Err(_) => 0,
                };
                text_response(200, n.to_string())
            })
        }),
    )
    .await;
    let fg = start(&config(&b, "", "  max_request_body: 1KiB\n")).await;
    let addr = fg.first_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("200\r\n{}\r\n", "x".repeat(0x200));
    for _ in 0..4 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let r = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(r.status(), 413, "{r:?}");
    normal_client_served(addr, Duration::from_secs(2)).await;
}
