//! Sends one request to one backend server over HTTP/1.1: an idle pooled
//! connection when there is one (`pool.rs`), else a new one through the
//! `Connector` (TCP, then TLS for `https://` servers).
//!
//! A pooled connection the server closed while it sat idle hands the request
//! back unsent (hyper's `try_send_request`); it then goes out on the next
//! idle connection or a new one, so a keep-alive race never reaches the
//! retry logic or the server's failure count. A request that never went out
//! at all (no connection could be made, or a new one closed before a byte
//! was written) comes back to the caller whole in [`SendError::Unsent`], to
//! be sent to another server whatever its method.

use super::body::{BoxError, UpstreamBody};
use super::connector::Connector;
use super::pool::{keep_for, BackendPool, Checkin};
use super::send_proxy::Header;
use crate::farm::Server;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use std::sync::Arc;
use std::time::Duration;

/// Why a request got no response head.
#[derive(thiserror::Error)]
pub enum SendError {
    /// Not a byte of the request reached the server: no connection could
    /// be made (refused, unreachable, connect timeout, TLS handshake), or
    /// a new connection closed before the request was written. The request
    /// comes back unsent.
    #[error("not sent: {cause}")]
    Unsent {
        cause: BoxError,
        /// The connection could not be made at all (the server is down or
        /// unreachable), as opposed to one that closed at once.
        connect: bool,
        req: Box<Request<UpstreamBody>>,
    },
    /// The connection failed while sending or before the response head:
    /// the server may have processed the request.
    #[error(transparent)]
    Http(hyper::Error),
    /// An HTTP/2 server refused the stream (REFUSED_STREAM, or a GOAWAY
    /// that left it out): it never processed the request, which may go to
    /// another server whatever its method (RFC 9113 §8.7). Its body, if
    /// any, comes back through the body's return slot.
    #[error("refused by the server: {0}")]
    Refused(hyper::Error),
}

impl std::fmt::Debug for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unsent { cause, connect, .. } => f
                .debug_struct("Unsent")
                .field("cause", cause)
                .field("connect", connect)
                .finish_non_exhaustive(),
            SendError::Http(e) => f.debug_tuple("Http").field(e).finish(),
            SendError::Refused(e) => f.debug_tuple("Refused").field(e).finish(),
        }
    }
}

impl SendError {
    /// The error and its causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let first: &(dyn std::error::Error + 'static) = match self {
            SendError::Unsent { cause, .. } => cause.as_ref(),
            SendError::Http(e) | SendError::Refused(e) => e,
        };
        std::iter::successors(Some(first), |e| e.source())
    }
}

/// The backend side of the proxy: connects and keeps connections.
/// HTTP/2 requests go out in `upstream_h2.rs`.
#[derive(Clone)]
pub struct Upstream {
    pub(super) connector: Connector,
    pub(super) http1: http1::Builder,
    pub(super) http2: hyper::client::conn::http2::Builder<hyper_util::rt::TokioExecutor>,
}

impl Upstream {
    pub fn new(connector: Connector) -> Self {
        Upstream {
            connector,
            http1: http1::Builder::new(),
            http2: super::upstream_h2::builder(),
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) to `server`, over an idle
    /// connection of `pool` (the server's) when there is one. With the
    /// response comes the connection's way back to the pool, where it may
    /// then sit idle for up to `idle` (the farm's `backend_idle_timeout`,
    /// shortened by what the backend announced: `pool::keep_for`).
    /// With `preface` (the farm sends the PROXY protocol), a new connection
    /// starts with that header and only connections that sent the same one
    /// are reused.
    pub async fn send(
        &self,
        server: &Server,
        pool: &Arc<BackendPool>,
        idle: Duration,
        mut req: Request<UpstreamBody>,
        preface: Option<Header>,
    ) -> Result<(Response<Incoming>, Checkin), SendError> {
        let tag = preface.as_ref().map_or(0, Header::tag);
        loop {
            let (mut sender, reused) = match pool.checkout(tag) {
                Some(s) => (s, true),
                // Boxed: connecting is rare next to reuse, and its future
                // would otherwise enlarge every request's.
                None => match Box::pin(self.connect(server, pool, preface)).await {
                    Ok(s) => (s, false),
                    Err(cause) => {
                        let req = Box::new(req);
                        return Err(SendError::Unsent {
                            cause,
                            connect: true,
                            req,
                        });
                    }
                },
            };
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let keep = keep_for(idle, resp.headers());
                    return Ok((resp, Checkin::new(pool.clone(), sender, keep, tag)));
                }
                Err(mut e) => match e.take_message() {
                    // Closed before our request went out: another one.
                    Some(back) if reused => req = back,
                    Some(back) => {
                        return Err(SendError::Unsent {
                            cause: e.into_error().into(),
                            connect: false,
                            req: Box::new(back),
                        })
                    }
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    /// A new connection to `server` for the engine's fast path (TCP, and
    /// TLS for `https://`), bounded by `connect_timeout`.
    pub async fn connect_raw(
        &self,
        server: &Server,
    ) -> Result<super::connector::BackendStream, BoxError> {
        Ok(self
            .connector
            .clone()
            .connect_server(server, super::protocol::Alpn::Http1, None)
            .await?
            .into_inner())
    }

    async fn connect(
        &self,
        server: &Server,
        pool: &BackendPool,
        preface: Option<Header>,
    ) -> Result<http1::SendRequest<UpstreamBody>, BoxError> {
        let io = self
            .connector
            .clone()
            .connect_server(server, super::protocol::Alpn::Http1, preface)
            .await?;
        let (sender, conn) = self.http1.handshake(io).await?;
        // Not the pool itself: idle connections must not keep it alive.
        let address = pool.address().clone();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(backend = &*address, "backend connection: {e}");
            }
        });
        Ok(sender)
    }
}
