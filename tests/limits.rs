//! Rate limits through real sockets: a burst over a limit gets 429 with
//! `Retry-After` and the IETF RateLimit headers while the rest passes;
//! keys are independent; exempt clients pass; a rule limits only what it
//! matches (by its capture); a farm's limit; the concurrent cap; and the
//! bounded store under a flood of distinct keys.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

fn config(b: &Backend, listener: &str, farm: &str, top: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n{listener}\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - address: \"{}\"\n{farm}{top}",
        b.addr
    )
}

async fn get_with(
    c: &TestClient,
    url: &str,
    header: Option<(&str, &str)>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(url);
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    send(c, req.body(Full::new(Bytes::new())).unwrap()).await
}

#[tokio::test]
async fn a_burst_over_the_limit_gets_429_with_retry_after_and_ratelimit_headers() {
    let b = Backend::named("b").await;
    let cfg = config(
        &b,
        "    limits: [per-key]\n",
        "",
        "limits:\n  - name: per-key\n    key: header:X-Api-Key\n    rate: 1/min\n    burst: 3\n",
    );
    let fg = start(&cfg).await;
    let url = format!("http://{}/", fg.first_addr());
    let c = client();
    for i in 0..3 {
        let (s, _, _) = get_with(&c, &url, Some(("x-api-key", "alice"))).await;
        assert_eq!(s, StatusCode::OK, "request {i} is within the burst");
    }
    let (s, h, body) = get_with(&c, &url, Some(("x-api-key", "alice"))).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // One request a minute: the next fits in 60 s.
    assert_eq!(h["retry-after"], "60");
    assert_eq!(h["ratelimit-policy"], "\"per-key\";q=3;w=180");
    assert_eq!(h["ratelimit"], "\"per-key\";r=0;t=60");
    assert_eq!(b.hits(), 3, "a limited request never reaches the farm");

    // Another key has its own bucket; a request without the key is not
    // counted by this limit.
    let (s, _, _) = get_with(&c, &url, Some(("x-api-key", "bob"))).await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(get_with(&c, &url, None).await.0, StatusCode::OK);
    }
    let state = fg.gateway.snapshot().limits.get(0).unwrap().state.clone();
    assert_eq!((state.allowed(), state.limited()), (4, 1));
}

#[tokio::test]
async fn exempt_clients_pass_and_others_are_limited_by_address() {
    let b = Backend::named("b").await;
    let limits = "limits:\n  - name: per-ip\n    rate: 1/min\n    burst: 2\n    status: 503\n";
    let exempt = format!("{limits}    exempt: [\"127.0.0.0/8\"]\n");
    let fg = start(&config(&b, "    limits: [per-ip]\n", "", &exempt)).await;
    let c = client();
    let url = format!("http://{}/", fg.first_addr());
    for _ in 0..5 {
        assert_eq!(get(&c, &url).await.0, StatusCode::OK, "127.0.0.1 is exempt");
    }
    let fg = start(&config(&b, "    limits: [per-ip]\n", "", limits)).await;
    let url = format!("http://{}/", fg.first_addr());
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(get(&c, &url).await.0.as_u16());
        }
        v
    };
    assert_eq!(statuses, [200, 200, 503, 503], "the configured status");
}

#[tokio::test]
async fn a_rule_limits_only_what_it_matches_by_its_capture_and_a_farm_limit_applies() {
    let b = Backend::named("b").await;
    let top = "limits:\n  - name: per-user\n    key: \"{R:1}\"\n    rate: 1/min\n    burst: 2\n\
               \x20 - name: farm-wide\n    key: path\n    rate: 1/min\n    burst: 4\n\
               rules:\n  - name: user-api\n    match: \"^/api/(\\\\w+)\"\n    action: { limit: per-user }\n";
    let fg = start(&config(&b, "", "    limits: [farm-wide]\n", top)).await;
    let c = client();
    let base = format!("http://{}", fg.first_addr());
    let codes = |path: &'static str, n: usize| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(get(&c, &format!("{base}{path}")).await.0.as_u16());
            }
            v
        }
    };
    assert_eq!(codes("/api/alice", 3).await, [200, 200, 429]);
    assert_eq!(codes("/api/bob", 2).await, [200, 200], "another capture");
    // Unmatched paths pass the rule; the farm's limit counts by path.
    assert_eq!(codes("/page", 5).await, [200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn a_key_over_its_concurrent_cap_waits_its_turn() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let b = Backend::with_handler(
        "slow",
        Arc::new(move |req| {
            let g = g.clone();
            Box::pin(async move {
                if req.uri().path() == "/slow" {
                    g.notified().await;
                }
                text_response(200, "done")
            })
        }),
    )
    .await;
    let top = "limits:\n  - name: one-at-a-time\n    rate: 1000/s\n    concurrent: 1\n";
    let fg = start(&config(&b, "    limits: [one-at-a-time]\n", "", top)).await;
    let base = format!("http://{}", fg.first_addr());
    let c = fresh_client();
    let first = tokio::spawn({
        let (c, url) = (c.clone(), format!("{base}/slow"));
        async move { get(&c, &url).await.0 }
    });
    let state = fg.gateway.snapshot().limits.get(0).unwrap().state.clone();
    wait_until(
        Duration::from_secs(5),
        "the first request in flight",
        || {
            let s = state.clone();
            async move { s.inflight.keys() == 1 }
        },
    )
    .await;
    let (s, h, _) = get(&c, &format!("{base}/fast")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h["retry-after"], "1");
    assert_eq!(state.concurrent_refused(), 1);
    gate.notify_one();
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    // The place is given back when the response ends.
    wait_until(Duration::from_secs(5), "the place given back", || {
        let s = state.clone();
        async move { s.inflight.keys() == 0 }
    })
    .await;
    assert_eq!(get(&c, &format!("{base}/fast")).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_keys_stays_within_the_stores_cap() {
    let b = Backend::named("b").await;
    let top = "limits:\n  - name: per-key\n    key: query:k\n    rate: 1/min\n    burst: 1\n    max_keys: 1000\n";
    let fg = start(&config(&b, "    limits: [per-key]\n", "", top)).await;
    let base = format!("http://{}", fg.first_addr());
    let limit = fg.gateway.snapshot().limits.get(0).unwrap().state.clone();
    // 1,000 keys asked for: 128 buckets of 8, 16 bytes each.
    assert_eq!(limit.store.capacity(), 1024);
    assert_eq!(limit.store.memory(), 16 * 1024);
    let c = client();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (c, base) = (c.clone(), base.clone());
            tokio::spawn(async move {
                for i in 0..1000 {
                    let (s, _, _) = get(&c, &format!("{base}/?k={t}-{i}")).await;
                    assert_eq!(s, StatusCode::OK, "every key is new");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let keys = limit.store.keys();
    assert!(keys <= 1024, "{keys} keys tracked beyond the cap");
    assert!(keys > 500, "the store holds recent keys: {keys}");
    assert!(limit.store.evicted() >= 4000 - 1024);
    // A key seen last is still limited (its state survived the flood).
    let (s, _, _) = get(&c, &format!("{base}/?k=3-999")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}
