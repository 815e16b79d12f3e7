//! The HTTP/1 engine's connection pieces end to end, over real sockets on
//! 127.0.0.1: a client connection's read loop and the backend exchange
//! driven in the client's task (a small proxy loop built from
//! `farmgate::http1::io`, as the request path will be), in front of a real
//! hyper backend and raw TCP backends. Keep-alive and pipelined requests,
//! chunked bodies with trailers, a backend answering before the request
//! body is in, an oversized head.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;

use bytes::Bytes;
use common::*;
use farmgate::http1::downstream::{write_response, Client, ClientBody};
use farmgate::http1::io::{forward_body, read_request_head, read_response_head, Encode, IoError};
use farmgate::http1::upstream::{write_request, ForwardedMode, Forwarding};
use farmgate::http1::{date, BodyKind, Parsed, ReadBuf, RequestParser, ResponseParser};
use http_body_util::BodyExt;
use raw::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 8 << 10;
const WAIT: Duration = Duration::from_secs(10);

/// A proxy on an ephemeral port: one task per client connection, one
/// backend connection per client connection, reopened when the backend
/// closes it.
async fn start_proxy(backend: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, backend));
        }
    });
    addr
}

async fn serve(mut client: TcpStream, backend_addr: SocketAddr) -> Result<(), IoError> {
    let ip = client.peer_addr().map_err(IoError::Read)?.ip().to_string();
    let fwd = Forwarding {
        mode: ForwardedMode::Append,
        trusted: false,
        client_ip: ip.as_bytes(),
        proto: b"http",
        host: None,
        target: None,
    };
    let mut backend: Option<TcpStream> = None;
    let (mut cbuf, mut bbuf) = (ReadBuf::new(), ReadBuf::new());
    let mut req = RequestParser::new(MAX_HEAD);
    let mut resp = ResponseParser::new(MAX_HEAD);
    let (mut up, mut down) = (Vec::new(), Vec::new());
    loop {
        let n = match read_request_head(&mut client, &mut cbuf, &mut req, MAX_HEAD).await {
            Ok(Parsed::Head(n)) => n,
            Err(IoError::Violation(v)) => {
                let status = v.status();
                let line = format!(
                    "HTTP/1.1 {} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                );
                return client
                    .write_all(line.as_bytes())
                    .await
                    .map_err(IoError::Write);
            }
            Ok(_) | Err(_) => return Ok(()),
        };
        let head = req.head(cbuf.data());
        let (mut keep_alive, minor, head_request, body) = (
            head.keep_alive(),
            head.minor(),
            head.is_head_method(),
            head.body(),
        );
        up.clear();
        write_request(&head, &fwd, &[] as &[(&[u8], &[u8])], &mut up);
        cbuf.consume(n);
        if backend.is_none() {
            backend = Some(
                TcpStream::connect(backend_addr)
                    .await
                    .map_err(IoError::Write)?,
            );
            bbuf = ReadBuf::new();
        }
        let Some(b) = backend.as_mut() else {
            return Ok(());
        };
        b.write_all(&up).await.map_err(IoError::Write)?;
        let (mut br, mut bw) = b.split();
        let encode = if body == BodyKind::Chunked {
            Encode::Chunked
        } else {
            Encode::Raw
        };
        // The body goes up while the answer is awaited: a backend may
        // answer (413, 401, a redirect) before it reads the body. The
        // upload is polled first, so a body already here is sent whole.
        up.clear();
        let mut n = {
            let upload = forward_body(
                &mut client,
                &mut cbuf,
                body,
                &mut bw,
                encode,
                &mut up,
                MAX_HEAD,
            );
            let answer = read_response_head(&mut br, &mut bbuf, &mut resp, head_request, MAX_HEAD);
            tokio::pin!(upload, answer);
            tokio::select! {
                biased;
                r = &mut upload => {
                    if let Err(e) = r {
                        if !matches!(e, IoError::Write(_)) {
                            return Err(e);
                        }
                        keep_alive = false;
                    }
                    answer.await?
                }
                r = &mut answer => {
                    // The rest of the request body is abandoned: where the next
                    // request would start is unknown, so the client goes.
                    keep_alive = false;
                    r?
                }
            }
        };
        loop {
            let date = date::now();
            let reply = Client {
                minor,
                keep_alive,
                date: &date,
            };
            let head = resp.head(bbuf.data());
            let (interim, kind, reusable) = (head.is_interim(), head.body(), head.reusable());
            down.clear();
            let w = write_response(
                &head,
                &reply,
                &[(&b"Via"[..], &b"1.1 engine"[..])],
                &mut down,
            );
            bbuf.consume(n);
            client.write_all(&down).await.map_err(IoError::Write)?;
            down.clear();
            if !interim {
                let encode = if w.body == ClientBody::Chunked {
                    Encode::Chunked
                } else {
                    Encode::Raw
                };
                forward_body(
                    &mut br,
                    &mut bbuf,
                    kind,
                    &mut client,
                    encode,
                    &mut down,
                    MAX_HEAD,
                )
                .await?;
                if w.close {
                    return Ok(());
                }
                if !reusable {
                    backend = None;
                }
                break;
            }
            n = read_response_head(&mut br, &mut bbuf, &mut resp, head_request, MAX_HEAD).await?;
        }
    }
}

/// Reads one response with a Content-Length body off a keep-alive client
/// connection.
async fn response(s: &mut TcpStream) -> (u16, String) {
    tokio::time::timeout(WAIT, read_response(s))
        .await
        .expect("a response in time")
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_reach_a_real_backend() {
    let backend = Backend::named("web1").await;
    let proxy = start_proxy(backend.addr).await;
    let mut c = TcpStream::connect(proxy).await.unwrap();
    // One at a time on one connection, then three pipelined in one write.
    for _ in 0..3 {
        c.write_all(b"GET /one HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(response(&mut c).await, (200, "web1".to_string()));
    }
    c.write_all(b"GET /a HTTP/1.1\r\nHost: shop\r\n\r\nGET /b HTTP/1.1\r\nHost: shop\r\n\r\nGET /c HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(response(&mut c).await, (200, "web1".to_string()));
    }
    assert_eq!(backend.hits(), 6);
    let seen = backend.last_seen();
    assert_eq!(seen.uri.path(), "/c");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], "shop");
}

#[tokio::test]
async fn chunked_request_body_with_trailers_reaches_the_backend() {
    let backend = Backend::with_handler(
        "echo",
        Arc::new(|req| {
            Box::pin(async move {
                let collected = req.into_body().collect().await.unwrap();
                let trailer = collected
                    .trailers()
                    .and_then(|t| t.get("x-sum").cloned())
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .unwrap_or_default();
                let body: Bytes = collected.to_bytes();
                let text = format!("{}|{trailer}", String::from_utf8_lossy(&body));
                text_response(200, text)
            })
        }),
    )
    .await;
    let proxy = start_proxy(backend.addr).await;
    let mut c = TcpStream::connect(proxy).await.unwrap();
    c.write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await
        .unwrap();
    c.write_all(b"6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut c).await, (200, "hello world|11".to_string()));
    // And a Content-Length body on the same connection after it.
    c.write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        .await
        .unwrap();
    assert_eq!(response(&mut c).await, (200, "abc|".to_string()));
}

#[tokio::test]
async fn a_backend_answering_before_the_request_body_is_in() {
    // The backend reads the head, answers 413 at once and keeps reading;
    // the client has sent only part of its 1 MiB body and waits for an
    // answer before it sends more. A proxy that uploaded the whole body
    // before reading the answer would never answer.
    let backend = RawBackend::start(Script::ReplyAndHang(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!".to_vec(),
    ))
    .await;
    let proxy = start_proxy(backend.addr).await;
    let mut c = TcpStream::connect(proxy).await.unwrap();
    c.write_all(b"PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n")
        .await
        .unwrap();
    c.write_all(&[b'x'; 1024]).await.unwrap();
    let reply = read_until_close(&mut c, WAIT).await;
    assert_eq!(reply.status(), 413, "{}", reply.text);
    assert!(reply.text.ends_with("too big!"), "{}", reply.text);
    // The client connection closes: the rest of its body was not read.
    assert!(reply.closed);
    assert!(
        reply.text.contains("Connection: close\r\n"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn chunked_and_close_delimited_responses_are_reframed() {
    let backend = RawBackend::start(Script::Reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Done: yes\r\n\r\n".to_vec(),
    ))
    .await;
    let proxy = start_proxy(backend.addr).await;
    let mut c = TcpStream::connect(proxy).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_until_close(&mut c, WAIT).await;
    assert!(
        reply.text.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        reply.text
    );
    assert!(
        reply
            .text
            .ends_with("\r\n\r\n5\r\nhello\r\n0\r\nX-Done: yes\r\n\r\n"),
        "{:?}",
        reply.text
    );

    // Until close from the backend; to an HTTP/1.0 client, until close too.
    let backend = RawBackend::start(Script::Reply(
        b"HTTP/1.0 200 OK\r\n\r\nbody until close".to_vec(),
    ))
    .await;
    let proxy = start_proxy(backend.addr).await;
    let mut c = TcpStream::connect(proxy).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"0\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n10\r\nbody until close\r\n0\r\n\r\n"),
        "{text:?}"
    );
    let reply = exchange(proxy, b"GET / HTTP/1.0\r\n\r\n", WAIT).await;
    assert!(
        reply.closed && reply.text.ends_with("\r\n\r\nbody until close"),
        "{:?}",
        reply.text
    );
}

#[tokio::test]
async fn oversized_heads_and_smuggling_attempts_are_refused() {
    let backend = RawBackend::start(Script::Reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ))
    .await;
    let proxy = start_proxy(backend.addr).await;
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend_from_slice(&[b'v'; MAX_HEAD]);
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exchange(proxy, &big, WAIT).await.status(), 431);
    let smuggle = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n";
    let reply = exchange(proxy, smuggle, WAIT).await;
    assert_eq!(reply.statuses(), [400], "{}", reply.text);
    assert_eq!(backend.connections(), 0, "nothing reached the backend");
}
