//! Development certificates with rcgen: a local CA and server certificates
//! it signs. `farmgate gen-certs` writes the set in `certs-dev/`; tests use
//! the same functions to make certificates of their own in temp dirs.
//! Nothing here is for production: keys are written unencrypted.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

pub use rcgen::DnType;

/// How long the development CA lasts.
pub const CA_DAYS: i64 = 3650;
/// How long a server certificate lasts: 825 days is the most that Apple's
/// TLS clients accept, even from a private CA.
pub const SERVER_DAYS: i64 = 825;
/// The names of the development server certificate.
pub const LOCALHOST_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A certificate and its key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority that signs server certificates.
pub struct DevCa {
    params: CertificateParams,
    key: KeyPair,
    pub cert_pem: String,
}

impl DevCa {
    /// A new CA (ECDSA P-256) named `common_name`, valid from yesterday
    /// for [`CA_DAYS`].
    pub fn generate(common_name: &str) -> Result<DevCa, DevCertError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "farmgate development");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_DAYS);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            params,
            key,
        })
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A server certificate for `names` (DNS names, wildcards or IP
    /// addresses) valid from yesterday for `days`.
    pub fn issue(&self, names: &[&str], days: i64) -> Result<Issued, DevCertError> {
        let now = OffsetDateTime::now_utc();
        self.issue_between(names, now - Duration::days(1), now + Duration::days(days))
    }

    /// A server certificate valid between two instants (tests use one that
    /// has already expired).
    pub fn issue_between(
        &self,
        names: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, DevCertError> {
        let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(owned)?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl DevCa {
    /// A client certificate (mutual TLS) for `subject` (pairs such as
    /// `(DnType::CommonName, "billing")`), valid from yesterday for `days`,
    /// with serial number `serial`.
    pub fn issue_client(
        &self,
        subject: &[(DnType, &str)],
        serial: u64,
        days: i64,
    ) -> Result<Issued, DevCertError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (kind, value) in subject {
            dn.push(kind.clone(), *value);
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(days);
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A certificate revocation list (PEM) revoking `serials`, valid for a day.
    pub fn crl(&self, serials: &[u64]) -> Result<String, DevCertError> {
        let now = OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + Duration::days(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: now - Duration::minutes(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_params(&self.params, &self.key);
        Ok(params.signed_by(&issuer)?.pem()?)
    }
}

/// Writes `contents` to `path`; keys are readable by their owner only.
pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), DevCertError> {
    let err = |source| DevCertError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, contents).map_err(err)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

/// Writes a new development CA (`ca.crt`, `ca.key`) and a localhost
/// certificate signed by it (`localhost.crt`, `localhost.key`) for
/// [`LOCALHOST_NAMES`] plus `extra_names` into `dir`. Returns the files.
pub fn write_dev_certs(dir: &Path, extra_names: &[String]) -> Result<Vec<PathBuf>, DevCertError> {
    std::fs::create_dir_all(dir).map_err(|source| DevCertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = DevCa::generate("farmgate development CA")?;
    let mut names: Vec<&str> = LOCALHOST_NAMES.to_vec();
    names.extend(extra_names.iter().map(String::as_str));
    let server = ca.issue(&names, SERVER_DAYS)?;
    let files = [
        ("ca.crt", ca.cert_pem.clone(), false),
        ("ca.key", ca.key_pem(), true),
        ("localhost.crt", server.cert_pem, false),
        ("localhost.key", server.key_pem, true),
    ];
    let mut written = Vec::new();
    for (name, contents, private) in files {
        let path = dir.join(name);
        write_file(&path, &contents, private)?;
        written.push(path);
    }
    Ok(written)
}
