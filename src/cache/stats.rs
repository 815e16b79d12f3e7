//! Per-farm cache counters, as atomics the request path bumps and the
//! metrics module reads (`farmgate_cache_requests_total{farm,result}`).
//! They live in the cache registry, so they outlive reloads and even a
//! store rebuilt because its key settings changed.

use std::sync::atomic::{AtomicU64, Ordering};

/// How the cache answered one request. Every request of a farm with a
/// cache is counted exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Served from the store, fresh (including a 304 to a conditional).
    Hit,
    /// Went to the backend (nothing usable stored, or not cacheable).
    Miss,
    /// Served stale because the farm could not answer (stale_if_error).
    Stale,
    /// Not a cacheable request (method, Range, upgrade, ...): forwarded.
    Bypass,
    /// Answered by another request's backend fetch (request consolidation).
    Consolidated,
    /// A stale entry the backend confirmed with a 304.
    Revalidated,
    /// Served stale within its stale-while-revalidate window while one
    /// background request revalidates it.
    StaleRevalidate,
}

impl CacheResult {
    pub const ALL: [CacheResult; 7] = [
        CacheResult::Hit,
        CacheResult::Miss,
        CacheResult::Stale,
        CacheResult::Bypass,
        CacheResult::Consolidated,
        CacheResult::Revalidated,
        CacheResult::StaleRevalidate,
    ];

    /// The `result` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
            CacheResult::Bypass => "bypass",
            CacheResult::Consolidated => "consolidated",
            CacheResult::Revalidated => "revalidated",
            CacheResult::StaleRevalidate => "stale_revalidate",
        }
    }
}

#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub bypass: AtomicU64,
    pub consolidated: AtomicU64,
    pub revalidated: AtomicU64,
    pub stale_revalidate: AtomicU64,
    /// Background revalidations started (stale-while-revalidate).
    pub background: AtomicU64,
}

impl CacheStats {
    fn counter(&self, r: CacheResult) -> &AtomicU64 {
        match r {
            CacheResult::Hit => &self.hits,
            CacheResult::Miss => &self.misses,
            CacheResult::Stale => &self.stale,
            CacheResult::Bypass => &self.bypass,
            CacheResult::Consolidated => &self.consolidated,
            CacheResult::Revalidated => &self.revalidated,
            CacheResult::StaleRevalidate => &self.stale_revalidate,
        }
    }

    #[inline]
    pub fn count(&self, r: CacheResult) {
        self.counter(r).fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, r: CacheResult) -> u64 {
        self.counter(r).load(Ordering::Relaxed)
    }
}
