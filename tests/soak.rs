//! The soak: mixed traffic through the real binary for `SOAK_SECONDS`
//! (default 600) while backends are restarted and the config reloaded.
//! Run it with `scripts/soak.sh` (release build), never in the normal suite.
//!
//! Traffic, all at once: HTTP/1.1 keep-alive, a new connection per request,
//! HTTP/2 prior knowledge, TLS with HTTP/2 and with HTTP/1.1 (ALPN), cache
//! hits, and WebSocket sessions. Every `RESTART_EVERY` one backend is killed
//! (connections cut) and started again; every `RELOAD_EVERY` the config file
//! is rewritten and SIGHUP sent. An error is *expected* only when it comes
//! within `GRACE` of a backend kill (requests or WebSocket sessions in
//! flight on the killed backend); any other is unexpected and fails the run.
//! RSS is sampled every few seconds; the end must be within 10% of the
//! sample after warm-up.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/tls.rs"]
mod tls;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use process::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role, Message};

const RESTART_EVERY: Duration = Duration::from_secs(20);
const RELOAD_EVERY: Duration = Duration::from_secs(15);
const GRACE: Duration = Duration::from_secs(2);

/// Counters shared by the traffic tasks.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    cache_hits: AtomicU64,
    ws_messages: AtomicU64,
    expected_errors: AtomicU64,
    unexpected: Mutex<Vec<String>>,
    kills: Mutex<Vec<Instant>>,
}

impl Tally {
    fn error(&self, what: String) {
        let now = Instant::now();
        let near_kill = self
            .kills
            .lock()
            .unwrap()
            .iter()
            .any(|k| now >= *k && now - *k < GRACE);
        if near_kill {
            self.expected_errors.fetch_add(1, Ordering::Relaxed);
        } else {
            let mut u = self.unexpected.lock().unwrap();
            if u.len() < 50 {
                u.push(what);
            }
        }
    }
}

/// A backend answering `/` with its name, `/cache` cacheable for a minute,
/// and `/ws` as a WebSocket echo.
async fn soak_backend(name: &'static str) -> Backend {
    Backend::with_handler(
        name,
        Arc::new(move |mut req| {
            Box::pin(async move {
                match req.uri().path() {
                    "/cache" => {
                        let mut r = text_response(200, format!("cached by {name}"));
                        r.headers_mut().insert(
                            http::header::CACHE_CONTROL,
                            http::HeaderValue::from_static("public, max-age=60"),
                        );
                        r
                    }
                    "/ws" => {
                        let key = req
                            .headers()
                            .get("sec-websocket-key")
                            .map(|k| derive_accept_key(k.as_bytes()))
                            .unwrap_or_default();
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let Ok(up) = on.await else { return };
                            let io = hyper_util::rt::TokioIo::new(up);
                            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                                io,
                                Role::Server,
                                None,
                            )
                            .await;
                            while let Some(Ok(m)) = ws.next().await {
                                if m.is_text() && ws.send(m).await.is_err() {
                                    return;
                                }
                            }
                        });
                        let mut r = text_response(101, "");
                        let h = r.headers_mut();
                        h.insert("upgrade", http::HeaderValue::from_static("websocket"));
                        h.insert("connection", http::HeaderValue::from_static("upgrade"));
                        h.insert("sec-websocket-accept", key.parse().unwrap());
                        r
                    }
                    _ => text_response(200, name),
                }
            })
        }),
    )
    .await
}

fn config(
    plain: SocketAddr,
    tls_addr: SocketAddr,
    admin: SocketAddr,
    certs: &tls::CertDir,
    backends: &[&Backend],
    retries: u32,
) -> String {
    let (cert, key) = (
        certs.dir.join("localhost.crt"),
        certs.dir.join("localhost.key"),
    );
    let mut servers = String::new();
    for b in backends {
        servers.push_str(&format!(
            "      - {{ name: {}, address: \"{}\" }}\n",
            b.name, b.addr
        ));
    }
    format!(
        "listeners:\n  - name: plain\n    bind: \"{plain}\"\n\
         \x20 - name: tls\n    bind: \"{tls_addr}\"\n    tls:\n      certificates:\n        - {{ cert: \"{}\", key: \"{}\" }}\n\
         admin:\n  bind: \"{admin}\"\n\
         log:\n  access: off\n  level: warn\n\
         proxy:\n  retries: {retries}\n  connect_timeout: 1s\n  response_timeout: 10s\n\
         farms:\n  - name: web\n    algorithm: round_robin\n    cache: {{ enabled: true, status_header: true }}\n    servers:\n{servers}",
        cert.display(),
        key.display()
    )
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn get(c: &Client, url: &str, t: &Tally, what: &str) {
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(15), c.request(req)).await {
        Ok(Ok(resp)) => {
            let status = resp.status();
            let hit = resp.headers().get("x-cache").is_some_and(|v| v == "HIT");
            match resp.into_body().collect().await {
                Ok(_) if status == 200 => {
                    t.ok.fetch_add(1, Ordering::Relaxed);
                    if hit {
                        t.cache_hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => t.error(format!("{what} {url}: status {status}")),
                Err(e) => t.error(format!("{what} {url}: body {e}")),
            }
        }
        Ok(Err(e)) => t.error(format!("{what} {url}: {e:?}")),
        Err(_) => t.error(format!("{what} {url}: timed out")),
    }
}

/// TLS traffic: one connection per round (ALPN from `cfg`), ten requests.
async fn tls_round(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>, t: &Tally) {
    let s = match tls::connect(addr, "localhost", cfg).await {
        Ok(s) => s,
        Err(e) => return t.error(format!("tls connect: {e}")),
    };
    let h2 = tls::alpn(&s).as_deref() == Some("h2");
    let io = hyper_util::rt::TokioIo::new(s);
    let exec = hyper_util::rt::TokioExecutor::new();
    let mut sender = if h2 {
        match hyper::client::conn::http2::handshake(exec, io).await {
            Ok((send, conn)) => {
                tokio::spawn(conn);
                tls::Sender::H2(send)
            }
            Err(e) => return t.error(format!("tls h2 handshake: {e}")),
        }
    } else {
        match hyper::client::conn::http1::handshake(io).await {
            Ok((send, conn)) => {
                tokio::spawn(conn);
                tls::Sender::H1(send)
            }
            Err(e) => return t.error(format!("tls h1 handshake: {e}")),
        }
    };
    for i in 0..10 {
        let path = if i % 2 == 0 { "/" } else { "/cache" };
        let req = tls::request(&sender, "localhost", path);
        let sent = match &mut sender {
            tls::Sender::H1(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
            tls::Sender::H2(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
        };
        match sent {
            Ok(r) if r.status() == 200 => match r.into_body().collect().await {
                Ok(_) => {
                    t.ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => t.error(format!("tls (h2: {h2}) body: {e}")),
            },
            Ok(r) => t.error(format!("tls (h2: {h2}): status {}", r.status())),
            Err(e) => return t.error(format!("tls (h2: {h2}): {e}")),
        }
    }
}

async fn ws_session(addr: SocketAddr, t: &Tally) {
    let (mut ws, _) = match tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await {
        Ok(x) => x,
        Err(e) => return t.error(format!("ws connect: {e}")),
    };
    for i in 0..20 {
        let text = format!("m{i}");
        if ws.send(Message::text(text.clone())).await.is_err() {
            return t.error("ws send".into());
        }
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(m))) if m.to_text().ok() == Some(text.as_str()) => {
                t.ws_messages.fetch_add(1, Ordering::Relaxed);
            }
            other => return t.error(format!("ws echo: {other:?}")),
        }
    }
    let _ = ws.close(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the soak runs for minutes: scripts/soak.sh"]
async fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let duration = Duration::from_secs(seconds);
    let warmup = (duration / 5).min(Duration::from_secs(60));

    let certs = tls::CertDir::new();
    certs.issue("localhost", &["localhost"]);
    let mut backends = [
        soak_backend("b1").await,
        soak_backend("b2").await,
        soak_backend("b3").await,
    ];
    let (plain, tls_addr, admin) = (free_port(), free_port(), free_port());
    let refs: Vec<&Backend> = backends.iter().collect();
    let path = temp_file(
        "soak.yaml",
        &config(plain, tls_addr, admin, &certs, &refs, 2),
    );
    let proc = Proc::run(&path, plain).await;

    let tally = Arc::new(Tally::default());
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    let keep_alive = client();
    let fresh = fresh_client();
    let h2: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    for (c, what, p) in [
        (keep_alive.clone(), "keep-alive", "/"),
        (keep_alive.clone(), "keep-alive", "/cache"),
        (fresh.clone(), "new-connection", "/"),
        (h2.clone(), "h2c", "/"),
        (h2, "h2c", "/cache"),
    ] {
        let t = tally.clone();
        tasks.push(tokio::spawn(async move {
            let url = format!("http://{plain}{p}");
            while Instant::now() < end {
                get(&c, &url, &t, what).await;
            }
        }));
    }
    for alpn in [&["h2", "http/1.1"][..], &["http/1.1"][..]] {
        let t = tally.clone();
        let cfg = certs.client(alpn);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                tls_round(tls_addr, cfg.clone(), &t).await;
            }
        }));
    }
    {
        let t = tally.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                ws_session(plain, &t).await;
            }
        }));
    }

    // Chaos and RSS samples in this task.
    let started = Instant::now();
    let (mut next_restart, mut next_reload) = (started + RESTART_EVERY, started + RELOAD_EVERY);
    let (mut restarts, mut reloads, mut victim, mut retries) = (0, 0, 0usize, 2);
    let mut rss_warm = None;
    let mut samples = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep(
            Duration::from_secs(5).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        let now = Instant::now();
        let rss = proc.status_kib("VmRSS");
        samples.push(rss);
        if rss_warm.is_none() && now - started >= warmup {
            rss_warm = Some(rss);
        }
        if now >= next_restart && now + GRACE < end {
            tally.kills.lock().unwrap().push(Instant::now());
            backends[victim].restart().await;
            victim = (victim + 1) % backends.len();
            restarts += 1;
            next_restart += RESTART_EVERY;
        }
        if now >= next_reload {
            retries = if retries == 2 { 3 } else { 2 };
            let refs: Vec<&Backend> = backends.iter().collect();
            std::fs::write(
                &path,
                config(plain, tls_addr, admin, &certs, &refs, retries),
            )
            .unwrap();
            proc.signal("HUP");
            reloads += 1;
            next_reload += RELOAD_EVERY;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rss_end = proc.status_kib("VmRSS");
    let rss_warm = rss_warm.unwrap_or(samples[0]);
    let growth = (rss_end as f64 - rss_warm as f64) / rss_warm as f64 * 100.0;
    let unexpected = tally.unexpected.lock().unwrap().clone();
    println!(
        "soak {seconds}s: {} ok, {} cache hits, {} ws messages, {restarts} backend restarts, {reloads} reloads, \
         {} expected errors (within {GRACE:?} of a kill), {} unexpected; RSS after warm-up {rss_warm} KiB, \
         at end {rss_end} KiB ({growth:+.1}%), peak {} KiB",
        tally.ok.load(Ordering::Relaxed),
        tally.cache_hits.load(Ordering::Relaxed),
        tally.ws_messages.load(Ordering::Relaxed),
        tally.expected_errors.load(Ordering::Relaxed),
        unexpected.len(),
        samples.iter().max().copied().unwrap_or(0),
    );
    assert!(
        unexpected.is_empty(),
        "unexpected errors:\n{}",
        unexpected.join("\n")
    );
    assert!(
        tally.cache_hits.load(Ordering::Relaxed) > 0,
        "no cache hits"
    );
    assert!(
        tally.ws_messages.load(Ordering::Relaxed) > 0,
        "no WebSocket traffic"
    );
    assert!(growth <= 10.0, "RSS grew {growth:+.1}% after warm-up");
}
