//! What the admin API, the status page and metrics show of each ACME
//! certificate: its domains, expiry, the last renewal attempt and its
//! result, and failures counted. One entry per TLS listener with `acme`,
//! written by its manager (a few times a day), read by operators.

use std::sync::{Arc, Mutex, OnceLock};

/// One listener's ACME certificate as last seen by its manager.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AcmeStatus {
    pub listener: String,
    pub domains: Vec<String>,
    pub challenge: &'static str,
    /// `placeholder` (self-signed, until the first issue), `valid`,
    /// `renewing`, or `failing` (renewal failed; the current one serves).
    pub state: &'static str,
    /// Unix seconds; 0 while the placeholder serves.
    pub not_after: i64,
    pub next_attempt: i64,
    /// Unix seconds the serving certificate is renewed at (0 while the
    /// placeholder serves); `next_attempt` is earlier while retrying.
    pub next_renewal: i64,
    /// What set `next_renewal`: `ari` (the CA's suggested window, RFC
    /// 9773) or `two-thirds` (of the lifetime); empty before a certificate.
    pub renewal_by: &'static str,
    /// The CA's renewal information: `answered`, `absent` (its directory
    /// offers none), `failing` (the last ask failed), or empty (not asked).
    pub ari: &'static str,
    /// The CA's suggested window `[start, end]`, Unix seconds.
    pub ari_window: Option<[i64; 2]>,
    /// The page the CA gave to explain its window, if any.
    pub ari_explanation_url: Option<String>,
    /// Unix seconds of the next ask for the window (0: none planned).
    pub ari_next_poll: i64,
    pub last_attempt: i64,
    /// `ok`, the last error, `waiting: …` while another instance of the
    /// tier orders, or empty before any attempt.
    pub last_result: String,
    pub renewals_total: u64,
    pub failures_total: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Orders this instance placed (in a tier, only the lock holder orders;
    /// the others install what it stored).
    pub orders_total: u64,
    /// Storage and ordering shared with the tier (`cluster:`).
    pub tier: bool,
}

impl AcmeStatus {
    /// Days until the served certificate expires (fractional); `None`
    /// while the placeholder serves.
    pub fn days_to_expiry(&self, now: i64) -> Option<f64> {
        (self.not_after > 0).then(|| (self.not_after - now) as f64 / 86_400.0)
    }
}

/// The process's ACME statuses by listener name.
#[derive(Debug, Default)]
pub struct AcmeStatuses {
    entries: Mutex<Vec<Arc<Mutex<AcmeStatus>>>>,
}

pub fn statuses() -> &'static AcmeStatuses {
    static S: OnceLock<AcmeStatuses> = OnceLock::new();
    S.get_or_init(AcmeStatuses::default)
}

impl AcmeStatuses {
    /// The entry of `listener`, made on first use.
    pub fn entry(&self, listener: &str) -> Arc<Mutex<AcmeStatus>> {
        let mut all = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = all
            .iter()
            .find(|e| e.lock().unwrap_or_else(|p| p.into_inner()).listener == listener)
        {
            return e.clone();
        }
        let e = Arc::new(Mutex::new(AcmeStatus {
            listener: listener.to_string(),
            ..AcmeStatus::default()
        }));
        all.push(e.clone());
        e
    }

    /// Forgets a listener that no longer manages a certificate.
    pub fn remove(&self, listener: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|e| e.lock().unwrap_or_else(|p| p.into_inner()).listener != listener);
    }

    /// A copy of every entry, by listener name.
    pub fn snapshot(&self) -> Vec<AcmeStatus> {
        let mut v: Vec<AcmeStatus> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|e| e.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect();
        v.sort_by(|a, b| a.listener.cmp(&b.listener));
        v
    }
}
