//! Tells the service manager what farmgate is doing, over systemd's
//! `NOTIFY_SOCKET` (`Type=notify` units): `READY=1` once the listeners are
//! bound, `RELOADING=1` / `READY=1` around a reload, `STOPPING=1` at
//! shutdown, and `WATCHDOG=1` pings when the unit sets `WatchdogSec`.
//! Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use sd_notify::NotifyState;
use std::time::Duration;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
    }
}

/// Serving: the listeners are bound. `status` is shown by `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// This process is now the service's main process: it took over from the
/// old one in a binary upgrade (the unit needs `NotifyAccess=all`, as the
/// new process is not the main one when it says so).
pub fn main_pid() {
    send(&[NotifyState::MainPid(std::process::id())]);
}

/// A reload starts. MONOTONIC_USEC lets `Type=notify-reload` units match it.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// Shutting down: no new connections, requests in flight finishing.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings the watchdog at half its interval while the runtime runs, when the
/// service manager asked for it (`WATCHDOG_USEC`). A stuck runtime misses
/// its pings and systemd restarts the service.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let every = (interval / 2).max(Duration::from_millis(10));
    tracing::info!("systemd watchdog every {interval:?}: pinging every {every:?}");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}
