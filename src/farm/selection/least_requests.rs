//! `least_requests` (the default, as in ARR): the server with the fewest
//! requests in flight relative to its weight. Ties are broken by starting the
//! scan at a rotating offset, so equal servers share traffic instead of the
//! first one taking it all.

use super::{rotated, PickContext, Policy};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct LeastRequests {
    offset: AtomicUsize,
}

impl Policy for LeastRequests {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let n = ctx.servers.len();
        if n == 0 {
            return None;
        }
        let start = self.offset.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, u64, u64)> = None; // (index, in_flight, weight)
        for i in rotated(n, start) {
            let s = &ctx.servers[i];
            if s.weight == 0 || !ctx.is_candidate(i) {
                continue;
            }
            let load = s.state.in_flight();
            if load == 0 {
                // Nothing beats an idle server; the rotating start spreads ties.
                return Some(i);
            }
            let w = u64::from(s.weight);
            // load_i / w_i < load_b / w_b  <=>  load_i * w_b < load_b * w_i
            let better = match best {
                None => true,
                Some((_, bl, bw)) => load.saturating_mul(bw) < bl.saturating_mul(w),
            };
            if better {
                best = Some((i, load, w));
            }
        }
        best.map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::selection::testing::{ctx, servers};
    use std::sync::atomic::Ordering;

    #[test]
    fn prefers_fewest_in_flight() {
        let s = servers(&[1, 1, 1]);
        s[0].state.in_flight.store(5, Ordering::Relaxed);
        s[1].state.in_flight.store(1, Ordering::Relaxed);
        s[2].state.in_flight.store(3, Ordering::Relaxed);
        let p = LeastRequests::default();
        for _ in 0..5 {
            assert_eq!(p.pick(&ctx(&s)), Some(1));
        }
    }

    #[test]
    fn ties_spread_over_all_servers() {
        let s = servers(&[1, 1, 1]);
        let p = LeastRequests::default();
        let mut hits = [0; 3];
        for _ in 0..30 {
            hits[p.pick(&ctx(&s)).expect("pick")] += 1;
        }
        assert_eq!(hits, [10, 10, 10]);
    }

    #[test]
    fn weight_scales_load() {
        let s = servers(&[1, 4]);
        s[0].state.in_flight.store(1, Ordering::Relaxed);
        s[1].state.in_flight.store(3, Ordering::Relaxed);
        // 1/1 > 3/4: the heavier server still wins.
        assert_eq!(LeastRequests::default().pick(&ctx(&s)), Some(1));
    }
}
