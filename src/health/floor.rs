//! The minimum-servers floor (`farms[].min_servers`): when fewer servers
//! than that are healthy, every enabled server is held in rotation, healthy
//! or not (ARR's rule: better some users see errors than all of them get
//! none of the servers). Entering and leaving is logged once; the state is
//! readable for status and metrics.

use super::farm::FarmHealth;
use crate::farm::AdminState;
use std::sync::atomic::Ordering;

impl FarmHealth {
    /// Re-evaluates the floor after any change of health or admin state.
    pub fn apply_floor(&self) {
        let healthy = self.healthy_count();
        let active = self.min_servers > 0 && healthy < self.min_servers as usize;
        // Set the servers first, then log: a request never sees the flag
        // without the servers forced.
        for s in &self.members {
            if s.state.is_forced() != active {
                s.state.set_forced(active);
            }
        }
        let was = self.floor_active.swap(active, Ordering::Relaxed);
        if was != active {
            if active {
                tracing::warn!(
                    farm = %self.name,
                    "minimum servers: only {healthy} of {} server(s) healthy (min_servers {}); \
                     every enabled server is held in rotation",
                    self.members.len(),
                    self.min_servers
                );
            } else {
                tracing::info!(
                    farm = %self.name,
                    "minimum servers: {healthy} server(s) healthy again; \
                     unhealthy servers leave rotation"
                );
            }
        }
    }

    /// Is the floor holding every enabled server in rotation?
    pub fn floor_active(&self) -> bool {
        self.floor_active.load(Ordering::Relaxed)
    }

    /// Servers of the farm healthy and enabled now.
    pub fn healthy_count(&self) -> usize {
        self.members
            .iter()
            .filter(|s| s.state.admin() == AdminState::Enabled && s.state.is_healthy())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::selection::testing::servers;
    use crate::health::spec::HealthSpec;

    fn farm(min: u32, n: usize) -> (Vec<crate::farm::Server>, FarmHealth) {
        let s = servers(&vec![1; n]);
        let spec = HealthSpec {
            min_servers: min,
            ..HealthSpec::default()
        };
        let f = FarmHealth::new("f".into(), spec, &s, &Default::default());
        (s, f)
    }

    #[test]
    fn below_the_floor_every_enabled_server_serves() {
        let (s, f) = farm(2, 3);
        s[0].state.set_healthy(false);
        f.apply_floor();
        assert!(!f.floor_active());
        assert!(!s[0].state.in_rotation());
        s[1].state.set_healthy(false);
        f.apply_floor();
        assert!(f.floor_active());
        assert!(s.iter().all(|x| x.state.in_rotation()));
        // A disabled server stays out even then.
        s[2].state.set_admin(AdminState::Disabled);
        f.apply_floor();
        assert!(!s[2].state.in_rotation());
        s[2].state.set_admin(AdminState::Enabled);
        s[0].state.set_healthy(true);
        s[1].state.set_healthy(true);
        f.apply_floor();
        assert!(!f.floor_active());
        assert!(s.iter().all(|x| !x.state.is_forced()));
    }

    #[test]
    fn zero_turns_the_floor_off() {
        let (s, f) = farm(0, 2);
        s[0].state.set_healthy(false);
        s[1].state.set_healthy(false);
        f.apply_floor();
        assert!(!f.floor_active());
        assert!(s.iter().all(|x| !x.state.in_rotation()));
    }
}
