//! The shared cache tier (`cache.shared`) across three farmgate instances
//! on one real redis-server: a response fetched by one is a hit on the
//! others, a cold URL requested on all three at once reaches the backend
//! once, the hit ratio of a workload spread over the tier matches one
//! instance's, a purge anywhere purges everywhere, and a frozen Redis
//! only turns shared lookups into misses.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use common::admin::*;
use common::*;
use farmgate::Running;
use redis_server::RedisServer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A backend answering `v{n}` (n counting its requests) after `delay`,
/// fresh for a minute.
async fn slow(delay: Duration) -> Backend {
    let n = Arc::new(AtomicUsize::new(0));
    Backend::with_handler(
        "app",
        Arc::new(move |_req| {
            let k = n.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let mut r = text_response(200, format!("v{k}"));
                r.headers_mut()
                    .insert("cache-control", "max-age=60".parse().unwrap());
                r
            })
        }),
    )
    .await
}

fn site_get(fg: &Running, path: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(format!("http://{}{path}", fg.first_addr()))
        .header("host", "shop.test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

fn config(b: &Backend, redis: Option<&RedisServer>, timeout: &str) -> String {
    let cache = "    cache:\n      enabled: true\n      shared: true\n";
    let cfg = with_admin(&farm_config("round_robin", &[b], cache, ""), None);
    match redis {
        Some(r) => format!(
            "{cfg}cluster:\n  redis: \"{}\"\n  name: cache\n  heartbeat_interval: 300ms\n  timeout: {timeout}\n  breaker_cooldown: 300ms\n",
            r.url()
        ),
        None => cfg.replace("      shared: true\n", ""),
    }
}

/// GETs `path` from `fg` as the balancer in front would pass it: the
/// site's name as Host, whichever instance answers.
async fn fetch(fg: &Running, path: &str) -> (String, String) {
    let (status, h, body) = send(&client(), site_get(fg, path)).await;
    assert_eq!(status, 200, "{body}");
    let x = h
        .get("x-cache")
        .map_or("-", |v| v.to_str().unwrap())
        .to_string();
    (x, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_fetched_once_serves_the_whole_tier_and_a_purge_clears_it() {
    let redis = RedisServer::start().await;
    let b = slow(Duration::from_millis(300)).await;
    // Redis is healthy here: a generous bound on its answers, so that a
    // loaded machine (CI, a debug build) does not trip the breaker and
    // make an instance fetch alone, which the next test's frozen Redis
    // covers.
    let cfg = config(&b, Some(&redis), "2s");
    let tier: Vec<Running> = vec![start(&cfg).await, start(&cfg).await, start(&cfg).await];

    // A cold URL hit on all three instances at once: one backend request.
    let mut burst = Vec::new();
    for fg in &tier {
        for _ in 0..5 {
            let req = site_get(fg, "/cold");
            burst.push(tokio::spawn(async move { send(&client(), req).await }));
        }
    }
    for r in burst {
        let (status, _, body) = r.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "v1", "everyone gets the one fetch");
    }
    assert_eq!(b.hits(), 1, "the backend saw one request for the cold URL");

    // Fetched on A, a hit on B and C.
    assert_eq!(fetch(&tier[0], "/page").await, ("MISS".into(), "v2".into()));
    assert_eq!(fetch(&tier[1], "/page").await, ("HIT".into(), "v2".into()));
    assert_eq!(fetch(&tier[2], "/page").await, ("HIT".into(), "v2".into()));
    assert_eq!(b.hits(), 2);

    // Purged through C: gone from A's own store and from the tier.
    let (status, _, body) = admin_post(&client(), &tier[2], "/api/cache/purge", None).await;
    assert_eq!(status, 200, "{body}");
    let a = &tier[0];
    wait_until(
        Duration::from_secs(2),
        "A's store is purged",
        || async move {
            a.gateway.snapshot().farms[0]
                .cache
                .as_ref()
                .unwrap()
                .store
                .entries()
                == 0
        },
    )
    .await;
    let mut conn = redis.conn().await;
    wait_until(Duration::from_secs(2), "the tier's copies are gone", || {
        let mut conn = conn.clone();
        async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("farmgate:cache:cache:*")
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.is_empty()
        }
    })
    .await;
    assert_eq!(fetch(a, "/page").await, ("MISS".into(), "v3".into()));
    let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();
}

/// Backend requests for a mixed workload (every URL several times, spread
/// over `instances` round-robin).
async fn backend_requests(instances: &[Running], b: &Backend) -> (usize, usize) {
    let before = b.hits();
    let mut sent = 0;
    for round in 0..6 {
        for u in 0..40 {
            let fg = &instances[(round * 40 + u) % instances.len()];
            fetch(fg, &format!("/item/{u}")).await;
            sent += 1;
        }
    }
    (b.hits() - before, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_hits_as_often_as_one_instance() {
    let redis = RedisServer::start().await;
    let b = slow(Duration::ZERO).await;
    let one = vec![start(&config(&b, None, "250ms")).await];
    let (fetched_one, sent) = backend_requests(&one, &b).await;
    let cfg = config(&b, Some(&redis), "2s");
    let tier = vec![start(&cfg).await, start(&cfg).await, start(&cfg).await];
    let (fetched_tier, _) = backend_requests(&tier, &b).await;
    let ratio = |fetched: usize| 1.0 - fetched as f64 / sent as f64;
    let (r1, r3) = (ratio(fetched_one), ratio(fetched_tier));
    assert!(
        (r1 - r3).abs() <= 0.05,
        "hit ratio of one instance {r1:.3}, of the tier {r3:.3}"
    );
    // Without the shared tier each instance would fetch each URL itself.
    assert!(fetched_tier < 40 * 2, "{fetched_tier} backend requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_makes_shared_lookups_misses_not_errors() {
    let redis = RedisServer::start().await;
    let b = slow(Duration::ZERO).await;
    let cfg = config(&b, Some(&redis), "100ms");
    let a = start(&cfg).await;
    let c = start(&cfg).await;
    assert_eq!(fetch(&a, "/x").await.0, "MISS");
    redis.pause();
    // Local hits stay hits; new URLs go to the backend; nothing fails.
    assert_eq!(fetch(&a, "/x").await.0, "HIT");
    for i in 0..20 {
        let (x, _) = fetch(&c, &format!("/y{i}")).await;
        assert_eq!(x, "MISS");
    }
    redis.resume();
    // Back: C's next fetch of a URL A stores reaches it through the tier.
    wait_until(Duration::from_secs(5), "Redis is back for A", || {
        let up = farmgate::cluster::Tier::of(&a.gateway)
            .redis()
            .is_some_and(|r| r.is_up());
        async move { up }
    })
    .await;
    wait_until(
        Duration::from_secs(5),
        "a response stored by A is a hit on C",
        || {
            let (a, c) = (&a, &c);
            async move {
                fetch(a, "/z").await;
                fetch(c, "/z").await.0 == "HIT"
            }
        },
    )
    .await;
}
