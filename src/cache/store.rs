//! The per-farm response store, on moka.
//!
//! Why moka: it is a well-kept concurrent cache whose reads take no lock,
//! bounded by a weigher (we weigh entries in bytes, so `max_memory` is a real
//! bound), with TinyLFU admission and LRU eviction (W-TinyLFU, as Caffeine)
//! which keeps popular objects when a scan of one-off URLs passes through,
//! and per-entry expiry, so an entry leaves memory once it is useless
//! rather than when it happens to be evicted.
//!
//! A key maps to a [`Slot`]: a stored response; a Vary marker telling
//! under which secondary key the variants live; or a "pass" marker for a
//! URL whose last response could not be shared, so the next requests go
//! straight to the backend instead of queueing behind each other
//! (Varnish's hit-for-miss).

use super::config::QueryString;
use super::consolidate::Inflight;
use super::entry::Entry;
use super::key::{self, Key};
use super::stats::CacheStats;
use http::header::{HeaderMap, HeaderName};
use moka::sync::Cache;
use moka::Expiry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a URL whose response could not be shared skips consolidation.
pub const PASS_TTL: Duration = Duration::from_secs(60);
/// How long a Vary marker outlives the last variant stored under it.
const VARY_KEEP: Duration = Duration::from_secs(86_400);

#[derive(Clone, Debug)]
pub enum Slot {
    Response(Arc<Entry>),
    Vary(Arc<VaryMarker>),
    Pass,
}

#[derive(Debug)]
pub struct VaryMarker {
    /// Part of every secondary key; a new marker (different names, or after
    /// an invalidation) makes older variants unreachable.
    pub id: u64,
    pub names: Box<[HeaderName]>,
}

/// What the store holds for a request.
pub enum Found {
    Entry(Arc<Entry>),
    /// The last response for this URL could not be shared.
    Pass,
    Nothing,
}

/// The result of a lookup: the keys involved and what was found.
pub struct Lookup {
    pub primary: Key,
    /// The secondary key, when the URL varies.
    pub variant: Option<Key>,
    pub found: Found,
}

impl Lookup {
    /// The key this request's response lives under.
    pub fn key(&self) -> &[u8] {
        self.variant.as_deref().unwrap_or(&self.primary)
    }
}

struct SlotExpiry;

impl SlotExpiry {
    fn ttl(slot: &Slot, now: Instant) -> Duration {
        match slot {
            Slot::Response(e) => e.evict_at.saturating_duration_since(now),
            Slot::Vary(_) => VARY_KEEP,
            Slot::Pass => PASS_TTL,
        }
    }
}

impl Expiry<Key, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &Key, v: &Slot, at: Instant) -> Option<Duration> {
        Some(Self::ttl(v, at))
    }
    fn expire_after_update(
        &self,
        _: &Key,
        v: &Slot,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Self::ttl(v, at))
    }
}

fn weigh(k: &Key, v: &Slot) -> u32 {
    let slot = match v {
        Slot::Response(e) => e.weight as usize + e.variants.bytes(),
        Slot::Vary(m) => 64 + m.names.iter().map(|n| n.as_str().len() + 24).sum::<usize>(),
        Slot::Pass => 64,
    };
    (k.len() + 64 + slot).min(u32::MAX as usize) as u32
}

pub struct CacheStore {
    map: Cache<Key, Slot>,
    pub stats: Arc<CacheStats>,
    pub(crate) inflight: Arc<Inflight>,
    next_vary: AtomicU64,
    pub(crate) query: QueryString,
    pub(crate) capacity: u64,
}

impl std::fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStore")
            .field("capacity", &self.capacity)
            .field("query", &self.query)
            .field("entries", &self.map.entry_count())
            .finish()
    }
}

impl CacheStore {
    pub fn new(capacity: u64, query: QueryString, stats: Arc<CacheStats>) -> CacheStore {
        CacheStore {
            map: Cache::builder()
                .max_capacity(capacity)
                .weigher(weigh)
                .expire_after(SlotExpiry)
                .build(),
            stats,
            inflight: Arc::default(),
            next_vary: AtomicU64::new(1),
            query,
            capacity,
        }
    }

    /// Finds what is stored for a request with primary key `primary`.
    pub fn lookup(&self, primary: Key, req: &HeaderMap) -> Lookup {
        let (variant, found) = match self.map.get(&*primary) {
            None => (None, Found::Nothing),
            Some(Slot::Pass) => (None, Found::Pass),
            Some(Slot::Response(e)) => (None, Found::Entry(e)),
            Some(Slot::Vary(m)) => {
                let k = key::secondary(&primary, m.id, &m.names, req);
                let found = match self.map.get(&*k) {
                    Some(Slot::Response(e)) => Found::Entry(e),
                    _ => Found::Nothing,
                };
                (Some(k), found)
            }
        };
        Lookup {
            primary,
            variant,
            found,
        }
    }

    /// Stores the response to a request with primary key `primary` whose
    /// values for the headers the response varies on are `vary_values`
    /// (see [`key::vary_values`]).
    pub fn insert(&self, primary: &[u8], vary_values: &[u8], entry: Arc<Entry>) {
        if entry.vary.is_empty() {
            self.map.insert(primary.into(), Slot::Response(entry));
            return;
        }
        let marker = match self.map.get(primary) {
            Some(Slot::Vary(m)) if m.names == entry.vary => m,
            _ => Arc::new(VaryMarker {
                id: self.next_vary.fetch_add(1, Ordering::Relaxed),
                names: entry.vary.clone(),
            }),
        };
        let k = key::secondary_with(primary, marker.id, vary_values);
        // Re-inserting the marker restarts its expiry.
        self.map.insert(primary.into(), Slot::Vary(marker));
        self.map.insert(k, Slot::Response(entry));
    }

    /// Replaces the entry at exactly `key` (a refreshed one after a 304).
    pub fn replace(&self, key: &[u8], entry: Arc<Entry>) {
        self.map.insert(key.into(), Slot::Response(entry));
    }

    /// Stores `entry` again at `key` so its weight counts the variants it
    /// gained, unless it was replaced or removed meanwhile (a purge must
    /// not be undone).
    pub fn reweigh(&self, key: &Key, entry: &Arc<Entry>) {
        let _ = self.map.entry(key.clone()).and_compute_with(|slot| {
            match slot.map(moka::Entry::into_value) {
                Some(Slot::Response(e)) if Arc::ptr_eq(&e, entry) => {
                    moka::ops::compute::Op::Put(Slot::Response(e))
                }
                _ => moka::ops::compute::Op::Nop,
            }
        });
    }

    /// Remembers that responses for `primary` cannot be shared for now;
    /// this also drops whatever was stored for it.
    pub fn mark_pass(&self, primary: &[u8]) {
        self.map.insert(primary.into(), Slot::Pass);
    }

    /// Forgets `key` (and, for a primary key, every variant under it).
    pub fn invalidate(&self, key: &[u8]) {
        self.map.invalidate(key);
    }

    /// Drops every stored response whose path starts with `prefix` (all of
    /// them for `None`). Returns how many responses were dropped.
    pub fn purge(&self, prefix: Option<&[u8]>) -> u64 {
        let mut purged = 0;
        for (k, v) in self.map.iter() {
            if prefix.is_none_or(|p| key::path_of(&k).starts_with(p)) {
                self.map.invalidate(&*k);
                if matches!(v, Slot::Response(_)) {
                    purged += 1;
                }
            }
        }
        purged
    }

    /// Bytes held, as weighed against `max_memory`. For reporting (metrics,
    /// status), never the request path: it first settles moka's pending
    /// maintenance, without which the figure lags behind inserts.
    pub fn size_bytes(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.weighted_size()
    }

    /// Keys held (responses and markers); reporting only, like `size_bytes`.
    pub fn entries(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }

    /// Runs moka's pending maintenance (eviction, expiry) now.
    pub fn run_pending_tasks(&self) {
        self.map.run_pending_tasks();
    }

    /// Copies every slot of `old` (a store being replaced because its size
    /// changed); the entries themselves are shared, not copied.
    pub(crate) fn migrate_from(&self, old: &CacheStore) {
        for (k, v) in old.map.iter() {
            self.map.insert((*k).clone(), v);
        }
    }
}
