//! Memory per idle keep-alive client connection, measured on the real
//! binary: RSS before and after N clients each made one request and stayed
//! connected. The normal suite holds 1,000 connections; the 10,000-connection
//! run is `--ignored` (the soak script runs it, in release).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/raw.rs"]
mod raw;

use process::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
/// Connections opened at once before they are left to park.
const WAVE: usize = 100;

/// Opens `n` keep-alive connections through the real binary, checks them,
/// and returns the RSS growth per connection in bytes.
async fn idle_connections(n: usize) -> u64 {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().0;
    let need = n as u64 + 200;
    if soft < need {
        // Each idle connection is one descriptor here and one in farmgate.
        let raised = rlimit::increase_nofile_limit(need).unwrap();
        assert!(
            raised >= need,
            "open-file limit {raised} < {need}: raise ulimit -Hn"
        );
    }
    let backend = common::Backend::named("b1").await;
    let addr = free_port();
    let admin = free_port();
    let yaml = format!(
        "listeners:\n  - name: public\n    bind: \"{addr}\"\n    max_connections: {}\n\
         admin:\n  bind: \"{admin}\"\n\
         log:\n  access: off\n  level: warn\n\
         proxy:\n  idle_timeout: 10m\n  header_timeout: 10m\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: b1, address: \"{}\" }}\n",
        n + 100,
        backend.addr
    );
    let path = temp_file("farmgate.yaml", &yaml);
    let proc = Proc::run(&path, addr).await;

    // Warm up: the runtime, the backend pool, the allocator.
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(GET).await.unwrap();
        assert_eq!(raw::read_response(&mut s).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = proc.status_kib("VmRSS");

    // Clients arrive in waves; after a second idle every connection parks:
    // it keeps its socket and watchdog and gives up hyper's state and
    // buffers, which the next wave reuses. (glibc keeps freed memory in the
    // process, so RSS measures what idle connections hold once they have
    // come and gone in waves, as they do in production, plus one wave.)
    let metrics = format!("http://{admin}/metrics");
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        for _ in 0..WAVE.min(n - conns.len()) {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(GET).await.unwrap();
            assert_eq!(raw::read_response(&mut s).await.0, 200);
            conns.push(s);
        }
        let parked = format!(
            "farmgate_connections_parked{{listener=\"public\"}} {}\n",
            conns.len()
        );
        common::wait_until(
            Duration::from_secs(30),
            "every connection parked",
            || async {
                common::get(&common::client(), &metrics)
                    .await
                    .2
                    .contains(&parked)
            },
        )
        .await;
    }
    let after = proc.status_kib("VmRSS");
    let per_conn = (after.saturating_sub(before) * 1024) / n as u64;
    eprintln!(
        "{n} idle keep-alive connections: RSS {before} KiB -> {after} KiB, {per_conn} bytes per connection"
    );

    // Every connection is still open and serves its next request (in
    // waves, so that the backend pool stays within the open-file limit).
    for wave in conns.chunks_mut(200) {
        for s in wave.iter_mut() {
            s.write_all(GET).await.unwrap();
        }
        for s in wave.iter_mut() {
            assert_eq!(raw::read_response(s).await.0, 200);
        }
    }
    drop(conns);
    per_conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_keep_alive_connections_are_small() {
    let per_conn = idle_connections(1000).await;
    // Parked, a connection holds its task, socket and watchdog (its buffers
    // went back to the thread's pool): about 4.5 KiB in a debug build with
    // mimalloc's size classes (3 KiB with glibc; before parking, ~21 KiB).
    assert!(per_conn < 6 << 10, "{per_conn} bytes per idle connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 connections: run by scripts/soak.sh, or with --ignored"]
async fn ten_thousand_idle_keep_alive_connections_work() {
    let per_conn = idle_connections(10_000).await;
    assert!(per_conn < 6 << 10, "{per_conn} bytes per idle connection");
}
