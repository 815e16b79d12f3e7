//! The encoding body: a response body compressed as it streams. Each data
//! frame from the backend goes through the encoder at once; when the
//! backend's body pauses (its next frame is not ready), what was written
//! is flushed so a streaming response is never held back; the end of the
//! body finishes the stream, then trailers pass through.

use super::encoder::Encoder;
use super::negotiate::Algorithm;
use super::stats::CompressStats;
use crate::proxy::body::{BoxError, ProxyBody};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub struct CompressBody {
    inner: ProxyBody,
    enc: Option<Encoder>,
    /// Data read before the response head went out (to find the size).
    prefix: Option<Bytes>,
    trailers: Option<HeaderMap>,
    inner_done: bool,
    /// Input written since the last flush.
    unflushed: bool,
    algorithm: Algorithm,
    stats: Arc<CompressStats>,
    bytes_in: u64,
    bytes_out: u64,
}

impl CompressBody {
    pub fn new(
        inner: ProxyBody,
        enc: Encoder,
        prefix: Option<Bytes>,
        algorithm: Algorithm,
        stats: Arc<CompressStats>,
    ) -> CompressBody {
        let inner_done = inner.is_end_stream();
        CompressBody {
            inner,
            enc: Some(enc),
            prefix,
            trailers: None,
            inner_done,
            unflushed: false,
            algorithm,
            stats,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<Bytes, BoxError> {
        let Some(enc) = self.enc.as_mut() else {
            return Ok(Bytes::new());
        };
        self.bytes_in += data.len() as u64;
        self.unflushed = true;
        enc.write(data)?;
        Ok(enc.take())
    }

    fn finish(&mut self) -> Result<Bytes, BoxError> {
        let Some(mut enc) = self.enc.take() else {
            return Ok(Bytes::new());
        };
        let head = enc.take();
        let tail = enc.finish()?;
        let out = if head.is_empty() {
            tail
        } else {
            let mut all = Vec::with_capacity(head.len() + tail.len());
            all.extend_from_slice(&head);
            all.extend_from_slice(&tail);
            Bytes::from(all)
        };
        self.bytes_out += out.len() as u64;
        self.stats
            .count(self.algorithm, true, self.bytes_in, self.bytes_out);
        Ok(out)
    }

    fn out(&mut self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.bytes_out += data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Body for CompressBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(p) = this.prefix.take() {
                let out = this.write(&p)?;
                if !out.is_empty() {
                    return this.out(out);
                }
                continue;
            }
            if this.inner_done {
                if this.enc.is_some() {
                    let out = this.finish()?;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = this.write(&data)?;
                        if this.inner.is_end_stream() {
                            // Finished below, in the same frame when the
                            // encoder gave nothing yet.
                            this.inner_done = true;
                            if out.is_empty() {
                                continue;
                            }
                        }
                        if !out.is_empty() {
                            return this.out(out);
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body; they follow the encoded end.
                        this.trailers = frame.into_trailers().ok();
                        this.inner_done = true;
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.inner_done = true,
                Poll::Pending => {
                    // The backend paused: send what we have.
                    if this.unflushed {
                        this.unflushed = false;
                        if let Some(enc) = this.enc.as_mut() {
                            enc.flush()?;
                            let out = enc.take();
                            if !out.is_empty() {
                                return this.out(out);
                            }
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done && self.enc.is_none() && self.trailers.is_none() && self.prefix.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// 64 frames of 80 KiB (5 MiB) of text, counting frames handed out.
    fn source(pulled: Arc<AtomicUsize>) -> ProxyBody {
        let frames = (0..64).map(move |i| {
            pulled.fetch_add(1, Ordering::SeqCst);
            let mut v = Vec::with_capacity(80 << 10);
            while v.len() < 80 << 10 {
                v.extend_from_slice(format!("frame {i} line {} of text\n", v.len()).as_bytes());
            }
            v.truncate(80 << 10);
            Ok::<_, BoxError>(Frame::data(Bytes::from(v)))
        });
        ProxyBody::boxed(StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync())
    }

    #[tokio::test]
    async fn output_flows_while_the_input_streams() {
        for a in Algorithm::ALL {
            let pulled = Arc::new(AtomicUsize::new(0));
            let enc = Encoder::new(a, 5, None).expect("encoder");
            let stats = Arc::new(CompressStats::default());
            let mut body = CompressBody::new(source(pulled.clone()), enc, None, a, stats.clone());
            let mut first_at = None;
            let mut out = 0usize;
            while let Some(frame) = body.frame().await {
                let data = frame.expect("frame").into_data().expect("data");
                out += data.len();
                first_at.get_or_insert(pulled.load(Ordering::SeqCst));
            }
            // Memory is the codec's window, not the body: output leaves
            // long before the 64th input frame is read.
            let first_at = first_at.expect("some output");
            assert!(
                first_at <= 32,
                "{a:?}: first output after {first_at} of 64 frames"
            );
            let c = stats.get(a);
            assert_eq!(c.bytes_in, 64 * (80 << 10));
            assert_eq!(c.bytes_out, out as u64);
            assert_eq!((c.responses, c.encodes), (1, 1));
        }
    }
}
