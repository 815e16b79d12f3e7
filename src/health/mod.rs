//! Server health: whether each server of each farm may take traffic.
//!
//! Three sources decide it, all writing the long-lived per-server state
//! (`farm::ServerState`, which survives reloads):
//! - explicit URL checks (`probe.rs`), scheduled by the background task in
//!   `supervisor.rs` with jitter and applied through a consecutive-count
//!   rise/fall state machine (`state.rs`);
//! - live traffic (`passive.rs`): failures the forwarder reports through
//!   `ServerState::record_attempt`, counted in a lock-free sliding window,
//!   with probation when no explicit check can bring a server back;
//! - the minimum-servers floor (`floor.rs`), which puts every enabled
//!   server back in rotation when too few are healthy.
//!
//! `slow_start.rs` ramps a returning server's share of new requests;
//! `spec.rs` compiles the YAML sections; `farm.rs` is the per-farm runtime
//! part of a snapshot.

pub mod farm;
pub mod floor;
pub mod outcome;
pub mod passive;
pub mod spec;
pub mod state;
pub mod status_ranges;

pub use farm::FarmHealth;
pub use outcome::{ProbeReport, Reason};
pub use spec::{HealthCheck, HealthSpec, LiveTraffic};
pub use state::{HealthView, ServerHealth};
pub use status_ranges::StatusSet;
pub use crate::checks::supervisor::HealthHandle;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Milliseconds since the process first asked, never 0 (0 means "unset" in
/// the atomics that store these stamps).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    start.elapsed().as_millis() as u64 + 1
}

/// Renders a duration for log lines and messages: `250ms`, `30s`, `2m30s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 != 0 && ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else {
        let s = ms / 1000;
        match s % 60 {
            0 => format!("{}m", s / 60),
            r => format!("{}m{r}s", s / 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_secs(150)), "2m30s");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert!(now_ms() >= 1);
    }
}
