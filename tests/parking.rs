//! Parking of idle HTTP/1 keep-alive connections: after a second without a
//! request, a client connection gives up hyper's state and buffers and
//! keeps only its socket; the next request, however it arrives, is served
//! on the same connection, and every timeout and shutdown still applies.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::admin::*;
use common::*;
use farmgate::Running;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n";

async fn parked(fg: &Running) -> f64 {
    scrape(&client(), fg)
        .await
        .value("farmgate_connections_parked", &[("listener", "public")])
}

async fn wait_parked(fg: &Running, n: f64) {
    wait_until(Duration::from_secs(10), &format!("{n} parked"), || async {
        parked(fg).await == n
    })
    .await;
}

async fn start_farm(extra_top: &str) -> (Backend, Running) {
    let b = Backend::named("b1").await;
    let cfg = with_admin(&farm_config("round_robin", &[&b], "", extra_top), None);
    let fg = start(&cfg).await;
    (b, fg)
}

#[tokio::test]
async fn an_idle_connection_parks_and_serves_its_next_requests() {
    let (b, fg) = start_farm("").await;
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(GET).await.unwrap();
    assert_eq!(raw::read_response(&mut s).await, (200, "b1".into()));
    wait_parked(&fg, 1.0).await;

    // The next head arrives in two parts: the connection resumes at the
    // first byte and the header timeout covers the rest as usual.
    s.write_all(b"GET /b HTTP/1.1\r\nHo").await.unwrap();
    tokio::task::yield_now().await;
    s.write_all(b"st: t\r\n\r\n").await.unwrap();
    assert_eq!(raw::read_response(&mut s).await, (200, "b1".into()));
    assert_eq!(b.last_seen().uri.path(), "/b");
    wait_parked(&fg, 1.0).await;

    // Two pipelined requests in one write after parking: both answered.
    s.write_all(b"GET /c HTTP/1.1\r\nHost: t\r\n\r\nGET /d HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw::read_response(&mut s).await.0, 200);
    assert_eq!(raw::read_response(&mut s).await.0, 200);
    assert_eq!(b.last_seen().uri.path(), "/d");

    // A request body sent after parking reaches the backend whole.
    s.write_all(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(raw::read_response(&mut s).await.0, 200);
    assert_eq!(b.hits(), 5);
    wait_parked(&fg, 1.0).await;

    // The client closes a parked connection: it is gone, not leaked.
    drop(s);
    wait_parked(&fg, 0.0).await;
    wait_until(Duration::from_secs(5), "connection closed", || async {
        scrape(&client(), &fg)
            .await
            .value("farmgate_connections_active", &[("listener", "public")])
            == 0.0
    })
    .await;
}

#[tokio::test]
async fn a_parked_connection_still_closes_at_the_idle_timeout() {
    let (_b, fg) = start_farm("proxy:\n  idle_timeout: 2s\n").await;
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(GET).await.unwrap();
    assert_eq!(raw::read_response(&mut s).await.0, 200);
    wait_parked(&fg, 1.0).await;
    // Closed at 2 s idle: the client reads end of stream.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("closed at the idle timeout")
        .unwrap();
    assert_eq!(
        n,
        0,
        "nothing more is sent: {:?}",
        String::from_utf8_lossy(&rest)
    );
    wait_parked(&fg, 0.0).await;
}

#[tokio::test]
async fn shutdown_closes_parked_connections_at_once() {
    let (_b, fg) = start_farm("").await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
        s.write_all(GET).await.unwrap();
        assert_eq!(raw::read_response(&mut s).await.0, 200);
        conns.push(s);
    }
    wait_parked(&fg, 3.0).await;
    let left = tokio::time::timeout(
        Duration::from_secs(10),
        fg.shutdown(Duration::from_secs(30)),
    )
    .await
    .expect("shutdown does not wait for parked connections");
    assert_eq!(left, 0);
    for s in &mut conns {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "closed, nothing sent");
    }
}

#[tokio::test]
async fn http2_connections_do_not_park() {
    // HTTP/2 (prior knowledge) multiplexes; its connection is never closed
    // behind the client's back to save memory. An HTTP/1 connection idle
    // for as long serves as the clock: once it has parked, the HTTP/2 one
    // would have too.
    let (_b, fg) = start_farm("").await;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let url = format!("http://{}/", fg.first_addr());
    let (status, _, _) = get(&h2, &url).await;
    assert_eq!(status, 200);
    let mut witness = TcpStream::connect(fg.first_addr()).await.unwrap();
    witness.write_all(GET).await.unwrap();
    assert_eq!(raw::read_response(&mut witness).await.0, 200);
    wait_parked(&fg, 1.0).await;
    assert_eq!(parked(&fg).await, 1.0, "only the HTTP/1 connection parked");
    let (status, _, _) = get(&h2, &url).await;
    assert_eq!(status, 200);
}
