//! Pooled backend connections are retired before the backend closes them:
//! before the `Keep-Alive: timeout=N` a backend announces (less a margin)
//! and after the farm's `backend_idle_timeout`. A backend closing an idle
//! connection while a request is being written on it is a race a request
//! that may have been processed cannot win; retiring first avoids it.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A keep-alive backend counting its connections; answers with
/// `Keep-Alive: <keep_alive>` when given.
async fn counting_backend(keep_alive: Option<&'static str>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| async move {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"ok")));
                    if let Some(v) = keep_alive {
                        r.headers_mut().insert("keep-alive", v.parse().unwrap());
                    }
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

fn config(backend: SocketAddr, farm_extra: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: b, address: \"{backend}\" }}\n{farm_extra}"
    )
}

#[tokio::test]
async fn a_connection_is_retired_before_the_announced_keep_alive_timeout() {
    // timeout=2: retired after 1 s idle (2 s less the 1 s margin).
    let (addr, conns) = counting_backend(Some("timeout=2, max=100")).await;
    let fg = start(&config(addr, "    backend_idle_timeout: 60s\n")).await;
    let url = format!("http://{}/", fg.first_addr());
    let c = client();
    assert_eq!(get(&c, &url).await.0, 200);
    // Soon after: the same connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(&c, &url).await.0, 200);
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    // Idle 1.3 s: past our retirement, before the backend's 2 s.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(get(&c, &url).await.0, 200);
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "the old connection was reused"
    );
}

#[tokio::test]
async fn a_connection_is_retired_after_backend_idle_timeout() {
    let (addr, conns) = counting_backend(None).await;
    let fg = start(&config(addr, "    backend_idle_timeout: 300ms\n")).await;
    let url = format!("http://{}/", fg.first_addr());
    let c = client();
    assert_eq!(get(&c, &url).await.0, 200);
    assert_eq!(get(&c, &url).await.0, 200);
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(&c, &url).await.0, 200);
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "the idle connection was reused"
    );
}
