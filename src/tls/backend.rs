//! TLS to backends (re-encryption): the rustls client settings for
//! `https://host:port` servers, compiled from `farms[].tls` at config build
//! into a [`BackendTlsMap`] that the connector consults when it opens a
//! connection (never per request).
//!
//! Trust: `farms[].tls.ca` (PEM, replaces the system roots for that farm), or
//! the operating system's store via `rustls-native-certs`. The system store
//! rather than the compiled-in Mozilla list (`webpki-roots`) because
//! backends of a web farm are mostly internal and signed by a company CA that
//! operators install into the system store; that store is also what they
//! update (and audit) with their OS packages. `insecure_skip_verify` accepts
//! any certificate and is warned about at every start.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Why backend TLS settings could not be built. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum BackendTlsError {
    #[error("cannot read {}: {source}", path.display())]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a PEM CA bundle: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCaCertificates { path: PathBuf },
    #[error("no usable root certificates in the system store ({0}); install your distribution's ca-certificates or set tls.ca")]
    NoSystemRoots(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// How one `https://` server is reached.
#[derive(Debug)]
pub struct BackendTarget {
    pub config: Arc<ClientConfig>,
    /// SNI and the name the certificate must carry: the address's host.
    pub server_name: ServerName<'static>,
    pub farm: Arc<str>,
    /// The settings it was built from, to spot two farms disagreeing.
    pub ca: Option<PathBuf>,
    pub insecure: bool,
    /// The client certificate presented (mutual TLS), if any.
    pub client_cert: Option<PathBuf>,
}

/// Client TLS settings of every `https://` server, by `host:port`.
#[derive(Debug, Default)]
pub struct BackendTlsMap {
    targets: HashMap<Box<str>, Arc<BackendTarget>>,
    /// Farms that skip certificate verification, warned about at start.
    pub insecure_farms: Vec<Arc<str>>,
}

impl BackendTlsMap {
    /// The settings for `authority` (`host:port` as in the address).
    #[inline]
    pub fn get(&self, authority: &str) -> Option<&Arc<BackendTarget>> {
        self.targets.get(authority)
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Adds a server; a server address shared by two farms must have the
    /// same TLS settings in both (they share pooled connections). Returns
    /// the farm it conflicts with.
    pub fn insert(&mut self, authority: &str, target: BackendTarget) -> Result<(), Arc<str>> {
        if let Some(old) = self.targets.get(authority) {
            let same = old.ca == target.ca
                && old.insecure == target.insecure
                && old.client_cert == target.client_cert;
            return if same { Ok(()) } else { Err(old.farm.clone()) };
        }
        if target.insecure && !self.insecure_farms.contains(&target.farm) {
            self.insecure_farms.push(target.farm.clone());
        }
        self.targets.insert(authority.into(), Arc::new(target));
        Ok(())
    }

    /// Logs a warning for every farm whose certificates are not verified.
    pub fn warn_insecure(&self) {
        for farm in &self.insecure_farms {
            tracing::warn!(farm = %farm, "tls.insecure_skip_verify is on: backend certificates of this farm are NOT verified; anyone on the path can impersonate its servers");
        }
    }
}

/// The SNI / verification name for an address host (`[::1]` -> `::1`).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|_| format!("{host:?} is not a valid host name for TLS"))
}

/// Client settings for one farm: trust `ca` (or the system roots), or
/// nothing when `insecure`; present `identity` to servers that ask for a
/// client certificate; ALPN http/1.1, resumption on (rustls default).
pub fn client_config(
    ca: Option<&Path>,
    insecure: bool,
    identity: Option<Arc<CertifiedKey>>,
) -> Result<Arc<ClientConfig>, BackendTlsError> {
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let roots = match ca {
            Some(path) => Arc::new(ca_roots(path)?),
            None => system_roots()?,
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match identity {
        Some(key) => builder.with_client_cert_resolver(Arc::new(ClientIdentity(key))),
        None => builder.with_no_client_auth(),
    };
    // The backend connection is HTTP/1.1: say so, so a server that
    // prefers h2 does not pick it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Roots from a PEM bundle.
pub fn ca_roots(path: &Path) -> Result<RootCertStore, BackendTlsError> {
    let pem = std::fs::read(path).map_err(|source| BackendTlsError::ReadCa {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BackendTlsError::BadCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(BackendTlsError::NoCaCertificates {
            path: path.to_path_buf(),
        });
    }
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| BackendTlsError::BadCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The operating system's roots, read once per process.
fn system_roots() -> Result<Arc<RootCertStore>, BackendTlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (_, _) = roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_string(), |e| e.to_string());
                Err(why)
            } else {
                Ok(Arc::new(roots))
            }
        })
        .clone()
        .map_err(BackendTlsError::NoSystemRoots)
}

/// `farms[].tls.client_cert`: the one certificate offered whenever a
/// server asks (mutual TLS).
#[derive(Debug)]
struct ClientIdentity(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientIdentity {
    fn resolve(&self, _: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        // Offered only when the key can sign in a scheme the server takes;
        // otherwise the server decides what no certificate means.
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `insecure_skip_verify`: accepts any certificate, but still checks the
/// handshake signatures so the connection is at least consistent.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
