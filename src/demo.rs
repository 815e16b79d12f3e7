//! `farmgate demo`: three small backends in-process and a proxy in front of
//! them, from the embedded `config/demo.yaml`, so a newcomer sees a working
//! farm with one command. The demo backends are also used by examples.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The demo config, as shipped in config/demo.yaml.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.yaml");

/// Where the demo backends listen (must match config/demo.yaml).
pub const DEMO_BACKENDS: [(&str, &str); 3] = [
    ("demo-1", "127.0.0.1:9101"),
    ("demo-2", "127.0.0.1:9102"),
    ("demo-3", "127.0.0.1:9103"),
];

/// The demo's Early Hints server, apart from the others: hyper's server
/// cannot send a `103`.
pub const DEMO_HINTS_BACKEND: (&str, &str) = ("demo-hints", "127.0.0.1:9104");

/// Starts one demo backend named `name` on `listener`. It answers:
/// `/health` with `OK`, `/slow?ms=N` after N ms (default 2000), `/page` with
/// 4 KiB of text (for compression), `/static/...`
/// with a line that may be cached for 60 s (`Cache-Control: public,
/// max-age=60`), and every other path with a line naming itself, the path
/// and X-Forwarded-For (no cache headers: never cached).
pub fn spawn_backend(name: &str, listener: TcpListener) -> tokio::task::JoinHandle<()> {
    let name: Arc<str> = name.into();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let name = name.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let name = name.clone();
                    async move { Ok::<_, Infallible>(answer(&name, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

async fn answer(name: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let mut cacheable = false;
    let body = match path {
        "/health" => "OK\n".to_string(),
        // A few KiB of text: enough for the demo's compression (min_size 1KiB).
        "/page" => {
            let line = format!("{name}: a line of a page long enough to be worth compressing.\n");
            line.repeat(64)
        }
        p if p.starts_with("/static/") => {
            cacheable = true;
            format!("{name} served {p}; farmgate may keep it for 60 s\n")
        }
        "/slow" => {
            let ms = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(2000u64)
                .min(60_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            format!("{name}: slow answer after {ms} ms\n")
        }
        _ => {
            let xff = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            format!("Hello from {name}: you asked for {path} (X-Forwarded-For: {xff})\n")
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if cacheable {
        resp.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("public, max-age=60"),
        );
        // For farmgate alone (RFC 9213): fresh 10 s, then served stale for 30 s
        // while one background request refreshes it.
        resp.headers_mut().insert(
            "cdn-cache-control",
            http::HeaderValue::from_static("max-age=10, stale-while-revalidate=30"),
        );
    }
    if let Ok(v) = http::HeaderValue::from_str(name) {
        resp.headers_mut().insert("x-served-by", v);
    }
    resp
}

/// Binds and starts the demo backends: the three web servers and the
/// Early Hints one.
pub async fn start_backends() -> std::io::Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for (name, addr) in DEMO_BACKENDS {
        let l = bind(name, addr).await?;
        addrs.push(l.local_addr()?);
        spawn_backend(name, l);
    }
    let (name, addr) = DEMO_HINTS_BACKEND;
    let l = bind(name, addr).await?;
    addrs.push(l.local_addr()?);
    spawn_hints_backend(l);
    Ok(addrs)
}

async fn bind(name: &str, addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("demo backend {name} cannot listen on {addr}: {e}"),
        )
    })
}

/// The interim response `spawn_hints_backend` sends first.
pub const DEMO_HINTS: &str = "HTTP/1.1 103 Early Hints\r\n\
Link: </static/style.css>; rel=preload; as=style\r\n\r\n";

/// Starts the Early Hints backend on `listener`, a few lines of raw
/// HTTP/1.1: every request on a connection gets [`DEMO_HINTS`] at once,
/// then, 100 ms later (the page being built), a small HTML page using the
/// style sheet. Requests with a body are answered and the connection closed.
pub fn spawn_hints_backend(listener: TcpListener) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PAGE: &str = "<!doctype html><link rel=stylesheet href=/static/style.css>\
<p>demo-hints: the style sheet was named in a 103 Early Hints 100 ms before this page.</p>\n";
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut chunk).await {
                            Ok(n) if n > 0 && buf.len() < 64 << 10 => {
                                buf.extend_from_slice(&chunk[..n])
                            }
                            _ => return,
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    buf.drain(..end);
                    let close = head.contains("\r\ncontent-length:")
                        || head.contains("\r\ntransfer-encoding:");
                    if s.write_all(DEMO_HINTS.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let body = if head.starts_with("head ") { "" } else { PAGE };
                    let page = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                         x-served-by: demo-hints\r\n{}\r\n{body}",
                        PAGE.len(),
                        if close { "connection: close\r\n" } else { "" },
                    );
                    if s.write_all(page.as_bytes()).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    })
}

/// The demo config names its certificates relative to the repository root
/// (`certs-dev/...`). Run from elsewhere, the copies in the source tree the
/// binary was built from are used when they exist.
pub fn resolve_demo_path(path: &std::path::Path) -> std::path::PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    let in_tree = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if in_tree.exists() {
        in_tree
    } else {
        path.to_path_buf()
    }
}

/// What to try, printed when the demo starts.
pub fn banner(proxy: SocketAddr, tls: Option<SocketAddr>, admin: Option<SocketAddr>) -> String {
    let mut s = format!(
        "\nfarmgate demo is running: a farm of three backends behind http://{proxy}\n\n\
         Try:\n  \
         curl http://{proxy}/                 # round robin: demo-1, demo-2, demo-3, ...\n  \
         for i in 1 2 3 4 5 6; do curl -s http://{proxy}/; done\n  \
         for i in 1 2 3; do curl -s -c /tmp/fg.jar -b /tmp/fg.jar http://{proxy}/; done   # cookie affinity: one server\n  \
         curl http://{proxy}/slow?ms=500      # a slow request, streamed back\n  \
         curl --compressed -i http://{proxy}/page   # 4 KiB of text, compressed (br, zstd or gzip as curl asks)\n  \
         curl -i http://{proxy}/static/logo.png   # cacheable: X-Cache MISS, then HIT from the same server for 60 s\n  \
         curl -i http://{proxy}/hints         # 103 Early Hints (Link: preload) at once, the page 100 ms later\n  \
         for i in 1 2 3 4; do curl -s -o /dev/null -w '%{{http_code}} ' http://{proxy}/login; done   # rate limit: 200 200 200 429\n  \
         curl -i http://{proxy}/login         # the 429: Retry-After, RateLimit-Policy, RateLimit\n  \
         curl -H 'X-Forwarded-For: 203.0.113.7' http://{proxy}/   # X-Forwarded-For is appended\n  \
         curl -si -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' http://{proxy}/ | grep -i x-trace-id   # trace continued\n  \
         curl http://{proxy}/v1/users/7       # rule api-v1: demo-1 sees /users/7\n  \
         curl http://{proxy}/current/users/7  # follows the latest API: demo-2 or demo-3\n  \
         curl http://{proxy}/by-name/hello    # farm by-name: server localhost:9103, a member per address it resolves to\n  \
         curl -i http://{proxy}/old-users     # rewrite map Moved: 301 to /v2/users\n  \
         curl -i http://{proxy}/%61dmin       # maintenance rule: 503, encodings do not dodge it\n  \
         curl http://{proxy}/index.php        # scanner rule: connection closed, no answer\n"
    );
    if let Some(t) = tls {
        let port = t.port();
        let ca = resolve_demo_path(std::path::Path::new("certs-dev/ca.crt"));
        let ca = ca.display();
        s.push_str(&format!(
            "  curl --cacert {ca} https://localhost:{port}/           # TLS, HTTP/2 by ALPN\n  \
             curl --cacert {ca} --http1.1 https://localhost:{port}/   # TLS, HTTP/1.1\n"
        ));
    }
    if let Some(a) = admin {
        s.push_str(&format!(
            "\nWatch and steer the farm on the admin listener:\n  \
             open http://{a}/                    # the status page: states, req/s, errors, drain/enable buttons\n  \
             curl http://{a}/metrics             # Prometheus metrics\n  \
             curl http://{a}/api/status          # the farm as JSON\n  \
             curl 'http://{a}/api/history?farm=web&seconds=60'   # the last minute, a sample a second (the page's charts)\n  \
             curl -X POST http://{a}/api/farms/web/servers/demo-2/drain    # no new requests for demo-2: watch the page\n  \
             curl -X POST http://{a}/api/farms/web/servers/demo-2/enable   # back in rotation\n  \
             curl -X POST http://{a}/api/farms/web/servers/demo-3/verify   # run its health check now\n  \
             curl http://{a}/healthz             # 200 while serving, 503 once shutting down\n"
        ));
    }
    s.push_str(
        "\nSeveral instances as one tier (shared drains, TLS resumption, cache and rate limits, through Redis):\n  \
         examples/cluster/run.sh              # redis-server, these backends and three instances (docs/cluster.md)\n",
    );
    s.push_str("\nThe config is config/demo.yaml. Press Ctrl-C to stop.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_points_at_the_status_page_and_metrics() {
        let b = banner(
            "127.0.0.1:8080".parse().expect("addr"),
            None,
            Some("127.0.0.1:9090".parse().expect("addr")),
        );
        assert!(b.contains("open http://127.0.0.1:9090/ "));
        assert!(b.contains("curl http://127.0.0.1:9090/metrics"));
        assert!(b.contains("/api/farms/web/servers/demo-2/drain"));
        assert!(!banner("127.0.0.1:8080".parse().expect("addr"), None, None).contains("9090"));
    }
}
