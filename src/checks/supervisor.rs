//! The background health task: every round it reads the gateway's CURRENT
//! snapshot (so reloaded farms, servers and settings apply without a
//! restart), starts the explicit probes that are due, opens probation for
//! servers that live traffic took out, reconciles state the config no
//! longer explains, and re-evaluates each farm's minimum-servers floor.
//!
//! Each server's first probe is placed at a random point of its interval and
//! later ones keep that phase with a little jitter, so a farm's servers are
//! never probed all at once. A probe that changes a server's state wakes the
//! task at once.

use super::probe;
use crate::config::Snapshot;
use crate::gateway::Gateway;
use crate::health::now_ms;
use crate::health::outcome::Reason;
use crate::health::spec::HealthCheck;
use crate::health::{FarmHealth, ServerHealth};
use crate::proxy::connector::Connector;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// The task looks at the snapshot at least this often (ms).
const MAX_IDLE_MS: u64 = 1000;

/// The running health task; dropping it stops the task.
#[derive(Debug)]
pub struct HealthHandle {
    stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

impl HealthHandle {
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for HealthHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the health task of `gw`. It holds the gateway weakly and ends when
/// stopped or when the gateway is gone.
pub fn spawn(gw: &Arc<Gateway>) -> HealthHandle {
    let (stop, mut stopped) = watch::channel(false);
    let wake = gw.health_wake.clone();
    let weak: Weak<Gateway> = Arc::downgrade(gw);
    let task = tokio::spawn(async move {
        loop {
            let pause = match weak.upgrade() {
                Some(gw) => round(&gw.snapshot(), gw.connector(), &wake),
                None => break,
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = wake.notified() => {}
                r = stopped.changed() => {
                    if r.is_err() || *stopped.borrow() {
                        break;
                    }
                }
            }
        }
    });
    HealthHandle { stop, task }
}

/// One pass over every server of every farm; returns how long to sleep.
fn round(snap: &Arc<Snapshot>, connector: &Connector, wake: &Arc<Notify>) -> Duration {
    let now = now_ms();
    let mut next = now + MAX_IDLE_MS;
    // A trial request that never reported back (its client left) is
    // forgotten after the longest a response may take.
    let stuck_after = snap.proxy.response_timeout + Duration::from_secs(5);
    for (fi, farm) in snap.farms.iter().enumerate() {
        for si in 0..farm.servers.len() {
            let health = farm.health.server(si);
            reconcile(health, &farm.health);
            let due = match &farm.health.check {
                Some(check) => schedule(snap, fi, si, check, now, connector, wake),
                None if farm.health.live.is_some() => health.tick_probation(now, stuck_after),
                None => None,
            };
            if let Some(due) = due {
                next = next.min(due);
            }
        }
        farm.health.apply_floor();
    }
    Duration::from_millis(next.saturating_sub(now).max(1))
}

/// Brings back a server whose reason to be out no longer exists after a
/// reload: its farm lost the health check, or live-traffic checks were
/// turned off and nothing else can restore it.
fn reconcile(state: &ServerHealth, fh: &FarmHealth) {
    if state.is_healthy() {
        return;
    }
    let mut rec = state.lock();
    if state.is_healthy() {
        return;
    }
    if rec.down_by_live {
        if fh.live.is_none() && fh.check.is_none() {
            state.go_up(&mut rec, Reason::LiveTrafficOff, fh.slow_start);
        }
    } else if fh.check.is_none()
        && rec
            .reason
            .as_ref()
            .is_some_and(|r| r.probe_index().is_some() || *r == Reason::Joined)
    {
        state.go_up(&mut rec, Reason::CheckRemoved, fh.slow_start);
    }
}

/// Starts the probe of server `si` of farm `fi` when it is due; returns
/// when it is due next.
fn schedule(
    snap: &Arc<Snapshot>,
    fi: usize,
    si: usize,
    check: &Arc<HealthCheck>,
    now: u64,
    connector: &Connector,
    wake: &Arc<Notify>,
) -> Option<u64> {
    let state = snap.farms[fi].health.server(si);
    let interval = (check.interval.as_millis() as u64).max(1);
    let due = state.next_probe_ms.load(Ordering::Relaxed);
    if due == 0 || due > now + interval {
        // New server, or the interval got shorter: pick a phase.
        let first = now + fastrand::u64(0..interval);
        state.next_probe_ms.store(first, Ordering::Relaxed);
        return Some(first);
    }
    if due > now {
        return Some(due);
    }
    let jitter = interval / 10;
    let mut next = due + interval - jitter / 2 + fastrand::u64(0..=jitter);
    if next <= now {
        next = now + interval;
    }
    state.next_probe_ms.store(next, Ordering::Relaxed);
    if state.probing.swap(true, Ordering::Relaxed) {
        return Some(next); // the previous probe is still running
    }
    let (snap, check, wake) = (snap.clone(), check.clone(), wake.clone());
    let connector = connector.clone();
    tokio::spawn(async move {
        let farm = &snap.farms[fi];
        let server = &farm.servers[si];
        let started = now_ms();
        let report = probe::probe(&check, &connector, server).await;
        let health = farm.health.server(si);
        if health.apply_probe(&check, &report, started, farm.health.slow_start) {
            farm.health.apply_floor();
            wake.notify_one();
        }
        health.probing.store(false, Ordering::Relaxed);
    });
    Some(next)
}
