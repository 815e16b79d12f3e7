//! HTTP/2 to backends (`farms[].protocol`) with real hyper servers: h2c by
//! prior knowledge, h2 over TLS by ALPN, one multiplexed connection that
//! grows to more when the server's stream limit is reached, trailers to
//! clients, and a GOAWAY that loses no request (not even a POST).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/tls.rs"]
mod tls;

use bytes::Bytes;
use common::*;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tls::*;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

fn h2_farm(backends: &[&Backend]) -> String {
    farm_config("least_requests", backends, "    protocol: http2\n", "")
}

fn h2c_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

#[tokio::test]
async fn h2c_backend_gets_http2_and_one_connection_carries_concurrent_requests() {
    let a = Backend::named("a").await;
    let fg = start(&h2_farm(&[&a])).await;
    let url = format!("http://{}/x?y=1", fg.first_addr());
    let c = client();
    let (status, _, body) = get(&c, &url).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "a"));
    let calls: Vec<_> = (0..20).map(|_| get(&c, &url)).collect();
    for (status, _, body) in futures_util::future::join_all(calls).await {
        assert_eq!((status.as_u16(), body.as_str()), (200, "a"));
    }
    let seen = a.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 21);
    for parts in &seen {
        assert_eq!(parts.version, Version::HTTP_2);
        assert_eq!(parts.uri.path_and_query().unwrap().as_str(), "/x?y=1");
        assert!(parts.headers.contains_key("x-forwarded-for"));
    }
    // The authority the client asked for, as `:authority`.
    assert_eq!(
        seen[0].uri.authority().unwrap().as_str(),
        fg.first_addr().to_string()
    );
    let snap = fg.gateway.snapshot();
    assert_eq!(
        snap.farms[0].pools[0].h2.len(),
        1,
        "one multiplexed connection"
    );
    assert_eq!(
        snap.farms[0].pools[0].idle_count(),
        0,
        "no HTTP/1.1 connection"
    );
}

/// An h2c server allowing `max_streams` streams per connection whose
/// requests wait for a permit of `gate`; counts connections and requests
/// in flight.
struct H2cServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

async fn h2c_server(max_streams: u32, gate: Option<Arc<Semaphore>>) -> H2cServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = H2cServer {
        addr: listener.local_addr().unwrap(),
        connections: Arc::new(AtomicUsize::new(0)),
        in_flight: Arc::new(AtomicUsize::new(0)),
        served: Arc::new(AtomicUsize::new(0)),
    };
    let (connections, in_flight, served) = (
        server.connections.clone(),
        server.in_flight.clone(),
        server.served.clone(),
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let (gate, in_flight, served) = (gate.clone(), in_flight.clone(), served.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                let (gate, in_flight, served) = (gate.clone(), in_flight.clone(), served.clone());
                async move {
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    if let Some(g) = gate {
                        g.acquire().await.unwrap().forget();
                    }
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    served.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(Full::new(body)))
                }
            });
            tokio::spawn(async move {
                let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                b.max_concurrent_streams(max_streams);
                let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    server
}

fn server_config(addr: SocketAddr, extra_top: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\n{extra_top}\
         farms:\n  - name: web\n    protocol: http2\n    servers:\n      - {{ name: s, address: \"{addr}\" }}\n"
    )
}

#[tokio::test]
async fn a_full_connection_makes_another() {
    let gate = Arc::new(Semaphore::new(0));
    let server = h2c_server(2, Some(gate.clone())).await;
    let fg = start(&server_config(server.addr, "")).await;
    let url = format!("http://{}/", fg.first_addr());
    // One call first: the server's SETTINGS (2 streams) are known after it.
    gate.add_permits(1);
    let c = client();
    assert_eq!(get(&c, &url).await.0, 200);
    let snap = fg.gateway.snapshot();
    wait_until(Duration::from_secs(5), "the server's SETTINGS read", || {
        let limits = snap.farms[0].pools[0].h2.stream_limits();
        async move { limits == [2] }
    })
    .await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            async move { get(&c, &url).await }
        })
        .collect();
    let calls = tokio::spawn(futures_util::future::join_all(calls));
    let in_flight = server.in_flight.clone();
    wait_until(Duration::from_secs(10), "6 requests at the server", || {
        let n = in_flight.load(Ordering::SeqCst);
        async move { n == 6 }
    })
    .await;
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);
    gate.add_permits(6);
    for (status, _, _) in calls.await.unwrap() {
        assert_eq!(status, 200);
    }
    // Kept warm for the next calls.
    assert_eq!(fg.gateway.snapshot().farms[0].pools[0].h2.len(), 3);
}

/// An h2c server (the `h2` crate's, which keeps serving every stream it
/// accepted after its GOAWAY) that shuts each connection down gracefully
/// after `goaway_after` requests and echoes request bodies. Counts
/// connections and requests served.
async fn goaway_server(goaway_after: usize) -> H2cServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = H2cServer {
        addr: listener.local_addr().unwrap(),
        connections: Arc::new(AtomicUsize::new(0)),
        in_flight: Arc::new(AtomicUsize::new(0)),
        served: Arc::new(AtomicUsize::new(0)),
    };
    let (connections, served) = (server.connections.clone(), server.served.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let served = served.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(Lingering(Some(tcp))).await else {
                    return;
                };
                let mut taken = 0;
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    taken += 1;
                    if taken == goaway_after {
                        conn.graceful_shutdown();
                    }
                    let served = served.clone();
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        let mut got = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            got.extend_from_slice(&chunk);
                        }
                        served.fetch_add(1, Ordering::SeqCst);
                        if let Ok(mut send) = respond.send_response(Response::new(()), false) {
                            let _ = send.send_data(Bytes::from(got), true);
                        }
                    });
                }
                // Accepting ended with the GOAWAY: streams in progress
                // still need the connection driven.
                let _ = futures_util::future::poll_fn(|cx| conn.poll_closed(cx)).await;
            });
        }
    });
    server
}

/// A server socket that, when dropped, reads what the client still sends
/// before closing: closing with unread bytes would reset the connection and
/// destroy responses the client has not read yet (as real servers know).
struct Lingering(Option<tokio::net::TcpStream>);

impl Drop for Lingering {
    fn drop(&mut self) {
        if let Some(mut s) = self.0.take() {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.shutdown().await;
                let mut sink = [0u8; 4096];
                let drain = async { while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {} };
                let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
            });
        }
    }
}

impl tokio::io::AsyncRead for Lingering {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.0.as_mut().unwrap()).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Lingering {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(self.0.as_mut().unwrap()).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.0.as_mut().unwrap()).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // Shut down on drop, after draining.
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn goaway_loses_no_request_whatever_its_method() {
    // Every connection says GOAWAY after its 3rd request: the requests
    // that meet the closing connection are retried on a new one.
    let server = goaway_server(3).await;
    let fg = start(&server_config(server.addr, "proxy:\n  retries: 0\n")).await;
    let url = format!("http://{}/post", fg.first_addr());
    let c = client();
    let calls = (0..60).map(|i| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let req = Request::post(url)
                .body(Full::new(Bytes::from(format!("body {i}"))))
                .unwrap();
            let (status, _, body) = send(&c, req).await;
            (status.as_u16(), body, i)
        }
    });
    for (status, body, i) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "request {i}: {body}");
        assert_eq!(body, format!("body {i}"));
    }
    assert!(
        server.connections.load(Ordering::SeqCst) >= 2,
        "GOAWAYs were sent"
    );
    assert_eq!(
        server.served.load(Ordering::SeqCst),
        60,
        "each processed once"
    );
}

#[tokio::test]
async fn trailers_reach_http2_clients() {
    let b =
        Backend::with_handler(
            "t",
            Arc::new(|_req| {
                Box::pin(async move {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    trailers.insert("x-checksum", "abc".parse().unwrap());
                    let frames: Vec<
                        Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
                    > = vec![
                        Ok(Frame::data(Bytes::from_static(b"payload"))),
                        Ok(Frame::trailers(trailers)),
                    ];
                    let body = StreamBody::new(futures_util::stream::iter(frames));
                    Response::new(BodyExt::boxed(body))
                })
            }),
        )
        .await;
    let fg = start(&h2_farm(&[&b])).await;
    let resp = h2c_client()
        .request(
            Request::get(format!("http://{}/", fg.first_addr()))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers relayed");
    assert_eq!(trailers["x-checksum"], "abc");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "payload");
}

#[tokio::test]
async fn https_backends_get_h2_by_alpn() {
    let certs = CertDir::new();
    let (cert, key) = certs.issue("backend", &["127.0.0.1"]);
    for (protocol, alpn) in [("http2", "h2"), ("auto", "h2"), ("http1", "http/1.1")] {
        let (addr, seen) = tls_backend("b1", &cert, &key).await;
        let fg = start(&format!(
            "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
             admin:\n  enabled: false\nlog:\n  access: off\n\
             farms:\n  - name: web\n    protocol: {protocol}\n    servers:\n      - {{ name: s, address: \"https://{addr}\" }}\n\
             \x20   tls:\n      ca: \"{}\"\n",
            certs.ca_path().display()
        ))
        .await;
        let c = client();
        for _ in 0..3 {
            let (status, _, body) = get(&c, &format!("http://{}/", fg.first_addr())).await;
            assert_eq!(status, 200, "{protocol}: {body}");
            assert_eq!(body, "secure b1 (x-forwarded-proto http)");
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{protocol}: one connection reused");
        assert_eq!(seen[0].alpn.as_deref(), Some(alpn), "{protocol}");
    }
}

#[tokio::test]
async fn auto_keeps_http11_for_an_https_server_without_h2() {
    let certs = CertDir::new();
    let (cert, key) = certs.issue("backend", &["127.0.0.1"]);
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let v = format!("{:?}", req.version());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(v))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let fg = start(&format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    protocol: auto\n    servers:\n      - {{ name: s, address: \"https://{addr}\" }}\n\
         \x20   tls:\n      ca: \"{}\"\n",
        certs.ca_path().display()
    ))
    .await;
    let c = client();
    for _ in 0..3 {
        let (status, _, body) = get(&c, &format!("http://{}/", fg.first_addr())).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "HTTP/1.1"));
    }
    // The ALPN answer is remembered: the probing connection serves on,
    // pooled as HTTP/1.1.
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert!(fg.gateway.snapshot().farms[0].pools[0].h2.speaks_http1());
}
