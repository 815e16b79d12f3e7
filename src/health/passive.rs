//! Live-traffic checks: the forwarder reports every attempt through
//! `ServerState::record_attempt`; failures (a `failure_codes` status, a
//! connection error or a timeout) are counted in a sliding window, and more
//! than `max_failures` within `failover_period` takes the server out.
//!
//! The window is lock-free: sixteen buckets, each one atomic word holding a
//! bucket number and a count, so a failure is one compare-and-swap and a
//! sum of sixteen loads; successes cost one bitset lookup. The window is
//! exact to a sixteenth of the period.
//!
//! Coming back: with an explicit check the next passing probe restores the
//! server (`state.rs`). Without one it goes on probation after the period:
//! one request decides; a failure sends it out again with the wait doubled,
//! up to [`MAX_BACKOFF`].

use super::farm::FarmHealth;
use super::outcome::Reason;
use super::spec::LiveTraffic;
use super::state::{PROBATION_OFF, PROBATION_OPEN, PROBATION_TRIAL};
use super::{human, now_ms};
use crate::farm::ServerState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The longest wait between probation trials.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

const BUCKETS: u64 = 16;
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// Failures over the last period, in sixteen buckets.
#[derive(Debug, Default)]
pub struct FailureWindow {
    buckets: [AtomicU64; BUCKETS as usize],
}

impl FailureWindow {
    /// Counts a failure at `now_ms`; returns the failures within the
    /// `period` that ends now.
    pub fn add(&self, now_ms: u64, period: Duration) -> u32 {
        let width = (period.as_millis() as u64 / BUCKETS).max(1);
        let epoch = now_ms / width;
        let slot = &self.buckets[(epoch % BUCKETS) as usize];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let next = if cur >> COUNT_BITS == epoch {
                (cur & !COUNT_MASK) | ((cur & COUNT_MASK) + 1).min(COUNT_MASK)
            } else {
                (epoch << COUNT_BITS) | 1
            };
            match slot.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.count(epoch)
    }

    fn count(&self, epoch: u64) -> u32 {
        let total: u64 = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|v| {
                let e = v >> COUNT_BITS;
                e <= epoch && epoch - e < BUCKETS
            })
            .map(|v| v & COUNT_MASK)
            .sum();
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }
}

// === impl ServerState: live traffic ===

impl ServerState {
    /// Feeds one attempt's outcome to the live-traffic checks of its farm.
    #[inline]
    pub(crate) fn observe_live(&self, failed: bool, farm: &FarmHealth) {
        let Some(live) = &farm.live else { return };
        if self.health.probation.load(Ordering::Relaxed) == PROBATION_TRIAL {
            self.end_trial(!failed, live, farm);
            return;
        }
        if !failed || !self.is_healthy() {
            return;
        }
        let failures = self.health.window.add(now_ms(), live.period);
        if failures > live.max_failures {
            self.eject_live(failures, live, farm);
        }
    }

    /// Takes the server out as the process this one replaced had it (binary
    /// upgrade): it comes back the usual way, by its health checks, or by
    /// probation after a live-traffic period on a farm without checks.
    pub fn inherit_down(&self, farm: &FarmHealth) {
        let mut rec = self.health.lock();
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
        self.health.lock().down_by_live
    }

    fn eject_live(&self, failures: u32, live: &LiveTraffic, farm: &FarmHealth) {
        let mut rec = self.health.lock();
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
        self.health.window.reset();
        self.health
            .counters
            .live_ejections
            .fetch_add(1, Ordering::Relaxed);
        drop(rec);
        farm.apply_floor();
    }

    fn end_trial(&self, ok: bool, live: &LiveTraffic, farm: &FarmHealth) {
        if self
            .health
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
        let mut rec = self.health.lock();
        if ok {
            self.go_up(&mut rec, Reason::ProbationPassed, farm.slow_start);
        } else {
            rec.backoff = (rec.backoff * 2).clamp(live.period, MAX_BACKOFF);
            rec.probation_at_ms = now_ms() + rec.backoff.as_millis() as u64;
            rec.reason = Some(Reason::ProbationFailed);
            tracing::warn!(farm = %self.key.farm, server = %self.key.server,
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
        match self.health.probation.load(Ordering::Relaxed) {
            PROBATION_TRIAL => {
                let due =
                    self.health.trial_ms.load(Ordering::Relaxed) + stuck_after.as_millis() as u64;
                if now >= due {
                    let _ = self.health.probation.compare_exchange(
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
                let mut rec = self.health.lock();
                if self.is_healthy() || !rec.down_by_live || rec.probation_at_ms == 0 {
                    return None;
                }
                if now < rec.probation_at_ms {
                    return Some(rec.probation_at_ms);
                }
                rec.probation_at_ms = 0;
                self.health
                    .probation
                    .store(PROBATION_OPEN, Ordering::Relaxed);
                tracing::info!(farm = %self.key.farm, server = %self.key.server,
                    "server is on probation: the next request decides");
                None
            }
        }
    }

    /// Claims the one trial request of a server on probation. True when this
    /// request is the trial.
    #[inline]
    pub(crate) fn claim_trial(&self) -> bool {
        let won = self
            .health
            .probation
            .compare_exchange(
                PROBATION_OPEN,
                PROBATION_TRIAL,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if won {
            self.health.trial_ms.store(now_ms(), Ordering::Relaxed);
        }
        won
    }

    /// Is the server waiting for its trial request?
    #[inline]
    pub fn on_probation(&self) -> bool {
        self.health.probation.load(Ordering::Relaxed) == PROBATION_OPEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_period_only() {
        let w = FailureWindow::default();
        let period = Duration::from_millis(1600); // buckets of 100 ms
        assert_eq!(w.add(10_000, period), 1);
        assert_eq!(w.add(10_050, period), 2);
        assert_eq!(w.add(11_000, period), 3);
        // 1.5 s later the first two are still inside (bucket 100 of 115).
        assert_eq!(w.add(11_550, period), 4);
        // At 11_700 the bucket holding 10_000 and 10_050 has left the window.
        assert_eq!(w.add(11_700, period), 3);
        // Long after: only the new one.
        assert_eq!(w.add(60_000, period), 1);
        w.reset();
        assert_eq!(w.add(60_001, period), 1);
    }

    #[test]
    fn a_changed_period_does_not_count_stale_buckets() {
        let w = FailureWindow::default();
        for t in 0..5 {
            w.add(100_000 + t, Duration::from_secs(1));
        }
        // Wider buckets: epochs are smaller numbers now; old ones are ignored.
        assert_eq!(w.add(100_010, Duration::from_secs(30)), 1);
    }

    #[test]
    fn concurrent_failures_are_all_counted() {
        let w = std::sync::Arc::new(FailureWindow::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        w.add(5_000, Duration::from_secs(30));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(w.add(5_000, Duration::from_secs(30)), 4001);
    }
}
