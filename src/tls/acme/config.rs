//! `listeners[].tls.acme` as written in YAML and its compiler into an
//! [`AcmeSpec`]. Everything is checked offline (names, URLs, files), so
//! `farmgate check` proves the section without contacting the ACME server.

use crate::ground::error::Problems;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// `listeners[].tls.acme`: certificates obtained and renewed automatically.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    /// The ACME (RFC 8555) directory URL, e.g.
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory: String,
    /// Account contacts, e.g. `mailto:ops@example.com`.
    #[serde(default)]
    pub contact: Vec<String>,
    /// The names of the certificate (the first is its file name in storage).
    pub domains: Vec<String>,
    /// How domain control is proven: `http-01` (answered on every listener
    /// at `/.well-known/acme-challenge/`) or `tls-alpn-01` (answered by this
    /// listener's TLS handshake).
    #[serde(default)]
    pub challenge: Option<ChallengeKind>,
    /// Directory keeping the account and the certificates (with `cluster:`,
    /// the local copy of what the tier keeps in Redis).
    pub storage: PathBuf,
    /// A CA certificate (PEM) to trust for the directory (test servers).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// External account binding (CAs such as ZeroSSL or Google require it).
    #[serde(default)]
    pub eab: Option<RawEab>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEab {
    pub kid: String,
    /// File holding the base64url HMAC key the CA gave.
    pub hmac_key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum ChallengeKind {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// The compiled section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSpec {
    pub directory: String,
    pub contact: Vec<String>,
    /// Lowercased, in the order written.
    pub domains: Vec<String>,
    pub challenge: ChallengeKind,
    pub storage: PathBuf,
    pub ca: Option<PathBuf>,
    pub eab: Option<Eab>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eab {
    pub kid: String,
    /// The decoded HMAC key.
    pub hmac_key: Vec<u8>,
}

impl AcmeSpec {
    /// The certificate's name in storage and in status: its first domain.
    pub fn name(&self) -> &str {
        self.domains.first().map_or("", String::as_str)
    }
}

/// `listeners[i].tls.acme` (`at`) compiled, or its problems added to `p`.
pub fn build_acme(raw: &RawAcme, at: &str, p: &mut Problems) -> Option<Arc<AcmeSpec>> {
    let before = p.0.len();
    match raw.directory.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("https" | "http")) && u.host().is_some() => {}
        _ => p.add(
            format!("{at}.directory"),
            format!(
                "{:?} is not an ACME directory URL (https://host/directory)",
                raw.directory
            ),
        ),
    }
    for (i, c) in raw.contact.iter().enumerate() {
        if !c.starts_with("mailto:") || c.len() <= "mailto:".len() {
            p.add(
                format!("{at}.contact[{i}]"),
                format!("{c:?} is not a contact URL; write \"mailto:ops@example.com\""),
            );
        }
    }
    if raw.domains.is_empty() {
        p.add(
            format!("{at}.domains"),
            "at least one domain is needed (domains: [www.example.com])",
        );
    }
    let mut domains: Vec<String> = Vec::new();
    for (i, d) in raw.domains.iter().enumerate() {
        let name = d.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Err(why) = check_domain(&name) {
            p.add(format!("{at}.domains[{i}]"), format!("{d:?} {why}"));
        } else if domains.contains(&name) {
            p.add(
                format!("{at}.domains[{i}]"),
                format!("{d:?} is listed twice"),
            );
        } else {
            domains.push(name);
        }
    }
    if raw.storage.as_os_str().is_empty() {
        p.add(format!("{at}.storage"), "a directory is needed");
    } else if raw.storage.exists() && !raw.storage.is_dir() {
        p.add(
            format!("{at}.storage"),
            format!("{} exists and is not a directory", raw.storage.display()),
        );
    }
    if let Some(ca) = &raw.ca {
        if let Err(e) = read_ca(ca) {
            p.add(format!("{at}.ca"), e);
        }
    }
    let eab = raw.eab.as_ref().and_then(|e| {
        if e.kid.trim().is_empty() {
            p.add(format!("{at}.eab.kid"), "the key id the CA gave is needed");
        }
        match read_hmac_key(&e.hmac_key_file) {
            Ok(hmac_key) => Some(Eab {
                kid: e.kid.trim().to_string(),
                hmac_key,
            }),
            Err(why) => {
                p.add(format!("{at}.eab.hmac_key_file"), why);
                None
            }
        }
    });
    if p.0.len() != before {
        return None;
    }
    Some(Arc::new(AcmeSpec {
        directory: raw.directory.clone(),
        contact: raw.contact.clone(),
        domains,
        challenge: raw.challenge.unwrap_or(ChallengeKind::Http01),
        storage: raw.storage.clone(),
        ca: raw.ca.clone(),
        eab,
    }))
}

/// A DNS name an ACME CA can validate by HTTP-01 or TLS-ALPN-01.
fn check_domain(name: &str) -> Result<(), &'static str> {
    if name.starts_with("*.") {
        return Err("is a wildcard: wildcards need the dns-01 challenge, which farmgate does not answer; list the names");
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an IP address; ACME certificates here are for DNS names");
    }
    if name.is_empty() || name.len() > 253 || !name.contains('.') {
        return Err("is not a fully qualified domain name");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("is not a valid domain name (letters, digits, '-' and '.'; punycode for IDNs)")
    }
}

fn read_ca(path: &std::path::Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match rustls_pki_types::CertificateDer::pem_slice_iter(&pem).next() {
        Some(Ok(_)) => Ok(()),
        _ => Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )),
    }
}

fn read_hmac_key(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    base64url_decode(text.trim()).ok_or_else(|| {
        format!(
            "{} does not hold a base64url HMAC key (as the CA shows it)",
            path.display()
        )
    })
}

/// base64url without padding (RFC 4648 §5), as CAs hand out EAB keys;
/// padding and the standard alphabet are accepted too.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes().filter(|&b| b != b'=') {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(domains: &[&str], directory: &str) -> RawAcme {
        RawAcme {
            directory: directory.into(),
            contact: vec!["mailto:ops@example.com".into()],
            domains: domains.iter().map(|d| d.to_string()).collect(),
            challenge: None,
            storage: std::env::temp_dir().join("farmgate-acme-config-test"),
            ca: None,
            eab: None,
        }
    }

    #[test]
    fn a_good_section_compiles_with_http01_by_default() {
        let mut p = Problems::default();
        let s = build_acme(
            &raw(&["WWW.Example.com", "api.example.com."], "https://ca/dir"),
            "x",
            &mut p,
        )
        .expect("compiles");
        assert_eq!(s.domains, ["www.example.com", "api.example.com"]);
        assert_eq!(s.challenge, ChallengeKind::Http01);
        assert_eq!(s.name(), "www.example.com");
    }

    #[test]
    fn bad_names_urls_and_contacts_are_refused_at_their_key() {
        let mut p = Problems::default();
        let mut r = raw(
            &[
                "*.example.com",
                "localhost",
                "a..b.com",
                "ok.example.com",
                "ok.example.com",
            ],
            "ftp://x",
        );
        r.contact = vec!["ops@example.com".into()];
        assert!(build_acme(&r, "l", &mut p).is_none());
        let keys: Vec<&str> = p.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "l.directory",
                "l.contact[0]",
                "l.domains[0]",
                "l.domains[1]",
                "l.domains[2]",
                "l.domains[4]"
            ]
        );
        assert!(p.0[2].1.contains("dns-01"), "{:?}", p.0[2]);
    }

    #[test]
    fn eab_keys_are_base64url() {
        assert_eq!(base64url_decode("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64url_decode("_-8"), Some(vec![0xff, 0xef]));
        assert!(base64url_decode("not base64!").is_none());
    }
}
