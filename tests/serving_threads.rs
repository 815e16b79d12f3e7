//! `runtime.worker_threads` above one: every serving thread runs its own
//! runtime and keeps the connections it is given. Through the real binary:
//! connections are spread evenly (least open first), requests on every
//! thread are answered, including through the hyper client path (an
//! upload) and the fast path's per-thread backend connections, and a
//! closed connection gives its place back.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/raw.rs"]
mod raw;

use common::*;
use process::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const THREADS: usize = 3;
const CONNS: usize = 9;

/// `farmgate_serving_thread_connections` by thread, from the admin API.
async fn per_thread(admin: std::net::SocketAddr) -> BTreeMap<String, i64> {
    let c = client();
    let (status, _, text) = get(&c, &format!("http://{admin}/metrics")).await;
    assert_eq!(status, 200);
    text.lines()
        .filter_map(|l| l.strip_prefix("farmgate_serving_thread_connections{thread=\""))
        .filter_map(|l| {
            let (t, v) = l.split_once("\"} ")?;
            Some((t.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn connections_spread_over_the_serving_threads_and_all_are_served() {
    let backend = Backend::named("b1").await;
    let listen = free_port();
    let admin = free_port();
    let cfg = temp_file(
        "threads.yaml",
        &format!(
            "listeners:\n  - bind: \"{listen}\"\nadmin:\n  bind: \"{admin}\"\nlog:\n  access: off\n\
             runtime:\n  worker_threads: {THREADS}\n\
             farms:\n  - name: web\n    servers:\n      - address: \"{}\"\n",
            backend.addr
        ),
    );
    let _fg = Proc::run(&cfg, listen).await;
    // The readiness probe's connection is closed: its place comes back.
    wait_until(Duration::from_secs(10), "no connection open", || async {
        per_thread(admin).await.values().all(|&n| n == 0)
    })
    .await;

    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let mut s = TcpStream::connect(listen).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(raw::read_response(&mut s).await, (200, "b1".to_string()));
        conns.push(s);
    }
    let spread = per_thread(admin).await;
    let want: BTreeMap<String, i64> = (0..THREADS)
        .map(|t| (t.to_string(), (CONNS / THREADS) as i64))
        .collect();
    assert_eq!(spread, want, "each thread serves its share");

    // Every connection, on whichever thread, keeps being answered: on the
    // fast path (bodiless GETs over the thread's own backend connections)
    // and through hyper's client (a POST with a body).
    for round in 0..20 {
        for s in &mut conns {
            if round % 5 == 4 {
                s.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
                    .await
                    .unwrap();
            } else {
                s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                    .await
                    .unwrap();
            }
            assert_eq!(raw::read_response(s).await, (200, "b1".to_string()));
        }
    }
    assert_eq!(backend.hits(), CONNS * 21);

    // Closed connections give their places back.
    drop(conns.drain(..4));
    wait_until(
        Duration::from_secs(10),
        "four places given back",
        || async { per_thread(admin).await.values().sum::<i64>() == (CONNS - 4) as i64 },
    )
    .await;
    // The next connections go where there is most room.
    let mut more = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(listen).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(raw::read_response(&mut s).await.0, 200);
        more.push(s);
    }
    assert_eq!(per_thread(admin).await, want, "refilled evenly");
}
