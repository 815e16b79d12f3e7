//! Binary upgrade on the real binary: a new process takes the listening
//! sockets over and the old one finishes what it holds, so nothing is lost:
//! keep-alive load (HTTP/1.1 and HTTP/2) across ten upgrades, idle
//! keep-alive connections, a request in flight, a WebSocket, admin state;
//! and a broken upgrade leaves the old process serving.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;
use common::*;
use futures_util::{SinkExt, StreamExt};
use process::{bin, free_port, temp_file, Proc};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A farmgate started from `program`, followed across upgrades by its pid
/// file; every process it ever had is killed when dropped.
struct Upgradable {
    first: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
    pid_file: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pids: Mutex<BTreeSet<u32>>,
}

impl Upgradable {
    async fn start(program: &str, farms: &str) -> Upgradable {
        let (addr, admin) = (free_port(), free_port());
        let dir = fresh_temp_dir("farmgate-upgrade");
        let pid_file = dir.join("farmgate.pid");
        // One serving thread: a retiring process that spins starves its own
        // connections then (its wait for tunnels once did) instead of
        // hiding it behind a second thread.
        let cfg = format!(
            "listeners:\n  - name: public\n    bind: \"{addr}\"\n\
             admin:\n  bind: \"{admin}\"\n\
             runtime:\n  pid_file: \"{}\"\n  shutdown_timeout: 5s\n  worker_threads: 1\n\
             proxy:\n  idle_timeout: 5s\n\
             log:\n  access: off\n{farms}",
            pid_file.display()
        );
        let config = temp_file("farmgate.yaml", &cfg);
        // Every generation writes to the same log: shown when a test fails.
        let log = std::fs::File::create(dir.join("farmgate.log")).unwrap();
        let child = std::process::Command::new(program)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let first = Proc::wait_listening(child, addr).await;
        let pids = Mutex::new(BTreeSet::from([first.pid()]));
        Upgradable {
            first,
            addr,
            admin,
            pid_file,
            config,
            log: dir.join("farmgate.log"),
            pids,
        }
    }

    fn pid(&self) -> u32 {
        std::fs::read_to_string(&self.pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// `POST /api/upgrade`: status and body.
    async fn upgrade_via_admin(&self) -> (u16, serde_json::Value) {
        let (status, _, body) = send(
            &client(),
            http::Request::post(format!("http://{}/api/upgrade", self.admin))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
        (status.as_u16(), serde_json::from_str(&body).unwrap())
    }

    /// Upgrades through the admin API; returns the new pid.
    async fn upgrade(&self) -> u32 {
        let old = self.pid();
        let (status, body) = self.upgrade_via_admin().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["old_pid"], old);
        let new = body["new_pid"].as_u64().unwrap() as u32;
        self.pids.lock().unwrap().insert(new);
        assert_eq!(self.pid(), new, "the new process wrote the pid file");
        new
    }

    /// Upgrades with `farmgate upgrade --pid-file` (SIGUSR2); the new pid.
    fn upgrade_by_signal(&self) -> u32 {
        let old = self.pid();
        let out = std::process::Command::new(bin())
            .args(["upgrade", "--pid-file"])
            .arg(&self.pid_file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let new = self.pid();
        assert_ne!(new, old);
        assert!(text.contains(&format!("pid {old} -> {new}")), "{text}");
        self.pids.lock().unwrap().insert(new);
        new
    }
}

impl Drop for Upgradable {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- farmgate's log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        for pid in self.pids.lock().unwrap().iter() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn two_servers(a: &Backend, b: &Backend) -> String {
    format!(
        "farms:\n  - name: web\n    servers:\n      - {{ name: a, address: \"{}\" }}\n      - {{ name: b, address: \"{}\" }}\n",
        a.addr, b.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_upgrades_under_keep_alive_load_lose_nothing() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let fg = Upgradable::start(bin(), &two_servers(&a, &b)).await;
    let url = format!("http://{}/", fg.addr);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let goaway_retries = Arc::new(AtomicU64::new(0));
    let h1 = client();
    let h2: TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let mut load = Vec::new();
    for i in 0..40 {
        let c = if i < 32 { h1.clone() } else { h2.clone() };
        let (url, stop, ok, failed, errors, goaway_retries) = (
            url.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            errors.clone(),
            goaway_retries.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                let mut sent =
                    tokio::time::timeout(Duration::from_secs(10), c.request(req.clone())).await;
                if matches!(&sent, Ok(Err(e)) if refused_by_goaway(e)) {
                    // Never processed (beyond the GOAWAY's last stream): an
                    // HTTP/2 client sends it again (RFC 9113 §6.8).
                    goaway_retries.fetch_add(1, Ordering::Relaxed);
                    sent = tokio::time::timeout(Duration::from_secs(10), c.request(req)).await;
                }
                match sent {
                    Ok(Ok(resp)) if resp.status() == 200 => {
                        use http_body_util::BodyExt;
                        match resp.into_body().collect().await {
                            Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                errors.lock().unwrap().push(format!("body: {e}"));
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    other => {
                        errors.lock().unwrap().push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Ten upgrades over ~30 s, half through the admin API, half by signal.
    let started = Instant::now();
    let mut olds = Vec::new();
    for n in 0..10 {
        tokio::time::sleep_until((started + Duration::from_millis(2_500 * (n + 1))).into()).await;
        let before_ok = ok.load(Ordering::Relaxed);
        olds.push(fg.pid());
        if n % 2 == 0 {
            fg.upgrade().await;
        } else {
            let fg = &fg;
            tokio::task::block_in_place(|| fg.upgrade_by_signal());
        }
        assert!(ok.load(Ordering::Relaxed) > before_ok, "traffic flows");
    }
    tokio::time::sleep_until((started + Duration::from_secs(30)).into()).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{ok} ok; errors: {:?}", errors.lock().unwrap());
    assert!(ok > 1000, "{ok} requests served");
    println!(
        "{ok} requests over 10 upgrades in 30 s, {failed} failed, {} sent again after GOAWAY",
        goaway_retries.load(Ordering::Relaxed)
    );
    // Every old process finishes and exits by itself.
    wait_until(Duration::from_secs(20), "the old processes exit", || {
        let olds = olds.clone();
        async move { olds.iter().all(|&p| !alive(p)) }
    })
    .await;
    assert!(alive(fg.pid()));
}

/// An HTTP/2 request the server refused with GOAWAY (NO_ERROR) before
/// processing it: its stream id was past the GOAWAY's last stream id.
fn refused_by_goaway(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = err.source();
    }
    false
}

/// A raw keep-alive HTTP/1.1 connection that has had one request answered.
async fn keep_alive_connection(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (status, _) = exchange_on(&mut s).await;
    assert_eq!(status, 200);
    s
}

/// One GET on `s`: the status and whether the response said
/// `Connection: close`.
async fn exchange_on(s: &mut TcpStream) -> (u16, bool) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let status = text[9..12].parse().unwrap();
                return (status, text[..end].contains("connection: close"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_requests_in_flight_and_drained_servers_survive() {
    let a = Backend::named("a").await;
    let slow = Backend::with_handler(
        "b",
        Arc::new(|req| {
            Box::pin(async move {
                if req.uri().path() == "/slow" {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                text_response(200, "b")
            })
        }),
    )
    .await;
    let fg = Upgradable::start(bin(), &two_servers(&a, &slow)).await;
    // 50 idle keep-alive connections, opened before the upgrade.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(keep_alive_connection(fg.addr).await);
    }
    // A request in flight across the upgrade (b is slow on /slow).
    let before = slow.hits();
    let slow_url = format!("http://{}/slow", fg.addr);
    let in_flight = tokio::spawn(async move {
        let c = fresh_client();
        let mut statuses = Vec::new();
        // Round robin: one of two reaches b.
        for _ in 0..2 {
            statuses.push(get(&c, &slow_url).await.0.as_u16());
        }
        statuses
    });
    let (status, _, body) = send(
        &client(),
        http::Request::post(format!("http://{}/api/farms/web/servers/a/drain", fg.admin))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    common::wait_until(Duration::from_secs(5), "the slow request reaches b", || {
        let n = slow.hits();
        async move { n > before }
    })
    .await;
    let old = fg.pid();
    let new = fg.upgrade().await;
    assert_ne!(old, new);
    // Each idle connection completes one more request, told it is the last.
    for s in &mut idle {
        let (status, close) = exchange_on(s).await;
        assert_eq!(status, 200);
        assert!(
            close,
            "an old process's last response says Connection: close"
        );
    }
    assert_eq!(in_flight.await.unwrap(), vec![200, 200]);
    // The drained server stays drained in the new process.
    let st = common::admin::status_json_at(fg.admin).await;
    let a_status = &st["farms"][0]["servers"][0];
    assert_eq!(a_status["admin"], "draining", "{a_status}");
    let c = fresh_client();
    for _ in 0..6 {
        let (status, _, body) = get(&c, &format!("http://{}/", fg.addr)).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "b"));
    }
    // The old process exits once its connections closed.
    drop(idle);
    wait_until(
        Duration::from_secs(15),
        "the old process exits",
        || async move { !alive(old) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_open_across_an_upgrade_keeps_echoing() {
    let backend = ws_echo_server().await;
    let farms = format!("farms:\n  - name: ws\n    servers:\n      - address: \"{backend}\"\n");
    let fg = Upgradable::start(bin(), &farms).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/chat", fg.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text("before"))
        .await
        .unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "before");
    let old = fg.pid();
    fg.upgrade().await;
    for i in 0..10 {
        let text = format!("after the upgrade {i}");
        ws.send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    assert!(alive(old), "the old process holds the WebSocket");
    ws.close(None).await.unwrap();
    wait_until(
        Duration::from_secs(15),
        "the old process exits",
        || async move { !alive(old) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_upgrade_leaves_the_old_process_serving() {
    let a = Backend::named("a").await;
    // Started from a copy of the binary, so the test can break "the binary".
    let dir = fresh_temp_dir("farmgate-upgrade-bin");
    let program = dir.join("farmgate");
    std::fs::copy(bin(), &program).unwrap();
    let farms = format!(
        "farms:\n  - name: web\n    servers:\n      - address: \"{}\"\n",
        a.addr
    );
    let fg = Upgradable::start(program.to_str().unwrap(), &farms).await;
    let url = format!("http://{}/", fg.addr);
    let pid = fg.pid();

    // A config the new process cannot load.
    let good = std::fs::read_to_string(&fg.config).unwrap();
    std::fs::write(&fg.config, good.replace("farms:", "farms: [")).unwrap();
    let (status, body) = fg.upgrade_via_admin().await;
    assert_eq!(status, 500, "{body}");
    let why = body["error"].as_str().unwrap();
    assert!(
        why.contains("did not start") && why.contains("farmgate.yaml"),
        "{why}"
    );
    assert_eq!(fg.pid(), pid);
    assert_eq!(get(&fresh_client(), &url).await.0, 200, "still serving");
    std::fs::write(&fg.config, &good).unwrap();

    // A binary that does not start.
    std::fs::remove_file(&program).unwrap();
    std::fs::write(&program, "#!/bin/sh\necho broken build >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (status, body) = fg.upgrade_via_admin().await;
    assert_eq!(status, 500, "{body}");
    assert!(body["error"].as_str().unwrap().contains("exited"), "{body}");
    assert_eq!(fg.pid(), pid);
    assert_eq!(get(&fresh_client(), &url).await.0, 200, "still serving");
    assert!(alive(fg.first.pid()));
    let (_, _, metrics) = get(&client(), &format!("http://{}/metrics", fg.admin)).await;
    assert!(
        metrics.contains("farmgate_upgrades_not_done_total{result=\"failed\"} 2"),
        "{metrics}"
    );
}
