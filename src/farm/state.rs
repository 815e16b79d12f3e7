//! Long-lived per-server state: health flag, admin state, admission and live
//! counters.
//!
//! It is keyed by server identity (farm name + server name) in a
//! [`StateRegistry`], so a config reload that keeps a server keeps its state.
//! The request path reads and writes it through atomics only. What layers
//! above keep per server or farm (health records, connection pools, cache
//! stores) lives in their own registries, attached to this one by type
//! ([`StateRegistry::attached`]), so `farm/` never names them.

use super::admission::PROBATION_OFF;
use super::ewma::PeakEwma;
use crate::metrics::{FailureReason, ServerStats};
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Identity of a server across reloads: its farm and its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    pub farm: String,
    pub server: String,
}

/// What the operator asked for (admin API), independent of health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AdminState {
    Enabled = 0,
    /// No new requests or sessions; affinity-bound clients still reach it.
    Draining = 1,
    Disabled = 2,
}

impl AdminState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => AdminState::Draining,
            2 => AdminState::Disabled,
            _ => AdminState::Enabled,
        }
    }
    /// The state `as_str` names.
    pub fn parse(name: &str) -> Option<AdminState> {
        match name {
            "enabled" => Some(AdminState::Enabled),
            "draining" => Some(AdminState::Draining),
            "disabled" => Some(AdminState::Disabled),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Enabled => "enabled",
            AdminState::Draining => "draining",
            AdminState::Disabled => "disabled",
        }
    }
}

/// Where a server's admin state was decided: on this instance, or by the
/// tier (`cluster:`): recorded in Redis, by this instance or another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AdminSource {
    Local = 0,
    Tier = 1,
}

impl AdminSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminSource::Local => "local",
            AdminSource::Tier => "tier",
        }
    }
}

/// How one attempt to a server ended, as the forwarder reports it.
#[derive(Debug, Clone, Copy)]
pub enum Attempt {
    /// Response headers arrived with this status after this long.
    Response {
        status: u16,
        latency: std::time::Duration,
    },
    /// No usable response: `reason` is connect, timeout or reset.
    Failed { reason: &'static str },
}

/// The latency a failed attempt (refused, reset, timed out) feeds into the
/// response-time average.
pub const FAILURE_LATENCY: std::time::Duration = std::time::Duration::from_secs(1);

/// State shared by every snapshot that contains this server.
#[derive(Debug)]
pub struct ServerState {
    pub key: ServerKey,
    healthy: AtomicBool,
    admin: AtomicU8,
    /// An [`AdminSource`]: where `admin` was decided.
    admin_source: AtomicU8,
    /// Set by the farm's minimum-servers floor: serve even though unhealthy.
    forced: AtomicBool,
    /// Requests sent to this server whose response has not finished.
    pub in_flight: AtomicU64,
    /// Requests sent, finished or not.
    pub requests: AtomicU64,
    /// Failed attempts (connect errors, timeouts, resets, failure statuses).
    pub failures: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Sum of response-header latency in microseconds, for the average.
    pub latency_us_total: AtomicU64,
    /// Peak-EWMA of response latency (`least_response_time`).
    pub latency: PeakEwma,
    pub created: Instant,
    /// Status codes, failures by reason, latency histogram, health checks
    /// and the last state change: what metrics and /api/status report.
    pub stats: ServerStats,
    /// Probation (`admission::PROBATION_*`), written by `health/`, read by
    /// admission.
    pub(crate) probation: AtomicU8,
    /// When the probation trial request was sent (ms stamp), to recover a
    /// lost one.
    pub(crate) trial_ms: AtomicU64,
    /// Slow start: when the ramp began (0: not ramping) and how long it is.
    pub(crate) ramp_start_ms: AtomicU64,
    pub(crate) ramp_len_ms: AtomicU64,
}

impl ServerState {
    pub fn new(key: ServerKey) -> Self {
        ServerState {
            key,
            healthy: AtomicBool::new(true),
            admin: AtomicU8::new(AdminState::Enabled as u8),
            admin_source: AtomicU8::new(AdminSource::Local as u8),
            forced: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            latency_us_total: AtomicU64::new(0),
            latency: PeakEwma::default(),
            created: Instant::now(),
            stats: ServerStats::default(),
            probation: AtomicU8::new(PROBATION_OFF),
            trial_ms: AtomicU64::new(0),
            ramp_start_ms: AtomicU64::new(0),
            ramp_len_ms: AtomicU64::new(0),
        }
    }

    /// May this server take a new request that is not bound to it by affinity?
    #[inline]
    pub fn in_rotation(&self) -> bool {
        self.admin() == AdminState::Enabled
            && (self.is_healthy() || self.is_forced() || self.on_probation())
    }

    /// May this server take a request from a client bound to it by affinity?
    #[inline]
    pub fn accepts_affine(&self) -> bool {
        self.admin() != AdminState::Disabled && (self.is_healthy() || self.is_forced())
    }

    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
    /// Sets health; returns true when it changed.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }
    #[inline]
    pub fn is_forced(&self) -> bool {
        self.forced.load(Ordering::Relaxed)
    }
    pub fn set_forced(&self, forced: bool) {
        self.forced.store(forced, Ordering::Relaxed);
    }
    #[inline]
    pub fn admin(&self) -> AdminState {
        AdminState::from_u8(self.admin.load(Ordering::Relaxed))
    }
    pub fn set_admin(&self, state: AdminState) {
        self.admin.store(state as u8, Ordering::Relaxed);
    }
    pub fn admin_source(&self) -> AdminSource {
        match self.admin_source.load(Ordering::Relaxed) {
            1 => AdminSource::Tier,
            _ => AdminSource::Local,
        }
    }
    pub fn set_admin_source(&self, source: AdminSource) {
        self.admin_source.store(source as u8, Ordering::Relaxed);
    }
    /// The state operators see: `disabled` or `draining` when the admin
    /// says so, else `healthy` or `unhealthy` (one of `metrics::names::STATES`).
    pub fn state_name(&self) -> &'static str {
        match self.admin() {
            AdminState::Disabled => "disabled",
            AdminState::Draining => "draining",
            AdminState::Enabled if self.is_healthy() => "healthy",
            AdminState::Enabled => "unhealthy",
        }
    }
    /// Accounts for one attempt in the counters and the latency average
    /// (`health::FarmHealth::record` calls this, then feeds live traffic).
    #[inline]
    pub fn record_attempt(&self, attempt: Attempt) {
        self.record_attempt_at(attempt, Instant::now());
    }

    /// [`record_attempt`](Self::record_attempt) at `now`, a clock read the
    /// caller made already.
    #[inline]
    pub fn record_attempt_at(&self, attempt: Attempt, now: Instant) {
        match attempt {
            Attempt::Response { latency, status } => {
                self.latency_us_total
                    .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
                if self.stats.record_response(status, latency) {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                }
                self.latency.observe_at(latency, super::ewma::ns_at(now));
            }
            Attempt::Failed { reason } => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.stats.record_failure(FailureReason::from_label(reason));
                // A failed attempt counts as a very slow answer, so
                // least_response_time steers away until it decays.
                self.latency
                    .observe_at(FAILURE_LATENCY, super::ewma::ns_at(now));
            }
        }
    }

    #[inline]
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// All server states ever built, by identity, and the registries other
/// layers attach. Only touched when a snapshot is built (start-up, reload),
/// never per request.
#[derive(Default, Debug)]
pub struct StateRegistry {
    map: Mutex<HashMap<ServerKey, Arc<ServerState>>>,
    attached: Mutex<Vec<Attached>>,
}

/// A registry a layer above keeps beside the server states (health records,
/// connection pools, cache stores): pruned with them.
pub trait Prune: Send + Sync + 'static {
    /// Forgets what no snapshot references any more.
    fn prune(&self);
}

/// One attached registry, as itself (to hand out) and as [`Prune`].
struct Attached {
    any: Arc<dyn Any + Send + Sync>,
    prune: Arc<dyn Prune>,
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Attached")
    }
}

impl StateRegistry {
    /// The state for `key`, created fresh for a server seen the first time.
    pub fn get_or_create(&self, key: &ServerKey) -> Arc<ServerState> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.clone())
            .or_insert_with(|| Arc::new(ServerState::new(key.clone())))
            .clone()
    }

    /// The state for `key`, and whether it was made just now (a server
    /// no snapshot had before).
    pub fn get_or_create_new(&self, key: &ServerKey) -> (Arc<ServerState>, bool) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut new = false;
        let state = map
            .entry(key.clone())
            .or_insert_with(|| {
                new = true;
                Arc::new(ServerState::new(key.clone()))
            })
            .clone();
        (state, new)
    }

    /// The registry of type `T` attached to this one, made on first use.
    /// Snapshot builds call it, never requests.
    pub fn attached<T: Prune + Default>(&self) -> Arc<T> {
        let mut list = self.attached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = list.iter().find_map(|a| a.any.clone().downcast::<T>().ok()) {
            return t;
        }
        let t = Arc::new(T::default());
        list.push(Attached {
            any: t.clone(),
            prune: t.clone(),
        });
        t
    }

    /// Forgets servers and farms that no snapshot references any more
    /// (only the registries hold them). Attached registries go first: what
    /// they drop may hold a server state.
    pub fn prune(&self) {
        let attached: Vec<_> = self
            .attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|a| a.prune.clone())
            .collect();
        for a in attached {
            a.prune();
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| Arc::strong_count(s) > 1);
    }
}
