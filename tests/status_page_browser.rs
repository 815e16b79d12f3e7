//! The status page in a real browser: headless Chromium loads it from a
//! running farmgate, the test checks that servers and their states render,
//! clicks Drain, answers the token prompt like an operator, and sees the
//! page show the server draining; with traffic running, it sees a chart per
//! farm and a sparkline per server being redrawn under the page's CSP.
//! Fails (does not skip) without Chromium.
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

/// `[farm charts, sparklines, the points of every chart and sparkline]`.
const CHARTS: &str =
    "JSON.stringify([document.querySelectorAll('section.farm svg.farm-chart').length, \
    document.querySelectorAll('tr.server td.spark svg.sparkline').length, \
    [...document.querySelectorAll('svg.farm-chart polyline.rps, td.spark polyline.rps')] \
      .map(p => p.getAttribute('points'))])";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_draws_live_charts() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let api = Backend::named("api").await;
    let mut cfg = with_admin(&farm_config("round_robin", &[&a, &b], "", ""), None);
    cfg.push_str(&format!(
        "  - name: api\n    servers:\n      - {{ name: api, address: \"{}\" }}\n\
         default_farm: web\n",
        api.addr
    ));
    let fg = start(&cfg).await;
    let url = format!("http://{}/", fg.first_addr());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = tokio::spawn({
        let stop = stop.clone();
        async move {
            let http = client();
            let mut every = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                every.tick().await;
                get(&http, &url).await;
            }
        }
    });

    let page_url = admin_url(&fg, "/?refresh=500");
    let browser = Chromium::launch(&page_url).await;
    let mut page = browser.page().await;
    page.wait_for(
        "a chart per farm and a sparkline per server, with points",
        "document.querySelectorAll('svg.farm-chart').length === 2 && \
         document.querySelectorAll('td.spark svg.sparkline').length === 3 && \
         [...document.querySelectorAll('svg.farm-chart polyline.rps')].some(p => p.getAttribute('points').split(' ').length >= 2)",
    )
    .await;
    // Traffic shows: a point of the web chart and of a's sparkline above
    // the base line (the chart is 110 high, a sparkline 28).
    page.wait_for(
        "requests drawn above the base line",
        "document.querySelector('section.farm[data-farm=\"web\"] svg.farm-chart polyline.rps')\
           .getAttribute('points').split(' ').some(p => Number(p.split(',')[1]) < 100) && \
         document.querySelector('tr[data-server=\"a\"] td.spark polyline.rps')\
           .getAttribute('points').split(' ').some(p => Number(p.split(',')[1]) < 25)",
    )
    .await;
    let first: serde_json::Value =
        serde_json::from_str(page.eval(CHARTS).await.as_str().unwrap()).unwrap();
    assert_eq!(first[0], 2, "one chart per farm: {first}");
    assert_eq!(first[1], 3, "one sparkline per server: {first}");
    // Two moments: the web farm's chart and a's sparkline are redrawn with
    // new points while traffic runs.
    let web_chart = "document.querySelector('section.farm[data-farm=\"web\"] svg.farm-chart polyline.rps').getAttribute('points')";
    let spark_a = "document.querySelector('tr[data-server=\"a\"] td.spark polyline.rps').getAttribute('points')";
    let (chart_then, spark_then) = (page.eval(web_chart).await, page.eval(spark_a).await);
    page.wait_for(
        "the web chart and a's sparkline redrawn",
        &format!("{web_chart} !== {chart_then} && {spark_a} !== {spark_then}"),
    )
    .await;
    // The legend says which line is which without colour.
    let legend = page
        .eval("document.querySelector('section.farm .legend').textContent")
        .await;
    assert!(legend.as_str().unwrap().contains("dashed"), "{legend}");
    // Drawn under the page's own Content-Security-Policy, with nothing refused.
    let (_, headers, _) = get(&client(), &page_url).await;
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let violations = page
        .eval("document.body.dataset.cspViolations || '0'")
        .await;
    assert_eq!(violations, "0");

    let shot = fresh_temp_dir("farmgate-status-charts").join("status-page.png");
    std::fs::write(&shot, page.screenshot().await).unwrap();
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.await.unwrap();
    drop(browser);
}
