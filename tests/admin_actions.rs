//! Operator actions through the admin API: drain, disable, enable, verify,
//! the bearer token, and admin state surviving a reload.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// `farm_config` with the admin listener on an ephemeral port.
fn with_admin(cfg: String, admin_extra: &str) -> String {
    cfg.replace(
        "admin:\n  enabled: false\n",
        &format!("admin:\n  bind: \"127.0.0.1:0\"\n{admin_extra}"),
    )
}

async fn admin(
    fg: &farmgate::Running,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", fg.admin_addr().unwrap()));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let (status, _, body) = send(&client(), req.body(Full::new(Bytes::new())).unwrap()).await;
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, json)
}

/// A backend whose `/slow` waits for a permit; other paths answer its name.
async fn gated(name: &str, gate: Arc<Semaphore>) -> Backend {
    let n = name.to_string();
    Backend::with_handler(
        name,
        Arc::new(move |req| {
            let (gate, n) = (gate.clone(), n.clone());
            Box::pin(async move {
                if req.uri().path() == "/slow" {
                    gate.acquire().await.unwrap().forget();
                }
                text_response(200, n)
            })
        }),
    )
    .await
}

#[tokio::test]
async fn drain_lets_in_flight_requests_finish_while_new_ones_go_elsewhere() {
    let gate = Arc::new(Semaphore::new(0));
    let a = gated("a", gate.clone()).await;
    let b = Backend::named("b").await;
    let fg = start(&with_admin(
        farm_config("round_robin", &[&a, &b], "", ""),
        "",
    ))
    .await;
    let url = format!("http://{}", fg.first_addr());

    // Round robin's first pick is a: a slow request holds it.
    let slow_url = format!("{url}/slow");
    let slow = tokio::spawn(async move { get(&client(), &slow_url).await });
    wait_until(
        Duration::from_secs(5),
        "slow request in flight on a",
        || async { admin(&fg, "GET", "/api/farms/web/servers/a", None).await.1["in_flight"] == 1 },
    )
    .await;

    let (status, view) = admin(&fg, "POST", "/api/farms/web/servers/a/drain", None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["admin"], "draining");
    assert_eq!(view["in_rotation"], false);
    assert_eq!(view["in_flight"], 1);

    let http = client();
    for _ in 0..10 {
        let (status, _, body) = get(&http, &format!("{url}/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "b", "a new request reached the draining server");
    }
    gate.add_permits(1);
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));
    wait_until(Duration::from_secs(5), "in flight falls to 0", || async {
        admin(&fg, "GET", "/api/farms/web/servers/a", None).await.1["in_flight"] == 0
    })
    .await;
}

#[tokio::test]
async fn disable_and_enable() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let fg = start(&with_admin(
        farm_config("round_robin", &[&a, &b], "", ""),
        "",
    ))
    .await;
    let url = format!("http://{}/", fg.first_addr());
    let http = client();

    let (status, view) = admin(&fg, "POST", "/api/farms/web/servers/b/disable", None).await;
    assert_eq!(
        (status, view["admin"].as_str()),
        (StatusCode::OK, Some("disabled"))
    );
    for _ in 0..6 {
        assert_eq!(get(&http, &url).await.2, "a");
    }
    let (_, view) = admin(&fg, "POST", "/api/farms/web/servers/b/enable", None).await;
    assert_eq!(view["admin"], "enabled");
    assert_eq!(view["in_rotation"], true);
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(get(&http, &url).await.2);
    }
    assert!(bodies.iter().any(|b| b == "b"), "{bodies:?}");

    // Wrong method, unknown names and actions are clear errors.
    let (s, _) = admin(&fg, "GET", "/api/farms/web/servers/b/drain", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, v) = admin(&fg, "POST", "/api/farms/web/servers/zz/drain", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("zz"), "{v}");
    let (s, _) = admin(&fg, "POST", "/api/farms/nope/servers/b/drain", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = admin(&fg, "POST", "/api/farms/web/servers/b/explode", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("explode"), "{v}");
}

#[tokio::test]
async fn verify_runs_the_health_test_now() {
    let good = Backend::named("good").await;
    let sick = Backend::with_handler(
        "sick",
        Arc::new(|_req| Box::pin(async { text_response(503, "maintenance") })),
    )
    .await;
    let mut dead = Backend::named("dead").await;
    dead.stop();
    // A long interval: only verify probes within this test.
    let check = "    health_check:\n      url: /health\n      interval: 1h\n      \
                 response_match: good\n";
    let fg = start(&with_admin(
        farm_config("round_robin", &[&good, &sick, &dead], check, ""),
        "",
    ))
    .await;

    let (status, v) = admin(&fg, "POST", "/api/farms/web/servers/good/verify", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["verdict"], "healthy", "{v}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["body_match"], true);
    assert!(v["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(good.last_seen().uri.path(), "/health");

    let (_, v) = admin(&fg, "POST", "/api/farms/web/servers/sick/verify", None).await;
    assert_eq!(v["verdict"], "unhealthy", "{v}");
    assert_eq!(v["status"], 503);
    assert_eq!(v["reason"], "status 503");

    let (_, v) = admin(&fg, "POST", "/api/farms/web/servers/dead/verify", None).await;
    assert_eq!(v["verdict"], "unhealthy", "{v}");
    assert_eq!(v["reason"], "refused");
    assert_eq!(v["status"], Value::Null);

    // Verify reports; it does not change the server's state.
    let snap = fg.gateway.snapshot();
    assert!(snap.farms[0].servers[1].state.is_healthy());
}

#[tokio::test]
async fn verify_without_a_health_check_is_a_conflict() {
    let a = Backend::named("a").await;
    let fg = start(&with_admin(farm_config("round_robin", &[&a], "", ""), "")).await;
    let (status, v) = admin(&fg, "POST", "/api/farms/web/servers/a/verify", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(v["error"].as_str().unwrap().contains("health_check"), "{v}");
}

#[tokio::test]
async fn a_configured_token_is_required() {
    let a = Backend::named("a").await;
    let cfg = with_admin(
        farm_config("round_robin", &[&a], "", ""),
        "  token: s3cret\n",
    );
    let fg = start(&cfg).await;
    let path = "/api/farms/web/servers/a/drain";
    let (status, _) = admin(&fg, "POST", path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = admin(&fg, "POST", path, Some("guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let snap = fg.gateway.snapshot();
    assert_eq!(snap.farms[0].servers[0].state.admin().as_str(), "enabled");
    let (status, v) = admin(&fg, "POST", path, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["admin"], "draining");
}

#[tokio::test]
async fn admin_state_survives_a_reload() {
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let fg = start(&with_admin(
        farm_config("round_robin", &[&a, &b], "", ""),
        "",
    ))
    .await;
    admin(&fg, "POST", "/api/farms/web/servers/b/disable", None).await;
    // Reload with c added.
    let cfg = with_admin(farm_config("round_robin", &[&a, &b, &c], "", ""), "");
    let snap = farmgate::config::load_str(&cfg, "reload.yaml", &fg.gateway.registry).unwrap();
    fg.gateway.install(snap);
    let (_, v) = admin(&fg, "GET", "/api/farms/web/servers/b", None).await;
    assert_eq!(v["admin"], "disabled");
    let http = client();
    for _ in 0..6 {
        assert_ne!(
            get(&http, &format!("http://{}/", fg.first_addr())).await.2,
            "b"
        );
    }
}
