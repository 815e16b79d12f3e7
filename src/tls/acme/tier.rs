//! Tier mode: what a store shared by several instances (Redis, plugged in
//! by `cluster` when the `cluster:` section is set) adds to [`AcmeStore`]:
//! the order lock per domain set with a lease renewed while the order runs,
//! challenge answers published to every instance, and the announcement of
//! a newly stored certificate.
//!
//! [`TierSlot`] is where the cluster puts its implementation (or takes it
//! away on a reload that drops `cluster:`); every manager reads it when it
//! (re)starts and listens to its change counter for certificates another
//! instance stored. [`TierStore`] layers the shared store over the local
//! `storage:` directory: every value is written to both; a read the tier
//! cannot answer falls back to the local copy, so an instance that restarts
//! while Redis is down still serves its last certificate; and a value the
//! tier lacks (a new tier, a Redis restarted empty) is taken from the local
//! copy and shared, so joining a tier does not order anew.

use super::store::{AcmeStore, FileStore};
use futures_util::future::BoxFuture;
use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// One challenge answer, as every instance of the tier must serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `/.well-known/acme-challenge/<token>` answers `key_authorization`.
    Http01 {
        token: String,
        key_authorization: String,
    },
    /// `acme-tls/1` for `domain` answers a certificate carrying `digest`
    /// (each instance makes its own from it).
    TlsAlpn01 { domain: String, digest: Vec<u8> },
}

/// The order lock as a tier grants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// Held by this instance; the token renews and releases it.
    Held(String),
    /// Another instance orders (its id).
    Busy(String),
}

/// A store shared by a tier, with the coordination ordering needs.
pub trait AcmeTier: AcmeStore {
    /// This instance's id in the tier.
    fn instance(&self) -> String;
    /// Takes the order lock of the domain set `name` for `lease`.
    fn lock<'a>(&'a self, name: &'a str, lease: Duration) -> BoxFuture<'a, io::Result<Lock>>;
    /// Extends a held lock; `Ok(false)` when it was lost (expired and
    /// taken by another instance).
    fn renew<'a>(
        &'a self,
        name: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, io::Result<bool>>;
    /// Releases a held lock (only if still ours).
    fn unlock<'a>(&'a self, name: &'a str, token: &'a str) -> BoxFuture<'a, ()>;
    /// Publishes a challenge answer to every instance and returns once
    /// the live ones hold it (or a bounded wait ran out).
    fn publish<'a>(&'a self, challenge: &'a Challenge) -> BoxFuture<'a, io::Result<()>>;
    /// Takes published answers back.
    fn withdraw(&self, challenges: Vec<Challenge>);
    /// Tells every instance that the certificate `name` was stored anew.
    fn announce<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ()>;
}

/// The tier's ACME backend while `cluster:` is configured, held by the
/// gateway's TLS registry and filled by `cluster`.
#[derive(Default)]
pub struct TierSlot {
    tier: RwLock<Option<Arc<dyn AcmeTier>>>,
    /// Bumped when another instance stored a certificate (pub/sub).
    changes: watch::Sender<u64>,
}

impl std::fmt::Debug for TierSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierSlot")
            .field("set", &self.get().is_some())
            .finish()
    }
}

impl TierSlot {
    pub fn get(&self) -> Option<Arc<dyn AcmeTier>> {
        self.tier.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Plugs a tier in (`Some`) or out; managers follow within a second.
    pub fn set(&self, tier: Option<Arc<dyn AcmeTier>>) {
        *self.tier.write().unwrap_or_else(|p| p.into_inner()) = tier;
        self.changed();
    }

    pub fn is_set(&self) -> bool {
        self.get().is_some()
    }

    /// A certificate may have changed in the shared store.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// The shared store over the local directory (see the module doc).
#[derive(Debug)]
pub struct TierStore {
    pub tier: Arc<dyn AcmeTier>,
    local: FileStore,
}

impl TierStore {
    pub fn new(tier: Arc<dyn AcmeTier>, local: FileStore) -> Self {
        TierStore { tier, local }
    }
}

impl AcmeStore for TierStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, io::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            match self.tier.get(key).await {
                Ok(Some(v)) => Ok(Some(v)),
                // The tier has none (a new tier, a Redis that restarted
                // empty): the local copy, shared from now on.
                Ok(None) => {
                    let Some(v) = self.local.get(key).await.ok().flatten() else {
                        return Ok(None);
                    };
                    match self.tier.put(key, &v).await {
                        Ok(()) => tracing::info!(
                            "ACME storage: {key} shared with the tier from the local copy"
                        ),
                        Err(e) => {
                            tracing::warn!("ACME storage: cannot share {key} with the tier: {e}")
                        }
                    }
                    Ok(Some(v))
                }
                Err(e) => {
                    match self.local.get(key).await {
                        Ok(Some(v)) => {
                            tracing::debug!("ACME storage: {key} from the local copy, the tier did not answer: {e}");
                            Ok(Some(v))
                        }
                        _ => Err(e),
                    }
                }
            }
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            if let Err(e) = self.local.put(key, value).await {
                tracing::warn!("ACME storage: cannot keep the local copy of {key}: {e}");
            }
            self.tier.put(key, value).await
        })
    }
}
