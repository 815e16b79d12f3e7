//! Hot reload of the YAML config: the triggers (the file changing on disk,
//! SIGHUP via `signals`, `POST /api/reload`) and what a reload does. The new file is read
//! and validated off the request path; an invalid one leaves the running
//! config untouched and is reported (log, metrics, status); a valid one is
//! swapped in atomically, requests in flight finishing on the snapshot they
//! started with, and the listeners are reconciled.
//!
//! A changed DNS answer rebuilds the running snapshot too ([`watch_names`]):
//! from the text it was built from, not the file, and without counting as
//! a reload.

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
    install(gw, &mut listeners, snapshot).await
}

/// Installs a built snapshot and reconciles the listeners with it.
async fn install(
    gw: &Arc<Gateway>,
    listeners: &mut crate::listener::set::ListenerSet,
    snapshot: config::Snapshot,
) -> Result<String, String> {
    let prepared = listeners.prepare(&snapshot).map_err(|e| e.to_string())?;
    let summary = snapshot.summary();
    gw.install(snapshot);
    let current = gw.snapshot();
    let admin = |tcp| gw.start_admin(tcp);
    let applied = listeners
        .commit(prepared, &current, &gw.serving, admin)
        .await;
    gw.publish_listeners(listeners);
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

// === re-resolving server names ===

/// The longest the name task sleeps: names a reload brings are looked up
/// within this (the build looked them up once already).
const NAMES_IDLE: Duration = Duration::from_secs(1);

/// Looks up the host names of DNS-named servers again when their
/// `resolve_interval` has passed, and rebuilds the snapshot when an answer
/// changed: new addresses join as members, members whose address is gone
/// leave (their requests in flight finish on the snapshot they started
/// with; no new request picks them). Ends when the gateway is gone.
pub fn watch_names(gw: std::sync::Weak<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let pause = match gw.upgrade() {
                Some(gw) if !gw.is_shutting_down() => resolve_round(&gw).await,
                _ => return,
            };
            tokio::time::sleep(pause).await;
        }
    })
}

/// One round: looks up the names that are due; returns how long to wait.
async fn resolve_round(gw: &Arc<Gateway>) -> Duration {
    let snap = gw.snapshot();
    let mut names: Vec<(Arc<crate::farm::resolve::DnsName>, Duration)> = Vec::new();
    for s in snap.farms.iter().flat_map(|f| f.servers.iter()) {
        let Some(r) = &s.dns else { continue };
        match names.iter_mut().find(|(n, _)| Arc::ptr_eq(n, &r.name)) {
            Some((_, i)) => *i = (*i).min(r.interval),
            None => names.push((r.name.clone(), r.interval)),
        }
    }
    if names.is_empty() {
        return NAMES_IDLE;
    }
    let now = Instant::now();
    let due: Vec<_> = names
        .iter()
        .filter(|(n, i)| n.due(*i, now))
        .map(|(n, _)| n.clone())
        .collect();
    // One blocking task per name: a slow one does not hold up the others.
    let lookups: Vec<_> = due
        .into_iter()
        .map(|n| {
            let spec = snap.resolve.clone();
            tokio::task::spawn_blocking(move || n.lookup(&*spec))
        })
        .collect();
    let mut changed = false;
    for l in lookups {
        changed |= matches!(l.await, Ok(crate::farm::resolve::Lookup::Changed));
    }
    drop(snap);
    if changed {
        rebuild(gw).await;
    }
    let now = Instant::now();
    names
        .iter()
        .map(|(n, i)| n.wait(*i, now))
        .min()
        .unwrap_or(NAMES_IDLE)
        .clamp(Duration::from_millis(10), NAMES_IDLE)
}

/// Rebuilds the running snapshot with the names' current answers.
async fn rebuild(gw: &Arc<Gateway>) {
    let started = Instant::now();
    let mut listeners = gw.listeners.lock().await;
    let old = gw.snapshot();
    let registry = gw.registry.clone();
    let again = old.rebuild.clone();
    let built = tokio::task::spawn_blocking(move || again.run(&registry)).await;
    let snapshot = match built {
        Ok(Ok(s)) => s,
        Ok(Err(errors)) => {
            tracing::error!("host names changed, but the config no longer builds; the running config stays:\n{errors}");
            return;
        }
        Err(e) => {
            tracing::error!("host names changed, but rebuilding failed: {e}");
            return;
        }
    };
    for f in &old.farms {
        for s in f.servers.iter().filter(|s| s.dns.is_some()) {
            let kept = snapshot
                .farm_index(&f.name)
                .is_some_and(|i| snapshot.farms[i].server_by_name(&s.name).is_some());
            if !kept {
                tracing::info!(farm = %f.name, server = %s.name,
                    "address left its host name: draining ({} request(s) in flight finish there)",
                    s.state.in_flight());
            }
        }
    }
    drop(old);
    match install(gw, &mut listeners, snapshot).await {
        Ok(summary) => tracing::info!(
            "servers follow their host names ({:.1} ms): {summary}",
            started.elapsed().as_secs_f64() * 1000.0
        ),
        Err(e) => tracing::error!("host names changed: {e}"),
    }
}
