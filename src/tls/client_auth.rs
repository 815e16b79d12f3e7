//! Client certificates on a TLS listener (mutual TLS, IIS "require/accept
//! client certificates"): `listeners[].tls.client_auth`, its rustls
//! verifier, and [`ClientCert`], what a verified certificate tells the
//! layers above (the header forwarded to backends, the `{CERT_*}` rule
//! variables), rendered once per connection at the handshake.
//!
//! `required`: the handshake fails without a certificate the CA signed
//! (and the CRL does not revoke). `optional`: the handshake accepts any
//! certificate or none; the chain is verified right after it
//! ([`ClientAuthSpec::verify`]) and a connection whose certificate fails is
//! served unauthenticated, as IIS's "accept" does.

use crate::ground::hex::hex;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `required` or `optional`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    Required,
    Optional,
}

/// `listeners[].tls.client_auth`, compiled: the CA and CRLs loaded.
#[derive(Debug)]
pub struct ClientAuthSpec {
    pub mode: ClientAuthMode,
    pub ca: PathBuf,
    pub crl: Option<PathBuf>,
    /// Verifies chains to `ca`, checking the CRL (always mandatory).
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientAuthSpec {
    /// Loads `ca` (PEM bundle) and `crl` (PEM or DER); errors name the file.
    pub fn load(mode: ClientAuthMode, ca: &Path, crl: Option<&Path>) -> Result<Self, String> {
        let roots = super::backend::ca_roots(ca).map_err(|e| e.to_string())?;
        let crls = match crl {
            Some(path) => load_crls(path)?,
            None => Vec::new(),
        };
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider())
                .with_crls(crls)
                .build()
                .map_err(|e| format!("{}: {e}", crl.unwrap_or(ca).display()))?;
        Ok(ClientAuthSpec {
            mode,
            ca: ca.to_path_buf(),
            crl: crl.map(Path::to_path_buf),
            verifier,
        })
    }

    /// The verifier the handshake runs.
    pub fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        match self.mode {
            ClientAuthMode::Required => self.verifier.clone(),
            ClientAuthMode::Optional => Arc::new(Optional(self.verifier.clone())),
        }
    }

    /// What the connection's certificate tells the request path, when it
    /// verifies (in `optional` mode the handshake did not insist).
    pub fn verify(&self, chain: Option<&[CertificateDer<'static>]>) -> Option<Arc<ClientCert>> {
        let (leaf, intermediates) = chain?.split_first()?;
        if self.mode == ClientAuthMode::Optional {
            self.verifier
                .verify_client_cert(leaf, intermediates, UnixTime::now())
                .ok()?;
        }
        ClientCert::from_der(leaf.as_ref()).map(Arc::new)
    }
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.starts_with(b"-----") {
        let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{} is not a PEM CRL: {e}", path.display()))?;
        if crls.is_empty() {
            return Err(format!(
                "{} holds no PEM CRL (-----BEGIN X509 CRL-----)",
                path.display()
            ));
        }
        Ok(crls)
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

/// `optional`: the handshake takes any certificate (signatures still
/// checked, so the client holds its key) or none.
#[derive(Debug)]
struct Optional(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Optional {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A verified client certificate as the request path uses it.
#[derive(Debug)]
pub struct ClientCert {
    /// The DER, base64 (ARR's `X-ARR-ClientCert` form).
    pub header: http::HeaderValue,
    /// `CN=billing, O=Example` (RFC 4514 order as x509 prints it).
    pub subject: Box<str>,
    pub issuer: Box<str>,
    /// Hex, upper case, as IIS shows `CERT_SERIALNUMBER`.
    pub serial: Box<str>,
    /// SHA-256 of the DER, hex, lower case.
    pub fingerprint: Box<str>,
}

impl ClientCert {
    pub fn from_der(der: &[u8]) -> Option<ClientCert> {
        let (_, x509) = X509Certificate::from_der(der).ok()?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        Some(ClientCert {
            header: http::HeaderValue::from_str(&base64(der)).ok()?,
            subject: x509.subject().to_string().into(),
            issuer: x509.issuer().to_string().into(),
            serial: x509
                .raw_serial_as_string()
                .replace(':', "")
                .to_ascii_uppercase()
                .into(),
            fingerprint: hex(digest.as_ref()).into(),
        })
    }
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = match *chunk {
            [a, b, c] => u32::from_be_bytes([0, a, b, c]),
            [a, b] => u32::from_be_bytes([0, a, b, 0]),
            [a] => u32::from_be_bytes([0, a, 0, 0]),
            _ => 0,
        };
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }
}
