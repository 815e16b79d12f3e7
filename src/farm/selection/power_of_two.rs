//! `power_of_two`: draw two servers at random (by weight) and send the
//! request to the one with fewer requests in flight per unit of weight. Close
//! to least_requests in effect, but looks at two servers instead of all of
//! them, and avoids the herd that follows a single global minimum when many
//! proxies share one farm.

use super::random::WeightedSampler;
use super::{PickContext, Policy};
use crate::farm::Server;

#[derive(Debug)]
pub struct PowerOfTwo {
    sampler: WeightedSampler,
}

impl PowerOfTwo {
    pub fn new(servers: &[Server]) -> Self {
        PowerOfTwo {
            sampler: WeightedSampler::new(servers),
        }
    }
}

impl Policy for PowerOfTwo {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let a = self.sampler.sample(ctx)?;
        // A second, different server: draws that exclude `a`, then the next
        // candidate after `a`; with one candidate left, it is `a` itself.
        let n = ctx.servers.len();
        let b = (0..4)
            .filter_map(|_| self.sampler.draw_except(a))
            .find(|&b| ctx.is_candidate(b))
            .or_else(|| {
                (1..n)
                    .map(|k| (a + k) % n)
                    .find(|&i| ctx.servers[i].weight > 0 && ctx.is_candidate(i))
            })
            .unwrap_or(a);
        let load = |i: usize| {
            let s = &ctx.servers[i];
            (u128::from(s.state.in_flight()), u128::from(s.weight))
        };
        let ((la, wa), (lb, wb)) = (load(a), load(b));
        // la / wa <= lb / wb
        Some(if la * wb <= lb * wa { a } else { b })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::selection::testing::{ctx, servers};
    use std::sync::atomic::Ordering;

    #[test]
    fn the_loaded_server_loses_every_duel() {
        let s = servers(&[1, 1]);
        s[0].state.in_flight.store(10, Ordering::Relaxed);
        let p = PowerOfTwo::new(&s);
        for _ in 0..50 {
            assert_eq!(p.pick(&ctx(&s)), Some(1));
        }
    }

    #[test]
    fn the_second_draw_never_repeats_the_first() {
        let s = servers(&[5, 1, 0, 2]);
        let sampler = WeightedSampler::new(&s);
        let mut hits = [0u32; 4];
        for _ in 0..4000 {
            let b = sampler.draw_except(0).expect("draw");
            hits[b] += 1;
        }
        assert_eq!((hits[0], hits[2]), (0, 0), "{hits:?}");
        // 1 : 2 expected among the rest.
        assert!((1150..1550).contains(&hits[1]), "{hits:?}");
        assert_eq!(WeightedSampler::new(&servers(&[3])).draw_except(0), None);
    }

    #[test]
    fn most_loaded_of_many_is_never_picked() {
        let s = servers(&[1, 1, 1, 1]);
        for (i, srv) in s.iter().enumerate() {
            srv.state.in_flight.store(i as u64, Ordering::Relaxed);
        }
        let p = PowerOfTwo::new(&s);
        let mut hits = [0u32; 4];
        for _ in 0..2000 {
            hits[p.pick(&ctx(&s)).expect("pick")] += 1;
        }
        assert_eq!(hits[3], 0, "{hits:?}");
        assert!(hits[0] > hits[1] && hits[1] > hits[2], "{hits:?}");
    }
}
