//! The running TLS listeners by name, for metrics and reloads.

use super::acceptor::TlsListener;
use super::stats::TlsStats;
use std::sync::{Arc, Mutex};

/// Every running TLS listener, held by the gateway: metrics read their
/// counters, a config reload finds them by name to apply new settings. The
/// lock is taken when a listener starts and when these are read, never per
/// handshake.
#[derive(Debug, Default)]
pub struct TlsRegistry {
    listeners: Mutex<Vec<Arc<TlsListener>>>,
    /// Session ticket keys shared by a tier (filled by `cluster`), used by
    /// every listener's ticketer.
    pub tier_tickets: Arc<super::tickets::TierKeys>,
    /// The tier's shared ACME store and order lock (filled by `cluster`),
    /// used by every listener's ACME manager.
    pub acme_tier: Arc<super::acme::TierSlot>,
}

impl TlsRegistry {
    pub fn register(&self, listener: Arc<TlsListener>) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }

    /// Forgets a listener that stopped (a reload removed it).
    pub fn unregister(&self, name: &str) {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|l| &*l.name != name);
    }

    /// Every TLS listener, in start order.
    pub fn listeners(&self) -> Vec<Arc<TlsListener>> {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The TLS listener named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<TlsListener>> {
        self.listeners().into_iter().find(|l| &*l.name == name)
    }

    /// Every TLS listener's counters, in start order.
    pub fn stats(&self) -> Vec<Arc<TlsStats>> {
        self.listeners().iter().map(|l| l.stats.clone()).collect()
    }

    /// Handshake failures over every TLS listener.
    pub fn handshake_failures_total(&self) -> u64 {
        self.stats().iter().map(|s| s.handshake_failures()).sum()
    }
}
