//! The status page in a real browser: headless Chromium loads it from a
//! running farmgate, the test checks that servers and their states render,
//! clicks Drain, answers the token prompt like an operator, and sees the
//! page show the server draining. Fails (does not skip) without Chromium.
#![allow(clippy::unwrap_used)]

mod browser;
mod common;
use browser::Chromium;
use common::admin::*;
use common::*;
use farmgate::farm::AdminState;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "page-test-token-5f1c";

/// `{server: state}` as the page shows it.
const ROWS: &str = "JSON.stringify(Object.fromEntries([...document.querySelectorAll('tr.server')]\
                    .map(tr => [tr.dataset.server, tr.querySelector('.pill').textContent])))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_servers_and_drains_one() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    // c fails its health check, so the checker takes it out.
    let c = Backend::with_handler(
        "c",
        Arc::new(|req| {
            let code = if req.uri().path() == "/health" {
                503
            } else {
                200
            };
            Box::pin(async move { text_response(code, "c") })
        }),
    )
    .await;
    let health =
        "    health_check:\n      url: /health\n      interval: 200ms\n      timeout: 1s\n";
    let cfg = with_admin(
        &farm_config("round_robin", &[&a, &b, &c], health, ""),
        Some(TOKEN),
    );
    let fg = start(&cfg).await;
    let http = client();
    for _ in 0..6 {
        get(&http, &format!("http://{}/", fg.first_addr())).await;
    }
    let snap = fg.gateway.snapshot();
    let state_of = |name: &str| snap.farms[0].server_by_name(name).unwrap().1.state.clone();

    let browser = Chromium::launch(&format!("{}?refresh=300", admin_url(&fg, "/"))).await;
    let mut page = browser.page().await;

    // Servers and states render, with distinct state colours.
    page.wait_for(
        "three server rows",
        "document.querySelectorAll('tr.server').length === 3",
    )
    .await;
    let rows = page
        .wait_for(
            "the live indicator",
            "document.getElementById('live').textContent === 'live'",
        )
        .await;
    assert_eq!(rows, true);
    // The health checker takes c out (its /health answers 503) and the page follows.
    page.wait_for(
        "c shown as unhealthy",
        "document.querySelector('tr[data-server=\"c\"] .pill').textContent === 'unhealthy'",
    )
    .await;
    let shown: serde_json::Value =
        serde_json::from_str(page.eval(ROWS).await.as_str().unwrap()).unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"a": "healthy", "b": "healthy", "c": "unhealthy"})
    );
    let colour = |s: &str| {
        format!("getComputedStyle(document.querySelector('tr[data-server=\"{s}\"] .pill')).color")
    };
    let (healthy, unhealthy) = (page.eval(&colour("a")).await, page.eval(&colour("c")).await);
    assert_ne!(healthy, unhealthy, "states have their own colours");
    let farm_title = page
        .eval("document.querySelector('section.farm h2').textContent")
        .await;
    assert!(
        farm_title.as_str().unwrap().contains("web")
            && farm_title.as_str().unwrap().contains("2/3 up"),
        "{farm_title}"
    );
    let requests_b = page
        .eval("document.querySelector('tr[data-server=\"b\"] td.errors').textContent")
        .await;
    let sent_to_b = state_of("b")
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent_to_b >= 2);
    assert!(
        requests_b
            .as_str()
            .unwrap()
            .ends_with(&format!("0 of {sent_to_b} since start")),
        "{requests_b}"
    );
    let check_c = page
        .eval("document.querySelector('tr[data-server=\"c\"] td.check').textContent")
        .await;
    assert!(
        check_c.as_str().unwrap().contains("status 503"),
        "{check_c}"
    );

    // Drain b: the page asks for the token; a wrong one is refused.
    page.click("tr[data-server=\"b\"] button[data-action=\"drain\"]")
        .await;
    page.wait_for(
        "the token prompt",
        "document.getElementById('token-dialog').open",
    )
    .await;
    page.click("#token").await;
    page.type_text("not-the-token").await;
    page.click("#token-ok").await;
    page.wait_for(
        "the refusal",
        "document.getElementById('token-dialog').open && \
         document.getElementById('token-error').textContent.includes('refused')",
    )
    .await;
    assert_eq!(state_of("b").admin(), AdminState::Enabled);

    page.click("#token").await;
    page.type_text(TOKEN).await;
    page.click("#token-ok").await;
    page.wait_for(
        "b shown as draining",
        "document.querySelector('tr[data-server=\"b\"] .pill').textContent === 'draining'",
    )
    .await;
    assert_eq!(state_of("b").admin(), AdminState::Draining);
    let drain_disabled = page
        .eval("document.querySelector('tr[data-server=\"b\"] button[data-action=\"drain\"]').disabled")
        .await;
    assert_eq!(drain_disabled, true);
    let reason = page
        .eval("document.querySelector('tr[data-server=\"b\"] td.state').textContent")
        .await;
    assert!(
        reason
            .as_str()
            .unwrap()
            .contains("drained through the admin API"),
        "{reason}"
    );

    // The token is remembered for the session: Enable needs no prompt.
    page.click("tr[data-server=\"b\"] button[data-action=\"enable\"]")
        .await;
    page.wait_for(
        "b back to healthy",
        "document.querySelector('tr[data-server=\"b\"] .pill').textContent === 'healthy'",
    )
    .await;
    assert_eq!(state_of("b").admin(), AdminState::Enabled);

    // Verify runs a's health check now and reports it.
    page.click("tr[data-server=\"a\"] button[data-action=\"verify\"]")
        .await;
    page.wait_for(
        "the verify result",
        "document.getElementById('toast').textContent.includes('web/a: health check healthy')",
    )
    .await;

    if let Some(path) = std::env::var_os("FARMGATE_SCREENSHOT") {
        std::fs::write(path, page.screenshot().await).unwrap();
    }
    drop(browser);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
