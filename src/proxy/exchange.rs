//! One request/response exchange as the proxy accounts for it: which server
//! it holds a slot on, when it started, how many bytes went out. Dropping it
//! (when the response body ends or the client goes away) releases the
//! server's in-flight slot, writes the access-log line and hands the
//! request's span to the trace exporter.

use crate::farm::state::Attempt;
use crate::farm::ServerState;
use crate::health::FarmHealth;
use crate::log::access::{AccessLog, AccessRecord};
use crate::trace::{Span, SpanExporter};
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
    /// A gRPC call's status, and whether the server sent it (counted per
    /// server) or farmgate did (logged only).
    grpc: Option<(u8, bool)>,
    /// What the log line and the span say, kept while either is wanted
    /// (boxed: the exchange rides on every response body).
    kept: Option<Box<Kept>>,
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
            grpc: None,
            kept: None,
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

    /// Keeps `record` for the access log `log` and the exporter `spans`
    /// (with whether the client connection is TLS), either or both.
    pub fn keep_record(
        &mut self,
        record: AccessRecord,
        log: Option<Arc<AccessLog>>,
        spans: Option<(Arc<SpanExporter>, bool)>,
    ) {
        self.kept = Some(Box::new(Kept { record, log, spans }));
    }

    pub fn record(&mut self) -> Option<&mut AccessRecord> {
        self.kept.as_mut().map(|k| &mut k.record)
    }

    pub fn set_upstream_time(&mut self, upstream: Duration) {
        if let Some(r) = self.record() {
            r.upstream = Some(upstream);
        }
    }

    /// The call's gRPC status; `from_server`: the server sent it.
    pub fn set_grpc_status(&mut self, code: u8, from_server: bool) {
        self.grpc = Some((code, from_server));
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
            if let Some((code, true)) = self.grpc {
                s.stats.record_grpc(code);
            }
        }
        if let Some(kept) = self.kept.take() {
            let Kept {
                mut record,
                log,
                spans,
            } = *kept;
            record.grpc_status = self.grpc.map(|(code, _)| code);
            record.bytes = self.bytes;
            record.total = self.started.elapsed();
            record.aborted = self.aborted;
            if let Some(log) = log {
                log.write(&record);
            }
            if let Some((spans, tls)) = spans {
                if let Some(span) = span_of(record, tls) {
                    spans.offer(span);
                }
            }
        }
    }
}

/// The record of a request and where it goes when the request ends.
struct Kept {
    record: AccessRecord,
    log: Option<Arc<AccessLog>>,
    /// The trace exporter, for a sampled request; the connection's TLS.
    spans: Option<(Arc<SpanExporter>, bool)>,
}

/// The span of a finished request (one with a trace context).
fn span_of(r: AccessRecord, tls: bool) -> Option<Span> {
    Some(Span {
        ctx: r.trace?,
        start: r.time,
        duration: r.total,
        method: r.method,
        uri: r.uri,
        version: r.version,
        tls,
        status: r.status,
        client: r.client,
        local: r.local,
        listener: r.listener,
        farm: r.farm,
        server: r.server,
        upstream: r.upstream,
        bytes: r.bytes,
        aborted: r.aborted,
    })
}
