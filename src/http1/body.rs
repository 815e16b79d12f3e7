//! Body framing: how long a body is, a streaming chunked decoder with the
//! strict chunk rules of the framing scanner (trailers kept, passed on as
//! raw lines), and the chunked encoder. Zero-copy: the decoder reports
//! where data lies in the bytes it is given, it never copies them.

use super::error::Violation;
use std::ops::Range;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (a request without framing fields, a HEAD, 1xx, 204 or 304
    /// response).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (a response without framing fields).
    UntilClose,
}

/// Counts a Content-Length body down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthReader {
    left: u64,
}

impl LengthReader {
    pub fn new(len: u64) -> Self {
        LengthReader { left: len }
    }

    /// Of `available` bytes, how many belong to the body.
    pub fn take(&mut self, available: usize) -> usize {
        let n = u64::try_from(available).unwrap_or(u64::MAX).min(self.left);
        self.left -= n;
        n as usize
    }

    pub fn is_done(&self) -> bool {
        self.left == 0
    }

    pub fn remaining(&self) -> u64 {
        self.left
    }
}

/// One step of a chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Body data at this range of the input.
    Data(Range<usize>),
    /// Raw trailer-section bytes (field lines with their CRLFs, without
    /// the final empty line) at this range of the input.
    Trailer(Range<usize>),
    /// The body ended (the final empty line was read).
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size {
        digits: u8,
        size: u64,
    },
    /// Whitespace after the size: only a `;` extension may follow.
    SizeWs(u64),
    Ext(u64),
    /// A CR was read; LF must follow (`then` says what comes after).
    Lf(After),
    Data(u64),
    DataCr,
    TrailerStart,
    TrailerLine,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Size(u64),
    Data,
    TrailerLine,
    End,
}

/// Decodes a chunked body as it arrives.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of trailer section read, bounded by `max_trailers`.
    trailers: usize,
    max_trailers: usize,
}

impl ChunkedDecoder {
    /// `max_trailers`: the largest trailer section accepted (the head
    /// limit is a good value); beyond it, `HeadTooLarge`.
    pub fn new(max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0, size: 0 },
            trailers: 0,
            max_trailers,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads from `input`: returns how many bytes were consumed and at
    /// most one piece found in them. Call again with the rest; `None`
    /// with everything consumed means more input is needed.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Piece>), Violation> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok((i, Some(Piece::End))),
                State::Data(n) => {
                    let take = (input.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    return Ok((i + take, Some(Piece::Data(i..i + take))));
                }
                State::TrailerLine | State::TrailerStart | State::Lf(After::TrailerLine) => {
                    let (j, piece) = self.trailer(input, i)?;
                    if piece.is_some() {
                        return Ok((j, piece));
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            let b = input[i];
            i += 1;
            self.step(b)?;
            if self.state == State::Done {
                return Ok((i, Some(Piece::End)));
            }
        }
        Ok((i, None))
    }

    /// Reads trailer lines from `input[from..]` up to the final empty
    /// line, reporting them raw.
    fn trailer(&mut self, input: &[u8], from: usize) -> Result<(usize, Option<Piece>), Violation> {
        let mut i = from;
        while i < input.len() {
            match self.state {
                State::TrailerLine => {
                    // The line's bytes need no look up to its CR or LF.
                    let n = memchr::memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                    self.count_trailer(n)?;
                    i += n;
                    if i == input.len() {
                        break;
                    }
                }
                State::TrailerStart if input[i] == b'\r' => {
                    // The final empty line: the trailer bytes so far go
                    // first; its CRLF is not trailer data.
                    if i > from {
                        return Ok((i, Some(Piece::Trailer(from..i))));
                    }
                    self.step(b'\r')?;
                    return Ok((i + 1, None));
                }
                State::TrailerStart | State::Lf(After::TrailerLine) => {}
                _ => break,
            }
            self.count_trailer(1)?;
            self.step(input[i])?;
            i += 1;
        }
        Ok((i, (i > from).then_some(Piece::Trailer(from..i))))
    }

    fn count_trailer(&mut self, n: usize) -> Result<(), Violation> {
        self.trailers += n;
        if self.trailers > self.max_trailers {
            return Err(Violation::HeadTooLarge);
        }
        Ok(())
    }

    fn step(&mut self, b: u8) -> Result<(), Violation> {
        self.state = match self.state {
            State::Size { digits, size } => match b {
                b'\r' if digits > 0 => State::Lf(After::Size(size)),
                b'\n' => return Err(Violation::BareLf),
                b';' if digits > 0 => State::Ext(size),
                b' ' | b'\t' if digits > 0 => State::SizeWs(size),
                _ => match char::from(b).to_digit(16) {
                    // 16 hex digits fill a u64: more is an overflow.
                    Some(d) if digits < 16 => State::Size {
                        digits: digits + 1,
                        size: size << 4 | u64::from(d),
                    },
                    _ => return Err(Violation::BadChunk),
                },
            },
            State::SizeWs(size) => match b {
                b' ' | b'\t' => State::SizeWs(size),
                b';' => State::Ext(size),
                _ => return Err(Violation::BadChunk),
            },
            State::Ext(size) => match b {
                b'\r' => State::Lf(After::Size(size)),
                b'\n' => return Err(Violation::BareLf),
                _ => State::Ext(size),
            },
            State::Lf(then) => {
                if b != b'\n' {
                    return Err(if then == After::Data {
                        Violation::BadChunk
                    } else {
                        Violation::BareCr
                    });
                }
                match then {
                    After::Size(0) => State::TrailerStart,
                    After::Size(n) => State::Data(n),
                    After::Data => State::Size { digits: 0, size: 0 },
                    After::TrailerLine => State::TrailerStart,
                    After::End => State::Done,
                }
            }
            State::DataCr => match b {
                b'\r' => State::Lf(After::Data),
                _ => return Err(Violation::BadChunk),
            },
            State::TrailerStart => match b {
                b'\r' => State::Lf(After::End),
                b'\n' => return Err(Violation::BareLf),
                b' ' | b'\t' => return Err(Violation::ObsFold),
                _ => State::TrailerLine,
            },
            State::TrailerLine => match b {
                b'\r' => State::Lf(After::TrailerLine),
                b'\n' => return Err(Violation::BareLf),
                _ => State::TrailerLine,
            },
            State::Data(n) => State::Data(n),
            State::Done => State::Done,
        };
        Ok(())
    }
}

/// The line before a chunk of `len` bytes (`len` > 0): hex size and CRLF,
/// written into `out` (no allocation: 16 hex digits at most).
pub fn chunk_header(len: u64, out: &mut [u8; 18]) -> &[u8] {
    let digits = (64 - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (k, slot) in out[..digits].iter_mut().enumerate() {
        let nibble = (len >> (4 * (digits - 1 - k))) & 0xf;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    &out[..digits + 2]
}

/// After a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk, before any trailer lines.
pub const LAST_CHUNK: &[u8] = b"0\r\n";
/// The empty line that ends a chunked body (after the trailers).
pub const BODY_END: &[u8] = b"\r\n";

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
