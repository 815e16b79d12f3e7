//! A request body as the HTTP/1 engine reads it: straight off the client
//! connection's read half, out of the connection's own read buffer, by
//! Content-Length or chunked (`http1::body`, the strict chunk rules), with
//! trailers passed on. The body borrows the read side of the connection for
//! as long as it streams; read to its end, it gives the read side (with any
//! pipelined bytes after the body still in the buffer) back to the
//! connection loop through a shared slot. Dropped before its end, it keeps
//! it: the loop then closes the connection, as hyper does with a body it
//! was not given the chance to read.

use super::activity::ConnActivity;
use crate::http1::body::LengthReader;
use crate::http1::{BodyKind, ChunkedDecoder, Piece, ReadBuf, Violation};
use crate::proxy::body::BoxError;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadHalf};

/// How much a body read asks for at a time.
const READ_SIZE: usize = 16 << 10;

/// The read side of a client connection: its half of the socket and the
/// connection's read buffer.
pub(super) struct ReadSide<S> {
    pub io: ReadHalf<S>,
    pub buf: ReadBuf,
}

/// Where a body read to its end puts the read side back.
pub(super) type Giveback<S> = Arc<Mutex<Option<ReadSide<S>>>>;

/// The client closed inside its request body.
#[derive(Debug, thiserror::Error)]
#[error("the client closed inside its request body")]
pub struct Truncated;

enum Framing {
    Length(LengthReader),
    Chunked {
        decoder: ChunkedDecoder,
        /// Raw trailer lines, until the body's end.
        trailers: Vec<u8>,
    },
}

pub(super) struct EngineBody<S> {
    side: Option<ReadSide<S>>,
    framing: Framing,
    giveback: Giveback<S>,
    activity: Arc<ConnActivity>,
}

impl<S> EngineBody<S> {
    /// A body of `kind` (Content-Length or chunked) whose first bytes may
    /// already be in `side.buf`; `max_trailers` bounds its trailer section.
    pub fn new(
        side: ReadSide<S>,
        kind: BodyKind,
        max_trailers: usize,
        giveback: Giveback<S>,
        activity: Arc<ConnActivity>,
    ) -> Self {
        let framing = match kind {
            BodyKind::Chunked => Framing::Chunked {
                decoder: ChunkedDecoder::new(max_trailers),
                trailers: Vec::new(),
            },
            BodyKind::Length(n) => Framing::Length(LengthReader::new(n)),
            BodyKind::None | BodyKind::UntilClose => Framing::Length(LengthReader::new(0)),
        };
        EngineBody {
            side: Some(side),
            framing,
            giveback,
            activity,
        }
    }

    /// The body is complete: the read side goes back to the connection.
    fn finish(&mut self) {
        if let Some(side) = self.side.take() {
            *self.giveback.lock().unwrap_or_else(|p| p.into_inner()) = Some(side);
        }
    }
}

impl<S: AsyncRead> EngineBody<S> {
    /// Reads more into the buffer: `Ready(Ok(()))` when bytes came.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let Some(side) = self.side.as_mut() else {
            return Poll::Ready(Err(Box::new(Truncated)));
        };
        let room = side.buf.spare(READ_SIZE, READ_SIZE * 2);
        let mut rb = tokio::io::ReadBuf::new(room);
        match Pin::new(&mut side.io).poll_read(cx, &mut rb) {
            Poll::Pending => {
                self.activity.read_waiting();
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(Box::new(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.activity.read_progress();
                if n == 0 {
                    return Poll::Ready(Err(Box::new(Truncated)));
                }
                side.buf.filled(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<S: AsyncRead> Body for EngineBody<S> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(side) = this.side.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.framing {
                Framing::Length(left) => {
                    let take = left.take(side.buf.data().len());
                    let done = left.is_done();
                    let data = (take > 0).then(|| Bytes::copy_from_slice(&side.buf.data()[..take]));
                    side.buf.consume(take);
                    if done {
                        this.finish();
                    }
                    match data {
                        Some(d) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                        None if done => return Poll::Ready(None),
                        None => {}
                    }
                }
                Framing::Chunked { decoder, trailers } => {
                    let (used, piece) = match decoder.decode(side.buf.data()) {
                        Ok(d) => d,
                        Err(v) => return Poll::Ready(Some(Err(Box::new(v)))),
                    };
                    let frame = match piece {
                        Some(Piece::Data(r)) => {
                            Some(Frame::data(Bytes::copy_from_slice(&side.buf.data()[r])))
                        }
                        Some(Piece::Trailer(r)) => {
                            trailers.extend_from_slice(&side.buf.data()[r]);
                            None
                        }
                        Some(Piece::End) => {
                            side.buf.consume(used);
                            let trailers = std::mem::take(trailers);
                            this.finish();
                            if trailers.is_empty() {
                                return Poll::Ready(None);
                            }
                            return Poll::Ready(Some(
                                parse_trailers(&trailers).map(Frame::trailers),
                            ));
                        }
                        None => None,
                    };
                    side.buf.consume(used);
                    if let Some(frame) = frame {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    if used > 0 {
                        continue;
                    }
                }
            }
            if let Err(e) = std::task::ready!(this.poll_fill(cx)) {
                return Poll::Ready(Some(Err(e)));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.side.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.framing {
            Framing::Length(l) => SizeHint::with_exact(l.remaining()),
            Framing::Chunked { .. } => SizeHint::default(),
        }
    }
}

/// The trailer section's field lines as a map (the decoder checked their
/// syntax and size).
fn parse_trailers(raw: &[u8]) -> Result<HeaderMap, BoxError> {
    let mut map = HeaderMap::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Violation::BadChunk)?;
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| Violation::BadChunk)?;
        let value = line[colon + 1..].trim_ascii();
        let value = HeaderValue::from_bytes(value).map_err(|_| Violation::BadChunk)?;
        map.append(name, value);
    }
    Ok(map)
}
