//! Idle keep-alive connections to backends, one pool per backend address
//! (scheme + host:port), shared by every farm and snapshot that names it.
//!
//! Each `Server` of a snapshot holds its address's pool directly, so a
//! request finds its idle connections without a map lookup or hashing (the
//! general-purpose pool this replaces hashed its key twice per request).
//! The idle list is a stack: the most recently used connection goes out
//! first, so under light load a few connections stay warm and the rest age
//! out. A connection goes back when its response body has been read to the
//! end (`Checkin`); one abandoned mid-body is closed instead.

use super::body::UpstreamBody;
use crate::farm::Prune;
use http::uri::{Authority, Scheme};
use hyper::client::conn::http1::SendRequest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Idle connections kept per backend address; more are closed on return.
pub const MAX_IDLE_PER_ADDRESS: usize = 1024;
/// An idle connection unused for this long is closed by the sweeper.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the sweeper runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

type Sender = SendRequest<UpstreamBody>;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The idle connections to one backend address.
pub struct BackendPool {
    address: Arc<str>,
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for BackendPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendPool")
            .field("address", &self.address)
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl BackendPool {
    pub fn new(address: &str) -> Self {
        BackendPool {
            address: address.into(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The most recently returned idle connection that is still open.
    pub fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            if !c.sender.is_closed() {
                return Some(c.sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request (closed ones and those past the
    /// cap are dropped, which closes them).
    pub fn checkin(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_PER_ADDRESS {
            idle.push(Idle { sender, since });
        }
    }

    /// Closes connections idle since before `cutoff` and forgets closed ones.
    pub fn sweep(&self, cutoff: Instant) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let before = idle.len();
        idle.retain(|c| c.since >= cutoff && !c.sender.is_closed());
        before - idle.len()
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn address(&self) -> &Arc<str> {
        &self.address
    }
}

/// Gives a connection back to its pool once its response has been read to
/// the end. Dropped without `give_back`, it closes the connection.
pub struct Checkin {
    pool: Arc<BackendPool>,
    sender: Sender,
}

impl Checkin {
    pub fn new(pool: Arc<BackendPool>, sender: Sender) -> Self {
        Checkin { pool, sender }
    }
    pub fn give_back(self) {
        self.pool.checkin(self.sender);
    }
}

/// Every backend pool by address. Pools live as long as a snapshot's
/// server refers to them; touched when snapshots are built, never per
/// request (the sweeper walks it every few seconds).
#[derive(Default, Debug)]
pub struct PoolRegistry {
    map: Mutex<HashMap<String, Weak<BackendPool>>>,
}

impl PoolRegistry {
    /// The pool for `scheme://authority`, shared with every other server
    /// at the same address.
    pub fn get_or_create(&self, scheme: &Scheme, authority: &Authority) -> Arc<BackendPool> {
        let key = format!("{scheme}://{authority}");
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = map.get(&key).and_then(Weak::upgrade) {
            return pool;
        }
        let pool = Arc::new(BackendPool::new(&key));
        map.insert(key, Arc::downgrade(&pool));
        pool
    }

    /// Closes connections idle longer than `idle_timeout`. Returns how many.
    pub fn sweep(&self, idle_timeout: Duration) -> usize {
        let Some(cutoff) = Instant::now().checked_sub(idle_timeout) else {
            return 0;
        };
        let pools: Vec<Arc<BackendPool>> = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.values().filter_map(Weak::upgrade).collect()
        };
        pools.iter().map(|p| p.sweep(cutoff)).sum()
    }
}

impl Prune for PoolRegistry {
    /// Forgets addresses no snapshot uses any more (their connections
    /// closed when the last server holding the pool went away).
    fn prune(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, p| p.strong_count() > 0);
    }
}

/// Runs the sweeper until the registry is gone.
pub fn spawn_sweeper(registry: Weak<PoolRegistry>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(reg) = registry.upgrade() else { break };
            let closed = reg.sweep(IDLE_TIMEOUT);
            if closed > 0 {
                tracing::debug!("closed {closed} idle backend connection(s)");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pool_per_address_while_used() {
        let reg = PoolRegistry::default();
        let a: Authority = "127.0.0.1:9001".parse().unwrap_or_else(|_| unreachable!());
        let b: Authority = "127.0.0.1:9002".parse().unwrap_or_else(|_| unreachable!());
        let p1 = reg.get_or_create(&Scheme::HTTP, &a);
        let p2 = reg.get_or_create(&Scheme::HTTP, &a);
        assert!(Arc::ptr_eq(&p1, &p2));
        assert!(!Arc::ptr_eq(&p1, &reg.get_or_create(&Scheme::HTTPS, &a)));
        assert!(!Arc::ptr_eq(&p1, &reg.get_or_create(&Scheme::HTTP, &b)));
        assert_eq!(&**p1.address(), "http://127.0.0.1:9001");
        drop((p1, p2));
        reg.prune();
        assert!(reg.map.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
    }
}
