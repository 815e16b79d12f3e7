//! HTTP/2 abuse: rapid reset (CVE-2023-44487), stream concurrency, header
//! list size and CONTINUATION floods, each with a normal client served
//! meanwhile. The abusers are a real h2 client and hand-built frames.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;

use bytes::Bytes;
use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(backend: &Backend, proxy: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n\
         admin:\n  enabled: false\n\
         log:\n  access: off\n\
         proxy:\n  retries: 0\n{proxy}\
         farms:\n  - name: web\n    servers:\n      - {{ name: b1, address: \"{}\" }}\n",
        backend.addr
    )
}

/// A backend that answers after `delay`, tracking the most requests it
/// had in flight at once.
async fn slow_backend(delay: Duration, peak: Arc<AtomicUsize>) -> Backend {
    let now = Arc::new(AtomicUsize::new(0));
    Backend::with_handler(
        "b1",
        Arc::new(move |_req| {
            let (now, peak) = (now.clone(), peak.clone());
            Box::pin(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                text_response(200, "b1")
            })
        }),
    )
    .await
}

async fn h2_client(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    (send, tokio::spawn(conn))
}

/// A normal HTTP/1.1 client is answered within 2 s.
async fn normal_client_served(addr: SocketAddr) {
    let (status, took) = raw::timed_get(addr).await;
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(2),
        "normal request took {took:?}"
    );
}

#[tokio::test]
async fn rapid_reset_client_is_cut_off_and_others_are_served() {
    let peak = Arc::new(AtomicUsize::new(0));
    let b = slow_backend(Duration::from_millis(50), peak.clone()).await;
    let fg = start(&config(&b, "")).await;
    let addr = fg.first_addr();
    let (send, conn) = h2_client(addr).await;

    const ATTEMPTS: usize = 20_000;
    let attack = tokio::spawn(async move {
        let mut send = send;
        let mut opened = 0;
        for i in 0..ATTEMPTS {
            send = match send.ready().await {
                Ok(s) => s,
                Err(_) => break,
            };
            let req = http::Request::get(format!("http://{addr}/r{i}"))
                .body(())
                .unwrap();
            let Ok((resp, mut stream)) = send.send_request(req, false) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            drop(resp);
            opened += 1;
            if i % 16 == 0 {
                tokio::task::yield_now().await;
            }
        }
        opened
    });
    for _ in 0..5 {
        normal_client_served(addr).await;
    }
    let opened = tokio::time::timeout(Duration::from_secs(30), attack)
        .await
        .expect("the attack ends")
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the abusive connection is closed")
        .unwrap();
    assert!(
        opened < ATTEMPTS,
        "the abuser opened all {ATTEMPTS} streams: never cut off"
    );
    let _ = ended;
    eprintln!(
        "rapid reset: {opened} streams opened before the cut, {} reached the backend, peak {} in flight",
        b.hits(),
        peak.load(Ordering::SeqCst)
    );
    assert!(b.hits() <= 500, "{} requests reached the backend", b.hits());
    normal_client_served(addr).await;
}

/// Sends `n` GETs at once; returns each outcome.
async fn burst(
    send: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    n: usize,
) -> Vec<Result<http::StatusCode, h2::Error>> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = send.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = s.ready().await?;
            let req = http::Request::get(format!("http://{addr}/{i}"))
                .body(())
                .unwrap();
            let (resp, _) = s.send_request(req, true)?;
            Ok(resp.await?.status())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn concurrent_streams_are_bounded_by_http2_max_streams() {
    let peak = Arc::new(AtomicUsize::new(0));
    let b = slow_backend(Duration::from_millis(200), peak.clone()).await;
    let fg = start(&config(&b, "  http2_max_streams: 8\n")).await;
    let addr = fg.first_addr();
    let (send, _conn) = h2_client(addr).await;

    // A client that opens 40 streams before it has read the server's
    // SETTINGS: the streams past the limit are refused, not queued.
    let eager = burst(&send, addr, 40).await;
    for r in &eager {
        match r {
            Ok(status) => assert_eq!(*status, 200),
            Err(e) => assert_eq!(e.reason(), Some(h2::Reason::REFUSED_STREAM), "{e:?}"),
        }
    }
    assert!(peak.load(Ordering::SeqCst) <= 8);

    // A client that knows the limit gets all its requests answered, never
    // more than 8 at a time.
    assert_eq!(send.current_max_send_streams(), 8);
    let polite = burst(&send, addr, 40).await;
    assert!(polite.iter().all(|r| matches!(r, Ok(s) if *s == 200)));
    normal_client_served(addr).await;
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=8).contains(&peak), "peak {peak} in flight");
}

#[tokio::test]
async fn oversized_http2_header_list_is_refused() {
    let b = Backend::named("b1").await;
    let fg = start(&config(&b, "  max_header_size: 4KiB\n")).await;
    let addr = fg.first_addr();
    let (send, _conn) = h2_client(addr).await;
    let mut send = send.ready().await.unwrap();
    let req = http::Request::get(format!("http://{addr}/big"))
        .header("x-big", "a".repeat(8 << 10))
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    match resp.await {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(e.is_reset() || e.is_go_away(), "{e:?}"),
    }
    assert_eq!(b.hits(), 0);
    normal_client_served(addr).await;
}

/// An HTTP/2 frame header: length, type, flags, stream id.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn continuation_flood_is_cut_off() {
    let b = Backend::named("b1").await;
    let fg = start(&config(&b, "")).await;
    let addr = fg.first_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&frame(0x4, 0, 0, &[])).await.unwrap(); // SETTINGS
                                                        // HEADERS without END_HEADERS: :method GET, :scheme http, :path /.
    s.write_all(&frame(0x1, 0x1, 1, &[0x82, 0x86, 0x84]))
        .await
        .unwrap();
    // Then CONTINUATION frames that never end the header block, each a
    // literal header "x-a: <1000 bytes>" (never indexed).
    let mut literal = vec![0x10, 0x03, b'x', b'-', b'a', 0x7f, 0x00];
    let value_len = 1000 - 127; // HPACK integer: 127 + 873
    literal[6] = 0x80 | (value_len & 0x7f) as u8;
    literal.push((value_len >> 7) as u8);
    literal.extend(std::iter::repeat_n(b'v', 1000));
    let cont = frame(0x9, 0, 1, &literal);
    let mut sent = 0usize;
    let mut cut = false;
    for _ in 0..20_000 {
        if s.write_all(&cont).await.is_err() {
            cut = true;
            break;
        }
        sent += cont.len();
    }
    if !cut {
        // Everything was buffered by the kernel: the server must have
        // answered with GOAWAY and closed.
        let mut buf = vec![0u8; 65536];
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await;
        cut = read.unwrap_or(false);
    }
    assert!(cut, "the CONTINUATION flood was not cut off");
    eprintln!("continuation flood: cut after {} KiB sent", sent >> 10);
    assert!(sent < 10 << 20, "accepted {sent} bytes of one header block");
    assert_eq!(b.hits(), 0);
    normal_client_served(addr).await;
}
