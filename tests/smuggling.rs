//! Request smuggling, table-driven over raw sockets: every ambiguous or
//! malformed framing is answered 400 (431 for an oversized head), the
//! connection is closed, and the backend (a raw TCP server recording every
//! byte) receives nothing. What is forwarded is re-framed, never copied.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;

use raw::*;
use std::time::Duration;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

fn config(backend: &RawBackend) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         proxy:\n  retries: 0\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: raw, address: \"{}\" }}\n",
        backend.addr
    )
}

/// (what, request bytes). Each must get 400 and a closed connection.
const CASES: &[(&str, &str)] = &[
    (
        "CL then TE",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    ),
    (
        "TE then CL",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG",
    ),
    (
        "duplicate differing Content-Length",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello",
    ),
    (
        "duplicate equal Content-Length",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    ),
    (
        "Content-Length list",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
    ),
    (
        "signed Content-Length",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
    ),
    (
        "TE chunked ,x",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked ,x\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE xchunked",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE chunked twice in one field",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE chunked in two fields",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE gzip, chunked",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE quoted",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
    ),
    (
        "space before colon",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE folded onto the previous line",
        "POST / HTTP/1.1\r\nHost: t\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE after a tab fold",
        "POST / HTTP/1.1\r\nHost: t\r\nX: y\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE with vertical tab",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE in HTTP/1.0",
        "POST / HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "bare LF ends a header line",
        "POST / HTTP/1.1\r\nHost: t\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "bare LF ends the request line",
        "GET / HTTP/1.1\nHost: t\r\n\r\n",
    ),
    (
        "bare LF ends the head",
        "GET / HTTP/1.1\r\nHost: t\n\n",
    ),
    (
        "bare CR inside a head",
        "GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n",
    ),
    (
        "chunk size not hex",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunk size with 0x",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunk size overflowing 64 bits",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "negative chunk size",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunk longer than its size",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "bare LF after chunk size",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    ),
    (
        "bare LF after chunk data",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
    ),
    (
        "bare LF in a chunk extension",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "whitespace-only chunk size line",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    ),
];

#[tokio::test]
async fn ambiguous_framing_is_refused_and_never_forwarded() {
    let backend = RawBackend::start(Script::Reply(OK.to_vec())).await;
    let fg = common::start(&config(&backend)).await;
    let addr = fg.first_addr();
    let mut failures = Vec::new();
    for (what, req) in CASES {
        let r = exchange(addr, req.as_bytes(), Duration::from_secs(5)).await;
        if r.status() != 400 || !r.closed {
            failures.push(format!(
                "{what}: status {} closed {} {:?}",
                r.status(),
                r.closed,
                r.text
            ));
        }
    }
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
    assert_eq!(
        backend.connections(),
        0,
        "the backend received: {:?}",
        backend.received_text()
    );

    // The proxy still serves, and a clean chunked request is forwarded.
    let clean = "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n";
    let r = exchange(addr, clean.as_bytes(), Duration::from_millis(500)).await;
    assert_eq!(r.status(), 200, "{r:?}");
    // Re-framed, not copied: the chunk extension does not reach the backend.
    let seen = backend.received_text();
    assert!(seen.starts_with("POST /c HTTP/1.1\r\n"), "{seen:?}");
    assert!(!seen.contains("ext=1"), "{seen:?}");
}

#[tokio::test]
async fn a_smuggled_second_request_in_a_pipeline_is_refused() {
    let backend = RawBackend::start(Script::Reply(OK.to_vec())).await;
    let fg = common::start(&config(&backend)).await;
    // The first request is clean and answered; the second is ambiguous:
    // 400, and the connection closes before anything after it is read.
    let pipeline = "GET /first HTTP/1.1\r\nHost: t\r\n\r\n\
                    POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                    GET /third HTTP/1.1\r\nHost: t\r\n\r\n";
    let r = exchange(fg.first_addr(), pipeline.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(r.statuses(), vec![200, 400], "{r:?}");
    assert!(r.closed);
    let seen = backend.received_text();
    assert!(seen.contains("/first"), "{seen:?}");
    assert!(
        !seen.contains("/second") && !seen.contains("/third"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_body_that_turns_bad_midway_is_400_and_not_the_backends_fault() {
    // The head and a good chunk go out first; the broken chunk comes later,
    // after the request was forwarded. The backend never receives a
    // complete request, and the client gets 400.
    let b = common::Backend::with_handler(
        "b1",
        std::sync::Arc::new(|req| {
            Box::pin(async move {
                use http_body_util::BodyExt;
                match req.into_body().collect().await {
                    Ok(_) => common::text_response(200, "complete"),
                    Err(_) => common::text_response(500, "broken"),
                }
            })
        }),
    )
    .await;
    let yaml = common::farm_config("round_robin", &[&b], "", "");
    let fg = common::start(&yaml).await;
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(fg.first_addr())
        .await
        .unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await
        .unwrap();
    common::wait_until(Duration::from_secs(5), "forwarded", || async {
        b.hits() == 1
    })
    .await;
    s.write_all(b"zz\r\nbroken\r\n0\r\n\r\n").await.unwrap();
    let r = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(r.status(), 400, "{r:?}");
    assert!(r.closed);
    let state = fg
        .gateway
        .registry
        .get_or_create(&farmgate::farm::ServerKey {
            farm: "web".into(),
            server: "b1".into(),
        });
    assert_eq!(
        state.failures.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a client's broken body is not the server's failure"
    );
}
