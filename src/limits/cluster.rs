//! A limit's key store under `scope: cluster`. Every instance of a tier
//! decides each request alone, on its own bounded [`LocalStore`], and a
//! background task (`cluster::limits`, a layer up, which owns the Redis
//! side) exchanges what each instance admitted every `sync_interval`:
//! each instance adds its admitted count per key to a tier-wide counter,
//! reads the total back, and charges the other instances' share to its own
//! bucket of that key. So a key's bucket everywhere drains at the tier's
//! pace and the tier admits about `rate` in total, one interval late at
//! worst.
//!
//! What the store keeps for that, beside the local table:
//! - per slot, the requests admitted since the last sync and the sync
//!   epoch in which the key was last listed (8 bytes);
//! - the active list: the slots of keys checked in the current interval,
//!   at most `sync_max_keys`, two fixed tables alternating by epoch, so a
//!   sync costs the keys active in its interval, not the table's size;
//! - the fallback: while Redis cannot be reached each instance allows
//!   `rate / n` (n: the live instances last seen), and says so.
//!
//! On the request path this adds to the local check one counter add and
//! one epoch compare (the first request of a key in an interval also swaps
//! the epoch and pushes the slot on the list): no lock, no allocation.

use super::gcra::{Decision, Rate};
use super::store::{KeyStore, LocalStore, Placed, SLOT_BYTES};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

/// Keys synced per interval unless `sync_max_keys` says otherwise.
pub const DEFAULT_SYNC_MAX_KEYS: usize = 10_000;
/// Bytes a key takes beside the local slot (admitted count, epoch).
pub const META_BYTES: usize = 8;

#[derive(Debug, Default)]
struct Meta {
    /// Requests admitted here since the key was last synced.
    pending: AtomicU32,
    /// The epoch in which the key was last put on the active list.
    epoch: AtomicU32,
}

/// One key to sync: where it is, and what this instance admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Active {
    pub slot: usize,
    /// The key's tag (its tier hash with the low bit set): its name in Redis.
    pub tag: u64,
    pub admitted: u64,
}

/// The tier total last read for a key, and in which epoch.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    total: u64,
    epoch: u32,
}

/// A cluster-scope limit's counters, for the metrics.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub syncs_ok: AtomicU64,
    pub syncs_failed: AtomicU64,
    /// Keys exchanged with the tier.
    pub keys_synced: AtomicU64,
    /// Keys active in an interval beyond `sync_max_keys`: enforced locally
    /// only, their counts carried to a later interval.
    pub keys_unsynced: AtomicU64,
    /// Requests other instances admitted, charged to buckets here.
    pub remote: AtomicU64,
}

#[derive(Debug)]
pub struct ClusterStore {
    local: LocalStore,
    meta: Box<[Meta]>,
    epoch: AtomicU32,
    lists: [Box<[AtomicU32]>; 2],
    lens: [AtomicUsize; 2],
    /// 0: synced; n: Redis unreachable, each instance allows `rate / n`.
    fallback: AtomicU32,
    pub stats: SyncStats,
    baselines: Mutex<HashMap<u64, Baseline>>,
}

impl ClusterStore {
    /// A store of `max_keys` keys (as [`LocalStore::new`]) syncing at most
    /// `sync_max_keys` of them per interval.
    pub fn new(max_keys: usize, sync_max_keys: usize) -> ClusterStore {
        let local = LocalStore::new(max_keys);
        let list = || {
            std::iter::repeat_with(AtomicU32::default)
                .take(sync_max_keys.max(1))
                .collect()
        };
        ClusterStore {
            meta: std::iter::repeat_with(Meta::default)
                .take(local.capacity())
                .collect(),
            local,
            // Slots start at epoch 0: the first interval is 1.
            epoch: AtomicU32::new(1),
            lists: [list(), list()],
            lens: [AtomicUsize::new(0), AtomicUsize::new(0)],
            fallback: AtomicU32::new(0),
            stats: SyncStats::default(),
            baselines: Mutex::new(HashMap::new()),
        }
    }

    /// The keys synced per interval at most.
    pub fn sync_max_keys(&self) -> usize {
        self.lists[0].len()
    }

    /// While Redis is unreachable: `Some(n)`, each instance allows `rate / n`.
    pub fn fallback(&self) -> Option<u32> {
        match self.fallback.load(Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// Enters (`Some(live instances)`) or leaves (`None`) the fallback.
    pub fn set_fallback(&self, live: Option<u32>) {
        self.fallback.store(live.map_or(0, |n| n.max(1)), Relaxed);
    }

    /// The check at `now_ns` (tests drive time here).
    pub fn check_at(&self, rate: &Rate, key: u64, now_ns: u64) -> Decision {
        let n = self.fallback.load(Relaxed);
        let shared;
        let rate = if n > 1 {
            shared = rate.shared_by(n);
            &shared
        } else {
            rate
        };
        let (d, placed) = self.local.check_placed(rate, key, now_ns);
        if let Some(p) = placed {
            self.note(p, d.is_allowed());
        }
        d
    }

    #[inline]
    fn note(&self, p: Placed, allowed: bool) {
        let m = &self.meta[p.slot];
        if p.claimed {
            // The slot's last key is gone; its unsynced count with it.
            m.pending.store(0, Relaxed);
        }
        if allowed {
            m.pending.fetch_add(1, Relaxed);
        }
        let e = self.epoch.load(Relaxed);
        if m.epoch.load(Relaxed) != e && m.epoch.swap(e, Relaxed) != e {
            let list = (e & 1) as usize;
            let at = self.lens[list].fetch_add(1, Relaxed);
            match self.lists[list].get(at) {
                Some(cell) => cell.store(p.slot as u32 + 1, Relaxed),
                None => {
                    self.stats.keys_unsynced.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Ends the current interval: the keys active in it, with what this
    /// instance admitted of each since its last sync, go into `out`
    /// (cleared first); their counts start again from 0. Returns the
    /// interval's epoch.
    pub fn drain(&self, out: &mut Vec<Active>) -> u32 {
        out.clear();
        // Requests from now on list their keys on the other list.
        let e = self.epoch.fetch_add(1, Relaxed);
        let list = &self.lists[(e & 1) as usize];
        let n = self.lens[(e & 1) as usize].swap(0, Relaxed).min(list.len());
        for cell in &list[..n] {
            // 0: a request took the place but has not written it yet; its
            // key is listed again on its next request (the count waits).
            let Some(slot) = cell.swap(0, Relaxed).checked_sub(1) else {
                continue;
            };
            let slot = slot as usize;
            let tag = self.local.tag(slot);
            if tag == 0 {
                continue;
            }
            let admitted = u64::from(self.meta[slot].pending.swap(0, Relaxed));
            out.push(Active {
                slot,
                tag,
                admitted,
            });
        }
        e
    }

    /// Takes in the tier's totals for the keys of [`ClusterStore::drain`]
    /// (`totals[i]`: key `active[i]`'s tier count after this instance's
    /// add): charges each key's bucket with what the other instances
    /// admitted since this one last read it. Returns that number.
    pub fn apply(&self, rate: &Rate, epoch: u32, active: &[Active], totals: &[u64]) -> u64 {
        let mut baselines = self.baselines();
        let now = self.local.now_ns();
        let mut remote = 0;
        for (a, &total) in active.iter().zip(totals) {
            let before = baselines.insert(a.tag, Baseline { total, epoch });
            let others = others(before.map(|b| b.total), total, a.admitted);
            if others > 0
                && self.local.charge(
                    a.slot,
                    a.tag,
                    others.saturating_mul(rate.interval_ns()),
                    now,
                )
            {
                remote += others;
            }
        }
        // Forget keys not seen for a while (their next sighting starts
        // afresh); bounded whatever the traffic.
        let cap = self.sync_max_keys().saturating_mul(4);
        let keep = if baselines.len() > cap { 0 } else { 40 };
        baselines.retain(|_, b| epoch.wrapping_sub(b.epoch) <= keep);
        self.stats.remote.fetch_add(remote, Relaxed);
        self.stats
            .keys_synced
            .fetch_add(active.len() as u64, Relaxed);
        remote
    }

    /// Forgets what was read from the tier (Redis is gone: on its return
    /// every key starts afresh rather than from counts that went stale).
    pub fn forget(&self) {
        self.baselines().clear();
    }

    fn baselines(&self) -> MutexGuard<'_, HashMap<u64, Baseline>> {
        self.baselines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the other instances admitted of a key since this one last read
/// its tier count (`baseline`), `total` being the count after this
/// instance added `mine`. Seen for the first time: nothing (the count's
/// past is unknown, and charging all of it could empty a bucket the tier
/// never emptied). A count below the last one expired and started again:
/// all of it but ours is new.
pub fn others(baseline: Option<u64>, total: u64, mine: u64) -> u64 {
    match baseline {
        None => 0,
        Some(b) if total >= b.saturating_add(mine) => total - b - mine,
        Some(_) => total.saturating_sub(mine),
    }
}

impl KeyStore for ClusterStore {
    #[inline]
    fn check(&self, rate: &Rate, key: u64) -> Decision {
        self.check_at(rate, key, self.local.now_ns())
    }
    fn keys(&self) -> usize {
        self.local.keys()
    }
    fn capacity(&self) -> usize {
        self.local.capacity()
    }
    fn evicted(&self) -> u64 {
        self.local.evicted()
    }
    fn memory(&self) -> usize {
        self.capacity() * (SLOT_BYTES + META_BYTES)
            + self.sync_max_keys() * 2 * std::mem::size_of::<AtomicU32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: u64 = 1_000_000_000;

    fn rate() -> Rate {
        Rate::new(10, Duration::from_secs(1), 2).expect("rate")
    }

    #[test]
    fn others_counts_since_the_last_read() {
        assert_eq!(others(None, 50, 5), 0, "first sighting");
        assert_eq!(others(Some(40), 50, 5), 5);
        assert_eq!(others(Some(40), 45, 5), 0);
        assert_eq!(others(Some(40), 7, 3), 4, "the count restarted");
    }

    #[test]
    fn active_keys_are_listed_once_an_interval_with_their_counts() {
        let s = ClusterStore::new(1000, 100);
        let r = rate();
        for _ in 0..5 {
            s.check_at(&r, 0xAB00, SEC);
        }
        s.check_at(&r, 0xCD00, SEC);
        let mut out = Vec::new();
        s.drain(&mut out);
        out.sort_by_key(|a| a.tag);
        let counts: Vec<(u64, u64)> = out.iter().map(|a| (a.tag, a.admitted)).collect();
        // Burst 2: two of the five passed; the limited ones list the key too.
        assert_eq!(counts, [(0xAB01, 2), (0xCD01, 1)]);
        s.drain(&mut out);
        assert!(out.is_empty(), "nothing happened in the next interval");
        s.check_at(&r, 0xAB00, 3 * SEC);
        s.drain(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].admitted, 1);
    }

    #[test]
    fn keys_beyond_the_cap_wait_for_a_later_interval() {
        let s = ClusterStore::new(1000, 2);
        let r = rate();
        for k in 1..=3u64 {
            s.check_at(&r, k << 40, SEC);
        }
        let mut out = Vec::new();
        s.drain(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(s.stats.keys_unsynced.load(Relaxed), 1);
        // The third key's count waited; its next request lists it.
        s.check_at(&r, 3 << 40, SEC);
        s.drain(&mut out);
        let third: Vec<u64> = out.iter().map(|a| a.admitted).collect();
        assert_eq!(third, [2]);
    }

    #[test]
    fn other_instances_admissions_drain_the_local_bucket() {
        let s = ClusterStore::new(1000, 100);
        let r = Rate::new(10, Duration::from_secs(3600), 10).expect("rate");
        let key = 0x77 << 40;
        let mut out = Vec::new();
        // First read: the baseline.
        s.check_at(&r, key, SEC);
        let e = s.drain(&mut out);
        assert_eq!(s.apply(&r, e, &out, &[1]), 0);
        // Then the tier's count grew by 8 beyond our own 1: eight others.
        s.check_at(&r, key, SEC);
        let e = s.drain(&mut out);
        assert_eq!(s.apply(&r, e, &out, &[10]), 8);
        // Ten used of a burst of ten: the next request is limited.
        assert!(!s.check(&r, key).is_allowed());
    }

    #[test]
    fn the_fallback_shares_the_rate() {
        let s = ClusterStore::new(1000, 100);
        let r = Rate::new(30, Duration::from_secs(1), 30).expect("rate");
        s.set_fallback(Some(3));
        assert_eq!(s.fallback(), Some(3));
        let passed = (0..40)
            .filter(|_| s.check_at(&r, 5 << 40, SEC).is_allowed())
            .count();
        assert_eq!(passed, 10, "a third of the burst");
        s.set_fallback(None);
        assert_eq!(s.fallback(), None);
    }
}
