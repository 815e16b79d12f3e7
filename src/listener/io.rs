//! The client connection's byte stream as hyper sees it, read through the
//! framing scanner: every byte hyper reads is also shown to
//! [`Framing`](super::framing::Framing), which reports request-head
//! progress (for the header timeout) and smuggling findings to the
//! connection's [`ConnActivity`]. Writes pass straight through. Both tell
//! the activity when they start waiting on the client and when they move
//! again (the body and send timeouts).
//!
//! For parking (`park.rs`) the wrapper can hand its stream back: while the
//! connection's `parking` flag is set, hyper's closing shutdown is not passed
//! on, and dropping the wrapper (with hyper's connection and its buffers)
//! returns the stream and the scanner through the shared slot.

use super::activity::ConnActivity;
use super::framing::Framing;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A parked connection's stream and framing state, between two hyper
/// connections.
pub type Handback<S> = Arc<Mutex<Option<(S, Option<Box<Framing>>)>>>;

pub struct ScannedIo<S> {
    /// Always `Some` until dropped (taken by `Drop` for the hand-back).
    inner: Option<S>,
    framing: Option<Box<Framing>>,
    activity: Arc<ConnActivity>,
    handback: Option<Handback<S>>,
}

impl<S> ScannedIo<S> {
    /// Wraps a stream (again, after parking) with its scanner state.
    pub fn resume(
        inner: S,
        framing: Option<Box<Framing>>,
        activity: Arc<ConnActivity>,
        handback: Option<Handback<S>>,
    ) -> Self {
        ScannedIo {
            inner: Some(inner),
            framing,
            activity,
            handback,
        }
    }

    fn io(&mut self) -> io::Result<&mut S> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl<S> Drop for ScannedIo<S> {
    fn drop(&mut self) {
        if !self.activity.is_parking() {
            return;
        }
        if let (Some(slot), Some(io)) = (self.handback.take(), self.inner.take()) {
            let mut parked = slot.lock().unwrap_or_else(|p| p.into_inner());
            *parked = Some((io, self.framing.take()));
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ScannedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(this.io()?).poll_read(cx, buf);
        if polled.is_pending() {
            if this.framing.as_ref().is_some_and(|f| f.in_body()) {
                this.activity.read_waiting();
            }
            return polled;
        }
        this.activity.read_progress();
        if let (Poll::Ready(Ok(())), Some(framing)) = (&polled, this.framing.as_mut()) {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let fed = framing.feed(new);
                this.activity.head_progress(fed.in_head, framing.heads());
                if let Some((index, v)) = framing.finding() {
                    this.activity.set_finding(index, v);
                }
                if framing.is_off() || this.activity.is_done() {
                    // HTTP/2, a finding, or an upgraded tunnel: nothing
                    // more to read as HTTP/1 heads. Free the state.
                    this.framing = None;
                    this.activity.never_park();
                    // Not an HTTP/1 head: a late one is never answered 408.
                    this.activity.not_http1_head();
                }
            }
        }
        polled
    }
}

impl<S> ScannedIo<S> {
    /// Notes whether a write waits on the client or moved.
    #[inline]
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Pending => self.activity.write_waiting(),
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.write_progress(),
            Poll::Ready(_) => {}
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ScannedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(this.io()?).poll_write(cx, buf);
        this.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(this.io()?).poll_write_vectored(cx, bufs);
        this.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(this.io()?).poll_flush(cx);
        // TLS flushes its buffered records here.
        match &polled {
            Poll::Pending => this.activity.write_waiting(),
            Poll::Ready(_) => this.activity.write_progress(),
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.is_parking() && this.handback.is_some() {
            // hyper closes its idle connection; the socket stays open.
            return Poll::Ready(Ok(()));
        }
        Pin::new(this.io()?).poll_shutdown(cx)
    }
}
