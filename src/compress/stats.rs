//! Per-farm compression counters by algorithm, as atomics the response
//! path bumps once per response and `admin/collect.rs` exposes
//! (`farmgate_compression_*_total{farm,algorithm}`). They live in a
//! registry by farm name, attached to the `StateRegistry`, so they
//! survive reloads.

use super::negotiate::Algorithm;
use crate::farm::Prune;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct CompressStats {
    /// Responses sent encoded (streamed or a stored variant).
    responses: [AtomicU64; 3],
    /// Bodies run through an encoder: the compression work done. A cache
    /// hit on a stored variant does none.
    encodes: [AtomicU64; 3],
    /// Body bytes before encoding, of responses sent encoded.
    bytes_in: [AtomicU64; 3],
    /// Body bytes after encoding.
    bytes_out: [AtomicU64; 3],
}

/// A snapshot of one algorithm's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub responses: u64,
    pub encodes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl CompressStats {
    /// One response sent encoded: `bytes_in` became `bytes_out`; `encoded`
    /// when an encoder ran for it.
    pub fn count(&self, a: Algorithm, encoded: bool, bytes_in: u64, bytes_out: u64) {
        let i = a.index();
        self.responses[i].fetch_add(1, Ordering::Relaxed);
        if encoded {
            self.encodes[i].fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_in[i].fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out[i].fetch_add(bytes_out, Ordering::Relaxed);
    }

    pub fn get(&self, a: Algorithm) -> Counts {
        let i = a.index();
        Counts {
            responses: self.responses[i].load(Ordering::Relaxed),
            encodes: self.encodes[i].load(Ordering::Relaxed),
            bytes_in: self.bytes_in[i].load(Ordering::Relaxed),
            bytes_out: self.bytes_out[i].load(Ordering::Relaxed),
        }
    }

    /// Has anything been counted (a farm whose compression came only from
    /// rules still gets series once it compressed)?
    pub fn is_used(&self) -> bool {
        self.responses.iter().any(|n| n.load(Ordering::Relaxed) > 0)
    }
}

/// Counters by farm name, outliving snapshots.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    map: Mutex<HashMap<String, Arc<CompressStats>>>,
}

impl StatsRegistry {
    /// The counters of `farm`; only called while building a snapshot.
    pub fn get_or_create(&self, farm: &str) -> Arc<CompressStats> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(farm.to_string()).or_default().clone()
    }
}

/// Attached to the `StateRegistry`: pruned with the server states.
impl Prune for StatsRegistry {
    /// Forgets counters no snapshot uses any more.
    fn prune(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| Arc::strong_count(s) > 1);
    }
}
