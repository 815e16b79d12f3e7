//! HTTP/2 end to end over TLS (ALPN h2): streams of one connection are
//! multiplexed, flow control carries bodies far larger than the windows
//! both ways, and trailers from an HTTP/1.1 backend reach the h2 client.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/tls.rs"]
mod tls;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::Duration;
use tls::*;

fn config(tls_listener: &str, backend: &Backend) -> String {
    format!(
        "listeners:\n{tls_listener}admin:\n  enabled: false\nlog:\n  access: off\n\
         proxy:\n  max_request_body: 64MiB\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: b, address: \"{}\" }}\n",
        backend.addr
    )
}

/// farmgate with one TLS listener over `backend`, and an h2 connection to
/// it whose windows are `window` bytes (small windows force flow control).
async fn h2_connection(
    backend: &Backend,
    certs: &CertDir,
    window: u32,
) -> (
    farmgate::Running,
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
) {
    let site = certs.issue("site", &["site.test"]);
    let fg = start(&config(&tls_listener_yaml("secure", &[site], ""), backend)).await;
    let s = connect(fg.first_addr(), "site.test", certs.client(&["h2"]))
        .await
        .unwrap();
    assert_eq!(alpn(&s).as_deref(), Some("h2"));
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    (fg, send)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("https://site.test{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn streams_of_one_connection_are_multiplexed() {
    // Every request waits at the backend until all of them have arrived:
    // only streams served concurrently can ever complete.
    const STREAMS: usize = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(STREAMS));
    let backend = Backend::with_handler(
        "b",
        Arc::new(move |req| {
            let barrier = barrier.clone();
            Box::pin(async move {
                let path = req.uri().path().to_string();
                match tokio::time::timeout(Duration::from_secs(20), barrier.wait()).await {
                    Ok(_) => text_response(200, path),
                    Err(_) => text_response(500, "streams were not concurrent"),
                }
            })
        }),
    )
    .await;
    let certs = CertDir::new();
    let (_fg, send) = h2_connection(&backend, &certs, 65_535).await;
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            send.ready().await.unwrap();
            let resp = send.send_request(get(&format!("/s{i}"))).await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status, body), (200, format!("/s{i}")));
    }
    assert_eq!(backend.hits(), STREAMS);
}

#[tokio::test]
async fn flow_control_carries_bodies_larger_than_the_windows_both_ways() {
    // The backend echoes the request body.
    let backend = Backend::with_handler(
        "b",
        Arc::new(|req| {
            Box::pin(async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                text_response(200, body)
            })
        }),
    )
    .await;
    let certs = CertDir::new();
    let (_fg, mut send) = h2_connection(&backend, &certs, 65_535).await;
    let payload: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let req = Request::post("https://site.test/echo")
        .body(Full::new(Bytes::from(payload.clone())))
        .unwrap();
    send.ready().await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(60), async {
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap().to_bytes()
    })
    .await
    .expect("8 MiB each way through 64 KiB windows");
    assert_eq!(resp.len(), payload.len());
    assert!(resp[..] == payload[..], "the echoed body differs");
}

#[tokio::test]
async fn trailers_from_the_backend_reach_the_h2_client() {
    let backend = Backend::with_handler(
        "b",
        Arc::new(|_req| {
            Box::pin(async move {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("x-checksum", "abc123".parse().unwrap());
                let frames: Vec<
                    Result<http_body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
                > = vec![
                    Ok(http_body::Frame::data(Bytes::from_static(b"part one, "))),
                    Ok(http_body::Frame::data(Bytes::from_static(b"part two"))),
                    Ok(http_body::Frame::trailers(trailers)),
                ];
                let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
                let mut r = Response::new(body);
                r.headers_mut()
                    .insert("trailer", "x-checksum".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let certs = CertDir::new();
    let (_fg, mut send) = h2_connection(&backend, &certs, 65_535).await;
    let mut req = get("/with-trailers");
    req.headers_mut().insert("te", "trailers".parse().unwrap());
    send.ready().await.unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reach the client");
    assert_eq!(trailers["x-checksum"], "abc123");
    assert_eq!(&collected.to_bytes()[..], b"part one, part two");
}
