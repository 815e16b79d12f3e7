//! An HTTP/1 client connection served by farmgate's own HTTP/1 engine
//! (`runtime.http1: engine`) instead of hyper's server: request heads are
//! read into the connection's one buffer and parsed in place
//! (`http1::RequestParser`, the strict framing rules and their statuses),
//! bodies are read straight off the socket (`engine_body.rs`), and the
//! pipeline's response is written back in one buffer (`engine_write.rs`).
//! Keep-alive, pipelining, the header/idle/body/send timeouts (the
//! connection's [`ConnActivity`] watchdog, as for hyper), eviction,
//! graceful shutdown, retiring after a binary upgrade and parking (an idle
//! connection gives its buffers back) behave as they do with hyper.
//!
//! What the engine leaves to hyper, for the rest of the connection (the
//! choice is made per connection, before the request is read any further,
//! so nothing is lost): the HTTP/2 preface (prior knowledge), upgrades
//! (WebSocket), `CONNECT` and `Expect: 100-continue`. The bytes already
//! read are replayed to hyper first (`preface::Replayed`).

use super::activity::{ConnActivity, Expiry};
use super::engine_body::{EngineBody, Giveback, ReadSide};
use super::engine_write::{self, Client};
use super::park::Parkable;
use super::{request_timeout, run_connection, Conn, ConnGuard, Serving};
use crate::http1::{buffer, Parsed, ReadBuf, RequestHead, RequestParser, Violation};
use crate::metrics::listener::ClientTimeout;
use crate::proxy::body::{BoxBody, ClientBody};
use crate::proxy::error::local_response;
use crate::proxy::fast::FastClient;
use crate::request::{self, Handled};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri, Version};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// How much a head read asks for at a time.
const READ_SIZE: usize = 16 << 10;

/// Field names a connection remembers from its previous request.
const NAMES_KEPT: usize = 32;

thread_local! {
    /// The name tables of connections that ended, for the thread's next.
    static NAME_TABLES: std::cell::RefCell<Vec<Vec<HeaderName>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A connection's field names from its previous request, in a table taken
/// from the thread's pool and given back when the connection's serving
/// ends: grown from nothing, it was one to three allocations on every new
/// connection.
struct NameTable(Vec<HeaderName>);

impl NameTable {
    fn new() -> Self {
        let pooled = buffer::take_from(&NAME_TABLES);
        // Small to start (a waiting connection holds it); grown tables
        // come back to the pool as they are.
        NameTable(pooled.unwrap_or_else(|| Vec::with_capacity(4)))
    }
}

impl Drop for NameTable {
    fn drop(&mut self) {
        let mut names = std::mem::take(&mut self.0);
        if names.capacity() == 0 {
            return;
        }
        names.clear();
        buffer::keep_in(&NAME_TABLES, names, 64);
    }
}

/// How a connection's turn ended.
enum Next<S> {
    /// Closed (or to be dropped).
    Close,
    /// To hyper, with the bytes read and not yet served.
    Hyper(S, ReadBuf),
    /// Idle: to park, after this many request heads.
    Park(S, u64),
}

/// Serves `stream` until it closes; see the module doc.
///
/// The serving state (parser, buffers, the exchange's futures) lives in a
/// boxed future that ends when the connection parks: a parked connection's
/// task holds only the socket, its watchdog and this loop.
pub(super) async fn run<S>(
    mut stream: S,
    conn: Conn,
    gw: Arc<Serving>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    guard: ConnGuard,
) where
    S: AsyncRead + AsyncWrite + Parkable + Unpin + Send + Sync + 'static,
{
    let activity = conn.activity.clone();
    let _counted = conn.info.stats.connection();
    let mut heads = 0;
    loop {
        // Written into its box, not built on the stack and copied (1.4 KiB
        // per new or unparked connection).
        let slot = Box::new_uninit();
        match Box::into_pin(Box::write(slot, serve(stream, &conn, &gw, heads))).await {
            Next::Close => return activity.set_done(),
            Next::Hyper(stream, buf) => {
                activity.continue_after_engine();
                let stream = super::preface::Replayed::with(stream, buf);
                drop(_counted);
                // Boxed: the engine's idle connections must not carry
                // hyper's connection future in their task.
                return Box::pin(run_connection(stream, conn, gw, builder, guard)).await;
            }
            Next::Park(s, h) => {
                (stream, heads) = (s, h);
                activity.set_parking(true);
                let mut shutdown = gw.connections.subscribe();
                let woken = super::wait_parked(&stream, &conn.info, &activity, &mut shutdown).await;
                activity.set_parking(false);
                if !woken {
                    return activity.set_done();
                }
            }
        }
    }
}

/// Serves requests until the connection closes, goes to hyper or parks;
/// `heads_before`: request heads served before it last parked.
async fn serve<S>(mut stream: S, conn: &Conn, gw: &Arc<Serving>, heads_before: u64) -> Next<S>
where
    S: AsyncRead + AsyncWrite + Parkable + Unpin + Send + Sync + 'static,
{
    let (info, activity) = (&conn.info, &conn.activity);
    let limits = gw.snapshot().proxy.limits;
    // One wait for shutdown for the whole connection: registered once,
    // not once per request and select.
    let mut shutdown = gw.connections.subscribe();
    let wait = pin!(async move {
        let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
    });
    let mut drain = pin!(gw.connections.draining(wait));
    let mut parser = RequestParser::new(conn.max_head);
    let mut buf = ReadBuf::new();
    // Request heads as the pipeline sees them: copied here, one after
    // another, so that once a request's views are dropped the next head
    // reuses the allocation (no allocation per request).
    let mut head_copies = bytes::BytesMut::new();
    // The previous request's field names: a client sends the same names
    // in the same order request after request, and a name `http` does not
    // know (a browser's `sec-*` fields) is an allocation each time it is
    // made; a clone of the previous one is a reference count.
    let mut names = NameTable::new();
    let mut out: Vec<u8> = Vec::new();
    let mut up: Vec<u8> = Vec::new();
    let mut draining = false;
    // The watchdog's timer and the response timer, reused by every
    // request on the connection (no timer armed per request).
    let mut watch = pin!(super::activity::unset_timer());
    let mut respond = pin!(super::activity::unset_timer());
    loop {
        // === A request head ===
        let head_len = loop {
            match parser.parse(buf.data()) {
                Ok(Parsed::Partial) if !buf.is_empty() && is_garbage(buf.data()) => {
                    // hyper's server refuses a request line it cannot
                    // parse at once (a TLS hello on a plain port): so do we.
                    refuse(&mut stream, Violation::Malformed, info, activity, &mut out).await;
                    return Next::Close;
                }
                Ok(Parsed::Partial) => {}
                Ok(Parsed::Head(n)) => break n,
                Ok(Parsed::Http2Preface) => return Next::Hyper(stream, buf),
                Err(v) => {
                    refuse(&mut stream, v, info, activity, &mut out).await;
                    return Next::Close;
                }
            }
            let heads = u32::try_from(heads_before + parser.heads()).unwrap_or(u32::MAX);
            activity.head_progress(!buf.is_empty(), heads);
            if draining && buf.is_empty() {
                return Next::Close;
            }
            let wake = {
                let read = async {
                    let unbuffered = buf.is_empty() && stream.waits_unbuffered();
                    let room = buf.spare(READ_SIZE, conn.max_head + READ_SIZE);
                    if room.is_empty() {
                        return Err(io::Error::other("head buffer full"));
                    }
                    if !unbuffered {
                        return tokio::io::AsyncReadExt::read(&mut stream, room).await;
                    }
                    // Between requests: one look with a pooled buffer; if
                    // the client has sent nothing yet, the buffer goes back
                    // and the wait holds none. (Waiting for readiness
                    // first is no substitute: the socket still reads as
                    // ready after the last request, so each waiting
                    // connection took a buffer of its own, and a burst of
                    // 10,000 clients held 16 KiB each until they parked:
                    // `idle_memory.py` went from 3.7 to 9.5 KiB a
                    // connection.)
                    if let Some(got) = read_now(&mut stream, room).await {
                        return got;
                    }
                    buf.release();
                    stream.readable().await?;
                    let room = buf.spare(READ_SIZE, conn.max_head + READ_SIZE);
                    tokio::io::AsyncReadExt::read(&mut stream, room).await
                };
                // In this order, not at random: a wake is nearly always
                // the read's, and the watchdog's deadline is worked out
                // only when the read still waits (no random draw either).
                tokio::select! {
                    biased;
                    r = read => Wake::Read(r),
                    _ = drain.as_mut(), if !draining => Wake::Drain,
                    why = activity.expired_on(true, watch.as_mut()) => Wake::Expired(why),
                }
            };
            let got = match wake {
                Wake::Read(r) => r,
                Wake::Drain => {
                    draining = true;
                    continue;
                }
                Wake::Expired(Expiry::Park) if activity.can_park() && buf.is_empty() => {
                    // The buffers, the field table and this future go.
                    return Next::Park(stream, heads_before + parser.heads());
                }
                Wake::Expired(Expiry::Park) => {
                    activity.skip_park();
                    continue;
                }
                Wake::Expired(Expiry::Header) if activity.head_started() => {
                    info.stats.count_timeout(ClientTimeout::Header);
                    info.stats.codes.inc(408);
                    Box::pin(request_timeout(stream)).await;
                    return Next::Close;
                }
                Wake::Expired(why) => {
                    tracing::debug!("closing client connection: {why:?}");
                    return Next::Close;
                }
            };
            activity.read_progress();
            match got {
                Ok(0) | Err(_) => return Next::Close,
                Ok(n) => buf.filled(n),
            }
        };
        let heads = u32::try_from(heads_before + parser.heads()).unwrap_or(u32::MAX);
        activity.head_progress(false, heads);

        // === The request ===
        let head = parser.head(buf.data());
        if head.fields().count() > limits.max_headers {
            refuse(
                &mut stream,
                Violation::TooManyFields,
                info,
                activity,
                &mut out,
            )
            .await;
            return Next::Close;
        }
        if for_hyper(&head) {
            return Next::Hyper(stream, buf);
        }
        let Some(req) = to_request(
            &head,
            &buf.data()[..head_len],
            &mut head_copies,
            &mut names.0,
        ) else {
            refuse(&mut stream, Violation::Malformed, info, activity, &mut out).await;
            return Next::Close;
        };
        let client = Client {
            http11: head.minor() == 1,
            keep_alive: head.keep_alive(),
            head_request: head.is_head_method(),
            trailers: head.wants_trailers(),
        };
        let kind = head.body();
        buf.consume(head_len);
        if let Some(v) = chunks_violation(kind, buf.data(), conn.max_head) {
            // A broken chunked body already read is refused before the
            // request goes anywhere, as the framing scanner refuses it.
            refuse(&mut stream, v, info, activity, &mut out).await;
            return Next::Close;
        }

        // The body reads the client's half of the socket while the
        // response may already be written on the other.
        let mut held = if kind == crate::http1::BodyKind::None {
            // Nothing pipelined behind the head: the buffer goes back to
            // the pool for the exchange (a burst of clients waiting on
            // their backends holds no read buffers).
            buf.release();
            Held::Whole(stream)
        } else {
            let (r, w) = tokio::io::split(stream);
            let giveback: Giveback<S> = Arc::new(Mutex::new(None));
            let side = ReadSide {
                io: r,
                buf: std::mem::take(&mut buf),
            };
            let body = EngineBody::new(
                side,
                kind,
                conn.max_head,
                giveback.clone(),
                activity.clone(),
            );
            Held::Split(w, giveback, Some(ClientBody::Stream(BoxBody::new(body))))
        };
        let (sock, body) = match &mut held {
            Held::Whole(s) => (Sock::Whole(s), ClientBody::Empty),
            Held::Split(w, _, body) => (Sock::Write(w), body.take().unwrap_or(ClientBody::Empty)),
        };
        // Kept here, in the serving future, for the exchange to work on
        // in place (see `request::handle_h1`).
        let mut req = Some((req.into_parts().0, body));
        // The head buffers are taken from the thread's pool where a head
        // is written and go back after it is sent or after the exchange:
        // a connection between requests holds none.
        //
        // Boxed per request (one allocation): inline, its ~4.9 KiB
        // sized every connection's serving future for all the time the
        // connection waits between requests, and a burst of 10,000
        // clients held 6 KiB each until they parked
        // (`tests/request_path_allocations.rs` measures what a waiting
        // connection holds).
        //
        // Allocated first and the exchange written into it: built on the
        // stack and moved, all 4.9 KiB were copied, where its starting
        // state is a few hundred bytes.
        let slot = Box::new_uninit();
        let served = Box::into_pin(Box::write(
            slot,
            exchange(
                sock,
                &mut req,
                client,
                conn,
                gw,
                (&mut out, &mut up),
                (watch.as_mut(), respond.as_mut()),
                drain.as_mut(),
                &mut draining,
            ),
        ))
        .await;
        // What the exchange left of the request ends here (a body it did
        // not take holds the client's read half until then).
        drop(req);
        buffer::recycle(&mut out);
        buffer::recycle(&mut up);
        let back = match held {
            Held::Whole(s) => Some(s),
            Held::Split(w, giveback, _) => {
                let back = giveback.lock().unwrap_or_else(|p| p.into_inner()).take();
                match back {
                    Some(side) => {
                        buf = side.buf;
                        Some(side.io.unsplit(w))
                    }
                    None => {
                        // The body was not read to its end: nothing more
                        // can be read as a request on this connection.
                        let mut w = w;
                        let _ =
                            tokio::time::timeout(std::time::Duration::from_secs(1), w.shutdown())
                                .await;
                        None
                    }
                }
            }
        };
        let Some(s) = back else {
            return Next::Close;
        };
        stream = s;
        if !served || draining {
            if !stream.ends_on_drop() {
                let wait = std::time::Duration::from_secs(1);
                let _ = tokio::time::timeout(wait, stream.shutdown()).await;
            }
            return Next::Close;
        }
    }
}

/// Reads what is there now, without waiting: `None` if nothing is.
async fn read_now<S: AsyncRead + Unpin>(
    stream: &mut S,
    room: &mut [u8],
) -> Option<io::Result<usize>> {
    std::future::poll_fn(|cx| {
        let mut rb = tokio::io::ReadBuf::new(room);
        match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
            Poll::Ready(r) => Poll::Ready(Some(r.map(|()| rb.filled().len()))),
            Poll::Pending => Poll::Ready(None),
        }
    })
    .await
}

/// What the head wait woke for.
enum Wake {
    Read(io::Result<usize>),
    Drain,
    Expired(Expiry),
}

/// The client connection during an exchange: whole, or split while the
/// request body reads its half (the body handed to the request once).
enum Held<S> {
    Whole(S),
    Split(tokio::io::WriteHalf<S>, Giveback<S>, Option<ClientBody>),
}

/// The client's write side for one exchange.
enum Sock<'a, S> {
    Whole(&'a mut S),
    Write(&'a mut tokio::io::WriteHalf<S>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Sock<'_, S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Sock::Whole(s) => Pin::new(&mut **s).poll_write(cx, b),
            Sock::Write(w) => Pin::new(&mut **w).poll_write(cx, b),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Sock::Whole(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
            Sock::Write(w) => Pin::new(&mut **w).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Sock::Whole(s) => s.is_write_vectored(),
            Sock::Write(w) => w.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Sock::Whole(s) => Pin::new(&mut **s).poll_flush(cx),
            Sock::Write(w) => Pin::new(&mut **w).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Sock::Whole(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Sock::Write(w) => Pin::new(&mut **w).poll_shutdown(cx),
        }
    }
}

/// Runs one request through the pipeline and writes its response; returns
/// whether the connection may carry another request. The watchdog's
/// deadlines (body and send timeouts, abuse) end it at once; shutdown lets
/// it finish and closes after.
#[allow(clippy::too_many_arguments)]
async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send>(
    mut sock: Sock<'_, S>,
    req: &mut Option<(http::request::Parts, ClientBody)>,
    client: Client,
    conn: &Conn,
    gw: &Arc<Serving>,
    (out, up): (&mut Vec<u8>, &mut Vec<u8>),
    (mut watch, respond): (Pin<&mut tokio::time::Sleep>, Pin<&mut tokio::time::Sleep>),
    mut drain: Pin<&mut impl Future<Output = ()>>,
    draining: &mut bool,
) -> bool {
    let (info, activity) = (&conn.info, &conn.activity);
    activity.request_started(false);
    let mut ended = Ended {
        activity,
        cancelled: false,
    };
    // Pinned where it is made (pinning it after was one more copy of it).
    let mut work = pin!(async {
        // A new process serves this listener now (binary upgrade), or
        // shutdown: this response is the connection's last.
        let last = gw.connections.is_retiring() || gw.connections.is_draining();
        let client = Client {
            keep_alive: client.keep_alive && !last,
            ..client
        };
        let mut noted = engine_write::Noted::new(&mut sock, activity);
        let fast = FastClient {
            to: &mut noted,
            minor: u8::from(client.http11),
            keep_alive: client.keep_alive,
            out: &mut *out,
            up,
            timer: respond,
        };
        let handled = request::handle_h1(gw.shared.clone(), info.clone(), req, Some(fast)).await;
        let resp = match handled {
            Ok(Handled::Response(resp)) => resp,
            Ok(Handled::Written { keep_alive }) => return keep_alive,
            // A rule aborted it: the connection closes without an answer.
            Err(_) => return false,
        };
        match engine_write::write_response(&mut sock, resp, client, out, activity).await {
            Ok(keep_alive) => keep_alive,
            Err(e) => {
                tracing::debug!("client connection ended: {e}");
                false
            }
        }
    });
    let kept = loop {
        // The exchange first (see the head wait's select).
        tokio::select! {
            biased;
            k = work.as_mut() => break k,
            _ = drain.as_mut(), if !*draining => *draining = true,
            why = activity.expired_on(false, watch.as_mut()) => {
                tracing::debug!("closing client connection: {why:?}");
                match why {
                    Expiry::Body => info.stats.count_timeout(ClientTimeout::Body),
                    Expiry::Send => info.stats.count_timeout(ClientTimeout::Send),
                    _ => {}
                }
                ended.cancelled = true;
                break false;
            }
        }
    };
    drop(ended);
    kept
}

/// Ends the request in the watchdog's count however its exchange ends.
struct Ended<'a> {
    activity: &'a ConnActivity,
    /// Cut off before its answer was written.
    cancelled: bool,
}

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        if self.cancelled {
            self.activity.request_cancelled();
        }
        self.activity.request_ended();
    }
}

/// Answers a request the engine refuses (400 or 431) and closes, as
/// `service.rs` answers the framing scanner's findings. Boxed: a rare path
/// whose response future must not size every connection's task.
fn refuse<'a, S: AsyncWrite + Unpin + Send>(
    stream: &'a mut S,
    v: Violation,
    info: &'a crate::request::ConnInfo,
    activity: &'a ConnActivity,
    out: &'a mut Vec<u8>,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(refuse_now(stream, v, info, activity, out))
}

async fn refuse_now<S: AsyncWrite + Unpin + Send>(
    stream: &mut S,
    v: Violation,
    info: &crate::request::ConnInfo,
    activity: &ConnActivity,
    out: &mut Vec<u8>,
) {
    tracing::debug!(peer = %info.peer, "refused request: {v}");
    let status = v.status();
    info.stats.codes.inc(status.as_u16());
    let body = if status == http::StatusCode::BAD_REQUEST {
        "400 Bad Request\n"
    } else {
        "431 Request Header Fields Too Large\n"
    };
    let mut resp = local_response(status, body);
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    activity.not_http1_head();
    let client = Client {
        http11: true,
        keep_alive: false,
        head_request: false,
        trailers: false,
    };
    let write = engine_write::write_response(stream, resp, client, out, activity);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), write).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.shutdown()).await;
}

/// Is a partial head already not HTTP/1 (httparse refuses its start)?
fn is_garbage(bytes: &[u8]) -> bool {
    let mut req = httparse::Request::new(&mut []);
    matches!(
        req.parse(bytes),
        Err(e) if e != httparse::Error::TooManyHeaders
    )
}

/// The first finding in the chunked body bytes already read, if any.
fn chunks_violation(
    kind: crate::http1::BodyKind,
    mut bytes: &[u8],
    max: usize,
) -> Option<Violation> {
    if kind != crate::http1::BodyKind::Chunked {
        return None;
    }
    let mut probe = crate::http1::ChunkedDecoder::new(max);
    loop {
        match probe.decode(bytes) {
            Err(v) => return Some(v),
            Ok((_, Some(crate::http1::Piece::End))) => return None,
            Ok((0, None)) => return None,
            Ok((used, _)) => bytes = &bytes[used..],
        }
    }
}

/// Requests the engine hands to hyper with the rest of the connection.
fn for_hyper(head: &RequestHead<'_>) -> bool {
    head.method() == b"CONNECT" || head.has_upgrade() || head.expects_continue()
}

/// The pipeline's request head, as hyper's server builds it; None: not
/// valid as `http` types (answered 400, as hyper does).
fn to_request(
    head: &RequestHead<'_>,
    bytes: &[u8],
    heads: &mut bytes::BytesMut,
    names: &mut Vec<HeaderName>,
) -> Option<Request<()>> {
    let method = Method::from_bytes(head.method()).ok()?;
    // One copy of the head's bytes; the target and every value are views
    // of it. `heads` reclaims its allocation once the previous request's
    // views are gone, so a keep-alive request allocates nothing here.
    heads.extend_from_slice(bytes);
    let shared = heads.split().freeze();
    let view = |r: std::ops::Range<usize>| shared.get(r.clone()).map(|_| shared.slice(r));
    let uri = Uri::from_maybe_shared(view(head.target_range())?).ok()?;
    // Room for what forwarding adds (X-Forwarded-*, rules' headers): a map
    // that grows rehashes, ~900 instructions.
    let mut headers = buffer::header_map(head.fields().count() + 8);
    for (i, (raw, value)) in head.field_ranges().enumerate() {
        let name = match names.get(i) {
            Some(n) if is_name(raw, n.as_str().as_bytes()) => n.clone(),
            _ => {
                let n = HeaderName::from_bytes(raw).ok()?;
                if let Some(slot) = names.get_mut(i) {
                    *slot = n.clone();
                } else if i == names.len() && i < NAMES_KEPT {
                    names.push(n.clone());
                }
                n
            }
        };
        let value = HeaderValue::from_maybe_shared(view(value)?).ok()?;
        headers.append(name, value);
    }
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = if head.minor() == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *req.headers_mut() = headers;
    Some(req)
}

/// Is the field name `raw` the lowercase `name` but for case? Eight bytes
/// at a time (a client's names are in canonical case, `User-Agent`: a
/// byte-by-byte case-blind compare cost ~20 instructions a byte), the
/// last word overlapping the one before it.
fn is_name(raw: &[u8], name: &[u8]) -> bool {
    let len = raw.len();
    if len != name.len() {
        return false;
    }
    if len < 8 {
        return raw
            .iter()
            .zip(name)
            .all(|(&r, &n)| r.to_ascii_lowercase() == n);
    }
    let mut at = 0;
    while at + 8 <= len {
        if lower_word(&raw[at..at + 8]) != word(&name[at..at + 8]) {
            return false;
        }
        at += 8;
    }
    at == len || lower_word(&raw[len - 8..]) == word(&name[len - 8..])
}

/// Eight bytes as a word (fewer: zero).
fn word(b: &[u8]) -> u64 {
    <[u8; 8]>::try_from(b).map_or(0, u64::from_le_bytes)
}

/// [`word`] with `A`-`Z` made lowercase (and nothing else changed).
fn lower_word(b: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = word(b);
    let low7 = x & !HIGH;
    // High bit of each byte: at least `A`, then above `Z` (7 bits each:
    // no carry crosses into the next byte).
    let ge_a = low7.wrapping_add(ONES * (0x80 - b'A' as u64));
    let gt_z = low7.wrapping_add(ONES * (0x80 - b'Z' as u64 - 1));
    let upper = ge_a & !gt_z & !x & HIGH;
    x | (upper >> 2)
}

#[cfg(test)]
mod tests {
    use super::is_name;

    #[test]
    fn names_compare_as_a_case_blind_compare_does() {
        let name = b"x-forwarded-proto-and-more";
        for len in [1, 7, 8, 9, 16, 17, name.len()] {
            let name = &name[..len];
            assert!(is_name(name, name));
            assert!(is_name(&name.to_ascii_uppercase(), name));
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut raw = name.to_vec();
                    raw[at] = b;
                    assert_eq!(
                        is_name(&raw, name),
                        raw.eq_ignore_ascii_case(name),
                        "{:?}",
                        String::from_utf8_lossy(&raw)
                    );
                }
            }
        }
        assert!(!is_name(b"host", b"hos"));
    }
}
