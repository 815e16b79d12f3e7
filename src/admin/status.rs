//! `GET /api/status`: the whole farm as JSON, for scripts and the status
//! page. Built from the current snapshot and the long-lived server state at
//! request time. Field meanings are documented in docs/observability.md.

use crate::cache::CacheResult;
use crate::config::FarmRuntime;
use crate::farm::Server;
use crate::gateway::Gateway;
use crate::health::HealthView;
use crate::health::ServerHealth;
use crate::log::access::rfc3339;
use crate::metrics::server::StateChange;
use crate::metrics::FailureReason;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub started_at: String,
    pub uptime_seconds: f64,
    pub shutting_down: bool,
    /// State-changing endpoints need `Authorization: Bearer <token>`.
    pub token_required: bool,
    pub config: ConfigStatus,
    pub listeners: Vec<ListenerStatus>,
    pub farms: Vec<FarmStatus>,
    /// The host names of DNS-named servers: their last answer, lookups and
    /// failures (empty when every server is an IP address).
    pub names: Vec<crate::farm::resolve::NameView>,
}

#[derive(Debug, Serialize)]
pub struct ConfigStatus {
    pub file: String,
    pub reloads_succeeded: u64,
    pub reloads_failed: u64,
    /// When the running config loaded (start-up or reload).
    pub last_reload_success: String,
    /// The latest reload attempt (ok, trigger, message); null before one.
    pub last_reload: Option<crate::reload::ReloadEvent>,
}

#[derive(Debug, Serialize)]
pub struct ListenerStatus {
    pub name: String,
    pub connections_active: u64,
    pub connections_total: u64,
    pub requests: u64,
    /// TLS handshake counters; null on a plain-HTTP listener.
    pub tls: Option<TlsStatus>,
}

#[derive(Debug, Serialize)]
pub struct TlsStatus {
    pub handshakes: u64,
    pub resumed_handshakes: u64,
    pub handshake_failures: u64,
    /// The ACME certificate (`tls.acme`): domains, expiry, last renewal
    /// attempt and result; null without `acme`.
    pub acme: Option<crate::tls::acme::AcmeStatus>,
}

#[derive(Debug, Serialize)]
pub struct FarmStatus {
    pub name: String,
    pub algorithm: String,
    /// The health check URL; null when the farm has no `health_check`.
    pub health_check: Option<String>,
    pub servers_total: usize,
    /// Servers taking new requests.
    pub servers_up: usize,
    pub min_servers: MinServers,
    /// Null when the farm has no cache.
    pub cache: Option<CacheStatus>,
    pub servers: Vec<ServerStatus>,
}

#[derive(Debug, Serialize)]
pub struct MinServers {
    /// The configured floor; null when the farm has none.
    pub configured: Option<u32>,
    /// The floor is keeping unhealthy servers in rotation right now.
    pub active: bool,
}

#[derive(Debug, Serialize)]
pub struct CacheStatus {
    /// Requests by result: hit, miss, stale, bypass, consolidated, revalidated.
    pub requests: BTreeMap<&'static str, u64>,
    pub size_bytes: u64,
    pub entries: u64,
}

#[derive(Debug, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub address: String,
    /// For a member of a server addressed by host name: that server, the
    /// name, and the address of the name this member connects to.
    pub resolved: Option<Resolved>,
    pub weight: u32,
    /// healthy, unhealthy, draining or disabled.
    pub state: &'static str,
    /// Why and when the state last changed (the newer of the last health
    /// change and the last admin action); null until it first changes.
    pub state_reason: Option<String>,
    pub state_changed_at: Option<String>,
    /// Takes new requests (enabled and healthy, or kept by min_servers).
    pub in_rotation: bool,
    /// What the operator set: enabled, draining or disabled.
    pub admin: &'static str,
    /// Where `admin` was decided: `local` (this instance only) or `tier`
    /// (held by every instance of the `cluster:`).
    pub admin_source: &'static str,
    pub healthy: bool,
    /// Kept in rotation by the farm's min_servers floor although unhealthy.
    pub forced: bool,
    pub in_flight: u64,
    /// Attempts sent to the server (a retried request counts on each server).
    pub requests: u64,
    /// Responses received, and by class ("2xx", "5xx", ...).
    pub responses: u64,
    pub responses_by_class: BTreeMap<String, u64>,
    /// Failed attempts: connect, timeout, status (5xx) and reset.
    pub failures: u64,
    pub failures_by_reason: BTreeMap<&'static str, u64>,
    pub response_ms: ResponseTimes,
    /// Request body bytes sent to the server.
    pub bytes_sent: u64,
    /// Response body bytes received from it.
    pub bytes_received: u64,
    /// Active health checks by result: `pass`, or why one failed.
    pub checks: BTreeMap<&'static str, u64>,
    /// The last active health check; null before the first one.
    pub last_check: Option<LastCheck>,
    /// Everything health knows: probation, slow start, consecutive counts.
    pub health: HealthView,
}

#[derive(Debug, Serialize)]
pub struct Resolved {
    /// The server as configured (its name, or its address).
    pub server: String,
    pub host: String,
    /// One address `host` resolved to; null while it has not resolved.
    pub address: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ResponseTimes {
    /// Time to response headers since start, in milliseconds; null before
    /// the first response.
    pub avg: Option<f64>,
    pub p99: Option<f64>,
    /// Responses timed and their total time, so a client can compute the
    /// average over any interval from two readings.
    pub count: u64,
    pub total: f64,
}

#[derive(Debug, Serialize)]
pub struct LastCheck {
    pub ok: bool,
    pub at: String,
    /// `pass`, or why it failed (`status`, `timeout`, `refused`, ...).
    pub result: &'static str,
    /// What was seen, e.g. "status 503" or "refused".
    pub detail: String,
    pub status: Option<u16>,
    pub latency_ms: f64,
}

/// The status of everything the current snapshot serves.
pub fn status(gw: &Gateway) -> Status {
    let snap = gw.snapshot();
    let m = &gw.metrics;
    Status {
        version: env!("CARGO_PKG_VERSION"),
        started_at: rfc3339(m.started_at),
        uptime_seconds: round3(m.uptime().as_secs_f64()),
        shutting_down: gw.is_shutting_down(),
        token_required: snap.admin.token.is_some(),
        config: ConfigStatus {
            file: snap.file.clone(),
            reloads_succeeded: gw.reloads.successes.load(Ordering::Relaxed),
            reloads_failed: gw.reloads.failures.load(Ordering::Relaxed),
            last_reload_success: rfc3339(
                UNIX_EPOCH
                    + Duration::from_millis(gw.reloads.last_success_ms.load(Ordering::Relaxed)),
            ),
            last_reload: gw.reloads.last(),
        },
        listeners: m
            .listeners()
            .iter()
            .filter(|l| snap.listeners.iter().any(|s| s.name == l.name))
            .map(|l| ListenerStatus {
                name: l.name.to_string(),
                connections_active: l.connections_active(),
                connections_total: l.connections_total.load(Ordering::Relaxed),
                requests: l.codes.total(),
                tls: gw.tls.get(&l.name).map(|t| TlsStatus {
                    handshakes: t.stats.handshakes(),
                    resumed_handshakes: t.stats.resumed_handshakes(),
                    handshake_failures: t.stats.handshake_failures(),
                    acme: crate::tls::acme::statuses()
                        .snapshot()
                        .into_iter()
                        .find(|a| *a.listener == *l.name),
                }),
            })
            .collect(),
        farms: snap.farms.iter().map(farm_status).collect(),
        names: gw
            .registry
            .attached::<crate::farm::resolve::NameRegistry>()
            .all()
            .iter()
            .map(|n| n.view())
            .collect(),
    }
}

pub fn farm_status(f: &FarmRuntime) -> FarmStatus {
    FarmStatus {
        name: f.name.to_string(),
        algorithm: f.algorithm.clone(),
        health_check: f.health.check.as_ref().map(|c| c.url.to_string()),
        servers_total: f.servers.len(),
        servers_up: f.servers.iter().filter(|s| s.state.in_rotation()).count(),
        min_servers: MinServers {
            configured: (f.health.min_servers > 0).then_some(f.health.min_servers),
            active: f.health.floor_active(),
        },
        cache: f.cache.as_ref().map(|c| CacheStatus {
            requests: CacheResult::ALL
                .into_iter()
                .map(|r| (r.as_str(), c.store.stats.get(r)))
                .collect(),
            size_bytes: c.store.size_bytes(),
            entries: c.store.entries(),
        }),
        servers: f
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| server_status(s, f.health.server(i)))
            .collect(),
    }
}

pub fn server_status(s: &Server, h: &ServerHealth) -> ServerStatus {
    let st = &s.state;
    let stats = &st.stats;
    let health = h.health_view();
    let (state_reason, state_changed_at) = last_change(stats.last_change(), &health);
    let latency = stats.latency.snapshot();
    let mut by_class = BTreeMap::new();
    for (code, n) in stats.codes.iter() {
        *by_class.entry(format!("{}xx", code / 100)).or_insert(0) += n;
    }
    ServerStatus {
        name: s.name.to_string(),
        address: s.address.to_string(),
        resolved: s.dns.as_ref().map(|d| Resolved {
            server: d.parent.to_string(),
            host: d.name.host.to_string(),
            address: s.connect_to().map(|a| a.to_string()),
        }),
        weight: s.weight,
        state: st.state_name(),
        state_reason,
        state_changed_at,
        in_rotation: st.in_rotation(),
        admin: st.admin().as_str(),
        admin_source: st.admin_source().as_str(),
        healthy: st.is_healthy(),
        forced: st.is_forced(),
        in_flight: st.in_flight(),
        requests: st.requests.load(Ordering::Relaxed),
        responses: by_class.values().sum(),
        responses_by_class: by_class,
        failures: st.failures.load(Ordering::Relaxed),
        failures_by_reason: FailureReason::ALL
            .into_iter()
            .map(|r| (r.as_str(), stats.failures(r)))
            .collect(),
        response_ms: ResponseTimes {
            avg: latency.mean_ms().map(round3),
            p99: latency.quantile_ms(0.99).map(round3),
            count: latency.count(),
            total: round3(latency.sum_us as f64 / 1000.0),
        },
        bytes_sent: st.bytes_sent.load(Ordering::Relaxed),
        bytes_received: st.bytes_received.load(Ordering::Relaxed),
        checks: h.counters.checks_by_result().collect(),
        last_check: health.last_check.as_ref().map(|c| LastCheck {
            ok: c.result == "pass",
            at: rfc3339(UNIX_EPOCH + Duration::from_millis(c.unix_ms)),
            result: c.result,
            detail: c.reason.clone(),
            status: c.status,
            latency_ms: round3(c.latency_ms),
        }),
        health,
    }
}

/// The newer of the last admin action and the last health change.
fn last_change(
    admin: Option<StateChange>,
    health: &HealthView,
) -> (Option<String>, Option<String>) {
    let health_at = health
        .changed_unix_ms
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    match (admin, health_at) {
        (Some(a), Some(h)) if h > a.at => (health.reason.clone(), Some(rfc3339(h))),
        (Some(a), _) => (Some(a.reason), Some(rfc3339(a.at))),
        (None, Some(h)) => (health.reason.clone(), Some(rfc3339(h))),
        (None, None) => (None, None),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
