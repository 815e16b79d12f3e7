//! Nothing lost when a backend dies. Three real backend processes (Python,
//! `tests/common/backend.py`) behind farmgate under steady keep-alive load;
//! one is SIGKILLed mid-load. Only the requests in flight at the killed
//! server (sent, their connection broken before a response) may fail, each
//! as a clean 502, and only those that may have been processed: a GET is
//! retried elsewhere, so GET loses nothing. Every
//! request after the kill reaches a live server: a request that never got
//! out (connection refused) goes to another server whatever its method, and
//! the dead server leaves rotation at its first refused connect.
//!
//! Also, in-process: an unsent POST goes elsewhere, the refused server is
//! out at once with the reason, and the `min_servers` floor still holds.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use farmgate::metrics::FailureReason;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A backend process; killed (SIGKILL) when dropped.
struct BackendProc {
    child: Child,
    addr: SocketAddr,
}

impl BackendProc {
    fn start(name: &str) -> BackendProc {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/backend.py");
        let mut child = Command::new("python3")
            .args([script, name, "10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 ({e}): install the Debian package `python3`")
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("backend.py printed {line:?} instead of its port"));
        BackendProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for BackendProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The outcome of one request: a status, or the client saw no response.
type Outcome = Result<StatusCode, String>;

/// `workers` clients loop `method` requests (64-byte bodies for POST)
/// over keep-alive connections until `stop`; returns every outcome.
async fn load(url: String, method: Method, workers: usize, stop: Arc<AtomicBool>) -> Vec<Outcome> {
    let c = client();
    let out = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (c, url, method, stop, out) = (
                c.clone(),
                url.clone(),
                method.clone(),
                stop.clone(),
                out.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let body = if method == Method::POST {
                        Bytes::from_static(&[b'p'; 64])
                    } else {
                        Bytes::new()
                    };
                    let req = Request::builder()
                        .method(method.clone())
                        .uri(&url)
                        .body(Full::new(body))
                        .unwrap();
                    let r =
                        match tokio::time::timeout(Duration::from_secs(10), c.request(req)).await {
                            Ok(Ok(resp)) => {
                                let status = resp.status();
                                match resp.into_body().collect().await {
                                    Ok(_) => Ok(status),
                                    Err(e) => Err(format!("body: {e}")),
                                }
                            }
                            Ok(Err(e)) => Err(format!("request: {e}")),
                            Err(_) => Err("timed out".into()),
                        };
                    out.lock().unwrap().push(r);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let v = std::mem::take(&mut *out.lock().unwrap());
    v
}

/// What one kill under load came to.
struct Run {
    outcomes: Vec<Outcome>,
    /// Requests in flight at the server when it was killed (sampled just
    /// before and just after the signal; the larger).
    in_flight: u64,
    /// Requests sent to the killed server whose connection broke before a
    /// response: those in flight at the kill, and those written to a pooled
    /// connection in the instant before farmgate saw it close. Refused
    /// connects (nothing sent) are not among them.
    broken: u64,
}

/// Three backend processes, load with `method`, SIGKILL one mid-load.
async fn kill_one_under_load(method: Method) -> Run {
    let mut procs: Vec<BackendProc> = ["a", "b", "c"]
        .iter()
        .map(|n| BackendProc::start(n))
        .collect();
    let mut servers = String::new();
    for (p, n) in procs.iter().zip(["a", "b", "c"]) {
        servers.push_str(&format!(
            "      - {{ name: {n}, address: \"{}\" }}\n",
            p.addr
        ));
    }
    let fg = start(&format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    algorithm: round_robin\n    servers:\n{servers}\
         \x20   health_check:\n      url: /health\n      interval: 1s\n"
    ))
    .await;
    let url = format!("http://{}/work", fg.first_addr());
    // Every backend answers before the load starts.
    for _ in 0..6 {
        assert_eq!(get(&client(), &url).await.0, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn(load(url, method, 32, stop.clone()));
    let killed = fg.gateway.snapshot().farms[0].servers[1].state.clone();
    wait_until(
        Duration::from_secs(10),
        "load on the server to kill",
        || async { killed.requests.load(Ordering::Relaxed) > 100 },
    )
    .await;
    let before = killed.in_flight();
    procs[1].kill();
    let after = killed.in_flight();
    let in_flight = before.max(after);
    // Out at its first refused connect, long before the next probe.
    wait_until(
        Duration::from_millis(500),
        "the dead server out of rotation",
        || async { !killed.in_rotation() },
    )
    .await;
    let sent = killed.requests.load(Ordering::Relaxed);
    let others = || {
        let s = fg.gateway.snapshot();
        s.farms[0].servers[0].state.requests.load(Ordering::Relaxed)
            + s.farms[0].servers[2].state.requests.load(Ordering::Relaxed)
    };
    let base = others();
    wait_until(
        Duration::from_secs(20),
        "load on the live servers",
        || async { others() > base + 300 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = run.await.unwrap();
    assert!(!killed.in_rotation(), "the killed server came back");
    let late = killed.requests.load(Ordering::Relaxed) - sent;
    assert_eq!(
        late, 0,
        "requests were sent to the dead server after it left"
    );
    let broken = killed.stats.failures(FailureReason::Reset);
    Run {
        outcomes,
        in_flight,
        broken,
    }
}

fn tally(outcomes: &[Outcome]) -> (usize, usize, Vec<&Outcome>) {
    let ok = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(s) if *s == 200))
        .count();
    let bad_gateway = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(s) if *s == 502))
        .count();
    let other = outcomes
        .iter()
        .filter(|o| !matches!(o, Ok(s) if *s == 200 || *s == 502))
        .collect();
    (ok, bad_gateway, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_loses_only_posts_in_flight_and_no_gets() {
    let run = kill_one_under_load(Method::POST).await;
    let (ok, failed, other) = tally(&run.outcomes);
    eprintln!(
        "POST: {ok} ok, {failed} x 502; at the killed server {} in flight, {} broken",
        run.in_flight, run.broken
    );
    assert!(other.is_empty(), "not a clean 200 or 502: {other:?}");
    assert!(
        failed as u64 <= run.broken,
        "{failed} POSTs failed but only {} broke at the killed server",
        run.broken
    );
    assert!(ok > 300);

    let run = kill_one_under_load(Method::GET).await;
    let (ok, failed, other) = tally(&run.outcomes);
    eprintln!(
        "GET: {ok} ok, {failed} x 502; at the killed server {} in flight, {} broken",
        run.in_flight, run.broken
    );
    assert!(other.is_empty(), "not a clean 200: {other:?}");
    assert_eq!(failed, 0, "a GET is retried on another server");
}

#[tokio::test]
async fn an_unsent_post_goes_to_another_server_and_the_refusing_one_is_out_at_once() {
    let live = Backend::with_handler(
        "live",
        Arc::new(|req| {
            Box::pin(async move {
                let n = req.into_body().collect().await.unwrap().to_bytes().len();
                text_response(200, format!("live {n}"))
            })
        }),
    )
    .await;
    let dead = closed_port().await;
    let yaml = format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\nproxy:\n  retries: 0\n\
         farms:\n  - name: web\n    algorithm: round_robin\n    servers:\n\
         \x20     - {{ name: dead, address: \"{dead}\" }}\n\
         \x20     - {{ name: live, address: \"{}\" }}\n\
         \x20   health_check:\n      url: /\n      interval: 1h\n",
        live.addr
    );
    let fg = start(&yaml).await;
    let c = client();
    for i in 0..6 {
        let req = Request::post(format!("http://{}/form", fg.first_addr()))
            .body(Full::new(Bytes::from(vec![b'x'; 100 + i])))
            .unwrap();
        let (status, _, body) = send(&c, req).await;
        assert_eq!(status, 200, "POST {i}");
        assert_eq!(body, format!("live {}", 100 + i), "the body arrived whole");
    }
    let snap = fg.gateway.snapshot();
    let state = &snap.farms[0].servers[0].state;
    assert!(!state.in_rotation());
    assert!(state.requests.load(Ordering::Relaxed) <= 1);
    let view = snap.farms[0].health.server(0).health_view();
    assert_eq!(view.reason_code, Some("refused"));
}

#[tokio::test]
async fn a_refused_connect_does_not_take_the_farm_below_min_servers() {
    let live = Backend::named("live").await;
    let dead = closed_port().await;
    let yaml = format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    algorithm: round_robin\n    min_servers: 2\n    servers:\n\
         \x20     - {{ name: dead, address: \"{dead}\" }}\n\
         \x20     - {{ name: live, address: \"{}\" }}\n\
         \x20   live_traffic: {{}}\n",
        live.addr
    );
    let fg = start(&yaml).await;
    let c = client();
    for _ in 0..4 {
        let req = Request::put(format!("http://{}/x", fg.first_addr()))
            .body(Full::new(Bytes::from_static(b"data")))
            .unwrap();
        assert_eq!(send(&c, req).await.0, 200);
    }
    let snap = fg.gateway.snapshot();
    let state = &snap.farms[0].servers[0].state;
    assert!(!state.is_healthy(), "refused: out of the healthy set");
    assert!(snap.farms[0].health.floor_active());
    assert!(state.in_rotation(), "the floor holds it in rotation");
}
