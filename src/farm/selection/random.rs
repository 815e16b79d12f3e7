//! `random`: a server drawn at random in proportion to its weight. No
//! shared counter at all, so it scales with cores and suits many equal
//! proxies in front of one farm. Also the weighted sampler other policies
//! use to spread the turns of servers out of rotation.

use super::{PickContext, Policy};
use crate::farm::Server;

/// Draws a random index in proportion to weight, from prefix sums built once
/// per snapshot; O(log n), no lock, no allocation.
#[derive(Debug, Default)]
pub struct WeightedSampler {
    /// `cumulative[i]` = sum of weights of servers `0..=i`.
    cumulative: Vec<u64>,
}

/// Random draws before giving up on luck and scanning.
const TRIES: usize = 8;

impl WeightedSampler {
    pub fn new(servers: &[Server]) -> Self {
        let mut sum = 0u64;
        let cumulative = servers
            .iter()
            .map(|s| {
                sum += u64::from(s.weight);
                sum
            })
            .collect();
        WeightedSampler { cumulative }
    }

    /// One weighted draw over all servers with weight > 0 (candidates or not).
    #[inline]
    pub fn draw(&self) -> Option<usize> {
        let total = *self.cumulative.last()?;
        if total == 0 {
            return None;
        }
        let r = fastrand::u64(0..total);
        Some(self.cumulative.partition_point(|&c| c <= r))
    }

    /// One weighted draw over all servers with weight > 0 except `skip`:
    /// draws from the total minus `skip`'s share and steps over its range.
    #[inline]
    pub fn draw_except(&self, skip: usize) -> Option<usize> {
        let total = *self.cumulative.last()?;
        let below = if skip == 0 {
            0
        } else {
            self.cumulative[skip - 1]
        };
        let width = self.cumulative[skip] - below;
        if total == width {
            return None;
        }
        let mut r = fastrand::u64(0..total - width);
        if r >= below {
            r += width;
        }
        Some(self.cumulative.partition_point(|&c| c <= r))
    }

    /// A weighted random candidate: a few draws, then (when most servers are
    /// out) a scan from a random start.
    #[inline]
    pub fn sample(&self, ctx: &PickContext<'_>) -> Option<usize> {
        for _ in 0..TRIES {
            let i = self.draw()?;
            if ctx.is_candidate(i) {
                return Some(i);
            }
        }
        let n = ctx.servers.len();
        let start = fastrand::usize(0..n);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| ctx.servers[i].weight > 0 && ctx.is_candidate(i))
    }
}

/// A uniformly random candidate with weight > 0: a few draws, then a scan.
#[inline]
pub fn uniform_candidate(ctx: &PickContext<'_>) -> Option<usize> {
    let n = ctx.servers.len();
    if n == 0 {
        return None;
    }
    let usable = |i: usize| ctx.servers[i].weight > 0 && ctx.is_candidate(i);
    for _ in 0..TRIES {
        let i = fastrand::usize(0..n);
        if usable(i) {
            return Some(i);
        }
    }
    let start = fastrand::usize(0..n);
    (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
}

#[derive(Debug)]
pub struct Random {
    sampler: WeightedSampler,
}

impl Random {
    pub fn new(servers: &[Server]) -> Self {
        Random {
            sampler: WeightedSampler::new(servers),
        }
    }
}

impl Policy for Random {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        self.sampler.sample(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::selection::testing::{ctx, servers};
    use crate::farm::state::AdminState;

    #[test]
    fn follows_weights() {
        let s = servers(&[1, 3, 0]);
        let p = Random::new(&s);
        let mut hits = [0u32; 3];
        for _ in 0..8000 {
            hits[p.pick(&ctx(&s)).expect("pick")] += 1;
        }
        assert_eq!(hits[2], 0, "weight 0 takes no traffic");
        // Expect 2000 : 6000; allow wide statistical slack.
        assert!((1700..2300).contains(&hits[0]), "{hits:?}");
    }

    #[test]
    fn only_candidates() {
        let s = servers(&[1, 1, 1]);
        s[0].state.set_admin(AdminState::Disabled);
        s[2].state.set_admin(AdminState::Draining);
        let p = Random::new(&s);
        for _ in 0..100 {
            assert_eq!(p.pick(&ctx(&s)), Some(1));
        }
        s[1].state.set_admin(AdminState::Disabled);
        assert_eq!(p.pick(&ctx(&s)), None);
    }
}
