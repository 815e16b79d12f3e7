//! The admin listener: its own port, never a traffic port. Prometheus
//! metrics, process health for a layer-4 balancer in front (`/healthz`), the
//! JSON status API, the status page, and the operator actions on servers.
//!
//! `router` maps requests to endpoints (one line each), `auth` guards every
//! state-changing request, `status` builds the JSON, `page` serves the HTML,
//! `actions` drains, disables, enables and verifies servers, `history`
//! serves the last minutes of every farm and server for the page's charts,
//! `cluster` the tier's view (`GET /api/cluster`) and its metrics.

pub mod actions;
pub mod auth;
pub mod cluster;
pub mod collect;
pub mod history;
pub mod page;
pub mod process;
pub mod response;
pub mod router;
pub mod status;

mod cache_purge;

use crate::gateway::Gateway;
use crate::listener::ListenerHandle;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Starts the admin accept loop.
pub fn spawn(listener: TcpListener, gw: Arc<Gateway>) -> std::io::Result<ListenerHandle> {
    let (stop, mut stopped) = watch::channel(false);
    let socket = Arc::new(listener);
    let listener = socket.clone();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(_) => continue,
                },
                _ = stopped.wait_for(|s| *s) => break,
            };
            let gw = gw.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, Infallible>(router::route(&gw, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    ListenerHandle::new("admin".into(), &socket, stop, task)
}
