//! A TLS connection whose ALPN chose `h2` is HTTP/2 and nothing else
//! (RFC 9113 §3.3): the client's connection preface is checked here before
//! hyper's HTTP/2 server gets the connection. A client that sends anything
//! else (an HTTP/1.1 request, garbage) gets what RFC 9113 §3.4 asks for, a
//! connection error of type PROTOCOL_ERROR: our (empty) SETTINGS, then
//! GOAWAY, then close. hyper's h2 would only drop the connection, and
//! hyper-util's auto server would even serve such a client as HTTP/1.1.
//!
//! The checked preface is replayed to hyper by [`Replayed`], the stream
//! type every TLS connection is served through (with nothing to replay when
//! ALPN chose HTTP/1.1).

use super::park::Parkable;
use crate::http1::ReadBuf as Pending;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame (the server preface), then GOAWAY with last
/// stream 0 and PROTOCOL_ERROR.
pub const REFUSAL: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, length 0, stream 0
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, length 8, stream 0
    0, 0, 0, 0, // last stream id
    0, 0, 0, 0x1, // PROTOCOL_ERROR
];

/// Reads the client's preface. `Ok(false)` at the first byte that differs
/// (an HTTP/1.1 request line differs within its first bytes, so a short
/// request is not waited on).
pub async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<bool> {
    let mut buf = [0u8; PREFACE.len()];
    let mut got = 0;
    while got < PREFACE.len() {
        let n = stream.read(&mut buf[got..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if buf[got..got + n] != PREFACE[got..got + n] {
            return Ok(false);
        }
        got += n;
    }
    Ok(true)
}

/// Sends SETTINGS and GOAWAY(PROTOCOL_ERROR) and closes; bounded, so a
/// client that reads nothing does not hold the connection.
pub async fn refuse<S: AsyncWrite + Unpin>(mut stream: S) {
    let write = async {
        stream.write_all(&REFUSAL).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// A stream with bytes already read from it put back in front, read first:
/// the checked HTTP/2 preface, or what the HTTP/1 engine read before it
/// handed the connection to hyper.
pub struct Replayed<S> {
    /// The bytes to hand out before `inner`'s.
    buf: Pending,
    inner: S,
}

impl<S> Replayed<S> {
    /// `preface`: whether the preface was read off `inner` and is replayed.
    pub fn new(inner: S, preface: bool) -> Self {
        let mut buf = Pending::new();
        if preface {
            buf.extend(PREFACE);
        }
        Replayed::with(inner, buf)
    }

    /// `inner`, with `buf`'s unconsumed bytes read first.
    pub fn with(inner: S, buf: Pending) -> Self {
        Replayed { buf, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buf.is_empty() {
            let data = this.buf.data();
            let n = data.len().min(out.remaining());
            out.put_slice(&data[..n]);
            this.buf.consume(n);
            if this.buf.is_empty() {
                this.buf.release();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Parkable + Sync> Parkable for Replayed<S> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        let ready = !self.buf.is_empty();
        let inner = self.inner.readable();
        async move {
            if ready {
                return Ok(());
            }
            inner.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_checks_and_replays_the_preface() {
        let (mut client, mut server) = tokio::io::duplex(256);
        client.write_all(PREFACE).await.expect("write");
        client.write_all(b"rest").await.expect("write");
        assert!(read(&mut server).await.expect("read"));
        let mut replayed = Replayed::new(server, true);
        let mut got = [0u8; 28];
        replayed.read_exact(&mut got).await.expect("replayed");
        assert_eq!(&got[..24], PREFACE);
        assert_eq!(&got[24..], b"rest");
    }

    #[tokio::test]
    async fn an_http1_request_is_not_a_preface() {
        let (mut client, mut server) = tokio::io::duplex(256);
        // Shorter than the preface: decided without waiting for more.
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        assert!(!read(&mut server).await.expect("read"));
    }
}
