//! Rate limits with `scope: cluster`: every `sync_interval` this task
//! takes each such limit's keys active in the interval (with what this
//! instance admitted of each, `limits::cluster::ClusterStore::drain`) and,
//! in one pipeline, adds each count to the key's tier-wide counter
//! `farmgate:{tier}:limit:{limit}:{key hash}` (`INCRBY`, with an expiry),
//! reading the totals back; the other instances' share since the last read
//! is then charged to the key's local bucket. Requests never wait on it.
//!
//! When the exchange fails (Redis gone, the breaker open), the limit falls
//! back to `rate / n` on each instance, n the live instances last seen,
//! logs it once and shows it in `farmgate_limit_cluster_degraded`; the
//! first exchange that works again ends it (logged too).

use super::{Redis, Tier};
use crate::gateway::Gateway;
use crate::limits::cluster::{Active, ClusterStore};
use crate::limits::{Limit, SyncSpec};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the task looks for cluster-scope limits when there are none.
const IDLE: Duration = Duration::from_millis(500);

/// Runs until the gateway is gone.
pub async fn run(gw: Weak<Gateway>, tier: Arc<Tier>) {
    let mut due: HashMap<Arc<str>, Instant> = HashMap::new();
    let mut active = Vec::new();
    loop {
        let next = {
            let Some(gw) = gw.upgrade() else { return };
            let snap = gw.snapshot();
            let now = Instant::now();
            let mut next = now + IDLE;
            for limit in snap.limits.iter() {
                let (Some(sync), Some(store)) = (limit.sync, limit.state.cluster.as_ref()) else {
                    continue;
                };
                let at = due.entry(limit.name.clone()).or_insert(now);
                if *at <= now {
                    sync_limit(&tier, limit, sync, store, &mut active).await;
                    *at = now + sync.interval;
                }
                next = next.min(*at);
            }
            due.retain(|name, _| snap.limits.index(name).is_some());
            next
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

/// One exchange of one limit's counts.
async fn sync_limit(
    tier: &Tier,
    limit: &Limit,
    sync: SyncSpec,
    store: &ClusterStore,
    active: &mut Vec<Active>,
) {
    let epoch = store.drain(active);
    let Some(redis) = tier.redis() else {
        return degrade(tier, limit, store, "no Redis connection yet");
    };
    if active.is_empty() {
        // Nothing to exchange: the breaker tells whether Redis answers.
        if redis.is_up() {
            recover(limit, store);
        } else {
            degrade(tier, limit, store, "the Redis circuit breaker is open");
        }
        return;
    }
    match exchange(&redis, limit, sync, active).await {
        Ok(totals) if totals.len() == active.len() => {
            store.stats.syncs_ok.fetch_add(1, Relaxed);
            recover(limit, store);
            store.apply(&limit.rate, epoch, active, &totals);
        }
        Ok(totals) => {
            store.stats.syncs_failed.fetch_add(1, Relaxed);
            let why = format!("{} answers for {} keys", totals.len(), active.len());
            degrade(tier, limit, store, &why);
        }
        Err(e) => {
            store.stats.syncs_failed.fetch_add(1, Relaxed);
            degrade(tier, limit, store, &e.to_string());
        }
    }
}

/// Adds this instance's counts and reads the tier's totals.
async fn exchange(
    redis: &Redis,
    limit: &Limit,
    sync: SyncSpec,
    active: &[Active],
) -> Result<Vec<u64>, super::ClusterError> {
    let keys: Vec<(String, u64)> = active
        .iter()
        .map(|a| (counter_key(redis, &limit.name, a.tag), a.admitted))
        .collect();
    let ttl_ms = counter_ttl(limit, sync).as_millis() as u64;
    redis
        .run("limits", |mut c| async move {
            let mut pipe = redis::pipe();
            for (key, admitted) in &keys {
                pipe.cmd("INCRBY").arg(key).arg(*admitted);
                pipe.cmd("PEXPIRE").arg(key).arg(ttl_ms).ignore();
            }
            pipe.query_async::<Vec<u64>>(&mut c).await
        })
        .await
}

/// `farmgate:{tier}:limit:{limit}:{key hash}`.
pub fn counter_key(redis: &Redis, limit: &str, tag: u64) -> String {
    redis.spec.key(&format!("limit:{limit}:{tag:016x}"))
}

/// How long a key's counter outlives its last exchange: while its bucket
/// may still be not full, and a few intervals at least (2s to 1h).
pub fn counter_ttl(limit: &Limit, sync: SyncSpec) -> Duration {
    let refill = limit.rate.interval() * limit.rate.burst();
    (refill + sync.interval * 4).clamp(Duration::from_secs(2), Duration::from_secs(3600))
}

fn degrade(tier: &Tier, limit: &Limit, store: &ClusterStore, why: &str) {
    let live = u32::try_from(tier.stats.instances.load(Relaxed))
        .unwrap_or(u32::MAX)
        .max(1);
    let was = store.fallback();
    store.set_fallback(Some(live));
    store.forget();
    if was.is_none() {
        tracing::warn!(
            "limit {:?}: cannot sync with the tier ({why}); each instance now allows rate/{live} \
             ({live} live instances last seen) until Redis answers",
            limit.name
        );
    }
}

fn recover(limit: &Limit, store: &ClusterStore) {
    if store.fallback().is_some() {
        store.set_fallback(None);
        tracing::info!(
            "limit {:?}: synced with the tier again; the tier shares its rate",
            limit.name
        );
    }
}
