//! The self-signed certificate a listener with `tls.acme` serves for its
//! domains until the first one is issued: clients get a certificate error
//! rather than a closed connection, and the log says why.

use super::config::AcmeSpec;
use crate::tls::acceptor::TlsListener;
use crate::tls::certs::{cert_from_pem, unix_now, CertPaths, LoadedCert};

pub fn install_placeholder(tls: &TlsListener, spec: &AcmeSpec) {
    match placeholder(spec) {
        Ok(p) => tls.install_managed(vec![p]),
        Err(e) => {
            tracing::error!(listener = %tls.name, "cannot make the placeholder certificate: {e}")
        }
    }
}

/// The self-signed certificate served for the domains until the first one
/// is issued: clients get a certificate error rather than a closed
/// connection, and the log says why.
fn placeholder(spec: &AcmeSpec) -> Result<LoadedCert, String> {
    let mut params =
        rcgen::CertificateParams::new(spec.domains.clone()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("farmgate ACME placeholder for {}", spec.name()),
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(7);
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let label = spec.storage.join("(self-signed placeholder)");
    let paths = CertPaths {
        cert: label.clone(),
        key: label,
    };
    cert_from_pem(
        pem.as_bytes(),
        pem.as_bytes(),
        &paths,
        &crate::tls::provider(),
        unix_now(),
    )
    .map_err(|e| e.to_string())
}
