//! The response cache, one test per RFC 9111 rule it applies, end to end
//! through real sockets: what is stored, what is not, keys, freshness,
//! conditionals, revalidation, size limits and eviction.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A backend whose answer is `f(request head, n)`, n counting from 1.
async fn origin<F>(f: F) -> Backend
where
    F: Fn(&http::request::Parts, usize) -> http::Response<TestBody> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let n = Arc::new(AtomicUsize::new(0));
    Backend::with_handler(
        "origin",
        Arc::new(move |req| {
            let k = n.fetch_add(1, Ordering::SeqCst) + 1;
            let (parts, _) = req.into_parts();
            let r = f(&parts, k);
            Box::pin(async move { r })
        }),
    )
    .await
}

/// A 200 with `headers` and body `v{n}`.
fn answer(headers: &[(&str, &str)], n: usize) -> http::Response<TestBody> {
    let mut r = text_response(200, format!("v{n}"));
    for (k, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

/// A backend always answering with `headers`.
async fn fixed(headers: &'static [(&'static str, &'static str)]) -> Backend {
    origin(move |_, n| answer(headers, n)).await
}

/// farmgate with one farm over `b` whose cache section is `cache` (lines
/// indented six spaces).
async fn cached(b: &Backend, cache: &str) -> farmgate::Running {
    let cfg = farm_config(
        "round_robin",
        &[b],
        &format!("    cache:\n      enabled: true\n{cache}"),
        "",
    );
    start(&cfg).await
}

fn url(fg: &farmgate::Running, path: &str) -> String {
    format!("http://{}{path}", fg.first_addr())
}

async fn get_with(
    fg: &farmgate::Running,
    path: &str,
    headers: &[(&'static str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut b = Request::get(url(fg, path));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(&client(), b.body(Full::new(Bytes::new())).unwrap()).await
}

fn x_cache(h: &http::HeaderMap) -> &str {
    h.get("x-cache").map_or("-", |v| v.to_str().unwrap())
}

/// GETs `path` twice; returns the second answer and the backend's hits.
async fn twice(fg: &farmgate::Running, b: &Backend, path: &str) -> (String, String, usize) {
    let (_, h1, _) = get(&client(), &url(fg, path)).await;
    assert_eq!(x_cache(&h1), "MISS");
    let (_, h2, body) = get(&client(), &url(fg, path)).await;
    (x_cache(&h2).to_string(), body, b.hits())
}

#[tokio::test]
async fn max_age_response_is_a_hit_with_age_and_head_is_answered_from_it() {
    let b = fixed(&[("cache-control", "max-age=60")]).await;
    let fg = cached(&b, "").await;
    let (x, body, hits) = twice(&fg, &b, "/page").await;
    assert_eq!((x.as_str(), body.as_str(), hits), ("HIT", "v1", 1));
    let (_, h, _) = get(&client(), &url(&fg, "/page")).await;
    assert!(h["age"].to_str().unwrap().parse::<u64>().unwrap() < 60);
    assert_eq!(h["content-length"], "2");
    let head = Request::head(url(&fg, "/page"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, body) = send(&client(), head).await;
    assert_eq!(
        (status, x_cache(&h), body.as_str()),
        (StatusCode::OK, "HIT", "")
    );
    assert_eq!(h["content-length"], "2");
    assert_eq!(b.hits(), 1);
    let stats = cache_stats(&fg);
    assert_eq!(stats.hits.load(Ordering::Relaxed), 3);
    assert_eq!(stats.misses.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn private_is_never_stored() {
    let b = fixed(&[("cache-control", "private, max-age=60")]).await;
    let fg = cached(&b, "").await;
    let (x, body, hits) = twice(&fg, &b, "/me").await;
    assert_eq!((x.as_str(), body.as_str(), hits), ("MISS", "v2", 2));
}

#[tokio::test]
async fn no_store_is_never_stored() {
    let b = fixed(&[("cache-control", "no-store, max-age=60")]).await;
    let fg = cached(&b, "").await;
    let (x, _, hits) = twice(&fg, &b, "/x").await;
    assert_eq!((x.as_str(), hits), ("MISS", 2));
    // A request's no-store keeps its response out of the cache too.
    let b = fixed(&[("cache-control", "max-age=60")]).await;
    let fg = cached(&b, "").await;
    get_with(&fg, "/y", &[("cache-control", "no-store")]).await;
    let (_, h, _) = get(&client(), &url(&fg, "/y")).await;
    assert_eq!((x_cache(&h), b.hits()), ("MISS", 2));
}

#[tokio::test]
async fn set_cookie_is_stored_only_when_public_and_the_cookie_never_shared() {
    let b = origin(|p, n| {
        let cc = if p.uri.path() == "/public" {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        answer(&[("cache-control", cc), ("set-cookie", "session=alice")], n)
    })
    .await;
    let fg = cached(&b, "").await;
    let (x, _, hits) = twice(&fg, &b, "/plain").await;
    assert_eq!((x.as_str(), hits), ("MISS", 2));
    let (_, first, _) = get(&client(), &url(&fg, "/public")).await;
    assert_eq!(
        first["set-cookie"], "session=alice",
        "the fetching client keeps it"
    );
    let (_, h, _) = get(&client(), &url(&fg, "/public")).await;
    assert_eq!((x_cache(&h), b.hits()), ("HIT", 3));
    assert!(
        !h.contains_key("set-cookie"),
        "a stored cookie reached another client"
    );
}

#[tokio::test]
async fn authorization_requests_are_stored_only_when_the_response_allows() {
    let b = origin(|p, n| {
        let cc = if p.uri.path() == "/shared" {
            "s-maxage=60"
        } else {
            "max-age=60"
        };
        answer(&[("cache-control", cc)], n)
    })
    .await;
    let fg = cached(&b, "").await;
    let auth = [("authorization", "Bearer alice")];
    get_with(&fg, "/mine", &auth).await;
    let (_, h, body) = get(&client(), &url(&fg, "/mine")).await;
    assert_eq!(
        (x_cache(&h), body.as_str()),
        ("MISS", "v2"),
        "alice's answer reached anonymous"
    );
    get_with(&fg, "/shared", &auth).await;
    let (_, h, _) = get(&client(), &url(&fg, "/shared")).await;
    assert_eq!((x_cache(&h), b.hits()), ("HIT", 3));
}

#[tokio::test]
async fn vary_keys_each_variant_and_vary_star_is_not_stored() {
    let b = origin(|p, n| {
        if p.uri.path() == "/star" {
            return answer(&[("cache-control", "max-age=60"), ("vary", "*")], n);
        }
        let enc = p
            .headers
            .get("accept-encoding")
            .map_or("identity", |v| v.to_str().unwrap());
        let mut r = answer(
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
            n,
        );
        *r.body_mut() = full(format!("{enc} v{n}"));
        r
    })
    .await;
    let fg = cached(&b, "").await;
    let gzip = [("accept-encoding", "gzip")];
    assert_eq!(get_with(&fg, "/v", &gzip).await.2, "gzip v1");
    assert_eq!(get_with(&fg, "/v", &[]).await.2, "identity v2");
    let (_, h, body) = get_with(&fg, "/v", &gzip).await;
    assert_eq!((x_cache(&h), body.as_str()), ("HIT", "gzip v1"));
    let (_, h, body) = get_with(&fg, "/v", &[]).await;
    assert_eq!((x_cache(&h), body.as_str()), ("HIT", "identity v2"));
    let (_, h, _) = get_with(&fg, "/v", &[("accept-encoding", "br")]).await;
    assert_eq!(x_cache(&h), "MISS");
    assert_eq!(b.hits(), 3);
    get(&client(), &url(&fg, "/star")).await;
    let (_, h, _) = get(&client(), &url(&fg, "/star")).await;
    assert_eq!((x_cache(&h), b.hits()), ("MISS", 5));
}

#[tokio::test]
async fn s_maxage_overrides_max_age_for_the_shared_cache() {
    // Both responses are 30 s old on arrival (Age: 30).
    let b = origin(|p, n| {
        let cc = if p.uri.path() == "/short" {
            "max-age=60, s-maxage=10" // stale for us: not stored
        } else {
            "max-age=10, s-maxage=60" // fresh for us: stored
        };
        answer(&[("cache-control", cc), ("age", "30")], n)
    })
    .await;
    let fg = cached(&b, "").await;
    let (x, _, _) = twice(&fg, &b, "/short").await;
    assert_eq!(x, "MISS");
    let (x, _, hits) = twice(&fg, &b, "/long").await;
    assert_eq!((x.as_str(), hits), ("HIT", 3));
    let (_, h, _) = get(&client(), &url(&fg, "/long")).await;
    assert!(h["age"].to_str().unwrap().parse::<u64>().unwrap() >= 30);
}

#[tokio::test]
async fn expires_gives_freshness_and_a_past_expires_none() {
    let b = origin(|p, n| {
        let now = SystemTime::now();
        let exp = if p.uri.path() == "/future" {
            httpdate::fmt_http_date(now + Duration::from_secs(120))
        } else {
            httpdate::fmt_http_date(now - Duration::from_secs(120))
        };
        answer(
            &[("date", &httpdate::fmt_http_date(now)), ("expires", &exp)],
            n,
        )
    })
    .await;
    let fg = cached(&b, "").await;
    let (x, _, _) = twice(&fg, &b, "/future").await;
    assert_eq!(x, "HIT");
    let (x, _, hits) = twice(&fg, &b, "/past").await;
    assert_eq!((x.as_str(), hits), ("MISS", 3));
}

#[tokio::test]
async fn default_ttl_caches_bare_responses_that_are_otherwise_passed() {
    let b = fixed(&[]).await;
    let fg = cached(&b, "").await;
    let (x, _, hits) = twice(&fg, &b, "/bare").await;
    assert_eq!(
        (x.as_str(), hits),
        ("MISS", 2),
        "no freshness, no validator: never reused"
    );
    let b = fixed(&[]).await;
    let fg = cached(&b, "      default_ttl: 60s\n").await;
    let (x, _, hits) = twice(&fg, &b, "/bare").await;
    assert_eq!((x.as_str(), hits), ("HIT", 1));
}

#[tokio::test]
async fn query_string_include_and_ignore() {
    let b = fixed(&[("cache-control", "max-age=60")]).await;
    let fg = cached(&b, "      query_string: include\n").await;
    get(&client(), &url(&fg, "/q?a=1")).await;
    let (_, h, _) = get(&client(), &url(&fg, "/q?a=2")).await;
    assert_eq!((x_cache(&h), b.hits()), ("MISS", 2));
    let b = fixed(&[("cache-control", "max-age=60")]).await;
    let fg = cached(&b, "      query_string: ignore\n").await;
    get(&client(), &url(&fg, "/q?a=1")).await;
    let (_, h, body) = get(&client(), &url(&fg, "/q?a=2")).await;
    assert_eq!((x_cache(&h), body.as_str(), b.hits()), ("HIT", "v1", 1));
}

#[tokio::test]
async fn client_conditionals_get_304_from_the_cache() {
    let lm = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
    let b = origin(move |_, n| {
        answer(
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"abc\""),
                ("last-modified", &lm),
            ],
            n,
        )
    })
    .await;
    let fg = cached(&b, "").await;
    // Even the first (filling) request is answered 304 from the response.
    let (status, h, _) = get_with(&fg, "/c", &[("if-none-match", "\"abc\"")]).await;
    assert_eq!((status, x_cache(&h)), (StatusCode::NOT_MODIFIED, "MISS"));
    assert!(
        !b.last_seen().headers.contains_key("if-none-match"),
        "validators were stripped"
    );
    let (status, h, body) = get_with(&fg, "/c", &[("if-none-match", "W/\"abc\"")]).await;
    assert_eq!(
        (status, x_cache(&h), body.as_str()),
        (StatusCode::NOT_MODIFIED, "HIT", "")
    );
    assert_eq!(h["etag"], "\"abc\"");
    let now = httpdate::fmt_http_date(SystemTime::now());
    let (status, _, _) = get_with(&fg, "/c", &[("if-modified-since", &now)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, body) = get_with(&fg, "/c", &[("if-none-match", "\"other\"")]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "v1"));
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let b = origin(|p, n| {
        if p.headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"e1\"")
        {
            let mut r = text_response(304, "");
            r.headers_mut()
                .insert("cache-control", "max-age=1".parse().unwrap());
            r.headers_mut()
                .insert("x-revalidated", "yes".parse().unwrap());
            return r;
        }
        answer(&[("cache-control", "max-age=1"), ("etag", "\"e1\"")], n)
    })
    .await;
    let fg = cached(&b, "").await;
    get(&client(), &url(&fg, "/r")).await;
    let seen = b.seen.clone();
    let target = url(&fg, "/r");
    wait_until(
        Duration::from_secs(5),
        "a conditional request to the backend",
        || {
            let seen = seen.clone();
            let target = target.clone();
            async move {
                let (status, _, body) = get(&client(), &target).await;
                assert_eq!((status, body.as_str()), (StatusCode::OK, "v1"));
                seen.lock()
                    .unwrap()
                    .iter()
                    .any(|p| p.headers.contains_key("if-none-match"))
            }
        },
    )
    .await;
    let (_, h, body) = get(&client(), &url(&fg, "/r")).await;
    assert_eq!((x_cache(&h), body.as_str()), ("HIT", "v1"));
    assert_eq!(
        h["x-revalidated"], "yes",
        "the 304's fields update the stored head"
    );
    let stats = cache_stats(&fg);
    assert!(stats.revalidated.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn objects_over_max_object_size_stream_through_uncached() {
    let b = origin(|p, n| {
        let size = if p.uri.path() == "/big" { 4096 } else { 512 };
        let mut r = answer(&[("cache-control", "max-age=60")], n);
        if p.uri.path() == "/chunked" {
            // No Content-Length: the size is only found while streaming.
            let chunks = (0..8).map(|_| Ok(http_body::Frame::data(Bytes::from(vec![b'c'; 512]))));
            let s = futures_util::stream::iter(
                chunks.collect::<Vec<Result<_, std::convert::Infallible>>>(),
            );
            *r.body_mut() = http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(
                http_body_util::StreamBody::new(s),
                |e| match e {},
            ));
            return r;
        }
        *r.body_mut() = full(vec![b'x'; size]);
        r
    })
    .await;
    let fg = cached(&b, "      max_object_size: 1KiB\n").await;
    for path in ["/big", "/chunked"] {
        let before = b.hits();
        let (_, _, body) = get(&client(), &url(&fg, path)).await;
        let (_, h, again) = get(&client(), &url(&fg, path)).await;
        assert_eq!((body.len(), again.len()), (4096, 4096), "{path}");
        assert_eq!((x_cache(&h), b.hits() - before), ("MISS", 2), "{path}");
    }
    let (x, _, _) = twice(&fg, &b, "/small").await;
    assert_eq!(x, "HIT");
}

#[tokio::test]
async fn memory_stays_under_max_memory_by_evicting() {
    let b = origin(|_, n| {
        let mut r = answer(&[("cache-control", "max-age=600")], n);
        *r.body_mut() = full(vec![b'm'; 8 * 1024]);
        r
    })
    .await;
    let fg = cached(
        &b,
        "      max_memory: 64KiB\n      max_object_size: 16KiB\n",
    )
    .await;
    for i in 0..40 {
        get(&client(), &url(&fg, &format!("/o{i}"))).await;
    }
    let snap = fg.gateway.snapshot();
    let store = &snap.farms[0].cache.as_ref().unwrap().store;
    store.run_pending_tasks();
    assert!(
        store.size_bytes() <= 64 * 1024,
        "{} bytes held",
        store.size_bytes()
    );
    assert!(store.size_bytes() >= 16 * 1024, "the cache holds something");
    let before = b.hits();
    for i in 0..40 {
        get(&client(), &url(&fg, &format!("/o{i}"))).await;
    }
    let refetched = b.hits() - before;
    assert!(
        refetched > 30 && refetched < 40,
        "{refetched} of 40 refetched"
    );
}

#[tokio::test]
async fn a_successful_post_invalidates_the_stored_get_and_its_location() {
    let b = origin(|p, n| {
        let mut r = answer(&[("cache-control", "max-age=60")], n);
        if p.method == http::Method::POST {
            r.headers_mut()
                .insert("location", "/item/7".parse().unwrap());
            r.headers_mut().insert(
                "content-location",
                format!("http://{}/item/8", p.headers["host"].to_str().unwrap())
                    .parse()
                    .unwrap(),
            );
        }
        r
    })
    .await;
    let fg = cached(&b, "").await;
    for p in ["/item", "/item/7", "/item/8", "/other"] {
        get(&client(), &url(&fg, p)).await;
    }
    let post = Request::post(url(&fg, "/item"))
        .body(Full::new(Bytes::from("x")))
        .unwrap();
    let (_, h, _) = send(&client(), post).await;
    assert_eq!(x_cache(&h), "BYPASS");
    for (p, x) in [
        ("/item", "MISS"),
        ("/item/7", "MISS"),
        ("/item/8", "MISS"),
        ("/other", "HIT"),
    ] {
        let (_, h, _) = get(&client(), &url(&fg, p)).await;
        assert_eq!(x_cache(&h), x, "{p}");
    }
}

#[tokio::test]
async fn only_if_cached_is_504_without_a_stored_response() {
    let b = fixed(&[("cache-control", "max-age=60")]).await;
    let fg = cached(&b, "").await;
    let (status, _, _) = get_with(&fg, "/o", &[("cache-control", "only-if-cached")]).await;
    assert_eq!((status, b.hits()), (StatusCode::GATEWAY_TIMEOUT, 0));
    get(&client(), &url(&fg, "/o")).await;
    let (status, _, _) = get_with(&fg, "/o", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_demo_keeps_round_robin_and_caches_static() {
    let mut yaml = farmgate::demo::DEMO_CONFIG
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0");
    for (name, fixed) in farmgate::demo::DEMO_BACKENDS {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        yaml = yaml.replace(fixed, &at.to_string());
        // The farm whose server is a host name (`localhost:PORT`).
        let fixed_port = fixed.rsplit(':').next().unwrap();
        yaml = yaml.replace(
            &format!("localhost:{fixed_port}"),
            &format!("localhost:{}", at.port()),
        );
        farmgate::demo::spawn_backend(name, l);
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    yaml = yaml.replace(
        farmgate::demo::DEMO_HINTS_BACKEND.1,
        &l.local_addr().unwrap().to_string(),
    );
    farmgate::demo::spawn_hints_backend(l);
    assert!(!yaml.contains(":91"), "a demo port left in:\n{yaml}");
    let fg = start(&yaml).await;
    let mut names = HashSet::new();
    for _ in 0..3 {
        let (_, h, _) = get(&client(), &url(&fg, "/")).await;
        assert_eq!(x_cache(&h), "MISS");
        names.insert(h["x-served-by"].to_str().unwrap().to_string());
    }
    assert_eq!(names.len(), 3, "round robin hidden by the cache");
    let (_, _, first) = get(&client(), &url(&fg, "/static/logo.png")).await;
    let (_, h, again) = get(&client(), &url(&fg, "/static/logo.png")).await;
    assert_eq!((x_cache(&h), again), ("HIT", first));
}
