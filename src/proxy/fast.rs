//! The HTTP/1 engine's fast forward: a request without a body, routed to a
//! farm whose answer needs neither the cache nor compression, is sent by
//! the client connection's own task over a pooled raw backend connection
//! (`pool.rs`, [`RawConn`]: the stream, its reused read buffer and response
//! parser), and the backend's answer is parsed in place and written to the
//! client straight from its spans (`http1::downstream`), the body relayed
//! with one write per read (`http1::io::forward_body`). No hyper client, no
//! spawned connection task, no channel, no `HeaderMap` for the response.
//! Interim responses before the final head go to an HTTP/1.1 client as
//! they are parsed (`interim.rs`).
//!
//! The rules of `forward.rs` hold: at most `MAX_ATTEMPTS` servers; a
//! server that could not be connected to leaves rotation at once and the
//! request goes to another; one that failed after the request went out is
//! retried elsewhere up to `retries` times (these requests are GET or HEAD,
//! idempotent); `response_timeout` bounds the wait for the head (504); once
//! a response head arrived nothing is retried. A pooled connection the
//! backend closed while it sat idle is seen closed before the request goes
//! out (a non-blocking read finds its end) and replaced without counting as
//! a failure, as hyper's pool does; one that fails after the request went
//! out is the server's failure, retried elsewhere.

use super::connector::BackendStream;
use super::error::ProxyError;
use super::exchange::Exchange;
use super::fast_head;
use super::forward::{not_sent, Forwarder, MAX_ATTEMPTS};
use super::interim;
use super::pool::{keep_for_value, BackendPool, RawConn};
use crate::farm::state::Attempt;
use crate::farm::Server;
use crate::http1::io::{forward_body, read_response_head, write_both, Encode, IoError, COPY_MAX};
use crate::http1::{buffer, date, downstream, BodyKind, ReadBuf, ResponseParser};
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The client side of a fast exchange.
pub struct FastClient<'a, W> {
    pub to: &'a mut W,
    /// 0: HTTP/1.0, 1: HTTP/1.1.
    pub minor: u8,
    /// The client connection may carry another request.
    pub keep_alive: bool,
    /// The connection's write buffer, and the upstream head's buffer.
    pub out: &'a mut Vec<u8>,
    pub up: &'a mut Vec<u8>,
    /// The connection's response timer, reused request after request.
    pub timer: std::pin::Pin<&'a mut tokio::time::Sleep>,
}

/// How a fast exchange ended.
#[derive(Debug)]
pub enum Fast {
    /// A response was written (whole, or cut off when a side failed);
    /// `keep_alive`: the client connection may go on.
    Written { status: u16, keep_alive: bool },
    /// No server answered: nothing was written, the error is the answer.
    Failed(ProxyError),
}

/// Why one attempt got no response head.
enum SendFail {
    /// Nothing reached the server; `connect`: no connection could be made.
    Unsent {
        cause: super::body::BoxError,
        connect: bool,
    },
    /// The request went out; the server may have processed it.
    Sent(IoError),
}

/// Forwards the bodiless request `parts` to `to`'s farm and writes the
/// answer to the client. `parts` is prepared for the backend
/// (`forward::prepare`), or, with `unprepared` (the client side), as the
/// client sent it: the head is then prepared as it is written
/// (`fast_head`).
pub async fn forward<W: AsyncWrite + Unpin>(
    to: &Forwarder<'_>,
    parts: &http::request::Parts,
    unprepared: Option<&super::headers::ClientSide<'_>>,
    mut client: FastClient<'_, W>,
    ex: &mut Exchange,
) -> Fast {
    let (proxy, farm) = (to.spec, to.farm);
    let head_request = parts.method == http::Method::HEAD;
    let max_head = proxy.limits.max_header_size.max(64 << 10);
    let mut retries_left = proxy.retries;
    let mut tried = [usize::MAX; MAX_ATTEMPTS];
    let mut last_err = ProxyError::NoServer;
    for attempt in 0..MAX_ATTEMPTS {
        let Some(idx) = farm.pick(&to.pick, &tried[..attempt]) else {
            return Fast::Failed(last_err);
        };
        tried[attempt] = idx;
        let server = &farm.servers[idx];
        if let Some(r) = ex.record() {
            r.server = Some(server.name.clone());
        }
        buffer::ensure_scratch(client.up);
        match unprepared {
            Some(side) => fast_head::write_unprepared(
                client.up,
                parts,
                server,
                proxy,
                side,
                to.trace.as_ref(),
            ),
            None => fast_head::write_prepared(
                client.up,
                parts,
                server,
                proxy.preserve_host,
                to.trace.as_ref(),
            ),
        }
        ex.hold(server.state.clone(), to.health, idx);
        // A request reads the clock twice: as it arrived (the exchange's
        // start, a microsecond or two before this on a first attempt) and
        // when the response head arrives. The pool, the timer, the latency
        // average and the Date field use those two.
        let sent_at = if attempt == 0 {
            ex.started()
        } else {
            std::time::Instant::now()
        };
        let pool = &to.pools[idx];
        // Interim responses go to HTTP/1.1 clients only (RFC 9110 §15.2).
        let hints =
            (client.minor == 1 && to.relay_interim).then_some((&mut *client.to, &mut *client.out));
        // The connection's timer, not a new one. Set again only when the
        // deadline comes earlier than where it stands (or it has fired):
        // each request's deadline is a little later than the last one's,
        // and a timer left earlier fires early, once, and is set then. The
        // exchange is awaited here rather than passed to a helper: its
        // future is large, and each hand-over is a copy of it.
        let due = deadline(sent_at.into(), proxy.response_timeout);
        if client.timer.is_elapsed() || client.timer.deadline() > due {
            client.timer.as_mut().reset(due);
        }
        // In a block of its own: the select's output (~240 bytes) is not
        // kept in this future while the response is relayed.
        let (conn, head_len) = {
            let mut sending = std::pin::pin!(send(
                to,
                server,
                pool,
                &mut *client.up,
                hints,
                head_request,
                max_head,
                sent_at
            ));
            let sent = loop {
                tokio::select! {
                    biased;
                    r = sending.as_mut() => break Ok(r),
                    () = client.timer.as_mut() => {
                        if client.timer.deadline() >= due {
                            break Err(());
                        }
                        client.timer.as_mut().reset(due);
                    }
                }
            };
            match sent {
                Ok(Ok(got)) => got,
                Ok(Err(SendFail::Unsent { cause, connect })) => {
                    not_sent(to, idx, &*cause, connect, ex);
                    last_err = ProxyError::Connect;
                    continue;
                }
                Ok(Err(SendFail::Sent(e))) => {
                    tracing::debug!(farm = %farm.name, server = %server.name, "backend error: {e}");
                    let err = ProxyError::Backend;
                    to.health.record(
                        idx,
                        Attempt::Failed {
                            reason: err.reason(),
                        },
                    );
                    ex.release();
                    if retries_left == 0 {
                        return Fast::Failed(err);
                    }
                    retries_left -= 1;
                    last_err = err;
                    continue;
                }
                Err(_) => {
                    let timeout = Attempt::Failed { reason: "timeout" };
                    to.health.record(idx, timeout);
                    return Fast::Failed(ProxyError::Timeout);
                }
            }
        };
        let now = std::time::Instant::now();
        let latency = now.saturating_duration_since(sent_at);
        return respond(to, idx, conn, head_len, (latency, now), client, pool, ex).await;
    }
    Fast::Failed(last_err)
}

/// `after` from `now`, saturating (a timeout may be "never").
fn deadline(now: tokio::time::Instant, after: std::time::Duration) -> tokio::time::Instant {
    now.checked_add(after)
        .unwrap_or(now + std::time::Duration::from_secs(86_400 * 365))
}

/// Sends the head over a pooled connection (or a new one) and reads the
/// response head; returns the connection and the head's length. Interim
/// heads before it are written to `hints` (the client and a scratch
/// buffer), when given.
#[allow(clippy::too_many_arguments)]
async fn send<W: AsyncWrite + Unpin>(
    to: &Forwarder<'_>,
    server: &Server,
    pool: &Arc<BackendPool>,
    up: &mut Vec<u8>,
    mut hints: Option<(&mut W, &mut Vec<u8>)>,
    head_request: bool,
    max_head: usize,
    now: std::time::Instant,
) -> Result<(Box<RawConn>, usize), SendFail> {
    loop {
        let (mut conn, reused) = match pool.checkout_raw(now) {
            Some(c) if is_closed(&c.io) => continue,
            Some(c) => (c, true),
            None => match Box::pin(to.upstream.connect_raw(server)).await {
                Ok(io) => (new_conn(io, max_head), false),
                Err(cause) => {
                    return Err(SendFail::Unsent {
                        cause,
                        connect: true,
                    })
                }
            },
        };
        if let Err(e) = conn.io.write_all(up).await {
            if reused {
                continue;
            }
            let cause = Box::new(e);
            return Err(SendFail::Unsent {
                cause,
                connect: false,
            });
        }
        // Sent: the head's buffer serves the thread's next request while
        // this one waits (a retry writes its head again).
        buffer::recycle(up);
        loop {
            // Waited for with no read buffer taken: a thread with hundreds
            // of exchanges waiting on their backends holds one buffer for
            // each response arriving, not one for each wait (with one each,
            // the pool ran dry at 256 connections and three requests in
            // four zero-filled a new 16 KiB buffer).
            if conn.buf.is_empty() {
                if let BackendStream::Plain(tcp) = &conn.io {
                    tcp.readable()
                        .await
                        .map_err(|e| SendFail::Sent(IoError::Read(e)))?;
                }
            }
            let read = read_response_head(
                &mut conn.io,
                &mut conn.buf,
                &mut conn.parser,
                head_request,
                max_head,
            );
            match read.await {
                Ok(n) => {
                    let head = conn.parser.head(conn.buf.data());
                    if head.status() == 101 {
                        // Not asked for: the exchange cannot go on.
                        return Err(SendFail::Sent(IoError::Truncated));
                    }
                    if head.is_interim() {
                        if let Some((client, out)) = &mut hints {
                            if interim::write_parsed(&head, *client, out).await.is_err() {
                                // Gone: the final head will find out.
                                hints = None;
                            }
                        }
                        conn.buf.consume(n);
                        continue;
                    }
                    return Ok((conn, n));
                }
                Err(e) => return Err(SendFail::Sent(e)),
            }
        }
    }
}

/// Has the backend closed this idle connection (or sent on it unasked)?
fn is_closed(io: &BackendStream) -> bool {
    let tcp = match io {
        BackendStream::Plain(s) => s,
        BackendStream::Tls(s) => s.get_ref().0,
    };
    let mut probe = [0u8; 1];
    match tcp.try_read(&mut probe) {
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        // Its end, or bytes nobody asked for (TLS close_notify): unusable.
        Ok(_) => true,
    }
}

fn new_conn(io: BackendStream, max_head: usize) -> Box<RawConn> {
    Box::new(RawConn {
        io,
        buf: ReadBuf::new(),
        parser: ResponseParser::new(max_head),
    })
}

/// Writes the response head and relays the body; the connection goes back
/// to the pool when the body was read whole and the backend keeps it.
#[allow(clippy::too_many_arguments)]
async fn respond<W: AsyncWrite + Unpin>(
    to: &Forwarder<'_>,
    idx: usize,
    mut conn: Box<RawConn>,
    head_len: usize,
    (latency, now): (std::time::Duration, std::time::Instant),
    client: FastClient<'_, W>,
    pool: &Arc<BackendPool>,
    ex: &mut Exchange,
) -> Fast {
    let head = conn.parser.head(conn.buf.data());
    let status = head.status();
    to.health
        .record_at(idx, Attempt::Response { status, latency }, now);
    ex.set_upstream_time(latency);
    ex.set_picked(idx);
    let cookie = to.farm.affinity_cookie(&to.pick, idx);
    let date = date::at_instant(now);
    let down = downstream::Client {
        minor: client.minor,
        keep_alive: client.keep_alive,
        date: &date,
    };
    let out = client.out;
    buffer::ensure_scratch(out);
    out.clear();
    let trace_id = to.trace.as_ref().and_then(super::headers::trace_response);
    let fields = super::headers::answer_fields(cookie, trace_id.as_ref());
    let written = downstream::write_response(&head, &down, &fields, out);
    let reusable = head.reusable();
    let keep = keep_for_value(to.backend_idle_timeout, head.keep_alive_value());
    let kind = head.body();
    let max_trailers = to.spec.limits.max_header_size;
    conn.buf.consume(head_len);
    let keep_alive = !written.close;
    let encode = match written.body {
        downstream::ClientBody::Chunked => Encode::Chunked,
        _ => Encode::Raw,
    };
    // A body already read whole goes out with the head in one write.
    let relayed = match kind {
        BodyKind::None => client
            .to
            .write_all(out)
            .await
            .map(|()| 0)
            .map_err(IoError::Write),
        BodyKind::Length(n) if conn.buf.data().len() as u64 >= n && encode == Encode::Raw => {
            let n = n as usize;
            let written = if n > COPY_MAX {
                write_both(client.to, out, &conn.buf.data()[..n]).await
            } else {
                out.extend_from_slice(&conn.buf.data()[..n]);
                client.to.write_all(out).await
            };
            conn.buf.consume(n);
            written.map(|()| n as u64).map_err(IoError::Write)
        }
        // The head goes out with the body's first bytes.
        _ => {
            forward_body(
                &mut conn.io,
                &mut conn.buf,
                kind,
                client.to,
                encode,
                out,
                max_trailers,
            )
            .await
        }
    };
    match relayed {
        Ok(n) => {
            ex.add_response_bytes(n);
            if reusable && conn.buf.is_empty() {
                pool.checkin_raw(conn, keep, now);
            }
            Fast::Written { status, keep_alive }
        }
        Err(e) => {
            tracing::debug!("response cut off: {e}");
            if !matches!(e, IoError::Write(_)) {
                ex.backend_failed("body");
            }
            ex.mark_aborted();
            Fast::Written {
                status,
                keep_alive: false,
            }
        }
    }
}
