//! One streaming encoder per response, over the codecs' own `Write`
//! encoders writing into a `Vec` we drain after every call.
//!
//! Why the codecs directly and not `async-compression`: our body wrapper
//! works on `http_body` frames, not byte streams. With the synchronous
//! encoders a frame is compressed where it arrives, a flush (when the
//! backend's body pauses) is one call, and the output is taken without
//! an `AsyncRead`/`AsyncWrite` adapter, its extra buffer and copies. Memory
//! per response is the codec's state and window (sized down to the body
//! when its length is known), never the body.

use super::negotiate::Algorithm;
use bytes::Bytes;
use std::io::{self, Write};

/// The output buffer brotli's writer compresses through.
const BROTLI_BUFFER: usize = 4096;
/// Brotli's window when the body length is unknown: 1 MiB (of at most 16).
const BROTLI_LGWIN_STREAM: u32 = 20;

pub enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// An encoder for `a` at `level`; `len` is the body length when known.
    pub fn new(a: Algorithm, level: i32, len: Option<u64>) -> io::Result<Encoder> {
        Ok(match a {
            Algorithm::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(zlib_rs_level(level)),
            )),
            Algorithm::Brotli => {
                // The smallest window (2^10..2^24, minus 16 bytes) that
                // holds the whole body: less memory for small bodies, the
                // same output.
                let lgwin = len.map_or(BROTLI_LGWIN_STREAM, |n| {
                    (64 - (n + 16).leading_zeros()).clamp(10, 22)
                });
                Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                    Vec::new(),
                    BROTLI_BUFFER,
                    level.clamp(0, 11) as u32,
                    lgwin,
                )))
            }
            Algorithm::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), level)?;
                if let Some(n) = len {
                    // Lets zstd size its window and tables to the body.
                    e.set_pledged_src_size(Some(n))?;
                }
                Encoder::Zstd(e)
            }
        })
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Brotli(e) => e.write_all(data),
            Encoder::Zstd(e) => e.write_all(data),
        }
    }

    /// Emits everything written so far as complete blocks a decoder can
    /// decode now (a sync flush), without ending the stream.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Brotli(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }

    /// The output produced since the last call.
    pub fn take(&mut self) -> Bytes {
        let out = match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        };
        Bytes::from(std::mem::take(out))
    }

    /// Ends the stream; returns the output not taken yet.
    pub fn finish(self) -> io::Result<Bytes> {
        let v = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Brotli(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish()?,
        };
        Ok(Bytes::from(v))
    }
}

/// The zlib-rs level for a configured gzip level, which means what it
/// means in zlib (and nginx). zlib-rs, like zlib-ng, runs level 1 as a
/// "quick" strategy that trades about a quarter of the output size for
/// speed (16 KiB of our docs: 9.5 KB against zlib's 7.6 KB); its level 2
/// is zlib's level 1 intent, fastest at zlib's ratio (7.2 KB, in about
/// half of zlib 1.2's level-1 CPU). Levels 2-9 match zlib's sizes.
fn zlib_rs_level(level: i32) -> u32 {
    level.clamp(2, 9) as u32
}

/// Compresses a whole body at once (a stored response's variant).
pub fn compress_all(a: Algorithm, level: i32, body: &[u8]) -> io::Result<Bytes> {
    let mut e = Encoder::new(a, level, Some(body.len() as u64))?;
    e.write(body)?;
    let head = e.take();
    let tail = e.finish()?;
    if head.is_empty() {
        return Ok(tail);
    }
    let mut all = Vec::with_capacity(head.len() + tail.len());
    all.extend_from_slice(&head);
    all.extend_from_slice(&tail);
    Ok(all.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    pub(crate) fn decode(a: Algorithm, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match a {
            Algorithm::Gzip => flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map(drop),
            Algorithm::Brotli => brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .map(drop),
            Algorithm::Zstd => zstd::stream::read::Decoder::new(data)
                .and_then(|mut d| d.read_to_end(&mut out))
                .map(drop),
        }
        .expect("decodes");
        out
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"<p>farmgate</p>\n"[i % 16] ^ (i / 997) as u8)
            .collect()
    }

    #[test]
    fn every_algorithm_round_trips_at_once_and_streamed() {
        for a in Algorithm::ALL {
            for n in [0, 1, 1023, 70_000] {
                let body = sample(n);
                let all = compress_all(a, 5, &body).expect("compresses");
                assert_eq!(decode(a, &all), body, "{a:?} {n}");

                let mut e = Encoder::new(a, 5, None).expect("encoder");
                let mut out = Vec::new();
                for chunk in body.chunks(4000) {
                    e.write(chunk).expect("write");
                    out.extend_from_slice(&e.take());
                }
                out.extend_from_slice(&e.finish().expect("finish"));
                assert_eq!(decode(a, &out), body, "{a:?} {n} streamed");
            }
        }
    }

    #[test]
    fn a_flush_makes_what_was_written_decodable() {
        for a in Algorithm::ALL {
            let mut e = Encoder::new(a, 5, None).expect("encoder");
            e.write(b"event one\n").expect("write");
            e.flush().expect("flush");
            let first = e.take();
            assert!(!first.is_empty(), "{a:?} flushed nothing");
            // A streaming decoder reads the first part before the end.
            let mut got = vec![0u8; 10];
            let n = match a {
                Algorithm::Gzip => flate2::read::GzDecoder::new(&first[..]).read(&mut got),
                Algorithm::Brotli => brotli::Decompressor::new(&first[..], 4096).read(&mut got),
                Algorithm::Zstd => {
                    zstd::stream::read::Decoder::new(&first[..]).and_then(|mut d| d.read(&mut got))
                }
            }
            .expect("reads");
            assert_eq!(&got[..n], b"event one\n", "{a:?}");
        }
    }
}
