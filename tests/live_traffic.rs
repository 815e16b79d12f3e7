//! Live-traffic checks end to end: failures of client requests take a
//! server out, and it comes back by probation or by the next passing probe.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use farmgate::health::ServerHealth;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A backend whose pages answer 500 while `failing` is set; `/health`
/// always answers OK and is counted apart.
async fn flaky(name: &str) -> (Backend, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let failing = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(AtomicUsize::new(0));
    let (f, p, n) = (failing.clone(), probes.clone(), name.to_string());
    let b = Backend::with_handler(
        name,
        Arc::new(move |req| {
            let (f, p, n) = (f.clone(), p.clone(), n.clone());
            Box::pin(async move {
                if req.uri().path() == "/health" {
                    p.fetch_add(1, Ordering::SeqCst);
                    text_response(200, "OK")
                } else if f.load(Ordering::SeqCst) {
                    text_response(500, "boom")
                } else {
                    text_response(200, n)
                }
            })
        }),
    )
    .await;
    (b, failing, probes)
}

fn state(fg: &farmgate::Running, name: &str) -> Arc<ServerHealth> {
    let snap = fg.gateway.snapshot();
    let (index, _) = snap.farms[0].server_by_name(name).unwrap();
    snap.farms[0].health.server(index).clone()
}

/// Sends GETs until `cond` holds; returns the statuses seen.
async fn drive(fg: &farmgate::Running, what: &str, cond: impl Fn() -> bool) -> Vec<u16> {
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut statuses = Vec::new();
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out driving traffic until {what}"
        );
        let (status, _, _) = get(&http, &format!("http://{}/", fg.first_addr())).await;
        statuses.push(status.as_u16());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    statuses
}

#[tokio::test]
async fn five_hundreds_eject_and_probation_brings_the_server_back() {
    let good = Backend::named("good").await;
    let (bad, failing, _) = flaky("bad").await;
    failing.store(true, Ordering::SeqCst);
    let live = "    live_traffic:\n      failure_codes: \"500, 502-504\"\n      \
                max_failures: 2\n      failover_period: 600ms\n";
    let fg = start(&farm_config("round_robin", &[&good, &bad], live, "")).await;
    let sb = state(&fg, "bad");

    let statuses = drive(&fg, "bad ejected", || !sb.is_healthy()).await;
    // More than max_failures (2) failures: the third 500 ejects.
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        3,
        "{statuses:?}"
    );
    let view = sb.health_view();
    assert_eq!(view.reason_code, Some("live_traffic"), "{view:?}");
    assert_eq!(view.probation, "waiting");
    let ejected = Instant::now();
    // While out, nothing reaches it.
    let hits = bad.hits();
    for s in drive(&fg, "400ms passed", || {
        ejected.elapsed() > Duration::from_millis(400)
    })
    .await
    {
        assert_eq!(s, 200);
    }
    assert_eq!(bad.hits(), hits);

    // Still failing at probation: the one trial fails, the wait doubles.
    let statuses = drive(&fg, "trial failed", || {
        sb.health_view().reason_code == Some("probation_failed")
    })
    .await;
    let trial_failed = Instant::now();
    // (Both marks are taken a little after the event; allow for that.)
    assert!(
        ejected.elapsed() >= Duration::from_millis(550),
        "probation before the period"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        1,
        "one trial: {statuses:?}"
    );
    assert_eq!(bad.hits(), hits + 1);

    // Fixed: the next probation (after 1.2s) brings it back.
    failing.store(false, Ordering::SeqCst);
    let statuses = drive(&fg, "bad back", || sb.is_healthy()).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        trial_failed.elapsed() >= Duration::from_millis(1150),
        "second probation came after {:?}, before the doubled wait",
        trial_failed.elapsed()
    );
    assert_eq!(sb.health_view().reason_code, Some("probation_passed"));
    let bodies: Vec<_> = {
        let http = client();
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(get(&http, &format!("http://{}/", fg.first_addr())).await.2);
        }
        v
    };
    assert!(bodies.iter().any(|b| b == "bad"), "{bodies:?}");
}

#[tokio::test]
async fn with_a_health_check_the_next_passing_probe_brings_it_back() {
    let good = Backend::named("good").await;
    let (bad, failing, probes) = flaky("bad").await;
    failing.store(true, Ordering::SeqCst);
    // A rise of 5 would take five probes; after a live-traffic ejection one
    // passing probe is enough.
    let farm = "    health_check:\n      url: /health\n      interval: 100ms\n      \
                healthy_threshold: 5\n    live_traffic:\n      failure_codes: \"500\"\n      \
                max_failures: 1\n      failover_period: 10s\n";
    let fg = start(&farm_config("round_robin", &[&good, &bad], farm, "")).await;
    let sb = state(&fg, "bad");
    drive(&fg, "bad ejected", || !sb.is_healthy()).await;
    let probes_at_ejection = probes.load(Ordering::SeqCst);
    assert_eq!(
        sb.health_view().probation,
        "off",
        "no probation with a check"
    );
    failing.store(false, Ordering::SeqCst);
    wait_until(Duration::from_secs(5), "bad back", || {
        let sb = sb.clone();
        async move { sb.is_healthy() }
    })
    .await;
    let used = probes.load(Ordering::SeqCst) - probes_at_ejection;
    assert!((1..=2).contains(&used), "came back after {used} probes");
    assert_eq!(
        sb.health_view().reason.as_deref(),
        Some("health check passed")
    );
}

#[tokio::test]
async fn connection_failures_always_count() {
    let good = Backend::named("good").await;
    let mut dead = Backend::named("dead").await;
    dead.stop();
    // No status counts here; refused connections still do.
    let live = "    live_traffic:\n      failure_codes: \"\"\n      max_failures: 1\n      \
                failover_period: 30s\n";
    let fg = start(&farm_config("round_robin", &[&good, &dead], live, "")).await;
    let sd = state(&fg, "dead");
    // Retries hide the refusals from clients; live traffic still sees them.
    for s in drive(&fg, "dead ejected", || !sd.is_healthy()).await {
        assert_eq!(s, 200);
    }
    // A refused connection takes the server out at once (issue 17), before
    // the live-traffic window would have.
    assert_eq!(sd.health_view().reason_code, Some("refused"));
}

#[tokio::test]
async fn a_client_abandoning_its_upload_is_not_the_servers_failure() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sink = Backend::with_handler(
        "sink",
        Arc::new(|req| {
            Box::pin(async move {
                use http_body_util::BodyExt;
                match req.into_body().collect().await {
                    Ok(_) => text_response(200, "stored"),
                    Err(_) => text_response(400, "incomplete"),
                }
            })
        }),
    )
    .await;
    // The first failure would take the server out.
    let live = "    live_traffic:\n      failure_codes: \"500-599\"\n      max_failures: 0\n";
    let fg = start(&farm_config("round_robin", &[&sink], live, "")).await;
    let mut s = tokio::net::TcpStream::connect(fg.first_addr())
        .await
        .unwrap();
    s.write_all(b"PUT /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\nonly a part")
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        "the upload reached the server",
        || async { sink.hits() == 1 },
    )
    .await;
    s.shutdown().await.unwrap(); // the client gives up mid-body
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains(" 502 "), "blamed on the backend: {answer}");
    // The attempt is accounted before the answer is written: no wait needed.
    let st = state(&fg, "sink");
    assert!(st.is_healthy(), "{:?}", st.health_view());
    assert_eq!(st.state.failures.load(Ordering::Relaxed), 0);
}
