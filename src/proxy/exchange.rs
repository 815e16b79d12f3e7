//! One request/response exchange as the proxy accounts for it: which server
//! it holds a slot on, when it started, how many bytes went out. Dropping it
//! (when the response body ends or the client goes away) releases the
//! server's in-flight slot and writes the access-log line.

use crate::farm::state::Attempt;
use crate::farm::ServerState;
use crate::health::FarmHealth;
use crate::log::access::{AccessLog, AccessRecord};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Exchange {
    started: Instant,
    server: Option<Arc<ServerState>>,
    /// The held server's farm health and index in the farm, to account a
    /// failure that happens after the response head (a backend closing
    /// mid-body).
    farm: Option<(Arc<FarmHealth>, usize)>,
    bytes: u64,
    aborted: bool,
    /// Index (in the farm) of the server whose response this is.
    picked: Option<usize>,
    log: Option<(Arc<AccessLog>, Box<AccessRecord>)>,
    /// Places under limits' `concurrent` caps, given back when this ends.
    limits: smallvec::SmallVec<[crate::limits::InFlightGuard; 2]>,
}

impl Exchange {
    pub fn new(started: Instant) -> Self {
        Exchange {
            started,
            server: None,
            farm: None,
            bytes: 0,
            aborted: false,
            picked: None,
            log: None,
            limits: smallvec::SmallVec::new(),
        }
    }

    /// Keeps the request's places under limits' `concurrent` caps until the
    /// response ends (or the client goes away).
    pub fn hold_limits(&mut self, held: smallvec::SmallVec<[crate::limits::InFlightGuard; 2]>) {
        self.limits = held;
    }

    pub fn set_picked(&mut self, index: usize) {
        self.picked = Some(index);
    }

    /// The server that answered, when one did (not for cache hits).
    pub fn picked(&self) -> Option<usize> {
        self.picked
    }

    /// Takes an in-flight slot on `server` (server `index` of the farm
    /// `farm` watches) until this exchange ends.
    pub fn hold(&mut self, server: Arc<ServerState>, farm: &Arc<FarmHealth>, index: usize) {
        self.farm = Some((farm.clone(), index));
        server.in_flight.fetch_add(1, Ordering::Relaxed);
        server.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = self.server.replace(server) {
            old.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The server failed after its response head (closed or broke the
    /// body): a failed attempt for its counters and live-traffic checks.
    pub fn backend_failed(&mut self, reason: &'static str) {
        if let (Some(_), Some((farm, index))) = (&self.server, &self.farm) {
            farm.record(*index, Attempt::Failed { reason });
        }
    }

    /// Releases the in-flight slot early (a failed attempt before a retry).
    pub fn release(&mut self) {
        if let Some(s) = self.server.take() {
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn log_with(&mut self, log: Arc<AccessLog>, record: AccessRecord) {
        self.log = Some((log, Box::new(record)));
    }

    pub fn record(&mut self) -> Option<&mut AccessRecord> {
        self.log.as_mut().map(|(_, r)| &mut **r)
    }

    pub fn set_upstream_time(&mut self, upstream: Duration) {
        if let Some(r) = self.record() {
            r.upstream = Some(upstream);
        }
    }

    pub fn add_response_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    pub fn mark_aborted(&mut self) {
        self.aborted = true;
    }

    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
            s.bytes_received.fetch_add(self.bytes, Ordering::Relaxed);
        }
        if let Some((log, mut record)) = self.log.take() {
            record.bytes = self.bytes;
            record.total = self.started.elapsed();
            record.aborted = self.aborted;
            log.write(&record);
        }
    }
}
