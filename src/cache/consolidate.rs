//! Request consolidation: concurrent misses for one key make one backend
//! request. The first request leads: it registers the key, fetches, and
//! publishes an [`Outcome`]; the others follow: they wait for the outcome
//! and read the same response from its shared [`Buffer`] while it streams.
//!
//! Safety comes before sharing: a follower receives the leader's response
//! only when it could have been stored (so it is not private to the leader)
//! and the follower's own request selects the same variant (Vary); a 5xx
//! that is not private is shared too, so a failing backend is not hit by a
//! stampede. Otherwise the outcome is [`Outcome::Own`] and each follower
//! makes its own request. If the leader goes away before the response head,
//! its followers race for leadership again: one retries, the rest wait.
//!
//! The map of keys in flight is sharded by key hash behind std mutexes held
//! for a map operation only; it is touched on misses alone (hits and
//! known-uncacheable URLs never reach it).

use super::buffer::Buffer;
use super::entry::Entry;
use super::key::Key;
use crate::proxy::error::ProxyError;
use http::header::{HeaderMap, HeaderName};
use http::StatusCode;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

const SHARDS: usize = 32;

/// A response shared with followers.
#[derive(Debug)]
pub struct Shared {
    pub status: StatusCode,
    /// The head as others may see it (no Set-Cookie, see `entry`).
    pub headers: HeaderMap,
    /// The request headers the response varies on, and the leader's
    /// values for them: a follower with other values may not share.
    pub vary: Vec<HeaderName>,
    pub vary_values: Vec<u8>,
    pub body: Arc<Buffer>,
}

/// What the leader's fetch came to.
#[derive(Clone, Debug)]
pub enum Outcome {
    Pending,
    /// A response followers may read (while it streams).
    Shared(Arc<Shared>),
    /// The stored entry was confirmed (304) and refreshed: serve it.
    Refreshed(Arc<Entry>),
    /// Not shareable: every follower makes its own request.
    Own,
    /// The farm could not answer (after the forwarder's own retries).
    Failed(ProxyError),
}

type Shard = Mutex<HashMap<Key, watch::Receiver<Outcome>>>;

/// Keys with a fetch in flight.
pub struct Inflight {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Default for Inflight {
    fn default() -> Self {
        Inflight {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Inflight {
    fn shard(
        &self,
        key: &[u8],
    ) -> std::sync::MutexGuard<'_, HashMap<Key, watch::Receiver<Outcome>>> {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.shards[i].lock().map_or(0, |m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// This request's part in the fetch for its key.
pub enum Role {
    Lead(Leader),
    Follow(watch::Receiver<Outcome>),
}

/// Leads if nobody fetches `key` yet, else follows the fetch in flight.
pub fn join(inflight: &Arc<Inflight>, key: &[u8]) -> Role {
    let mut shard = inflight.shard(key);
    if let Some(rx) = shard.get(key) {
        return Role::Follow(rx.clone());
    }
    let (tx, rx) = watch::channel(Outcome::Pending);
    shard.insert(key.into(), rx);
    Role::Lead(Leader {
        inflight: inflight.clone(),
        key: key.into(),
        tx: Some(tx),
    })
}

/// The leading request's handle. Dropping it ends the fetch's
/// registration: new requests no longer join, and if nothing was published
/// the followers learn that the leader went away.
pub struct Leader {
    inflight: Arc<Inflight>,
    key: Key,
    tx: Option<watch::Sender<Outcome>>,
}

impl Leader {
    pub fn publish(&self, outcome: Outcome) {
        if let Some(tx) = &self.tx {
            tx.send_replace(outcome);
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        let mut shard = self.inflight.shard(&self.key);
        // Only remove our own registration.
        if shard
            .get(&*self.key)
            .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
        {
            shard.remove(&*self.key);
        }
    }
}

/// Waits for the leader's outcome; `None` if it went away without one.
pub async fn follow(mut rx: watch::Receiver<Outcome>) -> Option<Outcome> {
    let r = rx.wait_for(|o| !matches!(o, Outcome::Pending)).await;
    r.ok().map(|o| o.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Arc<Inflight> {
        Arc::default()
    }

    #[tokio::test]
    async fn one_leads_others_follow_and_see_the_outcome() {
        let s = store();
        let Role::Lead(leader) = join(&s, b"k") else {
            panic!("first request leads")
        };
        let Role::Follow(rx) = join(&s, b"k") else {
            panic!("second request follows")
        };
        let waiting = tokio::spawn(follow(rx));
        leader.publish(Outcome::Own);
        assert!(matches!(waiting.await.unwrap(), Some(Outcome::Own)));
        drop(leader);
        assert!(s.is_empty());
        assert!(matches!(join(&s, b"k"), Role::Lead(_)));
    }

    #[tokio::test]
    async fn a_vanished_leader_releases_its_followers() {
        let s = store();
        let leader = join(&s, b"k");
        let Role::Follow(rx) = join(&s, b"k") else {
            panic!("follows")
        };
        drop(leader);
        assert!(follow(rx).await.is_none());
    }
}
