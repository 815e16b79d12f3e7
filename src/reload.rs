//! Hot reload of the YAML config: the triggers (the file changing on disk,
//! SIGHUP via `signals`, `POST /api/reload`) and what a reload does. The new file is read
//! and validated off the request path; an invalid one leaves the running
//! config untouched and is reported (log, metrics, status); a valid one is
//! swapped in atomically, requests in flight finishing on the snapshot they
//! started with, and the listeners are reconciled.

use crate::config;
use crate::gateway::Gateway;
use crate::metrics::reload::unix_ms;
pub use crate::metrics::reload::{ReloadEvent, ReloadStats};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the config file's metadata is looked at (a change serves
/// after two looks, so about 100-200 ms after the write). Polling (not inotify)
/// sees every way a file gets replaced: in-place writes, editors that write
/// a temp file and rename it, symlink swaps (Kubernetes ConfigMaps).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Reads, validates and applies the config file. Reloads are serialised.
pub async fn reload(gw: &Arc<Gateway>, trigger: &'static str) -> ReloadEvent {
    let started = Instant::now();
    let at = unix_ms() as f64 / 1000.0;
    crate::notify::reloading();
    let outcome = apply_file(gw).await;
    // Serving again either way: a refused file leaves the old config running.
    crate::notify::ready(&gw.snapshot().summary());
    let event = ReloadEvent {
        at,
        ok: outcome.is_ok(),
        trigger,
        message: outcome.unwrap_or_else(|e| e),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    if event.ok {
        tracing::info!(
            "config reloaded ({trigger}) in {:.1} ms: {}",
            event.duration_ms,
            event.message
        );
    } else {
        tracing::error!(
            "config reload ({trigger}) refused; the running config stays:\n{}",
            event.message
        );
    }
    gw.reloads.record(event.clone());
    event
}

async fn apply_file(gw: &Arc<Gateway>) -> Result<String, String> {
    let Some(path) = gw.config_path().map(Path::to_path_buf) else {
        return Err("farmgate was started without a config file (the built-in demo); there is nothing to reload".into());
    };
    let mut listeners = gw.listeners.lock().await;
    let registry = gw.registry.clone();
    let snapshot = tokio::task::spawn_blocking(move || config::load_file(&path, &registry))
        .await
        .map_err(|e| format!("config loader failed: {e}"))?
        .map_err(|errors| errors.to_string())?;
    let prepared = listeners.prepare(&snapshot).map_err(|e| e.to_string())?;
    let summary = snapshot.summary();
    gw.install(snapshot);
    let current = gw.snapshot();
    let admin = |tcp| gw.start_admin(tcp);
    let applied = listeners
        .commit(prepared, &current, &gw.serving, admin)
        .await;
    gw.publish_listeners(&listeners);
    applied.map_err(|e| format!("the new config is serving, but: {e}"))?;
    Ok(summary)
}

/// File metadata that changes when the file is written or replaced.
fn fingerprint_one(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

type Fingerprint = Vec<Option<(SystemTime, u64, u64)>>;

/// The config file's fingerprint and those of the files the running
/// snapshot read besides it (rewrite maps, included files); `None` while
/// the config file itself is missing.
fn fingerprint(gw: &Gateway, path: &Path) -> Option<Fingerprint> {
    let main = fingerprint_one(path)?;
    let snap = gw.snapshot();
    let mut all = Vec::with_capacity(1 + snap.sources.len());
    all.push(Some(main));
    all.extend(snap.sources.iter().map(|p| fingerprint_one(p)));
    Some(all)
}

/// Watches `path` and reloads when it changes, once it has stopped changing
/// (debounced: two looks `WATCH_INTERVAL` apart agree). A file that is
/// briefly missing (rename in progress) is waited for, not reloaded.
pub fn watch_file(gw: Arc<Gateway>, path: PathBuf) -> tokio::task::JoinHandle<()> {
    // Looked at now, not when the task first runs: an edit in between counts.
    let mut seen = fingerprint(&gw, &path);
    tokio::spawn(async move {
        let mut pending: Option<Fingerprint> = None;
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if gw.is_shutting_down() {
                return;
            }
            let now = fingerprint(&gw, &path);
            match (now, pending.take()) {
                (None, _) => {}
                (Some(f), Some(p)) if f == p => {
                    reload(&gw, "file").await;
                    // Looked at again: the new snapshot may read other files.
                    seen = fingerprint(&gw, &path);
                }
                (Some(f), _) if Some(&f) != seen.as_ref() => pending = Some(f),
                _ => {}
            }
        }
    })
}
