//! Explicit URL checks and the minimum-servers floor, end to end: real
//! backends on loopback probed by the real health task.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use farmgate::health::ServerHealth;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OK: u8 = 0;
const STATUS_503: u8 = 1;
const DEGRADED: u8 = 2;

/// A backend whose `/health` answers per `mode` (OK, 503, or 200 with the
/// wrong text) and which counts health requests apart; every other path
/// answers 200 with its name.
struct Switchable {
    backend: Backend,
    mode: Arc<AtomicU8>,
    probes: Arc<AtomicUsize>,
}

async fn switchable(name: &str) -> Switchable {
    let mode = Arc::new(AtomicU8::new(OK));
    let probes = Arc::new(AtomicUsize::new(0));
    let (m, p, n) = (mode.clone(), probes.clone(), name.to_string());
    let backend = Backend::with_handler(
        name,
        Arc::new(move |req| {
            let (m, p, n) = (m.clone(), p.clone(), n.clone());
            Box::pin(async move {
                if req.uri().path() != "/health" {
                    return text_response(200, n);
                }
                p.fetch_add(1, Ordering::SeqCst);
                match m.load(Ordering::SeqCst) {
                    OK => text_response(200, "OK"),
                    STATUS_503 => text_response(503, "maintenance"),
                    _ => text_response(200, "DEGRADED"),
                }
            })
        }),
    )
    .await;
    Switchable {
        backend,
        mode,
        probes,
    }
}

fn check(extra: &str) -> String {
    format!(
        "    health_check:\n      url: /health\n      interval: 100ms\n      timeout: 1s\n      \
         response_match: OK\n{extra}"
    )
}

fn state(fg: &farmgate::Running, name: &str) -> Arc<ServerHealth> {
    let snap = fg.gateway.snapshot();
    let (index, _) = snap.farms[0].server_by_name(name).unwrap();
    snap.farms[0].health.server(index).clone()
}

#[tokio::test]
async fn killed_backend_leaves_rotation_within_interval_plus_timeout() {
    let (a, mut b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    // Named backends answer their name everywhere: no body to match.
    let check = check("").replace("      response_match: OK\n", "");
    let cfg = farm_config("round_robin", &[&a, &b, &c], &check, "");
    let fg = start(&cfg).await;
    let sb = state(&fg, "b");
    // Every server gets probed and stays healthy.
    wait_until(Duration::from_secs(5), "first probe of b", || {
        let sb = sb.clone();
        async move { sb.health_view().last_check.is_some() }
    })
    .await;
    assert!(sb.is_healthy());

    b.stop();
    let stopped = Instant::now();
    // interval (100ms, +5% jitter) + timeout (1s); the rest is slack for a
    // loaded machine.
    wait_until(
        Duration::from_millis(1100 + 1000),
        "b out of rotation",
        || {
            let sb = sb.clone();
            async move { !sb.state.in_rotation() }
        },
    )
    .await;
    let view = sb.health_view();
    assert_eq!(view.reason.as_deref(), Some("refused"), "{view:?}");
    eprintln!(
        "b left rotation {:?} after it was stopped",
        stopped.elapsed()
    );

    // From now on clients see no errors and never b.
    let http = client();
    for _ in 0..30 {
        let (status, _, body) = get(&http, &format!("http://{}/", fg.first_addr())).await;
        assert_eq!(status, 200);
        assert_ne!(body, "b");
    }
    assert_eq!(sb.counters.went_down.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn restarted_backend_returns_after_healthy_threshold_passes() {
    let (a, b) = (switchable("a").await, switchable("b").await);
    let mut bb = b.backend;
    let cfg = farm_config(
        "round_robin",
        &[&a.backend, &bb],
        &check("      healthy_threshold: 3\n"),
        "",
    );
    let fg = start(&cfg).await;
    let sb = state(&fg, "b");
    bb.stop();
    wait_until(Duration::from_secs(5), "b down", || {
        let sb = sb.clone();
        async move { !sb.is_healthy() }
    })
    .await;

    let before = b.probes.load(Ordering::SeqCst);
    bb.restart().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // Read health first: a probe is counted before its result applies.
        let healthy = sb.is_healthy();
        let passes = b.probes.load(Ordering::SeqCst) - before;
        if healthy {
            assert!(passes >= 3, "back after only {passes} passing probe(s)");
            break;
        }
        assert!(Instant::now() < deadline, "b did not come back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let view = sb.health_view();
    assert_eq!(view.reason.as_deref(), Some("health check passed"));
    assert_eq!(sb.counters.came_back.load(Ordering::Relaxed), 1);
    // And it takes traffic again.
    let http = client();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(get(&http, &format!("http://{}/", fg.first_addr())).await.2);
    }
    assert!(bodies.iter().any(|b| b == "b"), "{bodies:?}");
}

#[tokio::test]
async fn bad_status_and_body_mismatch_mark_unhealthy() {
    let (a, b) = (switchable("a").await, switchable("b").await);
    let cfg = farm_config("round_robin", &[&a.backend, &b.backend], &check(""), "");
    let fg = start(&cfg).await;
    let sb = state(&fg, "b");
    let reason_is = |want: &'static str| {
        let sb = sb.clone();
        move || {
            let sb = sb.clone();
            async move { sb.health_view().reason.as_deref() == Some(want) }
        }
    };

    b.mode.store(STATUS_503, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(5),
        "down for status 503",
        reason_is("status 503"),
    )
    .await;
    assert!(!sb.state.in_rotation());
    let last = sb.health_view().last_check.unwrap();
    assert_eq!(last.status, Some(503));
    assert_eq!(last.result, "status");

    b.mode.store(OK, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(5),
        "back",
        reason_is("health check passed"),
    )
    .await;
    assert!(sb.state.in_rotation());

    b.mode.store(DEGRADED, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(5),
        "down for body",
        reason_is("body mismatch"),
    )
    .await;
    assert!(!sb.state.in_rotation());
    assert_eq!(sb.health_view().last_check.unwrap().body_match, Some(false));

    // Each change was counted once, however many probes failed meanwhile.
    let c = &sb.counters;
    assert_eq!(c.went_down.load(Ordering::Relaxed), 2);
    assert_eq!(c.came_back.load(Ordering::Relaxed), 1);
    let by_result: std::collections::HashMap<_, _> = c.checks_by_result().collect();
    assert!(by_result["status"] >= 1 && by_result["body_mismatch"] >= 1 && by_result["pass"] >= 1);

    // Probe traffic is not client traffic.
    assert_eq!(sb.state.requests.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn unhealthy_threshold_needs_failures_in_a_row() {
    let (a, b) = (switchable("a").await, switchable("b").await);
    let cfg = farm_config(
        "round_robin",
        &[&a.backend, &b.backend],
        &check("      unhealthy_threshold: 3\n"),
        "",
    );
    let fg = start(&cfg).await;
    let sb = state(&fg, "b");
    let before = b.probes.load(Ordering::SeqCst);
    b.mode.store(STATUS_503, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let healthy = sb.is_healthy();
        let fails = b.probes.load(Ordering::SeqCst) - before;
        if !healthy {
            assert!(fails >= 3, "out after only {fails} failed probe(s)");
            break;
        }
        assert!(Instant::now() < deadline, "b never went down");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn min_servers_holds_every_server_in_rotation() {
    let (a, b, c) = (
        switchable("a").await,
        switchable("b").await,
        switchable("c").await,
    );
    let cfg = farm_config(
        "round_robin",
        &[&a.backend, &b.backend, &c.backend],
        &format!("{}    min_servers: 2\n", check("")),
        "",
    );
    let fg = start(&cfg).await;
    let (sa, sb, sc) = (state(&fg, "a"), state(&fg, "b"), state(&fg, "c"));
    a.mode.store(STATUS_503, Ordering::SeqCst);
    b.mode.store(STATUS_503, Ordering::SeqCst);
    wait_until(Duration::from_secs(5), "a and b unhealthy", || {
        let (sa, sb) = (sa.clone(), sb.clone());
        async move { !sa.is_healthy() && !sb.is_healthy() }
    })
    .await;
    let farm_floor = || fg.gateway.snapshot().farms[0].health.floor_active();
    assert!(farm_floor(), "one healthy of three is below min_servers 2");
    for s in [&sa, &sb, &sc] {
        assert!(s.state.in_rotation(), "{:?} not in rotation", s.state.key);
    }
    assert!(sa.health_view().forced);
    // All three really take traffic.
    let http = client();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        seen.insert(get(&http, &format!("http://{}/", fg.first_addr())).await.2);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // One recovers: two healthy, the floor lets go and b leaves rotation.
    a.mode.store(OK, Ordering::SeqCst);
    wait_until(Duration::from_secs(5), "floor released", || async {
        !fg.gateway.snapshot().farms[0].health.floor_active()
    })
    .await;
    assert!(sa.state.in_rotation() && sc.state.in_rotation());
    assert!(!sb.state.in_rotation());
    assert!(!sb.health_view().forced);
}

#[tokio::test]
async fn a_returning_server_ramps_up_with_slow_start() {
    let (a, b) = (switchable("a").await, switchable("b").await);
    let farm = format!("{}    slow_start: 10s\n", check(""));
    let fg = start(&farm_config(
        "round_robin",
        &[&a.backend, &b.backend],
        &farm,
        "",
    ))
    .await;
    let sb = state(&fg, "b");
    b.mode.store(STATUS_503, Ordering::SeqCst);
    wait_until(Duration::from_secs(5), "b down", || {
        let sb = sb.clone();
        async move { !sb.is_healthy() }
    })
    .await;
    b.mode.store(OK, Ordering::SeqCst);
    wait_until(Duration::from_secs(5), "b back", || {
        let sb = sb.clone();
        async move { sb.is_healthy() }
    })
    .await;
    let factor = sb.health_view().slow_start_factor;
    assert!(factor < 0.5, "factor {factor} right after return");
    // Round robin would give b half; early in a 10s ramp it gets far less.
    let http = client();
    let mut to_b = 0;
    for _ in 0..40 {
        let (status, _, body) = get(&http, &format!("http://{}/", fg.first_addr())).await;
        assert_eq!(status, 200);
        to_b += usize::from(body == "b");
    }
    assert!(to_b < 10, "b got {to_b} of 40 requests early in its ramp");
}
