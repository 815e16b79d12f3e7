//! Body types of the forwarding path, streamed frame by frame, never
//! buffered whole.
//!
//! [`ProxyBody`] is what clients receive: a backend's streaming body, a small
//! local body, or a boxed body from another module. It carries the request's
//! [`Exchange`] and finishes it when the last frame is sent or the client
//! goes away, so "in flight" lasts until the response really ends.
//! [`UpstreamBody`] is what backends receive: the client's body
//! ([`ClientBody`]: hyper's, or the HTTP/1 engine's) with the
//! `max_request_body` limit applied, and a way to get the body back for a
//! retry when the backend was never reached.

use super::exchange::Exchange;
use super::pool::Checkin;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The response body sent to clients.
pub struct ProxyBody {
    inner: Inner,
    exchange: Option<Exchange>,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    /// A backend's body and, until it has been read to the end, the way
    /// its connection goes back to the pool.
    Upstream(Incoming, Option<Checkin>),
    Boxed(BoxBody),
}

impl ProxyBody {
    pub fn empty() -> Self {
        ProxyBody {
            inner: Inner::Empty,
            exchange: None,
        }
    }
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody {
            inner: Inner::Full(Some(bytes)),
            exchange: None,
        }
    }
    /// A backend's body; `checkin` returns its connection to the pool once
    /// the body has been read to the end (at once when there is none).
    pub fn upstream(body: Incoming, checkin: Checkin) -> Self {
        let checkin = if body.is_end_stream() {
            checkin.give_back();
            None
        } else {
            Some(checkin)
        };
        ProxyBody {
            inner: Inner::Upstream(body, checkin),
            exchange: None,
        }
    }
    pub fn boxed(body: BoxBody) -> Self {
        ProxyBody {
            inner: Inner::Boxed(body),
            exchange: None,
        }
    }
    /// Attaches the exchange that is finished when this body ends.
    pub fn set_exchange(&mut self, exchange: Exchange) {
        self.exchange = Some(exchange);
    }
    fn finish(&mut self, ok: bool) {
        if let Some(mut ex) = self.exchange.take() {
            if !ok {
                ex.mark_aborted();
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Upstream(b, checkin) => {
                let polled = Pin::new(&mut *b)
                    .poll_frame(cx)
                    .map(|o| o.map(|r| r.map_err(BoxError::from)));
                // The last frame: the connection can serve another request
                // (servers stop polling once `is_end_stream` says so).
                if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Ok(_))))
                    && b.is_end_stream()
                {
                    if let Some(c) = checkin.take() {
                        c.give_back();
                    }
                }
                polled
            }
            Inner::Boxed(b) => Pin::new(b).poll_frame(cx),
        };
        match ready!(polled) {
            Some(Ok(frame)) => {
                if let Some(ex) = this.exchange.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        ex.add_response_bytes(data.len() as u64);
                    } else if let (Inner::Upstream(..), Some(t)) =
                        (&this.inner, frame.trailers_ref())
                    {
                        // A gRPC call's status comes in the trailers.
                        if let Some(code) = super::grpc::status(t) {
                            ex.set_grpc_status(code, true);
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                if let (Inner::Upstream(..), Some(ex)) = (&this.inner, this.exchange.as_mut()) {
                    // The backend's body broke: its connection closed early
                    // or sent bad framing. hyper ends the client's response
                    // (HTTP/1.1: connection closed; HTTP/2: stream reset).
                    ex.backend_failed("body");
                }
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.finish(true);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(b) => b.is_none(),
            Inner::Upstream(b, _) => b.is_end_stream(),
            Inner::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Upstream(b, _) => b.size_hint(),
            Inner::Boxed(b) => b.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away mid-response.
        if !self.is_end_stream() {
            self.finish(false);
        }
    }
}

/// The request body grew past `max_request_body` while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds max_request_body")]
pub struct BodyTooLarge;

/// Reading the client's request body failed (the client went away or sent
/// a broken body): the client's fault, never the backend's.
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body failed: {0}")]
pub struct ClientBodyError(#[source] pub BoxError);

/// A client's request body: hyper's (HTTP/2, and HTTP/1 served by hyper),
/// or one read by the listener's HTTP/1 engine straight off the client
/// connection.
pub enum ClientBody {
    /// No body (the engine's requests without one: nothing allocated).
    Empty,
    Hyper(Incoming),
    Stream(BoxBody),
}

impl From<Incoming> for ClientBody {
    fn from(b: Incoming) -> Self {
        ClientBody::Hyper(b)
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            ClientBody::Stream(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::Hyper(b) => b.is_end_stream(),
            ClientBody::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Hyper(b) => b.size_hint(),
            ClientBody::Stream(b) => b.size_hint(),
        }
    }
}

/// Where an unsent body goes back for a retry.
pub type ReturnSlot = Arc<Mutex<Option<Unsent>>>;

/// A request body that can still be sent: frames already sent once (to a
/// server that refused the request unprocessed) and the client's rest.
pub struct Unsent {
    pub sent: VecDeque<Bytes>,
    pub rest: Option<ClientBody>,
}

impl Unsent {
    /// The client's body, not a byte of it sent yet.
    pub fn new(body: ClientBody) -> Self {
        Unsent {
            sent: VecDeque::new(),
            rest: Some(body),
        }
    }
}

/// At most this much of a request body is kept to be sent again when an
/// HTTP/2 server refuses the request unprocessed (REFUSED_STREAM, GOAWAY).
/// The frames are shared (`Bytes`), not copied.
pub const REPLAY_LIMIT: u64 = 256 << 10;

/// The body sent to a backend.
pub struct UpstreamBody {
    /// Frames sent before to a server that refused them, sent first.
    prefix: VecDeque<Bytes>,
    inner: Option<ClientBody>,
    polled: bool,
    limit: u64,
    seen: u64,
    giveback: Option<ReturnSlot>,
    /// HTTP/2: the frames sent so far, while they fit [`REPLAY_LIMIT`]
    /// (`None` past it, or a trailer frame: no replay then).
    replay: Option<Vec<Bytes>>,
    sent: Option<Arc<crate::farm::ServerState>>,
}

impl UpstreamBody {
    /// An empty body (nothing to stream).
    pub fn empty() -> Self {
        UpstreamBody {
            prefix: VecDeque::new(),
            inner: None,
            polled: false,
            limit: u64::MAX,
            seen: 0,
            giveback: None,
            replay: None,
            sent: None,
        }
    }

    /// Streams `body`, failing with [`BodyTooLarge`] past `limit` bytes. If
    /// `giveback` is set and the body is dropped before its first poll (the
    /// backend was never reached), the body is put there for a retry.
    pub fn new(body: Unsent, limit: u64, giveback: Option<ReturnSlot>) -> Self {
        UpstreamBody {
            prefix: body.sent,
            inner: body.rest,
            polled: false,
            limit,
            seen: 0,
            giveback,
            replay: None,
            sent: None,
        }
    }

    /// Keeps what is sent (up to [`REPLAY_LIMIT`]) so that a refused
    /// HTTP/2 request can go to another server: dropped after polling, the
    /// body goes to the return slot whole (sent frames and the rest).
    pub fn replayable(mut self) -> Self {
        self.replay = Some(Vec::new());
        self
    }

    /// The client's body of a request that was never sent (not polled).
    pub fn into_unsent(mut self) -> Option<Unsent> {
        self.take_unsent()
    }

    fn take_unsent(&mut self) -> Option<Unsent> {
        let mut sent = std::mem::take(&mut self.prefix);
        if self.polled {
            let replay = self.replay.take()?;
            for b in replay.into_iter().rev() {
                sent.push_front(b);
            }
        }
        let rest = self.inner.take();
        (rest.is_some() || !sent.is_empty()).then_some(Unsent { sent, rest })
    }

    /// Counts bytes sent into this server's state.
    pub fn count_into(&mut self, state: Arc<crate::farm::ServerState>) {
        self.sent = Some(state);
    }

    fn data_sent(&mut self, data: &Bytes) -> Option<BoxError> {
        self.seen += data.len() as u64;
        if self.seen > self.limit {
            return Some(Box::new(BodyTooLarge));
        }
        if let Some(s) = &self.sent {
            s.bytes_sent
                .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(r) = &mut self.replay {
            // The forwarder let go of the return slot once a response head
            // arrived: no retry can follow, so a long stream keeps nothing.
            let answered = self
                .giveback
                .as_ref()
                .is_none_or(|g| Arc::strong_count(g) == 1);
            if self.seen <= REPLAY_LIMIT && !answered {
                r.push(data.clone());
            } else {
                self.replay = None;
                self.giveback = None;
            }
        }
        None
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(data) = this.prefix.pop_front() {
            this.polled = true;
            if let Some(e) = this.data_sent(&data) {
                return Poll::Ready(Some(Err(e)));
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.polled = true;
        match ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(e) = this.data_sent(data) {
                        return Poll::Ready(Some(Err(e)));
                    }
                } else {
                    // Request trailers are not replayed.
                    this.replay = None;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(Box::new(ClientBodyError(e))))),
            None => {
                // Ended: a replay needs no rest.
                this.inner = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty() && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self
            .inner
            .as_ref()
            .map_or(SizeHint::with_exact(0), |b| b.size_hint());
        if self.prefix.is_empty() {
            return inner;
        }
        let before: u64 = self.prefix.iter().map(|b| b.len() as u64).sum();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + before);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + before);
        }
        hint
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.polled && self.replay.is_none() {
            return;
        }
        if let Some(slot) = self.giveback.take() {
            if let Some(unsent) = self.take_unsent() {
                let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
                *guard = Some(unsent);
            }
        }
    }
}
