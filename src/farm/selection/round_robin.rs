//! `round_robin`: strict rotation over the servers, one request each in
//! turn, weights ignored (except that weight 0 takes no new traffic).
//!
//! One `AtomicUsize` and `fetch_add`. When the server whose turn it is is
//! out of rotation (or already tried by this request), the turn goes to a
//! random candidate instead of the next one in the list, so no neighbour of
//! a down server takes a double share.

use super::random::uniform_candidate;
use super::{PickContext, Policy};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Policy for RoundRobin {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let n = ctx.servers.len();
        if n == 0 {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        if ctx.servers[i].weight > 0 && ctx.is_candidate(i) {
            return Some(i);
        }
        uniform_candidate(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::selection::testing::{ctx, servers};
    use crate::farm::state::AdminState;

    #[test]
    fn rotates_in_order() {
        let s = servers(&[1, 1, 1]);
        let rr = RoundRobin::default();
        let seq: Vec<_> = (0..6).filter_map(|_| rr.pick(&ctx(&s))).collect();
        assert_eq!(seq, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weights_are_ignored_but_zero_takes_nothing() {
        let s = servers(&[5, 1, 0]);
        let rr = RoundRobin::default();
        let mut hits = [0; 3];
        for _ in 0..300 {
            hits[rr.pick(&ctx(&s)).expect("pick")] += 1;
        }
        assert_eq!(hits[2], 0);
        // Slots of s0 and s1 are theirs (100 each); s2's 100 go at random.
        assert!(hits[0] >= 100 && hits[1] >= 100, "{hits:?}");
    }

    #[test]
    fn out_of_rotation_turns_are_shared_not_handed_to_the_neighbour() {
        let s = servers(&[1, 1, 1, 1]);
        s[1].state.set_admin(AdminState::Disabled);
        let rr = RoundRobin::default();
        let mut hits = [0; 4];
        for _ in 0..4000 {
            hits[rr.pick(&ctx(&s)).expect("pick")] += 1;
        }
        assert_eq!(hits[1], 0);
        // 1000 own turns each plus a third of s1's 1000 (expected 1333).
        for h in [hits[0], hits[2], hits[3]] {
            assert!((1150..1550).contains(&h), "{hits:?}");
        }
        s[0].state.set_admin(AdminState::Disabled);
        s[2].state.set_admin(AdminState::Disabled);
        s[3].state.set_admin(AdminState::Disabled);
        assert_eq!(rr.pick(&ctx(&s)), None);
    }
}
