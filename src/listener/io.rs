//! The client connection's byte stream as hyper sees it, read through the
//! framing scanner: every byte hyper reads is also shown to
//! [`Framing`](super::framing::Framing), which reports request-head
//! progress (for the header timeout) and smuggling findings to the
//! connection's [`ConnActivity`]. Writes pass straight through.

use super::activity::ConnActivity;
use super::framing::Framing;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pin_project_lite::pin_project! {
    pub struct ScannedIo<S> {
        #[pin]
        inner: S,
        framing: Option<Box<Framing>>,
        activity: Arc<ConnActivity>,
    }
}

impl<S> ScannedIo<S> {
    pub fn new(inner: S, activity: Arc<ConnActivity>, max_head: usize) -> Self {
        ScannedIo {
            inner,
            framing: Some(Box::new(Framing::new(max_head))),
            activity,
        }
    }
}

impl<S: AsyncRead> AsyncRead for ScannedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(framing)) = (&polled, this.framing.as_mut()) {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let fed = framing.feed(new);
                this.activity.head_progress(fed.in_head);
                if let Some((index, v)) = framing.finding() {
                    this.activity.set_finding(index, v);
                }
                if framing.is_off() || this.activity.is_done() {
                    // HTTP/2, a finding, or an upgraded tunnel: nothing
                    // more to read as HTTP/1 heads. Free the state.
                    *this.framing = None;
                }
            }
        }
        polled
    }
}

impl<S: AsyncWrite> AsyncWrite for ScannedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
