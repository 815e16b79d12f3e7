//! The cache's newer rules end to end over real sockets: targeted cache
//! control (RFC 9213), stored error statuses, stale-while-revalidate
//! (RFC 5861) with one background revalidation, byte ranges from the cache,
//! and a robust Age.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A backend answering `f(n)` (status, headers, body), n counting from 1.
async fn origin<F>(f: F) -> Backend
where
    F: Fn(usize) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let n = Arc::new(AtomicUsize::new(0));
    Backend::with_handler(
        "origin",
        Arc::new(move |_req| {
            let k = n.fetch_add(1, Ordering::SeqCst) + 1;
            let (status, headers, body) = f(k);
            let mut r = text_response(status, body);
            for (name, v) in headers {
                r.headers_mut().append(name, v.parse().unwrap());
            }
            Box::pin(async move { r })
        }),
    )
    .await
}

async fn cached(b: &Backend, cache: &str) -> farmgate::Running {
    let cfg = farm_config(
        "round_robin",
        &[b],
        &format!("    cache:\n      enabled: true\n{cache}"),
        "",
    );
    start(&cfg).await
}

async fn get_with(
    fg: &farmgate::Running,
    path: &str,
    headers: &[(&'static str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut b = Request::get(format!("http://{}{path}", fg.first_addr()));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(&client(), b.body(Full::new(Bytes::new())).unwrap()).await
}

fn x_cache(h: &http::HeaderMap) -> &str {
    h.get("x-cache").map_or("-", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_503_with_max_age_is_served_twice_with_one_backend_request() {
    let b = origin(|n| {
        (
            503,
            vec![("cache-control", "max-age=100".into())],
            format!("down {n}"),
        )
    })
    .await;
    let fg = cached(&b, "").await;
    let (s1, h1, body1) = get_with(&fg, "/status", &[]).await;
    let (s2, h2, body2) = get_with(&fg, "/status", &[]).await;
    assert_eq!(
        (s1, s2),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::SERVICE_UNAVAILABLE
        )
    );
    assert_eq!((body1.as_str(), body2.as_str()), ("down 1", "down 1"));
    assert_eq!((x_cache(&h1), x_cache(&h2)), ("MISS", "HIT"));
    assert_eq!(b.hits(), 1);
    // Without explicit freshness an error is not stored.
    let b = origin(|n| (500, vec![], format!("e{n}"))).await;
    let fg = cached(&b, "").await;
    get_with(&fg, "/x", &[]).await;
    let (_, _, body) = get_with(&fg, "/x", &[]).await;
    assert_eq!((body.as_str(), b.hits()), ("e2", 2));
}

#[tokio::test]
async fn cdn_cache_control_decides_for_the_cache_and_cache_control_reaches_the_client() {
    // no-store in the targeted field beats a long Cache-Control.
    let b = origin(|n| {
        (
            200,
            vec![
                ("cache-control", "max-age=3600".into()),
                ("cdn-cache-control", "no-store".into()),
            ],
            format!("v{n}"),
        )
    })
    .await;
    let fg = cached(&b, "").await;
    get_with(&fg, "/a", &[]).await;
    let (_, h, body) = get_with(&fg, "/a", &[]).await;
    assert_eq!((body.as_str(), b.hits()), ("v2", 2), "not stored");
    assert_eq!(
        h["cache-control"], "max-age=3600",
        "Cache-Control untouched"
    );
    assert_eq!(h["cdn-cache-control"], "no-store", "forwarded by default");

    // CDN-Cache-Control alone makes a response storable.
    let b = origin(|n| {
        (
            200,
            vec![("cdn-cache-control", "max-age=3600".into())],
            format!("v{n}"),
        )
    })
    .await;
    let fg = cached(&b, "").await;
    get_with(&fg, "/b", &[]).await;
    let (_, h, body) = get_with(&fg, "/b", &[]).await;
    assert_eq!((x_cache(&h), body.as_str(), b.hits()), ("HIT", "v1", 1));

    // An invalid one is ignored as a whole: Cache-Control applies.
    let b = origin(|n| {
        (
            200,
            vec![
                ("cache-control", "no-store".into()),
                ("cdn-cache-control", "max-age=\"3600\"".into()),
            ],
            format!("v{n}"),
        )
    })
    .await;
    let fg = cached(&b, "").await;
    get_with(&fg, "/c", &[]).await;
    get_with(&fg, "/c", &[]).await;
    assert_eq!(b.hits(), 2, "Cache-Control's no-store holds");

    // The operator's own field is obeyed first and removed for the client.
    let b = origin(|n| {
        (
            200,
            vec![
                ("cache-control", "no-store".into()),
                ("farmgate-cache-control", "max-age=60".into()),
            ],
            format!("v{n}"),
        )
    })
    .await;
    let fg = cached(
        &b,
        "      targeted_fields: [Farmgate-Cache-Control, CDN-Cache-Control]\n",
    )
    .await;
    let (_, h1, _) = get_with(&fg, "/d", &[]).await;
    let (_, h2, body) = get_with(&fg, "/d", &[]).await;
    assert_eq!((x_cache(&h2), body.as_str(), b.hits()), ("HIT", "v1", 1));
    assert!(
        h1.get("farmgate-cache-control").is_none() && h2.get("farmgate-cache-control").is_none()
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_at_once_with_exactly_one_background_request() {
    // v1 goes stale after a second; v2 stays fresh for the rest of the test.
    let b = origin(|n| {
        let age = if n == 1 { 1 } else { 600 };
        (
            200,
            vec![(
                "cache-control",
                format!("max-age={age}, stale-while-revalidate=60"),
            )],
            format!("v{n}"),
        )
    })
    .await;
    let fg = cached(&b, "").await;
    get_with(&fg, "/swr", &[]).await;
    let stats = cache_stats(&fg);
    // Wait until the entry is stale (max-age=1), without a fixed sleep.
    wait_until(Duration::from_secs(5), "the entry goes stale", || {
        let fg = &fg;
        async move {
            let (_, h, _) = get_with(fg, "/swr", &[]).await;
            x_cache(&h) == "STALE"
        }
    })
    .await;
    // Every stale hit in the window is answered from the store at once
    // while a single background request refreshes it.
    let answers: Vec<_> =
        futures_util::future::join_all((0..20).map(|_| get_with(&fg, "/swr", &[]))).await;
    assert!(answers
        .iter()
        .all(|(s, _, body)| *s == StatusCode::OK && body.starts_with('v')));
    wait_until(
        Duration::from_secs(5),
        "the background revalidation stored v2",
        || {
            let fg = &fg;
            async move { get_with(fg, "/swr", &[]).await.2 == "v2" }
        },
    )
    .await;
    assert_eq!(
        b.hits(),
        2,
        "one background request, whatever the number of stale hits"
    );
    assert_eq!(stats.background.load(Ordering::Relaxed), 1);
    assert!(stats.get(farmgate::cache::CacheResult::StaleRevalidate) >= 1);
}

#[tokio::test]
async fn ranges_are_cut_from_the_stored_object() {
    let b = origin(|_| {
        (
            200,
            vec![
                ("cache-control", "max-age=600".into()),
                ("etag", "\"e1\"".into()),
            ],
            "0123456789abcdef".into(),
        )
    })
    .await;
    let fg = cached(&b, "").await;
    // A miss with a range fetches (and stores) the whole object and
    // answers the range from it.
    let (s, h, body) = get_with(&fg, "/file", &[("range", "bytes=2-5")]).await;
    assert_eq!((s, body.as_str()), (StatusCode::PARTIAL_CONTENT, "2345"));
    assert_eq!(h["content-range"], "bytes 2-5/16");
    // Hits: the right bytes, no backend request.
    let (s, h, body) = get_with(&fg, "/file", &[("range", "bytes=-3")]).await;
    assert_eq!(
        (s, body.as_str(), x_cache(&h)),
        (StatusCode::PARTIAL_CONTENT, "def", "HIT")
    );
    let (s, h, _) = get_with(&fg, "/file", &[("range", "bytes=16-")]).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h["content-range"], "bytes */16");
    let (s, _, body) = get_with(
        &fg,
        "/file",
        &[("range", "bytes=0-0"), ("if-range", "\"e1\"")],
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::PARTIAL_CONTENT, "0"));
    let (s, _, body) = get_with(
        &fg,
        "/file",
        &[("range", "bytes=0-0"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(
        (s, body.len()),
        (StatusCode::OK, 16),
        "If-Range mismatch: the whole object"
    );
    let (s, _, body) = get_with(&fg, "/file", &[("range", "bytes=0-1,4-5")]).await;
    assert_eq!(
        (s, body.len()),
        (StatusCode::OK, 16),
        "several ranges: the whole object"
    );
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn a_backend_206_is_passed_on_and_never_stored() {
    let b = origin(|n| {
        (
            206,
            vec![
                ("cache-control", "max-age=600".into()),
                ("content-range", "bytes 0-1/10".into()),
            ],
            format!("{n}x"),
        )
    })
    .await;
    let fg = cached(&b, "").await;
    let (s, _, _) = get_with(&fg, "/p", &[]).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    get_with(&fg, "/p", &[]).await;
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn an_age_list_counts_its_first_member() {
    // max-age=3600 with Age 7200: already stale when it arrives, so the
    // next request goes to the backend again (with "7200, 0" read as 0 it
    // would be a hit).
    let b = origin(|n| {
        (
            200,
            vec![
                ("cache-control", "max-age=3600".into()),
                ("age", "7200, 0".into()),
            ],
            format!("v{n}"),
        )
    })
    .await;
    let fg = cached(&b, "      stale_if_error: 0s\n").await;
    get_with(&fg, "/aged", &[]).await;
    let (_, _, body) = get_with(&fg, "/aged", &[]).await;
    assert_eq!((body.as_str(), b.hits()), ("v2", 2));
}
