//! The accept path of a TLS listener: the handshake (bounded by
//! `handshake_timeout`, abandoned at shutdown) runs in the connection's own
//! task, never in the accept loop, then the connection is served like a
//! plain one. HTTP/2 or HTTP/1.1 follows from ALPN: the auto server reads
//! the h2 preface the client sends after negotiating `h2`.

use super::Serving;
use super::{run_connection, Conn};
use crate::tls::TlsListener;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::sync::Arc;
use tokio::net::TcpStream;

pub(super) fn serve(
    tcp: TcpStream,
    tls: Arc<TlsListener>,
    conn: Conn,
    gw: Arc<Serving>,
    builder: auto::Builder<TokioExecutor>,
) {
    let guard = gw.connections.enter();
    let mut shutdown = gw.connections.subscribe();
    tokio::spawn(async move {
        // The handshake counts towards the first request's header
        // timeout, and an evicted connection stops handshaking.
        let stream = tokio::select! {
            s = tls.accept(tcp) => s,
            _ = shutdown.wait_for(|s| *s) => None,
            _ = conn.activity.expired(true) => None,
        };
        if let Some(stream) = stream {
            run_connection(stream, conn, gw, builder, guard).await;
        }
    });
}
