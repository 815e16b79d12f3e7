//! Hot reload under load: at least 50 reloads that change weights, servers
//! and algorithms while clients keep sending, with zero failed requests and
//! traffic following each new config; a broken file changes nothing; a
//! request in flight to a removed server completes; listeners come and go.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use common::*;
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(listeners: &str, algorithm: &str, servers: &[(&Backend, u32)]) -> String {
    let mut s = format!("{listeners}admin:\n  enabled: false\nlog:\n  access: off\nfarms:\n  - name: web\n    algorithm: {algorithm}\n    servers:\n");
    for (b, w) in servers {
        s.push_str(&format!(
            "      - {{ name: {}, address: \"{}\", weight: {w} }}\n",
            b.name, b.addr
        ));
    }
    s
}

const ONE_LISTENER: &str = "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n";

/// Replaces the file the way editors do: write a temp file, rename it over.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Clients that keep sending until `stop`, bounded in count; returns
/// (requests, failures).
fn load(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    tasks: usize,
) -> Vec<tokio::task::JoinHandle<(usize, Vec<String>)>> {
    (0..tasks)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let http = client();
                let mut done = 0;
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) && done < 20_000 {
                    let req = http::Request::get(format!("http://{addr}/"))
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .unwrap();
                    match tokio::time::timeout(Duration::from_secs(10), http.request(req)).await {
                        Ok(Ok(resp)) if resp.status() == 200 => {
                            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                        }
                        Ok(Ok(resp)) => failures.push(format!("status {}", resp.status())),
                        Ok(Err(e)) => failures.push(format!("error {e}")),
                        Err(_) => failures.push("timeout".into()),
                    }
                    done += 1;
                }
                (done, failures)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request_and_traffic_follows() {
    let backends = [
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
        Backend::named("d").await,
        Backend::named("e").await,
    ];
    let dir = process::temp_file("farmgate.yaml", "");
    let path = dir.as_path();
    write_atomically(
        path,
        &config(
            ONE_LISTENER,
            "round_robin",
            &[(&backends[0], 1), (&backends[1], 1)],
        ),
    );
    let fg = start_from_file(path).await;
    let addr = fg.first_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(addr, stop.clone(), 4);
    let algorithms = ["round_robin", "least_requests"];
    let probe = client();
    for i in 0..50 {
        // A rotating subset of 1-4 servers with changing weights.
        let n = 1 + i % 4;
        let chosen: Vec<(&Backend, u32)> = (0..n)
            .map(|k| (&backends[(i + k) % 5], 1 + ((i + k) % 3) as u32))
            .collect();
        write_atomically(
            path,
            &config(ONE_LISTENER, algorithms[i % algorithms.len()], &chosen),
        );
        let event = farmgate::reload::reload(&fg.gateway, "admin").await;
        assert!(event.ok, "reload {i} failed: {}", event.message);
        assert_eq!(
            fg.first_addr(),
            addr,
            "an unchanged listener keeps its socket"
        );
        // Traffic follows the new config at once.
        let allowed: HashSet<&str> = chosen.iter().map(|(b, _)| b.name.as_str()).collect();
        for _ in 0..4 {
            let (status, _, body) = get(&probe, &format!("http://{addr}/")).await;
            assert_eq!(status, 200);
            assert!(
                allowed.contains(body.as_str()),
                "reload {i}: {body} is not in {allowed:?}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (done, failures) = c.await.unwrap();
        total += done;
        assert!(
            failures.is_empty(),
            "failed client requests during reloads: {failures:?}"
        );
    }
    assert!(total > 100, "the load clients sent only {total} requests");
    // The file watcher may reload some of the edits as well.
    assert!(fg.gateway.reloads.successes.load(Ordering::Relaxed) >= 50);
    assert_eq!(fg.gateway.reloads.failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_changes_nothing_and_fixing_it_recovers() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let path = process::temp_file(
        "farmgate.yaml",
        &config(ONE_LISTENER, "round_robin", &[(&a, 1)]),
    );
    let fg = start_from_file(&path).await;
    let addr = fg.first_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(addr, stop.clone(), 2);

    let broken =
        config(ONE_LISTENER, "round_robin", &[(&b, 1)]).replace("weight: 1", "weight: heavy");
    write_atomically(&path, &broken);
    let event = farmgate::reload::reload(&fg.gateway, "admin").await;
    assert!(!event.ok);
    assert!(
        event.message.contains("farmgate.yaml:12:"),
        "{}",
        event.message
    );
    assert!(
        event.message.contains("farms[0].servers[0].weight"),
        "{}",
        event.message
    );
    // The file watcher may have tried the broken file too.
    assert!(fg.gateway.reloads.failures.load(Ordering::Relaxed) >= 1);
    assert!(!fg.gateway.reloads.last().unwrap().ok);
    // The old config still serves.
    let probe = client();
    for _ in 0..5 {
        assert_eq!(get(&probe, &format!("http://{addr}/")).await.2, "a");
    }
    // Semantically wrong (unknown farm) is refused the same way.
    write_atomically(
        &path,
        &format!(
            "{}default_farm: nowhere\n",
            config(ONE_LISTENER, "round_robin", &[(&b, 1)])
        ),
    );
    assert!(!farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    assert_eq!(get(&probe, &format!("http://{addr}/")).await.2, "a");

    write_atomically(&path, &config(ONE_LISTENER, "round_robin", &[(&b, 1)]));
    assert!(farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    assert_eq!(get(&probe, &format!("http://{addr}/")).await.2, "b");

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let (_, failures) = c.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
}

#[tokio::test]
async fn an_in_flight_request_to_a_removed_server_completes() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let slow = Backend::with_handler(
        "slow",
        Arc::new(move |_req| {
            let g = g.clone();
            Box::pin(async move {
                g.notified().await;
                text_response(200, "slow finished")
            })
        }),
    )
    .await;
    let other = Backend::named("other").await;
    let path = process::temp_file(
        "farmgate.yaml",
        &config(ONE_LISTENER, "round_robin", &[(&slow, 1)]),
    );
    let fg = start_from_file(&path).await;
    let addr = fg.first_addr();
    let pending = tokio::spawn(async move { get(&client(), &format!("http://{addr}/")).await });
    wait_until(
        Duration::from_secs(5),
        "request at the slow server",
        || async { slow.hits() == 1 },
    )
    .await;

    write_atomically(&path, &config(ONE_LISTENER, "round_robin", &[(&other, 1)]));
    assert!(farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    assert_eq!(get(&client(), &format!("http://{addr}/")).await.2, "other");
    gate.notify_one();
    let (status, _, body) = pending.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "slow finished"));
}

#[tokio::test]
async fn listeners_start_and_stop_with_the_config_and_open_connections_drain() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Backend::named("a").await;
    let two = "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n  - name: extra\n    bind: \"127.0.0.1:0\"\n";
    let path = process::temp_file(
        "farmgate.yaml",
        &config(ONE_LISTENER, "round_robin", &[(&a, 1)]),
    );
    let fg = start_from_file(&path).await;
    assert!(fg.addr("extra").is_none());

    write_atomically(&path, &config(two, "round_robin", &[(&a, 1)]));
    assert!(farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    let extra = fg.addr("extra").expect("the new listener runs");
    assert_eq!(get(&client(), &format!("http://{extra}/")).await.2, "a");

    // A keep-alive connection on `extra` outlives the listener's removal.
    let mut conn = tokio::net::TcpStream::connect(extra).await.unwrap();
    let ask = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buf = [0u8; 1024];
    conn.write_all(ask).await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    write_atomically(&path, &config(ONE_LISTENER, "round_robin", &[(&a, 1)]));
    assert!(farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    assert!(fg.addr("extra").is_none());
    wait_until(
        Duration::from_secs(5),
        "extra stops accepting",
        || async move { tokio::net::TcpStream::connect(extra).await.is_err() },
    )
    .await;
    conn.write_all(ask).await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "the open connection still works"
    );
}

#[tokio::test]
async fn the_file_watcher_picks_up_an_edit_well_under_a_second() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let path = process::temp_file(
        "farmgate.yaml",
        &config(ONE_LISTENER, "round_robin", &[(&a, 1)]),
    );
    let fg = start_from_file(&path).await;
    let url = format!("http://{}/", fg.first_addr());
    let http = client();
    assert_eq!(get(&http, &url).await.2, "a");
    let written = Instant::now();
    write_atomically(&path, &config(ONE_LISTENER, "round_robin", &[(&b, 1)]));
    let seen = Arc::new(AtomicUsize::new(0));
    wait_until(Duration::from_secs(5), "the edit is serving", || {
        let (http, url, seen) = (http.clone(), url.clone(), seen.clone());
        async move {
            seen.fetch_add(1, Ordering::Relaxed);
            get(&http, &url).await.2 == "b"
        }
    })
    .await;
    let latency = written.elapsed();
    eprintln!("file write to new config serving: {latency:?}");
    assert_eq!(fg.gateway.reloads.last().unwrap().trigger, "file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_running_binary() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let listen = process::free_port();
    let listeners = format!("listeners:\n  - bind: \"{listen}\"\n");
    let first = config(&listeners, "round_robin", &[(&a, 1)]);
    let path = process::temp_file("farmgate.yaml", &first);
    let fg = process::Proc::run(&path, listen).await;
    let url = format!("http://{listen}/");
    assert_eq!(get(&client(), &url).await.2, "a");
    // Rewrite in place with the same length and the old mtime, so only the
    // signal can tell farmgate about it.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let second = first
        .replace(&a.addr.to_string(), &b.addr.to_string())
        .replace("name: a,", "name: b,");
    assert_eq!(second.len(), first.len());
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(second.as_bytes()).unwrap();
        f.set_modified(mtime).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // longer than the watch interval: not noticed
    assert_eq!(
        get(&client(), &url).await.2,
        "a",
        "the watcher should not have seen the in-place edit"
    );
    fg.signal("HUP");
    wait_until(Duration::from_secs(5), "SIGHUP reload", || {
        let url = url.clone();
        async move { get(&client(), &url).await.2 == "b" }
    })
    .await;
}
