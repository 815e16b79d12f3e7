//! The shared end-to-end harness: real backends and a real farmgate on
//! 127.0.0.1 ephemeral ports, a small HTTP client, and deadline polling.
#![allow(dead_code, clippy::unwrap_used)]

pub mod admin;

use bytes::Bytes;
use farmgate::config;
use farmgate::farm::StateRegistry;
use farmgate::Running;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>
        + Send
        + Sync,
>;

pub fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into()).map_err(|e| match e {}).boxed()
}

pub fn text_response(status: u16, body: impl Into<Bytes>) -> Response<TestBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

/// A real HTTP server on 127.0.0.1 that can be stopped (port closed, open
/// connections cut) and started again on the same port.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Request heads seen, newest last.
    pub seen: Arc<Mutex<Vec<http::request::Parts>>>,
    handler: Handler,
    kill: Option<watch::Sender<bool>>,
}

impl Backend {
    /// A backend that answers 200 with its own name as the body.
    pub async fn named(name: &str) -> Backend {
        let n = name.to_string();
        Backend::with_handler(
            name,
            Arc::new(move |_req| {
                let n = n.clone();
                Box::pin(async move {
                    let mut r = text_response(200, n.clone());
                    r.headers_mut()
                        .insert("x-served-by", http::HeaderValue::from_str(&n).unwrap());
                    r
                })
            }),
        )
        .await
    }

    pub async fn with_handler(name: &str, handler: Handler) -> Backend {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        Backend::with_handler_at(name, any, handler)
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// A backend on `addr` (another loopback address such as 127.0.0.2,
    /// a given port); `Err` when it cannot be bound.
    pub async fn with_handler_at(
        name: &str,
        addr: SocketAddr,
        handler: Handler,
    ) -> std::io::Result<Backend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr().unwrap();
        let mut b = Backend {
            name: name.to_string(),
            addr,
            hits: Arc::new(AtomicUsize::new(0)),
            seen: Arc::new(Mutex::new(Vec::new())),
            handler,
            kill: None,
        };
        b.serve(listener);
        Ok(b)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (kill, killed) = watch::channel(false);
        self.kill = Some(kill);
        let handler = self.handler.clone();
        let hits = self.hits.clone();
        let seen = self.seen.clone();
        tokio::spawn(async move {
            let mut killed_accept = killed.clone();
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                    _ = killed_accept.wait_for(|k| *k) => return,
                };
                let handler = handler.clone();
                let hits = hits.clone();
                let seen = seen.clone();
                let mut killed_conn = killed.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let (parts, body) = req.into_parts();
                        seen.lock().unwrap().push(clone_parts(&parts));
                        let fut = handler(Request::from_parts(parts, body));
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = async { let _ = killed_conn.wait_for(|k| *k).await; } => {}
                    }
                });
            }
        });
    }

    /// Closes the port and cuts every open connection, like a killed process.
    pub fn stop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(true);
        }
    }

    /// Starts again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn last_seen(&self) -> http::request::Parts {
        clone_parts(self.seen.lock().unwrap().last().expect("no request seen"))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn clone_parts(p: &http::request::Parts) -> http::request::Parts {
    let mut r = Request::new(());
    *r.method_mut() = p.method.clone();
    *r.uri_mut() = p.uri.clone();
    *r.version_mut() = p.version;
    *r.headers_mut() = p.headers.clone();
    r.into_parts().0
}

/// A port on 127.0.0.1 that nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// Starts farmgate from YAML text (listeners should bind port 0).
pub async fn start(yaml: &str) -> Running {
    start_with_registry(yaml, Arc::new(StateRegistry::default())).await
}

pub async fn start_with_registry(yaml: &str, registry: Arc<StateRegistry>) -> Running {
    let snapshot = config::load_str(yaml, "test.yaml", &registry)
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{yaml}"));
    Running::start(snapshot, registry).await.unwrap()
}

/// Starts farmgate from a config file, watching it (and the files it
/// reads) for changes as `farmgate run` does.
pub async fn start_from_file(path: &std::path::Path) -> Running {
    let registry = Arc::new(StateRegistry::default());
    let snap = config::load_file(path, &registry).unwrap();
    Running::start_watching(snap, registry, path.to_path_buf())
        .await
        .unwrap()
}

/// A config with one port-0 listener, no admin, access log off, and one
/// farm `web` over `backends`; `extra_farm` is appended to the farm mapping
/// (indented four spaces) and `extra_top` to the document.
pub fn farm_config(
    algorithm: &str,
    backends: &[&Backend],
    extra_farm: &str,
    extra_top: &str,
) -> String {
    let mut servers = String::new();
    for b in backends {
        servers.push_str(&format!(
            "      - {{ name: {}, address: \"{}\" }}\n",
            b.name, b.addr
        ));
    }
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         farms:\n  - name: web\n    algorithm: {algorithm}\n    servers:\n{servers}{extra_farm}{extra_top}"
    )
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A client that opens a new connection per request.
pub fn fresh_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

/// GETs `url`; returns status, headers and the body as text.
pub async fn get(c: &TestClient, url: &str) -> (StatusCode, http::HeaderMap, String) {
    send(c, Request::get(url).body(Full::new(Bytes::new())).unwrap()).await
}

pub async fn send(
    c: &TestClient,
    req: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, String) {
    let resp = tokio::time::timeout(Duration::from_secs(30), c.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The response-cache counters of the first farm (which has a cache).
pub fn cache_stats(fg: &Running) -> Arc<farmgate::cache::CacheStats> {
    let snap = fg.gateway.snapshot();
    let cache = snap.farms[0].cache.as_ref().expect("the farm has a cache");
    cache.store.stats.clone()
}

/// A fresh directory under the system temp dir, unique per process and call.
pub fn fresh_temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A WebSocket echo server on 127.0.0.1:0 (text and binary messages).
pub async fn ws_echo_server() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The lines of a log file once it has at least `n` (waits up to 5 s).
pub async fn log_lines(file: &std::path::Path, n: usize) -> Vec<String> {
    wait_until(
        Duration::from_secs(5),
        &format!("{n} log lines"),
        || async { std::fs::read_to_string(file).is_ok_and(|t| t.lines().count() >= n) },
    )
    .await;
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}
