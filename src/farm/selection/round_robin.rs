//! `round_robin`: strict rotation over the servers in rotation.

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
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| ctx.is_candidate(i))
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
    fn skips_servers_out_of_rotation() {
        let s = servers(&[1, 1, 1]);
        s[1].state.set_admin(AdminState::Disabled);
        let rr = RoundRobin::default();
        let seq: Vec<_> = (0..4).filter_map(|_| rr.pick(&ctx(&s))).collect();
        assert!(!seq.contains(&1));
        s[0].state.set_admin(AdminState::Disabled);
        s[2].state.set_admin(AdminState::Disabled);
        assert_eq!(rr.pick(&ctx(&s)), None);
    }
}
