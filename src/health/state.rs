//! The health record of a server, kept across reloads, and its transitions.
//!
//! A [`ServerHealth`] watches one `farm::ServerState` (whose atomics say
//! healthy, forced, probation, slow-start ramp) and is found by server
//! identity in the [`HealthRegistry`], which hangs on the `StateRegistry`.
//! The request path only feeds the live-traffic window; every change of
//! state (down, up, probation) happens under a small mutex that guards the
//! bookkeeping an operator reads (reason, time of the last change, last
//! check), so each change is logged and counted once.

use super::outcome::{ProbeReport, Reason, PROBE_RESULTS};
use super::spec::HealthCheck;
use super::window::FailureWindow;
use super::{human, now_ms};
use crate::farm::admission::{PROBATION_OFF, PROBATION_OPEN, PROBATION_TRIAL};
use crate::farm::{Prune, ServerKey, ServerState};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Health state of one server that outlives snapshots.
#[derive(Debug)]
pub struct ServerHealth {
    /// The server this record watches and whose rotation it sets.
    pub state: Arc<ServerState>,
    pub(crate) window: FailureWindow,
    /// Scheduling of explicit probes (supervisor only).
    pub(crate) next_probe_ms: AtomicU64,
    pub(crate) probing: AtomicBool,
    record: Mutex<HealthRecord>,
    pub counters: HealthCounters,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct HealthCounters {
    /// Probes by result, indexed like [`PROBE_RESULTS`].
    pub checks: [AtomicU64; PROBE_RESULTS.len()],
    /// Times the server left rotation (any reason).
    pub went_down: AtomicU64,
    /// Times it came back.
    pub came_back: AtomicU64,
    /// Times live traffic took it out.
    pub live_ejections: AtomicU64,
}

impl HealthCounters {
    /// `(result label, count)` for `farmgate_health_checks_total`.
    pub fn checks_by_result(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        PROBE_RESULTS
            .iter()
            .zip(&self.checks)
            .map(|(l, c)| (*l, c.load(Ordering::Relaxed)))
    }
}

/// The slow-changing part, behind the mutex.
#[derive(Debug, Default)]
pub(crate) struct HealthRecord {
    /// Consecutive probe passes / failures.
    pub passes: u32,
    pub fails: u32,
    pub last_check: Option<(SystemTime, ProbeReport)>,
    /// Why the server is in its current state (None: never changed).
    pub reason: Option<Reason>,
    pub changed_at: Option<SystemTime>,
    pub changed_ms: u64,
    /// Out because of live traffic (a single passing probe brings it back).
    pub down_by_live: bool,
    /// Current probation wait; doubles after a failed trial.
    pub backoff: Duration,
    /// When probation opens (ms stamp; 0: none pending).
    pub probation_at_ms: u64,
}

impl ServerHealth {
    pub fn new(state: Arc<ServerState>) -> Self {
        ServerHealth {
            state,
            window: FailureWindow::default(),
            next_probe_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            record: Mutex::default(),
            counters: HealthCounters::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HealthRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Is the server in rotation by health (`ServerState::is_healthy`)?
    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.state.is_healthy()
    }
}

/// Every server's health record by identity; attached to the
/// `StateRegistry` so a reload that keeps a server keeps its record.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    map: Mutex<HashMap<ServerKey, Arc<ServerHealth>>>,
}

impl HealthRegistry {
    /// The record watching `state`, made the first time it is seen.
    pub fn get_or_create(&self, state: &Arc<ServerState>) -> Arc<ServerHealth> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let h = map
            .entry(state.key.clone())
            .or_insert_with(|| Arc::new(ServerHealth::new(state.clone())));
        if !Arc::ptr_eq(&h.state, state) {
            // The server state was pruned and made anew: start afresh too.
            *h = Arc::new(ServerHealth::new(state.clone()));
        }
        h.clone()
    }
}

impl Prune for HealthRegistry {
    fn prune(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, h| Arc::strong_count(h) > 1);
    }
}

/// A server's health as the status API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    pub healthy: bool,
    /// Held in rotation by the minimum-servers floor although unhealthy.
    pub forced: bool,
    /// "off", "waiting", "open" or "trial".
    pub probation: &'static str,
    pub reason: Option<String>,
    pub reason_code: Option<&'static str>,
    /// Unix time (ms) of the last change of state.
    pub changed_unix_ms: Option<u64>,
    pub last_check: Option<CheckView>,
    /// Share of a full load the server takes now (slow start), 0..1.
    pub slow_start_factor: f64,
    pub consecutive_passes: u32,
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    pub unix_ms: u64,
    pub result: &'static str,
    pub reason: String,
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub body_match: Option<bool>,
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// === impl ServerHealth: transitions ===

impl ServerHealth {
    /// Takes the server out of rotation. Call with its record locked.
    pub(crate) fn go_down(&self, rec: &mut HealthRecord, reason: Reason) {
        self.state.set_healthy(false);
        self.state.probation.store(PROBATION_OFF, Ordering::Relaxed);
        self.state.cancel_ramp();
        rec.passes = 0;
        rec.changed_at = Some(SystemTime::now());
        rec.changed_ms = now_ms();
        self.counters.went_down.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            farm = %self.state.key.farm,
            server = %self.state.key.server,
            reason = %reason,
            "server is out of rotation: {reason}"
        );
        rec.reason = Some(reason);
    }

    /// Puts the server back in rotation. Call with its record locked.
    pub(crate) fn go_up(&self, rec: &mut HealthRecord, reason: Reason, slow_start: Duration) {
        self.state.set_healthy(true);
        self.state.probation.store(PROBATION_OFF, Ordering::Relaxed);
        self.window.reset();
        rec.down_by_live = false;
        rec.backoff = Duration::ZERO;
        rec.probation_at_ms = 0;
        rec.fails = 0;
        rec.changed_at = Some(SystemTime::now());
        rec.changed_ms = now_ms();
        self.counters.came_back.fetch_add(1, Ordering::Relaxed);
        self.state.begin_ramp(slow_start);
        if slow_start.is_zero() {
            tracing::info!(farm = %self.state.key.farm, server = %self.state.key.server, reason = %reason,
                "server is back in rotation: {reason}");
        } else {
            tracing::info!(farm = %self.state.key.farm, server = %self.state.key.server, reason = %reason,
                "server is back in rotation: {reason}; slow start over {}", human(slow_start));
        }
        rec.reason = Some(reason);
    }

    /// Applies one probe result (rise/fall). `started_ms` is when the probe
    /// began: a pass that started before the server went down proves nothing.
    /// Returns true when the server changed state.
    pub fn apply_probe(
        &self,
        check: &HealthCheck,
        report: &ProbeReport,
        started_ms: u64,
        slow_start: Duration,
    ) -> bool {
        if let Some(i) = report.verdict.probe_index() {
            self.counters.checks[i].fetch_add(1, Ordering::Relaxed);
        }
        let mut rec = self.lock();
        rec.last_check = Some((SystemTime::now(), report.clone()));
        let healthy = self.is_healthy();
        if report.passed() {
            rec.fails = 0;
            rec.passes = rec.passes.saturating_add(1);
            if !healthy
                && started_ms >= rec.changed_ms
                && (rec.down_by_live || rec.passes >= check.healthy_threshold)
            {
                self.go_up(&mut rec, Reason::Passed, slow_start);
                return true;
            }
            if !healthy {
                tracing::debug!(farm = %self.state.key.farm, server = %self.state.key.server,
                    "health check passed ({}/{})", rec.passes, check.healthy_threshold);
            }
        } else {
            rec.passes = 0;
            rec.fails = rec.fails.saturating_add(1);
            if healthy && rec.fails >= check.unhealthy_threshold {
                self.go_down(&mut rec, report.verdict.clone());
                return true;
            }
            if !healthy && rec.down_by_live {
                // Out for live traffic and now failing its checks too: from here
                // the usual rise applies.
                rec.down_by_live = false;
                rec.probation_at_ms = 0;
                rec.reason = Some(report.verdict.clone());
            }
            tracing::debug!(farm = %self.state.key.farm, server = %self.state.key.server,
                "health check failed: {} ({}/{})", report.verdict, rec.fails, check.unhealthy_threshold);
        }
        false
    }

    /// Health as the status API shows it.
    pub fn health_view(&self) -> HealthView {
        let rec = self.lock();
        let probation = match self.state.probation.load(Ordering::Relaxed) {
            PROBATION_OPEN => "open",
            PROBATION_TRIAL => "trial",
            _ if rec.probation_at_ms != 0 => "waiting",
            _ => "off",
        };
        HealthView {
            healthy: self.is_healthy(),
            forced: self.state.is_forced(),
            probation,
            reason: rec.reason.as_ref().map(ToString::to_string),
            reason_code: rec.reason.as_ref().map(Reason::label),
            changed_unix_ms: rec.changed_at.map(unix_ms),
            last_check: rec.last_check.as_ref().map(|(at, r)| CheckView {
                unix_ms: unix_ms(*at),
                result: r.verdict.label(),
                reason: r.verdict.to_string(),
                status: r.status,
                latency_ms: r.latency.as_secs_f64() * 1000.0,
                body_match: r.body_match,
            }),
            slow_start_factor: self.state.slow_start_factor(),
            consecutive_passes: rec.passes,
            consecutive_failures: rec.fails,
        }
    }
}
