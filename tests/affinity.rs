//! Cookie affinity end to end: binding, forged values, a bound server that
//! stops or drains, backend cookies kept, and two instances agreeing.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/tls.rs"]
mod tls;
use bytes::Bytes;
use common::*;
use farmgate::farm::AdminState;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

const AFFINITY: &str =
    "    affinity:\n      cookie: FG_AFF\n      ttl: 1h\n      secret: \"s3cret\"\n";

/// GET with an optional `Cookie` header; returns status, headers, body.
async fn get_with_cookie(
    c: &TestClient,
    url: &str,
    cookie: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::get(url);
    if let Some(v) = cookie {
        req = req.header("cookie", v);
    }
    send(c, req.body(Full::new(Bytes::new())).unwrap()).await
}

/// The `FG_AFF=...` pair of our Set-Cookie header, if the response has one.
fn affinity_pair(h: &HeaderMap) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("FG_AFF="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

async fn three() -> [Backend; 3] {
    [
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    ]
}

#[tokio::test]
async fn a_client_with_the_cookie_stays_on_one_server() {
    let backends = three().await;
    let refs: Vec<&Backend> = backends.iter().collect();
    let fg = start(&farm_config("round_robin", &refs, AFFINITY, "")).await;
    let url = format!("http://{}/", fg.first_addr());
    let http = client();

    let (status, headers, first) = get_with_cookie(&http, &url, None).await;
    assert_eq!(status, StatusCode::OK);
    let set = headers["set-cookie"].to_str().unwrap();
    assert!(
        set.ends_with("; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain-HTTP listener: {set}");
    let pair = affinity_pair(&headers).unwrap();
    for b in &backends {
        assert!(
            !pair.contains(&b.addr.port().to_string()),
            "cookie leaks: {pair}"
        );
    }

    // Round robin would rotate; the cookie holds the client.
    for _ in 0..100 {
        let (status, headers, body) = get_with_cookie(&http, &url, Some(&pair)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, first);
        assert!(
            affinity_pair(&headers).is_none(),
            "bound client re-issued a cookie"
        );
    }
    let served: Vec<usize> = backends.iter().map(Backend::hits).collect();
    assert_eq!(served.iter().filter(|&&h| h > 0).count(), 1, "{served:?}");
}

#[tokio::test]
async fn a_forged_or_foreign_cookie_is_ignored_and_replaced() {
    let backends = three().await;
    let refs: Vec<&Backend> = backends.iter().collect();
    let fg = start(&farm_config("round_robin", &refs, AFFINITY, "")).await;
    let url = format!("http://{}/", fg.first_addr());
    let http = client();
    for forged in [
        "FG_AFF=0123456789abcdef0123456789abcdef",
        "FG_AFF=",
        "FG_AFF=127.0.0.1",
        "FG_AFF=%00%ff; other=1",
    ] {
        let (status, headers, body) = get_with_cookie(&http, &url, Some(forged)).await;
        assert_eq!(status, StatusCode::OK, "{forged}");
        let pair = affinity_pair(&headers).expect("a fresh cookie for a forged one");
        assert_ne!(pair, forged);
        // The new cookie binds to the server that answered.
        let (_, _, again) = get_with_cookie(&http, &url, Some(&pair)).await;
        assert_eq!(again, body);
    }
}

#[tokio::test]
async fn a_stopped_affine_server_hands_the_client_over_with_a_new_cookie() {
    let mut backends = three().await;
    let refs: Vec<&Backend> = backends.iter().collect();
    let fg = start(&farm_config("round_robin", &refs, AFFINITY, "")).await;
    let url = format!("http://{}/", fg.first_addr());
    let http = fresh_client();
    let (_, headers, first) = get_with_cookie(&http, &url, None).await;
    let pair = affinity_pair(&headers).unwrap();

    let bound = backends.iter_mut().find(|b| b.name == first).unwrap();
    bound.stop();
    let addr = bound.addr;
    wait_until(
        Duration::from_secs(5),
        "bound server refuses",
        || async move { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;

    let (status, headers, second) = get_with_cookie(&http, &url, Some(&pair)).await;
    assert_eq!(status, StatusCode::OK, "the client saw an error");
    assert_ne!(second, first);
    let new_pair = affinity_pair(&headers).expect("cookie re-issued");
    assert_ne!(new_pair, pair);
    // And the new binding holds.
    for _ in 0..10 {
        let (_, _, body) = get_with_cookie(&http, &url, Some(&new_pair)).await;
        assert_eq!(body, second);
    }
}

#[tokio::test]
async fn draining_keeps_bound_clients_disabling_moves_them() {
    let backends = three().await;
    let refs: Vec<&Backend> = backends.iter().collect();
    let fg = start(&farm_config("round_robin", &refs, AFFINITY, "")).await;
    let url = format!("http://{}/", fg.first_addr());
    let http = client();
    let (_, headers, first) = get_with_cookie(&http, &url, None).await;
    let pair = affinity_pair(&headers).unwrap();
    let snap = fg.gateway.snapshot();
    let (_, server) = snap.farms[0].server_by_name(&first).unwrap();

    server.state.set_admin(AdminState::Draining);
    for _ in 0..20 {
        let (_, _, body) = get_with_cookie(&http, &url, Some(&pair)).await;
        assert_eq!(body, first, "a draining server lost its bound client");
        // New clients never go there.
        let (_, _, body) = get_with_cookie(&http, &url, None).await;
        assert_ne!(body, first, "a draining server took a new client");
    }

    server.state.set_admin(AdminState::Disabled);
    let (status, headers, body) = get_with_cookie(&http, &url, Some(&pair)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(body, first);
    assert!(affinity_pair(&headers).is_some_and(|p| p != pair));
}

#[tokio::test]
async fn backend_cookies_are_kept_beside_ours() {
    let b = Backend::with_handler(
        "a",
        Arc::new(|_req| {
            Box::pin(async {
                let mut r = text_response(200, "a");
                let h = r.headers_mut();
                h.append("set-cookie", "session=abc; Path=/".parse().unwrap());
                h.append("set-cookie", "theme=dark".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let fg = start(&farm_config("round_robin", &[&b], AFFINITY, "")).await;
    let (_, headers, _) =
        get_with_cookie(&client(), &format!("http://{}/", fg.first_addr()), None).await;
    let cookies: Vec<&str> = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert!(cookies.contains(&"session=abc; Path=/"));
    assert!(cookies.contains(&"theme=dark"));
    assert!(cookies.iter().any(|c| c.starts_with("FG_AFF=")));
}

#[tokio::test]
async fn two_instances_with_one_config_agree_on_the_cookie() {
    let backends = three().await;
    let refs: Vec<&Backend> = backends.iter().collect();
    let cfg = farm_config("round_robin", &refs, AFFINITY, "");
    let (one, two) = (start(&cfg).await, start(&cfg).await);
    let http = client();
    let (_, headers, first) =
        get_with_cookie(&http, &format!("http://{}/", one.first_addr()), None).await;
    let pair = affinity_pair(&headers).unwrap();
    for _ in 0..10 {
        let (_, headers, body) =
            get_with_cookie(&http, &format!("http://{}/", two.first_addr()), Some(&pair)).await;
        assert_eq!(body, first);
        assert!(affinity_pair(&headers).is_none());
    }
}

#[tokio::test]
async fn session_cookie_without_ttl_and_config_errors_are_placed() {
    let a = Backend::named("a").await;
    let fg = start(&farm_config(
        "least_requests",
        &[&a],
        "    affinity:\n      cookie: SESSION_AFF\n",
        "",
    ))
    .await;
    let (_, headers, _) =
        get_with_cookie(&client(), &format!("http://{}/", fg.first_addr()), None).await;
    let set = headers["set-cookie"].to_str().unwrap();
    assert!(
        set.starts_with("SESSION_AFF=") && !set.contains("Max-Age"),
        "{set}"
    );

    let bad = farm_config(
        "least_requests",
        &[&a],
        "    affinity:\n      cookie: \"bad name\"\n      ttl: 0\n      secret: \"\"\n    hash_key: path\n",
        "",
    );
    let errs =
        farmgate::config::load_str(&bad, "f.yaml", &farmgate::farm::StateRegistry::default())
            .unwrap_err()
            .to_string();
    for want in [
        "f.yaml:14:15: farms[0].affinity.cookie: cookie name \"bad name\"",
        "f.yaml:15:12: farms[0].affinity.ttl: must be greater than 0",
        "f.yaml:16:15: farms[0].affinity.secret: must not be empty",
        "f.yaml:17:15: farms[0].hash_key: hash_key is only used by algorithm: hash",
    ] {
        assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
    }
}

#[tokio::test]
async fn tls_listener_marks_the_cookie_secure_and_binding_works_over_http2() {
    let certs = tls::CertDir::new();
    let cert = certs.issue("site", &["shop.test"]);
    let backends = three().await;
    let mut servers = String::new();
    for b in &backends {
        servers.push_str(&format!(
            "      - {{ name: {}, address: \"{}\" }}\n",
            b.name, b.addr
        ));
    }
    let cfg = format!(
        "listeners:\n{}admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    algorithm: round_robin\n    servers:\n{servers}{AFFINITY}",
        tls::tls_listener_yaml("secure", &[cert], "")
    );
    let fg = start(&cfg).await;
    let stream = tls::connect(fg.first_addr(), "shop.test", certs.client(&["h2"]))
        .await
        .unwrap();
    let mut h2 = tls::Sender::new(stream).await;
    let resp = h2.send(tls::request(&h2, "shop.test", "/")).await;
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.ends_with("; HttpOnly; SameSite=Lax; Secure"), "{set}");
    let pair = set.split(';').next().unwrap().to_string();
    let first = String::from_utf8(
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    // HTTP/2 clients may send cookies as separate fields: bind still holds.
    for _ in 0..10 {
        let mut req = tls::request(&h2, "shop.test", "/");
        req.headers_mut().append("cookie", "a=1".parse().unwrap());
        req.headers_mut().append("cookie", pair.parse().unwrap());
        let resp = h2.send(req).await;
        assert!(resp.headers().get("set-cookie").is_none());
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, first.as_bytes());
    }
}

#[tokio::test]
async fn a_cached_response_never_carries_another_clients_affinity_cookie() {
    let public = Backend::with_handler(
        "public",
        Arc::new(|_req| {
            Box::pin(async {
                let mut r = text_response(200, "shared page");
                r.headers_mut()
                    .insert("cache-control", "public, max-age=60".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let farm = format!("{AFFINITY}    cache:\n      enabled: true\n");
    let fg = start(&farm_config("round_robin", &[&public], &farm, "")).await;
    let url = format!("http://{}/page", fg.first_addr());
    let http = client();
    // The first client is bound by a fresh cookie (and fills the cache).
    let (_, first, _) = get_with_cookie(&http, &url, None).await;
    assert!(affinity_pair(&first).is_some());
    assert_eq!(first["x-cache"], "MISS");
    // The second is served from the cache: no server chose it, no cookie.
    let (status, second, body) = get_with_cookie(&http, &url, None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "shared page"));
    assert_eq!(second["x-cache"], "HIT");
    assert!(affinity_pair(&second).is_none(), "{second:?}");
    assert_eq!(public.hits(), 1);
}
