//! The access log written to `log.access_file`: one line per request, in
//! `json`, `text`, `combined` and `w3c`, with the fields docs/observability.md
//! documents, and `access_syslog` (RFC 5424 to a real UDP and Unix socket).
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use farmgate::farm::AdminState;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn temp_log(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "farmgate-access-{tag}-{}-{}.log",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

fn logging_config(backend: &Backend, format: &str, file: &Path) -> String {
    farm_config("round_robin", &[backend], "", "").replace(
        "log:\n  access: off\n",
        &format!(
            "log:\n  access: {format}\n  access_file: \"{}\"\n",
            file.display()
        ),
    )
}

async fn app() -> Backend {
    Backend::with_handler(
        "app",
        Arc::new(|req| {
            Box::pin(async move {
                match req.uri().path() {
                    "/missing" => text_response(404, "not here"),
                    _ => text_response(200, "hello, world"),
                }
            })
        }),
    )
    .await
}

#[tokio::test]
async fn json_lines_one_per_request_with_documented_fields() {
    let backend = app().await;
    let file = temp_log("json");
    let fg = start(&logging_config(&backend, "json", &file)).await;
    let http = client();
    let base = format!("http://{}", fg.first_addr());
    get(&http, &format!("{base}/a/b?x=1&y=%20")).await;
    get(&http, &format!("{base}/missing")).await;
    let req = Request::post(format!("{base}/upload"))
        .body(Full::new(Bytes::from_static(b"12345")))
        .unwrap();
    assert_eq!(send(&http, req).await.0, StatusCode::OK);

    let got = log_lines(&file, 3).await;
    assert_eq!(got.len(), 3, "one line per request: {got:#?}");
    let v: Vec<serde_json::Value> = got
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fields: Vec<&str> = v[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "aborted",
        "bytes",
        "client",
        "farm",
        "listener",
        "method",
        "path",
        "server",
        "status",
        "time",
        "total_ms",
        "upstream_ms",
    ];
    want.sort();
    let mut fields = fields;
    fields.sort();
    assert_eq!(
        fields, want,
        "the documented JSON fields, no more, no fewer"
    );

    let first = &v[0];
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        first["time"].as_str().unwrap().len(),
        "2026-01-01T00:00:00.000Z".len()
    );
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["listener"], "public");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/a/b?x=1&y=%20");
    assert_eq!(first["status"], 200);
    assert_eq!(first["farm"], "web");
    assert_eq!(first["server"], "app");
    assert_eq!(first["bytes"], "hello, world".len());
    assert_eq!(first["aborted"], false);
    let upstream = first["upstream_ms"].as_f64().unwrap();
    let total = first["total_ms"].as_f64().unwrap();
    assert!(upstream > 0.0 && total >= upstream, "{upstream} {total}");

    assert_eq!(
        (v[1]["path"].as_str(), v[1]["status"].as_u64()),
        (Some("/missing"), Some(404))
    );
    assert_eq!(v[1]["bytes"], "not here".len());
    assert_eq!(
        (v[2]["method"].as_str(), v[2]["status"].as_u64()),
        (Some("POST"), Some(200))
    );

    // One more request, one more line.
    get(&http, &format!("{base}/again")).await;
    assert_eq!(log_lines(&file, 4).await.len(), 4);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn text_lines_name_the_farm_server_and_status() {
    let backend = app().await;
    let file = temp_log("text");
    let fg = start(&logging_config(&backend, "text", &file)).await;
    let http = client();
    get(&http, &format!("http://{}/hello?q=1", fg.first_addr())).await;
    // No server available: farmgate's own 503, no server, no upstream time.
    fg.gateway.snapshot().farms[0].servers[0]
        .state
        .set_admin(AdminState::Disabled);
    get(&http, &format!("http://{}/down", fg.first_addr())).await;

    let got = log_lines(&file, 2).await;
    assert_eq!(got.len(), 2, "{got:#?}");
    let f: Vec<&str> = got[0].split(' ').collect();
    assert!(f[0].ends_with('Z'), "{}", got[0]);
    assert_eq!(
        &f[1..6],
        ["127.0.0.1", "public", "GET", "/hello?q=1", "200"],
        "{}",
        got[0]
    );
    assert_eq!(&f[6..8], ["farm=web", "server=app"], "{}", got[0]);
    assert!(
        f[8].starts_with("upstream_ms=") && f[8] != "upstream_ms=-",
        "{}",
        got[0]
    );
    assert!(f[9].starts_with("total_ms="), "{}", got[0]);
    assert_eq!(f[10], "bytes=12", "{}", got[0]);

    let f: Vec<&str> = got[1].split(' ').collect();
    assert_eq!(
        &f[3..8],
        ["GET", "/down", "503", "farm=web", "server=-"],
        "{}",
        got[1]
    );
    assert_eq!(f[8], "upstream_ms=-", "{}", got[1]);
    let _ = std::fs::remove_file(&file);
}

/// The Apache combined format as log tools (GoAccess, AWStats, fail2ban)
/// parse it: `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`.
const APACHE_COMBINED: &str = r#"^(\S+) (\S+) (\S+) \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+\-]\d{4})\] "(\S+) (\S+) (HTTP/\d\.\d)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$"#;

#[tokio::test]
async fn combined_lines_parse_with_the_apache_regex() {
    let backend = app().await;
    let file = temp_log("combined");
    let fg = start(&logging_config(&backend, "combined", &file)).await;
    let http = client();
    let base = format!("http://{}", fg.first_addr());
    let req = Request::get(format!("{base}/page?id=7"))
        .header("referer", "http://example.com/start")
        .header("user-agent", "Mozilla/5.0 (X11; \"quoted\")")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&http, req).await.0, StatusCode::OK);
    get(&http, &format!("{base}/missing")).await;

    let got = log_lines(&file, 2).await;
    let re = regex::Regex::new(APACHE_COMBINED).unwrap();
    let caps: Vec<_> = got
        .iter()
        .map(|l| {
            re.captures(l)
                .unwrap_or_else(|| panic!("not Apache combined: {l}"))
        })
        .collect();
    let fields = |i: usize| -> Vec<&str> {
        (1..=11)
            .map(|g| caps[i].get(g).map_or("", |m| m.as_str()))
            .collect()
    };
    let first = fields(0);
    assert_eq!(&first[..3], ["127.0.0.1", "-", "-"]);
    assert!(first[3].ends_with(" +0000"), "UTC: {}", first[3]);
    assert_eq!(
        &first[4..],
        [
            "GET",
            "/page?id=7",
            "HTTP/1.1",
            "200",
            "12",
            "http://example.com/start",
            r"Mozilla/5.0 (X11; \x22quoted\x22)"
        ]
    );
    let second = fields(1);
    assert_eq!(
        &second[4..],
        ["GET", "/missing", "HTTP/1.1", "404", "8", "-", "-"]
    );
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn w3c_file_starts_with_its_fields_header() {
    let backend = app().await;
    let file = temp_log("w3c");
    let fg = start(&logging_config(&backend, "w3c", &file)).await;
    let http = client();
    let addr = fg.first_addr();
    let req = Request::get(format!("http://{addr}/shop/cart?item=3&q=a%20b"))
        .header("user-agent", "Mozilla/5.0 (Windows NT 10.0)")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&http, req).await.0, StatusCode::OK);

    let got = log_lines(&file, 5).await;
    assert_eq!(
        got[0],
        format!("#Software: farmgate {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(got[1], "#Version: 1.0");
    assert!(got[2].starts_with("#Date: 20"), "{}", got[2]);
    let names: Vec<&str> = got[3]
        .strip_prefix("#Fields: ")
        .unwrap_or_else(|| panic!("no #Fields: {}", got[3]))
        .split(' ')
        .collect();
    let values: Vec<&str> = got[4].split(' ').collect();
    assert_eq!(names.len(), values.len(), "{names:?}\n{values:?}");
    let field: std::collections::HashMap<&str, &str> =
        names.iter().copied().zip(values.iter().copied()).collect();
    assert_eq!(field["s-sitename"], "public");
    assert_eq!(field["s-ip"], "127.0.0.1");
    assert_eq!(field["s-port"], addr.port().to_string());
    assert_eq!(field["c-ip"], "127.0.0.1");
    assert_eq!(field["cs-method"], "GET");
    assert_eq!(field["cs-uri-stem"], "/shop/cart");
    assert_eq!(field["cs-uri-query"], "item=3&q=a%20b");
    assert_eq!(field["cs-version"], "HTTP/1.1");
    assert_eq!(field["sc-status"], "200");
    assert_eq!(field["sc-bytes"], "12");
    assert!(field["time-taken"].parse::<u64>().is_ok());
    assert_eq!(field["cs(User-Agent)"], "Mozilla/5.0+(Windows+NT+10.0)");
    assert_eq!(field["cs(Referer)"], "-");
    assert_eq!(field["x-farm"], "web");
    assert_eq!(field["x-server"], "app");
    let date = field["date"];
    assert!(date.len() == 10 && date.as_bytes()[4] == b'-', "{date}");
    let _ = std::fs::remove_file(&file);
}

fn syslog_config(backend: &Backend, address: &str) -> String {
    farm_config("round_robin", &[backend], "", "").replace(
        "log:\n  access: off\n",
        &format!(
            "log:\n  access: combined\n  access_syslog:\n    address: \"{address}\"\n    facility: local3\n    app_name: frontdoor\n"
        ),
    )
}

/// RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
fn assert_rfc5424(msg: &str, path: &str) {
    let re = regex::Regex::new(
        r"^<(\d+)>1 (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (\S+) (\S+) (\d+) (\S+) - (.*)$",
    )
    .unwrap();
    let c = re
        .captures(msg)
        .unwrap_or_else(|| panic!("not RFC 5424: {msg:?}"));
    // local3 (19) * 8 + info (6).
    assert_eq!(&c[1], "158", "{msg}");
    assert_eq!(&c[4], "frontdoor");
    assert_eq!(&c[6], "access");
    let line = &c[7];
    assert!(
        regex::Regex::new(APACHE_COMBINED).unwrap().is_match(line),
        "the message is the combined line: {line}"
    );
    assert!(
        line.contains(&format!("\"GET {path} HTTP/1.1\" 200")),
        "{line}"
    );
}

#[tokio::test]
async fn syslog_over_udp_sends_one_rfc5424_message_per_request() {
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let backend = app().await;
    let addr = receiver.local_addr().unwrap();
    let fg = start(&syslog_config(&backend, &format!("udp:{addr}"))).await;
    let http = client();
    get(&http, &format!("http://{}/via-udp", fg.first_addr())).await;
    let msg = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 4096];
        let n = receiver
            .recv(&mut buf)
            .expect("a syslog datagram within 5s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    })
    .await
    .unwrap();
    assert_rfc5424(&msg, "/via-udp");
}

#[tokio::test]
async fn syslog_over_a_unix_socket() {
    let dir = fresh_temp_dir("farmgate-syslog");
    let path = dir.join("log.sock");
    let receiver = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let backend = app().await;
    let fg = start(&syslog_config(
        &backend,
        &format!("unix:{}", path.display()),
    ))
    .await;
    let http = client();
    get(&http, &format!("http://{}/via-unix", fg.first_addr())).await;
    get(&http, &format!("http://{}/via-unix", fg.first_addr())).await;
    let msgs = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 4096];
        (0..2)
            .map(|_| {
                let n = receiver
                    .recv(&mut buf)
                    .expect("a syslog datagram within 5s");
                String::from_utf8(buf[..n].to_vec()).unwrap()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for m in &msgs {
        assert_rfc5424(m, "/via-unix");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn syslog_settings_are_checked_with_their_key() {
    let base = "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  enabled: false\nfarms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9\"\n";
    let registry = farmgate::farm::StateRegistry::default();
    for (log, want) in [
        (
            "log:\n  access_file: /tmp/a.log\n  access_syslog: { address: \"unix:/dev/log\" }\n",
            "log.access_syslog: choose one of access_file and access_syslog",
        ),
        (
            "log:\n  access: w3c\n  access_syslog: { address: \"unix:/dev/log\" }\n",
            "log.access_syslog: the w3c format needs a file",
        ),
        (
            "log:\n  access_syslog: { address: \"/dev/log\" }\n",
            "log.access_syslog.address: \"/dev/log\": expected unix:/path/to/socket or udp:IP:PORT",
        ),
        (
            "log:\n  access_syslog: { address: \"udp:127.0.0.1:514\", facility: kern }\n",
            "log.access_syslog.facility: unknown facility \"kern\"",
        ),
    ] {
        let text = format!("{base}{log}");
        let err = farmgate::config::load_str(&text, "test.yaml", &registry)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{text}"))
            .to_string();
        assert!(err.contains(want), "{err}\nwanted: {want}");
        assert!(err.starts_with("test.yaml:"), "{err}");
    }
}
