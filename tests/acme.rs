//! Automatic certificates against a real ACME server (Debian's `pebble`,
//! which really fetches HTTP-01 tokens from farmgate and really connects
//! for TLS-ALPN-01): first issue by each challenge with the served chain
//! verified against pebble's root; renewal of a short-lived certificate
//! while pebble is down keeps the old one serving and retries, then the
//! renewed one serves new handshakes while an open connection stays up.
//! Renewal by ARI (RFC 9773): pebble 2.4 has none, so a real HTTPS front
//! (`common/ari_front.rs`) adds `renewalInfo` with windows the test sets;
//! farmgate renews inside the window, long before two thirds of the
//! lifetime, and its order names the certificate it replaces; a failing
//! renewalInfo leaves the two-thirds rule in force.
#![allow(clippy::unwrap_used)]

#[path = "common/ari_front.rs"]
mod ari_front;
mod common;
#[path = "common/pebble.rs"]
mod pebble;
#[path = "common/process.rs"]
mod process;
#[path = "common/tls.rs"]
mod tls;

use ari_front::{near_then_later, AriFront, Policy, Reply};
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
    /// The ARI front before pebble, when the test has one.
    front: Option<AriFront>,
}

/// Pebble, then farmgate with a plain listener (HTTP-01 is answered there)
/// and a TLS listener named `listener` managing `domain` by `challenge`.
async fn setup(listener: &str, domain: &str, challenge: &str, validity_secs: u64) -> Setup {
    setup_with(listener, domain, challenge, validity_secs, None).await
}

/// [`setup`] with, given an ARI `policy`, farmgate's directory behind an
/// [`AriFront`] answering renewalInfo by it.
async fn setup_with(
    listener: &str,
    domain: &str,
    challenge: &str,
    validity_secs: u64,
    policy: Option<Policy>,
) -> Setup {
    let (http_addr, tls_addr) = (free_port(), free_port());
    let pebble = Pebble::start(http_addr.port(), tls_addr.port(), validity_secs).await;
    let front = match policy {
        Some(p) => Some(AriFront::start(&pebble, p).await),
        None => None,
    };
    let directory = front
        .as_ref()
        .map_or_else(|| pebble.directory.clone(), |f| f.directory.clone());
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
        dir = directory,
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
        front,
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

/// The ARI identifier of a certificate (RFC 9773 §4.1), computed here
/// from the parsed certificate: the AKI keyIdentifier, and the serial
/// number's DER content octets (its big-endian magnitude, a zero byte in
/// front when the high bit is set).
fn ari_id(der: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
            _ => None,
        })
        .expect("pebble's certificates carry an AKI");
    let mut serial = cert.serial.to_bytes_be();
    if serial[0] & 0x80 != 0 {
        serial.insert(0, 0);
    }
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki.0),
        URL_SAFE_NO_PAD.encode(serial)
    )
}

/// Unix seconds of two thirds of the certificate's lifetime.
fn two_thirds(der: &[u8]) -> i64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let (nb, na) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    nb + (na - nb) * 2 / 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_window_moves_the_renewal_early_and_the_order_replaces_the_old_certificate() {
    let (listener, domain) = ("acme-ari", "ari.farmgate.test");
    // 90 s certificates: two thirds come 60 s after issue.
    let s = setup_with(listener, domain, "http-01", 90, Some(near_then_later())).await;
    let front = s.front.as_ref().unwrap();
    let conn = wait_for_issued(&s, listener, domain).await;
    let first = peer_cert(&conn);
    drop(conn);
    let first_id = ari_id(&first);

    wait_until(
        Duration::from_secs(30),
        "a renewal by the CA's window",
        || async { status(listener).renewals_total >= 2 },
    )
    .await;
    let st = status(listener);
    let asked = front.asked();
    assert_eq!(
        asked[0].cert_id, first_id,
        "the CA was asked about the served certificate: {asked:?}"
    );
    let (start, end) = asked[0].window.unwrap();
    // Whole seconds, as the status keeps them; the attempt starts at the
    // picked second, or the next one on a busy machine.
    assert!(
        (start..=end + 1).contains(&st.last_attempt),
        "renewed at {} outside the window {start}..{end}: {st:?}",
        st.last_attempt
    );
    assert!(
        st.last_attempt < two_thirds(&first) - 30,
        "not renewed well before two thirds of the lifetime: {st:?}"
    );
    // The renewal's order named the certificate it replaces (the first
    // order had none to name) and was accepted with it.
    assert_eq!(front.orders(), [None, Some(first_id.clone())]);

    // Asked once about the first certificate: its `Retry-After: 1` was held
    // to the one-minute floor.
    let about_first = front
        .asked()
        .iter()
        .filter(|a| a.cert_id == first_id)
        .count();
    assert_eq!(about_first, 1, "{:?}", front.asked());

    // The renewed certificate serves, and its own window is asked for and
    // followed; with no Retry-After, the next ask is in six hours.
    let renewed = wait_for_issued(&s, listener, domain).await;
    let second_id = ari_id(&peer_cert(&renewed));
    assert_ne!(second_id, first_id);
    wait_until(
        Duration::from_secs(10),
        "the renewed certificate's window",
        || async {
            status(listener)
                .ari_window
                .is_some_and(|w| w[0] > farmgate::tls::certs::unix_now() + 20)
        },
    )
    .await;
    let st = status(listener);
    let asked = front.asked();
    let last = asked.last().unwrap();
    assert_eq!(last.cert_id, second_id);
    assert_eq!((st.renewal_by, st.ari), ("ari", "answered"), "{st:?}");
    assert!(
        (last.window.unwrap().0..=last.window.unwrap().1).contains(&st.next_renewal),
        "{st:?}"
    );
    assert!(
        (st.ari_next_poll - (last.at + 6 * 3600)).abs() <= 2,
        "{st:?}"
    );
    assert_eq!(
        st.ari_explanation_url.as_deref(),
        Some("https://ca.farmgate.test/why")
    );
    s.running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_whose_replaces_is_refused_is_ordered_again_without_it() {
    let (listener, domain) = ("acme-ari-replaced", "replaced.farmgate.test");
    let s = setup_with(listener, domain, "http-01", 90, Some(near_then_later())).await;
    let front = s.front.as_ref().unwrap();
    front
        .refuse_replaces
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let conn = wait_for_issued(&s, listener, domain).await;
    let first = peer_cert(&conn);
    drop(conn);
    wait_until(
        Duration::from_secs(30),
        "a renewal by the CA's window",
        || async { status(listener).renewals_total >= 2 },
    )
    .await;
    // `alreadyReplaced`: the same renewal, ordered again without the field,
    // with no failure counted.
    assert_eq!(front.orders(), [None, Some(ari_id(&first)), None]);
    let st = status(listener);
    assert_eq!(
        (st.failures_total, st.last_result.as_str()),
        (0, "ok"),
        "{st:?}"
    );
    let renewed = wait_for_issued(&s, listener, domain).await;
    assert_ne!(peer_cert(&renewed), first);
    s.running.shutdown(Duration::from_secs(1)).await;
}

/// A renewalInfo that answers `reply` leaves the two-thirds rule in force:
/// the certificate is still renewed, at two thirds of its lifetime.
async fn failing_renewal_information_falls_back(listener: &str, domain: &str, reply: Reply) {
    let policy: Policy = Arc::new(move |_| reply.clone());
    // 30 s certificates: renewed about 20 s after issue.
    let s = setup_with(listener, domain, "http-01", 30, Some(policy)).await;
    let front = s.front.as_ref().unwrap();
    let conn = wait_for_issued(&s, listener, domain).await;
    let first = peer_cert(&conn);
    drop(conn);
    wait_until(
        Duration::from_secs(10),
        "the failed ask for the window",
        || async { status(listener).ari == "failing" },
    )
    .await;
    let st = status(listener);
    assert_eq!(st.renewal_by, "two-thirds", "{st:?}");
    assert_eq!(front.asked()[0].cert_id, ari_id(&first));

    wait_until(
        Duration::from_secs(40),
        "a renewal by the two-thirds rule",
        || async { status(listener).renewals_total >= 2 },
    )
    .await;
    let st = status(listener);
    // Within the rule's jitter (2% of the lifetime) before two thirds.
    assert!(st.last_attempt >= two_thirds(&first) - 2, "{st:?}");
    assert_eq!(st.consecutive_failures, 0, "{st:?}");
    // The CA's directory offers ARI: the order still names what it replaces.
    assert_eq!(front.orders(), [None, Some(ari_id(&first))]);
    let renewed = wait_for_issued(&s, listener, domain).await;
    assert_ne!(peer_cert(&renewed), first);
    s.running.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_information_answering_500_falls_back_to_two_thirds() {
    failing_renewal_information_falls_back(
        "acme-ari-500",
        "ari500.farmgate.test",
        Reply::Status(500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_information_answering_garbage_falls_back_to_two_thirds() {
    failing_renewal_information_falls_back(
        "acme-ari-garbage",
        "arigarbage.farmgate.test",
        Reply::Garbage,
    )
    .await;
}
