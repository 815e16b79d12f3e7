//! `weighted_round_robin`: smooth weighted rotation, the nginx algorithm.
//! Weights 1:3 give B A B B: each server's turns are spread through the
//! cycle, never a burst of one server. Weight 0 takes no new traffic.
//!
//! The cycle is computed once per snapshot (nginx's "current weight" walk,
//! run ahead of time), so a pick is one `fetch_add` and one array read: no
//! lock, no per-server atomics to update, O(1) at any farm size (see
//! benches/selection.rs). Weights are divided by their greatest common
//! divisor; a cycle longer than [`MAX_CYCLE`] is scaled down proportionally.
//! When the scheduled server is out of rotation, its turn goes to a weighted
//! random candidate, so the others keep their proportions.

use super::random::WeightedSampler;
use super::{PickContext, Policy};
use crate::farm::Server;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest precomputed cycle (entries are u32: 256 KiB at most).
pub const MAX_CYCLE: u64 = 1 << 16;

#[derive(Debug)]
pub struct WeightedRoundRobin {
    cycle: Box<[u32]>,
    next: AtomicUsize,
    fallback: WeightedSampler,
}

impl WeightedRoundRobin {
    pub fn new(servers: &[Server]) -> Self {
        let weights: Vec<u64> = servers.iter().map(|s| u64::from(s.weight)).collect();
        WeightedRoundRobin {
            cycle: smooth_cycle(&reduce(&weights)).into_boxed_slice(),
            next: AtomicUsize::new(0),
            fallback: WeightedSampler::new(servers),
        }
    }
}

/// Divides by the gcd and, when the cycle would be too long, scales down
/// (every non-zero weight stays at least 1).
fn reduce(weights: &[u64]) -> Vec<u64> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    let mut w: Vec<u64> = weights.iter().map(|&w| w / g).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_CYCLE {
        for x in w.iter_mut().filter(|x| **x > 0) {
            *x = (*x as u128 * MAX_CYCLE as u128 / total as u128).max(1) as u64;
        }
    }
    w
}

/// nginx's smooth weighted round-robin, one full cycle: each step adds every
/// weight to its server's current value, picks the largest (first on ties)
/// and subtracts the total from it.
fn smooth_cycle(weights: &[u64]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut cycle = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best: Option<usize> = None;
        for (i, &w) in weights.iter().enumerate() {
            if w == 0 {
                continue;
            }
            current[i] += w as i64;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let Some(best) = best else { break };
        current[best] -= total;
        cycle.push(best as u32);
    }
    cycle
}

impl Policy for WeightedRoundRobin {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        if self.cycle.is_empty() {
            return None;
        }
        let t = self.next.fetch_add(1, Ordering::Relaxed) % self.cycle.len();
        let i = self.cycle[t] as usize;
        if ctx.is_candidate(i) {
            return Some(i);
        }
        self.fallback.sample(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::selection::testing::{ctx, servers};
    use crate::farm::state::AdminState;

    fn sequence(weights: &[u32], n: usize) -> String {
        let s = servers(weights);
        let p = WeightedRoundRobin::new(&s);
        (0..n)
            .map(|_| char::from(b'A' + p.pick(&ctx(&s)).expect("pick") as u8))
            .collect()
    }

    #[test]
    fn one_to_three_is_b_a_b_b() {
        assert_eq!(sequence(&[1, 3], 8), "BABBBABB");
    }

    #[test]
    fn nginx_reference_sequence() {
        // The example in nginx's commit introducing smooth weighting:
        // weights { a:5, b:1, c:1 } give a a b a c a a.
        assert_eq!(sequence(&[5, 1, 1], 7), "AABACAA");
        assert_eq!(sequence(&[2, 2, 1], 10), "ABCABABCAB");
    }

    #[test]
    fn zero_weight_takes_nothing_and_gcd_is_taken_out() {
        assert_eq!(sequence(&[0, 1, 1], 4), "BCBC");
        let s = servers(&[200, 600]);
        assert_eq!(WeightedRoundRobin::new(&s).cycle.len(), 4);
        assert_eq!(
            WeightedRoundRobin::new(&servers(&[0, 0])).pick(&ctx(&s)),
            None
        );
    }

    #[test]
    fn huge_weights_are_scaled_into_the_cycle_limit() {
        let w = reduce(&[u32::MAX as u64, 1, u32::MAX as u64 - 1]);
        assert!(w.iter().sum::<u64>() <= MAX_CYCLE + 3, "{w:?}");
        assert_eq!(w[1], 1);
    }

    #[test]
    fn a_server_out_of_rotation_keeps_the_others_proportional() {
        let s = servers(&[1, 3, 4]);
        s[2].state.set_admin(AdminState::Disabled);
        let p = WeightedRoundRobin::new(&s);
        let mut hits = [0u32; 3];
        for _ in 0..8000 {
            hits[p.pick(&ctx(&s)).expect("pick")] += 1;
        }
        assert_eq!(hits[2], 0);
        // 1:3 expected (2000 : 6000).
        assert!((1750..2250).contains(&hits[0]), "{hits:?}");
    }
}
