//! `GET /api/history`: the per-second samples follow a known load, a burst
//! of 500s shows as errors in the right seconds, and a drain is marked.
#![allow(clippy::unwrap_used)]

mod common;
use common::admin::*;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn history(c: &TestClient, fg: &farmgate::Running, query: &str) -> Value {
    let (status, headers, body) = admin_get(c, fg, &format!("/api/history?{query}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    serde_json::from_str(&body).unwrap()
}

fn samples(v: &Value) -> Vec<Value> {
    v["samples"].as_array().unwrap().clone()
}

fn field(s: &Value, k: &str) -> f64 {
    s[k].as_f64().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_follows_load_errors_and_drains() {
    let a = Backend::with_handler(
        "a",
        Arc::new(|req| {
            let code = if req.uri().path() == "/fail" {
                500
            } else {
                200
            };
            Box::pin(async move { text_response(code, "a") })
        }),
    )
    .await;
    let b = Backend::named("b").await;
    let cfg = with_admin(&farm_config("round_robin", &[&a, &b], "", ""), Some("t0k"));
    let fg = start(&cfg).await;
    let http = client();
    let url = format!("http://{}/", fg.first_addr());

    // 40 requests/s for 3 s: 20/s to each server.
    let load_from = now_s();
    let mut every = tokio::time::interval(Duration::from_millis(25));
    for _ in 0..120 {
        every.tick().await;
        assert_eq!(get(&http, &url).await.0, 200);
    }
    let load_to = now_s();
    // Wait for the tick after the load, so its last second is sampled.
    wait_until(
        Duration::from_secs(5),
        "a sample after the load",
        || async {
            let h = history(&http, &fg, "farm=web&server=a").await;
            samples(&h)
                .last()
                .is_some_and(|s| s["t"].as_u64().unwrap() > load_to)
        },
    )
    .await;
    let h = history(&http, &fg, "farm=web&server=a").await;
    let servers = h["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "only the server asked for");
    let a_samples = servers[0]["samples"].as_array().unwrap();
    let total: f64 = a_samples
        .iter()
        .map(|s| field(s, "requests_per_second"))
        .sum();
    assert!(
        (54.0..=66.0).contains(&total),
        "a got 60 requests, samples add up to {total}"
    );
    let busy: Vec<f64> = a_samples
        .iter()
        .filter(|s| (load_from + 1..load_to).contains(&s["t"].as_u64().unwrap()))
        .map(|s| field(s, "requests_per_second"))
        .collect();
    assert!(!busy.is_empty());
    for r in &busy {
        assert!(
            (10.0..=30.0).contains(r),
            "~20/s to a in full seconds of the load: {busy:?}"
        );
    }
    assert!(a_samples
        .iter()
        .all(|s| field(s, "errors_per_second") == 0.0));
    assert!(
        a_samples.iter().any(|s| s["p99_ms"].is_number()),
        "latency sampled"
    );
    // The farm's series adds both servers.
    let farm_total: f64 = samples(&h)
        .iter()
        .map(|s| field(s, "requests_per_second"))
        .sum();
    assert!((108.0..=132.0).contains(&farm_total), "{farm_total}");

    // Five 500s now: errors in the samples of these seconds, none before.
    let fail_from = now_s();
    for _ in 0..10 {
        get(&http, &format!("http://{}/fail", fg.first_addr())).await;
    }
    let fail_to = now_s();
    wait_until(Duration::from_secs(5), "the errors sampled", || async {
        let h = history(&http, &fg, "farm=web&server=a").await;
        h["servers"][0]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| field(s, "errors_per_second") > 0.0)
    })
    .await;
    let h = history(&http, &fg, "farm=web&server=a").await;
    let errs: Vec<(u64, f64)> = h["servers"][0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["t"].as_u64().unwrap(), field(s, "errors_per_second")))
        .filter(|(_, e)| *e > 0.0)
        .collect();
    for (t, _) in &errs {
        assert!(
            (fail_from..=fail_to + 2).contains(t),
            "errors at {t}, sent {fail_from}..{fail_to}"
        );
    }
    let sum: f64 = errs.iter().map(|(_, e)| e).sum();
    assert!((4.0..=6.0).contains(&sum), "5 of the 10 went to a: {sum}");

    // A drain is marked at the time it happened.
    let drained_at = now_s();
    let (st, _, body) = admin_post(&http, &fg, "/api/farms/web/servers/b/drain", Some("t0k")).await;
    assert_eq!(st, 200, "{body}");
    wait_until(Duration::from_secs(5), "the drain mark", || async {
        let h = history(&http, &fg, "farm=web").await;
        h["marks"].as_array().unwrap().iter().any(|m| {
            m["server"] == "b"
                && m["kind"] == "draining"
                && (drained_at..=drained_at + 2).contains(&m["t"].as_u64().unwrap())
        })
    })
    .await;

    // Every farm without a farm parameter; bad parameters are refused.
    let all = history(&http, &fg, "seconds=5").await;
    let farms = all["farms"].as_array().unwrap();
    assert_eq!(farms.len(), 1);
    assert!(farms[0]["samples"].as_array().unwrap().len() <= 6);
    assert_eq!(farms[0]["servers"].as_array().unwrap().len(), 2);
    for (q, code) in [
        ("farm=nope", 404),
        ("farm=web&server=nope", 404),
        ("seconds=abc", 400),
        ("server=a", 400),
    ] {
        let (status, _, body) = admin_get(&http, &fg, &format!("/api/history?{q}")).await;
        assert_eq!(status.as_u16(), code, "{q}: {body}");
    }
}
