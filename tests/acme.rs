//! Automatic certificates against a real ACME server (Debian's `pebble`,
//! which really fetches HTTP-01 tokens from farmgate and really connects
//! for TLS-ALPN-01): first issue by each challenge with the served chain
//! verified against pebble's root; renewal of a short-lived certificate
//! while pebble is down keeps the old one serving and retries, then the
//! renewed one serves new handshakes while an open connection stays up.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/pebble.rs"]
mod pebble;
#[path = "common/process.rs"]
mod process;
#[path = "common/tls.rs"]
mod tls;

use common::*;
use farmgate::tls::acme::{statuses, AcmeStatus};
use pebble::Pebble;
use process::free_port;
use rustls::ClientConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls::{connect, peer_cert, peer_names, Sender};

struct Setup {
    pebble: Pebble,
    running: farmgate::Running,
    tls_addr: SocketAddr,
    _backend: Backend,
    storage: std::path::PathBuf,
}

/// Pebble, then farmgate with a plain listener (HTTP-01 is answered there)
/// and a TLS listener named `listener` managing `domain` by `challenge`.
async fn setup(listener: &str, domain: &str, challenge: &str, validity_secs: u64) -> Setup {
    let (http_addr, tls_addr) = (free_port(), free_port());
    let pebble = Pebble::start(http_addr.port(), tls_addr.port(), validity_secs).await;
    let backend = Backend::named("app").await;
    let storage = fresh_temp_dir("farmgate-acme-storage");
    let yaml = format!(
        "listeners:\n  - name: plain-{listener}\n    bind: \"{http_addr}\"\n\
         \x20 - name: {listener}\n    bind: \"{tls_addr}\"\n    tls:\n      acme:\n\
         \x20       directory: \"{dir}\"\n        contact: [\"mailto:ops@example.com\"]\n\
         \x20       domains: [\"{domain}\"]\n        challenge: {challenge}\n\
         \x20       storage: \"{storage}\"\n        ca: \"{ca}\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: app, address: \"{backend}\" }}\n",
        dir = pebble.directory,
        storage = storage.display(),
        ca = pebble.listener_ca.display(),
        backend = backend.addr,
    );
    let running = start(&yaml).await;
    Setup {
        pebble,
        running,
        tls_addr,
        _backend: backend,
        storage,
    }
}

fn status(listener: &str) -> AcmeStatus {
    statuses()
        .snapshot()
        .into_iter()
        .find(|s| s.listener == listener)
        .unwrap_or_default()
}

async fn verifying_client(p: &Pebble) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(p.root().await)
            .with_no_client_auth(),
    )
}

/// Waits until a client trusting only pebble's current root completes a
/// handshake for `domain`; returns that connection.
async fn wait_for_issued(
    s: &Setup,
    listener: &str,
    domain: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let client = verifying_client(&s.pebble).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(conn) = connect(s.tls_addr, domain, client.clone()).await {
            return conn;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no certificate issued for {domain}: {:?}\npebble:\n{}",
            status(listener),
            s.pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn first_issue(listener: &str, domain: &str, challenge: &str) {
    let s = setup(listener, domain, challenge, 3600).await;
    // Before the first issue: the self-signed placeholder, for the domain.
    let any = connect(s.tls_addr, domain, tls::accept_any_client(true))
        .await
        .unwrap();
    assert_eq!(peer_names(&any), [domain]);
    drop(any);

    let conn = wait_for_issued(&s, listener, domain).await;
    assert_eq!(peer_names(&conn), [domain]);
    let mut sender = Sender::new(conn).await;
    let (status_code, _, body) = sender.get(domain, "/").await;
    assert_eq!((status_code, body.as_str()), (200, "app"));

    let st = status(listener);
    assert_eq!(st.state, "valid", "{st:?}");
    assert_eq!(st.domains, [domain]);
    assert_eq!(st.last_result, "ok");
    assert!(st.days_to_expiry(farmgate::tls::certs::unix_now()).unwrap() > 0.0);
    // Kept in storage with the account, for the next start.
    assert!(s.storage.join(format!("certs/{domain}.pem")).exists());
    assert!(
        std::fs::read_dir(s.storage.join("accounts"))
            .unwrap()
            .count()
            == 1
    );
    s.running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_certificate_by_http01_verifies_against_pebbles_root() {
    first_issue("acme-http", "http01.farmgate.test", "http-01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_certificate_by_tls_alpn01_verifies_against_pebbles_root() {
    first_issue("acme-alpn", "alpn.farmgate.test", "tls-alpn-01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_survives_a_ca_outage_and_keeps_open_connections() {
    let (listener, domain) = ("acme-renew", "renew.farmgate.test");
    // 45 s certificates: renewed about 30 s after issue.
    let mut s = setup(listener, domain, "http-01", 45).await;
    let conn = wait_for_issued(&s, listener, domain).await;
    let first = peer_cert(&conn);
    let mut open = Sender::new(conn).await;
    assert_eq!(open.get(domain, "/").await.0, 200);

    // The CA goes away before renewal is due: renewal fails and is retried
    // while the first certificate keeps serving.
    s.pebble.stop();
    wait_until(Duration::from_secs(60), "two failed renewals", || async {
        status(listener).consecutive_failures >= 2
    })
    .await;
    let st = status(listener);
    assert_eq!(st.state, "failing", "{st:?}");
    let still = connect(s.tls_addr, domain, tls::accept_any_client(true))
        .await
        .unwrap();
    assert_eq!(
        peer_cert(&still),
        first,
        "the old certificate must keep serving"
    );
    drop(still);

    // Back (a new pebble: new root, the account is made again): renewed.
    s.pebble.restart().await;
    let renewed = wait_for_issued(&s, listener, domain).await;
    assert_ne!(peer_cert(&renewed), first);
    let st = status(listener);
    assert_eq!((st.state, st.consecutive_failures), ("valid", 0), "{st:?}");
    assert!(st.failures_total >= 2);

    // The connection opened on the first certificate is still served.
    assert_eq!(open.get(domain, "/").await.0, 200);
    s.running.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn check_refuses_a_bad_acme_section_offline_naming_each_key() {
    let yaml = "listeners:\n  - name: https\n    bind: \"127.0.0.1:0\"\n    tls:\n      acme:\n\
                \x20       directory: \"not a url\"\n        contact: [\"ops@example.com\"]\n\
                \x20       domains: [\"*.example.com\"]\n        storage: /var/lib/farmgate/acme\n\
                farms:\n  - name: web\n    servers:\n      - { name: a, address: \"127.0.0.1:1\" }\n";
    let registry = std::sync::Arc::new(farmgate::farm::StateRegistry::default());
    let Err(err) = farmgate::config::load_str(yaml, "acme.yaml", &registry) else {
        panic!("a bad acme section was accepted");
    };
    let err = err.to_string();
    for key in [
        "acme.yaml:6:",
        "listeners[0].tls.acme.directory",
        "listeners[0].tls.acme.contact[0]",
        "listeners[0].tls.acme.domains[0]",
        "dns-01",
    ] {
        assert!(err.contains(key), "{key:?} missing from:\n{err}");
    }
}
