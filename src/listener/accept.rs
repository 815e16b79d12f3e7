//! Taking connections off a listening socket without registering them
//! with this thread's reactor: each is registered only by the serving
//! thread that serves it (`workers.rs`). tokio's `TcpListener::accept`
//! registers every connection with the accepting thread's reactor, and a
//! connection placed on another thread then left it and joined the other
//! one's: two `epoll_ctl` calls more for each of those connections.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::task::{ready, Poll};
use tokio::io::Interest;

/// A listening socket, accepted from by mio (unregistered, non-blocking
/// sockets, one `accept4` each), woken by tokio's reactor.
pub(super) struct Acceptor {
    listener: mio::net::TcpListener,
    /// The same socket, registered for readability. tokio offers an owned
    /// descriptor's readiness without `unsafe` only through its socket
    /// types; a listening socket held as a `TcpStream` is only ever asked
    /// `readable` here (never read from or written to).
    ready: tokio::net::TcpStream,
}

impl Acceptor {
    pub(super) fn new(listener: tokio::net::TcpListener) -> io::Result<Acceptor> {
        // Non-blocking, and out of this reactor (registered again below).
        let listener = listener.into_std()?;
        let watched = OwnedFd::from(listener.try_clone()?);
        Ok(Acceptor {
            listener: mio::net::TcpListener::from_std(listener),
            ready: tokio::net::TcpStream::from_std(std::net::TcpStream::from(watched))?,
        })
    }

    /// Another descriptor of the listening socket.
    pub(super) fn dup(&self) -> io::Result<OwnedFd> {
        use std::os::fd::AsFd;
        self.ready.as_fd().try_clone_to_owned()
    }

    /// The next connection: non-blocking, registered with no reactor.
    pub(super) async fn accept(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        // Polled, not `readable().await`: the poll keeps one waker in the
        // registration, where the async wait joins a locked waiter list
        // (~300 instructions more per connection in callgrind).
        std::future::poll_fn(|cx| loop {
            if let Err(e) = ready!(self.ready.poll_read_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            match self.ready.try_io(Interest::READABLE, || self.listener.accept()) {
                Ok((stream, peer)) => return Poll::Ready(Ok((stream.into(), peer))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        })
        .await
    }
}
