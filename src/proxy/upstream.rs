//! Sends one request to one backend server over HTTP/1.1: an idle pooled
//! connection when there is one (`pool.rs`), else a new one through the
//! `Connector` (TCP, then TLS for `https://` servers).
//!
//! A pooled connection the server closed while it sat idle hands the request
//! back unsent (hyper's `try_send_request`); it then goes out on the next
//! idle connection or a new one, so a keep-alive race never reaches the
//! retry logic or the server's failure count.

use super::body::{BoxError, UpstreamBody};
use super::connector::Connector;
use super::pool::{BackendPool, Checkin};
use crate::farm::Server;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use std::sync::Arc;
use tower::Service;

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made (refused, unreachable, timeout, TLS).
    #[error("connect: {0}")]
    Connect(BoxError),
    /// The connection failed while sending or before the response head.
    #[error(transparent)]
    Http(hyper::Error),
}

impl SendError {
    /// The error and its causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let first: &(dyn std::error::Error + 'static) = match self {
            SendError::Connect(e) => e.as_ref(),
            SendError::Http(e) => e,
        };
        std::iter::successors(Some(first), |e| e.source())
    }
}

/// The backend side of the proxy: connects and keeps connections.
#[derive(Clone)]
pub struct Upstream {
    connector: Connector,
    http1: http1::Builder,
}

impl Upstream {
    pub fn new(connector: Connector) -> Self {
        Upstream {
            connector,
            http1: http1::Builder::new(),
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) to `server`, over an idle
    /// connection of `pool` (the server's) when there is one. With the
    /// response comes the connection's way back to the pool.
    pub async fn send(
        &self,
        server: &Server,
        pool: &Arc<BackendPool>,
        mut req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Checkin), SendError> {
        loop {
            let (mut sender, reused) = match pool.checkout() {
                Some(s) => (s, true),
                // Boxed: connecting is rare next to reuse, and its future
                // would otherwise enlarge every request's.
                None => (Box::pin(self.connect(server, pool)).await?, false),
            };
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, Checkin::new(pool.clone(), sender))),
                Err(mut e) => match e.take_message() {
                    // Closed before our request went out: another one.
                    Some(back) if reused => req = back,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    async fn connect(
        &self,
        server: &Server,
        pool: &BackendPool,
    ) -> Result<http1::SendRequest<UpstreamBody>, SendError> {
        let uri = http::Uri::builder()
            .scheme(server.scheme.clone())
            .authority(server.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| SendError::Connect(e.into()))?;
        let io = self
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(SendError::Connect)?;
        let (sender, conn) = self.http1.handshake(io).await.map_err(SendError::Http)?;
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
