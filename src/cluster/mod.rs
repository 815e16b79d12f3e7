//! A tier of farmgate instances behind one layer-4 balancer, coordinated
//! through Redis (or Valkey): what an operator does on one instance holds
//! on all, every instance sees the others, and TLS sessions resume on any
//! of them. Redis is never on a request's path: requests read only local
//! state, which the tasks here keep in step with the tier, and when Redis
//! is gone every instance keeps serving from what it last knew.
//!
//! - `connection`: the command connection, its timeout and the circuit breaker
//!   (`breaker`): [`Redis`], the handle every tier-wide feature uses;
//! - `operator`: drain / disable / enable for the tier (a Redis hash as the
//!   record, pub/sub for the push, a periodic re-read as the safety net);
//! - `heartbeat`: each instance's heartbeat with a TTL, and the view of the
//!   live instances (`GET /api/cluster`, config drift);
//! - `tickets`: TLS session ticket keys shared by the tier;
//! - `shared_cache`: the shared cache tier (`cache.shared`), the cache's
//!   `SharedStore` on Redis, and purges across the tier;
//! - `limits`: rate limits with `scope: cluster`, their counts exchanged
//!   every `sync_interval` (its own task), and their fallback without Redis;
//! - `acme`: ACME in tier mode (`tls.acme` with `cluster:`): the shared
//!   store, the order lock, challenge answers on every instance;
//! - `stats`: the `farmgate_cluster_*` counters.
//!
//! The section itself (`cluster:`) is compiled by `config::cluster`; a
//! reload that adds, changes or removes it is followed within one
//! heartbeat interval.

pub mod acme;
pub mod breaker;
pub mod connection;
pub mod heartbeat;
pub mod limits;
pub mod operator;
pub mod shared_cache;
pub mod stats;
pub mod tickets;

pub use connection::{ClusterError, Redis};
pub use stats::ClusterStats;

use crate::config::cluster::ClusterSpec;
use crate::farm::Prune;
use crate::gateway::Gateway;
use arc_swap::{ArcSwap, ArcSwapOption};
use futures_util::StreamExt;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

/// The tier as this instance knows it, attached to the gateway's
/// `StateRegistry` so it lives as long as the process.
pub struct Tier {
    pub stats: Arc<ClusterStats>,
    redis: ArcSwapOption<Redis>,
    instance: ArcSwap<String>,
    /// Wakes the sync task (a pub/sub message, a new subscription).
    wake: tokio::sync::Notify,
    pub(crate) book: operator::Book,
    pub(crate) view: ArcSwap<heartbeat::View>,
    /// Every instance seen live, with when it was last (Unix ms): a peer
    /// that has not re-registered yet after Redis came back empty is
    /// still expected to acknowledge ACME challenge answers.
    pub(crate) seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    pub(crate) rates: heartbeat::Rates,
    /// ACME challenge answers copied from the tier.
    pub(crate) acme: acme::Pulled,
    pub started: SystemTime,
}

impl Default for Tier {
    fn default() -> Self {
        Tier {
            stats: Arc::default(),
            redis: ArcSwapOption::empty(),
            instance: ArcSwap::from_pointee(String::new()),
            wake: tokio::sync::Notify::new(),
            book: operator::Book::default(),
            view: ArcSwap::from_pointee(heartbeat::View::default()),
            seen: Default::default(),
            rates: heartbeat::Rates::default(),
            acme: acme::Pulled::default(),
            started: SystemTime::now(),
        }
    }
}

impl Prune for Tier {
    fn prune(&self) {}
}

impl Tier {
    /// The gateway's tier state (made on first use).
    pub fn of(gw: &Gateway) -> Arc<Tier> {
        gw.registry.attached::<Tier>()
    }

    /// The tier's Redis handle while `cluster:` is configured: for features
    /// that keep tier-wide state of their own (rate limits' cluster scope).
    pub fn redis(&self) -> Option<Arc<Redis>> {
        self.redis.load_full()
    }

    /// The handle for `spec`: the current one, or a new one when the
    /// section changed (a reload).
    pub fn redis_for(&self, spec: &Arc<ClusterSpec>) -> Arc<Redis> {
        if let Some(r) = self.redis.load_full() {
            if *r.spec == **spec {
                return r;
            }
        }
        let r = Arc::new(Redis::new(spec.clone(), self.stats.clone()));
        tracing::info!(
            "cluster: tier {:?} through {}",
            spec.name,
            r.urls().join(", ")
        );
        // Up until an operation says otherwise.
        self.stats.set_up(true);
        self.redis.store(Some(r.clone()));
        r
    }

    /// This instance's id in the tier.
    pub fn instance(&self) -> Arc<String> {
        self.instance.load_full()
    }

    fn set_instance(&self, spec: &ClusterSpec, gw: &Gateway) {
        let id = match &spec.instance {
            Some(id) => id.clone(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "farmgate".into());
                match gw.bound_listeners().first() {
                    Some(l) => format!("{host}/{}", l.addr),
                    None => host,
                }
            }
        };
        if *self.instance.load_full() != id {
            self.instance.store(Arc::new(id));
        }
    }

    fn leave(&self) {
        if self.redis.swap(None).is_some() {
            tracing::info!("cluster: left the tier (no cluster section any more)");
        }
    }
}

/// Before serving: with `cluster:` configured, reads the tier's operator
/// state once (bounded by the Redis timeout), so an instance that starts
/// while a server is drained never sends it a request.
pub async fn join(gw: &Arc<Gateway>) {
    let snap = gw.snapshot();
    let Some(spec) = snap.cluster.clone() else {
        return;
    };
    let tier = Tier::of(gw);
    tier.set_instance(&spec, gw);
    let redis = tier.redis_for(&spec);
    shared_cache::attach(gw, &tier);
    // Before the listeners start: their ACME managers begin in tier mode,
    // and the tier knows this instance (an order waits for its
    // acknowledgement of a challenge answer) before it serves.
    acme::attach(gw, &tier);
    operator::sync(gw, &tier, &redis).await;
    tickets::sync(gw, &tier, &redis).await;
    heartbeat::beat(gw, &tier, &redis).await;
    acme::pull(&tier, &redis).await;
}

/// The cluster's background tasks; they idle while `cluster:` is absent
/// and end with the gateway.
pub struct ClusterTasks {
    sync: tokio::task::JoinHandle<()>,
    listen: tokio::task::JoinHandle<()>,
    limits: tokio::task::JoinHandle<()>,
}

impl ClusterTasks {
    pub fn stop(&self) {
        self.sync.abort();
        self.listen.abort();
        self.limits.abort();
    }
}

/// Starts the sync task (heartbeat, re-read, tickets), the pub/sub
/// listener and the cluster-scope limits' exchange.
pub fn spawn(gw: &Arc<Gateway>) -> ClusterTasks {
    let tier = Tier::of(gw);
    ClusterTasks {
        sync: tokio::spawn(run(Arc::downgrade(gw), tier.clone())),
        listen: tokio::spawn(listen(Arc::downgrade(gw), tier.clone())),
        limits: tokio::spawn(limits::run(Arc::downgrade(gw), tier)),
    }
}

/// On shutdown: takes this instance's heartbeat out of the tier at once
/// (else it would show until its TTL ends).
pub async fn leave(gw: &Gateway) {
    let tier = Tier::of(gw);
    if let Some(redis) = tier.redis() {
        heartbeat::remove(&tier, &redis).await;
    }
}

async fn run(gw: Weak<Gateway>, tier: Arc<Tier>) {
    let mut period = Duration::from_secs(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let beat = tokio::select! {
            _ = tick.tick() => true,
            _ = tier.wake.notified() => false,
        };
        let Some(gw) = gw.upgrade() else { return };
        let snap = gw.snapshot();
        shared_cache::attach(&gw, &tier);
        acme::attach(&gw, &tier);
        let Some(spec) = snap.cluster.clone() else {
            tier.leave();
            continue;
        };
        if spec.heartbeat_interval != period {
            period = spec.heartbeat_interval;
            tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        tier.set_instance(&spec, &gw);
        let redis = tier.redis_for(&spec);
        operator::sync(&gw, &tier, &redis).await;
        if beat {
            heartbeat::beat(&gw, &tier, &redis).await;
            heartbeat::read_view(&gw, &tier, &redis).await;
            tickets::sync(&gw, &tier, &redis).await;
            acme::pull(&tier, &redis).await;
        }
    }
}

/// Holds a pub/sub subscription to the tier's events channel; every
/// message (and every new subscription, after which messages may have been
/// missed) wakes the sync task.
async fn listen(gw: Weak<Gateway>, tier: Arc<Tier>) {
    loop {
        if gw.strong_count() == 0 {
            return;
        }
        let Some(redis) = tier.redis() else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let timeout = redis.spec.timeout;
        let channel = redis.spec.key("events");
        let mut subscribed = None;
        for client in redis.clients() {
            let attempt = async {
                let mut ps = client.get_async_pubsub().await?;
                ps.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(ps)
            };
            if let Ok(Ok(ps)) = tokio::time::timeout(timeout, attempt).await {
                subscribed = Some(ps);
                break;
            }
        }
        if let Some(ps) = subscribed {
            tier.wake.notify_one();
            let mut messages = ps.into_on_message();
            loop {
                tokio::select! {
                    m = messages.next() => match m {
                        Some(m) => match m.get_payload::<String>() {
                            Ok(text) if text.starts_with(acme::EVENT) => {
                                if let Some(gw) = gw.upgrade() {
                                    let tier = tier.clone();
                                    tokio::spawn(async move {
                                        acme::event(&gw, &tier, &text[acme::EVENT.len()..]).await;
                                    });
                                }
                            }
                            Ok(text) if text.starts_with(shared_cache::PURGE) => {
                                if let Some(gw) = gw.upgrade() {
                                    shared_cache::purged_elsewhere(&gw, &tier, &text[shared_cache::PURGE.len()..]);
                                }
                            }
                            _ => tier.wake.notify_one(),
                        },
                        None => break,
                    },
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        let same = tier.redis().is_some_and(|r| Arc::ptr_eq(&r, &redis));
                        if !same || gw.strong_count() == 0 {
                            break;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(redis.spec.breaker_cooldown.min(Duration::from_secs(1))).await;
    }
}
