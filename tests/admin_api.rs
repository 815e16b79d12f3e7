//! The admin listener end to end: /api/status against the farm after
//! drains and health changes, the bearer token on every POST, /healthz
//! during shutdown, the status page's headers.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::admin::*;
use common::*;
use farmgate::config;
use farmgate::farm::StateRegistry;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "correct-horse-battery-staple";

#[tokio::test]
async fn status_matches_the_farm_after_drain_and_health_changes() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    // c answers its health check with 503 once `c_sick` is set.
    let c_sick = Arc::new(AtomicBool::new(false));
    let sick = c_sick.clone();
    let c = Backend::with_handler(
        "c",
        Arc::new(move |req| {
            let sick = sick.load(Ordering::SeqCst) && req.uri().path() == "/health";
            Box::pin(async move { text_response(if sick { 503 } else { 200 }, "c") })
        }),
    )
    .await;
    let health = "    health_check:\n      url: /health\n      interval: 100ms\n      timeout: 1s\n    min_servers: 1\n";
    let cfg = with_admin(&farm_config("round_robin", &[&a, &b, &c], health, ""), None);
    let fg = start(&cfg).await;
    let http = client();
    for _ in 0..3 {
        get(&http, &format!("http://{}/", fg.first_addr())).await;
    }

    let st = status_json(&http, &fg).await;
    assert_eq!(st["token_required"], false);
    assert_eq!(st["shutting_down"], false);
    let web = &st["farms"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["algorithm"], "round_robin");
    assert_eq!(
        (web["servers_total"].as_u64(), web["servers_up"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(web["min_servers"]["active"], false);
    assert_eq!(web["min_servers"]["configured"], 1);
    let sa = server(&st, "web", "a");
    assert_eq!(sa["address"], a.addr.to_string());
    assert_eq!(sa["weight"], 1);
    assert_eq!(sa["state"], "healthy");
    assert_eq!(sa["state_reason"], serde_json::Value::Null);
    assert_eq!(sa["requests"], 1);
    assert_eq!(sa["responses_by_class"]["2xx"], 1);
    assert_eq!(sa["failures"], 0);
    assert_eq!(sa["response_ms"]["count"], 1);
    assert!(sa["response_ms"]["avg"].as_f64().unwrap() > 0.0);
    assert!(sa["response_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(st["listeners"][0]["name"], "public");
    assert_eq!(st["listeners"][0]["requests"], 3);

    // Drain b: it leaves the rotation, the status says why and since when.
    let (status, _, body) = admin_post(&http, &fg, "/api/farms/web/servers/b/drain", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["admin"], "draining");
    let st = status_json(&http, &fg).await;
    let sb = server(&st, "web", "b");
    assert_eq!(sb["state"], "draining");
    assert_eq!(sb["admin"], "draining");
    assert_eq!(sb["in_rotation"], false);
    assert_eq!(sb["state_reason"], "drained through the admin API");
    assert!(sb["state_changed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(st["farms"][0]["servers_up"], 2);
    for _ in 0..4 {
        let (_, _, body) = get(&http, &format!("http://{}/", fg.first_addr())).await;
        assert_ne!(body, "b", "a drained server takes no new requests");
    }

    // c starts failing its health check: the checker takes it out, and the
    // status says why, with the check that did it.
    c_sick.store(true, Ordering::SeqCst);
    // (a's first probe may come later than c's: each server's first probe
    // is at a random point of the interval.)
    wait_until(
        Duration::from_secs(5),
        "c marked unhealthy, a probed",
        || async {
            let st = status_json(&client(), &fg).await;
            server(&st, "web", "c")["state"] == "unhealthy"
                && !server(&st, "web", "a")["last_check"].is_null()
        },
    )
    .await;
    let st = status_json(&http, &fg).await;
    let sc = server(&st, "web", "c");
    assert_eq!(sc["healthy"], false);
    assert_eq!(sc["in_rotation"], false);
    assert_eq!(sc["state_reason"], "status 503");
    assert!(sc["state_changed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(sc["last_check"]["ok"], false);
    assert_eq!(sc["last_check"]["result"], "status");
    assert_eq!(sc["last_check"]["status"], 503);
    assert!(sc["checks"]["status"].as_u64().unwrap() >= 1);
    assert_eq!(sc["health"]["healthy"], false);
    let sa = server(&st, "web", "a");
    assert_eq!(sa["state"], "healthy");
    assert_eq!(sa["last_check"]["ok"], true, "a passes its checks: {sa:#}");
    assert_eq!(sa["last_check"]["result"], "pass");
    assert_eq!(st["farms"][0]["servers_up"], 1);
    let m = scrape(&http, &fg).await;
    let state = |s, st| [("farm", "web"), ("server", s), ("state", st)];
    assert_eq!(
        m.value("farmgate_backend_state", &state("c", "unhealthy")),
        1.0
    );
    assert_eq!(
        m.value("farmgate_backend_state", &state("b", "draining")),
        1.0
    );
    assert_eq!(
        m.value("farmgate_backend_up", &[("farm", "web"), ("server", "b")]),
        0.0
    );
    let checks = |server, result| [("farm", "web"), ("server", server), ("result", result)];
    assert!(m.value("farmgate_health_checks_total", &checks("c", "status")) >= 1.0);
    assert!(m.value("farmgate_health_checks_total", &checks("a", "pass")) >= 1.0);
    assert_eq!(
        m.value("farmgate_health_checks_total", &checks("a", "status")),
        0.0
    );
    let down = [("farm", "web"), ("server", "c"), ("to", "down")];
    assert_eq!(
        m.value("farmgate_backend_health_transitions_total", &down),
        1.0
    );

    // Disable, then enable again.
    let (status, _, _) = admin_post(&http, &fg, "/api/farms/web/servers/b/disable", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server(&status_json(&http, &fg).await, "web", "b")["state"],
        "disabled"
    );
    let (status, _, _) = admin_post(&http, &fg, "/api/farms/web/servers/b/enable", None).await;
    assert_eq!(status, StatusCode::OK);
    let st = status_json(&http, &fg).await;
    assert_eq!(server(&st, "web", "b")["state"], "healthy");
    assert_eq!(
        server(&st, "web", "b")["state_reason"],
        "enabled through the admin API"
    );
}

#[tokio::test]
async fn every_post_needs_the_token_and_reads_do_not() {
    let a = Backend::named("a").await;
    let fg = start(&with_admin(
        &farm_config("round_robin", &[&a], "", ""),
        Some(TOKEN),
    ))
    .await;
    let http = client();
    let drain = "/api/farms/web/servers/a/drain";

    let (status, headers, body) = admin_post(&http, &fg, drain, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let (status, _, _) = admin_post(&http, &fg, drain, Some("guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Unknown endpoints do not reveal themselves before the token either.
    let (status, _, _) = admin_post(&http, &fg, "/api/anything", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let st = status_json(&http, &fg).await;
    assert_eq!(st["token_required"], true);
    assert_eq!(
        server(&st, "web", "a")["state"],
        "healthy",
        "refused POSTs change nothing"
    );

    let (status, _, body) = admin_post(&http, &fg, drain, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        server(&status_json(&http, &fg).await, "web", "a")["state"],
        "draining"
    );

    // Reads stay open.
    for path in ["/", "/metrics", "/healthz", "/api/status"] {
        assert_eq!(
            admin_get(&http, &fg, path).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
}

#[tokio::test]
async fn cross_origin_posts_are_refused_without_a_token() {
    let a = Backend::named("a").await;
    let fg = start(&with_admin(
        &farm_config("round_robin", &[&a], "", ""),
        None,
    ))
    .await;
    let http = client();
    let req = Request::post(admin_url(&fg, "/api/farms/web/servers/a/disable"))
        .header("origin", "https://attacker.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&http, req).await.0, StatusCode::FORBIDDEN);
    let same = format!("http://{}", fg.admin_addr().unwrap());
    let req = Request::post(admin_url(&fg, "/api/farms/web/servers/a/disable"))
        .header("origin", same)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&http, req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_get_clear_answers() {
    let a = Backend::named("web1").await;
    // A server name with a colon must be percent-encoded in the URL.
    let cfg = farm_config("round_robin", &[&a], "", "").replace("name: web1,", "name: \"web:1\",");
    let fg = start(&with_admin(&cfg, None)).await;
    let http = client();
    // Names are percent-decoded.
    let (status, _, body) =
        admin_post(&http, &fg, "/api/farms/web/servers/web%3A1/drain", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (path, want, says) in [
        (
            "/api/farms/nope/servers/web:1/drain",
            StatusCode::NOT_FOUND,
            "no farm \"nope\"",
        ),
        (
            "/api/farms/web/servers/nope/drain",
            StatusCode::NOT_FOUND,
            "has no server \"nope\"",
        ),
        (
            "/api/farms/web/servers/web:1/explode",
            StatusCode::NOT_FOUND,
            "unknown action \"explode\"",
        ),
        (
            "/api/nothing",
            StatusCode::NOT_FOUND,
            "no such admin endpoint",
        ),
    ] {
        let (status, headers, body) = admin_post(&http, &fg, path, None).await;
        assert_eq!(status, want, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/json");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    let (status, headers, _) = admin_get(&http, &fg, "/api/farms/web/servers/web:1/drain").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "POST");
    let (status, headers, _) = admin_post(&http, &fg, "/metrics", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");
}

#[tokio::test]
async fn status_page_is_self_contained() {
    let a = Backend::named("a").await;
    let fg = start(&with_admin(
        &farm_config("round_robin", &[&a], "", ""),
        None,
    ))
    .await;
    let (status, headers, body) = admin_get(&client(), &fg, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(body.contains("api/status"));
    for external in ["http://", "https://", "//cdn", "src=\"/"] {
        assert!(
            !body.contains(external),
            "the page must not load {external}"
        );
    }
}

#[tokio::test]
async fn healthz_turns_503_once_shutdown_begins() {
    let slow = Backend::with_handler(
        "slow",
        Arc::new(|_req| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                text_response(200, "done")
            })
        }),
    )
    .await;
    let fg = start(&with_admin(
        &farm_config("round_robin", &[&slow], "", ""),
        None,
    ))
    .await;
    let http = client();
    let admin_addr = fg.admin_addr().unwrap();
    let healthz = format!("http://{admin_addr}/healthz");
    assert_eq!(get(&http, &healthz).await.0, StatusCode::OK);

    // A request in flight holds the shutdown open while /healthz is asked.
    let url = format!("http://{}/", fg.first_addr());
    let in_flight = tokio::spawn(async move { get(&client(), &url).await });
    let gw = fg.gateway.clone();
    wait_until(Duration::from_secs(5), "request in flight", || {
        let gw = gw.clone();
        async move { gw.snapshot().farms[0].servers[0].state.in_flight() == 1 }
    })
    .await;
    let stopping = tokio::spawn(fg.shutdown(Duration::from_secs(10)));
    wait_until(Duration::from_secs(5), "shutdown begun", || {
        let gw = gw.clone();
        async move { gw.is_shutting_down() }
    })
    .await;
    let (status, _, body) = get(&fresh_client(), &healthz).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    );
    assert_eq!(
        in_flight.await.unwrap().0,
        StatusCode::OK,
        "in-flight request finished"
    );
    assert_eq!(stopping.await.unwrap(), 0);
}

#[test]
fn admin_on_a_public_address_needs_a_token() {
    let cfg = "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  bind: \"0.0.0.0:9090\"\n\
               farms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9001\"\n";
    let err = config::load_str(cfg, "f.yaml", &StateRegistry::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("f.yaml:4:9: admin.bind:"), "{err}");
    assert!(err.contains("without a token"), "{err}");
    let with_token = cfg.replace("admin:\n", "admin:\n  token: \"long-enough-token\"\n");
    config::load_str(&with_token, "f.yaml", &StateRegistry::default()).unwrap();
}
