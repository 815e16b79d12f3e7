//! One TLS listener's ACME certificate over time: at start the stored
//! certificate (or, before the first issue, a self-signed placeholder) is
//! installed; then it is renewed inside the CA's suggested window when the
//! CA offers one (ARI, `ari`), else at two thirds of its lifetime, retried
//! with back-off while the CA fails, and each new certificate goes in
//! through the listener's hot certificate swap (open connections keep
//! theirs).
//!
//! The manager reads the listener's current spec, so a reload that adds,
//! changes or removes `tls.acme` is followed without a restart. With a tier
//! (`cluster:`), storage is shared, an order is placed only under the
//! tier's lock (`lease`), and a certificate another instance stored is
//! installed when announced (or found by a periodic look).

use super::ari::Ari;
use super::config::AcmeSpec;
use super::lease::{self, Attempt};
use super::order::Issued;
use super::placeholder::install_placeholder;
use super::schedule::backoff;
use super::status::{statuses, AcmeStatus};
use super::store::{AcmeStore, FileStore};
use super::tier::{AcmeTier, TierSlot, TierStore};
use crate::tls::acceptor::TlsListener;
use crate::tls::certs::{cert_from_pem, format_unix, unix_now, CertPaths, LoadedCert};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a waiting manager looks whether a reload changed its section.
const SPEC_POLL: Duration = Duration::from_secs(1);
/// How often, in a tier, the shared store is read for a certificate another
/// instance stored (the announcement on pub/sub is the fast way).
const TIER_POLL: Duration = Duration::from_secs(10);
/// The lifetime assumed for back-off before any certificate was issued.
const FIRST_ISSUE_LIFETIME: i64 = 600;

/// Manages `tls`'s ACME certificate until `stop` says so; `slot` holds the
/// tier's shared store while `cluster:` is configured.
pub fn spawn(
    tls: Arc<TlsListener>,
    slot: Arc<TierSlot>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
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
            let manager = Manager::new(tls.clone(), spec, slot.clone());
            if manager.run(&mut stop).await == Exit::Stopped {
                return;
            }
        }
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Stopped,
    /// The section changed, or the tier came or went: start over.
    SpecChanged,
    /// A certificate another instance stored now serves: reschedule.
    Installed,
}

/// The storage key of a certificate: chain and key in one PEM, so one
/// atomic write replaces both.
pub(super) fn cert_key(spec: &AcmeSpec) -> String {
    format!("certs/{}.pem", spec.name())
}

pub(super) struct Manager {
    pub(super) tls: Arc<TlsListener>,
    pub(super) spec: Arc<AcmeSpec>,
    pub(super) store: Arc<dyn AcmeStore>,
    /// The tier's shared store and lock, when there is one.
    pub(super) tier: Option<Arc<dyn AcmeTier>>,
    slot: Arc<TierSlot>,
    changes: watch::Receiver<u64>,
    status: Arc<Mutex<AcmeStatus>>,
    /// The issued certificate serving now; `None` while the placeholder does.
    pub(super) current: Option<LoadedCert>,
    failures: u32,
    /// When set, the next attempt's time (back-off, or another instance
    /// holding the order lock) instead of the renewal schedule.
    pub(super) retry_at: Option<i64>,
    /// The tier's Redis was unreachable at the last attempt (logged once).
    pub(super) tier_down: bool,
    /// The CA's renewal window for the serving certificate (ARI).
    pub(super) ari: Ari,
    /// Where in the two-thirds rule's jitter band this certificate renews
    /// (drawn per certificate, so a re-planned wait keeps its time).
    pub(super) jitter: f64,
}

impl Manager {
    fn new(tls: Arc<TlsListener>, spec: Arc<AcmeSpec>, slot: Arc<TierSlot>) -> Self {
        let local = FileStore::new(&spec.storage);
        let tier = slot.get();
        let store: Arc<dyn AcmeStore> = match &tier {
            Some(t) => Arc::new(TierStore::new(t.clone(), local)),
            None => Arc::new(local),
        };
        let status = statuses().entry(&tls.name);
        {
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.domains = spec.domains.clone();
            s.challenge = spec.challenge.as_str();
            s.tier = tier.is_some();
        }
        Manager {
            tls,
            spec,
            store,
            changes: slot.subscribe(),
            tier,
            slot,
            status,
            current: None,
            failures: 0,
            retry_at: None,
            tier_down: false,
            ari: Ari::default(),
            jitter: fastrand::f64(),
        }
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut AcmeStatus)) {
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
        loop {
            // The CA's window is asked for the certificate that renews on
            // schedule (one missing a configured domain is ordered at once).
            let scheduled = self.current.clone().filter(|c| self.covers(c));
            if let Some(cert) = scheduled.as_ref().filter(|_| self.ari.poll_due(unix_now())) {
                tokio::select! {
                    () = self.ari.poll(&self.spec, &*self.store, cert, &self.tls.name) => {}
                    _ = stop.wait_for(|s| *s) => return Exit::Stopped,
                }
            }
            let due = self.due();
            self.show_plan(due);
            // Woken early to ask the CA for its window again.
            let wake = match (&scheduled, &self.ari.id) {
                (Some(_), Some(_)) => self.ari.next_poll.min(due),
                _ => due,
            };
            match self.wait_until(wake, stop).await {
                None if unix_now() < due => continue,
                None => {}
                Some(Exit::Installed) => continue,
                Some(exit) => return exit,
            }
            let now = unix_now();
            self.update(|s| {
                s.last_attempt = now;
                s.state = "renewing";
            });
            self.retry_at = None;
            let result = tokio::select! {
                r = lease::attempt(&mut self) => r,
                _ = stop.wait_for(|s| *s) => return Exit::Stopped,
            };
            match result {
                Ok(Attempt::Done) => {}
                Ok(Attempt::Busy { holder, retry }) => {
                    tracing::info!(listener = %self.tls.name, "ACME: {holder} orders {} for the tier; waiting for its certificate", self.spec.domains.join(", "));
                    let state = if self.current.is_some() {
                        "valid"
                    } else {
                        "placeholder"
                    };
                    self.update(|s| {
                        s.state = state;
                        s.last_result = format!("waiting: {holder} holds the tier's order lock");
                    });
                    self.retry_at = Some(unix_now() + retry.as_secs() as i64);
                }
                Err(failure) => self.failed(failure),
            }
        }
    }

    /// Whether `c` serves every configured domain (a config change may
    /// have added one: then it is ordered again at once).
    pub(super) fn covers(&self, c: &LoadedCert) -> bool {
        self.spec.domains.iter().all(|d| c.dns_names.contains(d))
    }

    /// Waits until `due`; `Some` when stopped, the section or the tier
    /// changed, or another instance's certificate was installed first.
    async fn wait_until(&mut self, due: i64, stop: &mut watch::Receiver<bool>) -> Option<Exit> {
        let mut looked = tokio::time::Instant::now();
        loop {
            let left = due - unix_now();
            if left <= 0 {
                return None;
            }
            let nap = SPEC_POLL.min(Duration::from_secs(left as u64));
            let announced = tokio::select! {
                _ = tokio::time::sleep(nap) => false,
                r = self.changes.changed(), if self.tier.is_some() => r.is_ok(),
                _ = stop.wait_for(|s| *s) => return Some(Exit::Stopped),
            };
            if self.tls.spec().acme.as_deref() != Some(&*self.spec)
                || self.slot.is_set() != self.tier.is_some()
            {
                return Some(Exit::SpecChanged);
            }
            if self.tier.is_some() && (announced || looked.elapsed() >= TIER_POLL) {
                looked = tokio::time::Instant::now();
                if self.install_newer().await {
                    return Some(Exit::Installed);
                }
            }
        }
    }

    /// Notes that the tier's Redis answers; said once per outage.
    pub(super) fn tier_reachable(&mut self) {
        if std::mem::take(&mut self.tier_down) {
            tracing::info!(listener = %self.tls.name, "ACME: the tier's Redis answers again");
        }
    }

    /// Installs the stored certificate when it is newer than the serving
    /// one (another instance of the tier renewed it); true when it did.
    pub(super) async fn install_newer(&mut self) -> bool {
        let Ok(Some(pem)) = self.store.get(&cert_key(&self.spec)).await else {
            return false;
        };
        let Ok(c) = self.load(&pem) else { return false };
        let newer = self
            .current
            .as_ref()
            .is_none_or(|cur| c.not_after > cur.not_after);
        if !newer || !self.covers(&c) {
            return false;
        }
        tracing::info!(listener = %self.tls.name, "ACME certificate for {} from the tier, valid until {}",
            c.names_text(), format_unix(c.not_after));
        // Only another instance can have stored a newer one: Redis answered.
        self.tier_reachable();
        self.succeeded();
        self.serve(c);
        true
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

    pub(super) fn load(&self, pem: &[u8]) -> Result<LoadedCert, String> {
        let label = self.spec.storage.join(cert_key(&self.spec));
        let paths = CertPaths {
            cert: label.clone(),
            key: label,
        };
        cert_from_pem(pem, pem, &paths, &crate::tls::provider(), unix_now())
            .map_err(|e| e.to_string())
    }

    /// Stores a new certificate and serves it from the next handshake on.
    pub(super) async fn keep(&mut self, issued: Issued) -> Result<(), String> {
        let pem = format!("{}\n{}", issued.chain_pem.trim_end(), issued.key_pem);
        let cert = self.load(pem.as_bytes())?;
        let key = cert_key(&self.spec);
        if let Err(e) = self.store.put(&key, pem.as_bytes()).await {
            // Served anyway; the next start orders again.
            tracing::error!(listener = %self.tls.name, "cannot store the ACME certificate as {key}: {e}");
        }
        tracing::info!(listener = %self.tls.name, "ACME certificate issued for {}, valid until {}",
            cert.names_text(), format_unix(cert.not_after));
        self.succeeded();
        self.update(|s| s.renewals_total += 1);
        self.serve(cert);
        if let Some(tier) = &self.tier {
            tier.announce(self.spec.name()).await;
        }
        Ok(())
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
        self.update(|s| {
            s.last_result = "ok".into();
            s.consecutive_failures = 0;
        });
    }

    fn serve(&mut self, cert: LoadedCert) {
        self.update(|s| {
            s.not_after = cert.not_after;
            s.state = "valid";
        });
        self.tls.install_managed(vec![cert.clone()]);
        self.ari.serving(&cert, &self.tls.name);
        self.jitter = fastrand::f64();
        self.current = Some(cert);
    }

    fn failed(&mut self, failure: lease::Failure) {
        self.failures += 1;
        let failures = self.failures;
        let lifetime = self
            .current
            .as_ref()
            .map_or(FIRST_ISSUE_LIFETIME, |c| c.not_after - c.not_before);
        self.retry_at = Some(unix_now() + backoff(failures, lifetime).as_secs() as i64);
        let lease::Failure { why, quiet } = failure;
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
        if quiet {
            return;
        }
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
