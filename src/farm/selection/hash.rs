//! `hash`: the same key (client IP, a header, a cookie, a query parameter or
//! the path; `farms[].hash_key`) goes to the same server, for caches and
//! sharded state. Consistent: a ring of virtual nodes (ketama style,
//! [`POINTS_PER_WEIGHT`] per unit of weight), placed by hashing the server's
//! *name*, so adding one server to ten moves only about a tenth of the keys,
//! and a server leaving rotation hands its keys to the next points on the
//! ring (spread over all the others) while every other key stays put.
//!
//! A pick is a bucket lookup, a search in a few points, and a short walk past points of servers out
//! of rotation. Requests without the key are spread by rotation.

use super::round_robin::RoundRobin;
use super::{PickContext, Policy};
use crate::farm::hash_key::StableHasher;
use crate::farm::Server;

/// Virtual nodes per unit of weight: enough that ten servers get within a
/// few percent of their share.
pub const POINTS_PER_WEIGHT: u64 = 160;

/// Most points on one ring; heavier configs are scaled down (16 MiB max).
const MAX_POINTS: u64 = 1 << 20;

#[derive(Debug)]
pub struct ConsistentHash {
    /// (point, server index), sorted by point.
    ring: Box<[(u64, u32)]>,
    /// `index[b]`: the first ring position whose point's top `bits` bits
    /// are at least `b`. A lookup touches one small slice instead of
    /// binary-searching the whole (multi-megabyte) ring.
    index: Box<[u32]>,
    bits: u32,
    /// For requests without the key.
    keyless: RoundRobin,
}

impl ConsistentHash {
    pub fn new(servers: &[Server]) -> Self {
        let total: u64 = servers.iter().map(|s| u64::from(s.weight)).sum();
        let per_weight = |w: u32| -> u64 {
            let want = u64::from(w) * POINTS_PER_WEIGHT;
            if total * POINTS_PER_WEIGHT <= MAX_POINTS || w == 0 {
                want
            } else {
                (u128::from(want) * u128::from(MAX_POINTS) / u128::from(total * POINTS_PER_WEIGHT))
                    .max(1) as u64
            }
        };
        let mut ring = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            for v in 0..per_weight(s.weight) {
                let mut h = StableHasher::default();
                h.write(s.name.as_bytes());
                h.write(&[0]);
                h.write(&v.to_le_bytes());
                ring.push((h.finish(), i as u32));
            }
        }
        ring.sort_unstable();
        // About one point per bucket, at most 2^16 buckets (256 KiB).
        let bits = (usize::BITS - ring.len().leading_zeros()).clamp(1, 16);
        let mut index = Vec::with_capacity((1 << bits) + 1);
        let mut pos = 0;
        for b in 0..=(1u64 << bits) {
            while pos < ring.len() && (ring[pos].0 >> (64 - bits)) < b {
                pos += 1;
            }
            index.push(pos as u32);
        }
        ConsistentHash {
            ring: ring.into_boxed_slice(),
            index: index.into_boxed_slice(),
            bits,
            keyless: RoundRobin::default(),
        }
    }
}

impl Policy for ConsistentHash {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let Some(hash) = ctx.hash else {
            return self.keyless.pick(ctx);
        };
        let len = self.ring.len();
        let b = (hash >> (64 - self.bits)) as usize;
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        let start = lo + self.ring[lo..hi].partition_point(|&(p, _)| p < hash);
        (0..len)
            .map(|k| self.ring[(start + k) % len].1 as usize)
            .find(|&i| ctx.is_candidate(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::hash_key::stable_hash;
    use crate::farm::selection::testing::servers;
    use crate::farm::state::AdminState;

    fn pick(p: &ConsistentHash, s: &[Server], key: u64) -> usize {
        p.pick(&PickContext {
            servers: s,
            exclude: &[],
            hash: Some(key),
        })
        .expect("pick")
    }

    fn keys() -> impl Iterator<Item = u64> {
        (0..20_000u32).map(|k| stable_hash(format!("user-{k}").as_bytes()))
    }

    #[test]
    fn same_key_same_server_and_balanced() {
        let s = servers(&[1; 10]);
        let p = ConsistentHash::new(&s);
        let mut hits = [0u32; 10];
        for k in keys() {
            let a = pick(&p, &s, k);
            assert_eq!(a, pick(&p, &s, k));
            hits[a] += 1;
        }
        // 2000 each on average; virtual nodes keep all within +-25%.
        for h in hits {
            assert!((1500..2500).contains(&h), "{hits:?}");
        }
    }

    #[test]
    fn adding_one_server_to_ten_moves_about_a_tenth_of_keys() {
        let ten = servers(&[1; 10]);
        let eleven = servers(&[1; 11]); // same names s0..s9, plus s10
        let (p10, p11) = (ConsistentHash::new(&ten), ConsistentHash::new(&eleven));
        let mut moved = 0;
        let total = keys().count();
        for k in keys() {
            let (a, b) = (pick(&p10, &ten, k), pick(&p11, &eleven, k));
            if a != b {
                assert_eq!(b, 10, "a key moved between two old servers");
                moved += 1;
            }
        }
        let share = moved as f64 / total as f64;
        // Ideal 1/11 = 9.1%.
        assert!((0.06..0.12).contains(&share), "moved {share:.3}");
    }

    #[test]
    fn a_server_out_of_rotation_only_moves_its_own_keys() {
        let s = servers(&[1; 5]);
        let p = ConsistentHash::new(&s);
        let before: Vec<usize> = keys().map(|k| pick(&p, &s, k)).collect();
        s[2].state.set_admin(AdminState::Disabled);
        let mut went_to = [0u32; 5];
        for (k, &b) in keys().zip(&before) {
            let a = pick(&p, &s, k);
            if b == 2 {
                went_to[a] += 1;
            } else {
                assert_eq!(a, b);
            }
        }
        assert_eq!(went_to[2], 0);
        assert!(
            went_to.iter().filter(|&&n| n > 0).count() == 4,
            "{went_to:?}"
        );
    }

    #[test]
    fn weight_shapes_the_share_and_zero_takes_none() {
        let s = servers(&[1, 3, 0]);
        let p = ConsistentHash::new(&s);
        let mut hits = [0u32; 3];
        for k in keys() {
            hits[pick(&p, &s, k)] += 1;
        }
        assert_eq!(hits[2], 0);
        let share = f64::from(hits[1]) / 20_000.0;
        assert!((0.68..0.82).contains(&share), "{hits:?}");
    }

    #[test]
    fn bucket_index_finds_what_a_full_search_finds() {
        let s = servers(&[1, 2, 3, 1, 1]);
        let p = ConsistentHash::new(&s);
        for k in keys().chain([0, 1, u64::MAX, u64::MAX - 1]) {
            let full = p.ring.partition_point(|&(pt, _)| pt < k) % p.ring.len();
            assert_eq!(pick(&p, &s, k), p.ring[full].1 as usize);
        }
    }

    #[test]
    fn requests_without_the_key_rotate() {
        let s = servers(&[1, 1, 1]);
        let p = ConsistentHash::new(&s);
        let c = PickContext {
            servers: &s,
            exclude: &[],
            hash: None,
        };
        let seq: Vec<_> = (0..3).map(|_| p.pick(&c).expect("pick")).collect();
        assert_eq!(seq, vec![0, 1, 2]);
    }
}
