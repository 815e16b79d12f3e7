//! The span exporter: requests hand their finished span to a bounded queue
//! ([`SpanExporter::offer`], one `try_send`, never waiting: a full queue
//! drops the span and counts it), and one background thread batches them
//! (`batch_size` spans, or what came within `interval` of the first;
//! drained every few milliseconds, so requests never wake it) and
//! POSTs each batch as OTLP/HTTP JSON (`otlp.rs`) to the collector over a
//! kept-alive connection (`client.rs`). A batch the collector refuses or
//! that cannot be sent is counted as failed and let go: traces are worth
//! less than the memory and time a retry backlog would take from requests.
//!
//! The thread ends when the last handle to its queue is dropped (a reload
//! that changed `trace.export`, or shutdown), after sending what was queued.

use super::client::Client;
use super::spec::ExportSpec;
use crate::ground::trace_context::TraceContext;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One request as a span.
#[derive(Debug, Clone)]
pub struct Span {
    pub ctx: TraceContext,
    pub start: SystemTime,
    pub duration: Duration,
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub tls: bool,
    /// 0 when no response was sent.
    pub status: u16,
    pub client: IpAddr,
    pub local: SocketAddr,
    pub listener: Arc<str>,
    pub farm: Option<Arc<str>>,
    pub server: Option<Arc<str>>,
    pub upstream: Option<Duration>,
    pub bytes: u64,
    pub aborted: bool,
}

/// Export counters; they outlive exporters replaced by reloads.
#[derive(Debug, Default)]
pub struct SpanStats {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl SpanStats {
    /// Spans the collector accepted.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Spans in batches the collector refused or that could not be sent.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// How often a filling batch is drained from the queue.
const DRAIN_TICK: Duration = Duration::from_millis(5);

/// A running exporter: the queue's sending side.
#[derive(Debug)]
pub struct SpanExporter {
    spec: ExportSpec,
    tx: SyncSender<Span>,
    stats: Arc<SpanStats>,
}

impl SpanExporter {
    /// Starts the exporter thread for `spec`, counting into `stats`.
    pub fn start(spec: &ExportSpec, stats: Arc<SpanStats>) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = mpsc::sync_channel(spec.queue_size);
        let mut worker = Worker {
            client: Client::new(spec),
            spec: spec.clone(),
            stats: stats.clone(),
            body: String::new(),
            failing: false,
        };
        std::thread::Builder::new()
            .name("farmgate-span-export".into())
            .spawn(move || worker.run(rx))?;
        Ok(Arc::new(SpanExporter {
            spec: spec.clone(),
            tx,
            stats,
        }))
    }

    /// What this exporter was started with (a reload keeps it when equal).
    pub fn spec(&self) -> &ExportSpec {
        &self.spec
    }

    /// Queues a finished span; never waits. A full queue drops it.
    #[inline]
    pub fn offer(&self, span: Span) {
        match self.tx.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The exporter thread's side.
struct Worker {
    client: Client,
    spec: ExportSpec,
    stats: Arc<SpanStats>,
    /// The JSON body, reused batch after batch.
    body: String,
    /// The last batch failed: the next failure is not logged again.
    failing: bool,
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<Span>) {
        let mut batch = Vec::with_capacity(self.spec.batch_size.min(4096));
        // Blocks only while idle: a sender wakes a blocked receiver, so
        // under traffic the thread sleeps between drains instead, and a
        // request's `offer` never pays a wake-up (as the access log's
        // writer does).
        while let Ok(first) = rx.recv() {
            batch.push(first);
            let deadline = Instant::now() + self.spec.interval;
            let mut open = true;
            loop {
                while batch.len() < self.spec.batch_size {
                    match rx.try_recv() {
                        Ok(span) => batch.push(span),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if batch.len() >= self.spec.batch_size || !open || left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(DRAIN_TICK));
            }
            self.send(&batch);
            batch.clear();
            if !open {
                break;
            }
        }
    }

    fn send(&mut self, batch: &[Span]) {
        super::otlp::encode(&mut self.body, &self.spec.service_name, batch);
        let n = batch.len() as u64;
        match self.client.post(self.body.as_bytes()) {
            Ok(status) if (200..300).contains(&status) => {
                self.stats.exported.fetch_add(n, Ordering::Relaxed);
                if self.failing {
                    tracing::info!("span export to {} works again", self.spec.url);
                }
                self.failing = false;
            }
            outcome => {
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
                if !self.failing {
                    let why = match outcome {
                        Ok(status) => format!("the collector answered {status}"),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(
                        "span export to {} failed ({why}); {n} span(s) lost, further failures counted only",
                        self.spec.url
                    );
                }
                self.failing = true;
            }
        }
    }
}
