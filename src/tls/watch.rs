//! Certificate file watching: every `watch_interval` the listener's cert and
//! key files are stat-ed; when any changed (modification time, size, inode or
//! device), the whole set is loaded again and, if valid, swapped in for new
//! handshakes. A refused set is logged once per change and the running
//! certificates stay.
//!
//! Polling, not inotify (`notify`): certificate renewals are rare, a few
//! `stat` calls every couple of seconds cost nothing, and polling sees every
//! way a file gets replaced: in-place writes, `mv` over it, the symlink swaps
//! of Kubernetes secrets and cert-manager, network file systems and bind
//! mounts where inotify events never arrive. It also needs no extra crate.

use super::acceptor::TlsListener;
use super::certs::{load_set, CertPaths};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    device: u64,
}

/// The stamps of every cert and key file, in order; `None` for a file that
/// cannot be stat-ed (being replaced, or gone).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(Vec<Option<Stamp>>);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    // metadata follows symlinks: a swapped link target is a change.
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (inode, device) = {
        use std::os::unix::fs::MetadataExt;
        (m.ino(), m.dev())
    };
    #[cfg(not(unix))]
    let (inode, device) = (0, 0);
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode,
        device,
    })
}

fn fingerprint(paths: &[CertPaths]) -> Fingerprint {
    Fingerprint(
        paths
            .iter()
            .flat_map(|p| [stamp(&p.cert), stamp(&p.key)])
            .collect(),
    )
}

/// Checks the files once against `seen`; reloads when they changed.
fn poll_once(tls: &TlsListener, seen: &mut Fingerprint) {
    let spec = tls.spec();
    let now = fingerprint(&spec.certificates);
    if now == *seen {
        return;
    }
    *seen = now;
    match load_set(&spec.certificates) {
        Ok(set) => {
            tls.stats.reloaded(true);
            tracing::info!(listener = %tls.name, "certificate files changed: new certificates serve the next handshakes");
            tls.replace_certificates(Arc::new(set));
        }
        Err(e) => {
            tls.stats.reloaded(false);
            tracing::error!(listener = %tls.name, "certificate files changed but were refused, the running certificates stay: {e}");
        }
    }
}

/// Watches `tls`'s certificate files until `stop` says so or its sender is
/// dropped (the listener is gone).
pub fn spawn(tls: Arc<TlsListener>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    // Taken now, not in the task: a change right after start must count.
    let mut seen = fingerprint(&tls.spec().certificates);
    tokio::spawn(async move {
        loop {
            let interval = tls.spec().watch_interval;
            let tick = async {
                if interval.is_zero() {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(interval).await;
            };
            tokio::select! {
                _ = tick => {}
                r = stop.wait_for(|s| *s) => { let _ = r; return; }
            }
            let t = tls.clone();
            let mut s = seen.clone();
            match tokio::task::spawn_blocking(move || {
                poll_once(&t, &mut s);
                s
            })
            .await
            {
                Ok(s) => seen = s,
                Err(_) => return,
            }
        }
    })
}
