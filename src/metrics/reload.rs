//! Configuration load statistics: reloads by result and when the running
//! configuration last loaded. Start-up counts as the first success (as in
//! Prometheus' own `prometheus_config_last_reload_success_timestamp_seconds`),
//! so the timestamp is never zero on a running farmgate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub struct ReloadStats {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Unix time of the last successful load, in milliseconds.
    last_success_ms: AtomicU64,
}

impl Default for ReloadStats {
    fn default() -> Self {
        ReloadStats {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_success_ms: AtomicU64::new(unix_ms(SystemTime::now())),
        }
    }
}

impl ReloadStats {
    /// A reload built, validated and installed a new snapshot.
    pub fn succeeded(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.last_success_ms
            .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
    }

    /// A reload was refused (bad config, unreadable file); the old one serves on.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ok_count(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn failed_count(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn last_success(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(self.last_success_ms.load(Ordering::Relaxed))
    }
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_timestamp() {
        let r = ReloadStats::default();
        let start = r.last_success();
        assert!(start > UNIX_EPOCH);
        r.failed();
        r.succeeded();
        r.succeeded();
        assert_eq!((r.ok_count(), r.failed_count()), (2, 1));
        assert!(r.last_success() >= start);
    }
}
