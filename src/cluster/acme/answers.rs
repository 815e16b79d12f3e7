//! Challenge answers for the whole tier: the ordering instance writes each
//! answer to the hash `farmgate:{name}:acme:challenges` (`http-01 {token}`
//! or `tls-alpn-01 {domain}` to the answer and its expiry) and announces it;
//! every instance copies the answers into its own challenge book (where
//! requests and handshakes find them without touching Redis) and adds its
//! id to `farmgate:{name}:acme:acks:{field}`; the order goes on once every
//! instance with a live heartbeat did (and every one seen live within
//! [`RECENT`]: after Redis came back empty, a peer may not have registered
//! again yet), or after [`ACK_WAIT`].

use super::EVENT;
use crate::cluster::connection::Redis;
use crate::cluster::Tier;
use crate::ground::hex::{hex, unhex};
use crate::metrics::reload::unix_ms;
use crate::tls::acme::order::{add_to_book, remove_from_book};
use crate::tls::acme::{book, Challenge};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a published answer lives at most (an order that crashed
/// half-way leaves nothing for longer).
const ANSWER_TTL: Duration = Duration::from_secs(600);
/// How long a publisher waits for the live instances to acknowledge.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// A peer seen live this recently is waited for even without a heartbeat
/// in Redis now.
pub const RECENT: Duration = Duration::from_secs(60);

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

/// Writes `challenge`'s answer to the hash, announces it, and waits
/// (bounded) until the live instances acknowledge it.
pub async fn publish(
    redis: &Redis,
    me: &str,
    recent: &[String],
    challenge: &Challenge,
) -> io::Result<()> {
    {
        {
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
                .run_counted("acme", |mut c| async move {
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
                .map_err(super::unreachable)?;
            wait_for_acks(redis, me, recent, &f).await;
            Ok(())
        }
    }
}

/// Takes answers out of the hash (in the background) and announces it.
pub fn withdraw(redis: Arc<Redis>, challenges: Vec<Challenge>) {
    {
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
                .run_counted("acme", |mut c| async move {
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
}

/// Waits (bounded) until every instance with a live heartbeat, and every
/// one in `recent`, holds the answer `f`, so the CA's validation may reach
/// any of them.
async fn wait_for_acks(redis: &Redis, me: &str, recent: &[String], f: &str) {
    {
        let set = redis.spec.key("instances");
        let acks = redis.spec.key(&format!("acme:acks:{f}"));
        let prefix = redis.spec.key("instance:");
        let deadline = Instant::now() + ACK_WAIT;
        let mut missing = Vec::new();
        while Instant::now() < deadline {
            let (set, acks, prefix) = (&set, &acks, &prefix);
            let read = redis
                .run_counted("acme", |mut c| async move {
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
                .chain(recent.iter().cloned())
                .filter(|id| id != me && !acked.contains(id))
                .collect();
            missing.sort();
            missing.dedup();
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

/// Copies the tier's pending challenge answers into this instance's book
/// (and drops those withdrawn), then acknowledges them.
pub async fn pull(tier: &Tier, redis: &Redis) {
    let hash = redis.spec.key("acme:challenges");
    let h = hash.clone();
    let Ok(all) = redis
        .run_counted("acme", |mut c| async move {
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
    if live.is_empty() && expired.is_empty() {
        return;
    }
    let me = tier.instance().to_string();
    let _ = redis
        .run_counted("acme", |mut c| async move {
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
