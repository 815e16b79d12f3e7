//! A batch of spans as an OTLP/HTTP JSON body (`ExportTraceServiceRequest`
//! in the protobuf JSON mapping the OTLP spec fixes: ids as hex, 64-bit
//! integers as strings, enums as numbers). Written by hand into one buffer:
//! the exporter thread encodes every span farmgate serves.

use super::export::Span;
use crate::ground::trace_context::Hex;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// `SPAN_KIND_SERVER`: the span of a request farmgate received.
const KIND_SERVER: u8 = 2;
/// `STATUS_CODE_ERROR`, for 5xx answers and cut-off responses.
const STATUS_ERROR: u8 = 2;

/// Encodes `spans` for `service` into `out` (cleared first).
pub fn encode(out: &mut String, service: &str, spans: &[Span]) {
    out.clear();
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":["#);
    attr_str(out, "service.name", service, false);
    out.push_str(r#"]},"scopeSpans":[{"scope":{"name":"farmgate","version":""#);
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str(r#""},"spans":["#);
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_span(out, span);
    }
    out.push_str("]}]}]}");
}

fn encode_span(out: &mut String, s: &Span) {
    let c = &s.ctx;
    let start = s.start.duration_since(UNIX_EPOCH).unwrap_or_default();
    let _ = write!(
        out,
        r#"{{"traceId":"{}","spanId":"{}","#,
        Hex(&c.trace_id),
        Hex(&c.span_id)
    );
    if let Some(parent) = &c.parent_id {
        let _ = write!(out, r#""parentSpanId":"{}","#, Hex(parent));
    }
    // Bits 8 and 9: whether the parent is remote is known, and it is.
    let remote = if c.parent_id.is_some() { 0x300 } else { 0x100 };
    let _ = write!(out, r#""flags":{},"name":"#, u32::from(c.flags) | remote);
    json_str(out, s.method.as_str());
    let _ = write!(
        out,
        r#","kind":{KIND_SERVER},"startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":["#,
        nanos(start),
        nanos(start + s.duration)
    );
    attr_str(out, "http.request.method", s.method.as_str(), false);
    attr_str(out, "url.path", s.uri.path(), true);
    if let Some(q) = s.uri.query() {
        attr_str(out, "url.query", q, true);
    }
    attr_str(
        out,
        "url.scheme",
        if s.tls { "https" } else { "http" },
        true,
    );
    attr_str(out, "network.protocol.version", version(s.version), true);
    attr_str(out, "client.address", &s.client.to_string(), true);
    attr_int(out, "server.port", u64::from(s.local.port()));
    if s.status != 0 {
        attr_int(out, "http.response.status_code", u64::from(s.status));
    }
    attr_int(out, "http.response.body.size", s.bytes);
    attr_str(out, "farmgate.listener", &s.listener, true);
    if let Some(farm) = &s.farm {
        attr_str(out, "farmgate.farm", farm, true);
    }
    if let Some(server) = &s.server {
        attr_str(out, "farmgate.server", server, true);
    }
    if let Some(up) = s.upstream {
        attr_int(out, "farmgate.upstream_us", up.as_micros() as u64);
    }
    out.push(']');
    if s.status >= 500 || s.aborted {
        let message = if s.aborted {
            "response cut off"
        } else {
            "server error"
        };
        let _ = write!(
            out,
            r#","status":{{"code":{STATUS_ERROR},"message":"{message}"}}"#
        );
    }
    out.push('}');
}

fn nanos(d: Duration) -> u128 {
    d.as_nanos()
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

fn attr_str(out: &mut String, key: &str, value: &str, comma: bool) {
    if comma {
        out.push(',');
    }
    let _ = write!(out, r#"{{"key":"{key}","value":{{"stringValue":"#);
    json_str(out, value);
    out.push_str("}}");
}

fn attr_int(out: &mut String, key: &str, value: u64) {
    let _ = write!(
        out,
        r#",{{"key":"{key}","value":{{"intValue":"{value}"}}}}"#
    );
}

/// `value` as a JSON string, escaped.
fn json_str(out: &mut String, value: &str) {
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground::trace_context::{parse_traceparent, TraceContext};

    fn span() -> Span {
        let parent = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        Span {
            ctx: TraceContext::continued(parent.expect("valid")),
            start: UNIX_EPOCH + Duration::from_millis(1_795_242_000_123),
            duration: Duration::from_micros(2250),
            method: http::Method::GET,
            uri: "/a/b?q=1".parse().unwrap_or_default(),
            version: http::Version::HTTP_11,
            tls: false,
            status: 502,
            client: "10.0.0.7".parse().expect("ip"),
            local: "127.0.0.1:8080".parse().expect("addr"),
            listener: "public".into(),
            farm: Some("web".into()),
            server: None,
            upstream: None,
            bytes: 7,
            aborted: false,
        }
    }

    #[test]
    fn encodes_valid_otlp_json() {
        let mut out = String::new();
        encode(&mut out, "edge \"1\"", &[span(), span()]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "edge \"1\""
        );
        let spans = rs["scopeSpans"][0]["spans"].as_array().expect("spans");
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(s["name"], "GET");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], "1795242000123000000");
        assert_eq!(s["endTimeUnixNano"], "1795242000125250000");
        assert_eq!(s["status"]["code"], 2);
        let attr = |k: &str| {
            s["attributes"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["key"] == k))
                .map(|x| x["value"].clone())
        };
        assert_eq!(attr("url.path").expect("path")["stringValue"], "/a/b");
        assert_eq!(attr("url.query").expect("query")["stringValue"], "q=1");
        assert_eq!(s["flags"], 0x301);
        assert_eq!(
            attr("http.response.status_code").expect("status")["intValue"],
            "502"
        );
        assert_eq!(attr("farmgate.farm").expect("farm")["stringValue"], "web");
        assert!(attr("farmgate.server").is_none());
    }
}
