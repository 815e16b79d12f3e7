//! The access log written to `log.access_file`: one line per request, in
//! `json` and `text`, with the fields docs/observability.md documents.
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

async fn lines(file: &Path, n: usize) -> Vec<String> {
    wait_until(
        Duration::from_secs(5),
        &format!("{n} access-log lines"),
        || async { std::fs::read_to_string(file).is_ok_and(|t| t.lines().count() >= n) },
    )
    .await;
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
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

    let got = lines(&file, 3).await;
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
    assert_eq!(lines(&file, 4).await.len(), 4);
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

    let got = lines(&file, 2).await;
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
