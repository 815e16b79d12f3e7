//! Per-farm statistics that outlive a snapshot, kept by farm name in the
//! `StateRegistry`: today the response cache's counters, which the cache
//! feeds and `farmgate_cache_*` and `/api/status` read.

use super::names::CACHE_RESULTS;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a request went through the farm's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum CacheResult {
    /// Served from the cache.
    Hit = 0,
    /// Not cached: fetched from a server (and maybe stored).
    Miss = 1,
    /// Served a stale entry (stale-while-revalidate, stale-if-error).
    Stale = 2,
    /// Not cacheable (method, headers, rule): went to a server untouched.
    Bypass = 3,
    /// Waited for an identical request already fetching (request collapsing).
    Consolidated = 4,
}

impl CacheResult {
    pub const ALL: [CacheResult; 5] = [
        CacheResult::Hit,
        CacheResult::Miss,
        CacheResult::Stale,
        CacheResult::Bypass,
        CacheResult::Consolidated,
    ];
    pub fn as_str(self) -> &'static str {
        CACHE_RESULTS[self as usize]
    }
}

/// The cache's counters for one farm.
#[derive(Debug, Default)]
pub struct CacheStats {
    results: [AtomicU64; 5],
    /// Bytes currently stored (the cache keeps it up to date).
    pub size_bytes: AtomicU64,
    /// Entries currently stored.
    pub entries: AtomicU64,
}

impl CacheStats {
    #[inline]
    pub fn record(&self, result: CacheResult) {
        self.results[result as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn count(&self, result: CacheResult) -> u64 {
        self.results[result as usize].load(Ordering::Relaxed)
    }
}

/// Everything kept per farm across reloads.
#[derive(Debug, Default)]
pub struct FarmStats {
    pub cache: CacheStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_counts_by_result() {
        let c = CacheStats::default();
        c.record(CacheResult::Hit);
        c.record(CacheResult::Hit);
        c.record(CacheResult::Consolidated);
        assert_eq!(c.count(CacheResult::Hit), 2);
        assert_eq!(c.count(CacheResult::Miss), 0);
        assert_eq!(CacheResult::Consolidated.as_str(), "consolidated");
    }
}
