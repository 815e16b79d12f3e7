//! `least_response_time`: the server expected to answer soonest, by
//! peak-EWMA latency (see `farm/ewma.rs`) times the requests it already has
//! in flight (+1 for this one), divided by weight.
//!
//! Two rules keep it from starving or stampeding a server:
//! - a server with no recent measurement (new, or idle for longer than the
//!   EWMA's time constant) is costed no lower than the fastest recently
//!   measured server, so it is tried at once as a peer of the best, and its
//!   in-flight count bounds how much it takes before its first answer;
//! - an idle server's estimate decays toward zero, so one that lost its
//!   traffic for being slow is tried again and wins traffic back if fast.
//!
//! Two passes over the servers (floor, then scores), atomics only.

use super::{rotated, PickContext, Policy};
use crate::farm::ewma::now_ns;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct LeastResponseTime {
    /// Rotating scan start, so equal scores share traffic.
    offset: AtomicUsize,
}

impl Policy for LeastResponseTime {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        self.pick_at(ctx, now_ns())
    }
}

impl LeastResponseTime {
    fn pick_at(&self, ctx: &PickContext<'_>, now: u64) -> Option<usize> {
        let n = ctx.servers.len();
        if n == 0 {
            return None;
        }
        let usable = |i: usize| ctx.servers[i].weight > 0 && ctx.is_candidate(i);

        // Pass 1: the lowest estimate among recently measured candidates.
        let mut floor = f64::INFINITY;
        for i in (0..n).filter(|&i| usable(i)) {
            if let Some(est) = ctx.servers[i].state.latency.read_fresh_at(now) {
                floor = floor.min(est);
            }
        }
        // No recent measurement anywhere: estimates only break ties between
        // equal in-flight counts.
        let floor = if floor.is_finite() { floor } else { 0.0 };

        // Pass 2: cost = max(estimate, floor) * (in_flight + 1) / weight.
        let start = self.offset.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, f64)> = None;
        for i in rotated(n, start) {
            if !usable(i) {
                continue;
            }
            let s = &ctx.servers[i];
            let est = match s.state.latency.read_at(now) {
                Some((est, true)) => est,
                Some((est, false)) => est.max(floor),
                None => floor,
            };
            // +1 ns: with no estimates at all this is least-in-flight.
            let cost = (est + 1.0) * (s.state.in_flight() as f64 + 1.0) / f64::from(s.weight);
            if best.is_none_or(|(_, c)| cost < c) {
                best = Some((i, cost));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::ewma::DECAY;
    use crate::farm::selection::testing::{ctx, servers};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    fn hits(p: &LeastResponseTime, s: &[crate::farm::Server], n: usize) -> Vec<u32> {
        let mut h = vec![0; s.len()];
        for _ in 0..n {
            h[p.pick(&ctx(s)).expect("pick")] += 1;
        }
        h
    }

    #[test]
    fn prefers_the_faster_server() {
        let s = servers(&[1, 1]);
        let now = now_ns();
        s[0].state.latency.observe_at(50 * MS, now);
        s[1].state.latency.observe_at(5 * MS, now);
        let p = LeastResponseTime::default();
        assert_eq!(hits(&p, &s, 10), vec![0, 10]);
        // Unless it is already busy: 5 ms * 11 > 50 ms * 1.
        s[1].state.in_flight.store(10, Ordering::Relaxed);
        assert_eq!(p.pick(&ctx(&s)), Some(0));
    }

    #[test]
    fn a_new_server_is_tried_as_a_peer_of_the_best_not_flooded() {
        let s = servers(&[1, 1, 1]);
        let now = now_ns();
        s[0].state.latency.observe_at(5 * MS, now);
        s[1].state.latency.observe_at(20 * MS, now);
        // s2 has never answered.
        let p = LeastResponseTime::default();
        let first = hits(&p, &s, 10);
        assert!(first[2] > 0, "new server starved: {first:?}");
        // With requests in flight on it, the best known server wins again.
        s[2].state.in_flight.store(3, Ordering::Relaxed);
        assert_eq!(p.pick(&ctx(&s)), Some(0));
    }

    #[test]
    fn a_slow_server_that_went_idle_is_tried_again() {
        let s = servers(&[1, 1]);
        let now = 1 + 6 * DECAY.as_nanos() as u64;
        // s0 was slow long ago and got no traffic since; s1 is fast now.
        s[0].state.latency.observe_at(200 * MS, 1);
        s[1].state.latency.observe_at(2 * MS, now);
        let p = LeastResponseTime::default();
        // Decayed below s1's estimate: floored to it, so they share.
        let mut h = [0; 2];
        for _ in 0..10 {
            h[p.pick_at(&ctx(&s), now).expect("pick")] += 1;
        }
        assert_eq!(h, [5, 5]);
        // Not yet decayed that far: s1 keeps it all.
        let earlier = 1 + 2 * DECAY.as_nanos() as u64;
        s[1].state.latency.observe_at(2 * MS, earlier);
        assert_eq!(p.pick_at(&ctx(&s), earlier), Some(1));
    }

    #[test]
    fn weight_zero_and_out_of_rotation_are_skipped() {
        let s = servers(&[0, 1, 1]);
        s[2].state.set_admin(crate::farm::AdminState::Disabled);
        let p = LeastResponseTime::default();
        assert_eq!(hits(&p, &s, 5), vec![0, 5, 0]);
    }
}
