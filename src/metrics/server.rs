//! Per-server statistics beyond the basic counters of `farm::state`:
//! responses by status code, failures by reason, the latency histogram, and
//! the last operator action with its reason (health keeps its own record in
//! `health::ServerHealth`). Lives in `ServerState::stats`, so it survives
//! reloads.
//!
//! The request path only touches atomics (`record_response`,
//! `record_failure`). The record behind a mutex (last admin change) is
//! written by admin actions, never per request.

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

/// The last change of a server's state and why.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub at: SystemTime,
    /// One of `names::STATES`.
    pub state: &'static str,
    pub reason: String,
}

/// gRPC status codes 0-16 (OK to UNAUTHENTICATED).
pub const GRPC_CODES: usize = 17;

#[derive(Debug, Default)]
pub struct ServerStats {
    /// Responses received, by status code.
    pub codes: StatusCounts,
    failures: [AtomicU64; 4],
    /// Time to response headers.
    pub latency: LatencyHistogram,
    /// gRPC calls answered, by `grpc-status` (0-16; others count as 2,
    /// UNKNOWN, as gRPC clients read them).
    grpc: [AtomicU64; GRPC_CODES],
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

    /// Counts a gRPC call's status as the server sent it.
    #[inline]
    pub fn record_grpc(&self, code: u8) {
        let i = if (code as usize) < GRPC_CODES {
            code as usize
        } else {
            2
        };
        self.grpc[i].fetch_add(1, Ordering::Relaxed);
    }

    /// gRPC calls by status code, those seen at least once.
    pub fn grpc_codes(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        self.grpc
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u8, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
    }

    #[inline]
    pub fn record_failure(&self, reason: FailureReason) {
        self.failures[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn failures(&self, reason: FailureReason) -> u64 {
        self.failures[reason as usize].load(Ordering::Relaxed)
    }

    /// Records that an operator action made the server's state `state` (one
    /// of `names::STATES`) because of `reason`.
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
    fn changes() {
        let s = ServerStats::default();
        assert!(s.last_change().is_none());
        s.record_change("draining", "drained through the admin API");
        let c = s.last_change().expect("change");
        assert_eq!(
            (c.state, c.reason.as_str()),
            ("draining", "drained through the admin API")
        );
    }
}
