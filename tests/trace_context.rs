//! Trace context (`trace:`): a `traceparent` from a trusted source is
//! continued with a new span id, a forged one from anyone else replaced;
//! the backend gets the hop's `traceparent` on both HTTP/1 paths (the
//! engine's fast forward and hyper's); the trace id reaches the access log
//! (text and JSON) and the client (`response_header`); spans reach an OTLP
//! receiver run by the test, and a full queue drops spans, counted.
#![allow(clippy::unwrap_used)]

mod common;
use common::admin::*;
use common::*;
use http::HeaderMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FORGED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const FORGED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// One HTTP/1.1 request from source address `from` (the loopback has all
/// of 127/8), `extra` header lines and an optional body; the status and
/// the response's header fields.
async fn request_from(from: &str, to: SocketAddr, extra: &str, body: &str) -> (u16, HeaderMap) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(to).await.unwrap();
    let (method, length) = if body.is_empty() {
        ("GET", String::new())
    } else {
        ("POST", format!("Content-Length: {}\r\n", body.len()))
    };
    let req = format!(
        "{method} /t HTTP/1.1\r\nHost: app\r\n{extra}{length}Connection: close\r\n\r\n{body}"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut fields);
    resp.parse(text.as_bytes()).unwrap();
    let mut headers = HeaderMap::new();
    for f in resp.headers.iter() {
        headers.append(
            http::HeaderName::from_bytes(f.name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(f.value).unwrap(),
        );
    }
    (resp.code.unwrap(), headers)
}

/// The (trace id, parent id) of a `traceparent` value.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("00", 32, 16));
    (parts[1].to_string(), parts[2].to_string())
}

fn seen_traceparent(b: &Backend) -> (String, String) {
    let parts = b.last_seen();
    let all: Vec<_> = parts.headers.get_all("traceparent").iter().collect();
    assert_eq!(all.len(), 1, "one traceparent: {:?}", parts.headers);
    ids(all[0].to_str().unwrap())
}

fn temp_log(tag: &str) -> PathBuf {
    let dir = fresh_temp_dir(&format!("farmgate-trace-{tag}"));
    dir.join("access.log")
}

fn config(app: &Backend, log: &Path, format: &str, trace: &str) -> String {
    farm_config("round_robin", &[app], "", &format!("trace:\n{trace}")).replace(
        "log:\n  access: off\n",
        &format!(
            "log:\n  access: {format}\n  access_file: \"{}\"\n",
            log.display()
        ),
    )
}

#[tokio::test]
async fn trusted_traceparent_is_continued_and_a_forged_one_replaced() {
    let app = Backend::named("app").await;
    let log = temp_log("text");
    let fg = start(&config(
        &app,
        &log,
        "text",
        "  trusted_sources: [\"127.0.0.2\"]\n  response_header: X-Trace-Id\n",
    ))
    .await;
    let addr = fg.first_addr();
    let sent = format!("traceparent: {FORGED}\r\ntracestate: vendor=7\r\n");

    // From the trusted source, on the engine's fast forward (a bodiless
    // GET): same trace, a new parent (farmgate's span), tracestate kept.
    let (status, headers) = request_from("127.0.0.2", addr, &sent, "").await;
    assert_eq!(status, 200);
    let (trace, parent) = seen_traceparent(&app);
    assert_eq!(trace, FORGED_TRACE);
    assert_ne!(parent, "00f067aa0ba902b7", "the hop has its own span id");
    assert_eq!(app.last_seen().headers["tracestate"], "vendor=7");
    assert_eq!(headers["x-trace-id"], FORGED_TRACE);
    let trusted_span = parent;

    // The same over hyper's path (a POST with a body).
    let (status, headers) = request_from("127.0.0.2", addr, &sent, "hello").await;
    assert_eq!(status, 200);
    let (trace, parent) = seen_traceparent(&app);
    assert_eq!(trace, FORGED_TRACE);
    assert_ne!(parent, "00f067aa0ba902b7");
    assert_ne!(parent, trusted_span, "every hop gets a new span id");
    assert_eq!(headers["x-trace-id"], FORGED_TRACE);

    // From an untrusted source the forged context is replaced, on both
    // paths: a new trace, and its tracestate is gone.
    let mut started = Vec::new();
    for body in ["", "hello"] {
        let (status, headers) = request_from("127.0.0.1", addr, &sent, body).await;
        assert_eq!(status, 200);
        let (trace, _) = seen_traceparent(&app);
        assert_ne!(trace, FORGED_TRACE);
        assert!(!app.last_seen().headers.contains_key("tracestate"));
        assert_eq!(headers["x-trace-id"], trace.as_str());
        started.push(trace);
    }
    assert_ne!(started[0], started[1], "each request starts its own trace");

    // No traceparent at all: a trace is started too.
    let (_, headers) = request_from("127.0.0.2", addr, "", "").await;
    let (trace, _) = seen_traceparent(&app);
    assert_eq!(headers["x-trace-id"], trace.as_str());

    // The access log names each request's trace and span.
    let lines = log_lines(&log, 5).await;
    assert!(
        lines[0].contains(&format!(" trace_id={FORGED_TRACE} span_id={trusted_span}")),
        "{}",
        lines[0]
    );
    assert!(
        lines[2].contains(&format!(" trace_id={} ", started[0])),
        "{}",
        lines[2]
    );
    assert!(
        lines[4].contains(&format!(" trace_id={trace} ")),
        "{}",
        lines[4]
    );
}

#[tokio::test]
async fn without_a_trace_section_nothing_is_touched() {
    let app = Backend::named("app").await;
    let fg = start(&farm_config("round_robin", &[&app], "", "")).await;
    let sent = format!("traceparent: {FORGED}\r\n");
    let (_, headers) = request_from("127.0.0.1", fg.first_addr(), &sent, "").await;
    assert_eq!(app.last_seen().headers["traceparent"], FORGED);
    assert!(!headers.contains_key("x-trace-id"));
}

/// An OTLP/HTTP receiver: collects every JSON body POSTed to /v1/traces.
async fn otlp_receiver() -> (Backend, Arc<Mutex<Vec<serde_json::Value>>>) {
    use http_body_util::BodyExt;
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let b = Backend::with_handler(
        "otlp",
        Arc::new(move |req| {
            let store = store.clone();
            Box::pin(async move {
                let ok = req.method() == http::Method::POST
                    && req.uri().path() == "/v1/traces"
                    && req.headers()["content-type"] == "application/json";
                let body = req.into_body().collect().await.unwrap().to_bytes();
                if !ok {
                    return text_response(404, "");
                }
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                store.lock().unwrap().push(v);
                text_response(200, "{}")
            })
        }),
    )
    .await;
    (b, got)
}

/// Every span the receiver got.
fn spans(got: &Mutex<Vec<serde_json::Value>>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for body in got.lock().unwrap().iter() {
        for rs in body["resourceSpans"].as_array().unwrap() {
            assert_eq!(
                rs["resource"]["attributes"][0]["value"]["stringValue"],
                "edge"
            );
            for ss in rs["scopeSpans"].as_array().unwrap() {
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    out
}

fn attr(span: &serde_json::Value, key: &str) -> serde_json::Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn spans_reach_an_otlp_receiver() {
    let app = Backend::named("app").await;
    let (receiver, got) = otlp_receiver().await;
    let log = temp_log("json");
    let trace = format!(
        "  trusted_sources: [\"127.0.0.2\"]\n  response_header: X-Trace-Id\n  \
         export: {{ url: \"http://{}\", service_name: edge, interval: 50ms, batch_size: 2 }}\n",
        receiver.addr
    );
    let fg = start(&with_admin(&config(&app, &log, "json", &trace), None)).await;
    let addr = fg.first_addr();
    let sent = format!("traceparent: {FORGED}\r\n");
    let (_, h1) = request_from("127.0.0.2", addr, &sent, "").await;
    let (_, h2) = request_from("127.0.0.1", addr, &sent, "hello").await;
    let (_, h3) = request_from("127.0.0.1", addr, "", "").await;
    let ids: Vec<String> = [h1, h2, h3]
        .iter()
        .map(|h| h["x-trace-id"].to_str().unwrap().to_string())
        .collect();
    wait_until(Duration::from_secs(10), "3 spans at the receiver", || {
        let got = got.clone();
        async move { spans(&got).len() >= 3 }
    })
    .await;
    let spans = spans(&got);
    assert_eq!(spans.len(), 3, "{spans:?}");
    for (span, id) in spans.iter().zip(&ids) {
        assert_eq!(span["traceId"], id.as_str());
        assert_eq!(span["kind"], 2);
        assert_eq!(attr(span, "http.response.status_code")["intValue"], "200");
        assert_eq!(attr(span, "url.path")["stringValue"], "/t");
        assert_eq!(attr(span, "farmgate.server")["stringValue"], "app");
        let (start, end) = (
            span["startTimeUnixNano"]
                .as_str()
                .unwrap()
                .parse::<u128>()
                .unwrap(),
            span["endTimeUnixNano"]
                .as_str()
                .unwrap()
                .parse::<u128>()
                .unwrap(),
        );
        assert!(start > 1_600_000_000_000_000_000 && end >= start, "{span}");
    }
    // The continued span's parent is the caller's; started ones are roots.
    assert_eq!(spans[0]["traceId"], FORGED_TRACE);
    assert_eq!(spans[0]["parentSpanId"], "00f067aa0ba902b7");
    assert!(spans[1].get("parentSpanId").is_none());
    assert_eq!(
        attr(&spans[1], "http.request.method")["stringValue"],
        "POST"
    );
    // The backend's parent is the span farmgate exported.
    let (_, parent) = seen_traceparent(&app);
    assert_eq!(spans[2]["spanId"], parent.as_str());

    // The JSON access log carries the same ids.
    let lines = log_lines(&log, 3).await;
    for (line, span) in lines.iter().zip(&spans) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["trace_id"], span["traceId"]);
        assert_eq!(v["span_id"], span["spanId"]);
    }
    let stats = fg.gateway.serving.shared.span_stats.clone();
    wait_until(Duration::from_secs(5), "3 spans counted", || {
        let stats = stats.clone();
        async move { stats.exported() == 3 }
    })
    .await;
    let (_, _, metrics) = admin_get(&client(), &fg, "/metrics").await;
    assert!(
        metrics.contains("farmgate_trace_spans_total{result=\"exported\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_full_queue_drops_spans_without_slowing_requests() {
    let app = Backend::named("app").await;
    // A collector that accepts connections and never answers: the
    // exporter waits on it (up to its timeout) while requests go on.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = stuck.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let trace = format!(
        "  export: {{ url: \"http://{stuck_addr}\", interval: 10ms, batch_size: 1, queue_size: 2, timeout: 30s }}\n"
    );
    let cfg = farm_config("round_robin", &[&app], "", &format!("trace:\n{trace}"));
    let fg = start(&cfg).await;
    let http = client();
    let url = format!("http://{}/", fg.first_addr());
    for _ in 0..20 {
        let (status, headers, _) = get(&http, &url).await;
        assert_eq!(status, 200);
        assert!(
            !headers.contains_key("x-trace-id"),
            "no response_header set"
        );
    }
    let stats = fg.gateway.serving.shared.span_stats.clone();
    // One span is with the stuck collector, two wait in the queue; the
    // rest were dropped and counted (one more when the exporter took its
    // first span only after the queue had filled).
    wait_until(Duration::from_secs(5), "17 dropped spans", || {
        let stats = stats.clone();
        async move { stats.dropped() >= 17 }
    })
    .await;
    assert!((17..=18).contains(&stats.dropped()), "{}", stats.dropped());
    assert_eq!((stats.exported(), stats.failed()), (0, 0));
}

#[tokio::test]
async fn a_reload_moves_the_exporter_and_can_turn_tracing_off() {
    let app = Backend::named("app").await;
    let ((a, got_a), (b, got_b)) = (otlp_receiver().await, otlp_receiver().await);
    let dir = fresh_temp_dir("farmgate-trace-reload");
    let file = dir.join("farmgate.yaml");
    let with_export = |to: SocketAddr| {
        farm_config(
            "round_robin",
            &[&app],
            "",
            &format!(
                "trace:\n  export: {{ url: \"http://{to}\", service_name: edge, interval: 20ms }}\n"
            ),
        )
    };
    std::fs::write(&file, with_export(a.addr)).unwrap();
    let fg = start_from_file(&file).await;
    let http = client();
    let url = format!("http://{}/", fg.first_addr());
    get(&http, &url).await;
    wait_until(
        Duration::from_secs(10),
        "a span at the first receiver",
        || {
            let got = got_a.clone();
            async move { spans(&got).len() == 1 }
        },
    )
    .await;

    // The collector moves: the next spans go to the new one only.
    std::fs::write(&file, with_export(b.addr)).unwrap();
    assert!(farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    get(&http, &url).await;
    wait_until(
        Duration::from_secs(10),
        "a span at the second receiver",
        || {
            let got = got_b.clone();
            async move { spans(&got).len() == 1 }
        },
    )
    .await;
    assert_eq!(spans(&got_a).len(), 1);

    // Without trace: the client's traceparent passes untouched again.
    std::fs::write(&file, farm_config("round_robin", &[&app], "", "")).unwrap();
    assert!(farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    let sent = format!("traceparent: {FORGED}\r\n");
    request_from("127.0.0.1", fg.first_addr(), &sent, "").await;
    assert_eq!(app.last_seen().headers["traceparent"], FORGED);
    assert!(fg.gateway.serving.shared.span_exporter().is_none());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn farmgates_own_answers_carry_the_trace_id_too() {
    let dead = closed_port().await;
    let cfg = format!(
        "listeners: [ {{ bind: \"127.0.0.1:0\" }} ]\nadmin: {{ enabled: false }}\nlog: {{ access: off }}\n\
         farms:\n  - name: web\n    servers: [ {{ address: \"{dead}\" }} ]\n\
         trace: {{ response_header: X-Trace-Id }}\n"
    );
    let fg = start(&cfg).await;
    let (status, headers) = request_from("127.0.0.1", fg.first_addr(), "", "").await;
    assert_eq!(status, 502, "{headers:?}");
    let id = headers["x-trace-id"].to_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
}
