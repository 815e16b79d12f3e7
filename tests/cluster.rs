//! A tier of farmgate instances coordinated through a real redis-server:
//! operator state that holds on every instance (and on one that starts
//! later), the view of the tier with config drift, TLS sessions that resume
//! on another instance, and Redis trouble (frozen, killed, restarted
//! empty) that never fails a client request.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;
#[path = "common/tls.rs"]
mod tls;

use common::admin::*;
use common::*;
use farmgate::farm::AdminState;
use farmgate::Running;
use redis_server::RedisServer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A farm `web` over `backends` with the admin API and `cluster:` on `redis`.
fn tier_config(backends: &[&Backend], redis: &RedisServer, cluster_extra: &str) -> String {
    let cfg = with_admin(&farm_config("round_robin", backends, "", ""), None);
    format!(
        "{cfg}cluster:\n  redis: \"{}\"\n  name: test\n  heartbeat_interval: 300ms\n{cluster_extra}",
        redis.url()
    )
}

fn admin_of(fg: &Running, server: usize) -> AdminState {
    fg.gateway.snapshot().farms[0].servers[server].state.admin()
}

async fn json(c: &TestClient, fg: &Running, path: &str) -> serde_json::Value {
    let (status, _, body) = admin_get(c, fg, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Sends `n` requests to `fg`; all must succeed.
async fn traffic(c: &TestClient, fg: &Running, n: usize) {
    for _ in 0..n {
        let (status, _, body) = get(c, &format!("http://{}/", fg.first_addr())).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_on_one_instance_holds_on_every_instance_and_a_late_starter() {
    let redis = RedisServer::start().await;
    let one = Backend::named("one").await;
    let two = Backend::named("two").await;
    let cfg = tier_config(&[&one, &two], &redis, "");
    let a = start(&cfg).await;
    let b = start(&cfg).await;
    let c3 = start(&cfg).await;
    let c = client();

    // Drained through A: B and C stop sending new requests to `one` within 1 s.
    let drained_at = Instant::now();
    let (status, _, body) = admin_post(&c, &a, "/api/farms/web/servers/one/drain", None).await;
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["admin"], "draining");
    assert_eq!(
        view["admin_source"], "tier",
        "Redis took it: the tier holds it"
    );
    for other in [&b, &c3] {
        wait_until(
            Duration::from_secs(1),
            "the drain reaches the instance",
            || {
                let s = admin_of(other, 0);
                async move { s == AdminState::Draining }
            },
        )
        .await;
    }
    let took = drained_at.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let before = one.hits();
    traffic(&c, &b, 10).await;
    traffic(&c, &c3, 10).await;
    assert_eq!(one.hits(), before, "a drained server gets no new request");

    // /api/status on B says the state came from the tier.
    let status = json(&c, &b, "/api/status").await;
    let server = &status["farms"][0]["servers"][0];
    assert_eq!(server["admin"], "draining");
    assert_eq!(server["admin_source"], "tier");

    // An instance started now obeys before its first request.
    let late = start(&cfg).await;
    assert_eq!(admin_of(&late, 0), AdminState::Draining);
    traffic(&c, &late, 10).await;
    assert_eq!(one.hits(), before);

    // Enabled through B: back everywhere.
    let (status, _, _) = admin_post(&c, &b, "/api/farms/web/servers/one/enable", None).await;
    assert_eq!(status, 200);
    for other in [&a, &c3, &late] {
        wait_until(
            Duration::from_secs(1),
            "the enable reaches the instance",
            || {
                let s = admin_of(other, 0);
                async move { s == AdminState::Enabled }
            },
        )
        .await;
    }
    traffic(&c, &late, 10).await;
    assert!(one.hits() > before, "enabled again, `one` takes requests");

    // Every instance sees the four live instances, one config hash.
    wait_until(Duration::from_secs(5), "A sees four instances", || {
        let c = c.clone();
        let a = &a;
        async move {
            json(&c, a, "/api/cluster").await["instances"]
                .as_array()
                .map_or(0, Vec::len)
                == 4
        }
    })
    .await;
    let view = json(&c, &a, "/api/cluster").await;
    assert_eq!(view["enabled"], true);
    assert_eq!(view["redis"]["up"], true);
    let instances = view["instances"].as_array().unwrap();
    assert!(instances.iter().all(|i| i["drift"] == false), "{view:#}");
    assert_eq!(instances.iter().filter(|i| i["this"] == true).count(), 1);
    let m = scrape(&c, &a).await;
    assert_eq!(m.get("farmgate_cluster_redis_up", &[]), Some(1.0));
    assert_eq!(m.get("farmgate_cluster_instances", &[]), Some(4.0));
    assert_eq!(
        m.get("farmgate_cluster_config_drift_instances", &[]),
        Some(0.0)
    );

    // A stopped instance leaves the view at once.
    late.shutdown(Duration::from_secs(1)).await;
    wait_until(Duration::from_secs(5), "A sees three instances", || {
        let c = c.clone();
        let a = &a;
        async move {
            json(&c, a, "/api/cluster").await["instances"]
                .as_array()
                .map_or(0, Vec::len)
                == 3
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_other_farms_is_flagged_as_drift() {
    let redis = RedisServer::start().await;
    let one = Backend::named("one").await;
    let two = Backend::named("two").await;
    let a = start(&tier_config(&[&one, &two], &redis, "")).await;
    let b = start(&tier_config(&[&one], &redis, "")).await;
    // Another bind address and instance name do not count as drift.
    let same = tier_config(&[&one, &two], &redis, "  instance: third\n")
        .replace("127.0.0.1:0", "127.0.0.2:0");
    let _c3 = start(&same).await;
    let c = client();
    wait_until(Duration::from_secs(5), "A sees b drifting", || {
        let c = c.clone();
        let a = &a;
        async move {
            let v = json(&c, a, "/api/cluster").await;
            v["instances"].as_array().map_or(0, Vec::len) == 3
        }
    })
    .await;
    let view = json(&c, &a, "/api/cluster").await;
    let b_hash = b.gateway.snapshot().tier_hash.clone();
    for i in view["instances"].as_array().unwrap() {
        let drift = i["config_hash"] == b_hash.as_str();
        assert_eq!(i["drift"], drift, "{view:#}");
    }
    assert!(view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == "third" && i["drift"] == false));
    let m = scrape(&c, &a).await;
    assert_eq!(
        m.get("farmgate_cluster_config_drift_instances", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_or_killed_never_fails_a_request_and_the_tier_reconverges() {
    let mut redis = RedisServer::start().await;
    let one = Backend::named("one").await;
    let two = Backend::named("two").await;
    let cfg = tier_config(
        &[&one, &two],
        &redis,
        "  timeout: 100ms\n  breaker_cooldown: 300ms\n",
    );
    let a = Arc::new(start(&cfg).await);
    let b = Arc::new(start(&cfg).await);
    let c = client();

    // Steady load on both instances for the whole test.
    let failed = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for fg in [a.clone(), b.clone()] {
        let (failed, sent, stop) = (failed.clone(), sent.clone(), stop.clone());
        let url = format!("http://{}/", fg.first_addr());
        load.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                match tokio::time::timeout(Duration::from_secs(5), c.request(req)).await {
                    Ok(Ok(r)) if r.status() == 200 => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Frozen: A's drain holds locally and the admin call answers anyway.
    redis.pause();
    let asked = Instant::now();
    let (status, _, body) = admin_post(&c, &a, "/api/farms/web/servers/one/drain", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the admin API waits at most the Redis timeout"
    );
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["admin_source"], "local", "Redis did not take it");
    wait_until(Duration::from_secs(5), "A's breaker opens", || {
        let c = c.clone();
        let a = a.clone();
        async move { json(&c, &a, "/api/cluster").await["redis"]["up"] == false }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(admin_of(&b, 0), AdminState::Enabled, "B cannot know yet");

    // Thawed: the pending drain reaches the tier and B.
    redis.resume();
    wait_until(
        Duration::from_secs(5),
        "the drain reaches B after Redis returns",
        || {
            let s = admin_of(&b, 0);
            async move { s == AdminState::Draining }
        },
    )
    .await;
    assert_eq!(
        json(&c, &a, "/api/status").await["farms"][0]["servers"][0]["admin_source"],
        "tier"
    );

    // Killed and restarted empty: the instances put the record back, and
    // a change made afterwards still travels.
    redis.kill();
    wait_until(Duration::from_secs(5), "A sees Redis gone", || {
        let c = c.clone();
        let a = a.clone();
        async move { json(&c, &a, "/api/cluster").await["redis"]["up"] == false }
    })
    .await;
    redis.restart().await;
    let mut conn = redis.conn().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: usize = redis::cmd("HLEN")
            .arg("farmgate:test:admin")
            .query_async(&mut conn)
            .await
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the admin record was not restored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, _) = admin_post(&c, &b, "/api/farms/web/servers/one/enable", None).await;
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(1), "the enable reaches A", || {
        let s = admin_of(&a, 0);
        async move { s == AdminState::Enabled }
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (failed, sent) = (failed.load(Ordering::Relaxed), sent.load(Ordering::Relaxed));
    assert!(sent > 100, "only {sent} requests sent");
    assert_eq!(failed, 0, "{failed} of {sent} client requests failed");
    let m = scrape(&c, &a).await;
    assert!(
        m.value(
            "farmgate_cluster_operations_failed_total",
            &[("operation", "admin_read")]
        ) >= 1.0
    );
    assert_eq!(m.get("farmgate_cluster_redis_up", &[]), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_session_from_one_instance_resumes_on_another() {
    let redis = RedisServer::start().await;
    let certs = tls::CertDir::new();
    let site = certs.issue("site", &["site.test"]);
    let backend = Backend::named("app").await;
    let cfg = format!(
        "listeners:\n{}admin:\n  bind: \"127.0.0.1:0\"\nlog:\n  access: off\nfarms:\n  - name: web\n    servers:\n      - {{ name: app, address: \"{}\" }}\ncluster:\n  redis: \"{}\"\n  heartbeat_interval: 300ms\n",
        tls::tls_listener_yaml("secure", &[site], ""),
        backend.addr,
        redis.url()
    );
    let a = start(&cfg).await;
    let b = start(&cfg).await;
    // Both started after joining, so both hold the tier's key already.
    assert_eq!(a.gateway.tls.tier_tickets.len(), 1);
    assert_eq!(
        a.gateway.tls.tier_tickets.names(),
        b.gateway.tls.tier_tickets.names()
    );

    let client = certs.client(&["http/1.1"]);
    let s = tls::connect(a.first_addr(), "site.test", client.clone())
        .await
        .unwrap();
    assert_eq!(
        s.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    let mut h = tls::Sender::new(s).await;
    assert_eq!(h.get("site.test", "/").await.0, 200);
    let s = tls::connect(b.first_addr(), "site.test", client)
        .await
        .unwrap();
    assert_eq!(
        s.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "the ticket from A opens on B"
    );
    let mut h = tls::Sender::new(s).await;
    assert_eq!(h.get("site.test", "/").await.0, 200);
}

/// The `FG_AFF=...` pair of a response's Set-Cookie, if any.
fn affinity_pair(h: &http::HeaderMap) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("FG_AFF="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

async fn get_with_cookie(
    c: &TestClient,
    fg: &Running,
    cookie: Option<&str>,
) -> (http::HeaderMap, String) {
    let mut req = http::Request::get(format!("http://{}/", fg.first_addr()));
    if let Some(v) = cookie {
        req = req.header("cookie", v);
    }
    let (status, h, body) = send(
        c,
        req.body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    (h, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_holds_across_three_instances_sharing_the_secret() {
    let redis = RedisServer::start().await;
    let backends = [
        Backend::named("one").await,
        Backend::named("two").await,
        Backend::named("three").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let affinity = |secret: &str| {
        format!("    affinity:\n      cookie: FG_AFF\n      ttl: 1h\n      secret: \"{secret}\"\n")
    };
    let cfg = |secret: &str| {
        let farm = with_admin(
            &farm_config("round_robin", &refs, &affinity(secret), ""),
            None,
        );
        format!(
            "{farm}cluster:\n  redis: \"{}\"\n  heartbeat_interval: 300ms\n",
            redis.url()
        )
    };
    let tier = [
        start(&cfg("tier secret")).await,
        start(&cfg("tier secret")).await,
        start(&cfg("tier secret")).await,
    ];
    let c = client();

    // Nine clients, each bound on one instance, stay on their server on all three.
    let mut bound = Vec::new();
    for i in 0..9 {
        let (h, server) = get_with_cookie(&c, &tier[i % 3], None).await;
        bound.push((affinity_pair(&h).unwrap(), server));
    }
    let servers: std::collections::HashSet<_> = bound.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(servers.len(), 3, "round robin spread the new clients");
    for (pair, server) in &bound {
        for fg in &tier {
            let (h, body) = get_with_cookie(&c, fg, Some(pair)).await;
            assert_eq!(&body, server);
            assert!(
                affinity_pair(&h).is_none(),
                "the cookie was honoured, not replaced"
            );
        }
    }

    // Drained through one instance, a server keeps its bound clients on all.
    let (pair, server) = bound[0].clone();
    admin_post(
        &c,
        &tier[1],
        &format!("/api/farms/web/servers/{server}/drain"),
        None,
    )
    .await;
    for fg in &tier {
        wait_until(
            Duration::from_secs(1),
            "the drain reaches every instance",
            || {
                let s = fg.gateway.snapshot().farms[0]
                    .server_by_name(&server)
                    .unwrap()
                    .1
                    .state
                    .admin();
                async move { s == AdminState::Draining }
            },
        )
        .await;
        assert_eq!(get_with_cookie(&c, fg, Some(&pair)).await.1, server);
    }

    // An instance with another secret does not honour the tier's cookies:
    // the secret must match across the tier.
    let odd = start(&cfg("another secret")).await;
    let mut rebound = 0;
    for (pair, _) in &bound {
        let (h, _) = get_with_cookie(&c, &odd, Some(pair)).await;
        rebound += usize::from(affinity_pair(&h).is_some());
    }
    assert_eq!(rebound, bound.len(), "every client was bound afresh");
}
