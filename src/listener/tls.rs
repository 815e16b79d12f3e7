//! The accept path of a TLS listener: the handshake (bounded by
//! `handshake_timeout`, abandoned at shutdown) runs in the connection's own
//! task, never in the accept loop, then the connection is served like a
//! plain one. HTTP/2 or HTTP/1.1 follows from ALPN: the auto server reads
//! the h2 preface the client sends after negotiating `h2`.

use super::run_connection;
use crate::gateway::Gateway;
use crate::proxy::ConnInfo;
use crate::tls::TlsListener;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use tokio::net::TcpStream;

pub(super) fn serve(
    tcp: TcpStream,
    tls: Arc<TlsListener>,
    info: Arc<ConnInfo>,
    gw: Arc<Gateway>,
    builder: auto::Builder<TokioExecutor>,
) {
    let guard = gw.connections.enter();
    let mut shutdown = gw.connections.subscribe();
    tokio::spawn(async move {
        let stream = tokio::select! {
            s = tls.accept(tcp) => s,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        if let Some(stream) = stream {
            run_connection(TokioIo::new(stream), info, gw, builder, guard).await;
        }
    });
}
