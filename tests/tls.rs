//! TLS termination end to end: SNI picks the certificate, ALPN picks
//! HTTP/2 or HTTP/1.1, a replaced certificate file serves the next
//! handshake without dropping open connections, resumption, handshake
//! failures counted, and `check` naming a bad key file.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/tls.rs"]
mod tls;

use common::*;
use std::path::PathBuf;
use std::time::Duration;
use tls::*;

/// One TLS listener (`tls_listener` from `tls_listener_yaml`) in front of
/// farm `web` over `backends`.
fn config(tls_listener: &str, backends: &[&Backend]) -> String {
    let mut servers = String::new();
    for b in backends {
        servers.push_str(&format!(
            "      - {{ name: {}, address: \"{}\" }}\n",
            b.name, b.addr
        ));
    }
    format!(
        "listeners:\n{tls_listener}admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n{servers}"
    )
}

#[tokio::test]
async fn each_hostname_gets_its_own_certificate() {
    let certs = CertDir::new();
    let alpha = certs.issue("alpha", &["alpha.test"]);
    let beta = certs.issue("beta", &["beta.test", "*.beta.test"]);
    let backend = Backend::named("app").await;
    let fg = start(&config(
        &tls_listener_yaml("secure", &[alpha, beta], ""),
        &[&backend],
    ))
    .await;
    let addr = fg.first_addr();
    let verified = certs.client(&["http/1.1"]);

    let s = connect(addr, "alpha.test", verified.clone()).await.unwrap();
    assert_eq!(peer_names(&s), ["alpha.test"]);
    let s = connect(addr, "beta.test", verified.clone()).await.unwrap();
    assert_eq!(peer_names(&s), ["beta.test", "*.beta.test"]);
    // A wildcard covers one label: www.beta.test yes, a.b.beta.test no.
    let s = connect(addr, "www.beta.test", verified.clone())
        .await
        .unwrap();
    assert_eq!(peer_names(&s), ["beta.test", "*.beta.test"]);
    let s = connect(addr, "a.b.beta.test", accept_any_client(true))
        .await
        .unwrap();
    assert_eq!(
        peer_names(&s),
        ["alpha.test"],
        "unknown names get the first"
    );
    // Unknown name and no SNI at all: the first certificate.
    let s = connect(addr, "other.test", accept_any_client(true))
        .await
        .unwrap();
    assert_eq!(peer_names(&s), ["alpha.test"]);
    let s = connect(addr, "beta.test", accept_any_client(false))
        .await
        .unwrap();
    assert_eq!(peer_names(&s), ["alpha.test"], "no SNI gets the first");

    // And the connection serves HTTP with X-Forwarded-Proto: https.
    let s = connect(addr, "beta.test", verified).await.unwrap();
    let mut h = Sender::new(s).await;
    let (status, _, body) = h.get("beta.test", "/").await;
    assert_eq!((status, body.as_str()), (200, "app"));
    assert_eq!(backend.last_seen().headers["x-forwarded-proto"], "https");
    assert_eq!(fg.gateway.tls.handshake_failures_total(), 0);
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http1_clients_are_still_served() {
    let certs = CertDir::new();
    let site = certs.issue("site", &["site.test"]);
    let backend = Backend::named("app").await;
    let fg = start(&config(
        &tls_listener_yaml("secure", &[site], ""),
        &[&backend],
    ))
    .await;
    let addr = fg.first_addr();

    let s = connect(addr, "site.test", certs.client(&["h2", "http/1.1"]))
        .await
        .unwrap();
    assert_eq!(alpn(&s).as_deref(), Some("h2"));
    let mut h2 = Sender::new(s).await;
    let (status, version, body) = h2.get("site.test", "/hello").await;
    assert_eq!(
        (status, version, body.as_str()),
        (200, http::Version::HTTP_2, "app")
    );
    let seen = backend.last_seen();
    assert_eq!(seen.uri.path(), "/hello");
    assert_eq!(seen.headers["host"], "site.test");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    let s = connect(addr, "site.test", certs.client(&["http/1.1"]))
        .await
        .unwrap();
    assert_eq!(alpn(&s).as_deref(), Some("http/1.1"));
    let mut h1 = Sender::new(s).await;
    let (status, version, body) = h1.get("site.test", "/").await;
    assert_eq!(
        (status, version, body.as_str()),
        (200, http::Version::HTTP_11, "app")
    );

    // A client that offers no ALPN at all speaks HTTP/1.1.
    let s = connect(addr, "site.test", certs.client(&[])).await.unwrap();
    assert_eq!(alpn(&s), None);
    let (status, _, _) = Sender::new(s).await.get("site.test", "/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_listener_limited_to_http1_never_negotiates_h2() {
    let certs = CertDir::new();
    let site = certs.issue("site", &["site.test"]);
    let backend = Backend::named("app").await;
    let fg = start(&config(
        &tls_listener_yaml("secure", &[site], "      alpn: [http/1.1]\n"),
        &[&backend],
    ))
    .await;
    let s = connect(
        fg.first_addr(),
        "site.test",
        certs.client(&["h2", "http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(alpn(&s).as_deref(), Some("http/1.1"));
    let (status, version, _) = Sender::new(s).await.get("site.test", "/").await;
    assert_eq!((status, version), (200, http::Version::HTTP_11));
}

#[tokio::test]
async fn a_replaced_certificate_serves_the_next_handshake_and_open_connections_stay() {
    let certs = CertDir::new();
    let (cert, key) = certs.issue("site", &["site.test"]);
    let backend = Backend::named("app").await;
    let fg = start(&config(
        &tls_listener_yaml(
            "secure",
            &[(cert.clone(), key.clone())],
            "      watch_interval: 20ms\n",
        ),
        &[&backend],
    ))
    .await;
    let addr = fg.first_addr();
    let client = certs.client(&["h2"]);
    let first = connect(addr, "site.test", client.clone()).await.unwrap();
    let old_cert = peer_cert(&first);
    let mut open = Sender::new(first).await;
    assert_eq!(open.get("site.test", "/").await.0, 200);

    // Renewal: new key and certificate, each moved into place.
    let renewed = certs.ca.issue(&["site.test", "www.site.test"], 60).unwrap();
    certs.replace(&key, &renewed.key_pem);
    certs.replace(&cert, &renewed.cert_pem);
    wait_until(
        Duration::from_secs(10),
        "the renewed certificate is served",
        || {
            let client = client.clone();
            async move {
                let s = connect(addr, "site.test", client).await.unwrap();
                peer_names(&s) == ["site.test", "www.site.test"]
            }
        },
    )
    .await;
    // The connection opened before the swap still works.
    assert_eq!(open.get("site.test", "/").await.0, 200);
    let tls = fg.gateway.tls.get("secure").unwrap();
    assert!(tls.stats.certificate_reloads() >= 1);
    let fresh = connect(addr, "site.test", client.clone()).await.unwrap();
    assert_ne!(peer_cert(&fresh), old_cert);

    // A broken replacement is refused and the renewed certificate stays.
    certs.replace(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    wait_until(
        Duration::from_secs(10),
        "the broken file is refused",
        || {
            let tls = tls.clone();
            async move { tls.stats.certificate_reload_failures() >= 1 }
        },
    )
    .await;
    let s = connect(addr, "site.test", client).await.unwrap();
    assert_eq!(peer_names(&s), ["site.test", "www.site.test"]);
}

#[tokio::test]
async fn sessions_resume_and_failed_handshakes_are_counted() {
    let certs = CertDir::new();
    let site = certs.issue("site", &["site.test"]);
    let backend = Backend::named("app").await;
    let fg = start(&config(
        &tls_listener_yaml("secure", &[site], "      handshake_timeout: 300ms\n"),
        &[&backend],
    ))
    .await;
    let addr = fg.first_addr();
    let stats = fg.gateway.tls.get("secure").unwrap().stats.clone();

    // The client keeps the ticket of its first session and resumes with it.
    let client = certs.client(&["http/1.1"]);
    let s = connect(addr, "site.test", client.clone()).await.unwrap();
    let mut h = Sender::new(s).await;
    assert_eq!(h.get("site.test", "/").await.0, 200);
    let s = connect(addr, "site.test", client).await.unwrap();
    assert_eq!(
        s.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    wait_until(
        Duration::from_secs(5),
        "a resumed handshake is counted",
        || {
            let stats = stats.clone();
            async move { stats.resumed_handshakes() >= 1 }
        },
    )
    .await;

    // Garbage instead of a ClientHello, and a client that says nothing.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut junk = tokio::net::TcpStream::connect(addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    // The silent one is closed by the handshake timeout.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a silent client must be cut at handshake_timeout"
    );
    wait_until(Duration::from_secs(5), "both failures are counted", || {
        let stats = stats.clone();
        async move { stats.handshake_failures() >= 2 && stats.handshake_timeouts() >= 1 }
    })
    .await;
    assert_eq!(
        fg.gateway.tls.handshake_failures_total(),
        stats.handshake_failures()
    );
}

#[tokio::test]
async fn min_version_13_refuses_tls12_clients() {
    let certs = CertDir::new();
    let site = certs.issue("site", &["site.test"]);
    let backend = Backend::named("app").await;
    let fg = start(&config(
        &tls_listener_yaml("secure", &[site], "      min_version: 1.3\n"),
        &[&backend],
    ))
    .await;
    let tls12_only =
        rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
            .with_root_certificates(certs.roots())
            .with_no_client_auth();
    let r = connect(
        fg.first_addr(),
        "site.test",
        std::sync::Arc::new(tls12_only),
    )
    .await;
    assert!(r.is_err(), "a TLS 1.2 client must be refused");
    let s = connect(fg.first_addr(), "site.test", certs.client(&[]))
        .await
        .unwrap();
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn check_rejects_a_key_that_does_not_match_its_certificate() {
    let certs = CertDir::new();
    let (cert, _) = certs.issue("site", &["site.test"]);
    let (_, other_key) = certs.issue("other", &["other.test"]);
    let yaml = format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\n    tls:\n      certificates:\n\
         \x20       - cert: \"{}\"\n          key: \"{}\"\n\
         farms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9\"\n",
        cert.display(),
        other_key.display()
    );
    let path = process::temp_file("farmgate.yaml", &yaml);
    let out = std::process::Command::new(process::bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "{}:6:16: listeners[0].tls.certificates[0].key: the key in {} does not match the certificate in {}",
        path.display(),
        other_key.display(),
        cert.display()
    );
    assert!(stderr.contains(&expected), "{stderr}\nwanted: {expected}");
}

#[test]
fn gen_certs_writes_a_ca_and_a_localhost_certificate_that_load() {
    let out_dir: PathBuf =
        std::env::temp_dir().join(format!("farmgate-gen-{}", std::process::id()));
    let out = std::process::Command::new(process::bin())
        .args(["gen-certs", "--name", "dev.example.test", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set = farmgate::tls::certs::load_set(&[farmgate::tls::CertPaths {
        cert: out_dir.join("localhost.crt"),
        key: out_dir.join("localhost.key"),
    }])
    .unwrap();
    let c = &set.certs()[0];
    assert_eq!(c.dns_names, ["localhost", "dev.example.test"]);
    assert_eq!(c.ip_names.len(), 2, "127.0.0.1 and ::1");
    // Signed by the CA written beside it.
    let roots = farmgate::tls::backend::ca_roots(&out_dir.join("ca.crt")).unwrap();
    assert_eq!(roots.len(), 1);
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[tokio::test]
async fn new_settings_apply_to_a_running_listener() {
    // What a config reload does: build the listener's new TLS spec (here
    // another certificate and HTTP/1.1 only) and apply it.
    let certs = CertDir::new();
    let first = certs.issue("first", &["site.test"]);
    let second = certs.issue("second", &["site.test", "new.site.test"]);
    let backend = Backend::named("app").await;
    let fg = start(&config(
        &tls_listener_yaml("secure", &[first], ""),
        &[&backend],
    ))
    .await;
    let addr = fg.first_addr();
    let client = certs.client(&["h2", "http/1.1"]);
    let before = connect(addr, "site.test", client.clone()).await.unwrap();
    assert_eq!(alpn(&before).as_deref(), Some("h2"));
    let mut open = Sender::new(before).await;

    let yaml = config(
        &tls_listener_yaml("secure", &[second], "      alpn: [http/1.1]\n"),
        &[&backend],
    );
    let snap = farmgate::config::load_str(&yaml, "reload.yaml", &fg.gateway.registry).unwrap();
    let spec = snap.listeners[0].tls.clone().unwrap();
    fg.gateway.tls.get("secure").unwrap().apply(spec).unwrap();

    let after = connect(addr, "site.test", client).await.unwrap();
    assert_eq!(alpn(&after).as_deref(), Some("http/1.1"));
    assert_eq!(peer_names(&after), ["site.test", "new.site.test"]);
    assert_eq!(Sender::new(after).await.get("site.test", "/").await.0, 200);
    // The h2 connection from before the change is still served.
    assert_eq!(open.get("site.test", "/").await.0, 200);
}
