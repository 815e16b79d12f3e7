//! Balancing algorithms end to end: real backends, a real farmgate, exact
//! sequences where the algorithm is deterministic and measured distributions
//! where it is not.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use http::StatusCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A farm `web` over `servers` as (backend, weight).
fn weighted_config(algorithm: &str, servers: &[(&Backend, u32)], extra_farm: &str) -> String {
    let mut yaml = format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    algorithm: {algorithm}\n    servers:\n"
    );
    for (b, w) in servers {
        yaml.push_str(&format!(
            "      - {{ name: {}, address: \"{}\", weight: {w} }}\n",
            b.name, b.addr
        ));
    }
    yaml + extra_farm
}

/// A backend that answers its name after `delay_ms` (switchable at runtime).
async fn switchable(name: &str, delay_ms: Arc<AtomicU64>) -> Backend {
    let n = name.to_string();
    Backend::with_handler(
        name,
        Arc::new(move |_req| {
            let (n, d) = (n.clone(), delay_ms.load(Ordering::Relaxed));
            Box::pin(async move {
                if d > 0 {
                    tokio::time::sleep(Duration::from_millis(d)).await;
                }
                text_response(200, n)
            })
        }),
    )
    .await
}

async fn bodies(url: &str, n: usize) -> Vec<String> {
    let http = client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (status, _, body) = get(&http, url).await;
        assert_eq!(status, StatusCode::OK);
        out.push(body);
    }
    out
}

fn count(bodies: &[String], name: &str) -> usize {
    bodies.iter().filter(|b| b.as_str() == name).count()
}

#[tokio::test]
async fn weighted_round_robin_one_to_three_is_b_a_b_b() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let fg = start(&weighted_config(
        "weighted_round_robin",
        &[(&a, 1), (&b, 3)],
        "",
    ))
    .await;
    let seq = bodies(&format!("http://{}/", fg.first_addr()), 8).await;
    assert_eq!(seq, ["b", "a", "b", "b", "b", "a", "b", "b"]);
}

#[tokio::test]
async fn weight_zero_takes_no_new_traffic() {
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    for algorithm in farmgate::farm::selection::ALGORITHMS {
        let fg = start(&weighted_config(
            algorithm,
            &[(&a, 1), (&b, 0), (&c, 2)],
            "",
        ))
        .await;
        let seq = bodies(&format!("http://{}/", fg.first_addr()), 30).await;
        assert_eq!(count(&seq, "b"), 0, "{algorithm}: {seq:?}");
        assert!(count(&seq, "a") > 0 || count(&seq, "c") > 0);
    }
}

#[tokio::test]
async fn every_algorithm_reaches_every_server() {
    let backends = [
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    for algorithm in farmgate::farm::selection::ALGORITHMS {
        // hash keys on a query parameter so distinct users spread.
        let extra = if *algorithm == "hash" {
            "    hash_key: query:user\n"
        } else {
            ""
        };
        let fg = start(&farm_config(algorithm, &refs, extra, "")).await;
        let http = client();
        let mut seen = HashMap::new();
        for i in 0..60 {
            let url = format!("http://{}/?user=u{i}", fg.first_addr());
            let (status, _, body) = get(&http, &url).await;
            assert_eq!(status, StatusCode::OK, "{algorithm}");
            *seen.entry(body).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3, "{algorithm} left a server idle: {seen:?}");
    }
}

#[tokio::test]
async fn hash_sends_one_key_to_one_server_on_every_instance() {
    let backends = [
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
        Backend::named("d").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let cfg = farm_config("hash", &refs, "    hash_key: header:x-user\n", "");
    let (one, two) = (start(&cfg).await, start(&cfg).await);
    let http = client();
    let mut placement = HashMap::new();
    for user in 0..40 {
        let mut servers = Vec::new();
        for fg in [&one, &two, &one] {
            let req = http::Request::get(format!("http://{}/", fg.first_addr()))
                .header("x-user", format!("user-{user}"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            servers.push(send(&http, req).await.2);
        }
        assert!(
            servers.iter().all(|s| s == &servers[0]),
            "user-{user} moved between requests or instances: {servers:?}"
        );
        placement.insert(user, servers[0].clone());
    }
    let used: std::collections::HashSet<_> = placement.values().collect();
    assert!(used.len() >= 3, "40 keys on {} servers", used.len());
}

#[tokio::test]
async fn least_requests_sends_less_to_a_slow_backend() {
    let fast = switchable("fast", Arc::new(AtomicU64::new(0))).await;
    let slow = switchable("slow", Arc::new(AtomicU64::new(150))).await;
    let fg = start(&farm_config("least_requests", &[&fast, &slow], "", "")).await;
    let url = format!("http://{}/", fg.first_addr());
    // 8 concurrent clients, 240 requests in all.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { bodies(&url, 30).await })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let (f, s) = (count(&all, "fast"), count(&all, "slow"));
    assert_eq!(f + s, 240);
    assert!(s * 4 < f, "slow backend got {s} of 240 (fast {f})");
}

#[tokio::test]
async fn least_response_time_leaves_a_backend_that_turns_slow_and_returns_when_it_recovers() {
    let delay = Arc::new(AtomicU64::new(0));
    let steady = switchable("steady", Arc::new(AtomicU64::new(0))).await;
    let flaky = switchable("flaky", delay.clone()).await;
    let fg = start(&farm_config(
        "least_response_time",
        &[&steady, &flaky],
        "",
        "",
    ))
    .await;
    let url = format!("http://{}/", fg.first_addr());

    // Both fast: both serve. (Polled: on a busy machine one scheduling
    // hiccup is a slow answer, and peak-EWMA reacts to it as it should.)
    let url1 = url.clone();
    wait_until(Duration::from_secs(30), "both backends serve", || {
        let url = url1.clone();
        async move { count(&bodies(&url, 20).await, "flaky") >= 3 }
    })
    .await;

    // Turns slow: after its first slow answer it gets (almost) nothing.
    delay.store(200, Ordering::Relaxed);
    let seq = bodies(&url, 100).await;
    assert!(
        count(&seq, "flaky") <= 3,
        "slow backend kept traffic: {seq:?}"
    );

    // Recovers: its estimate decays, it is tried again and wins traffic back.
    delay.store(0, Ordering::Relaxed);
    let url2 = url.clone();
    wait_until(
        Duration::from_secs(45),
        "recovered backend gets traffic back",
        || {
            let url = url2.clone();
            async move { count(&bodies(&url, 20).await, "flaky") >= 5 }
        },
    )
    .await;
}
