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
//! The events channel carries `\0acme challenges` (read the hash: every
//! instance copies the answers into its own challenge book, where requests
//! and handshakes find them without touching Redis, and acknowledges) and
//! `\0acme cert {domain}` (a new certificate is stored: managers re-read
//! it). The sync task re-reads the hash every heartbeat as the safety net.

use super::connection::Redis;
use super::Tier;
use crate::gateway::Gateway;
use crate::metrics::reload::unix_ms;
use crate::tls::acme::order::{add_to_book, remove_from_book};
use crate::tls::acme::store::AcmeStore;
use crate::tls::acme::{book, AcmeTier, Challenge, Lock};
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The start of the ACME messages on the events channel.
pub const EVENT: &str = "\u{0}acme ";
/// How long a published answer lives at most (an order that crashed
/// half-way leaves nothing for longer).
const ANSWER_TTL: Duration = Duration::from_secs(600);
/// How long a publisher waits for the live instances to acknowledge.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// The answers this instance copied from the tier, by hash field.
#[derive(Debug, Default)]
pub struct Pulled(Mutex<HashMap<String, Challenge>>);

/// A pending answer as stored in the hash.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// The key authorization (HTTP-01) or the hex digest (TLS-ALPN-01).
    answer: String,
    expires_ms: u64,
}

fn field(c: &Challenge) -> String {
    match c {
        Challenge::Http01 { token, .. } => format!("http-01 {token}"),
        Challenge::TlsAlpn01 { domain, .. } => format!("tls-alpn-01 {domain}"),
    }
}

fn decode(field: &str, answer: String) -> Option<Challenge> {
    let (kind, id) = field.split_once(' ')?;
    match kind {
        "http-01" => Some(Challenge::Http01 {
            token: id.to_string(),
            key_authorization: answer,
        }),
        "tls-alpn-01" => Some(Challenge::TlsAlpn01 {
            domain: id.to_string(),
            digest: unhex(&answer)?,
        }),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The tier's ACME backend (one per process, every listener shares it).
pub struct RedisAcme {
    tier: Weak<Tier>,
}

impl std::fmt::Debug for RedisAcme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisAcme")
    }
}

fn unreachable(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("Redis: {e}"))
}

impl RedisAcme {
    fn redis(&self) -> io::Result<Arc<Redis>> {
        self.tier
            .upgrade()
            .and_then(|t| t.redis())
            .ok_or_else(|| io::Error::other("no cluster section"))
    }

    /// Runs a script (`EVAL`) over one key, under the ACME counter.
    async fn script(&self, code: &'static str, key: String, args: Vec<String>) -> io::Result<i64> {
        let redis = self.redis()?;
        redis
            .run("acme", |mut c| async move {
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
                .run("acme", |mut c| async move { c.get(&k).await })
                .await
                .map_err(unreachable)
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let redis = self.redis()?;
            let k = redis.spec.key(&format!("acme:store:{key}"));
            redis
                .run("acme", |mut c| async move { c.set(&k, value).await })
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
                .run("acme", |mut c| async move {
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
            let redis = self.redis()?;
            let f = field(challenge);
            let answer = match challenge {
                Challenge::Http01 {
                    key_authorization, ..
                } => key_authorization.clone(),
                Challenge::TlsAlpn01 { digest, .. } => hex(digest),
            };
            let stored = Stored {
                answer,
                expires_ms: unix_ms() + ANSWER_TTL.as_millis() as u64,
            };
            let json = serde_json::to_string(&stored).map_err(io::Error::other)?;
            let hash = redis.spec.key("acme:challenges");
            let channel = redis.spec.key("events");
            let acks = redis.spec.key(&format!("acme:acks:{f}"));
            let msg = format!("{EVENT}challenges");
            let (hash2, f2) = (hash.clone(), f.clone());
            redis
                .run("acme", |mut c| async move {
                    redis::pipe()
                        .hset(&hash2, &f2, &json)
                        .ignore()
                        .del(&acks)
                        .ignore()
                        .publish(&channel, &msg)
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
                .map_err(unreachable)?;
            self.wait_for_acks(&redis, &f).await;
            Ok(())
        })
    }

    fn withdraw(&self, challenges: Vec<Challenge>) {
        let Ok(redis) = self.redis() else { return };
        let fields: Vec<String> = challenges.iter().map(field).collect();
        let hash = redis.spec.key("acme:challenges");
        let acks: Vec<String> = fields
            .iter()
            .map(|f| redis.spec.key(&format!("acme:acks:{f}")))
            .collect();
        let channel = redis.spec.key("events");
        let msg = format!("{EVENT}challenges");
        tokio::spawn(async move {
            let _ = redis
                .run("acme", |mut c| async move {
                    redis::pipe()
                        .hdel(&hash, &fields)
                        .ignore()
                        .del(&acks)
                        .ignore()
                        .publish(&channel, &msg)
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        });
    }

    fn announce<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(redis) = self.redis() else { return };
            let channel = redis.spec.key("events");
            let msg = format!("{EVENT}cert {name}");
            let _ = redis
                .run("acme", |mut c| async move {
                    c.publish::<_, _, ()>(&channel, &msg).await
                })
                .await;
        })
    }
}

impl RedisAcme {
    /// Waits (bounded) until every instance with a live heartbeat holds the
    /// answer `f`, so the CA's validation may reach any of them.
    async fn wait_for_acks(&self, redis: &Redis, f: &str) {
        let me = self.instance();
        let set = redis.spec.key("instances");
        let acks = redis.spec.key(&format!("acme:acks:{f}"));
        let prefix = redis.spec.key("instance:");
        let deadline = Instant::now() + ACK_WAIT;
        let mut missing = Vec::new();
        while Instant::now() < deadline {
            let (set, acks, prefix) = (&set, &acks, &prefix);
            let read = redis
                .run("acme", |mut c| async move {
                    let ids: Vec<String> = c.smembers(set).await?;
                    let acked: Vec<String> = c.smembers(acks).await?;
                    let mut live = Vec::new();
                    for id in ids {
                        if c.exists::<_, bool>(format!("{prefix}{id}")).await? {
                            live.push(id);
                        }
                    }
                    Ok((live, acked))
                })
                .await;
            let Ok((live, acked)) = read else { return };
            missing = live
                .into_iter()
                .filter(|id| *id != me && !acked.contains(id))
                .collect();
            if missing.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            "ACME: {} did not confirm the challenge answer within {ACK_WAIT:?}; validating anyway",
            missing.join(", ")
        );
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

/// Copies the tier's pending challenge answers into this instance's book
/// (and drops those withdrawn), then acknowledges them.
pub async fn pull(tier: &Tier, redis: &Redis) {
    let hash = redis.spec.key("acme:challenges");
    let h = hash.clone();
    let Ok(all) = redis
        .run("acme", |mut c| async move {
            c.hgetall::<_, HashMap<String, String>>(&h).await
        })
        .await
    else {
        return;
    };
    let now = unix_ms();
    let mut live = HashMap::new();
    let mut expired = Vec::new();
    for (f, json) in all {
        match serde_json::from_str::<Stored>(&json) {
            Ok(s) if s.expires_ms > now => {
                if let Some(c) = decode(&f, s.answer) {
                    live.insert(f, c);
                }
            }
            _ => expired.push(f),
        }
    }
    {
        let mut pulled = tier.acme.0.lock().unwrap_or_else(|p| p.into_inner());
        pulled.retain(|f, c| {
            let keep = live.get(f) == Some(c);
            if !keep {
                remove_from_book(book(), c);
            }
            keep
        });
        for (f, c) in &live {
            if !pulled.contains_key(f) {
                match add_to_book(book(), c) {
                    Ok(()) => {
                        pulled.insert(f.clone(), c.clone());
                    }
                    Err(e) => tracing::warn!("ACME: cannot answer {f} from the tier: {e}"),
                }
            }
        }
    }
    let me = tier.instance().to_string();
    let _ = redis
        .run("acme", |mut c| async move {
            let mut p = redis::pipe();
            for f in live.keys() {
                let acks = redis.spec.key(&format!("acme:acks:{f}"));
                p.sadd(&acks, &me)
                    .ignore()
                    .expire(&acks, ANSWER_TTL.as_secs() as i64)
                    .ignore();
            }
            if !expired.is_empty() {
                p.hdel(&hash, &expired).ignore();
            }
            p.query_async::<()>(&mut c).await
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_through_their_fields() {
        for c in [
            Challenge::Http01 {
                token: "tok-1".into(),
                key_authorization: "tok-1.thumb".into(),
            },
            Challenge::TlsAlpn01 {
                domain: "www.example.com".into(),
                digest: vec![0, 1, 254, 255],
            },
        ] {
            let answer = match &c {
                Challenge::Http01 {
                    key_authorization, ..
                } => key_authorization.clone(),
                Challenge::TlsAlpn01 { digest, .. } => hex(digest),
            };
            assert_eq!(decode(&field(&c), answer), Some(c));
        }
        assert_eq!(decode("dns-01 x", "y".into()), None);
        assert_eq!(decode("tls-alpn-01 x", "zz".into()), None);
    }
}
