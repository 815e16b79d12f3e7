//! The cache under concurrency and failure, end to end: request
//! consolidation (one backend request for a burst, streamed to everyone as
//! it arrives, never sharing what is private, no stampede on errors),
//! stale_if_error, stores surviving a reload, and the purge endpoint.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use futures_util::stream;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// A backend that waits `delay`, then answers `status` with `cc` and body
/// `v{n}` (n counting its requests from 1).
async fn slow(delay: Duration, status: u16, cc: &'static str) -> Backend {
    let n = Arc::new(AtomicUsize::new(0));
    Backend::with_handler(
        "slow",
        Arc::new(move |_req| {
            let k = n.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let mut r = text_response(status, format!("v{k}"));
                r.headers_mut().insert("cache-control", cc.parse().unwrap());
                r
            })
        }),
    )
    .await
}

fn cache_section(extra: &str) -> String {
    format!("    cache:\n      enabled: true\n{extra}")
}

async fn cached(b: &Backend, extra: &str) -> farmgate::Running {
    start(&farm_config("round_robin", &[b], &cache_section(extra), "")).await
}

/// Sends `n` GETs for `path` at once; returns (status, X-Cache, body) each.
async fn burst(fg: &farmgate::Running, path: &str, n: usize) -> Vec<(StatusCode, String, String)> {
    let http = client();
    let url = format!("http://{}{path}", fg.first_addr());
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let (s, h, b) = get(&http, &url).await;
                let x = h
                    .get("x-cache")
                    .map_or("-", |v| v.to_str().unwrap())
                    .to_string();
                (s, x, b)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_burst_for_a_cold_key_makes_one_backend_request() {
    let b = slow(Duration::from_millis(200), 200, "max-age=60").await;
    let fg = cached(&b, "").await;
    let answers = burst(&fg, "/cold", 100).await;
    assert_eq!(b.hits(), 1, "the backend saw more than one request");
    assert!(answers
        .iter()
        .all(|(s, _, body)| *s == StatusCode::OK && body == "v1"));
    assert_eq!(answers.iter().filter(|a| a.1 == "MISS").count(), 1);
    let stats = cache_stats(&fg);
    assert_eq!(stats.misses.load(Ordering::Relaxed), 1);
    assert_eq!(stats.consolidated.load(Ordering::Relaxed), 99);
}

#[tokio::test]
async fn followers_receive_the_body_as_it_arrives() {
    let go = Arc::new(Notify::new());
    let g = go.clone();
    let b = Backend::with_handler(
        "stream",
        Arc::new(move |_req| {
            let go = g.clone();
            Box::pin(async move {
                let first = stream::iter([Ok::<_, BoxErr>(Frame::data(Bytes::from("first ")))]);
                let rest = stream::once(async move {
                    go.notified().await;
                    Ok::<_, BoxErr>(Frame::data(Bytes::from("second")))
                });
                let body = StreamBody::new(Box::pin(futures_util::StreamExt::chain(first, rest)));
                let mut r = http::Response::new(BodyExt::boxed(body));
                r.headers_mut()
                    .insert("cache-control", "max-age=60".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let fg = cached(&b, "").await;
    let url = format!("http://{}/s", fg.first_addr());
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let req = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), fresh_client().request(req))
            .await
            .unwrap()
            .unwrap();
        let mut body = resp.into_body();
        // The first chunk arrives while the backend still holds the rest.
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("first chunk not streamed before the response completed")
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), "first ");
        bodies.push(body);
    }
    assert_eq!(
        b.hits(),
        1,
        "the second client joined the first one's fetch"
    );
    go.notify_one();
    for body in bodies {
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "second");
    }
    let (_, h, body) = get(&client(), &url).await;
    assert_eq!(
        (h["x-cache"].to_str().unwrap(), body.as_str()),
        ("HIT", "first second")
    );
}

#[tokio::test]
async fn a_failing_leader_does_not_cause_a_stampede() {
    let b = slow(Duration::from_millis(200), 500, "no-cache").await;
    let fg = cached(&b, "").await;
    let answers = burst(&fg, "/err", 20).await;
    assert_eq!(b.hits(), 1);
    assert!(answers
        .iter()
        .all(|(s, _, body)| *s == StatusCode::INTERNAL_SERVER_ERROR && body == "v1"));
}

#[tokio::test]
async fn private_answers_are_never_shared_between_waiters() {
    // Counts requests in flight at the backend, and the most at once.
    let (now, most, n) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (c, m) = (now.clone(), most.clone());
    let b = Backend::with_handler(
        "private",
        Arc::new(move |_req| {
            let (c, m) = (c.clone(), m.clone());
            let k = n.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                m.fetch_max(c.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                c.fetch_sub(1, Ordering::SeqCst);
                let mut r = text_response(200, format!("v{k}"));
                r.headers_mut()
                    .insert("cache-control", "private, max-age=60".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let fg = cached(&b, "").await;
    let answers = burst(&fg, "/me", 5).await;
    let bodies: HashSet<_> = answers.iter().map(|a| a.2.clone()).collect();
    assert_eq!(
        (bodies.len(), b.hits()),
        (5, 5),
        "each client must get its own answer"
    );
    // Now the URL is known not to be shareable: nobody waits for a leader,
    // all five reach the backend together.
    most.store(0, Ordering::SeqCst);
    burst(&fg, "/me", 5).await;
    assert_eq!(b.hits(), 10);
    assert_eq!(
        most.load(Ordering::SeqCst),
        5,
        "requests queued behind a leader"
    );
}

#[tokio::test]
async fn stale_if_error_serves_stale_while_the_farm_is_down_then_gives_up() {
    let mut b = slow(Duration::ZERO, 200, "max-age=1").await;
    let fg = cached(&b, "      stale_if_error: 1s\n").await;
    let url = format!("http://{}/p", fg.first_addr());
    let (_, h, body) = get(&client(), &url).await;
    assert_eq!(
        (h["x-cache"].to_str().unwrap(), body.as_str()),
        ("MISS", "v1")
    );
    b.stop();
    let u = url.clone();
    wait_until(Duration::from_secs(5), "a stale answer", || {
        let u = u.clone();
        async move {
            let (s, h, body) = get(&fresh_client(), &u).await;
            assert_eq!((s, body.as_str()), (StatusCode::OK, "v1"));
            h["x-cache"] == "STALE"
        }
    })
    .await;
    wait_until(Duration::from_secs(5), "the stale window to end", || {
        let u = url.clone();
        async move {
            let (s, h, _) = get(&fresh_client(), &u).await;
            if s == StatusCode::OK {
                assert_eq!(h["x-cache"], "STALE");
            }
            s == StatusCode::BAD_GATEWAY
        }
    })
    .await;
}

#[tokio::test]
async fn stale_if_error_covers_a_backend_answering_5xx() {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let b = Backend::with_handler(
        "flaky",
        Arc::new(move |_req| {
            let down = f.load(Ordering::SeqCst);
            Box::pin(async move {
                let mut r = if down {
                    text_response(503, "down")
                } else {
                    text_response(200, "good")
                };
                r.headers_mut()
                    .insert("cache-control", "max-age=1".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let fg = cached(&b, "      stale_if_error: 1m\n").await;
    let url = format!("http://{}/f", fg.first_addr());
    get(&client(), &url).await;
    failing.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(5), "stale instead of the 503", || {
        let u = url.clone();
        async move {
            let (s, h, body) = get(&client(), &u).await;
            assert_eq!((s, body.as_str()), (StatusCode::OK, "good"));
            h["x-cache"] == "STALE"
        }
    })
    .await;
}

#[tokio::test]
async fn stored_responses_survive_a_reload_unless_the_key_changes() {
    let b = slow(Duration::ZERO, 200, "max-age=60").await;
    let registry = Arc::new(farmgate::farm::StateRegistry::default());
    let yaml = farm_config("round_robin", &[&b], &cache_section(""), "");
    let fg = start_with_registry(&yaml, registry.clone()).await;
    let url = format!("http://{}/keep?x=1", fg.first_addr());
    get(&client(), &url).await;
    let again = farmgate::config::load_str(&yaml, "test.yaml", &registry).unwrap();
    fg.gateway.install(again);
    let (_, h, body) = get(&client(), &url).await;
    assert_eq!(
        (h["x-cache"].to_str().unwrap(), body.as_str()),
        ("HIT", "v1")
    );
    let changed = farm_config(
        "round_robin",
        &[&b],
        &cache_section("      query_string: ignore\n"),
        "",
    );
    fg.gateway
        .install(farmgate::config::load_str(&changed, "test.yaml", &registry).unwrap());
    let (_, h, _) = get(&client(), &url).await;
    assert_eq!(h["x-cache"], "MISS", "old keys mean something else now");
    let stats = cache_stats(&fg);
    assert_eq!(
        stats.misses.load(Ordering::Relaxed),
        2,
        "counters carry over"
    );
}

#[tokio::test]
async fn purge_by_prefix_or_everything() {
    let b = slow(Duration::ZERO, 200, "max-age=60").await;
    let yaml = format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  bind: \"127.0.0.1:0\"\n  token: s3cret\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - address: \"{}\"\n{}",
        b.addr,
        cache_section("")
    );
    let fg = start(&yaml).await;
    let admin = format!("http://{}/api/cache/purge", fg.admin_addr().unwrap());
    let url = |p: &str| format!("http://{}{p}", fg.first_addr());
    let http = client();
    let purge = |body: &'static str| {
        let r = Request::post(&admin)
            .header("authorization", "Bearer s3cret")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        send(&http, r)
    };
    for p in ["/static/a.css", "/static/b.js", "/other"] {
        get(&client(), &url(p)).await;
    }
    let (s, _, body) = purge(r#"{"farm": "web", "prefix": "/static/"}"#).await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["purged"], 2);
    assert_eq!(
        get(&client(), &url("/static/a.css")).await.1["x-cache"],
        "MISS"
    );
    assert_eq!(get(&client(), &url("/other")).await.1["x-cache"], "HIT");
    let (s, _, body) = purge("").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["purged"],
        2
    );
    assert_eq!(get(&client(), &url("/other")).await.1["x-cache"], "MISS");
    assert_eq!(purge(r#"{"farm": "nope"}"#).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        purge(r#"{"prefix": "static"}"#).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(purge("not json").await.0, StatusCode::BAD_REQUEST);
    let anonymous = Request::post(&admin).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(&http, anonymous).await.0, StatusCode::UNAUTHORIZED);
}
