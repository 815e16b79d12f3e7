//! The access log: one line per request (`text`, `json`, `combined` or
//! `w3c`, see `format`), to stdout, a file or syslog. Lines are formatted
//! on the request's task and written by one background thread, so a slow
//! disk or terminal never blocks a request. The file is reopened on demand
//! (SIGUSR1, logrotate's convention), so a rotated file is let go.

use super::format;
use super::syslog;
use super::LogSpec;
use http::{HeaderValue, Method, Version};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use super::format::rfc3339;

/// Everything one access-log line says.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub time: SystemTime,
    pub client: IpAddr,
    /// The listener's address the request came in on.
    pub local: SocketAddr,
    pub listener: Arc<str>,
    pub method: Method,
    pub uri: http::Uri,
    pub version: Version,
    pub status: u16,
    pub farm: Option<Arc<str>>,
    pub server: Option<Arc<str>>,
    pub upstream: Option<Duration>,
    pub total: Duration,
    pub bytes: u64,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    /// The response did not finish (client left, backend reset).
    pub aborted: bool,
    /// A gRPC call's `grpc-status` (the server's, or farmgate's own answer).
    pub grpc_status: Option<u8>,
    /// The request's trace context (`trace:`), when tracing is on.
    pub trace: Option<crate::ground::trace_context::TraceContext>,
}

/// What the writer thread is asked to do.
enum Job {
    Line(String, SystemTime),
    Reopen,
}

/// The line format (`log.access`); `Off` writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessFormat {
    #[default]
    Text,
    Json,
    /// Apache/nginx "combined".
    Combined,
    /// IIS W3C extended, with its `#Fields:` header.
    W3c,
    Off,
}

/// A running access log.
#[derive(Debug)]
pub struct AccessLog {
    format: AccessFormat,
    tx: mpsc::Sender<Job>,
}

impl AccessLog {
    /// Opens the output and starts the writer thread. `None` when the
    /// format is `off`.
    pub fn start(spec: &LogSpec) -> std::io::Result<Option<Arc<Self>>> {
        if spec.access == AccessFormat::Off {
            return Ok(None);
        }
        let out = match (&spec.access_syslog, &spec.access_file) {
            (Some(s), _) => Output::Syslog(syslog::Sender::new(s.clone())),
            (None, Some(path)) => Output::File {
                file: std::io::BufWriter::with_capacity(64 * 1024, open(path)?),
                path: path.clone(),
            },
            (None, None) => Output::Stdout(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            )),
        };
        let mut w = Writer {
            out,
            w3c: spec.access == AccessFormat::W3c,
        };
        w.opened();
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("farmgate-access-log".into())
            .spawn(move || w.run(rx))?;
        Ok(Some(Arc::new(AccessLog {
            format: spec.access,
            tx,
        })))
    }

    /// Whether `a` and `b` log to the same place the same way (a reload
    /// that changes neither keeps the running writer).
    pub fn same(a: &LogSpec, b: &LogSpec) -> bool {
        a.access == b.access && a.access_file == b.access_file && a.access_syslog == b.access_syslog
    }

    /// Whether lines carry the Referer and User-Agent (`combined`, `w3c`);
    /// other formats skip copying them per request.
    #[inline]
    pub fn wants_client_headers(&self) -> bool {
        matches!(self.format, AccessFormat::Combined | AccessFormat::W3c)
    }

    pub fn write(&self, r: &AccessRecord) {
        let line = match self.format {
            AccessFormat::Json => format::json_line(r),
            AccessFormat::Combined => format::combined_line(r),
            AccessFormat::W3c => format::w3c_line(r),
            _ => format::text_line(r),
        };
        // The writer thread only stops at exit; a failed send loses one line.
        let _ = self.tx.send(Job::Line(line, r.time));
    }

    /// Closes and reopens the log file (after logrotate moved it away),
    /// or reconnects to syslog. Lines already queued go to the old file.
    pub fn reopen(&self) {
        let _ = self.tx.send(Job::Reopen);
    }
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File {
        path: PathBuf,
        file: std::io::BufWriter<std::fs::File>,
    },
    Syslog(syslog::Sender),
}

struct Writer {
    out: Output,
    w3c: bool,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            self.job(job);
            // Under traffic, drain the queue every BATCH_INTERVAL instead of
            // blocking in `recv`: a sender only wakes a blocked receiver, so a
            // busy proxy no longer pays a thread wake-up per logged request.
            // Back to blocking once an interval brought nothing.
            loop {
                let mut more = 0usize;
                while let Ok(job) = rx.try_recv() {
                    self.job(job);
                    more += 1;
                }
                self.flush();
                if more == 0 {
                    break;
                }
                std::thread::sleep(BATCH_INTERVAL);
            }
        }
    }

    fn job(&mut self, job: Job) {
        match job {
            Job::Line(line, time) => self.line(&line, time),
            Job::Reopen => self.reopen(),
        }
    }

    fn line(&mut self, line: &str, time: SystemTime) {
        match &mut self.out {
            Output::Stdout(o) => drop(o.write_all(line.as_bytes())),
            Output::File { file, .. } => drop(file.write_all(line.as_bytes())),
            Output::Syslog(s) => s.send(line, time),
        }
    }

    fn flush(&mut self) {
        match &mut self.out {
            Output::Stdout(o) => drop(o.flush()),
            Output::File { file, .. } => drop(file.flush()),
            Output::Syslog(_) => {}
        }
    }

    /// After the output is (re)opened: a W3C log starts with its directives.
    fn opened(&mut self) {
        if self.w3c {
            let header = format::w3c_header(SystemTime::now());
            self.line(&header, SystemTime::now());
            self.flush();
        }
    }

    fn reopen(&mut self) {
        match &mut self.out {
            Output::Stdout(_) => return,
            Output::Syslog(s) => return s.reopen(),
            Output::File { path, file } => {
                let _ = file.flush();
                match open(path) {
                    Ok(f) => {
                        *file = std::io::BufWriter::with_capacity(64 * 1024, f);
                        tracing::info!("access log reopened: {}", path.display());
                    }
                    Err(e) => {
                        // Keep writing to the old file rather than lose lines.
                        tracing::error!(
                            "access log {} not reopened, still writing the old file: {e}",
                            path.display()
                        );
                        return;
                    }
                }
            }
        }
        self.opened();
    }
}

/// How long the writer lets lines gather while traffic flows; also the
/// most a line waits before it is written.
const BATCH_INTERVAL: Duration = Duration::from_millis(5);
