//! The accept path of a TLS listener: the handshake (bounded by
//! `handshake_timeout`, abandoned at shutdown) runs in the connection's own
//! task, never in the accept loop, then the connection is served like a
//! plain one. HTTP/2 or HTTP/1.1 follows from ALPN: a connection whose ALPN
//! chose `h2` must start with the HTTP/2 preface (`preface.rs`) and is
//! served as HTTP/2 only.

use super::preface::{self, Replayed};
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
    builder: Arc<auto::Builder<TokioExecutor>>,
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
        let Some(mut stream) = stream else { return };
        let mut conn = conn;
        if let Some(cert) = tls.client_cert(&stream) {
            conn.info = Arc::new(conn.info.with_client_cert(cert));
        }
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            if conn.engine {
                return super::engine::run(stream, conn, gw, builder, guard).await;
            }
            let stream = Replayed::new(stream, false);
            return run_connection(stream, conn, gw, builder, guard).await;
        }
        let valid = tokio::select! {
            r = preface::read(&mut stream) => r.ok(),
            _ = shutdown.wait_for(|s| *s) => None,
            _ = conn.activity.expired(true) => None,
        };
        match valid {
            Some(true) => {
                let stream = Replayed::new(stream, true);
                let h2 = Arc::new((*builder).clone().http2_only());
                run_connection(stream, conn, gw, h2, guard).await;
            }
            Some(false) => {
                tracing::debug!(peer = %conn.info.peer, "invalid HTTP/2 preface: GOAWAY");
                preface::refuse(stream).await;
            }
            None => {}
        }
    });
}
