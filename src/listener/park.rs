//! Parking idle HTTP/1 keep-alive connections: after `PARK_AFTER` without a
//! request, hyper's connection (its task state and its read and write
//! buffers, ~20 KiB) is closed without closing the socket, and the
//! connection waits for its next bytes holding only the socket, the framing
//! scanner and its watchdog state; the next request gets a fresh hyper
//! connection on the same socket. nginx and HAProxy release their buffers
//! between requests the same way; hyper keeps them for the connection's
//! life, which made 10,000 idle clients cost ~240 MiB.
//!
//! Only plain-TCP HTTP/1 connections park: HTTP/2 multiplexes (a client
//! rarely holds more than one), and TLS keeps its own buffers in the
//! session. A connection parks only when nothing can be lost: no request in
//! flight, no head half read, every head read from the socket handed to
//! hyper (`ConnActivity::can_park`).

use std::future::Future;
use std::io;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long an HTTP/1 connection waits idle before it parks. Long enough
/// that a busy keep-alive connection never pays for a new hyper connection;
/// short enough that a browser's idle connections shrink within a second.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// A client stream that may park: it can wait for readability without
/// reading.
pub trait Parkable {
    /// Resolves when the client has sent something (or closed).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Once a read found nothing, does [`readable`](Self::readable) say
    /// when the next bytes arrive? (A plain socket: yes. TLS may hold
    /// decrypted bytes or owe a write, so it keeps its read pending.)
    fn waits_unbuffered(&self) -> bool {
        false
    }

    /// Does dropping the stream end it cleanly for the client? (A plain
    /// socket: its close sends the FIN, so a shutdown first is only a
    /// syscall more. TLS must say close_notify first.)
    fn ends_on_drop(&self) -> bool {
        false
    }
}

impl Parkable for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }

    fn waits_unbuffered(&self) -> bool {
        true
    }

    fn ends_on_drop(&self) -> bool {
        true
    }
}

impl Parkable for tokio_rustls::server::TlsStream<TcpStream> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.get_ref().0.readable()
    }
}
