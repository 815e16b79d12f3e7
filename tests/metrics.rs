//! `/metrics` after known traffic: exact counter values per server, code,
//! reason and listener, through real sockets.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::admin::*;
use common::*;
use farmgate::config;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

/// A backend answering `/fail` with 500, `/missing` with 404, and
/// everything else with 200 and its name.
async fn app(name: &'static str) -> Backend {
    Backend::with_handler(
        name,
        Arc::new(move |req| {
            Box::pin(async move {
                match req.uri().path() {
                    "/fail" => text_response(500, "boom"),
                    "/missing" => text_response(404, "nope"),
                    _ => text_response(200, name),
                }
            })
        }),
    )
    .await
}

#[tokio::test]
async fn counts_per_server_code_and_listener() {
    let (a, b) = (app("a").await, app("b").await);
    let cfg = with_admin(&farm_config("round_robin", &[&a, &b], "", ""), None);
    let fg = start(&cfg).await;
    let http = client();
    let base = format!("http://{}", fg.first_addr());
    // Round robin: each path goes once to a, once to b (twice for "/").
    for path in ["/", "/", "/", "/", "/missing", "/missing", "/fail", "/fail"] {
        get(&http, &format!("{base}{path}")).await;
    }
    // A POST with a 1000-byte body goes to a (the rotation is back at a).
    let req = Request::post(format!("{base}/upload"))
        .body(Full::new(Bytes::from(vec![b'x'; 1000])))
        .unwrap();
    assert_eq!(send(&http, req).await.0, StatusCode::OK);

    // In-flight slots and byte counts are settled when each response body
    // ends, just after the client has read it.
    let admin = client();
    let settled = || async {
        let m = scrape(&admin, &fg).await;
        m.get(
            "farmgate_backend_active_requests",
            &[("farm", "web"), ("server", "a")],
        ) == Some(0.0)
            && m.get(
                "farmgate_backend_received_bytes_total",
                &[("farm", "web"), ("server", "a")],
            ) == Some(11.0)
    };
    wait_until(Duration::from_secs(5), "exchanges settled", settled).await;
    let m = scrape(&admin, &fg).await;

    let web = |server| [("farm", "web"), ("server", server)];
    let code = |server, code| [("farm", "web"), ("server", server), ("code", code)];
    let req = "farmgate_backend_requests_total";
    assert_eq!(m.value(req, &code("a", "200")), 3.0);
    assert_eq!(m.value(req, &code("a", "404")), 1.0);
    assert_eq!(m.value(req, &code("a", "500")), 1.0);
    assert_eq!(m.value(req, &code("b", "200")), 2.0);
    assert_eq!(m.value(req, &code("b", "404")), 1.0);
    assert_eq!(m.value(req, &code("b", "500")), 1.0);
    assert_eq!(m.all(req).len(), 6, "only codes that were seen");

    let fail = |server, reason| [("farm", "web"), ("server", server), ("reason", reason)];
    let f = "farmgate_backend_failures_total";
    assert_eq!(m.value(f, &fail("a", "status")), 1.0);
    assert_eq!(m.value(f, &fail("b", "status")), 1.0);
    assert_eq!(m.value(f, &fail("a", "connect")), 0.0);
    assert_eq!(m.value(f, &fail("a", "timeout")), 0.0);
    assert_eq!(m.value(f, &fail("a", "reset")), 0.0);

    let lst = |code| [("listener", "public"), ("code", code)];
    assert_eq!(m.value("farmgate_requests_total", &lst("200")), 5.0);
    assert_eq!(m.value("farmgate_requests_total", &lst("404")), 2.0);
    assert_eq!(m.value("farmgate_requests_total", &lst("500")), 2.0);

    // Latency histogram: one observation per response.
    let h = "farmgate_backend_response_duration_seconds";
    assert_eq!(m.value(&format!("{h}_count"), &web("a")), 5.0);
    assert_eq!(m.value(&format!("{h}_count"), &web("b")), 4.0);
    let mut le_a: Vec<_> = m
        .all(&format!("{h}_bucket"))
        .into_iter()
        .filter(|s| s.labels.iter().any(|l| l == &("server".into(), "a".into())))
        .map(|s| {
            (
                s.labels.iter().find(|l| l.0 == "le").unwrap().1.clone(),
                s.value,
            )
        })
        .collect();
    assert_eq!(le_a.len(), 15, "buckets 1ms..30s and +Inf");
    assert_eq!(le_a.first().unwrap().0, "0.001");
    assert_eq!(le_a.pop().unwrap(), ("+Inf".to_string(), 5.0));
    assert!(le_a.iter().any(|(le, _)| le == "30.0"));

    // Bytes: the POST body went to a; a answered "a", "a", "nope", "boom", "a".
    assert_eq!(
        m.value("farmgate_backend_sent_bytes_total", &web("a")),
        1000.0
    );
    assert_eq!(m.value("farmgate_backend_sent_bytes_total", &web("b")), 0.0);
    assert_eq!(
        m.value("farmgate_backend_received_bytes_total", &web("a")),
        11.0
    );
    assert_eq!(
        m.value("farmgate_backend_received_bytes_total", &web("b")),
        10.0
    );

    // State gauges.
    assert_eq!(m.value("farmgate_backend_up", &web("a")), 1.0);
    let state = |s| [("farm", "web"), ("server", "a"), ("state", s)];
    assert_eq!(m.value("farmgate_backend_state", &state("healthy")), 1.0);
    assert_eq!(m.value("farmgate_backend_state", &state("draining")), 0.0);
    assert_eq!(m.value("farmgate_farm_servers_up", &[("farm", "web")]), 2.0);
    assert_eq!(
        m.value("farmgate_farm_min_servers_active", &[("farm", "web")]),
        0.0
    );
    // A farm without a cache has no cache series.
    assert!(m.all("farmgate_cache_requests_total").is_empty());
    assert!(m.all("farmgate_cache_size_bytes").is_empty());
    let check = |r| [("farm", "web"), ("server", "a"), ("result", r)];
    assert_eq!(m.value("farmgate_health_checks_total", &check("pass")), 0.0);
    assert_eq!(
        m.value("farmgate_health_checks_total", &check("refused")),
        0.0
    );

    // Config and process.
    assert_eq!(
        m.value("farmgate_config_reloads_total", &[("result", "success")]),
        0.0
    );
    assert!(m.value("farmgate_config_last_reload_success_timestamp_seconds", &[]) > 1.6e9);
    assert_eq!(
        m.value(
            "farmgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(m.value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(m.value("process_open_fds", &[]) > 0.0);
    assert!(m.value("process_cpu_seconds_total", &[]) >= 0.0);
}

#[tokio::test]
async fn connect_failures_and_timeouts_by_reason() {
    let good = app("good").await;
    let mut dead = app("dead").await;
    dead.stop();
    let dead_addr = dead.addr;
    wait_until(Duration::from_secs(5), "dead port closed", || async move {
        tokio::net::TcpStream::connect(dead_addr).await.is_err()
    })
    .await;
    let cfg = with_admin(&farm_config("round_robin", &[&dead, &good], "", ""), None);
    let fg = start(&cfg).await;
    let http = client();
    // Every pick starts at `dead` (the rotation advances once per attempt),
    // so each GET fails there first and is retried on `good`.
    for _ in 0..3 {
        let (status, _, body) = get(&http, &format!("http://{}/", fg.first_addr())).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
    }
    let m = scrape(&client(), &fg).await;
    let fail = |server, reason| [("farm", "web"), ("server", server), ("reason", reason)];
    let f = "farmgate_backend_failures_total";
    assert_eq!(m.value(f, &fail("dead", "connect")), 3.0);
    assert_eq!(m.value(f, &fail("good", "connect")), 0.0);
    let code = |server, code| [("farm", "web"), ("server", server), ("code", code)];
    assert_eq!(
        m.value("farmgate_backend_requests_total", &code("good", "200")),
        3.0
    );
    assert_eq!(
        m.get("farmgate_backend_requests_total", &code("dead", "200")),
        None
    );
    assert_eq!(
        m.value(
            "farmgate_requests_total",
            &[("listener", "public"), ("code", "200")]
        ),
        3.0
    );

    // A server slower than response_timeout: a timeout, and a 504 to the client.
    let slow = Backend::with_handler(
        "slow",
        Arc::new(|_req| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                text_response(200, "late")
            })
        }),
    )
    .await;
    let cfg = with_admin(
        &farm_config(
            "round_robin",
            &[&slow],
            "",
            "proxy:\n  response_timeout: 200ms\n",
        ),
        None,
    );
    let fg = start(&cfg).await;
    let (status, _, _) = get(&http, &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let m = scrape(&client(), &fg).await;
    assert_eq!(m.value(f, &fail("slow", "timeout")), 1.0);
    assert_eq!(
        m.value(
            "farmgate_requests_total",
            &[("listener", "public"), ("code", "504")]
        ),
        1.0
    );
}

#[tokio::test]
async fn open_connections_are_gauged_per_listener() {
    let a = app("a").await;
    let fg = start(&with_admin(
        &farm_config("round_robin", &[&a], "", ""),
        None,
    ))
    .await;
    let admin = client();
    let active = |m: &Scrape| m.value("farmgate_connections_active", &[("listener", "public")]);
    assert_eq!(active(&scrape(&admin, &fg).await), 0.0);
    // A pooled client keeps its one connection open after the response.
    let http = client();
    get(&http, &format!("http://{}/", fg.first_addr())).await;
    get(&http, &format!("http://{}/", fg.first_addr())).await;
    let m = scrape(&admin, &fg).await;
    assert_eq!(active(&m), 1.0);
    assert_eq!(
        m.value("farmgate_connections_total", &[("listener", "public")]),
        1.0
    );
    drop(http);
    wait_until(Duration::from_secs(5), "connection closed", || async {
        active(&scrape(&admin, &fg).await) == 0.0
    })
    .await;
}

#[tokio::test]
async fn series_follow_the_current_snapshot_and_counts_survive_a_reload() {
    let (a, b, c) = (app("a").await, app("b").await, app("c").await);
    let registry = Arc::new(farmgate::farm::StateRegistry::default());
    let cfg = with_admin(&farm_config("round_robin", &[&a, &b], "", ""), None);
    let fg = start_with_registry(&cfg, registry.clone()).await;
    let http = client();
    for _ in 0..4 {
        get(&http, &format!("http://{}/", fg.first_addr())).await;
    }
    // The new config drops b and adds c; a keeps its identity and counters.
    let next = with_admin(&farm_config("round_robin", &[&a, &c], "", ""), None);
    fg.gateway
        .install(config::load_str(&next, "next.yaml", &registry).unwrap());
    let m = scrape(&client(), &fg).await;
    let code = |server| [("farm", "web"), ("server", server), ("code", "200")];
    assert_eq!(m.value("farmgate_backend_requests_total", &code("a")), 2.0);
    assert_eq!(m.get("farmgate_backend_requests_total", &code("b")), None);
    assert_eq!(
        m.value("farmgate_backend_up", &[("farm", "web"), ("server", "c")]),
        1.0
    );
    assert_eq!(
        m.get("farmgate_backend_up", &[("farm", "web"), ("server", "b")]),
        None
    );
}

#[tokio::test]
async fn cache_results_and_size_are_counted_per_farm() {
    let cacheable = Backend::with_handler(
        "cacheable",
        Arc::new(|_req| {
            Box::pin(async {
                let mut r = text_response(200, "cached body");
                r.headers_mut()
                    .insert("cache-control", "public, max-age=60".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let farm = "    cache:\n      enabled: true\n";
    let cfg = with_admin(&farm_config("round_robin", &[&cacheable], farm, ""), None);
    let fg = start(&cfg).await;
    let http = client();
    for _ in 0..3 {
        let (status, _, body) = get(&http, &format!("http://{}/page", fg.first_addr())).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "cached body"));
    }
    let req = Request::post(format!("http://{}/form", fg.first_addr()))
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    send(&http, req).await;
    let m = scrape(&client(), &fg).await;
    let result = |r| [("farm", "web"), ("result", r)];
    assert_eq!(
        m.value("farmgate_cache_requests_total", &result("miss")),
        1.0
    );
    assert_eq!(
        m.value("farmgate_cache_requests_total", &result("hit")),
        2.0
    );
    assert_eq!(
        m.value("farmgate_cache_requests_total", &result("bypass")),
        1.0
    );
    assert!(m.value("farmgate_cache_size_bytes", &[("farm", "web")]) > 0.0);
    assert_eq!(
        cacheable.hits(),
        2,
        "one fill and the POST reached the backend"
    );
}
