//! One TLS listener's ACME certificate over time: at start the stored
//! certificate (or, before the first issue, a self-signed placeholder) is
//! installed; then it is renewed at two thirds of its lifetime, retried with
//! back-off while the CA fails, and each new certificate goes in through
//! the listener's hot certificate swap (open connections keep theirs).
//!
//! The manager reads the listener's current spec, so a reload that adds,
//! changes or removes `tls.acme` is followed without a restart.

use super::config::AcmeSpec;
use super::order::{obtain, Issued};
use super::schedule::{backoff, renew_at};
use super::status::{statuses, AcmeStatus};
use super::store::{AcmeStore, FileStore};
use crate::tls::acceptor::TlsListener;
use crate::tls::certs::{cert_from_pem, format_unix, unix_now, CertPaths, LoadedCert};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a waiting manager looks whether a reload changed its section.
const SPEC_POLL: Duration = Duration::from_secs(1);
/// The lifetime assumed for back-off before any certificate was issued.
const FIRST_ISSUE_LIFETIME: i64 = 600;

/// Manages `tls`'s ACME certificate until `stop` says so.
pub fn spawn(tls: Arc<TlsListener>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    // Before the listener's first handshake: a listener with only `acme`
    // has no certificate until this is in.
    if let Some(spec) = tls.spec().acme.clone() {
        install_placeholder(&tls, &spec);
    }
    tokio::spawn(async move {
        loop {
            let Some(spec) = tls.spec().acme.clone() else {
                statuses().remove(&tls.name);
                tokio::select! {
                    _ = tokio::time::sleep(SPEC_POLL) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            };
            if Manager::new(tls.clone(), spec).run(&mut stop).await == Exit::Stopped {
                return;
            }
        }
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Stopped,
    SpecChanged,
}

/// The storage key of a certificate: chain and key in one PEM, so one
/// atomic write replaces both.
fn cert_key(spec: &AcmeSpec) -> String {
    format!("certs/{}.pem", spec.name())
}

struct Manager {
    tls: Arc<TlsListener>,
    spec: Arc<AcmeSpec>,
    store: Arc<dyn AcmeStore>,
    status: Arc<Mutex<AcmeStatus>>,
    /// The issued certificate serving now; `None` while the placeholder does.
    current: Option<LoadedCert>,
    failures: u32,
}

impl Manager {
    fn new(tls: Arc<TlsListener>, spec: Arc<AcmeSpec>) -> Self {
        let store: Arc<dyn AcmeStore> = Arc::new(FileStore::new(&spec.storage));
        let status = statuses().entry(&tls.name);
        {
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.domains = spec.domains.clone();
            s.challenge = spec.challenge.as_str();
        }
        Manager {
            tls,
            spec,
            store,
            status,
            current: None,
            failures: 0,
        }
    }

    fn update(&self, f: impl FnOnce(&mut AcmeStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    async fn run(mut self, stop: &mut watch::Receiver<bool>) -> Exit {
        self.install_stored().await;
        if self.current.is_none() {
            if !self.tls.has_managed() {
                install_placeholder(&self.tls, &self.spec);
            }
            tracing::warn!(listener = %self.tls.name, "serving a self-signed placeholder certificate for {} until the first ACME certificate is issued",
                self.spec.domains.join(", "));
            self.update(|s| s.state = "placeholder");
        }
        let mut failed_at = 0;
        loop {
            let due = self.due(failed_at);
            self.update(|s| s.next_attempt = due);
            if let Some(exit) = self.wait_until(due, stop).await {
                return exit;
            }
            let now = unix_now();
            self.update(|s| {
                s.last_attempt = now;
                s.state = "renewing";
            });
            let result = tokio::select! {
                r = obtain(&self.spec, &*self.store) => r,
                _ = stop.wait_for(|s| *s) => return Exit::Stopped,
            };
            match result.map_err(|e| e.to_string()) {
                Ok(issued) => match self.keep(issued).await {
                    Ok(()) => continue,
                    Err(e) => self.failed(e),
                },
                Err(e) => self.failed(e),
            }
            failed_at = unix_now();
        }
    }

    /// Unix seconds of the next attempt.
    fn due(&self, failed_at: i64) -> i64 {
        let lifetime = self
            .current
            .as_ref()
            .map_or(FIRST_ISSUE_LIFETIME, |c| c.not_after - c.not_before);
        if self.failures > 0 {
            return failed_at + backoff(self.failures, lifetime).as_secs() as i64;
        }
        match &self.current {
            Some(c) if self.covers(c) => renew_at(c.not_before, c.not_after, fastrand::f64()),
            _ => unix_now(),
        }
    }

    /// Whether `c` serves every configured domain (a config change may
    /// have added one: then it is ordered again at once).
    fn covers(&self, c: &LoadedCert) -> bool {
        self.spec.domains.iter().all(|d| c.dns_names.contains(d))
    }

    /// Waits until `due`; `Some` when stopped or the section changed first.
    async fn wait_until(&self, due: i64, stop: &mut watch::Receiver<bool>) -> Option<Exit> {
        loop {
            let left = due - unix_now();
            if left <= 0 {
                return None;
            }
            let nap = SPEC_POLL.min(Duration::from_secs(left as u64));
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = stop.wait_for(|s| *s) => return Some(Exit::Stopped),
            }
            if self.tls.spec().acme.as_deref() != Some(&*self.spec) {
                return Some(Exit::SpecChanged);
            }
        }
    }

    /// Installs the stored certificate, if there is a usable one.
    async fn install_stored(&mut self) {
        let key = cert_key(&self.spec);
        let pem = match self.store.get(&key).await {
            Ok(Some(pem)) => pem,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(listener = %self.tls.name, "cannot read the stored ACME certificate {key}: {e}");
                return;
            }
        };
        match self.load(&pem) {
            Ok(c) => {
                tracing::info!(listener = %self.tls.name, "ACME certificate for {} from storage, valid until {}",
                    c.names_text(), format_unix(c.not_after));
                self.serve(c);
            }
            Err(e) => {
                tracing::warn!(listener = %self.tls.name, "the stored ACME certificate is not usable, a new one is ordered: {e}")
            }
        }
    }

    fn load(&self, pem: &[u8]) -> Result<LoadedCert, String> {
        let label = self.spec.storage.join(cert_key(&self.spec));
        let paths = CertPaths {
            cert: label.clone(),
            key: label,
        };
        cert_from_pem(pem, pem, &paths, &crate::tls::provider(), unix_now())
            .map_err(|e| e.to_string())
    }

    /// Stores a new certificate and serves it from the next handshake on.
    async fn keep(&mut self, issued: Issued) -> Result<(), String> {
        let pem = format!("{}\n{}", issued.chain_pem.trim_end(), issued.key_pem);
        let cert = self.load(pem.as_bytes())?;
        let key = cert_key(&self.spec);
        if let Err(e) = self.store.put(&key, pem.as_bytes()).await {
            // Served anyway; the next start orders again.
            tracing::error!(listener = %self.tls.name, "cannot store the ACME certificate as {key}: {e}");
        }
        tracing::info!(listener = %self.tls.name, "ACME certificate issued for {}, valid until {}",
            cert.names_text(), format_unix(cert.not_after));
        self.failures = 0;
        self.update(|s| {
            s.last_result = "ok".into();
            s.renewals_total += 1;
            s.consecutive_failures = 0;
        });
        self.serve(cert);
        Ok(())
    }

    fn serve(&mut self, cert: LoadedCert) {
        self.update(|s| {
            s.not_after = cert.not_after;
            s.state = "valid";
        });
        self.tls.install_managed(vec![cert.clone()]);
        self.current = Some(cert);
    }

    fn failed(&mut self, why: String) {
        self.failures += 1;
        let failures = self.failures;
        self.update(|s| {
            s.last_result = why.clone();
            s.failures_total += 1;
            s.consecutive_failures = failures;
            s.state = if s.not_after > 0 {
                "failing"
            } else {
                "placeholder"
            };
        });
        let domains = self.spec.domains.join(", ");
        match &self.current {
            None => tracing::error!(listener = %self.tls.name,
                "ACME order for {domains} failed ({failures} in a row), the placeholder keeps serving: {why}"),
            Some(c) => {
                let left = c.not_after - unix_now();
                let lifetime = (c.not_after - c.not_before).max(1);
                let text = format!("ACME renewal for {domains} failed ({failures} in a row); the current certificate keeps serving and expires on {} (in {}): {why}",
                    format_unix(c.not_after), left_text(left));
                if left < lifetime / 6 {
                    tracing::error!(listener = %self.tls.name, "{text}");
                } else {
                    tracing::warn!(listener = %self.tls.name, "{text}");
                }
            }
        }
    }
}

fn left_text(secs: i64) -> String {
    if secs >= 2 * 86_400 {
        format!("{} days", secs / 86_400)
    } else if secs >= 2 * 3600 {
        format!("{} hours", secs / 3600)
    } else {
        format!("{} seconds", secs.max(0))
    }
}

fn install_placeholder(tls: &TlsListener, spec: &AcmeSpec) {
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
