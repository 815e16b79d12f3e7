//! The shared cache tier on Redis: [`RedisCache`] implements the cache's
//! `SharedStore`, and [`attach`] puts it behind every farm whose cache says
//! `shared: true`.
//!
//! Keys: `farmgate:{name}:cache:{farm}:{hex of the cache key}` holding the
//! entry with a TTL of its remaining freshness and stale windows;
//! `farmgate:{name}:cache-lock:{farm}:{hex}` the short consolidation lock
//! (`SET NX PX`). A purge deletes the matching keys (`SCAN`) and announces
//! itself on the events channel, and every instance purges its own store.

use super::connection::Redis;
use super::Tier;
use crate::cache::shared::{SharedFuture, SharedStore, SharedTier, TierLock};
use crate::gateway::Gateway;
use crate::ground::hex::{hex, unhex};
use bytes::Bytes;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The start of a purge announcement on the events channel (the other
/// messages there are `farm/server` names).
pub const PURGE: &str = "\u{0}purge ";

/// A purge as announced to the tier.
#[derive(Debug, Serialize, Deserialize)]
pub struct Purge {
    pub farm: String,
    /// Path prefix; None: everything.
    pub prefix: Option<String>,
    pub by: String,
}

/// The Redis-backed shared store (one per process; farms share it).
pub struct RedisCache {
    tier: Weak<Tier>,
}

impl RedisCache {
    fn redis(&self) -> Option<Arc<Redis>> {
        self.tier.upgrade()?.redis()
    }
}

fn entry_key(redis: &Redis, farm: &str, key: &[u8]) -> String {
    redis.spec.key(&format!("cache:{farm}:{}", hex(key)))
}

fn lock_key(redis: &Redis, farm: &str, key: &[u8]) -> String {
    redis.spec.key(&format!("cache-lock:{farm}:{}", hex(key)))
}

impl SharedStore for RedisCache {
    fn get<'a>(&'a self, farm: &'a str, key: &'a [u8]) -> SharedFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let redis = self.redis()?;
            let k = entry_key(&redis, farm, key);
            let v: Option<Vec<u8>> = redis
                .run("cache_get", |mut c| async move { c.get(&k).await })
                .await
                .ok()?;
            v.map(Bytes::from)
        })
    }

    fn put(&self, farm: &str, key: &[u8], value: Bytes, ttl: Duration, unlock: bool) {
        let Some(redis) = self.redis() else { return };
        let k = entry_key(&redis, farm, key);
        let lock = lock_key(&redis, farm, key);
        let ms = (ttl.as_millis() as u64).max(1);
        tokio::spawn(async move {
            let _ = redis
                .run("cache_put", |mut c| async move {
                    let mut p = redis::pipe();
                    p.cmd("SET")
                        .arg(&k)
                        .arg(&value[..])
                        .arg("PX")
                        .arg(ms)
                        .ignore();
                    if unlock {
                        p.del(&lock).ignore();
                    }
                    p.query_async::<()>(&mut c).await
                })
                .await;
        });
    }

    fn lock<'a>(
        &'a self,
        farm: &'a str,
        key: &'a [u8],
        hold: Duration,
    ) -> SharedFuture<'a, TierLock> {
        Box::pin(async move {
            let Some(redis) = self.redis() else {
                return TierLock::Unavailable;
            };
            let k = lock_key(&redis, farm, key);
            let taken = redis
                .run("cache_lock", |mut c| async move {
                    redis::cmd("SET")
                        .arg(&k)
                        .arg(1)
                        .arg("NX")
                        .arg("PX")
                        .arg(hold.as_millis() as u64)
                        .query_async::<Option<String>>(&mut c)
                        .await
                })
                .await;
            match taken {
                Ok(Some(_)) => TierLock::Acquired,
                Ok(None) => TierLock::Busy,
                Err(_) => TierLock::Unavailable,
            }
        })
    }

    fn unlock(&self, farm: &str, key: &[u8]) {
        let Some(redis) = self.redis() else { return };
        let k = lock_key(&redis, farm, key);
        tokio::spawn(async move {
            let _ = redis
                .run(
                    "cache_lock",
                    |mut c| async move { c.del::<_, ()>(&k).await },
                )
                .await;
        });
    }

    fn purge(&self, farm: &str, prefix: Option<&[u8]>) {
        let Some(tier) = self.tier.upgrade() else {
            return;
        };
        let Some(redis) = tier.redis() else { return };
        let announce = Purge {
            farm: farm.to_string(),
            prefix: prefix.map(|p| String::from_utf8_lossy(p).into_owned()),
            by: tier.instance().to_string(),
        };
        let prefix = prefix.map(<[u8]>::to_vec);
        let pattern = redis.spec.key(&format!("cache:{farm}:*"));
        let start = pattern.len() - 1;
        tokio::spawn(async move {
            if let Ok(text) = serde_json::to_string(&announce) {
                let channel = redis.spec.key("events");
                let msg = format!("{PURGE}{text}");
                let _ = redis
                    .run("cache_purge", |mut c| async move {
                        c.publish::<_, _, ()>(&channel, &msg).await
                    })
                    .await;
            }
            let mut cursor = 0u64;
            loop {
                let p = pattern.clone();
                let page = redis
                    .run("cache_purge", |mut c| async move {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&p)
                            .arg("COUNT")
                            .arg(500)
                            .query_async::<(u64, Vec<String>)>(&mut c)
                            .await
                    })
                    .await;
                let Ok((next, keys)) = page else { return };
                let doomed: Vec<String> = keys
                    .into_iter()
                    .filter(|k| {
                        let Some(p) = &prefix else { return true };
                        k.get(start..)
                            .and_then(unhex)
                            .is_some_and(|key| crate::cache::key::path_of(&key).starts_with(p))
                    })
                    .collect();
                if !doomed.is_empty() {
                    let _ = redis
                        .run("cache_purge", |mut c| async move {
                            c.del::<_, ()>(doomed).await
                        })
                        .await;
                }
                if next == 0 {
                    return;
                }
                cursor = next;
            }
        });
    }
}

/// Puts the tier's shared store behind every farm with `cache.shared`, and
/// takes it away from the others (or from all without `cluster:`).
pub fn attach(gw: &Gateway, tier: &Arc<Tier>) {
    let snap = gw.snapshot();
    let on = snap.cluster.is_some();
    for farm in &snap.farms {
        let Some(cache) = &farm.cache else { continue };
        let want = on && cache.spec.shared;
        match (want, cache.store.shared()) {
            (true, Some(t)) if *t.farm == *farm.name => {}
            (true, _) => cache.store.set_shared(Some(Arc::new(SharedTier {
                store: Arc::new(RedisCache {
                    tier: Arc::downgrade(tier),
                }),
                farm: farm.name.clone(),
            }))),
            (false, Some(_)) => cache.store.set_shared(None),
            (false, None) => {}
        }
    }
}

/// A purge another instance announced: purges this instance's store.
pub fn purged_elsewhere(gw: &Gateway, tier: &Tier, text: &str) {
    let Ok(p) = serde_json::from_str::<Purge>(text) else {
        return;
    };
    if p.by == *tier.instance() {
        return;
    }
    let snap = gw.snapshot();
    let Some(cache) = snap
        .farm_index(&p.farm)
        .and_then(|i| snap.farms[i].cache.as_ref())
    else {
        return;
    };
    let n = cache.store.purge(p.prefix.as_deref().map(str::as_bytes));
    tracing::info!(farm = %p.farm, prefix = ?p.prefix, purged = n, by = %p.by, "cache purged by the tier");
}
