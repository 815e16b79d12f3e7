//! Reading heads and moving bodies over a byte stream (a TCP or TLS
//! connection): the pieces a client connection's read loop and a backend
//! exchange are built from. Each read goes into the connection's reused
//! buffer; each body is copied with one move per byte (out of the read
//! buffer into the write buffer, re-framed) and one write per read.

use super::body::{chunk_header, LengthReader, BODY_END, CHUNK_END, LAST_CHUNK};
use super::{
    BodyKind, ChunkedDecoder, Parsed, Piece, ReadBuf, RequestParser, ResponseParser, Violation,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How much is read at a time.
const READ_SIZE: usize = 16 << 10;

/// Body bytes up to this many are copied behind the head and sent in one
/// plain write; more go out from where they were read, head and body in
/// one vectored write (a 16 KiB body copied once more per response showed
/// as the most expensive user-space function in the profile).
pub const COPY_MAX: usize = 2 << 10;

/// What went wrong moving a message.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The peer closed between messages (a normal end of keep-alive).
    #[error("closed")]
    Closed,
    /// The peer closed inside a message.
    #[error("closed inside a message")]
    Truncated,
    #[error("reading: {0}")]
    Read(std::io::Error),
    #[error("writing: {0}")]
    Write(std::io::Error),
    #[error("{0}")]
    Violation(#[from] Violation),
}

/// Reads one more batch into `buf`; `Ok(false)` at end of stream.
async fn fill<R: AsyncRead + Unpin>(
    from: &mut R,
    buf: &mut ReadBuf,
    cap: usize,
) -> Result<bool, IoError> {
    let room = buf.spare(READ_SIZE, cap);
    if room.is_empty() {
        // The buffer is full of one unfinished head: the parser's limit
        // is below the buffer's, so this is not reached with sane limits.
        return Err(IoError::Violation(Violation::HeadTooLarge));
    }
    let n = from.read(room).await.map_err(IoError::Read)?;
    buf.filled(n);
    Ok(n > 0)
}

/// Reads until `parser` has a request head at the front of `buf`.
/// `max_head` bounds the buffer too (a head and what was pipelined after).
pub async fn read_request_head<R: AsyncRead + Unpin>(
    from: &mut R,
    buf: &mut ReadBuf,
    parser: &mut RequestParser,
    max_head: usize,
) -> Result<Parsed, IoError> {
    loop {
        match parser.parse(buf.data())? {
            Parsed::Partial => {}
            done => return Ok(done),
        }
        if !fill(from, buf, max_head + READ_SIZE).await? {
            return Err(if buf.is_empty() {
                IoError::Closed
            } else {
                IoError::Truncated
            });
        }
    }
}

/// Reads until `parser` has a response head at the front of `buf`;
/// returns its length.
pub async fn read_response_head<R: AsyncRead + Unpin>(
    from: &mut R,
    buf: &mut ReadBuf,
    parser: &mut ResponseParser,
    head_request: bool,
    max_head: usize,
) -> Result<usize, IoError> {
    loop {
        if let Some(n) = parser.parse(buf.data(), head_request)? {
            return Ok(n);
        }
        if !fill(from, buf, max_head + READ_SIZE).await? {
            return Err(if buf.is_empty() {
                IoError::Closed
            } else {
                IoError::Truncated
            });
        }
    }
}

/// How a body is written on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encode {
    /// As its bytes come (a Content-Length body, or until close).
    Raw,
    /// Chunked: each batch of data one chunk, trailers passed on.
    Chunked,
}

/// Moves a body of `kind` from `from` (its first bytes already in `buf`)
/// to `to`, encoded as `encode`; `out` is the connection's write buffer,
/// and what it holds already (the message's head) goes out in the same
/// write as the first body bytes. Returns the body bytes moved. What
/// follows the body stays in `buf`.
pub async fn forward_body<R, W>(
    from: &mut R,
    buf: &mut ReadBuf,
    kind: BodyKind,
    to: &mut W,
    encode: Encode,
    out: &mut Vec<u8>,
    max_trailers: usize,
) -> Result<u64, IoError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut moved = 0u64;
    let mut length = match kind {
        BodyKind::None => return Ok(0),
        BodyKind::Length(n) => Some(LengthReader::new(n)),
        BodyKind::Chunked | BodyKind::UntilClose => None,
    };
    let mut chunked = (kind == BodyKind::Chunked).then(|| ChunkedDecoder::new(max_trailers));
    let mut trailers_sent = false;
    let mut hdr = [0u8; 18];
    loop {
        let mut done = false;
        if let Some(d) = chunked.as_mut() {
            // Every piece in the buffer, then one write.
            loop {
                let (used, piece) = d.decode(buf.data())?;
                let more = piece.is_some();
                match piece {
                    Some(Piece::Data(r)) => {
                        let data = &buf.data()[r];
                        moved += data.len() as u64;
                        push_data(out, encode, data, &mut hdr);
                    }
                    // Trailers go on only in a chunked body (a raw one
                    // has nowhere to carry them).
                    Some(Piece::Trailer(r)) if encode == Encode::Chunked => {
                        if !trailers_sent {
                            out.extend_from_slice(LAST_CHUNK);
                            trailers_sent = true;
                        }
                        out.extend_from_slice(&buf.data()[r]);
                    }
                    Some(Piece::Trailer(_)) => {}
                    Some(Piece::End) => done = true,
                    None => {}
                }
                buf.consume(used);
                if !more || done {
                    break;
                }
            }
        } else {
            let data = buf.data();
            let take = match length.as_mut() {
                Some(l) => l.take(data.len()),
                None => data.len(),
            };
            moved += take as u64;
            if encode == Encode::Raw && take > COPY_MAX {
                write_both(to, out, &data[..take])
                    .await
                    .map_err(IoError::Write)?;
                out.clear();
            } else {
                push_data(out, encode, &data[..take], &mut hdr);
            }
            buf.consume(take);
            done = length.as_ref().is_some_and(LengthReader::is_done);
        }
        if done && encode == Encode::Chunked {
            if !trailers_sent {
                out.extend_from_slice(LAST_CHUNK);
            }
            out.extend_from_slice(BODY_END);
        }
        if !out.is_empty() {
            to.write_all(out).await.map_err(IoError::Write)?;
            out.clear();
        }
        if done {
            return Ok(moved);
        }
        if !fill(from, buf, READ_SIZE * 2).await? {
            if kind == BodyKind::UntilClose {
                if encode == Encode::Chunked {
                    to.write_all(b"0\r\n\r\n").await.map_err(IoError::Write)?;
                }
                return Ok(moved);
            }
            return Err(IoError::Truncated);
        }
    }
}

/// Writes `head` and then `data`, both in one vectored write when the
/// stream takes them whole; `data` is not copied.
pub async fn write_both<W: AsyncWrite + Unpin>(
    to: &mut W,
    mut head: &[u8],
    mut data: &[u8],
) -> std::io::Result<()> {
    while !head.is_empty() {
        let bufs = [std::io::IoSlice::new(head), std::io::IoSlice::new(data)];
        let n = to.write_vectored(&bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        if n < head.len() {
            head = &head[n..];
        } else {
            data = &data[(n - head.len()).min(data.len())..];
            head = &[];
        }
    }
    to.write_all(data).await
}

fn push_data(out: &mut Vec<u8>, encode: Encode, data: &[u8], hdr: &mut [u8; 18]) {
    if data.is_empty() {
        return;
    }
    if encode == Encode::Chunked {
        out.extend_from_slice(chunk_header(data.len() as u64, hdr));
        out.extend_from_slice(data);
        out.extend_from_slice(CHUNK_END);
    } else {
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Takes at most 7 bytes a write, vectored or not.
    #[derive(Default)]
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = b.len().min(7);
            self.0.extend_from_slice(&b[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut left = 7;
            for b in bufs {
                let n = b.len().min(left);
                self.0.extend_from_slice(&b[..n]);
                left -= n;
            }
            Poll::Ready(Ok(7 - left))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn write_both_survives_short_writes_at_every_boundary() {
        let data: Vec<u8> = (0..40u8).collect();
        for head_len in [0, 1, 6, 7, 8, 13, 14, 20] {
            let head = vec![b'h'; head_len];
            let mut w = Trickle::default();
            write_both(&mut w, &head, &data).await.unwrap();
            assert_eq!(w.0, [&head[..], &data[..]].concat(), "head of {head_len}");
        }
    }
}
