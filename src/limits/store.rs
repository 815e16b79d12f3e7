//! Where a limit keeps its keys' state, behind [`KeyStore`] so that another
//! store (a cluster-synchronised one that exchanges deltas with its peers)
//! can stand in without the request stage noticing.
//!
//! [`LocalStore`] is a fixed, set-associative table allocated once: a key's
//! 64-bit hash picks a bucket of [`WAYS`] slots, and each slot is two
//! atomics (the key's hash and its TAT), 16 bytes. A check reads one bucket
//! (two cache lines), then either moves the TAT with a compare-and-swap or
//! claims a slot for a new key: no lock, no allocation, and the memory is
//! exactly `capacity x 16` bytes whatever the traffic. A new key takes an
//! empty slot, else one whose bucket is full again (its state is no longer
//! needed), else the slot nearest a full bucket (counted as an eviction).
//! A flood of distinct keys therefore costs nothing beyond the table and
//! only ever replaces the quietest keys of a bucket.
//!
//! Races between two requests of the same key are settled by the CAS; a
//! key whose slot is taken by another key at the same instant loses its
//! state (it starts again with a full bucket): the store is exact for one
//! key at a time and approximate only at that edge.

use super::gcra::{Decision, Rate};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Slots per bucket: 8 x 16 bytes, two cache lines.
pub const WAYS: usize = 8;
/// Bytes a slot takes (key hash and TAT).
pub const SLOT_BYTES: usize = 16;

/// A store of keys' GCRA state. The request stage holds one per limit as
/// `Arc<dyn KeyStore>`; `check` must not block, lock or allocate.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// The decision for one request of the key hashed to `key` now.
    fn check(&self, rate: &Rate, key: u64) -> Decision;
    /// Keys whose bucket is not full (their state matters).
    fn keys(&self) -> usize;
    /// The most keys the store holds.
    fn capacity(&self) -> usize;
    /// Keys forgotten to make room while their bucket was not full.
    fn evicted(&self) -> u64;
    /// Bytes the store holds for keys.
    fn memory(&self) -> usize {
        self.capacity() * SLOT_BYTES
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// The key's hash with the low bit set; 0: empty.
    key: AtomicU64,
    /// The key's theoretical arrival time, ns since the store's epoch.
    tat: AtomicU64,
}

/// The local, bounded, lock-free store.
#[derive(Debug)]
pub struct LocalStore {
    slots: Box<[Slot]>,
    /// Buckets - 1 (a power of two).
    mask: u64,
    epoch: Instant,
    evicted: AtomicU64,
}

impl LocalStore {
    /// A store of at least `max_keys` slots (rounded up to a power of two
    /// of buckets, [`LocalStore::slots_for`]).
    pub fn new(max_keys: usize) -> LocalStore {
        let slots = Self::slots_for(max_keys);
        LocalStore {
            slots: std::iter::repeat_with(Slot::default).take(slots).collect(),
            mask: (slots / WAYS) as u64 - 1,
            epoch: Instant::now(),
            evicted: AtomicU64::new(0),
        }
    }

    /// The slots a store asked for `max_keys` has.
    pub fn slots_for(max_keys: usize) -> usize {
        max_keys.div_ceil(WAYS).max(1).next_power_of_two() * WAYS
    }

    /// Nanoseconds since the store started (the clock of its TATs).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The decision for the key hashed to `h` at `now_ns` (tests drive time
    /// here).
    #[inline]
    pub fn check_at(&self, rate: &Rate, h: u64, now_ns: u64) -> Decision {
        self.check_placed(rate, h, now_ns).0
    }

    /// [`LocalStore::check_at`], saying where the key's state is (None:
    /// let through untracked).
    pub fn check_placed(&self, rate: &Rate, h: u64, now_ns: u64) -> (Decision, Option<Placed>) {
        let tag = h | 1;
        let start = ((h >> 32) & self.mask) as usize * WAYS;
        let bucket = &self.slots[start..start + WAYS];
        // A few rounds at most: each retry means another request of the
        // same bucket moved on, which ends.
        for _ in 0..4 {
            if let Some(i) = bucket.iter().position(|s| s.key.load(Relaxed) == tag) {
                let slot = &bucket[i];
                let placed = Some(Placed {
                    slot: start + i,
                    claimed: false,
                });
                let tat = slot.tat.load(Relaxed);
                let d = rate.check(tat, now_ns);
                match d {
                    Decision::Allowed { new_tat, .. } => {
                        if slot
                            .tat
                            .compare_exchange(tat, new_tat, Relaxed, Relaxed)
                            .is_ok()
                        {
                            return (d, placed);
                        }
                        continue;
                    }
                    Decision::Limited { .. } => return (d, placed),
                }
            }
            // A new key: its bucket is full, so the request is allowed.
            let d = rate.check(0, now_ns);
            let Decision::Allowed { new_tat, .. } = d else {
                return (d, None);
            };
            let (i, old) = victim(bucket, now_ns);
            let victim = &bucket[i];
            if victim
                .key
                .compare_exchange(old.0, tag, Relaxed, Relaxed)
                .is_ok()
            {
                victim.tat.store(new_tat, Relaxed);
                if old.0 != 0 && old.1 > now_ns {
                    self.evicted.fetch_add(1, Relaxed);
                }
                let placed = Placed {
                    slot: start + i,
                    claimed: true,
                };
                return (d, Some(placed));
            }
        }
        // Contended beyond reason: let the request through untracked.
        (rate.check(0, now_ns), None)
    }

    /// The key held by `slot` (its hash with the low bit set; 0: empty).
    pub fn tag(&self, slot: usize) -> u64 {
        self.slots.get(slot).map_or(0, |s| s.key.load(Relaxed))
    }

    /// Charges key `tag` in `slot` with `add_ns` of its rate (requests
    /// admitted elsewhere): its TAT moves on by that much, from now at the
    /// earliest. False when the slot holds another key by now.
    pub fn charge(&self, slot: usize, tag: u64, add_ns: u64, now_ns: u64) -> bool {
        let Some(s) = self.slots.get(slot) else {
            return false;
        };
        loop {
            if s.key.load(Relaxed) != tag {
                return false;
            }
            let tat = s.tat.load(Relaxed);
            let new_tat = tat.max(now_ns).saturating_add(add_ns);
            if s.tat
                .compare_exchange(tat, new_tat, Relaxed, Relaxed)
                .is_ok()
            {
                return true;
            }
        }
    }
}

/// Where a check found or put a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The slot's index in the table.
    pub slot: usize,
    /// The key took the slot just now (it was new, or had been forgotten).
    pub claimed: bool,
}

/// The slot a new key takes: an empty one, else one whose bucket is full
/// again, else the one nearest a full bucket; with its (key, TAT) as seen.
fn victim(bucket: &[Slot], now_ns: u64) -> (usize, (u64, u64)) {
    let mut best = (0, (u64::MAX, u64::MAX));
    for (i, s) in bucket.iter().enumerate() {
        let key = s.key.load(Relaxed);
        let tat = s.tat.load(Relaxed);
        if key == 0 || tat <= now_ns {
            return (i, (key, tat));
        }
        if tat < best.1 .1 {
            best = (i, (key, tat));
        }
    }
    best
}

impl KeyStore for LocalStore {
    #[inline]
    fn check(&self, rate: &Rate, key: u64) -> Decision {
        self.check_at(rate, key, self.now_ns())
    }

    fn keys(&self) -> usize {
        let now = self.now_ns();
        self.slots
            .iter()
            .filter(|s| s.key.load(Relaxed) != 0 && s.tat.load(Relaxed) > now)
            .count()
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: u64 = 1_000_000_000;

    fn spread(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn keys_are_independent() {
        let r = Rate::new(1, Duration::from_secs(1), 2).expect("rate");
        let s = LocalStore::new(1000);
        let allowed = |h| {
            (0..5)
                .filter(|_| s.check_at(&r, h, SEC).is_allowed())
                .count()
        };
        assert_eq!(allowed(spread(1)), 2);
        assert_eq!(allowed(spread(2)), 2, "another key has its own bucket");
        assert_eq!(allowed(spread(1)), 0);
        assert!(s.check(&r, spread(3)).is_allowed());
    }

    #[test]
    fn capacity_rounds_up_to_whole_buckets() {
        assert_eq!(LocalStore::slots_for(1), 8);
        assert_eq!(LocalStore::slots_for(1_000_000), 1 << 20);
        assert_eq!(LocalStore::new(100_000).memory(), 131_072 * 16);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_cap() {
        let r = Rate::new(10, Duration::from_secs(1), 10).expect("rate");
        let s = LocalStore::new(6400);
        let cap = s.capacity();
        assert_eq!(cap, 8192);
        // An active key that keeps sending survives the flood.
        let steady = spread(u64::MAX);
        for i in 0..200_000u64 {
            assert!(s.check_at(&r, spread(i), SEC + i).is_allowed());
            if i % 1000 == 0 {
                s.check_at(&r, steady, SEC + i);
            }
        }
        assert!(s.keys() <= cap);
        // Once a second has passed every flood key's bucket is full again:
        // new keys take those slots without evicting anyone.
        let before = s.evicted();
        for i in 0..3_000u64 {
            s.check_at(&r, spread(i) ^ 2, 10 * SEC);
        }
        assert_eq!(s.evicted(), before, "full buckets make room first");
    }

    #[test]
    fn concurrent_checks_of_one_key_admit_the_burst_exactly() {
        let r = Rate::new(1, Duration::from_secs(3600), 1000).expect("rate");
        let s = std::sync::Arc::new(LocalStore::new(64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| s.check_at(&r, 42, SEC).is_allowed())
                        .count()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(total, 1000);
    }
}
