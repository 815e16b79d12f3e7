//! Why a server is in or out of rotation, and what one probe found.

use super::human;
use std::fmt;
use std::time::Duration;

/// The reason for a health state or a check result. Shown in logs, the
/// status API and the verify report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The explicit check passed.
    Passed,
    /// The response status is not in `acceptable_status`.
    Status(u16),
    /// The body does not contain `response_match`.
    BodyMismatch,
    /// No verdict within the check's `timeout`.
    Timeout,
    /// The server refused the connection.
    Refused,
    /// The connection could not be made for another reason.
    Unreachable,
    /// The connection closed before a whole response arrived.
    Reset,
    /// The server answered something that is not HTTP/1.1.
    BadResponse,
    /// The TLS handshake with an `https://` server failed (certificate,
    /// protocol).
    Tls,
    /// More than `max_failures` failures of client traffic within the period.
    LiveTraffic { failures: u32, period: Duration },
    /// The one request allowed on probation failed.
    ProbationFailed,
    /// The one request allowed on probation succeeded.
    ProbationPassed,
    /// The farm's health check was removed by a reload.
    CheckRemoved,
    /// The farm's live-traffic checks were turned off by a reload.
    LiveTrafficOff,
    /// Out of rotation in the process this one replaced (binary upgrade).
    Inherited,
    /// A new address of a DNS-named server, waiting for its health checks
    /// to pass before it takes traffic.
    Joined,
    /// A gRPC health check answered a status other than SERVING (0
    /// UNKNOWN, 2 NOT_SERVING, 3 SERVICE_UNKNOWN).
    NotServing(u8),
    /// A gRPC health check's call failed with this `grpc-status` (5
    /// NOT_FOUND: unknown service; 12 UNIMPLEMENTED: no health service).
    GrpcStatus(u8),
}

/// Labels of probe results, in counter order (`farmgate_health_checks_total{result}`).
pub const PROBE_RESULTS: [&str; 11] = [
    "pass",
    "status",
    "body_mismatch",
    "timeout",
    "refused",
    "unreachable",
    "reset",
    "bad_response",
    "tls",
    "not_serving",
    "grpc_status",
];

impl Reason {
    /// Index into [`PROBE_RESULTS`] for reasons a probe can give.
    pub fn probe_index(&self) -> Option<usize> {
        Some(match self {
            Reason::Passed => 0,
            Reason::Status(_) => 1,
            Reason::BodyMismatch => 2,
            Reason::Timeout => 3,
            Reason::Refused => 4,
            Reason::Unreachable => 5,
            Reason::Reset => 6,
            Reason::BadResponse => 7,
            Reason::Tls => 8,
            Reason::NotServing(_) => 9,
            Reason::GrpcStatus(_) => 10,
            _ => return None,
        })
    }

    /// A short stable label for JSON and metrics.
    pub fn label(&self) -> &'static str {
        match self.probe_index() {
            Some(i) => PROBE_RESULTS[i],
            None => match self {
                Reason::LiveTraffic { .. } => "live_traffic",
                Reason::ProbationFailed => "probation_failed",
                Reason::ProbationPassed => "probation_passed",
                Reason::CheckRemoved => "check_removed",
                Reason::Inherited => "inherited",
                Reason::Joined => "joined",
                _ => "live_traffic_off",
            },
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Passed => f.write_str("health check passed"),
            Reason::Status(s) => write!(f, "status {s}"),
            Reason::BodyMismatch => f.write_str("body mismatch"),
            Reason::Timeout => f.write_str("timeout"),
            Reason::Refused => f.write_str("refused"),
            Reason::Unreachable => f.write_str("unreachable"),
            Reason::Reset => f.write_str("connection reset"),
            Reason::BadResponse => f.write_str("invalid HTTP response"),
            Reason::Tls => f.write_str("TLS handshake failed"),
            Reason::LiveTraffic { failures, period } => write!(
                f,
                "live traffic: {failures} failures within {}",
                human(*period)
            ),
            Reason::ProbationFailed => f.write_str("probation request failed"),
            Reason::ProbationPassed => f.write_str("probation request succeeded"),
            Reason::CheckRemoved => f.write_str("health check removed from the config"),
            Reason::LiveTrafficOff => f.write_str("live-traffic checks turned off"),
            Reason::Inherited => f.write_str("out of rotation before the binary upgrade"),
            Reason::Joined => {
                f.write_str("new address of its host name; waiting for health checks")
            }
            Reason::NotServing(s) => write!(f, "gRPC health status {s} (not SERVING)"),
            Reason::GrpcStatus(c) => write!(f, "gRPC health check failed with grpc-status {c}"),
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The response status, when one arrived.
    pub status: Option<u16>,
    /// From the start of the connect to the verdict.
    pub latency: Duration,
    /// Whether the body contained `response_match` (None: not checked).
    pub body_match: Option<bool>,
    /// `Reason::Passed` or why it failed.
    pub verdict: Reason,
}

impl ProbeReport {
    pub fn passed(&self) -> bool {
        self.verdict == Reason::Passed
    }
}
