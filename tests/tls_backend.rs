//! Re-encryption to `https://` backends: verified against `farms[].tls.ca`
//! with SNI from the address host and ALPN http/1.1; a backend whose
//! certificate the CA did not sign is a 502; `insecure_skip_verify` skips
//! the check.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/tls.rs"]
mod tls;

use common::*;
use tls::*;

use rustls::pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A plain listener in front of one `https://` server with `farm_tls` (the
/// YAML lines of `farms[0].tls`, indented).
fn config(address: &str, farm_tls: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\nlog:\n  access: off\nproxy:\n  retries: 0\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: s, address: \"{address}\" }}\n{farm_tls}"
    )
}

#[tokio::test]
async fn https_backend_verified_by_a_custom_ca() {
    let certs = CertDir::new();
    let (cert, key) = certs.issue("backend", &["127.0.0.1"]);
    let (addr, seen) = tls_backend("b1", &cert, &key).await;
    let fg = start(&config(
        &format!("https://{addr}"),
        &format!("    tls:\n      ca: \"{}\"\n", certs.ca_path().display()),
    ))
    .await;
    let c = client();
    let (status, _, body) = get(&c, &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "secure b1 (x-forwarded-proto http)");
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(
        seen.alpn.as_deref(),
        Some("http/1.1"),
        "backends get HTTP/1.1"
    );
    assert_eq!(seen.sni, None, "no SNI for an IP address");
}

#[tokio::test]
async fn sni_to_the_backend_is_the_address_host() {
    let certs = CertDir::new();
    let (cert, key) = certs.issue("backend", &["localhost"]);
    let (addr, seen) = tls_backend("b1", &cert, &key).await;
    let fg = start(&config(
        &format!("https://localhost:{}", addr.port()),
        &format!("    tls:\n      ca: \"{}\"\n", certs.ca_path().display()),
    ))
    .await;
    let (status, _, body) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "secure b1 (x-forwarded-proto http)")
    );
    assert_eq!(seen.lock().unwrap()[0].sni.as_deref(), Some("localhost"));
}

#[tokio::test]
async fn a_backend_certificate_from_another_ca_is_a_502() {
    let certs = CertDir::new();
    let (cert, key) = certs.issue("backend", &["127.0.0.1"]);
    let (addr, _) = tls_backend("b1", &cert, &key).await;
    let stranger = CertDir::new();
    let fg = start(&config(
        &format!("https://{addr}"),
        &format!("    tls:\n      ca: \"{}\"\n", stranger.ca_path().display()),
    ))
    .await;
    let (status, _, _) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, 502);

    // The same backend with verification off answers.
    let fg = start(&config(
        &format!("https://{addr}"),
        "    tls:\n      insecure_skip_verify: true\n",
    ))
    .await;
    let (status, _, body) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "secure b1 (x-forwarded-proto http)")
    );
}

#[tokio::test]
async fn a_plain_backend_behind_an_https_address_is_a_502() {
    // A server that speaks plain HTTP where TLS was configured.
    let plain = Backend::named("plain").await;
    let certs = CertDir::new();
    let fg = start(&config(
        &format!("https://{}", plain.addr),
        &format!("    tls:\n      ca: \"{}\"\n", certs.ca_path().display()),
    ))
    .await;
    let (status, _, _) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn a_backend_that_demands_a_client_certificate_gets_the_farms() {
    let certs = CertDir::new();
    let (cert, key) = certs.issue("backend", &["127.0.0.1"]);
    let (client_cert, client_key) = certs.issue_client("farmgate-client", "farmgate", 7);
    // The backend trusts client certificates of this CA only.
    let (addr, seen) = tls_backend_with("b1", &cert, &key, Some(&certs.ca_path())).await;
    let with_identity = format!(
        "    tls:\n      ca: \"{}\"\n      client_cert: \"{}\"\n      client_key: \"{}\"\n",
        certs.ca_path().display(),
        client_cert.display(),
        client_key.display()
    );
    let fg = start(&config(&format!("https://{addr}"), &with_identity)).await;
    let (status, _, body) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "secure b1 (x-forwarded-proto http)")
    );
    let presented = seen.lock().unwrap()[0].client_cert.clone();
    let ours = CertificateDer::from_pem_file(&client_cert).unwrap();
    assert_eq!(
        presented.as_deref(),
        Some(ours.as_ref()),
        "the farm's certificate was presented"
    );

    // Without a client certificate the backend refuses the handshake: 502.
    let fg = start(&config(
        &format!("https://{addr}"),
        &format!("    tls:\n      ca: \"{}\"\n", certs.ca_path().display()),
    ))
    .await;
    let (status, _, _) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, 502);

    // A certificate from another CA is refused too.
    let stranger = CertDir::new();
    let (other_cert, other_key) = stranger.issue_client("other", "intruder", 8);
    let fg = start(&config(
        &format!("https://{addr}"),
        &format!(
            "    tls:\n      ca: \"{}\"\n      client_cert: \"{}\"\n      client_key: \"{}\"\n",
            certs.ca_path().display(),
            other_cert.display(),
            other_key.display()
        ),
    ))
    .await;
    let (status, _, _) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, 502);
}

#[test]
fn client_certificate_problems_name_their_key() {
    let certs = CertDir::new();
    let (client_cert, _) = certs.issue_client("c1", "one", 1);
    let (_, other_key) = certs.issue_client("c2", "two", 2);
    let check = |farm_tls: String| match farmgate::config::load_str(
        &config("https://127.0.0.1:8443", &farm_tls),
        "f.yaml",
        &farmgate::farm::StateRegistry::default(),
    ) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    let e = check(format!(
        "    tls:\n      client_cert: \"{}\"\n      client_key: \"{}\"\n",
        client_cert.display(),
        other_key.display()
    ));
    assert!(
        e.contains("farms[0].tls.client_key: the key in") && e.contains("does not match"),
        "{e}"
    );
    let e = check(
        "    tls:\n      client_cert: /nonexistent/c.crt\n      client_key: /nonexistent/c.key\n"
            .into(),
    );
    assert!(
        e.contains("farms[0].tls.client_cert: cannot read /nonexistent/c.crt"),
        "{e}"
    );
    let e = check("    tls:\n      client_key: /nonexistent/c.key\n".into());
    assert!(
        e.contains("farms[0].tls.client_key: client_key needs client_cert"),
        "{e}"
    );
}
