//! The health part of a compiled farm: its settings and the health records
//! of its servers (in the farm's server order), so that a change seen on the
//! request path (a live-traffic ejection) can re-evaluate the farm's
//! minimum-servers floor at once.

use super::spec::{HealthCheck, HealthSpec, LiveTraffic};
use super::state::{HealthRegistry, ServerHealth};
use crate::farm::state::Attempt;
use crate::farm::Server;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct FarmHealth {
    pub name: Arc<str>,
    pub check: Option<Arc<HealthCheck>>,
    pub live: Option<LiveTraffic>,
    pub min_servers: u32,
    pub slow_start: Duration,
    /// One per server, in the farm's order.
    pub(crate) members: Vec<Arc<ServerHealth>>,
    /// The floor holds every enabled server in rotation.
    pub(crate) floor_active: AtomicBool,
}

impl FarmHealth {
    /// The health part of farm `name` with `servers`, their records found
    /// (or made) in `registry`.
    pub fn new(
        name: Arc<str>,
        spec: HealthSpec,
        servers: &[Server],
        registry: &HealthRegistry,
    ) -> Self {
        let members: Vec<_> = servers
            .iter()
            .map(|s| registry.get_or_create(&s.state))
            .collect();
        let floor_active = members.iter().any(|s| s.state.is_forced());
        FarmHealth {
            name,
            check: spec.check,
            live: spec.live,
            min_servers: spec.min_servers,
            slow_start: spec.slow_start,
            members,
            floor_active: AtomicBool::new(floor_active),
        }
    }

    /// Server `index` is a member that joined the running farm (a new
    /// address of a DNS-named server). With an active health check it
    /// takes no traffic until `healthy_threshold` probes pass (then slow
    /// start, if set); without one its slow start begins now.
    pub fn joined(&self, index: usize) {
        let member = &self.members[index];
        if self.check.is_none() {
            member.state.begin_ramp(self.slow_start);
            return;
        }
        let mut rec = member.lock();
        if rec.reason.is_none() && member.state.set_healthy(false) {
            rec.changed_at = Some(std::time::SystemTime::now());
            rec.changed_ms = super::now_ms();
            rec.reason = Some(super::outcome::Reason::Joined);
            tracing::info!(farm = %member.state.key.farm, server = %member.state.key.server,
                "new address of a host name: in rotation once its health checks pass");
        }
    }

    /// A farm with no health settings (tests, benches).
    pub fn none(name: &str, servers: &[Server]) -> Self {
        let spec = HealthSpec {
            min_servers: 0,
            ..HealthSpec::default()
        };
        FarmHealth::new(name.into(), spec, servers, &HealthRegistry::default())
    }

    /// The health record of the farm's server `index`.
    #[inline]
    pub fn server(&self, index: usize) -> &Arc<ServerHealth> {
        &self.members[index]
    }

    /// Accounts for one attempt to server `index`: the single place where
    /// live traffic feeds the server's counters, its latency and the farm's
    /// live-traffic checks.
    #[inline]
    pub fn record(&self, index: usize, attempt: Attempt) {
        self.record_at(index, attempt, std::time::Instant::now());
    }

    /// [`record`](Self::record) at `now`, a clock read the caller made
    /// already.
    pub fn record_at(&self, index: usize, attempt: Attempt, now: std::time::Instant) {
        let member = &self.members[index];
        member.state.record_attempt_at(attempt, now);
        let failed = match attempt {
            Attempt::Response { status, .. } => self
                .live
                .as_ref()
                .is_some_and(|l| l.failure_codes.contains(status)),
            Attempt::Failed { .. } => true,
        };
        member.observe_live(failed, self);
    }
}
