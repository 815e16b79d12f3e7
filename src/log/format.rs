//! Access-log line formats: farmgate's `text` and `json`, Apache/nginx
//! `combined` (read by GoAccess, AWStats, fail2ban) and IIS `w3c` extended
//! (read by IIS/ARR log tooling, with the `#Fields:` header it needs).
//! Timestamps are UTC throughout.

use super::access::AccessRecord;
use crate::ground::trace_context::Hex;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_status: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

fn path_and_query(r: &AccessRecord) -> &str {
    r.uri.path_and_query().map_or("/", |p| p.as_str())
}

pub fn text_line(r: &AccessRecord) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "{} {} {} {} {} {} farm={} server={} upstream_ms={} total_ms={:.3} bytes={}",
        rfc3339(r.time),
        r.client,
        r.listener,
        r.method,
        path_and_query(r),
        r.status,
        r.farm.as_deref().unwrap_or("-"),
        r.server.as_deref().unwrap_or("-"),
        r.upstream
            .map_or("-".to_string(), |u| format!("{:.3}", ms(u))),
        ms(r.total),
        r.bytes,
    );
    if let Some(code) = r.grpc_status {
        let _ = write!(s, " grpc_status={code}");
    }
    if let Some(t) = &r.trace {
        let _ = write!(
            s,
            " trace_id={} span_id={}",
            Hex(&t.trace_id),
            Hex(&t.span_id)
        );
    }
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
        path: path_and_query(r),
        status: r.status,
        farm: r.farm.as_deref(),
        server: r.server.as_deref(),
        upstream_ms: r.upstream.map(ms),
        total_ms: ms(r.total),
        bytes: r.bytes,
        aborted: r.aborted,
        grpc_status: r.grpc_status,
        trace_id: r.trace.map(|t| Hex(&t.trace_id).to_string()),
        span_id: r.trace.map(|t| Hex(&t.span_id).to_string()),
    };
    let mut s = serde_json::to_string(&line).unwrap_or_default();
    s.push('\n');
    s
}

/// Apache's `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`.
/// Quotes, backslashes, control and non-ASCII bytes inside the quoted
/// fields are written `\xHH`, as nginx does, so a client cannot forge a field.
pub fn combined_line(r: &AccessRecord) -> String {
    let mut s = String::with_capacity(200);
    let _ = write!(s, "{} - - [{}] \"", r.client, clf_time(r.time));
    escape_into(&mut s, r.method.as_str().as_bytes());
    s.push(' ');
    escape_into(&mut s, path_and_query(r).as_bytes());
    let _ = write!(s, " {:?}\" {} ", r.version, r.status);
    if r.bytes == 0 {
        s.push('-');
    } else {
        let _ = write!(s, "{}", r.bytes);
    }
    s.push_str(" \"");
    escape_into(&mut s, header_or_dash(&r.referer));
    s.push_str("\" \"");
    escape_into(&mut s, header_or_dash(&r.user_agent));
    s.push_str("\"\n");
    s
}

fn header_or_dash(h: &Option<http::HeaderValue>) -> &[u8] {
    h.as_ref().map_or(b"-", |v| v.as_bytes())
}

fn escape_into(s: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(s, "\\x{b:02X}");
        } else {
            s.push(b as char);
        }
    }
}

/// The W3C extended fields farmgate writes, in line order. `x-` fields are
/// application-specific by the W3C draft: the farm, the server, and the
/// upstream time in milliseconds.
pub const W3C_FIELDS: &str = "date time s-sitename s-ip s-port c-ip cs-method cs-uri-stem \
     cs-uri-query cs-version sc-status sc-bytes time-taken cs(User-Agent) cs(Referer) \
     x-farm x-server x-upstream-ms";

/// The directives heading a W3C log file (written at every open).
pub fn w3c_header(now: SystemTime) -> String {
    let (date, time) = date_time(now);
    format!(
        "#Software: farmgate {}\n#Version: 1.0\n#Date: {date} {time}\n#Fields: {W3C_FIELDS}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// One W3C extended line: fields separated by spaces, `-` for none, spaces
/// inside a value written `+` (as IIS does), time-taken in milliseconds.
pub fn w3c_line(r: &AccessRecord) -> String {
    let (date, time) = date_time(r.time);
    let mut s = String::with_capacity(200);
    let _ = write!(
        s,
        "{date} {time} {} {} {} {} ",
        w3c_token(&r.listener),
        r.local.ip(),
        r.local.port(),
        r.client
    );
    s.push_str(&w3c_token(r.method.as_str()));
    s.push(' ');
    s.push_str(&w3c_token(r.uri.path()));
    s.push(' ');
    s.push_str(&w3c_token(r.uri.query().unwrap_or("")));
    let _ = write!(
        s,
        " {:?} {} {} {} ",
        r.version,
        r.status,
        r.bytes,
        r.total.as_millis()
    );
    s.push_str(&w3c_token(&String::from_utf8_lossy(header_or_dash(
        &r.user_agent,
    ))));
    s.push(' ');
    s.push_str(&w3c_token(&String::from_utf8_lossy(header_or_dash(
        &r.referer,
    ))));
    s.push(' ');
    s.push_str(&w3c_token(r.farm.as_deref().unwrap_or("")));
    s.push(' ');
    s.push_str(&w3c_token(r.server.as_deref().unwrap_or("")));
    s.push(' ');
    match r.upstream {
        Some(u) => {
            let _ = write!(s, "{}", u.as_millis());
        }
        None => s.push('-'),
    }
    s.push('\n');
    s
}

fn w3c_token(v: &str) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.chars()
        .map(|c| if c == ' ' || c.is_control() { '+' } else { c })
        .collect()
}

/// `2026-11-21T06:40:00.123Z`, without a date crate.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, m, dd, hh, mm, ss) = civil(d.as_secs());
    format!(
        "{y:04}-{m:02}-{dd:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z",
        d.subsec_millis()
    )
}

/// Common Log Format time: `21/Nov/2026:06:20:00 +0000`.
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (y, m, d, hh, mm, ss) = civil(secs);
    let month = MONTHS[(m as usize).saturating_sub(1) % 12];
    format!("{d:02}/{month}/{y:04}:{hh:02}:{mm:02}:{ss:02} +0000")
}

/// W3C `date` and `time` fields: `2026-11-21`, `06:20:00`.
fn date_time(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (y, m, d, hh, mm, ss) = civil(secs);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{hh:02}:{mm:02}:{ss:02}"),
    )
}

/// Unix seconds to (year, month, day, hour, minute, second) in UTC.
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
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
    use http::{HeaderValue, Method, Version};

    fn record() -> AccessRecord {
        AccessRecord {
            time: UNIX_EPOCH + Duration::from_millis(1_795_242_000_123),
            client: "10.0.0.7".parse().expect("ip"),
            local: "127.0.0.1:8080".parse().expect("addr"),
            listener: "public".into(),
            method: Method::GET,
            uri: "/a?b=1".parse().expect("uri"),
            version: Version::HTTP_11,
            status: 200,
            farm: Some("web".into()),
            server: Some("web1".into()),
            upstream: Some(Duration::from_micros(1500)),
            grpc_status: None,
            total: Duration::from_micros(2250),
            bytes: 42,
            referer: None,
            user_agent: Some(HeaderValue::from_static("curl/8.0 (x \"y\")")),
            aborted: false,
            trace: None,
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(clf_time(record().time), "21/Nov/2026:06:20:00 +0000");
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

    #[test]
    fn combined_format_escapes_quotes() {
        assert_eq!(
            combined_line(&record()),
            "10.0.0.7 - - [21/Nov/2026:06:20:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 42 \"-\" \"curl/8.0 (x \\x22y\\x22)\"\n"
        );
        let mut r = record();
        r.bytes = 0;
        r.version = Version::HTTP_2;
        assert!(combined_line(&r).contains("\"GET /a?b=1 HTTP/2.0\" 200 - "));
    }

    #[test]
    fn w3c_format_matches_its_fields() {
        let line = w3c_line(&record());
        assert_eq!(
            line,
            "2026-11-21 06:20:00 public 127.0.0.1 8080 10.0.0.7 GET /a b=1 HTTP/1.1 200 42 2 curl/8.0+(x+\"y\") - web web1 1\n"
        );
        assert_eq!(
            line.split(' ').count(),
            W3C_FIELDS.split_whitespace().count()
        );
        let header = w3c_header(record().time);
        assert!(header.ends_with(&format!("#Fields: {W3C_FIELDS}\n")));
        assert!(header.contains("#Date: 2026-11-21 06:20:00\n"));
    }

    #[test]
    fn grpc_status_is_logged_for_grpc_calls_only() {
        let mut r = record();
        assert!(!text_line(&r).contains("grpc_status"));
        assert!(!json_line(&r).contains("grpc_status"));
        r.grpc_status = Some(14);
        assert!(
            text_line(&r).ends_with(" bytes=42 grpc_status=14\n"),
            "{}",
            text_line(&r)
        );
        let v: serde_json::Value = serde_json::from_str(&json_line(&r)).unwrap_or_default();
        assert_eq!(v["grpc_status"], 14);
    }

    #[test]
    fn trace_ids_are_logged_when_tracing_is_on() {
        use crate::ground::trace_context::{parse_traceparent, TraceContext};
        let mut r = record();
        assert!(!text_line(&r).contains("trace_id") && !json_line(&r).contains("trace_id"));
        let parent = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let ctx = TraceContext::continued(parent.expect("valid"));
        r.trace = Some(ctx);
        let span = Hex(&ctx.span_id).to_string();
        assert!(
            text_line(&r).ends_with(&format!(
                " bytes=42 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id={span}\n"
            )),
            "{}",
            text_line(&r)
        );
        let v: serde_json::Value = serde_json::from_str(&json_line(&r)).unwrap_or_default();
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["span_id"], span.as_str());
    }
}
