//! ACME in tier mode on Redis: [`RedisAcme`] is the `tls::acme::AcmeTier`
//! every ACME manager uses while `cluster:` is configured.
//!
//! Keys (`farmgate:{name}:` before each):
//! - `acme:store:{key}`: the store's values (the account, certificates);
//! - `acme:lock:{domain}`: the order lock, `SET NX PX` holding
//!   `{instance} {nonce}`; renewed and released by scripts that first check
//!   the value is still theirs, so a holder whose lease ran out cannot cut
//!   short the next one's;
//! - `acme:challenges`: a hash of pending challenge answers
//!   (`http-01 {token}` or `tls-alpn-01 {domain}` to the answer and its
//!   expiry); `acme:acks:{field}`: the instances that hold an answer.
//!
//! The events channel carries `\0acme challenges` (`answers`: every
//! instance copies the tier's challenge answers into its own book and
//! acknowledges; the sync task re-reads them every heartbeat as the safety
//! net) and `\0acme cert {domain}` (a new certificate is stored: managers
//! re-read it).

pub mod answers;
pub use answers::{pull, Pulled};

use super::connection::Redis;
use super::Tier;
use crate::gateway::Gateway;
use crate::tls::acme::store::AcmeStore;
use crate::tls::acme::{AcmeTier, Challenge, Lock};
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The start of the ACME messages on the events channel.
pub const EVENT: &str = "\u{0}acme ";

/// The tier's ACME backend (one per process, every listener shares it).
pub struct RedisAcme {
    tier: Weak<Tier>,
}

impl std::fmt::Debug for RedisAcme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisAcme")
    }
}

pub(crate) fn unreachable(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("Redis: {e}"))
}

impl RedisAcme {
    fn redis(&self) -> io::Result<Arc<Redis>> {
        self.tier
            .upgrade()
            .and_then(|t| t.redis())
            .ok_or_else(|| io::Error::other("no cluster section"))
    }

    /// Instances seen live within [`answers::RECENT`] (see `Tier::seen`).
    fn recent_peers(&self) -> Vec<String> {
        let Some(t) = self.tier.upgrade() else {
            return Vec::new();
        };
        let since =
            crate::metrics::reload::unix_ms().saturating_sub(answers::RECENT.as_millis() as u64);
        let seen = t.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .filter(|&(_, &at)| at >= since)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Runs a script (`EVAL`) over one key, under the ACME counter.
    async fn script(&self, code: &'static str, key: String, args: Vec<String>) -> io::Result<i64> {
        let redis = self.redis()?;
        redis
            .run_counted("acme", |mut c| async move {
                redis::cmd("EVAL")
                    .arg(code)
                    .arg(1)
                    .arg(key)
                    .arg(args)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
            .map_err(unreachable)
    }
}

/// Renews the lock if the value is still the caller's.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Deletes the lock if the value is still the caller's.
const UNLOCK: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl AcmeStore for RedisAcme {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, io::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let redis = self.redis()?;
            let k = redis.spec.key(&format!("acme:store:{key}"));
            redis
                .run_counted("acme", |mut c| async move { c.get(&k).await })
                .await
                .map_err(unreachable)
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let redis = self.redis()?;
            let k = redis.spec.key(&format!("acme:store:{key}"));
            redis
                .run_counted("acme", |mut c| async move { c.set(&k, value).await })
                .await
                .map_err(unreachable)
        })
    }
}

impl AcmeTier for RedisAcme {
    fn instance(&self) -> String {
        self.tier
            .upgrade()
            .map_or_else(String::new, |t| t.instance().to_string())
    }

    fn lock<'a>(&'a self, name: &'a str, lease: Duration) -> BoxFuture<'a, io::Result<Lock>> {
        Box::pin(async move {
            let redis = self.redis()?;
            let k = redis.spec.key(&format!("acme:lock:{name}"));
            let token = format!("{} {:016x}", self.instance(), fastrand::u64(..));
            let ms = lease.as_millis() as u64;
            let t = token.clone();
            let (taken, holder) = redis
                .run_counted("acme", |mut c| async move {
                    let taken: Option<String> = redis::cmd("SET")
                        .arg(&k)
                        .arg(&t)
                        .arg("NX")
                        .arg("PX")
                        .arg(ms)
                        .query_async(&mut c)
                        .await?;
                    let holder: Option<String> = match taken {
                        Some(_) => None,
                        None => c.get(&k).await?,
                    };
                    Ok((taken.is_some(), holder))
                })
                .await
                .map_err(unreachable)?;
            if taken {
                return Ok(Lock::Held(token));
            }
            let holder = holder.unwrap_or_default();
            let id = holder.rsplit_once(' ').map_or(&*holder, |(id, _)| id);
            Ok(Lock::Busy(id.to_string()))
        })
    }

    fn renew<'a>(
        &'a self,
        name: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, io::Result<bool>> {
        Box::pin(async move {
            let key = self.redis()?.spec.key(&format!("acme:lock:{name}"));
            let args = vec![token.to_string(), lease.as_millis().to_string()];
            Ok(self.script(RENEW, key, args).await? == 1)
        })
    }

    fn unlock<'a>(&'a self, name: &'a str, token: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(redis) = self.redis() else { return };
            let key = redis.spec.key(&format!("acme:lock:{name}"));
            // Not released (Redis gone): the lease ends it.
            let _ = self.script(UNLOCK, key, vec![token.to_string()]).await;
        })
    }

    fn publish<'a>(&'a self, challenge: &'a Challenge) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let recent = self.recent_peers();
            answers::publish(&*self.redis()?, &self.instance(), &recent, challenge).await
        })
    }

    fn withdraw(&self, challenges: Vec<Challenge>) {
        if let Ok(redis) = self.redis() {
            answers::withdraw(redis, challenges);
        }
    }

    fn announce<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(redis) = self.redis() else { return };
            let channel = redis.spec.key("events");
            let msg = format!("{EVENT}cert {name}");
            let _ = redis
                .run_counted("acme", |mut c| async move {
                    c.publish::<_, _, ()>(&channel, &msg).await
                })
                .await;
        })
    }
}

/// Plugs the tier's ACME backend into the gateway's TLS registry while
/// `cluster:` is configured, and takes it out otherwise.
pub fn attach(gw: &Gateway, tier: &Arc<Tier>) {
    let slot = &gw.tls.acme_tier;
    match (gw.snapshot().cluster.is_some(), slot.is_set()) {
        (true, false) => slot.set(Some(Arc::new(RedisAcme {
            tier: Arc::downgrade(tier),
        }))),
        (false, true) => slot.set(None),
        _ => {}
    }
}

/// A message on the events channel after [`EVENT`].
pub async fn event(gw: &Gateway, tier: &Tier, text: &str) {
    if text.starts_with("cert ") {
        gw.tls.acme_tier.changed();
    } else if let Some(redis) = tier.redis() {
        pull(tier, &redis).await;
    }
}
