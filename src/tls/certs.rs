//! Certificates from disk: a PEM chain and its PEM key (PKCS#8, RSA or EC)
//! become a rustls `CertifiedKey`, refused with a message naming the file
//! when unreadable, malformed, mismatched or expired. The names a
//! certificate serves (its SANs) are read here once, so the per-handshake
//! lookup is a hash probe. [`load_set`] is the one entry point: start-up,
//! the file watcher and a config reload all call it.

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Where one certificate and its key are read from. With `key` equal to
/// `cert`, one file holds both (HAProxy style).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate was refused. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid PEM: {reason}", path.display())]
    BadPem { path: PathBuf, reason: String },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: the private key cannot be used: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("{}: the certificate cannot be parsed: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("the key in {} does not match the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate in {} expired on {when}", path.display())]
    Expired { path: PathBuf, when: String },
}

impl CertError {
    /// The file at fault (for a mismatch, the key): decides which config
    /// key an error is reported at.
    pub fn file(&self) -> &Path {
        match self {
            CertError::Read { path, .. }
            | CertError::BadPem { path, .. }
            | CertError::NoCertificate { path }
            | CertError::NoKey { path }
            | CertError::BadKey { path, .. }
            | CertError::BadCertificate { path, .. }
            | CertError::Expired { path, .. } => path,
            CertError::Mismatch { key, .. } => key,
        }
    }
}

/// A certificate ready to serve, with what was learnt from it at load.
#[derive(Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub paths: CertPaths,
    /// DNS names it serves, lowercased; `*.example.com` for wildcards. The
    /// subject CN stands in when the certificate has no DNS SAN.
    pub dns_names: Vec<String>,
    /// IP addresses in its SANs (served to clients that send no SNI).
    pub ip_names: Vec<std::net::IpAddr>,
    /// Validity as Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("cert", &self.paths.cert)
            .field("dns_names", &self.dns_names)
            .field("ip_names", &self.ip_names)
            .field("not_after", &format_unix(self.not_after))
            .finish()
    }
}

impl LoadedCert {
    /// The names for logs: `localhost, 127.0.0.1`.
    pub fn names_text(&self) -> String {
        let mut names: Vec<String> = self.dns_names.clone();
        names.extend(self.ip_names.iter().map(|ip| ip.to_string()));
        names.join(", ")
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads, checks and compiles one certificate and its key; `now` is Unix
/// seconds (a parameter so tests can load an expired certificate).
pub fn load_cert(
    paths: &CertPaths,
    provider: &CryptoProvider,
    now: i64,
) -> Result<LoadedCert, CertError> {
    let cert_pem = read(&paths.cert)?;
    let key_pem = if paths.key == paths.cert {
        cert_pem.clone()
    } else {
        read(&paths.key)?
    };
    cert_from_pem(&cert_pem, &key_pem, paths, provider, now)
}

/// [`load_cert`] for PEM already in memory (ACME certificates from their
/// store); `paths` name where they came from in messages.
pub fn cert_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    paths: &CertPaths,
    provider: &CryptoProvider,
    now: i64,
) -> Result<LoadedCert, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadPem {
            path: paths.cert.clone(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificate {
            path: paths.cert.clone(),
        });
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => CertError::NoKey {
            path: paths.key.clone(),
        },
        other => CertError::BadPem {
            path: paths.key.clone(),
            reason: other.to_string(),
        },
    })?;

    let bad_cert = |reason: String| CertError::BadCertificate {
        path: paths.cert.clone(),
        reason,
    };
    let (_, x509) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|e| bad_cert(e.to_string()))?;
    let validity = x509.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    if not_after < now {
        return Err(CertError::Expired {
            path: paths.cert.clone(),
            when: format_unix(not_after),
        });
    }
    let (dns_names, ip_names) = names_of(&x509).map_err(bad_cert)?;

    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::BadKey {
            path: paths.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // Unknown: the key type cannot show its public half; rustls accepts it too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(CertError::Mismatch {
                cert: paths.cert.clone(),
                key: paths.key.clone(),
            })
        }
        Err(e) => return Err(bad_cert(e.to_string())),
    }
    Ok(LoadedCert {
        key: Arc::new(certified),
        paths: paths.clone(),
        dns_names,
        ip_names,
        not_before,
        not_after,
    })
}

type Names = (Vec<String>, Vec<std::net::IpAddr>);

/// DNS and IP SANs; the subject CN when there is no DNS SAN (old certificates).
fn names_of(x509: &X509Certificate<'_>) -> Result<Names, String> {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Some(san) = x509.subject_alternative_name().map_err(|e| e.to_string())? {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns.push(normalize(n)),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ips.push(std::net::IpAddr::from(
                        <[u8; 4]>::try_from(*b).unwrap_or_default(),
                    )),
                    16 => ips.push(std::net::IpAddr::from(
                        <[u8; 16]>::try_from(*b).unwrap_or_default(),
                    )),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if dns.is_empty() {
        for cn in x509.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                if cn.contains('.') || cn == "localhost" {
                    dns.push(normalize(cn));
                }
            }
        }
    }
    Ok((dns, ips))
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `2026-03-01 12:00:00 UTC`.
pub fn format_unix(secs: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| format!("@{secs}"))
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The certificates of one listener, indexed by name. Never empty; the
/// first one is the default for clients without SNI or with an unknown name.
pub struct CertSet {
    certs: Vec<LoadedCert>,
    exact: HashMap<Box<str>, Vec<usize>>,
    /// Keyed by the part after `*.`: `*.example.com` -> `example.com`.
    wildcard: HashMap<Box<str>, Vec<usize>>,
}

impl fmt::Debug for CertSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.certs.iter()).finish()
    }
}

/// A certificate of a set that was refused: its index in the list and why.
#[derive(Debug)]
pub struct SetError {
    pub index: usize,
    pub error: CertError,
}

/// Every refused certificate of a set.
#[derive(Debug)]
pub struct SetErrors(pub Vec<SetError>);

impl fmt::Display for SetErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", e.error)?;
        }
        Ok(())
    }
}

/// Loads every certificate of a listener: all of them, or every reason why
/// not. What start-up, the file watcher and a config reload call.
pub fn load_set(paths: &[CertPaths]) -> Result<CertSet, SetErrors> {
    let provider = super::provider();
    let now = unix_now();
    let mut certs = Vec::with_capacity(paths.len());
    let mut errors = Vec::new();
    for (index, p) in paths.iter().enumerate() {
        match load_cert(p, &provider, now) {
            Ok(c) => certs.push(c),
            Err(error) => errors.push(SetError { index, error }),
        }
    }
    if !errors.is_empty() {
        return Err(SetErrors(errors));
    }
    if certs.is_empty() {
        return Err(SetErrors(Vec::new()));
    }
    Ok(CertSet::new(certs))
}

impl CertSet {
    /// Indexes `certs` (at least one); earlier certificates win a shared name.
    pub fn new(certs: Vec<LoadedCert>) -> Self {
        let mut exact: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        let mut wildcard: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        for (i, c) in certs.iter().enumerate() {
            for name in &c.dns_names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent),
                    None => (&mut exact, name.as_str()),
                };
                let list = map.entry(key.into()).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        CertSet {
            certs,
            exact,
            wildcard,
        }
    }

    pub fn certs(&self) -> &[LoadedCert] {
        &self.certs
    }

    /// The certificates that serve `sni` (exact names before wildcards), or
    /// the default one. `sni` is lowercase (rustls normalizes it).
    pub fn candidates(&self, sni: Option<&str>) -> &[usize] {
        const DEFAULT: &[usize] = &[0];
        let Some(name) = sni else {
            return DEFAULT;
        };
        if let Some(list) = self.exact.get(name) {
            return list;
        }
        // A wildcard covers exactly one label (RFC 6125 §6.4.3).
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(list) = self.wildcard.get(parent) {
                return list;
            }
        }
        DEFAULT
    }

    /// The certificate for a handshake: among the candidates for `sni`, the
    /// first whose key can sign with a scheme the client offers (so an RSA
    /// and an ECDSA certificate can serve the same name), else the first.
    pub fn choose(
        &self,
        sni: Option<&str>,
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let candidates = self.candidates(sni);
        let pick = candidates
            .iter()
            .find(|&&i| {
                self.certs
                    .get(i)
                    .is_some_and(|c| c.key.key.choose_scheme(schemes).is_some())
            })
            .or(candidates.first())?;
        self.certs.get(*pick).map(|c| c.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_set_chooses_nothing_instead_of_panicking() {
        // A listener with only `tls.acme` starts with no certificate.
        let empty = CertSet::new(Vec::new());
        assert!(empty.choose(Some("www.example.com"), &[]).is_none());
        assert!(empty.choose(None, &[]).is_none());
    }
    use crate::tls::devcerts::{write_file, DevCa};

    fn set(names: &[&[&str]]) -> (CertSet, PathBuf) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("farmgate-certs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        let ca = DevCa::generate("test CA").expect("ca");
        let mut paths = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let issued = ca.issue(n, 10).expect("issue");
            let p = CertPaths {
                cert: d.join(format!("{i}.crt")),
                key: d.join(format!("{i}.key")),
            };
            write_file(&p.cert, &issued.cert_pem, false).expect("write");
            write_file(&p.key, &issued.key_pem, true).expect("write");
            paths.push(p);
        }
        (load_set(&paths).expect("loads"), d)
    }

    #[test]
    fn names_pick_certificates_exact_before_wildcard() {
        let (s, d) = set(&[
            &["a.test", "127.0.0.1"],
            &["*.b.test", "B.test."],
            &["x.b.test"],
        ]);
        assert_eq!(s.certs()[0].dns_names, ["a.test"]);
        assert_eq!(
            s.certs()[0].ip_names,
            ["127.0.0.1".parse::<std::net::IpAddr>().expect("ip")]
        );
        assert_eq!(
            s.certs()[1].dns_names,
            ["*.b.test", "b.test"],
            "lowercased, no trailing dot"
        );
        assert_eq!(s.candidates(Some("a.test")), [0]);
        assert_eq!(s.candidates(Some("b.test")), [1]);
        assert_eq!(s.candidates(Some("y.b.test")), [1]);
        assert_eq!(
            s.candidates(Some("x.b.test")),
            [2],
            "an exact name beats a wildcard"
        );
        assert_eq!(
            s.candidates(Some("z.y.b.test")),
            [0],
            "a wildcard covers one label"
        );
        assert_eq!(s.candidates(Some("c.test")), [0]);
        assert_eq!(s.candidates(None), [0]);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let (s, d) = set(&[&["one.test"], &["two.test"]]);
        let paths = CertPaths {
            cert: s.certs()[0].paths.cert.clone(),
            key: s.certs()[1].paths.key.clone(),
        };
        let e = load_cert(&paths, &crate::tls::provider(), unix_now()).expect_err("mismatch");
        assert!(matches!(e, CertError::Mismatch { .. }), "{e}");
        assert_eq!(e.file(), paths.key);
        let _ = std::fs::remove_dir_all(d);
    }
}
