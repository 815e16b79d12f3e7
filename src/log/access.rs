//! The access log: one line per request, `text` or `json`, to stdout or a
//! file. Lines are formatted on the request's task and written by one
//! background thread, so a slow disk or terminal never blocks a request.

use http::Method;
use serde::Serialize;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything one access-log line says.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub time: SystemTime,
    pub client: IpAddr,
    pub listener: Arc<str>,
    pub method: Method,
    pub uri: http::Uri,
    pub status: u16,
    pub farm: Option<Arc<str>>,
    pub server: Option<Arc<str>>,
    pub upstream: Option<Duration>,
    pub total: Duration,
    pub bytes: u64,
    /// The response did not finish (client left, backend reset).
    pub aborted: bool,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    client: String,
    listener: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    farm: Option<&'a str>,
    server: Option<&'a str>,
    upstream_ms: Option<f64>,
    total_ms: f64,
    bytes: u64,
    aborted: bool,
}

/// The line format (`log.access`); `Off` writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessFormat {
    #[default]
    Text,
    Json,
    Off,
}

/// A running access log.
#[derive(Debug)]
pub struct AccessLog {
    format: AccessFormat,
    tx: mpsc::Sender<String>,
}

impl AccessLog {
    /// Starts the writer thread. `None` when the format is `off`.
    pub fn start(format: AccessFormat, file: Option<&Path>) -> std::io::Result<Option<Arc<Self>>> {
        if format == AccessFormat::Off {
            return Ok(None);
        }
        let out: Box<dyn Write + Send> = match file {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("farmgate-access-log".into())
            .spawn(move || writer(rx, out))?;
        Ok(Some(Arc::new(AccessLog { format, tx })))
    }

    pub fn write(&self, r: &AccessRecord) {
        let line = match self.format {
            AccessFormat::Json => json_line(r),
            _ => text_line(r),
        };
        // The writer thread only stops at exit; a failed send loses one line.
        let _ = self.tx.send(line);
    }
}

fn writer(rx: mpsc::Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        // Under traffic, drain the queue every BATCH_INTERVAL instead of
        // blocking in `recv`: a sender only wakes a blocked receiver, so a
        // busy proxy no longer pays a thread wake-up per logged request.
        // Back to blocking once an interval brought nothing.
        loop {
            let mut more = 0usize;
            while let Ok(line) = rx.try_recv() {
                let _ = out.write_all(line.as_bytes());
                more += 1;
            }
            let _ = out.flush();
            if more == 0 {
                break;
            }
            std::thread::sleep(BATCH_INTERVAL);
        }
    }
}

/// How long the writer lets lines gather while traffic flows; also the
/// most a line waits before it is written.
const BATCH_INTERVAL: Duration = Duration::from_millis(5);

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

pub fn text_line(r: &AccessRecord) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "{} {} {} {} {} {} farm={} server={} upstream_ms={} total_ms={:.3} bytes={}",
        rfc3339(r.time),
        r.client,
        r.listener,
        r.method,
        r.uri.path_and_query().map_or("/", |p| p.as_str()),
        r.status,
        r.farm.as_deref().unwrap_or("-"),
        r.server.as_deref().unwrap_or("-"),
        r.upstream
            .map_or("-".to_string(), |u| format!("{:.3}", ms(u))),
        ms(r.total),
        r.bytes,
    );
    if r.aborted {
        s.push_str(" aborted");
    }
    s.push('\n');
    s
}

pub fn json_line(r: &AccessRecord) -> String {
    let time = rfc3339(r.time);
    let line = JsonLine {
        time: &time,
        client: r.client.to_string(),
        listener: &r.listener,
        method: r.method.as_str(),
        path: r.uri.path_and_query().map_or("/", |p| p.as_str()),
        status: r.status,
        farm: r.farm.as_deref(),
        server: r.server.as_deref(),
        upstream_ms: r.upstream.map(ms),
        total_ms: ms(r.total),
        bytes: r.bytes,
        aborted: r.aborted,
    };
    let mut s = serde_json::to_string(&line).unwrap_or_default();
    s.push('\n');
    s
}

/// `2026-11-21T06:40:00.123Z`, without a date crate.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, dd) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            time: UNIX_EPOCH + Duration::from_millis(1_795_242_000_123),
            client: "10.0.0.7".parse().expect("ip"),
            listener: "public".into(),
            method: Method::GET,
            uri: "/a?b=1".parse().expect("uri"),
            status: 200,
            farm: Some("web".into()),
            server: Some("web1".into()),
            upstream: Some(Duration::from_micros(1500)),
            total: Duration::from_micros(2250),
            bytes: 42,
            aborted: false,
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn text_format() {
        assert_eq!(
            text_line(&record()),
            "2026-11-21T06:20:00.123Z 10.0.0.7 public GET /a?b=1 200 farm=web server=web1 upstream_ms=1.500 total_ms=2.250 bytes=42\n"
        );
    }

    #[test]
    fn json_format() {
        let v: serde_json::Value = serde_json::from_str(&json_line(&record())).expect("json");
        assert_eq!(v["status"], 200);
        assert_eq!(v["path"], "/a?b=1");
        assert_eq!(v["server"], "web1");
        assert_eq!(v["upstream_ms"], 1.5);
        assert_eq!(v["bytes"], 42);
    }
}
