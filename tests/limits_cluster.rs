//! A rate limit with `scope: cluster` across three real farmgate processes
//! sharing one real redis-server: a client over the limit, its requests
//! spread across the three, gets about `rate` in total from the tier;
//! with Redis killed each instance falls back to `rate / 3` (so the tier
//! still admits about `rate`) and says so in its metrics; with Redis back
//! the limit is synced again. And `farmgate check` refuses the scope
//! without a `cluster:` section, naming file and line.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/redis.rs"]
mod redis_server;

use common::admin::Scrape;
use common::*;
use process::{bin, free_port, temp_file, Proc};
use redis_server::RedisServer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The limit under test: 20 requests a second for the whole tier.
const RATE: f64 = 20.0;
/// Requests a second each client offers one instance (6x the tier's rate
/// in all).
const OFFERED: f64 = 40.0;
/// Counting starts after this (the instances' first exchange of a key is
/// its baseline, and the three first bursts are charged back), then lasts
/// `WINDOW`. The burst is 6 so that the fallback's is 2: with a burst of 1
/// a bucket loses every late arrival's lateness, and a busy machine's
/// clients arrive late.
const WARM_UP: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(5);

struct Instance {
    _proc: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
}

fn config(i: usize, addr: SocketAddr, admin: SocketAddr, backend: &Backend, redis: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"{addr}\"\n    limits: [tier-api]\n\
         admin:\n  bind: \"{admin}\"\n\
         log:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: one, address: \"{}\" }}\n\
         limits:\n  - name: tier-api\n    key: \"header:X-Api-Key\"\n    rate: 20/s\n    burst: 6\n    scope: cluster\n\
         cluster:\n  redis: \"{redis}\"\n  name: limits-test\n  instance: fg-{i}\n\
         \x20 heartbeat_interval: 300ms\n  breaker_cooldown: 500ms\n",
        backend.addr
    )
}

async fn start_tier(backend: &Backend, redis: &RedisServer) -> Vec<Instance> {
    let mut tier = Vec::new();
    for i in 0..3 {
        let (addr, admin) = (free_port(), free_port());
        let path = temp_file(
            "farmgate.yaml",
            &config(i, addr, admin, backend, &redis.url()),
        );
        let proc = Proc::run(&path, addr).await;
        tier.push(Instance {
            _proc: proc,
            addr,
            admin,
        });
    }
    tier
}

async fn metrics(c: &TestClient, i: &Instance) -> Scrape {
    let (status, _, text) = get(c, &format!("http://{}/metrics", i.admin)).await;
    assert_eq!(status, 200);
    Scrape::parse(&text)
}

/// Waits until `name{labels}` is `want` on every instance.
async fn every_instance(
    c: &TestClient,
    tier: &[Instance],
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) {
    for i in tier {
        wait_until(
            Duration::from_secs(10),
            &format!("{name}{labels:?} = {want} on {}", i.addr),
            || async { metrics(c, i).await.get(name, labels) == Some(want) },
        )
        .await;
    }
}

/// What the tier admitted of one API key sent to all three instances at
/// `OFFERED` a second each: (admitted in the window, sent in the window,
/// the window's length).
async fn hammer(tier: &[Instance]) -> (u64, u64, Duration) {
    let start = Instant::now();
    let counted_from = start + WARM_UP;
    let end = counted_from + WINDOW;
    let clients = tier.iter().map(|i| {
        let url = format!("http://{}/", i.addr);
        tokio::spawn(async move {
            let c = client();
            let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / OFFERED));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut admitted, mut sent) = (0u64, 0u64);
            loop {
                pace.tick().await;
                let at = Instant::now();
                if at >= end {
                    return (admitted, sent);
                }
                let req = http::Request::get(&url)
                    .header("x-api-key", "client-7")
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                let (status, _, body) = send(&c, req).await;
                assert!(status == 200 || status == 429, "{status}: {body}");
                if at >= counted_from {
                    sent += 1;
                    admitted += u64::from(status == 200);
                }
            }
        })
    });
    let mut total = (0, 0);
    for c in clients.collect::<Vec<_>>() {
        let (a, s) = c.await.unwrap();
        total = (total.0 + a, total.1 + s);
    }
    (total.0, total.1, WINDOW)
}

/// Asserts the tier admitted `rate` within 20% over the window, the client
/// having offered well over it.
fn assert_tier_rate(what: &str, (admitted, sent, window): (u64, u64, Duration)) {
    let expected = RATE * window.as_secs_f64();
    assert!(
        sent as f64 > 1.5 * expected,
        "{what}: the client sent only {sent} requests in {window:?} (the test needs over 1.5 x {expected})"
    );
    let ratio = admitted as f64 / expected;
    eprintln!("{what}: admitted {admitted} of {sent} in {window:?}: {ratio:.2} x the rate");
    assert!(
        (0.8..=1.2).contains(&ratio),
        "{what}: the tier admitted {admitted} of {sent} in {window:?}, {ratio:.2} x the rate ({expected})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_limit_holds_for_the_tier_and_falls_back_without_redis() {
    let mut redis = RedisServer::start().await;
    let backend = Backend::named("one").await;
    let tier = start_tier(&backend, &redis).await;
    let c = client();
    let limit = [("limit", "tier-api")];
    // Every instance sees the three (the fallback divides by them).
    every_instance(&c, &tier, "farmgate_cluster_instances", &[], 3.0).await;
    every_instance(&c, &tier, "farmgate_limit_cluster_degraded", &limit, 0.0).await;

    // Synced: the tier admits about the rate, not three times it.
    let synced = hammer(&tier).await;
    assert_tier_rate("synced", synced);
    for i in &tier {
        let m = metrics(&c, i).await;
        assert!(
            m.value("farmgate_limit_cluster_remote_requests_total", &limit) > 0.0,
            "{} was charged with the others' requests",
            i.addr
        );
        assert_eq!(m.get("farmgate_limit_cluster_degraded", &limit), Some(0.0));
    }
    let mut r = redis.conn().await;
    let counters: Vec<String> = ::redis::cmd("KEYS")
        .arg("farmgate:limits-test:limit:tier-api:*")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(counters.len(), 1, "one tier-wide counter for the one key");

    // Redis killed: each instance allows a third, and says it is degraded.
    redis.kill();
    every_instance(&c, &tier, "farmgate_limit_cluster_degraded", &limit, 1.0).await;
    let alone = hammer(&tier).await;
    assert_tier_rate("Redis killed", alone);
    for i in &tier {
        let (status, _, _) = get(&c, &format!("http://{}/status", i.addr)).await;
        assert_ne!(status, 429, "a request without the key is not limited");
    }

    // Redis back (empty): synced again, the tier's rate again.
    redis.restart().await;
    every_instance(&c, &tier, "farmgate_limit_cluster_degraded", &limit, 0.0).await;
    let again = hammer(&tier).await;
    assert_tier_rate("Redis back", again);
    let m = metrics(&c, &tier[0]).await;
    assert!(
        m.value(
            "farmgate_limit_cluster_syncs_total",
            &[("limit", "tier-api"), ("result", "failed")]
        ) > 0.0
    );
    assert!(
        m.value(
            "farmgate_limit_cluster_syncs_total",
            &[("limit", "tier-api"), ("result", "ok")]
        ) > 0.0
    );
}

#[test]
fn check_refuses_a_cluster_scope_without_a_cluster_section() {
    let path = temp_file(
        "farmgate.yaml",
        "listeners:\n  - bind: \"127.0.0.1:0\"\n\
         farms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9\"\n\
         limits:\n  - name: tier\n    rate: 10/s\n    scope: cluster\n",
    );
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:10:12: limits[0].scope: `scope: cluster` needs a `cluster:` section",
            path.display()
        )),
        "{err}"
    );
}
