//! Reload counters and the last reload's outcome (`reload.rs` writes them;
//! metrics and /api/status read them).

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Reload counters and the last outcome, for metrics and /api/status.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    /// Unix time in milliseconds of the last successful load (start-up counts).
    pub last_success_ms: AtomicU64,
    last: Mutex<Option<ReloadEvent>>,
}

/// The outcome of the latest reload attempt.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadEvent {
    /// Unix time in seconds.
    pub at: f64,
    pub ok: bool,
    /// `file`, `signal`, `admin`.
    pub trigger: &'static str,
    /// A summary when it worked; every problem (`file:line:col: key: msg`) when not.
    pub message: String,
    pub duration_ms: f64,
}

impl ReloadStats {
    pub fn last(&self) -> Option<ReloadEvent> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn mark_loaded_now(&self) {
        self.last_success_ms.store(unix_ms(), Ordering::Relaxed);
    }

    pub fn record(&self, event: ReloadEvent) {
        if event.ok {
            self.successes.fetch_add(1, Ordering::Relaxed);
            self.mark_loaded_now();
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(event);
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
