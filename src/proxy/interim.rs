//! Interim responses (1xx other than 101: `103 Early Hints`, `102
//! Processing`...) on their way from an HTTP/1 backend to an HTTP/1.1
//! client of the engine, written to the client as they arrive and always
//! before the final head; never part of the response the cache sees.
//!
//! Two ways in: the fast forward (`fast.rs`) parses them itself and writes
//! each with [`write_parsed`]; on the paths through hyper's client, hyper
//! hands each one to a callback (`hyper::ext::on_informational`, registered
//! by [`listen`] only when a client can receive them) that writes it as an
//! HTTP/1.1 head into a [`Pending`] buffer, and [`relayed`] writes what is
//! pending to the client while the request waits for its final head, and
//! what is left before it returns. Nothing here runs, and nothing is
//! allocated, for a response that has no interim head.
//!
//! A farm with `interim_responses: drop` relays none (and listens for none).
//!
//! A `100 Continue` is not relayed: the engine hands every request with
//! `Expect: 100-continue` to hyper's server (which answers the expectation
//! itself), so a 100 from a backend here answers no expectation of the
//! client's (nginx drops it too). Hop-by-hop fields go, as in final heads.

use crate::http1::{downstream, ResponseHead};
use http::header::{self, HeaderMap};
use http::{Request, StatusCode};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// `farms[].interim_responses`: whether the farm's interim responses go on
/// to the client.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RawInterim {
    /// Relayed to HTTP/1.1 clients of the engine as they arrive.
    #[default]
    Relay,
    /// Dropped, as nginx does by default: for clients that cannot take an
    /// unexpected 1xx, and to spare the requests that go through hyper's
    /// client the few allocations of listening for them.
    Drop,
}

/// Is an interim response with this status relayed to an HTTP/1.1 client?
pub fn relays(status: u16) -> bool {
    (102..200).contains(&status)
}

/// Where a request's interim responses go: its HTTP/1.1 client connection.
pub trait InterimTo: Send + Sync {
    /// Writes `heads` (whole interim heads) to the client.
    fn write<'s>(
        &'s self,
        heads: &'s [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 's>>;
}

/// The client connection's writer, lent to the forwarder for the wait on
/// the final head (the final head is written after it, by its owner).
pub struct ClientWriter<'w, W> {
    to: tokio::sync::Mutex<&'w mut W>,
}

impl<'w, W> ClientWriter<'w, W> {
    pub fn new(to: &'w mut W) -> Self {
        ClientWriter {
            to: tokio::sync::Mutex::new(to),
        }
    }
}

impl<W: AsyncWrite + Unpin + Send> InterimTo for ClientWriter<'_, W> {
    fn write<'s>(
        &'s self,
        heads: &'s [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 's>> {
        Box::pin(async move { self.to.lock().await.write_all(heads).await })
    }
}

/// Writes the fast forward's parsed interim `head` to the client (an
/// HTTP/1.1 one) when it is relayed; `out` is a scratch buffer. An error
/// is the client's: the final head will meet it too.
pub async fn write_parsed<W: AsyncWrite + Unpin>(
    head: &ResponseHead<'_>,
    to: &mut W,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if !relays(head.status()) {
        return Ok(());
    }
    let client = downstream::Client {
        minor: 1,
        keep_alive: true,
        date: b"",
    };
    out.clear();
    let none: &[(&[u8], &[u8])] = &[];
    downstream::write_response(head, &client, none, out);
    let written = to.write_all(out).await;
    out.clear();
    written
}

/// The most bytes of interim heads held for a client at a time.
const MAX_PENDING: usize = 64 << 10;

/// Interim heads hyper's client parsed, waiting to be written.
#[derive(Default)]
pub struct Pending {
    heads: Mutex<Vec<u8>>,
    ready: Notify,
}

/// Asks hyper's client to hand `req`'s interim responses to the returned
/// buffer (HTTP/1 connections only: hyper's HTTP/2 client drops them).
pub fn listen<B>(req: &mut Request<B>) -> Arc<Pending> {
    let pending = Arc::new(Pending::default());
    let to = pending.clone();
    hyper::ext::on_informational(req, move |res| to.push(res.status(), res.headers()));
    pending
}

impl Pending {
    fn push(&self, status: StatusCode, fields: &HeaderMap) {
        if !relays(status.as_u16()) {
            return;
        }
        let mut fields = fields.clone();
        super::headers::strip_hop_by_hop(&mut fields);
        // No framing in a 1xx (RFC 9110 §8.6, RFC 9112 §6.1).
        fields.remove(header::CONTENT_LENGTH);
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        if heads.len() > MAX_PENDING {
            // A client not reading while a server sends 1xx after 1xx:
            // hints are advice, the excess is dropped, memory stays bounded.
            return;
        }
        write_head(&mut heads, status, &fields);
        drop(heads);
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.heads.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One interim head in HTTP/1.1 form, lower-case names as hyper writes
/// final heads.
fn write_head(out: &mut Vec<u8>, status: StatusCode, fields: &HeaderMap) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `fut` (the wait for a response head), writing the interim heads that
/// reach `hints` to its client meanwhile, and those still pending when
/// `fut` ends before returning. Without `hints`, just `fut`. Taken pinned
/// by reference: an async fn keeps its arguments beside its locals, and a
/// future moved in would be held twice.
pub async fn relayed<F: Future + ?Sized>(
    mut fut: Pin<&mut F>,
    hints: Option<(&Pending, &dyn InterimTo)>,
) -> F::Output {
    let Some((pending, to)) = hints else {
        return fut.await;
    };
    let mut client_gone = false;
    loop {
        tokio::select! {
            biased;
            out = fut.as_mut() => {
                let heads = pending.take();
                if !client_gone && !heads.is_empty() {
                    let _ = to.write(&heads).await;
                }
                return out;
            }
            () = pending.ready.notified(), if !client_gone => {
                let heads = pending.take();
                if !heads.is_empty() && to.write(&heads).await.is_err() {
                    client_gone = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interim_head_loses_its_hop_by_hop_fields() {
        let p = Pending::default();
        let mut h = HeaderMap::new();
        h.append("link", "</a.css>; rel=preload; as=style".parse().unwrap());
        h.append("link", "</b.js>; rel=preload; as=script".parse().unwrap());
        h.append("connection", "x-hop".parse().unwrap());
        h.append("x-hop", "1".parse().unwrap());
        h.append("content-length", "0".parse().unwrap());
        p.push(StatusCode::from_u16(103).unwrap(), &h);
        p.push(StatusCode::CONTINUE, &h);
        let text = String::from_utf8(p.take()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload; as=style\r\n\
             link: </b.js>; rel=preload; as=script\r\n\r\n"
        );
        assert!(p.take().is_empty());
    }

    #[test]
    fn what_waits_for_a_slow_client_is_bounded() {
        let p = Pending::default();
        let mut h = HeaderMap::new();
        h.append("link", "</a.css>; rel=preload".parse().unwrap());
        for _ in 0..100_000 {
            p.push(StatusCode::from_u16(103).unwrap(), &h);
        }
        let held = p.take().len();
        assert!((MAX_PENDING..MAX_PENDING + 100).contains(&held), "{held}");
    }

    #[test]
    fn only_1xx_but_100_and_101_are_relayed() {
        assert!(relays(102) && relays(103) && relays(199));
        assert!(!relays(100) && !relays(101) && !relays(200));
    }
}
