//! One view of the tier. Every heartbeat interval each instance writes
//! `farmgate:{name}:instance:{id}` with a TTL of three intervals (id,
//! version, config hash, uptime, request rate, each server's state and
//! rate) and adds its id to the set `farmgate:{name}:instances`; then it
//! reads every live instance back into [`View`], which `GET /api/cluster`,
//! the status page and the metrics show. An instance whose key expired is
//! gone (and taken out of the set); one whose config hash differs from
//! this one's is flagged: config drift.

use super::connection::Redis;
use super::Tier;
use crate::gateway::Gateway;
use crate::metrics::reload::unix_ms;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one instance publishes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Beat {
    pub id: String,
    pub version: String,
    /// `config::cluster::tier_hash` of its running config.
    pub config_hash: String,
    pub started_at_ms: u64,
    /// When this heartbeat was written, Unix ms.
    pub at_ms: u64,
    pub uptime_seconds: f64,
    /// Requests sent to servers per second over the last interval.
    pub requests_per_second: f64,
    pub servers: Vec<BeatServer>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BeatServer {
    pub farm: String,
    pub server: String,
    /// healthy, unhealthy, draining or disabled.
    pub state: String,
    /// local or tier.
    pub admin_source: String,
    pub requests_per_second: f64,
}

/// The live instances as last read.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub instances: Vec<Beat>,
    /// Unix ms of the read; 0 before the first.
    pub read_at_ms: u64,
}

/// Requests sent per (farm, server), as counted at a moment.
type Counts = HashMap<(String, String), u64>;

/// Request counters at the previous heartbeat, for rates.
#[derive(Debug, Default)]
pub struct Rates {
    last: Mutex<Option<(Instant, Counts)>>,
}

fn instance_key(redis: &Redis, id: &str) -> String {
    redis.spec.key(&format!("instance:{id}"))
}

/// Builds this instance's heartbeat from the current snapshot.
pub fn this_beat(gw: &Gateway, tier: &Tier) -> Beat {
    let snap = gw.snapshot();
    let now = Instant::now();
    let mut counts = HashMap::new();
    let mut last = tier.rates.last.lock().unwrap_or_else(|p| p.into_inner());
    let elapsed = last
        .as_ref()
        .map_or(Duration::ZERO, |(at, _)| now.duration_since(*at))
        .as_secs_f64();
    let rate = |key: &(String, String), n: u64| match last.as_ref() {
        Some((_, prev)) if elapsed > 0.0 => {
            n.saturating_sub(prev.get(key).copied().unwrap_or(n)) as f64 / elapsed
        }
        _ => 0.0,
    };
    let mut servers = Vec::new();
    let mut total = 0.0;
    for farm in &snap.farms {
        for s in farm.servers.iter() {
            let key = (farm.name.to_string(), s.name.to_string());
            let n = s.state.requests.load(Ordering::Relaxed);
            let rps = rate(&key, n);
            total += rps;
            servers.push(BeatServer {
                farm: key.0.clone(),
                server: key.1.clone(),
                state: s.state.state_name().to_string(),
                admin_source: s.state.admin_source().as_str().to_string(),
                requests_per_second: round2(rps),
            });
            counts.insert(key, n);
        }
    }
    *last = Some((now, counts));
    let started_at_ms = tier
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let at_ms = unix_ms();
    Beat {
        id: tier.instance().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash: snap.tier_hash.clone(),
        started_at_ms,
        at_ms,
        uptime_seconds: round2(at_ms.saturating_sub(started_at_ms) as f64 / 1000.0),
        requests_per_second: round2(total),
        servers,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Writes this instance's heartbeat.
pub async fn beat(gw: &Gateway, tier: &Tier, redis: &Redis) {
    let beat = this_beat(gw, tier);
    let Ok(json) = serde_json::to_string(&beat) else {
        return;
    };
    let key = instance_key(redis, &beat.id);
    let set = redis.spec.key("instances");
    let ttl = (redis.spec.heartbeat_interval * 3).max(Duration::from_secs(3));
    let _ = redis
        .run("heartbeat", |mut c| async move {
            redis::pipe()
                .set_ex(&key, &json, ttl.as_secs())
                .ignore()
                .sadd(&set, &beat.id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await;
}

/// Reads every live instance into the tier's view.
pub async fn read_view(gw: &Gateway, tier: &Tier, redis: &Redis) {
    let set = redis.spec.key("instances");
    let prefix = redis.spec.key("instance:");
    let read = redis
        .run("view", |mut c| async move {
            let ids: Vec<String> = c.smembers(&set).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|id| format!("{prefix}{id}")).collect();
            let beats: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
            let gone: Vec<&String> = ids
                .iter()
                .zip(&beats)
                .filter(|(_, b)| b.is_none())
                .map(|(id, _)| id)
                .collect();
            if !gone.is_empty() {
                c.srem::<_, _, ()>(&set, gone).await?;
            }
            Ok(beats)
        })
        .await;
    let Ok(beats) = read else { return };
    let mut instances: Vec<Beat> = beats
        .into_iter()
        .flatten()
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    let ours = gw.snapshot().tier_hash.clone();
    tier.stats
        .instances
        .store(instances.len() as u64, Ordering::Relaxed);
    tier.stats.drifted.store(
        instances.iter().filter(|b| b.config_hash != ours).count() as u64,
        Ordering::Relaxed,
    );
    let now = unix_ms();
    {
        let mut seen = tier.seen.lock().unwrap_or_else(|p| p.into_inner());
        for b in &instances {
            seen.insert(b.id.clone(), now);
        }
    }
    tier.view.store(std::sync::Arc::new(View {
        instances,
        read_at_ms: now,
    }));
}

/// Takes this instance out of the tier (a clean shutdown).
pub async fn remove(tier: &Tier, redis: &Redis) {
    let id = tier.instance().to_string();
    let key = instance_key(redis, &id);
    let set = redis.spec.key("instances");
    let _ = redis
        .run("heartbeat", |mut c| async move {
            redis::pipe()
                .del(&key)
                .ignore()
                .srem(&set, &id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await;
}
