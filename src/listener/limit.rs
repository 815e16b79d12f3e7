//! `listeners[].max_connections`: the open connections of one listener, and
//! what happens at the cap.
//!
//! At the cap a new connection is accepted and the connection that has
//! waited longest without a request in flight (an idle keep-alive
//! connection, or one still trickling its request head: a slowloris) is
//! closed to make room, the way nginx reuses idle connections. Only when
//! every connection has a request in flight does the listener stop
//! accepting until one ends; new clients then wait in the kernel's backlog.
//! So a flood of idle or slow connections cannot lock honest clients out,
//! and a request in flight is never dropped to make room.
//!
//! The set takes a lock when a connection opens or closes, never per
//! request; choosing whom to evict scans the set, only at the cap.

use super::activity::ConnActivity;
use crate::limits::{AccessList, Admit, InFlight, InFlightGuard};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// How often a full listener looks again for a connection to evict.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Default)]
pub struct ConnSet {
    slots: Mutex<Slots>,
    open: AtomicUsize,
    freed: Notify,
    /// Connections closed to make room, for metrics.
    pub evicted: AtomicU64,
    /// Open connections by client address, for `max_connections_per_ip`
    /// (made when first needed; it outlives reloads with the set).
    per_ip: std::sync::OnceLock<Arc<InFlight>>,
    /// Connections closed at once, by reason, for metrics.
    pub refused: Refused,
}

/// Connections a listener closed on arrival.
#[derive(Debug, Default)]
pub struct Refused {
    /// The listener's `access` lists refuse the client.
    pub access: AtomicU64,
    /// The client already had `max_connections_per_ip` open.
    pub per_ip: AtomicU64,
}

/// Client addresses the per-address table tracks at once (8 bytes each:
/// 512 KiB); beyond, a new address is let in uncounted.
pub const PER_IP_ADDRESSES: usize = 65_536;

#[derive(Debug, Default)]
struct Slots {
    conns: Vec<Option<Arc<ConnActivity>>>,
    free: Vec<usize>,
}

/// A connection's place in its listener's set; frees it when dropped.
#[derive(Debug)]
pub struct Slot {
    set: Arc<ConnSet>,
    index: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = self.set.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.conns.get_mut(self.index) {
            *s = None;
            slots.free.push(self.index);
        }
        drop(slots);
        self.set.open.fetch_sub(1, Relaxed);
        self.set.freed.notify_one();
    }
}

impl ConnSet {
    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// Admits a connection from `ip` past the listener's `access` lists and
    /// `max_connections_per_ip`; `Err` closes it. `Ok` holds its place
    /// under the per-address cap until dropped.
    pub fn admit_client(
        &self,
        ip: std::net::IpAddr,
        access: Option<&AccessList>,
        per_ip: Option<u32>,
    ) -> Result<Option<InFlightGuard>, &'static str> {
        if access.is_some_and(|a| !a.permits(ip)) {
            self.refused.access.fetch_add(1, Relaxed);
            return Err("refused by the listener's access lists");
        }
        let Some(max) = per_ip else {
            return Ok(None);
        };
        let table = self
            .per_ip
            .get_or_init(|| Arc::new(InFlight::new(PER_IP_ADDRESSES)));
        match table.enter(crate::limits::key::hash_ip(ip), max) {
            Admit::In(g) => Ok(Some(g)),
            Admit::Untracked => Ok(None),
            Admit::Full => {
                self.refused.per_ip.fetch_add(1, Relaxed);
                Err("max_connections_per_ip reached")
            }
        }
    }

    /// Admits `conn` once the listener has fewer than `max` connections,
    /// evicting the longest-waiting connection without a request in flight
    /// if the listener is full.
    pub async fn admit(self: &Arc<Self>, conn: Arc<ConnActivity>, max: usize) -> Slot {
        loop {
            let freed = self.freed.notified();
            if let Some(slot) = self.try_insert(&conn, max) {
                return slot;
            }
            self.evict_one();
            // A connection that was busy may go idle without closing:
            // look again now and then.
            let _ = tokio::time::timeout(RECHECK, freed).await;
        }
    }

    fn try_insert(self: &Arc<Self>, conn: &Arc<ConnActivity>, max: usize) -> Option<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if self.open.load(Relaxed) >= max {
            return None;
        }
        self.open.fetch_add(1, Relaxed);
        let index = match slots.free.pop() {
            Some(i) => {
                slots.conns[i] = Some(conn.clone());
                i
            }
            None => {
                slots.conns.push(Some(conn.clone()));
                slots.conns.len() - 1
            }
        };
        Some(Slot {
            set: self.clone(),
            index,
        })
    }

    /// Closes the connection that has waited longest without a request in
    /// flight. Returns whether there was one.
    pub fn evict_one(&self) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let victim = slots
            .conns
            .iter()
            .flatten()
            .filter_map(|c| c.evictable_since().map(|since| (since, c)))
            .min_by_key(|(since, _)| *since)
            .map(|(_, c)| c.clone());
        drop(slots);
        match victim {
            Some(c) => {
                c.evict();
                self.evicted.fetch_add(1, Relaxed);
                true
            }
            None => false,
        }
    }
}

/// Raises the soft limit on open files to the hard limit, as HAProxy does,
/// so that `max_connections` is not cut short by a low default; warns when
/// the limit is still below what the listeners may open (each proxied
/// connection can hold a backend connection too).
pub fn raise_fd_limit(snap: &crate::config::Snapshot) {
    let wanted: u64 = snap
        .listeners
        .iter()
        .map(|l| l.max_connections as u64 * 2)
        .sum::<u64>()
        + 256;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            "the open-file limit is {limit}; the listeners' max_connections may need {wanted} \
             (raise the hard limit: ulimit -Hn, LimitNOFILE=)"
        ),
        Ok(limit) => tracing::debug!("open-file limit {limit}"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn conn() -> Arc<ConnActivity> {
        Arc::new(ConnActivity::new(
            Duration::from_secs(10),
            Duration::from_secs(10),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn full_set_evicts_the_oldest_idle_connection() {
        let set = Arc::new(ConnSet::default());
        let old = conn();
        let _a = set.admit(old.clone(), 2).await;
        tokio::time::advance(Duration::from_millis(5)).await;
        let busy = conn();
        busy.request_started(false);
        let _b = set.admit(busy.clone(), 2).await;
        assert_eq!(set.open(), 2);

        // Full: the idle one is evicted, never the busy one.
        let newcomer = tokio::spawn({
            let set = set.clone();
            async move { set.admit(conn(), 2).await }
        });
        tokio::time::timeout(Duration::from_secs(1), old.expired(true))
            .await
            .expect("old connection evicted");
        assert!(busy.evictable_since().is_none());
        drop(_a);
        let slot = newcomer.await.expect("admitted");
        assert_eq!(set.open(), 2);
        assert_eq!(set.evicted.load(Relaxed), 1);
        drop(slot);
        assert_eq!(set.open(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn all_busy_waits_for_a_connection_to_end() {
        let set = Arc::new(ConnSet::default());
        let busy = conn();
        busy.request_started(false);
        let first = set.admit(busy, 1).await;
        let waiting = tokio::spawn({
            let set = set.clone();
            async move { set.admit(conn(), 1).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished());
        drop(first);
        let _slot = waiting.await.expect("admitted");
        assert_eq!(set.evicted.load(Relaxed), 0);
    }
}
