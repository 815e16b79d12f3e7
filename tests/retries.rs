//! Retries of requests whose connection broke before any response byte:
//! a reset on a fresh connection and on a reused pooled one.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw HTTP/1.1 server that answers the first `serve` requests of each
/// connection with `first` and then resets the connection (RST, no
/// response byte). Returns its address and its connection count.
async fn resetter(serve: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(conn(s, serve));
        }
    });
    (addr, conns)
}

async fn conn(mut s: TcpStream, serve: usize) {
    for _ in 0..serve {
        if !read_head(&mut s).await {
            return;
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
            .await;
    }
    if read_head(&mut s).await {
        let _ = s.set_zero_linger();
        drop(s); // RST
    }
}

/// Reads one request head (these tests send no bodies to it).
async fn read_head(s: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    true
}

fn config(resetter: SocketAddr, good: &Backend) -> String {
    format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    algorithm: round_robin\n    servers:\n\
         \x20     - {{ name: resetter, address: \"{resetter}\" }}\n\
         \x20     - {{ name: good, address: \"{}\" }}\n",
        good.addr
    )
}

#[tokio::test]
async fn a_reset_before_the_response_is_retried_for_idempotent_requests() {
    let (addr, conns) = resetter(0).await;
    let good = Backend::named("good").await;
    let fg = start(&config(addr, &good)).await;
    let http = client();
    let url = format!("http://{}/", fg.first_addr());
    // Round robin tries the resetter first: it resets, the GET goes to good.
    let (status, _, body) = get(&http, &url).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
    assert_eq!(conns.load(Ordering::SeqCst), 1, "the resetter was tried");
    for method in ["PUT", "DELETE"] {
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(send(&http, req).await.0, StatusCode::OK, "{method}");
    }

    // A POST is not retried: whoever gets it on the resetter sees a 502.
    let mut codes = Vec::new();
    for _ in 0..4 {
        let req = Request::post(&url)
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap();
        codes.push(send(&http, req).await.0);
    }
    assert!(codes.contains(&StatusCode::BAD_GATEWAY), "{codes:?}");
}

#[tokio::test]
async fn a_reset_on_a_reused_pooled_connection_is_retried() {
    // The resetter serves one request per connection, then resets the next
    // one that arrives on the same (pooled) connection.
    let (addr, conns) = resetter(1).await;
    let good = Backend::named("good").await;
    let fg = start(&config(addr, &good)).await;
    let http = client();
    let url = format!("http://{}/", fg.first_addr());
    assert_eq!(get(&http, &url).await.2, "first"); // resetter, new connection
    assert_eq!(get(&http, &url).await.2, "good");
    // The resetter again, on the pooled connection: reset, retried on good.
    let (status, _, body) = get(&http, &url).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "the pooled connection was reused"
    );
}
