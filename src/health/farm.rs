//! The health part of a compiled farm: its settings and the states of its
//! servers, so that a change seen on the request path (a live-traffic
//! ejection) can re-evaluate the farm's minimum-servers floor at once.

use super::spec::{HealthCheck, HealthSpec, LiveTraffic};
use crate::farm::{Server, ServerState};
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
    pub(crate) members: Vec<Arc<ServerState>>,
    /// The floor holds every enabled server in rotation.
    pub(crate) floor_active: AtomicBool,
}

impl FarmHealth {
    pub fn new(name: Arc<str>, spec: HealthSpec, servers: &[Server]) -> Self {
        let members: Vec<_> = servers.iter().map(|s| s.state.clone()).collect();
        let floor_active = members.iter().any(|s| s.is_forced());
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

    /// A farm with no health settings (tests, benches).
    pub fn none(name: &str, servers: &[Server]) -> Self {
        let spec = HealthSpec {
            min_servers: 0,
            ..HealthSpec::default()
        };
        FarmHealth::new(name.into(), spec, servers)
    }
}
