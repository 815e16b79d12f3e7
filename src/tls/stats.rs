//! TLS counters, per TLS listener, for metrics and the admin API. Plain
//! atomics bumped once per handshake; failures are counted here instead of
//! logged, because scanners and bots would flood a log with them.
//!
//! Metrics export (names for the metrics module):
//! `farmgate_tls_handshakes_total{listener}`,
//! `farmgate_tls_resumed_handshakes_total{listener}`,
//! `farmgate_tls_handshake_failures_total{listener}` (timeouts included),
//! `farmgate_tls_certificate_reloads_total{listener,result="ok|error"}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct TlsStats {
    pub listener: Arc<str>,
    handshakes: AtomicU64,
    resumed: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl TlsStats {
    pub fn new(listener: Arc<str>) -> Self {
        TlsStats {
            listener,
            handshakes: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        }
    }

    pub(crate) fn handshake_done(&self, resumed: bool) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        if resumed {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn handshake_failed(&self, timed_out: bool) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if timed_out {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn reloaded(&self, ok: bool) {
        let c = if ok {
            &self.reloads
        } else {
            &self.reload_failures
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Completed handshakes (full and resumed).
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
    /// Completed handshakes that resumed a session (ticket or session id).
    pub fn resumed_handshakes(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }
    /// Handshakes that failed or timed out.
    pub fn handshake_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    /// The part of `handshake_failures` that hit `handshake_timeout`.
    pub fn handshake_timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
    /// Certificate sets swapped in by the watcher.
    pub fn certificate_reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }
    /// Changed certificate files that were refused (the old set stayed).
    pub fn certificate_reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }
}
