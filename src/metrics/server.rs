//! Per-server statistics beyond the basic counters of `farm::state`:
//! responses by status code, failures by reason, the latency histogram,
//! health-check counts and the last check, and the last state change with
//! its reason. Lives in `ServerState::stats`, so it survives reloads.
//!
//! The request path only touches atomics (`record_response`,
//! `record_failure`). The two records behind a mutex (last check, last state
//! change) are written by health checks and admin actions, never per request.

use super::histogram::LatencyHistogram;
use super::names::FAILURE_REASONS;
use super::status_codes::StatusCounts;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Why an attempt to a server counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum FailureReason {
    /// The connection could not be opened (refused, unreachable, connect timeout).
    Connect = 0,
    /// No response headers within `proxy.response_timeout`.
    Timeout = 1,
    /// The server answered with a failure status (5xx).
    Status = 2,
    /// The connection broke before a response (reset, closed, protocol error).
    Reset = 3,
}

impl FailureReason {
    pub const ALL: [FailureReason; 4] = [
        FailureReason::Connect,
        FailureReason::Timeout,
        FailureReason::Status,
        FailureReason::Reset,
    ];

    /// The reason for a label the forwarder reports (`ProxyError::reason`);
    /// anything else broke the exchange, so it counts as a reset.
    #[inline]
    pub fn from_label(label: &str) -> FailureReason {
        match label {
            "connect" => FailureReason::Connect,
            "timeout" => FailureReason::Timeout,
            "status" => FailureReason::Status,
            _ => FailureReason::Reset,
        }
    }

    pub fn as_str(self) -> &'static str {
        FAILURE_REASONS[self as usize]
    }
}

/// The result of the last active health check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    pub at: SystemTime,
    pub ok: bool,
    /// What was seen, e.g. "200 in 3 ms" or "connection refused".
    pub detail: String,
}

/// The last change of a server's state and why.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub at: SystemTime,
    /// One of `names::STATES`.
    pub state: &'static str,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ServerStats {
    /// Responses received, by status code.
    pub codes: StatusCounts,
    failures: [AtomicU64; 4],
    /// Time to response headers.
    pub latency: LatencyHistogram,
    /// Active health checks that passed / failed (fed by the health checker).
    pub checks_ok: AtomicU64,
    pub checks_failed: AtomicU64,
    last_check: Mutex<Option<CheckRecord>>,
    last_change: Mutex<Option<StateChange>>,
}

impl ServerStats {
    /// Counts a response; returns true when its status is a failure (5xx),
    /// which is then counted under `status`.
    #[inline]
    pub fn record_response(&self, status: u16, latency: Duration) -> bool {
        self.codes.inc(status);
        self.latency.observe(latency);
        let failed = status >= 500;
        if failed {
            self.record_failure(FailureReason::Status);
        }
        failed
    }

    #[inline]
    pub fn record_failure(&self, reason: FailureReason) {
        self.failures[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn failures(&self, reason: FailureReason) -> u64 {
        self.failures[reason as usize].load(Ordering::Relaxed)
    }

    /// Records one active health check.
    pub fn record_check(&self, ok: bool, detail: impl Into<String>) {
        let counter = if ok {
            &self.checks_ok
        } else {
            &self.checks_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_check) = Some(CheckRecord {
            at: SystemTime::now(),
            ok,
            detail: detail.into(),
        });
    }

    pub fn last_check(&self) -> Option<CheckRecord> {
        lock(&self.last_check).clone()
    }

    /// Records that the server's state became `state` (one of
    /// `names::STATES`) because of `reason`.
    pub fn record_change(&self, state: &'static str, reason: impl Into<String>) {
        *lock(&self.last_change) = Some(StateChange {
            at: SystemTime::now(),
            state,
            reason: reason.into(),
        });
    }

    pub fn last_change(&self) -> Option<StateChange> {
        lock(&self.last_change).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_and_failures() {
        let s = ServerStats::default();
        assert!(!s.record_response(200, Duration::from_millis(3)));
        assert!(s.record_response(503, Duration::from_millis(3)));
        s.record_failure(FailureReason::from_label("connect"));
        s.record_failure(FailureReason::from_label("timeout"));
        s.record_failure(FailureReason::from_label("reset"));
        s.record_failure(FailureReason::from_label("something else"));
        assert_eq!(s.codes.get(200), 1);
        assert_eq!(s.codes.get(503), 1);
        assert_eq!(s.failures(FailureReason::Status), 1);
        assert_eq!(s.failures(FailureReason::Connect), 1);
        assert_eq!(s.failures(FailureReason::Timeout), 1);
        assert_eq!(s.failures(FailureReason::Reset), 2);
        assert_eq!(s.latency.snapshot().count(), 2);
        assert_eq!(FailureReason::Reset.as_str(), "reset");
    }

    #[test]
    fn checks_and_changes() {
        let s = ServerStats::default();
        assert!(s.last_check().is_none());
        s.record_check(false, "connection refused");
        s.record_check(true, "200 in 2 ms");
        assert_eq!(s.checks_ok.load(Ordering::Relaxed), 1);
        assert_eq!(s.checks_failed.load(Ordering::Relaxed), 1);
        let last = s.last_check().expect("check");
        assert!(last.ok);
        assert_eq!(last.detail, "200 in 2 ms");
        s.record_change("draining", "drained through the admin API");
        assert_eq!(s.last_change().expect("change").state, "draining");
    }
}
