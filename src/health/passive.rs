//! Live-traffic checks: the forwarder reports every attempt through
//! [`FarmHealth::record`]; failures (a `failure_codes` status, a
//! connection error or a timeout) are counted in a sliding window, and more
//! than `max_failures` within `failover_period` takes the server out.
//!
//! The window (`window.rs`) is lock-free; successes cost one bitset lookup.
//!
//! Coming back: with an explicit check the next passing probe restores the
//! server (`state.rs`). Without one it goes on probation after the period:
//! one request decides; a failure sends it out again with the wait doubled,
//! up to [`MAX_BACKOFF`].

use super::farm::FarmHealth;
use super::outcome::Reason;
use super::spec::LiveTraffic;
use super::state::ServerHealth;
use super::{human, now_ms};
use crate::farm::admission::{PROBATION_OFF, PROBATION_OPEN, PROBATION_TRIAL};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The longest wait between probation trials.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

// === impl ServerHealth: live traffic ===

impl ServerHealth {
    /// Feeds one attempt's outcome to the live-traffic checks of its farm.
    #[inline]
    pub(crate) fn observe_live(&self, failed: bool, farm: &FarmHealth) {
        let Some(live) = &farm.live else { return };
        if self.state.probation.load(Ordering::Relaxed) == PROBATION_TRIAL {
            self.end_trial(!failed, live, farm);
            return;
        }
        if !failed || !self.is_healthy() {
            return;
        }
        let failures = self.window.add(now_ms(), live.period);
        if failures > live.max_failures {
            self.eject_live(failures, live, farm);
        }
    }

    /// Takes the server out as the process this one replaced had it (binary
    /// upgrade): it comes back the usual way, by its health checks, or by
    /// probation after a live-traffic period on a farm without checks.
    pub fn inherit_down(&self, farm: &FarmHealth) {
        let mut rec = self.lock();
        if !self.is_healthy() {
            return;
        }
        if farm.check.is_none() {
            rec.down_by_live = true;
            let wait = farm
                .live
                .as_ref()
                .map_or(std::time::Duration::from_secs(10), |l| l.period);
            rec.backoff = wait;
            rec.probation_at_ms = now_ms() + wait.as_millis() as u64;
        }
        self.go_down(&mut rec, Reason::Inherited);
    }

    /// Was the server taken out by live traffic (not by a health check)?
    pub fn down_by_live(&self) -> bool {
        self.lock().down_by_live
    }

    fn eject_live(&self, failures: u32, live: &LiveTraffic, farm: &FarmHealth) {
        let mut rec = self.lock();
        if !self.is_healthy() {
            return; // another request got here first
        }
        rec.down_by_live = true;
        if farm.check.is_none() {
            rec.backoff = live.period;
            rec.probation_at_ms = now_ms() + live.period.as_millis() as u64;
        }
        self.go_down(
            &mut rec,
            Reason::LiveTraffic {
                failures,
                period: live.period,
            },
        );
        self.window.reset();
        self.counters.live_ejections.fetch_add(1, Ordering::Relaxed);
        drop(rec);
        farm.apply_floor();
    }

    fn end_trial(&self, ok: bool, live: &LiveTraffic, farm: &FarmHealth) {
        if self
            .state
            .probation
            .compare_exchange(
                PROBATION_TRIAL,
                PROBATION_OFF,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        let mut rec = self.lock();
        if ok {
            self.go_up(&mut rec, Reason::ProbationPassed, farm.slow_start);
        } else {
            rec.backoff = (rec.backoff * 2).clamp(live.period, MAX_BACKOFF);
            rec.probation_at_ms = now_ms() + rec.backoff.as_millis() as u64;
            rec.reason = Some(Reason::ProbationFailed);
            tracing::warn!(farm = %self.state.key.farm, server = %self.state.key.server,
                "probation request failed; server stays out, next probation in {}",
                human(rec.backoff));
        }
        drop(rec);
        farm.apply_floor();
    }

    /// Opens probation once its time has come (supervisor, without an
    /// explicit check), and recovers a trial whose request never reported
    /// back (the client went away) after `stuck_after`. Returns the next
    /// time (ms stamp) this needs a look, if any.
    pub(crate) fn tick_probation(&self, now: u64, stuck_after: Duration) -> Option<u64> {
        match self.state.probation.load(Ordering::Relaxed) {
            PROBATION_TRIAL => {
                let due =
                    self.state.trial_ms.load(Ordering::Relaxed) + stuck_after.as_millis() as u64;
                if now >= due {
                    let _ = self.state.probation.compare_exchange(
                        PROBATION_TRIAL,
                        PROBATION_OPEN,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    return None;
                }
                Some(due)
            }
            PROBATION_OPEN => None,
            _ => {
                let mut rec = self.lock();
                if self.is_healthy() || !rec.down_by_live || rec.probation_at_ms == 0 {
                    return None;
                }
                if now < rec.probation_at_ms {
                    return Some(rec.probation_at_ms);
                }
                rec.probation_at_ms = 0;
                self.state
                    .probation
                    .store(PROBATION_OPEN, Ordering::Relaxed);
                tracing::info!(farm = %self.state.key.farm, server = %self.state.key.server,
                    "server is on probation: the next request decides");
                None
            }
        }
    }
}
