//! `GET /api/cluster`: the tier as this instance sees it (every live
//! instance from its heartbeat, config drift, the tier's operator record,
//! Redis and its breaker), and the `farmgate_cluster_*` metrics. Both read
//! what the cluster tasks keep; neither touches Redis.

use super::collect::{counters, gauge};
use super::response::{json, AdminResponse};
use crate::cluster::operator::Record;
use crate::cluster::Tier;
use crate::gateway::Gateway;
use crate::log::access::rfc3339;
use crate::metrics::names::*;
use crate::metrics::reload::unix_ms;
use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::Serialize;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// False without a `cluster:` section; nothing else is filled then.
    pub enabled: bool,
    pub name: Option<String>,
    /// This instance's id.
    pub instance: Option<String>,
    /// This instance's config hash (`docs/cluster.md`: what it covers).
    pub config_hash: String,
    pub redis: Option<RedisView>,
    /// Seconds since the tier's operator state was last read; null before.
    pub last_sync_age_seconds: Option<f64>,
    pub instances: Vec<InstanceView>,
    /// The tier's operator record as last read.
    pub operator_state: Vec<Record>,
    /// Changes made here that Redis has not taken yet.
    pub pending: Vec<Record>,
    /// TLS session ticket keys from the tier in use.
    pub ticket_keys: usize,
}

#[derive(Debug, Serialize)]
pub struct RedisView {
    pub urls: Vec<String>,
    /// The breaker is closed: Redis answers.
    pub up: bool,
    pub operations_failed: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct InstanceView {
    pub id: String,
    /// This is the instance answering.
    pub this: bool,
    pub version: String,
    pub config_hash: String,
    /// Its config hash differs from this instance's.
    pub drift: bool,
    pub started_at: String,
    pub uptime_seconds: f64,
    pub last_seen: String,
    pub last_seen_seconds_ago: f64,
    pub requests_per_second: f64,
    pub servers: Vec<crate::cluster::heartbeat::BeatServer>,
}

/// The view, built from what the cluster tasks last read.
pub fn cluster_view(gw: &Gateway) -> ClusterView {
    let snap = gw.snapshot();
    let tier = Tier::of(gw);
    let Some(spec) = &snap.cluster else {
        return ClusterView {
            enabled: false,
            name: None,
            instance: None,
            config_hash: snap.tier_hash.clone(),
            redis: None,
            last_sync_age_seconds: None,
            instances: Vec::new(),
            operator_state: Vec::new(),
            pending: Vec::new(),
            ticket_keys: 0,
        };
    };
    let now = unix_ms();
    let me = tier.instance();
    let time = |ms: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(ms));
    let instances = tier
        .view
        .load()
        .instances
        .iter()
        .map(|b| InstanceView {
            this: b.id == *me,
            drift: b.config_hash != snap.tier_hash,
            started_at: time(b.started_at_ms),
            last_seen: time(b.at_ms),
            last_seen_seconds_ago: now.saturating_sub(b.at_ms) as f64 / 1000.0,
            id: b.id.clone(),
            version: b.version.clone(),
            config_hash: b.config_hash.clone(),
            uptime_seconds: b.uptime_seconds,
            requests_per_second: b.requests_per_second,
            servers: b.servers.clone(),
        })
        .collect();
    let (operator_state, pending) = tier.book.records();
    let last = tier.stats.last_sync_ms.load(Ordering::Relaxed);
    ClusterView {
        enabled: true,
        name: Some(spec.name.clone()),
        instance: Some(me.to_string()),
        config_hash: snap.tier_hash.clone(),
        redis: tier.redis().map(|r| RedisView {
            urls: r.urls(),
            up: r.is_up(),
            operations_failed: tier.stats.failures(),
        }),
        last_sync_age_seconds: (last > 0).then(|| now.saturating_sub(last) as f64 / 1000.0),
        instances,
        operator_state,
        pending,
        ticket_keys: gw.tls.tier_tickets.len(),
    }
}

/// `GET /api/cluster`.
pub fn view(gw: &Gateway) -> AdminResponse {
    json(StatusCode::OK, &cluster_view(gw))
}

// === impl ClusterCollector ===

/// `farmgate_cluster_*`, present while `cluster:` is configured.
#[derive(Debug)]
pub struct ClusterCollector(pub Weak<Gateway>);

impl Collector for ClusterCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let Some(gw) = self.0.upgrade() else {
            return Ok(());
        };
        if gw.snapshot().cluster.is_none() {
            return Ok(());
        }
        let tier = Tier::of(&gw);
        let s = &tier.stats;
        let up = tier.redis().is_some_and(|r| r.is_up());
        gauge(
            &mut enc,
            CLUSTER_REDIS_UP,
            "1 while Redis answers (its circuit breaker is closed).",
            u64::from(up),
        )?;
        gauge(
            &mut enc,
            CLUSTER_INSTANCES,
            "Live instances in the tier, this one included.",
            s.instances.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut enc,
            CLUSTER_CONFIG_DRIFT,
            "Live instances whose config hash differs from this one's.",
            s.drifted.load(Ordering::Relaxed),
        )?;
        gauge(&mut enc, CLUSTER_SYNC_LAG, "Seconds from an operator change on another instance to it applying here (the last one).", s.sync_lag_ms.load(Ordering::Relaxed) as f64 / 1000.0)?;
        let last = s.last_sync_ms.load(Ordering::Relaxed);
        let age = if last == 0 {
            f64::NAN
        } else {
            unix_ms().saturating_sub(last) as f64 / 1000.0
        };
        gauge(
            &mut enc,
            CLUSTER_LAST_SYNC_AGE,
            "Seconds since the tier's operator state was last read.",
            age,
        )?;
        counters(
            &mut enc,
            CLUSTER_CHANGES_APPLIED,
            "Operator changes taken from the tier and applied here.",
            [(
                Vec::<(&str, &str)>::new(),
                s.applied.load(Ordering::Relaxed),
            )],
        )?;
        counters(
            &mut enc,
            CLUSTER_OPERATIONS_FAILED,
            "Redis operations that failed or were not tried (breaker open), by operation.",
            s.failures()
                .into_iter()
                .map(|(op, n)| ([("operation", op)], n)),
        )?;
        gauge(
            &mut enc,
            CLUSTER_TICKET_KEYS,
            "TLS session ticket keys from the tier in use.",
            gw.tls.tier_tickets.len() as u64,
        )
    }
}
