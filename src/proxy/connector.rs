//! How farmgate reaches backends: TCP with `TCP_NODELAY`, bounded by the
//! current `proxy.connect_timeout` (read per connect, so a reload changes it
//! without rebuilding the pool).

use super::body::BoxError;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower::Service;

/// Connecting took longer than `connect_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out")]
pub struct ConnectTimeout;

#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    timeout_ms: Arc<AtomicU64>,
}

impl Connector {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        Connector {
            http,
            timeout_ms: Arc::new(AtomicU64::new(connect_timeout.as_millis() as u64)),
        }
    }

    pub fn set_timeout(&self, t: Duration) {
        self.timeout_ms
            .store(t.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Service<http::Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let fut = self.http.call(uri);
        let timeout = Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed));
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimeout) as BoxError),
            }
        })
    }
}
