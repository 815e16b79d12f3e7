//! The `trace:` section: its YAML form, its compiler and its run-time form.

use crate::ground::error::Problems;
use crate::ground::units::Dur;
use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `trace:` as written in the file.
#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    /// Peers (addresses or CIDRs) whose `traceparent` is continued; from
    /// anyone else a new trace starts. Default: none.
    #[serde(default)]
    pub trusted_sources: Vec<String>,
    /// A response header that carries the trace id back to the client.
    #[serde(default)]
    pub response_header: Option<String>,
    /// The share of new traces that are sampled (exported and flagged
    /// `sampled` to the backend), 0.0 to 1.0; default 1.0. A continued
    /// trace keeps its caller's decision.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// Send one span per sampled request to an OTLP/HTTP collector.
    #[serde(default)]
    pub export: Option<RawExport>,
}

/// `trace.export`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExport {
    /// The collector: `http://HOST:PORT` (spans go to `/v1/traces`) or a
    /// full URL with its path.
    pub url: String,
    /// The `service.name` resource attribute; default `farmgate`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Spans sent in one request at most; default 512.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Spans waiting to be sent at most; more are dropped and counted.
    /// Default 2048.
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// The longest a span waits for its batch to fill; default 5s.
    #[serde(default)]
    pub interval: Option<Dur>,
    /// Connecting, sending and the collector's answer, each; default 10s.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Headers sent with every export (an API key for a hosted collector).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `trace:` at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpec {
    pub trusted: Vec<IpNet>,
    pub response_header: Option<HeaderName>,
    /// New traces whose id's last 8 bytes fall below this are sampled
    /// (`u64::MAX`: all of them), as OpenTelemetry's ratio sampler does.
    pub sample_below: u64,
    pub export: Option<ExportSpec>,
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// As written, for messages.
    pub url: String,
    pub tls: bool,
    /// `host:port`, resolved when the exporter connects.
    pub authority: String,
    /// The request target, `/v1/traces` by default.
    pub path: String,
    pub service_name: String,
    pub batch_size: usize,
    pub queue_size: usize,
    pub interval: Duration,
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
}

/// Compiles `trace:`.
pub fn build(raw: &RawTrace, p: &mut Problems) -> TraceSpec {
    let trusted = crate::ground::net::parse_nets(&raw.trusted_sources, "trace.trusted_sources", p);
    let response_header = raw.response_header.as_ref().and_then(|name| {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| {
                p.add(
                    "trace.response_header",
                    format!("{name:?} is not a valid header name"),
                )
            })
            .ok()
    });
    let ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&ratio) {
        p.add(
            "trace.sample_ratio",
            format!("{ratio} is not between 0.0 and 1.0"),
        );
    }
    let sample_below = if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio.max(0.0) * u64::MAX as f64) as u64
    };
    TraceSpec {
        trusted,
        response_header,
        sample_below,
        export: raw.export.as_ref().and_then(|e| build_export(e, p)),
    }
}

fn build_export(raw: &RawExport, p: &mut Problems) -> Option<ExportSpec> {
    let at = "trace.export";
    let (tls, rest) = if let Some(r) = raw.url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = raw.url.strip_prefix("https://") {
        (true, r)
    } else {
        p.add(
            format!("{at}.url"),
            format!(
                "{:?}: expected http://HOST:PORT or https://HOST:PORT (OTLP over HTTP)",
                raw.url
            ),
        );
        return None;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let parsed = authority.parse::<http::uri::Authority>().ok();
    let Some(parsed) = parsed.filter(|a| !a.host().is_empty()) else {
        p.add(
            format!("{at}.url"),
            format!("{:?} has no valid host", raw.url),
        );
        return None;
    };
    let port = parsed.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = match path {
        "" | "/" => "/v1/traces".to_string(),
        other => other.to_string(),
    };
    let batch_size = raw.batch_size.unwrap_or(512);
    let queue_size = raw.queue_size.unwrap_or(2048);
    if !(1..=100_000).contains(&batch_size) {
        p.add(format!("{at}.batch_size"), "must be between 1 and 100000");
    }
    if !(1..=1_000_000).contains(&queue_size) {
        p.add(format!("{at}.queue_size"), "must be between 1 and 1000000");
    }
    let interval = raw.interval.map_or(Duration::from_secs(5), |d| d.0);
    let timeout = raw.timeout.map_or(Duration::from_secs(10), |d| d.0);
    for (key, d) in [("interval", interval), ("timeout", timeout)] {
        if d.is_zero() {
            p.add(format!("{at}.{key}"), "must be more than 0");
        }
    }
    for (name, value) in &raw.headers {
        let ok = HeaderName::from_bytes(name.as_bytes()).is_ok()
            && http::HeaderValue::from_str(value).is_ok();
        if !ok {
            p.add(
                format!("{at}.headers.{name}"),
                "not a valid header name and value",
            );
        } else if [
            "host",
            "content-length",
            "content-type",
            "transfer-encoding",
            "connection",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        {
            p.add(
                format!("{at}.headers.{name}"),
                "farmgate sets this header itself",
            );
        }
    }
    Some(ExportSpec {
        url: raw.url.clone(),
        tls,
        authority: format!("{}:{port}", parsed.host()),
        path,
        service_name: raw
            .service_name
            .clone()
            .unwrap_or_else(|| "farmgate".into()),
        batch_size,
        queue_size,
        interval,
        timeout,
        headers: raw.headers.clone().into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> (TraceSpec, Problems) {
        let raw: RawTrace = yaml_serde::from_str(yaml).expect("yaml");
        let mut p = Problems::default();
        (build(&raw, &mut p), p)
    }

    #[test]
    fn defaults_trust_nobody_and_sample_everything() {
        let (s, p) = spec("{}");
        assert!(p.is_empty());
        assert!(s.trusted.is_empty());
        assert_eq!(s.sample_below, u64::MAX);
        assert_eq!((s.response_header, s.export), (None, None));
    }

    #[test]
    fn export_url_gets_the_otlp_path() {
        let (s, p) = spec("export: { url: \"http://127.0.0.1:4318\" }");
        assert!(p.is_empty(), "{p:?}");
        let e = s.export.expect("export");
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("127.0.0.1:4318", "/v1/traces")
        );
        let (s, _) = spec("export: { url: \"https://otel.example/api/traces\" }");
        let e = s.export.expect("export");
        assert!(e.tls);
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("otel.example:443", "/api/traces")
        );
    }

    #[test]
    fn bad_values_are_named() {
        let (_, p) = spec(
            "{ trusted_sources: [nope], response_header: \"a b\", sample_ratio: 2,\n\
             export: { url: \"grpc://x:4317\" } }",
        );
        let keys: Vec<&str> = p.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "trace.trusted_sources[0]",
                "trace.response_header",
                "trace.sample_ratio",
                "trace.export.url"
            ]
        );
    }
}
