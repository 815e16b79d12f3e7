//! The tier's counters, read by `/api/cluster` and the
//! `farmgate_cluster_*` metrics. Written by the cluster tasks and admin
//! actions, never by requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct ClusterStats {
    up: AtomicBool,
    /// Failed Redis operations by what they were for.
    failed: Mutex<BTreeMap<&'static str, u64>>,
    /// Live instances in the last view read (this one included).
    pub instances: AtomicU64,
    /// Of those, how many publish another config hash.
    pub drifted: AtomicU64,
    /// Operator changes taken from the tier and applied here.
    pub applied: AtomicU64,
    /// The last applied change's delay from the instance that made it (ms).
    pub sync_lag_ms: AtomicU64,
    /// Unix ms of the last complete read of the tier's operator state.
    pub last_sync_ms: AtomicU64,
}

impl ClusterStats {
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
    pub fn failed(&self, what: &'static str) {
        *self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what)
            .or_insert(0) += 1;
    }
    /// Failed operations by kind.
    pub fn failures(&self) -> BTreeMap<&'static str, u64> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    pub fn synced(&self, at_ms: u64) {
        self.last_sync_ms.store(at_ms, Ordering::Relaxed);
    }
}
