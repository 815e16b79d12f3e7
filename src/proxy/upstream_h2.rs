//! Sends one request to one backend server over HTTP/2: a stream on one of
//! the server's multiplexed connections (`h2pool.rs`), or a new connection
//! when all are full. h2c (prior knowledge) on `http://` servers, ALPN `h2`
//! on `https://` ones; an `auto` farm's server that answers ALPN with
//! HTTP/1.1 is remembered and gets the HTTP/1.1 path from then on.
//!
//! A stream the server refused without processing it (REFUSED_STREAM, or
//! beyond the last stream id of its GOAWAY, or opened after a GOAWAY) comes
//! back as [`SendError::Refused`]; the connection then takes no new
//! streams.

use super::body::{BoxError, UpstreamBody};
use super::h2pool::{Stream, DEFAULT_MAX_STREAMS, PING_EVERY, PING_TIMEOUT};
use super::pool::{BackendPool, Checkin};
use super::protocol::Alpn;
use super::upstream::{SendError, Upstream};
use crate::farm::Server;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// Connections found closed before one request went out, at most; then
/// the request is returned unsent.
const MAX_CLOSED: usize = 3;

/// Receive windows of backend HTTP/2 streams and connections.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// The HTTP/2 client settings of every backend connection.
pub fn builder() -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .keep_alive_interval(PING_EVERY)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true)
        // Large windows: one large message (gRPC allows MiBs) is not paced
        // by 64 KiB windows, and h2's allowance for small DATA frames
        // buffered at once (half the connection window) covers hundreds of
        // concurrent unary answers (each a small frame before trailers);
        // at the 64 KiB default it ran out at ~190 and h2 closed the
        // connection with every call on it.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_reset_streams(1024);
    b
}

/// How the HTTP/2 path ended when no response came.
enum Connected {
    Stream(Stream),
    /// An `auto` farm's server chose HTTP/1.1: use the HTTP/1.1 path.
    Http1,
}

impl Upstream {
    /// Sends `req` (origin-form URI, `Host` set) to `server` over HTTP/2,
    /// offering `alpn` on a new TLS connection. `idle`: for an `auto`
    /// server that turns out to speak HTTP/1.1 (`Upstream::send`).
    pub async fn send_h2(
        &self,
        server: &Server,
        pool: &Arc<BackendPool>,
        alpn: Alpn,
        idle: Duration,
        mut req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Checkin), SendError> {
        if alpn == Alpn::Both && pool.h2.speaks_http1() {
            return self.send(server, pool, idle, req, None).await;
        }
        h2_form(&mut req, server);
        // Connections that closed before the request went out (it comes
        // back whole): tried again on another, a few times.
        let mut closed = 0;
        loop {
            let stream = match pool.h2.checkout() {
                Some(s) => s,
                None => match Box::pin(self.connect_h2(server, pool, alpn, idle)).await {
                    Ok(Connected::Stream(s)) => s,
                    Ok(Connected::Http1) => {
                        http1_form(&mut req);
                        return self.send(server, pool, idle, req, None).await;
                    }
                    Err(cause) => {
                        return Err(SendError::Unsent {
                            cause,
                            connect: true,
                            req: Box::new(req),
                        })
                    }
                },
            };
            match stream.sender().try_send_request(req).await {
                Ok(resp) => return Ok((resp, Checkin::stream(stream))),
                Err(mut e) => match e.take_message() {
                    Some(back) if closed < MAX_CLOSED => {
                        stream.conn().drain();
                        closed += 1;
                        req = back;
                    }
                    Some(back) => {
                        return Err(SendError::Unsent {
                            cause: e.into_error().into(),
                            connect: false,
                            req: Box::new(back),
                        })
                    }
                    None => {
                        let e = e.into_error();
                        return Err(match refusal(&e) {
                            Some(Refusal::GoAway) => {
                                stream.conn().drain();
                                SendError::Refused(e)
                            }
                            Some(Refusal::Stream) => SendError::Refused(e),
                            None => SendError::Http(e),
                        });
                    }
                },
            }
        }
    }

    /// A stream on a new connection to `server` (or on one another request
    /// opened meanwhile).
    async fn connect_h2(
        &self,
        server: &Server,
        pool: &Arc<BackendPool>,
        alpn: Alpn,
        idle: Duration,
    ) -> Result<Connected, BoxError> {
        let _one_at_a_time = pool.h2.connecting.lock().await;
        if let Some(s) = pool.h2.checkout() {
            return Ok(Connected::Stream(s));
        }
        let io = self
            .connector
            .clone()
            .connect_server(server, alpn, None)
            .await?;
        if alpn == Alpn::Both && !io.inner().alpn_h2() {
            // ALPN chose HTTP/1.1: this connection serves that path.
            pool.h2.learn_http1();
            let (sender, conn) = self.http1.handshake(io).await?;
            let address = pool.address().clone();
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(backend = &*address, "backend connection: {e}");
                }
            });
            pool.checkin(sender, idle, 0);
            return Ok(Connected::Http1);
        }
        // Until this connection's SETTINGS arrive, the limit the server
        // announced on the others (h2 holds streams beyond it).
        let assumed = pool.h2.known_limit().unwrap_or(DEFAULT_MAX_STREAMS);
        let mut builder = self.http2.clone();
        builder.initial_max_send_streams(assumed);
        let (sender, conn) = builder.handshake(io).await?;
        let c = pool.h2.add(sender, conn, assumed, Arc::downgrade(pool));
        tracing::debug!(backend = &**pool.address(), "new HTTP/2 backend connection");
        match pool.h2.checkout() {
            Some(s) => Ok(Connected::Stream(s)),
            None => {
                c.drain();
                Err("the new HTTP/2 connection closed at once".into())
            }
        }
    }
}

/// Why a server refused a request unprocessed.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// GOAWAY: the connection takes no new streams.
    GoAway,
    /// REFUSED_STREAM on this stream only.
    Stream,
}

fn refusal(e: &hyper::Error) -> Option<Refusal> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            if h2.is_go_away() && h2.is_remote() {
                return Some(Refusal::GoAway);
            }
            if h2.is_reset() && h2.is_remote() && h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return Some(Refusal::Stream);
            }
            return None;
        }
        source = s.source();
    }
    None
}

/// The request as HTTP/2 sends it: absolute URI (its authority becomes
/// `:authority`, from the `Host` the request carries) and no `Host`.
fn h2_form(req: &mut Request<UpstreamBody>, server: &Server) {
    let authority = req
        .headers_mut()
        .remove(http::header::HOST)
        .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
        .unwrap_or_else(|| server.authority.clone());
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(server.scheme.clone());
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = http::Version::HTTP_2;
    // We accept trailers (gRPC servers insist on hearing it), and relay
    // them to clients that accept them too.
    req.headers_mut()
        .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
}

/// Back to what the HTTP/1.1 path sends: origin form and `Host`.
fn http1_form(req: &mut Request<UpstreamBody>) {
    if let Some(a) = req.uri().authority() {
        if let Ok(h) = http::HeaderValue::from_str(a.as_str()) {
            req.headers_mut().insert(http::header::HOST, h);
        }
    }
    if let Some(pq) = req.uri().path_and_query().cloned() {
        *req.uri_mut() = http::Uri::from(pq);
    }
    *req.version_mut() = http::Version::HTTP_11;
}
