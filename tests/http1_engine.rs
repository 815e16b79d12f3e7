//! The HTTP/1 engine on the request path (`runtime.http1: engine`, the
//! default), end to end through real sockets: keep-alive connections
//! reused for many requests, pipelined requests answered in order, request
//! heads split across reads at every byte, oversized heads refused, a
//! backend that answers before the request body is in, chunked request
//! bodies with trailers, and the switch back to hyper.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::*;
use raw::{read_response, read_until_close, RawBackend, Script};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn config(backend: std::net::SocketAddr, http1: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         runtime:\n  http1: {http1}\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: a, address: \"{backend}\" }}\n"
    )
}

/// A backend that answers every request with its method, path and body.
async fn echo_backend() -> Backend {
    Backend::with_handler(
        "echo",
        std::sync::Arc::new(|req: http::Request<hyper::body::Incoming>| {
            Box::pin(async move {
                use http_body_util::BodyExt;
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let text = format!(
                    "{} {} {}",
                    parts.method,
                    parts.uri,
                    String::from_utf8_lossy(&body)
                );
                text_response(200, text)
            })
        }),
    )
    .await
}

#[tokio::test]
async fn one_connection_carries_many_requests() {
    let backend = echo_backend().await;
    let fg = start(&config(backend.addr, "engine")).await;
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    for i in 0..200 {
        let req = format!("GET /n/{i} HTTP/1.1\r\nHost: t\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut s).await;
        assert_eq!((status, body), (200, format!("GET /n/{i} ")));
    }
    // With bodies too: the read side goes to the body and comes back.
    for i in 0..50 {
        let req = format!(
            "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n{:03}",
            i
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut s).await;
        assert_eq!((status, body), (200, format!("POST /p {i:03}")));
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let backend = echo_backend().await;
    let fg = start(&config(backend.addr, "engine")).await;
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    let batch = "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n\
                 POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody\
                 POST /3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n\
                 GET /4 HTTP/1.1\r\nHost: t\r\n\r\n";
    s.write_all(batch.as_bytes()).await.unwrap();
    let expected = ["GET /1 ", "POST /2 body", "POST /3 ab", "GET /4 "];
    for want in expected {
        let (status, body) = read_response(&mut s).await;
        assert_eq!((status, body.as_str()), (200, want));
    }
}

#[tokio::test]
async fn a_head_split_at_every_byte_is_read_whole() {
    let backend = echo_backend().await;
    let fg = start(&config(backend.addr, "engine")).await;
    let req = b"POST /split?q=1 HTTP/1.1\r\nHost: t\r\nX-A: one\r\nContent-Length: 2\r\n\r\nok";
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    for at in 1..req.len() {
        s.write_all(&req[..at]).await.unwrap();
        s.flush().await.unwrap();
        // Let the first part arrive on its own.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        s.write_all(&req[at..]).await.unwrap();
        let (status, body) = read_response(&mut s).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "POST /split?q=1 ok"),
            "split at {at}"
        );
    }
}

#[tokio::test]
async fn an_oversized_head_is_refused_with_431_before_any_backend() {
    let backend = echo_backend().await;
    let fg = start(&config(backend.addr, "engine")).await;
    let big = "x".repeat(40 << 10);
    let req = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    let _ = s.write_all(req.as_bytes()).await;
    let reply = read_until_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(reply.status(), 431, "{}", reply.text);
    assert!(reply.closed);
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_backend_may_answer_before_the_request_body_is_in() {
    let early = RawBackend::start(Script::ReplyAndHang(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
            .to_vec(),
    ))
    .await;
    let fg = start(&config(early.addr, "engine")).await;
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\nfirst bytes")
        .await
        .unwrap();
    // The answer arrives while the client still holds back its body.
    let (status, body) = read_response(&mut s).await;
    assert_eq!((status, body.as_str()), (413, "nope"));
}

#[tokio::test]
async fn chunked_request_trailers_reach_the_backend() {
    let backend = Backend::with_handler(
        "trailers",
        std::sync::Arc::new(|req: http::Request<hyper::body::Incoming>| {
            Box::pin(async move {
                use http_body_util::BodyExt;
                let collected = req.into_body().collect().await.unwrap();
                let sum = collected
                    .trailers()
                    .and_then(|t| t.get("x-sum"))
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
                text_response(200, format!("{body} {sum}"))
            })
        }),
    )
    .await;
    for http1 in ["engine", "hyper"] {
        let fg = start(&config(backend.addr, http1)).await;
        let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
        s.write_all(
            b"POST /t HTTP/1.1\r\nHost: t\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n",
        )
        .await
        .unwrap();
        let (status, body) = read_response(&mut s).await;
        assert_eq!((status, body.as_str()), (200, "abc 42"), "{http1}");
    }
}

/// Status code, fields (names without case; `Date` and `Connection`
/// left out: the first differs by the second, the second by style) and
/// body of one HTTP/1 response text.
fn normalized(text: &str) -> (String, Vec<String>, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap_or("")
        .get(9..12)
        .unwrap_or("")
        .to_string();
    let mut fields: Vec<String> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or((l, ""));
            format!("{}:{}", n.to_ascii_lowercase(), v.trim())
        })
        .filter(|f| !f.starts_with("date:") && !f.starts_with("connection:"))
        .collect();
    fields.sort();
    (status, fields, body.to_string())
}

#[tokio::test]
async fn both_servers_answer_alike() {
    let backend = echo_backend().await;
    let requests: [&[u8]; 4] = [
        b"GET /same HTTP/1.0\r\nHost: t\r\n\r\n",
        b"HEAD /head HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        b"GET /nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ];
    for req in requests {
        let mut answers = Vec::new();
        for http1 in ["engine", "hyper"] {
            let fg = start(&config(backend.addr, http1)).await;
            let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
            s.write_all(req).await.unwrap();
            let reply = read_until_close(&mut s, Duration::from_secs(5)).await;
            assert!(reply.closed, "the connection closes ({http1})");
            answers.push(normalized(&reply.text));
        }
        assert_eq!(answers[0], answers[1], "{}", String::from_utf8_lossy(req));
    }
}

#[tokio::test]
async fn an_unknown_http1_server_is_a_config_error() {
    let registry = std::sync::Arc::new(farmgate::farm::StateRegistry::default());
    let yaml = config("127.0.0.1:9".parse().unwrap(), "nginx");
    let Err(err) = farmgate::config::load_str(&yaml, "test.yaml", &registry) else {
        panic!("runtime.http1: nginx was accepted");
    };
    let text = err.to_string();
    assert!(text.contains("runtime.http1"), "{text}");
    assert!(text.contains("engine or hyper"), "{text}");
}

#[tokio::test]
async fn shutdown_closes_an_idle_keep_alive_connection_at_once() {
    let backend = echo_backend().await;
    let fg = start(&config(backend.addr, "engine")).await;
    let mut idle = TcpStream::connect(fg.first_addr()).await.unwrap();
    idle.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    // The connection waits for its next request; shutdown must wake that
    // wait itself. Left alone, the connection would close only once it
    // parked (after 1 s idle: a parked connection watches shutdown on its
    // own), so a shutdown that takes most of a second was not woken.
    let began = std::time::Instant::now();
    let left = fg.shutdown(Duration::from_secs(20)).await;
    assert_eq!(left, 0, "connections still open after shutdown");
    assert!(
        began.elapsed() < Duration::from_millis(800),
        "shutdown waited {:?} for an idle connection",
        began.elapsed()
    );
    let rest = read_until_close(&mut idle, Duration::from_secs(5)).await;
    assert!(rest.closed && rest.text.is_empty(), "{:?}", rest.text);
}

/// Bodies of every size class reach the client byte for byte on one
/// keep-alive connection: copied behind the head (small), sent from the
/// read buffer with the head in one vectored write (larger, whole in the
/// buffer), and relayed read by read (larger than the buffer).
#[tokio::test]
async fn bodies_of_every_size_arrive_whole_on_one_connection() {
    fn body(n: usize) -> String {
        (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect()
    }
    let backend = Backend::with_handler(
        "sizes",
        std::sync::Arc::new(|req: http::Request<hyper::body::Incoming>| {
            Box::pin(async move {
                let n = req.uri().path()[1..].parse().unwrap_or(0);
                text_response(200, body(n))
            })
        }),
    )
    .await;
    let fg = start(&config(backend.addr, "engine")).await;
    let mut s = TcpStream::connect(fg.first_addr()).await.unwrap();
    let sizes = [
        0, 1, 2048, 2049, 16_000, 16_384, 16_385, 100_000, 1_000_000, 3,
    ];
    for n in sizes {
        s.write_all(format!("GET /{n} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, got) = read_response(&mut s).await;
        assert_eq!(status, 200);
        assert!(
            got == body(n),
            "a {n}-byte body came back as {} bytes",
            got.len()
        );
    }
    // Pipelined: the second answer follows the first's last byte.
    s.write_all(b"GET /20000 HTTP/1.1\r\nHost: a\r\n\r\nGET /5 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.1, body(20_000));
    assert_eq!(read_response(&mut s).await.1, body(5));
}
