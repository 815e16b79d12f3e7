//! Operator state for the tier: drain, disable and enable issued on any
//! instance hold on every instance.
//!
//! The record is one Redis hash, `farmgate:{name}:admin`, a field per
//! server (`farm/server`) holding `{farm, server, state, by, at}`. A
//! change is written there and announced on `farmgate:{name}:events`;
//! every instance re-reads the hash on the announcement and once per
//! heartbeat interval besides (the safety net for a missed message), and
//! before it serves at all (`cluster::join`).
//!
//! While Redis is unreachable a change holds on the instance it was made
//! on (`admin_source: local`) and waits in [`Book::pending`]; when Redis
//! answers again it is written unless the tier has a newer one for that
//! server (the newer `at` wins). A Redis that restarted empty gets the
//! records back from the instances that knew them.

use super::connection::Redis;
use super::Tier;
use crate::farm::{AdminSource, AdminState};
use crate::gateway::Gateway;
use crate::metrics::reload::unix_ms;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// One server's operator state as the tier records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub farm: String,
    pub server: String,
    /// `enabled`, `draining` or `disabled`.
    pub state: String,
    /// The instance it was set on.
    pub by: String,
    /// When, Unix ms (the newer wins).
    pub at: u64,
}

impl Record {
    fn field(&self) -> String {
        field(&self.farm, &self.server)
    }
}

fn field(farm: &str, server: &str) -> String {
    format!("{farm}/{server}")
}

/// What this instance holds of the tier's record.
#[derive(Debug, Default)]
pub struct Book {
    /// Changes made here that Redis has not taken yet.
    pending: Mutex<BTreeMap<String, Record>>,
    /// The tier's record as last read.
    known: Mutex<BTreeMap<String, Record>>,
}

impl Book {
    /// The tier's record as last read, with this instance's unsent changes.
    pub fn records(&self) -> (Vec<Record>, Vec<Record>) {
        let known = lock(&self.known).values().cloned().collect();
        let pending = lock(&self.pending).values().cloned().collect();
        (known, pending)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// After the admin API changed a server here: records the change for the
/// tier (a no-op without `cluster:`). Waits at most for the Redis timeout;
/// on success the server's state shows as the tier's.
pub async fn publish(gw: &Gateway, farm: &str, server: &str, to: AdminState) {
    let snap = gw.snapshot();
    let Some(spec) = snap.cluster.clone() else {
        return;
    };
    let tier = Tier::of(gw);
    let redis = tier.redis_for(&spec);
    let record = Record {
        farm: farm.to_string(),
        server: server.to_string(),
        state: to.as_str().to_string(),
        by: tier.instance().to_string(),
        at: unix_ms(),
    };
    lock(&tier.book.pending).insert(record.field(), record);
    flush(&tier, &redis).await;
    if !lock(&tier.book.pending).contains_key(&field(farm, server)) {
        if let Some(s) = snap
            .farm_index(farm)
            .and_then(|i| snap.farms[i].server_by_name(server))
        {
            s.1.state.set_admin_source(AdminSource::Tier);
        }
    } else {
        tracing::warn!(farm, server, "cluster: Redis did not take the change; it holds on this instance and goes to the tier when Redis answers");
    }
}

/// Writes the pending changes the tier has nothing newer for, announcing
/// each. A change older than the tier's is dropped: the tier's applies.
async fn flush(tier: &Tier, redis: &Redis) {
    let pending: Vec<Record> = lock(&tier.book.pending).values().cloned().collect();
    let key = redis.spec.key("admin");
    let channel = redis.spec.key("events");
    for record in pending {
        let f = record.field();
        let json = match serde_json::to_string(&record) {
            Ok(j) => j,
            Err(_) => continue,
        };
        let (key, channel, f2) = (key.clone(), channel.clone(), f.clone());
        let at = record.at;
        let written = redis
            .run("admin_write", |mut c| async move {
                let current: Option<String> = c.hget(&key, &f2).await?;
                let newer = current
                    .and_then(|t| serde_json::from_str::<Record>(&t).ok())
                    .is_some_and(|r| r.at > at);
                if newer {
                    return Ok(false);
                }
                redis::pipe()
                    .atomic()
                    .hset(&key, &f2, &json)
                    .ignore()
                    .publish(&channel, &f2)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await?;
                Ok(true)
            })
            .await;
        if written.is_ok() {
            let mut pending = lock(&tier.book.pending);
            if pending.get(&f) == Some(&record) {
                pending.remove(&f);
            }
        }
        if let Ok(true) = written {
            lock(&tier.book.known).insert(f, record);
        }
    }
}

/// Brings this instance in line with the tier: sends pending changes,
/// reads the record, restores what an emptied Redis lost, and applies every
/// record that differs from a server's state here.
pub async fn sync(gw: &Gateway, tier: &Tier, redis: &Redis) {
    flush(tier, redis).await;
    let key = redis.spec.key("admin");
    let k = key.clone();
    let Ok(all) = redis
        .run("admin_read", |mut c| async move {
            c.hgetall::<_, HashMap<String, String>>(&k).await
        })
        .await
    else {
        return;
    };
    let mut records: BTreeMap<String, Record> = all
        .into_iter()
        .filter_map(|(f, text)| match serde_json::from_str::<Record>(&text) {
            Ok(r) => Some((f, r)),
            Err(e) => {
                tracing::debug!("cluster: unreadable admin record {f:?}: {e}");
                None
            }
        })
        .collect();
    let lost: Vec<Record> = lock(&tier.book.known)
        .iter()
        .filter(|(f, _)| !records.contains_key(*f))
        .map(|(_, r)| r.clone())
        .collect();
    for record in lost {
        let Ok(json) = serde_json::to_string(&record) else {
            continue;
        };
        let (k, f) = (key.clone(), record.field());
        let restored = redis
            .run("admin_write", |mut c| async move {
                c.hset_nx::<_, _, _, bool>(&k, &f, &json).await
            })
            .await;
        if restored.is_ok() {
            records.insert(record.field(), record);
        }
    }
    apply(gw, tier, &records);
    *lock(&tier.book.known) = records;
    tier.stats.synced(unix_ms());
}

/// Sets every server whose tier record differs from its state here.
fn apply(gw: &Gateway, tier: &Tier, records: &BTreeMap<String, Record>) {
    let snap = gw.snapshot();
    let pending = lock(&tier.book.pending).clone();
    for (f, record) in records {
        if pending.get(f).is_some_and(|p| p.at >= record.at) {
            continue;
        }
        let Some(to) = AdminState::parse(&record.state) else {
            continue;
        };
        let Some(farm) = snap.farm_index(&record.farm).map(|i| &snap.farms[i]) else {
            continue;
        };
        let Some((index, server)) = farm.server_by_name(&record.server) else {
            continue;
        };
        let st = &server.state;
        if st.admin() == to && st.admin_source() == AdminSource::Tier {
            continue;
        }
        let how = if record.by == *tier.instance() {
            "through the admin API (tier)".to_string()
        } else {
            format!("by the tier (on {})", record.by)
        };
        if farm.set_admin(index, to, AdminSource::Tier, &how) {
            tier.stats.applied.fetch_add(1, Ordering::Relaxed);
            let lag = unix_ms().saturating_sub(record.at);
            tier.stats.sync_lag_ms.store(lag, Ordering::Relaxed);
        }
    }
}
