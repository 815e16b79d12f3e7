//! Client certificates on a TLS listener (mutual TLS), with certificates
//! made in the test: `required` refuses a handshake without a trusted
//! certificate (or with a revoked one), `optional` serves it
//! unauthenticated; a verified certificate reaches the backend in
//! X-ARR-ClientCert (base64 DER) and a client-sent copy never does; a rule
//! refuses by `{CERT_SUBJECT}`.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/tls.rs"]
mod tls;

use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use tls::*;

/// A client trusting `certs`' CA, presenting `identity` (cert, key) if given.
fn client_with(
    certs: &CertDir,
    identity: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Arc<ClientConfig> {
    let b = ClientConfig::builder().with_root_certificates(certs.roots());
    let mut c = match identity {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
                .unwrap()
        }
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// GET `path` over a new TLS connection with a forged X-ARR-ClientCert;
/// `None` when the handshake (or the first request) fails.
async fn get_tls(
    addr: std::net::SocketAddr,
    client: Arc<ClientConfig>,
    path: &str,
) -> Option<(u16, String)> {
    use http_body_util::BodyExt;
    let stream = connect(addr, "localhost", client).await.ok()?;
    let mut sender = Sender::new(stream).await;
    let mut req = request(&sender, "localhost", path);
    req.headers_mut()
        .insert("x-arr-clientcert", "forged-by-the-client".parse().unwrap());
    let fut = async {
        match &mut sender {
            Sender::H1(s) => s.send_request(req).await.ok(),
            Sender::H2(s) => s.send_request(req).await.ok(),
        }
    };
    let resp = fut.await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn der_base64(cert: &Path) -> String {
    let der = CertificateDer::from_pem_file(cert).unwrap();
    farmgate::tls::client_auth::base64(der.as_ref())
}

#[tokio::test]
async fn client_certificates_are_required_or_optional_passed_on_and_ruled_on() {
    let certs = CertDir::new();
    let server = certs.issue("server", &["localhost"]);
    let billing = certs.issue_client("billing", "billing", 11);
    let intruder = certs.issue_client("intruder", "intruder", 12);
    let revoked = certs.issue_client("revoked", "revoked", 13);
    let stranger_ca = CertDir::new();
    let stranger = stranger_ca.issue_client("stranger", "billing", 14);
    std::fs::write(certs.dir.join("ca.crl"), certs.ca.crl(&[13]).unwrap()).unwrap();
    let ca = certs.ca_path().display().to_string();
    let crl = certs.dir.join("ca.crl").display().to_string();

    let backend = Backend::named("app").await;
    let yaml = format!(
        "listeners:\n{}{}admin: {{ enabled: false }}\nlog: {{ access: off }}\n\
         farms:\n  - name: web\n    servers: [ {{ address: \"{}\" }} ]\n\
         rules:\n  - name: no intruders\n    match: \".*\"\n    \
         conditions: [ {{ input: \"{{CERT_SUBJECT}}\", pattern: \"CN=intruder\" }} ]\n    \
         action: {{ respond: {{ status: 403, body: \"refused serial {{CERT_SERIALNUMBER}}\" }} }}\n",
        tls_listener_yaml(
            "required",
            std::slice::from_ref(&server),
            &format!("      client_auth: {{ mode: required, ca: \"{ca}\", crl: \"{crl}\" }}\n"),
        ),
        tls_listener_yaml(
            "optional",
            std::slice::from_ref(&server),
            &format!("      client_auth: {{ mode: optional, ca: \"{ca}\" }}\n"),
        ),
        backend.addr
    );
    let fg = start(&yaml).await;
    let (required, optional) = (fg.addr("required").unwrap(), fg.addr("optional").unwrap());
    let header = |b: &Backend| {
        b.last_seen()
            .headers
            .get("x-arr-clientcert")
            .map(|v| v.to_str().unwrap().to_string())
    };

    // required + a certificate from our CA: served, the backend gets the
    // certificate (not the client's forged header).
    let got = get_tls(required, client_with(&certs, Some(&billing)), "/").await;
    assert_eq!(got, Some((200, "app".into())));
    assert_eq!(header(&backend), Some(der_base64(&billing.0)));

    // required without a certificate, with another CA's, or a revoked one:
    // no connection.
    for (what, id) in [
        ("none", None),
        ("stranger", Some(&stranger)),
        ("revoked", Some(&revoked)),
    ] {
        let got = get_tls(required, client_with(&certs, id), "/").await;
        assert_eq!(got, None, "{what}: the handshake must fail");
    }

    // A rule refuses by subject, and sees the serial number.
    let got = get_tls(required, client_with(&certs, Some(&intruder)), "/").await;
    assert_eq!(got, Some((403, "refused serial 0C".into())));

    // optional: without a certificate, or with an untrusted one, the
    // request is served unauthenticated; the forged header is removed.
    for (what, id) in [("none", None), ("stranger", Some(&stranger))] {
        let got = get_tls(optional, client_with(&certs, id), "/x").await;
        assert_eq!(got, Some((200, "app".into())), "{what}");
        assert_eq!(
            header(&backend),
            None,
            "{what}: no certificate header, forged one removed"
        );
    }
    let got = get_tls(optional, client_with(&certs, Some(&billing)), "/y").await;
    assert_eq!(got, Some((200, "app".into())));
    assert_eq!(header(&backend), Some(der_base64(&billing.0)));

    // A plain listener never passes a client's copy either.
    let plain = start(&farm_config("round_robin", &[&backend], "", "")).await;
    let req = http::Request::get(format!("http://{}/", plain.first_addr()))
        .header("x-arr-clientcert", "forged")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let (status, _, _) = send(&client(), req).await;
    assert_eq!(status, 200);
    assert_eq!(header(&backend), None);
}

#[test]
fn client_auth_problems_name_their_key() {
    let certs = CertDir::new();
    let server = certs.issue("server", &["localhost"]);
    let check = |extra: &str| {
        let yaml = format!(
            "listeners:\n{}admin: {{ enabled: false }}\nfarms:\n  - name: web\n    servers: [ {{ address: \"127.0.0.1:1\" }} ]\n",
            tls_listener_yaml("tls", std::slice::from_ref(&server), extra)
        );
        match farmgate::config::load_str(&yaml, "f.yaml", &farmgate::farm::StateRegistry::default())
        {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let e = check("      client_auth: { ca: /nonexistent/ca.pem }\n");
    assert!(
        e.contains("listeners[0].tls.client_auth.ca: cannot read /nonexistent/ca.pem"),
        "{e}"
    );
    std::fs::write(
        certs.dir.join("bad.crl"),
        "-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let e = check(&format!(
        "      client_auth: {{ ca: \"{}\", crl: \"{}\" }}\n",
        certs.ca_path().display(),
        certs.dir.join("bad.crl").display()
    ));
    assert!(e.contains("listeners[0].tls.client_auth.crl:"), "{e}");
    let e = check(&format!(
        "      client_auth: {{ mode: sometimes, ca: \"{}\" }}\n",
        certs.ca_path().display()
    ));
    assert!(e.contains("unknown variant `sometimes`"), "{e}");
}
