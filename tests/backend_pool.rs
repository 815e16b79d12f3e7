//! The backend connection pool, seen from a backend that counts its
//! connections: sequential requests reuse one keep-alive connection, a
//! response the client abandoned mid-body never puts its connection back,
//! and a connection the backend closed while idle is never handed out.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A keep-alive HTTP/1.1 backend counting the connections it accepted.
/// `/big` streams 64 MiB slowly enough that a client can leave mid-body;
/// `/close` answers with `Connection: close`.
async fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let resp: Response<Body> = match req.uri().path() {
                        "/big" => {
                            let chunks = futures_util::stream::iter(
                                (0..1024)
                                    .map(|_| Ok(Frame::data(Bytes::from(vec![b'x'; 64 << 10])))),
                            );
                            Response::new(StreamBody::new(chunks).boxed())
                        }
                        "/close" => Response::builder()
                            .header("connection", "close")
                            .body(Full::new(Bytes::from_static(b"bye")).boxed())
                            .unwrap(),
                        _ => Response::new(Full::new(Bytes::from_static(b"ok")).boxed()),
                    };
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

fn config(addr: SocketAddr) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: b1, address: \"{addr}\" }}\n"
    )
}

#[tokio::test]
async fn sequential_requests_share_one_backend_connection() {
    let (addr, conns) = counting_backend().await;
    let fg = start(&config(addr)).await;
    let url = format!("http://{}/", fg.first_addr());
    for _ in 0..20 {
        let (status, _, body) = get(&fresh_client(), &url).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "ok"));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1, "one pooled connection");

    // The backend ends the connection with its answer: the pool does not
    // hand the closed connection out; the next request opens a new one.
    let (status, _, body) = get(
        &fresh_client(),
        &format!("http://{}/close", fg.first_addr()),
    )
    .await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "bye"));
    let (status, _, _) = get(&fresh_client(), &url).await;
    assert_eq!(status, 200);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_abandoned_response_does_not_return_its_connection() {
    let (addr, conns) = counting_backend().await;
    let fg = start(&config(addr)).await;
    let c = fresh_client();
    let resp = c
        .request(
            Request::get(format!("http://{}/big", fg.first_addr()))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    // Part of the body, then the client goes away.
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .unwrap();
    assert!(first.is_some());
    drop(body);
    drop(c);

    // The next request must not land on the half-read connection: it gets
    // a fresh one and a clean answer.
    let (status, _, text) = get(&fresh_client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!((status.as_u16(), text.as_str()), (200, "ok"));
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}
