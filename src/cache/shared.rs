//! The shared cache tier (`farms[].cache.shared`): behind each instance's
//! own store, a store every instance of a tier reaches, so a response one
//! instance fetched is a hit on the others, a cold URL requested on every
//! instance at once reaches the backend once, and a purge anywhere purges
//! everywhere.
//!
//! The cache only knows the [`SharedStore`] trait; `cluster` implements it
//! on Redis and hangs it on each farm's [`CacheStore`] as a [`SharedTier`].
//! Every call is bounded (the cluster's timeout and circuit breaker): a
//! slow or absent tier makes a lookup a miss, never an error.
//!
//! Responses with `Vary` stay local (their secondary keys are per process).
//! Entries travel in a small binary form ([`encode`], [`decode`]) that
//! carries their age, so freshness is kept across instances.

use super::config::CacheSpec;
use super::entry::Entry;
use super::policy::Freshness;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub type SharedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer to a tier-wide consolidation lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierLock {
    /// This instance fetches; the others wait for what it stores.
    Acquired,
    /// Another instance is fetching this key now.
    Busy,
    /// The tier cannot say (Redis away): fetch without it.
    Unavailable,
}

/// A store shared by the instances of a tier. Keys are the cache's own
/// (`key.rs`); the store namespaces them by farm.
pub trait SharedStore: Send + Sync + 'static {
    /// The encoded entry stored for `key`, if any (None on any trouble).
    fn get<'a>(&'a self, farm: &'a str, key: &'a [u8]) -> SharedFuture<'a, Option<Bytes>>;
    /// Stores `value` for `ttl`, then releases the lock on `key` if this
    /// instance held it. Does not wait.
    fn put(&self, farm: &str, key: &[u8], value: Bytes, ttl: Duration, unlock: bool);
    /// Takes the short tier-wide lock on `key` (held at most `hold`).
    fn lock<'a>(
        &'a self,
        farm: &'a str,
        key: &'a [u8],
        hold: Duration,
    ) -> SharedFuture<'a, TierLock>;
    /// Releases the lock on `key`. Does not wait.
    fn unlock(&self, farm: &str, key: &[u8]);
    /// Drops what the tier stores under paths starting with `prefix` (all
    /// for None) and has every instance purge its own store likewise. Does
    /// not wait.
    fn purge(&self, farm: &str, prefix: Option<&[u8]>);
}

/// A farm's link to the shared tier, on its [`CacheStore`].
///
/// [`CacheStore`]: super::CacheStore
pub struct SharedTier {
    pub store: Arc<dyn SharedStore>,
    pub farm: Arc<str>,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("farm", &self.farm)
            .finish()
    }
}

/// What the shared tier did for a farm (long-lived, with its store).
#[derive(Debug, Default)]
pub struct SharedStats {
    /// Local misses answered by the tier.
    pub hits: AtomicU64,
    /// Local misses the tier had nothing (fresh) for.
    pub misses: AtomicU64,
    /// Responses this instance stored in the tier.
    pub stores: AtomicU64,
    /// Requests that waited for another instance's fetch and got it.
    pub waited: AtomicU64,
}

impl SharedStats {
    pub fn add(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holds the tier-wide lock on a key while this instance fetches it;
/// dropped without [`TierGuard::disarm`] it releases the lock.
pub struct TierGuard {
    tier: Arc<SharedTier>,
    key: Box<[u8]>,
    armed: bool,
}

impl TierGuard {
    pub fn new(tier: Arc<SharedTier>, key: &[u8]) -> TierGuard {
        TierGuard {
            tier,
            key: key.into(),
            armed: true,
        }
    }

    /// The lock is released by a `put` instead.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TierGuard {
    fn drop(&mut self) {
        if self.armed {
            self.tier.store.unlock(&self.tier.farm, &self.key);
        }
    }
}

/// What the fill needs to send a stored response to the tier.
pub struct ToTier {
    pub tier: Arc<SharedTier>,
    pub guard: Option<TierGuard>,
    pub max_object_size: u64,
}

impl ToTier {
    /// Sends `e` (stored locally under `key`) to the tier when it may go.
    pub fn send(self, key: &[u8], e: &Entry, stats: &SharedStats) {
        let wire = (e.body.len() as u64 <= self.max_object_size)
            .then(|| encode(e))
            .flatten();
        let (Some(wire), false) = (wire, ttl(e).is_zero()) else {
            return; // the guard, dropped, releases the lock
        };
        let unlock = self.guard.is_some();
        self.tier
            .store
            .put(&self.tier.farm, key, wire, ttl(e), unlock);
        if let Some(g) = self.guard {
            g.disarm();
        }
        stats.add(&stats.stores);
    }
}

const MAGIC: &[u8; 4] = b"FGC2";
/// `stale_if_error` absent.
const NONE: u64 = u64::MAX;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The entry in the tier's form; None for one that stays local (Vary).
pub fn encode(e: &Entry) -> Option<Bytes> {
    if !e.vary.is_empty() {
        return None;
    }
    let head: usize = e
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 6)
        .sum();
    let mut b = BytesMut::with_capacity(40 + head + e.body.len());
    b.put_slice(MAGIC);
    b.put_u16(e.status.as_u16());
    b.put_u64(e.freshness.lifetime.as_millis() as u64);
    b.put_u64(e.age().as_millis() as u64);
    b.put_u64(unix_ms());
    b.put_u8(u8::from(e.freshness.revalidate_always) | u8::from(e.freshness.no_stale) << 1);
    b.put_u64(e.freshness.stale_while_revalidate.as_millis() as u64);
    b.put_u64(
        e.freshness
            .stale_if_error
            .map_or(NONE, |d| (d.as_millis() as u64).min(NONE - 1)),
    );
    b.put_u32(e.headers.len() as u32);
    for (k, v) in &e.headers {
        b.put_u16(k.as_str().len() as u16);
        b.put_slice(k.as_str().as_bytes());
        b.put_u32(v.len() as u32);
        b.put_slice(v.as_bytes());
    }
    b.put_slice(&e.body);
    Some(b.freeze())
}

/// An entry from the tier's form, aged by its time in the tier; None for
/// anything malformed.
pub fn decode(mut b: Bytes, spec: &CacheSpec) -> Option<Arc<Entry>> {
    if b.len() < 51 || &b[..4] != MAGIC {
        return None;
    }
    b.advance(4);
    let status = StatusCode::from_u16(b.get_u16()).ok()?;
    let lifetime = Duration::from_millis(b.get_u64());
    let age = b.get_u64();
    let stored_at = b.get_u64();
    let flags = b.get_u8();
    let swr = Duration::from_millis(b.get_u64());
    let sie = b.get_u64();
    let n = b.get_u32() as usize;
    let mut headers = HeaderMap::with_capacity(n.min(128));
    for _ in 0..n {
        if b.remaining() < 2 {
            return None;
        }
        let kl = b.get_u16() as usize;
        if b.remaining() < kl + 4 {
            return None;
        }
        let k = HeaderName::from_bytes(&b.split_to(kl)).ok()?;
        let vl = b.get_u32() as usize;
        if b.remaining() < vl {
            return None;
        }
        let v = HeaderValue::from_maybe_shared(b.split_to(vl)).ok()?;
        headers.append(k, v);
    }
    let in_tier = unix_ms().saturating_sub(stored_at);
    let freshness = Freshness {
        lifetime,
        initial_age: Duration::from_millis(age.saturating_add(in_tier)),
        revalidate_always: flags & 1 != 0,
        no_stale: flags & 2 != 0,
        stale_while_revalidate: swr,
        stale_if_error: (sie != NONE).then(|| Duration::from_millis(sie)),
    };
    Some(Entry::assemble(
        status,
        headers,
        b,
        freshness,
        Instant::now(),
        Box::new([]),
        spec,
    ))
}

/// How long the tier keeps `e`: its remaining freshness and stale windows.
pub fn ttl(e: &Entry) -> Duration {
    e.evict_at.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Received;

    #[test]
    fn an_entry_travels_with_its_age_and_head() {
        let spec = CacheSpec::default();
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.append("x-two", HeaderValue::from_static("a"));
        h.append("x-two", HeaderValue::from_static("b"));
        let e = Entry::new(
            Received {
                status: StatusCode::OK,
                headers: &h,
                freshness: Freshness {
                    lifetime: Duration::from_secs(60),
                    initial_age: Duration::from_secs(5),
                    revalidate_always: false,
                    no_stale: true,
                    stale_while_revalidate: Duration::from_secs(7),
                    stale_if_error: Some(Duration::from_secs(9)),
                },
                received: Instant::now(),
                vary: Vec::new(),
            },
            Bytes::from_static(b"hello"),
            &spec,
        );
        let wire = encode(&e).expect("no Vary: shared");
        let back = decode(wire.clone(), &spec).expect("decodes");
        assert_eq!(back.status, StatusCode::OK);
        assert_eq!(back.body, "hello");
        assert_eq!(back.headers.get_all("x-two").iter().count(), 2);
        assert_eq!(back.headers.get("content-length").expect("length"), "5");
        assert!(back.freshness.no_stale);
        assert_eq!(
            back.freshness.stale_while_revalidate,
            Duration::from_secs(7)
        );
        assert_eq!(back.freshness.stale_if_error, Some(Duration::from_secs(9)));
        assert!(back.age() >= Duration::from_secs(5));
        assert!(ttl(&back) <= Duration::from_secs(55));
        // Damaged or foreign bytes are refused, never a panic.
        for cut in 0..wire.len() - 5 {
            let _ = decode(wire.slice(..cut), &spec);
        }
        assert!(decode(
            Bytes::from_static(b"nonsense bytes, not an entry at all"),
            &spec
        )
        .is_none());
    }
}
