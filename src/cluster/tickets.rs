//! TLS session ticket keys shared by the tier, so a client whose ticket
//! came from one instance resumes on any other.
//!
//! The keys are the list `farmgate:{name}:tickets`, newest first, the
//! last [`KEEP`] kept: every instance seals with the newest and opens with
//! any (`tls::tickets`). Once the newest is older than `ticket_rotation`,
//! one instance makes the next: whoever takes the lock
//! `farmgate:{name}:tickets:lock` (`SET NX PX`) first. The secrets sit in
//! Redis: protect it as the TLS keys it guards (a password, `rediss://`,
//! a private network).

use super::connection::Redis;
use super::Tier;
use crate::gateway::Gateway;
use crate::ground::hex::{hex, unhex};
use crate::metrics::reload::unix_ms;
use crate::tls::tickets::{TicketKey, NAME_LEN, SECRET_LEN};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Keys kept: the newest seals, the older ones still open tickets.
pub const KEEP: usize = 3;

/// How long the rotation lock is held (it is never released early: no
/// other instance rotates again within it).
const LOCK: Duration = Duration::from_secs(10);

/// One key as stored in Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    created_ms: u64,
    name: String,
    secret: String,
}

impl StoredKey {
    fn fresh() -> Option<StoredKey> {
        let mut name = [0u8; NAME_LEN];
        let mut secret = [0u8; SECRET_LEN];
        aws_lc_rs::rand::fill(&mut name).ok()?;
        aws_lc_rs::rand::fill(&mut secret).ok()?;
        Some(StoredKey {
            created_ms: unix_ms(),
            name: hex(&name),
            secret: hex(&secret),
        })
    }

    fn key(&self) -> Option<TicketKey> {
        let name: [u8; NAME_LEN] = unhex(&self.name)?.try_into().ok()?;
        let secret: [u8; SECRET_LEN] = unhex(&self.secret)?.try_into().ok()?;
        TicketKey::new(name, &secret)
    }
}

/// Reads the tier's keys, rotates them when due and this instance gets
/// the lock, and installs them for the TLS listeners.
pub async fn sync(gw: &Gateway, tier: &Tier, redis: &Redis) {
    let installed = &gw.tls.tier_tickets;
    if !redis.spec.share_tickets {
        if !installed.is_empty() {
            installed.install(Vec::new(), 0);
        }
        return;
    }
    let rotation = redis.spec.ticket_rotation;
    let Some(mut keys) = read(redis).await else {
        return;
    };
    let due = keys
        .first()
        .is_none_or(|k| k.created_ms + rotation.as_millis() as u64 <= unix_ms());
    if due && rotate(tier, redis).await {
        match read(redis).await {
            Some(k) => keys = k,
            None => return,
        }
    }
    let names: Vec<String> = installed.names().iter().map(|n| hex(n)).collect();
    let fresh: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    if names != fresh {
        let usable: Vec<TicketKey> = keys.iter().filter_map(StoredKey::key).collect();
        let lifetime = (rotation * 2).as_secs().clamp(60, 7 * 86_400) as u32;
        tracing::info!(
            "cluster: TLS session ticket keys from the tier: {} (newest {})",
            usable.len(),
            fresh.first().map_or("none", |n| &n[..8])
        );
        installed.install(usable, lifetime);
    }
}

async fn read(redis: &Redis) -> Option<Vec<StoredKey>> {
    let key = redis.spec.key("tickets");
    let list: Vec<String> = redis
        .run("tickets", |mut c| async move {
            c.lrange(&key, 0, KEEP as isize - 1).await
        })
        .await
        .ok()?;
    Some(
        list.iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect(),
    )
}

/// Makes the next key if this instance takes the lock and it is still
/// due; true when the list may have changed.
async fn rotate(tier: &Tier, redis: &Redis) -> bool {
    let Some(next) = StoredKey::fresh() else {
        return false;
    };
    let Ok(json) = serde_json::to_string(&next) else {
        return false;
    };
    let key = redis.spec.key("tickets");
    let lock = redis.spec.key("tickets:lock");
    let me = tier.instance().to_string();
    let rotation = redis.spec.ticket_rotation.as_millis() as u64;
    let result = redis
        .run("tickets", |mut c| async move {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg(&me)
                .arg("NX")
                .arg("PX")
                .arg(LOCK.as_millis() as u64)
                .query_async(&mut c)
                .await?;
            if taken.is_none() {
                return Ok(false);
            }
            // Another instance may have rotated between our read and the lock.
            let newest: Option<String> = c.lindex(&key, 0).await?;
            let still_due = newest
                .and_then(|t| serde_json::from_str::<StoredKey>(&t).ok())
                .is_none_or(|k| k.created_ms + rotation <= unix_ms());
            if !still_due {
                return Ok(true);
            }
            redis::pipe()
                .atomic()
                .lpush(&key, &json)
                .ignore()
                .ltrim(&key, 0, KEEP as isize - 1)
                .ignore()
                .query_async::<()>(&mut c)
                .await?;
            Ok(true)
        })
        .await;
    matches!(result, Ok(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_round_trip() {
        let k = StoredKey::fresh().expect("random");
        assert_eq!(k.name.len(), NAME_LEN * 2);
        assert!(k.key().is_some());
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
