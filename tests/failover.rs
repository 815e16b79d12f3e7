//! Failover under load: one of three backends is a real process killed
//! with SIGKILL while a client streams requests. GETs never fail (retries,
//! then the health check takes the server out); POSTs fail only as clean
//! 502s, and none hangs.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use process::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const REQUESTS: usize = 400;
const WORKERS: usize = 4;
/// The process backend is killed after this many requests completed.
const KILL_AFTER: usize = 100;

/// A backend that is a separate process: a farmgate child in front of an
/// in-process backend named `name` that takes 5 ms per answer, so requests
/// are in flight when it dies. Killing the child kills the server the proxy
/// under test talks to, exactly as a crashed application would.
async fn process_backend(name: &str) -> (Proc, Backend, std::net::SocketAddr) {
    let n = name.to_string();
    let inner = Backend::with_handler(
        name,
        Arc::new(move |_req| {
            let n = n.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                text_response(200, n)
            })
        }),
    )
    .await;
    let addr = free_port();
    let cfg = format!(
        "listeners:\n  - bind: \"{addr}\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: app\n    servers:\n      - address: \"{}\"\n",
        inner.addr
    );
    let proc = Proc::run(&temp_file("backend.yaml", &cfg), addr).await;
    (proc, inner, addr)
}

fn proxy_config(a: std::net::SocketAddr, b: &Backend, c: &Backend) -> String {
    format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
         proxy:\n  retries: 2\n  connect_timeout: 1s\n\
         farms:\n  - name: web\n    algorithm: round_robin\n    servers:\n\
         \x20     - {{ name: a, address: \"{a}\" }}\n\
         \x20     - {{ name: b, address: \"{}\" }}\n\
         \x20     - {{ name: c, address: \"{}\" }}\n\
         \x20   health_check:\n      url: /health\n      interval: 100ms\n      timeout: 1s\n",
        b.addr, c.addr
    )
}

/// Streams `REQUESTS` requests from `WORKERS` clients, kills `victim` after
/// `KILL_AFTER` completed, and returns every (status, body) in order of
/// completion.
async fn stream_while_killing(
    fg: &farmgate::Running,
    post: bool,
    mut victim: Proc,
) -> Vec<(u16, String)> {
    let done = Arc::new(AtomicUsize::new(0));
    let url = format!("http://{}/", fg.first_addr());
    let results = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (done, url, results) = (done.clone(), url.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let http = client();
            for _ in 0..REQUESTS / WORKERS {
                let req = if post {
                    Request::post(&url).body(Full::new(Bytes::from_static(b"order=1")))
                } else {
                    Request::get(&url).body(Full::new(Bytes::new()))
                };
                // A hung request fails the test here.
                let resp =
                    tokio::time::timeout(Duration::from_secs(10), http.request(req.unwrap()))
                        .await
                        .expect("a request hung")
                        .expect("the proxy closed the connection instead of answering");
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                let body = String::from_utf8_lossy(&body).into_owned();
                results.lock().unwrap().push((status, body));
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    wait_until(Duration::from_secs(30), "requests before the kill", || {
        let done = done.clone();
        async move { done.load(Ordering::SeqCst) >= KILL_AFTER }
    })
    .await;
    victim.signal("KILL");
    victim.wait_exit(Duration::from_secs(5)).await;
    for t in tasks {
        t.await.unwrap();
    }
    let r = results.lock().unwrap().clone();
    r
}

#[tokio::test]
async fn gets_see_zero_failures_when_a_backend_is_killed() {
    let (victim, _inner, a) = process_backend("a").await;
    let (b, c) = (Backend::named("b").await, Backend::named("c").await);
    let fg = start(&proxy_config(a, &b, &c)).await;
    let results = stream_while_killing(&fg, false, victim).await;
    assert_eq!(results.len(), REQUESTS);
    let failed: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    // The killed server served before the kill and is out of rotation now.
    assert!(results[..KILL_AFTER / 2].iter().any(|(_, b)| b == "a"));
    let sa = fg.gateway.snapshot().farms[0].servers[0].state.clone();
    wait_until(Duration::from_secs(3), "a out of rotation", || {
        let sa = sa.clone();
        async move { !sa.in_rotation() }
    })
    .await;
}

#[tokio::test]
async fn posts_fail_only_as_clean_502s_when_a_backend_is_killed() {
    let (victim, _inner, a) = process_backend("a").await;
    let (b, c) = (Backend::named("b").await, Backend::named("c").await);
    let fg = start(&proxy_config(a, &b, &c)).await;
    let results = stream_while_killing(&fg, true, victim).await;
    assert_eq!(results.len(), REQUESTS);
    for (status, body) in &results {
        match *status {
            200 => assert!(["a", "b", "c"].contains(&body.as_str()), "{body}"),
            502 => assert_eq!(body, "502 Bad Gateway\n"),
            other => panic!("POST got {other}: {body}"),
        }
    }
    let failed = results.iter().filter(|(s, _)| *s == 502).count();
    eprintln!("{failed} of {REQUESTS} POSTs got 502 around the kill");
    // Once the health check has taken it out, POSTs succeed again.
    let sa = fg.gateway.snapshot().farms[0].servers[0].state.clone();
    wait_until(Duration::from_secs(3), "a out of rotation", || {
        let sa = sa.clone();
        async move { !sa.in_rotation() }
    })
    .await;
    let http = client();
    for _ in 0..20 {
        let req = Request::post(format!("http://{}/", fg.first_addr()))
            .body(Full::new(Bytes::from_static(b"order=2")))
            .unwrap();
        assert_eq!(send(&http, req).await.0, StatusCode::OK);
    }
}
