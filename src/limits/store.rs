//! The keys a limit tracks: 64 shards, each a small map from the key's
//! 64-bit hash to its TAT behind its own lock (held for one lookup and one
//! store), so concurrent requests of different clients rarely meet. The
//! store is bounded: a full shard first forgets keys whose bucket is full
//! again (they need no state), then the key closest to a full bucket; a
//! flood of distinct keys costs at most the configured number of entries.

use super::gcra::{Decision, Rate};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 64;

/// One limit's keys and their state.
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    shards: Box<[Mutex<HashMap<u64, u64>>]>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
    /// Keys forgotten to make room for others (not full buckets).
    evicted: AtomicU64,
}

impl Limiter {
    /// A limiter at `rate` tracking at most `max_keys` keys (rounded up to
    /// a multiple of the shard count).
    pub fn new(rate: Rate, max_keys: usize) -> Limiter {
        let per_shard = max_keys.div_ceil(SHARDS).max(1);
        Limiter {
            rate,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
            hasher: Default::default(),
            epoch: Instant::now(),
            evicted: AtomicU64::new(0),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The decision for one request of `key` now.
    #[inline]
    pub fn check<K: Hash + ?Sized>(&self, key: &K) -> Decision {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(self.hasher.hash_one(key), now)
    }

    /// The decision for a request of the key hashed to `h` at `now_ns`
    /// (nanoseconds since the limiter's start; tests drive time here).
    pub fn check_at(&self, h: u64, now_ns: u64) -> Decision {
        // The high bits choose the shard; the map hashes the whole value.
        let shard = &self.shards[(h >> 58) as usize % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let tat = map.get(&h).copied().unwrap_or(0);
        let decision = self.rate.check(tat, now_ns);
        if let Decision::Allowed { new_tat, .. } = decision {
            if map.len() >= self.per_shard && !map.contains_key(&h) {
                self.make_room(&mut map, now_ns);
            }
            map.insert(h, new_tat);
        }
        decision
    }

    fn make_room(&self, map: &mut HashMap<u64, u64>, now_ns: u64) {
        let rate = self.rate;
        map.retain(|_, tat| !rate.is_full(*tat, now_ns));
        if map.len() >= self.per_shard {
            // Everyone is active: forget the one nearest a full bucket.
            if let Some((&k, _)) = map.iter().min_by_key(|(_, &tat)| tat) {
                map.remove(&k);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Keys tracked now.
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// The most keys this limiter holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn keys_are_independent() {
        let l = Limiter::new(Rate::new(1, Duration::from_secs(1), 2).expect("rate"), 1000);
        let allowed = |h| (0..5).filter(|_| l.check_at(h, SEC).is_allowed()).count();
        assert_eq!(allowed(1), 2);
        assert_eq!(allowed(2), 2, "another key has its own bucket");
        assert_eq!(allowed(1), 0);
        assert!(l.check(&"10.0.0.1").is_allowed());
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_cap() {
        let l = Limiter::new(
            Rate::new(10, Duration::from_secs(1), 10).expect("rate"),
            6400,
        );
        for h in 0..200_000u64 {
            // Spread over the shards like real hashes.
            let h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert!(l.check_at(h, SEC + h % 1000).is_allowed());
        }
        assert!(l.keys() <= l.capacity(), "{} > {}", l.keys(), l.capacity());
        assert_eq!(l.capacity(), 6400);
        // Buckets fill again within a second: nothing active needed evicting
        // once time moves on.
        let before = l.evicted();
        for h in 0..3_000u64 {
            let h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 1;
            l.check_at(h, 10 * SEC);
        }
        assert_eq!(l.evicted(), before, "full buckets make room first");
    }
}
