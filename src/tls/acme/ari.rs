//! Renewal by ARI (ACME Renewal Information, RFC 9773): when the CA's
//! directory offers `renewalInfo`, the CA says when each certificate should
//! be renewed (a window it moves earlier before a revocation, or spreads
//! out when it is busy). The renewal goes at a uniformly random time inside
//! the window (§4.2; at once when the window is already open and the pick
//! has passed), and the new order names the certificate it `replaces`
//! (§5). The CA is asked again when its `Retry-After` says (kept between a
//! minute and a day; six hours when it gives none, `ari_client`), and at
//! once for each new certificate. No answer, a bad one, or a directory without `renewalInfo`
//! leaves the two-thirds rule of `schedule` in force.

use super::config::AcmeSpec;
use super::order::{stored_account, OrderError};
use super::store::AcmeStore;
use crate::tls::certs::{format_unix, unix_now, LoadedCert};
use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::Der;
use std::time::Duration;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

/// How often the window is asked for when the CA gives no `Retry-After`
/// hint of its own (RFC 9773 §4.3 suggests a few times a day), and while
/// its directory offers no `renewalInfo` (it may start to).
pub const DEFAULT_POLL: Duration = Duration::from_secs(6 * 3600);
/// The bounds kept on the CA's `Retry-After`: a broken or hostile value
/// neither floods it nor stops asking for days.
pub const MIN_POLL: Duration = Duration::from_secs(60);
pub const MAX_POLL: Duration = Duration::from_secs(24 * 3600);
/// The next ask after a failed one.
const FAILED_POLL: Duration = Duration::from_secs(3600);
/// An ask that takes longer has failed.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(30);

/// The certificate's ARI identifier (RFC 9773 §4.1): base64url of its
/// Authority Key Identifier's keyIdentifier, a dot, base64url of its
/// serial number's DER content octets (with a leading zero byte if any).
pub fn cert_id(leaf_der: &[u8]) -> Result<CertificateIdentifier<'static>, String> {
    let (_, cert) = X509Certificate::from_der(leaf_der)
        .map_err(|e| format!("the certificate is unreadable: {e}"))?;
    let aki = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        })
        .ok_or("the certificate has no Authority Key Identifier")?;
    let serial = cert.tbs_certificate.raw_serial();
    Ok(CertificateIdentifier::new(Der::from_slice(aki), Der::from_slice(serial)).into_owned())
}

/// What set the next renewal time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CA's window (ARI).
    Ari,
    /// Two thirds of the lifetime (`schedule::renew_at`).
    TwoThirds,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ari => "ari",
            Source::TwoThirds => "two-thirds",
        }
    }
}

/// Whether the CA offers renewal information (once asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The directory has `renewalInfo` and the last ask was answered.
    Answered,
    /// The directory has none: the two-thirds rule.
    Absent,
    /// The last ask failed: the last window still holds, or the rule.
    Failing,
}

impl Offer {
    pub fn as_str(self) -> &'static str {
        match self {
            Offer::Answered => "answered",
            Offer::Absent => "absent",
            Offer::Failing => "failing",
        }
    }
}

/// The CA's window for one certificate and the time picked in it (Unix s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub renew_at: i64,
    pub explanation: Option<String>,
}

/// One manager's ARI state for the certificate it serves.
#[derive(Default)]
pub struct Ari {
    /// The serving certificate's identifier (`None`: placeholder, or a
    /// certificate without an AKI, which ARI cannot name).
    pub id: Option<CertificateIdentifier<'static>>,
    /// The CA's window for `id`.
    pub window: Option<Window>,
    /// `None` until the CA was asked.
    pub offer: Option<Offer>,
    /// Unix seconds of the next ask for `id`; 0: ask now.
    pub next_poll: i64,
    /// The account's client (directory read, CA trusted), kept between asks.
    account: Option<Account>,
}

impl Ari {
    /// A new certificate serves: forget the last one's window, ask soon.
    pub fn serving(&mut self, cert: &LoadedCert, listener: &str) {
        let id = cert
            .key
            .cert
            .first()
            .map(|der| cert_id(der))
            .transpose()
            .unwrap_or_else(|e| {
                tracing::debug!(listener = %listener, "no ARI for this certificate: {e}");
                None
            });
        if id != self.id {
            self.id = id;
            self.window = None;
            self.next_poll = 0;
        }
    }

    /// Whether the CA should be asked now.
    pub fn poll_due(&self, now: i64) -> bool {
        self.id.is_some() && self.next_poll <= now
    }

    /// The renewal time the CA's window gives, if there is one.
    pub fn renew_at(&self) -> Option<i64> {
        self.window.as_ref().map(|w| w.renew_at)
    }

    /// Whether the window has opened (the tier's re-check under the lock).
    pub fn window_open(&self, now: i64) -> Option<bool> {
        self.window.as_ref().map(|w| w.start <= now)
    }

    /// The `replaces` of a renewal's order: the serving certificate's
    /// identifier, when the CA speaks ARI (one without `renewalInfo` in its
    /// directory is not sent the field at all).
    pub fn replaces(&self) -> Option<CertificateIdentifier<'static>> {
        matches!(self.offer, Some(Offer::Answered | Offer::Failing))
            .then(|| self.id.clone())
            .flatten()
    }

    /// Asks the CA for the serving certificate's window and updates the
    /// plan (see the module doc); `cert` is the one `serving` was told of.
    pub async fn poll(
        &mut self,
        spec: &AcmeSpec,
        store: &dyn AcmeStore,
        cert: &LoadedCert,
        listener: &str,
    ) {
        let Some(id) = self.id.clone() else { return };
        let now = unix_now();
        let asked = tokio::time::timeout(POLL_TIMEOUT, self.ask(spec, store, &id)).await;
        let answer = match asked {
            Ok(Ok(Some(answer))) => answer,
            Ok(Ok(None)) => {
                if self.offer != Some(Offer::Absent) {
                    tracing::info!(listener = %listener, directory = %spec.directory, "ACME: the CA offers no renewal information (ARI); renewing at two thirds of the lifetime");
                }
                self.offer = Some(Offer::Absent);
                self.window = None;
                self.next_poll = now + DEFAULT_POLL.as_secs() as i64;
                return;
            }
            Ok(Err(e)) => return self.failed(listener, &e, now),
            Err(_) => return self.failed(listener, "no answer in 30 s", now),
        };
        let (info, retry_after) = answer;
        self.offer = Some(Offer::Answered);
        self.next_poll = now + retry_after.clamp(MIN_POLL, MAX_POLL).as_secs() as i64;
        let start = info.suggested_window.start.unix_timestamp();
        let end = info.suggested_window.end.unix_timestamp();
        let end = match usable(start, end, cert.not_after) {
            Ok(end) => end,
            Err(why) => return self.failed(listener, &why, now),
        };
        // Same window as last time: keep the time picked in it.
        if let Some(w) = &self.window {
            if (w.start, w.end) == (start, end) {
                return;
            }
        }
        let renew_at = pick(start, end, fastrand::f64());
        let two_thirds = super::schedule::renew_at(cert.not_before, cert.not_after, 0.0);
        tracing::info!(listener = %listener, cert = %id, "ACME: the CA suggests renewing {} between {} and {} (ARI); renewal at {}{}",
            cert.names_text(), format_unix(start), format_unix(end), format_unix(renew_at.max(now)),
            if renew_at < two_thirds { format!(", before two thirds of the lifetime ({})", format_unix(two_thirds)) } else { String::new() });
        if let Some(url) = &info.explanation_url {
            tracing::info!(listener = %listener, cert = %id, "ACME: the CA explains its renewal window at {url}");
        }
        self.window = Some(Window {
            start,
            end,
            renew_at,
            explanation: info.explanation_url,
        });
    }

    /// The answer, or `None` when the directory has no `renewalInfo`.
    async fn ask(
        &mut self,
        spec: &AcmeSpec,
        store: &dyn AcmeStore,
        id: &CertificateIdentifier<'_>,
    ) -> Result<Option<(instant_acme::RenewalInfo, Duration)>, String> {
        let account = match self.account.take() {
            Some(a) => a,
            None => stored_account(spec, store, || {
                super::ari_client::builder(spec).map_err(OrderError::Protocol)
            })
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no ACME account is stored yet")?,
        };
        match account.renewal_info(id).await {
            Ok(answer) => {
                self.account = Some(account);
                Ok(Some(answer))
            }
            Err(instant_acme::Error::Unsupported(_)) => {
                self.account = Some(account);
                Ok(None)
            }
            // Read the directory again at the next ask.
            Err(e) => Err(e.to_string()),
        }
    }

    fn failed(&mut self, listener: &str, why: &str, now: i64) {
        let keeps = if self.window.is_some() {
            "the last suggested window holds"
        } else {
            "renewing at two thirds of the lifetime"
        };
        tracing::warn!(
            listener = %listener,
            "ACME: asking the CA for the renewal window (ARI) failed, {keeps}: {why}"
        );
        self.offer = Some(Offer::Failing);
        self.next_poll = now + FAILED_POLL.as_secs() as i64;
    }
}

/// The end of the CA's window `start ..= end` as followed for a certificate
/// expiring at `not_after` (no later than that), or why it is not usable.
pub fn usable(start: i64, end: i64, not_after: i64) -> Result<i64, String> {
    if end < start {
        return Err(format!(
            "the suggested window ends ({}) before it starts ({})",
            format_unix(end),
            format_unix(start)
        ));
    }
    if start >= not_after {
        return Err(format!(
            "the suggested window starts ({}) after the certificate expires ({})",
            format_unix(start),
            format_unix(not_after)
        ));
    }
    Ok(end.min(not_after))
}

/// A uniformly random second in `start ..= end` (`u` in [0, 1)).
pub fn pick(start: i64, end: i64, u: f64) -> i64 {
    let span = (end - start).max(0);
    start + ((span + 1) as f64 * u.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pick_covers_the_window_and_stays_inside() {
        assert_eq!(pick(100, 200, 0.0), 100);
        assert_eq!(pick(100, 200, 0.999_999), 200);
        assert_eq!(pick(100, 100, 0.5), 100);
        assert_eq!(pick(100, 90, 0.5), 100);
    }

    #[test]
    fn a_window_must_open_before_expiry_and_is_cut_at_it() {
        assert_eq!(usable(100, 200, 1000), Ok(200));
        assert_eq!(usable(100, 2000, 1000), Ok(1000));
        assert!(usable(200, 100, 1000).is_err_and(|e| e.contains("ends")));
        assert!(usable(1000, 2000, 1000).is_err_and(|e| e.contains("expires")));
    }

    #[test]
    fn the_identifier_is_the_aki_and_the_serial_content_octets() {
        use rcgen::{CertificateParams, IsCa, KeyPair, SerialNumber};
        let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut ca = CertificateParams::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![0x69, 0x88, 0x5b, 0x6b]);
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let mut leaf =
            CertificateParams::new(vec!["a.example".into()]).unwrap_or_else(|e| panic!("{e}"));
        // RFC 9773 §4.1's example serial: 0x87654321 is encoded with a
        // leading zero byte (the high bit is set), which the identifier keeps.
        leaf.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x87, 0x65, 0x43, 0x21]));
        leaf.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = leaf
            .signed_by(&key, &issuer)
            .unwrap_or_else(|e| panic!("{e}"));
        let id = cert_id(cert.der()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.to_string(), "aYhbaw.AIdlQyE");
    }
}
