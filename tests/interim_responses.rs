//! Interim responses (`103 Early Hints` and the other 1xx but 100 and 101)
//! from an HTTP/1 backend, end to end over real sockets: relayed to an
//! HTTP/1.1 client as they arrive, before the final response and without
//! their hop-by-hop fields, on the fast forward and through hyper's client
//! (a cached farm, a request with a body); several in a row, split across
//! reads; never to an HTTP/1.0 client, never stored, never replayed on a
//! cache hit; dropped for HTTP/2 clients and hyper's HTTP/1 server, who get
//! the final response all the same.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use raw::{RawBackend, Script, Step};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const HINTS: &str = "HTTP/1.1 103 Early Hints\r\n\
Link: </style.css>; rel=preload; as=style\r\n\
Connection: x-hint-hop\r\nX-Hint-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n";

const MORE_HINTS: &str =
    "HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload; as=script\r\n\r\n";

fn ok(cache_control: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nCache-Control: {cache_control}\r\nContent-Length: 5\r\n\r\nhello")
}

fn config(backend: SocketAddr, http1: &str, farm_extra: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         runtime:\n  http1: {http1}\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: a, address: \"{backend}\" }}\n{farm_extra}"
    )
}

const CACHE: &str = "    cache:\n      enabled: true\n";

fn steps(steps: Vec<Step>) -> Script {
    Script::Steps(steps)
}

fn write(s: &str) -> Step {
    Step::Write(s.as_bytes().to_vec())
}

/// Reads from `s` into `got` until its text holds `what`.
async fn read_until_has(s: &mut TcpStream, got: &mut Vec<u8>, what: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(got).into_owned();
        if text.contains(what) {
            return text;
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("{what:?} not seen; got {text:?}"))
            .unwrap();
        assert!(n > 0, "closed before {what:?}; got {text:?}");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// The statuses of the heads in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    raw::Reply {
        text: text.to_string(),
        closed: false,
    }
    .statuses()
}

/// The 103's head reaches the client while the backend still holds its
/// final response back; then the final response follows on the same
/// connection.
async fn hints_before_final(fg: &farmgate::Running, gate: &Notify, request: &str) {
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let early = read_until_has(&mut s, &mut got, "\r\n\r\n").await;
    assert!(
        early.starts_with("HTTP/1.1 103 Early Hints\r\n"),
        "first head: {early:?}"
    );
    let lower = early.to_ascii_lowercase();
    assert!(lower.contains("\r\nlink: </style.css>; rel=preload; as=style\r\n"));
    // Hop-by-hop fields and the ones Connection names stay behind.
    assert!(!lower.contains("x-hint-hop") && !lower.contains("keep-alive"));
    assert!(!lower.contains("content-length"), "{early:?}");
    assert_eq!(statuses(&early), [103], "the final head waits: {early:?}");
    gate.notify_one();
    let all = read_until_has(&mut s, &mut got, "hello").await;
    assert_eq!(statuses(&all), [103, 200], "{all:?}");
}

#[tokio::test]
async fn early_hints_reach_an_http11_client_before_the_final_response() {
    let gate = Arc::new(Notify::new());
    let backend = RawBackend::start(steps(vec![
        write(HINTS),
        Step::Wait(gate.clone()),
        Step::Write(ok("no-store").into_bytes()),
    ]))
    .await;
    let fg = start(&config(backend.addr, "engine", "")).await;
    // A GET without a body: the engine's fast forward.
    hints_before_final(&fg, &gate, "GET /page HTTP/1.1\r\nHost: t\r\n\r\n").await;
    // A request with a body goes through hyper's client: relayed as well.
    let post = "POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";
    hints_before_final(&fg, &gate, post).await;
}

#[tokio::test]
async fn several_interim_responses_in_a_row_are_relayed_in_order() {
    // 102, two 103s and the final response in one write; a 100 nobody
    // expected is dropped.
    let all = [
        "HTTP/1.1 102 Processing\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
        HINTS,
        MORE_HINTS,
        &ok("no-store"),
    ]
    .concat();
    let backend = RawBackend::start(steps(vec![write(&all)])).await;
    let fg = start(&config(backend.addr, "engine", "")).await;
    for request in [
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
    ] {
        let reply =
            raw::exchange(fg.first_addr(), request.as_bytes(), Duration::from_secs(10)).await;
        assert!(reply.closed, "{reply:?}");
        assert_eq!(reply.statuses(), [102, 103, 103, 200], "{}", reply.text);
        let text = reply.text.to_ascii_lowercase();
        let (css, js) = (
            text.find("</style.css>").unwrap(),
            text.find("</app.js>").unwrap(),
        );
        assert!(css < js && js < text.find("200 ok").unwrap(), "{text}");
        assert!(text.ends_with("\r\n\r\nhello"), "{text}");
    }
}

#[tokio::test]
async fn a_farm_with_interim_responses_drop_relays_none() {
    let all = [HINTS, MORE_HINTS, &ok("max-age=60")].concat();
    let backend = RawBackend::start(steps(vec![write(&all)])).await;
    let drop = "    interim_responses: drop\n";
    for farm in [drop.to_string(), format!("{drop}{CACHE}")] {
        let fg = start(&config(backend.addr, "engine", &farm)).await;
        for request in [
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        ] {
            let reply =
                raw::exchange(fg.first_addr(), request.as_bytes(), Duration::from_secs(10)).await;
            assert_eq!(reply.statuses(), [200], "{}", reply.text);
            assert!(reply.text.ends_with("\r\n\r\nhello"), "{}", reply.text);
        }
    }
}

#[tokio::test]
async fn an_interim_head_split_across_reads_is_relayed_whole() {
    let pause = Step::Pause(Duration::from_millis(30));
    let backend = RawBackend::start(steps(vec![
        write("HTTP/1.1 103 Ear"),
        pause.clone(),
        write("ly Hints\r\nLink: </a.css>; rel=pre"),
        pause.clone(),
        write("load\r\n\r"),
        pause,
        write("\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ]))
    .await;
    let fg = start(&config(backend.addr, "engine", "")).await;
    let get = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let reply = raw::exchange(fg.first_addr(), get.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(reply.statuses(), [103, 200], "{}", reply.text);
    assert!(reply.text.starts_with(
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
    ));
    assert!(reply.text.ends_with("\r\n\r\nok"), "{}", reply.text);
}

#[tokio::test]
async fn an_http10_client_gets_no_interim_response() {
    let all = [HINTS, &ok("max-age=3600")].concat();
    let backend = RawBackend::start(steps(vec![write(&all)])).await;
    for farm in ["", CACHE] {
        let fg = start(&config(backend.addr, "engine", farm)).await;
        let get = "GET /old HTTP/1.0\r\nHost: t\r\n\r\n";
        let reply = raw::exchange(fg.first_addr(), get.as_bytes(), Duration::from_secs(10)).await;
        assert!(reply.closed);
        // One head (the status line says 1.0 or 1.1 depending on the path).
        let text = &reply.text;
        assert_eq!(text.matches("HTTP/1.").count(), 1, "{text}");
        assert_eq!(text.get(8..13), Some(" 200 "), "{text}");
        assert!(
            !reply.text.to_ascii_lowercase().contains("link:"),
            "{}",
            reply.text
        );
        assert!(reply.text.ends_with("\r\n\r\nhello"), "{}", reply.text);
    }
}

#[tokio::test]
async fn a_cached_response_is_stored_without_its_hints_and_hits_replay_none() {
    let gate = Arc::new(Notify::new());
    let backend = RawBackend::start(steps(vec![
        write(HINTS),
        Step::Wait(gate.clone()),
        Step::Write(ok("max-age=3600").into_bytes()),
    ]))
    .await;
    let fg = start(&config(backend.addr, "engine", CACHE)).await;
    // The miss goes through hyper's client: the hints go out as they come.
    hints_before_final(&fg, &gate, "GET /cached HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let get = "GET /cached HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    for _ in 0..2 {
        let reply = raw::exchange(fg.first_addr(), get.as_bytes(), Duration::from_secs(10)).await;
        assert_eq!(
            reply.statuses(),
            [200],
            "a hit has no hints: {}",
            reply.text
        );
        let text = reply.text.to_ascii_lowercase();
        assert!(
            !text.contains("link:") && !text.contains("early hints"),
            "{text}"
        );
        assert!(text.contains("\r\nx-cache: hit"), "{text}");
        assert!(text.ends_with("\r\n\r\nhello"), "{text}");
    }
    assert_eq!(backend.connections(), 1);
    assert_eq!(
        cache_stats(&fg)
            .hits
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn http2_clients_and_hypers_http1_server_get_the_final_response_only() {
    let all = [HINTS, MORE_HINTS, &ok("no-store")].concat();
    let backend = RawBackend::start(steps(vec![write(&all)])).await;
    let fg = start(&config(backend.addr, "engine", "")).await;
    // HTTP/2 by prior knowledge: served by hyper's server, which has no
    // way to send a 103.
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = http::Request::get(format!("http://{}/h2", fg.first_addr()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), h2.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert!(resp.headers().get("link").is_none());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");

    // `runtime.http1: hyper`: the same.
    let fg = start(&config(backend.addr, "hyper", "")).await;
    let get = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let reply = raw::exchange(fg.first_addr(), get.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(reply.statuses(), [200], "{}", reply.text);
    assert!(reply.text.ends_with("\r\n\r\nhello"), "{}", reply.text);
}

#[tokio::test]
async fn the_demos_hints_backend_shows_them_through_farmgate() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    farmgate::demo::spawn_hints_backend(l);
    let fg = start(&config(addr, "engine", "")).await;
    // Twice on one client connection: the backend connection is reused.
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /hints HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let text = read_until_has(&mut s, &mut got, "</p>\n").await;
        assert!(text.starts_with(farmgate::demo::DEMO_HINTS), "{text}");
        assert_eq!(statuses(&text), [103, 200], "{text}");
    }
}
