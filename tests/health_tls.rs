//! Health probes of `https://` servers go through the same TLS settings as
//! traffic: a trusted certificate passes, a certificate from another CA is a
//! failed check with its own reason.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/tls.rs"]
mod tls;

use common::*;
use std::time::Duration;
use tls::*;

fn config(address: &str, ca: &std::path::Path) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: s, address: \"{address}\" }}\n\
         \x20   tls:\n      ca: \"{}\"\n\
         \x20   health_check:\n      url: /health\n      interval: 100ms\n      \
         response_match: secure\n",
        ca.display()
    )
}

async fn last_result(fg: &farmgate::Running) -> String {
    let state = fg.gateway.snapshot().farms[0].health.server(0).clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(c) = state.health_view().last_check {
            return c.reason;
        }
        assert!(std::time::Instant::now() < deadline, "no probe ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_https_server_is_probed_over_tls() {
    let certs = CertDir::new();
    let (cert, key) = certs.issue("backend", &["127.0.0.1"]);
    let (addr, seen) = tls_backend("b1", &cert, &key).await;
    let fg = start(&config(&format!("https://{addr}"), &certs.ca_path())).await;
    assert_eq!(last_result(&fg).await, "health check passed");
    assert!(
        !seen.lock().unwrap().is_empty(),
        "the probe made a TLS handshake"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_check() {
    let (certs, stranger) = (CertDir::new(), CertDir::new());
    let (cert, key) = certs.issue("backend", &["127.0.0.1"]);
    let (addr, _) = tls_backend("b1", &cert, &key).await;
    let fg = start(&config(&format!("https://{addr}"), &stranger.ca_path())).await;
    assert_eq!(last_result(&fg).await, "TLS handshake failed");
    let state = fg.gateway.snapshot().farms[0].health.server(0).clone();
    assert!(!state.is_healthy());
}
