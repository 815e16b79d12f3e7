//! The chunked decoder (every chunk rule of the framing scanner, input
//! split at every byte, trailers kept) and the encoder.

use super::*;

const MAX: usize = 4096;

/// Decodes `body` fed in parts of `size` bytes: the data, the raw
/// trailer bytes, and how many bytes the body took.
fn decode(body: &[u8], size: usize) -> Result<(Vec<u8>, Vec<u8>, usize), Violation> {
    let mut d = ChunkedDecoder::new(MAX);
    let (mut data, mut trailers) = (Vec::new(), Vec::new());
    // A connection's buffer: bytes arrive at the end, are consumed at the
    // front.
    let mut pending: Vec<u8> = Vec::new();
    let mut used = 0;
    for part in body.chunks(size.max(1)) {
        pending.extend_from_slice(part);
        loop {
            let (n, piece) = d.decode(&pending)?;
            let more = piece.is_some();
            match piece {
                Some(Piece::Data(r)) => data.extend_from_slice(&pending[r]),
                Some(Piece::Trailer(r)) => trailers.extend_from_slice(&pending[r]),
                Some(Piece::End) => {
                    pending.drain(..n);
                    return Ok((data, trailers, used + n));
                }
                None => {}
            }
            pending.drain(..n);
            used += n;
            if !more {
                break;
            }
        }
    }
    Err(Violation::Malformed)
}

fn every_split(body: &[u8]) -> Result<(Vec<u8>, Vec<u8>, usize), Violation> {
    let whole = decode(body, body.len());
    for size in 1..body.len() {
        assert_eq!(
            decode(body, size),
            whole,
            "parts of {size}: {:?}",
            String::from_utf8_lossy(body)
        );
    }
    whole
}

#[test]
fn decodes_chunks_extensions_and_trailers() {
    let body = b"5;ext=1\r\nhello\r\n6 ;x\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\nNEXT";
    let (data, trailers, used) = every_split(body).expect("valid");
    assert_eq!(data, b"hello world0123456789");
    assert_eq!(trailers, b"X-Sum: 1\r\nY: 2\r\n");
    assert_eq!(&body[used..], b"NEXT", "what follows the body is left");
    let (data, trailers, used) = every_split(b"0\r\n\r\n").expect("valid");
    assert!(data.is_empty() && trailers.is_empty());
    assert_eq!(used, 5);
}

#[test]
fn chunk_rules_match_the_framing_scanner() {
    for (body, want) in [
        (&b"g\r\nx\r\n0\r\n\r\n"[..], Violation::BadChunk),
        (b"0x5\r\nhello\r\n0\r\n\r\n", Violation::BadChunk),
        (b" 5\r\nhello\r\n0\r\n\r\n", Violation::BadChunk),
        (b"5 \r\nhello\r\n0\r\n\r\n", Violation::BadChunk),
        (b"\r\nhello\r\n0\r\n\r\n", Violation::BadChunk),
        (b"5\r\nhelloXX0\r\n\r\n", Violation::BadChunk),
        (b"5\r\nhello\rX0\r\n\r\n", Violation::BadChunk),
        (b"5\r\nhello\n0\r\n\r\n", Violation::BadChunk),
        (b"10000000000000000\r\n", Violation::BadChunk),
        (b"-1\r\n", Violation::BadChunk),
        (b";x\r\n", Violation::BadChunk),
        (b"5\nhello\r\n0\r\n\r\n", Violation::BareLf),
        (b"5;a\nhello\r\n0\r\n\r\n", Violation::BareLf),
        (b"5\rhello\r\n0\r\n\r\n", Violation::BareCr),
        (b"0\r\nX: 1\nY: 2\r\n\r\n", Violation::BareLf),
        (b"0\r\nX: 1\r\n Y: 2\r\n\r\n", Violation::ObsFold),
        (b"0\r\n\n", Violation::BareLf),
        (b"0\r\nX: 1\rY\r\n\r\n", Violation::BareCr),
        (b"0\r\n\rX", Violation::BareCr),
    ] {
        assert_eq!(
            every_split(body),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    // The largest size that fits: 16 hex digits.
    let mut d = ChunkedDecoder::new(MAX);
    assert_eq!(
        d.decode(b"ffffffffffffffff\r\nab"),
        Ok((20, Some(Piece::Data(18..20))))
    );
    assert_eq!(d.decode(b"ab"), Ok((2, Some(Piece::Data(0..2)))));
    assert!(!d.is_done());
}

#[test]
fn trailer_section_is_bounded() {
    let mut body = b"0\r\n".to_vec();
    for _ in 0..20 {
        body.extend_from_slice(b"X-Trailer: 0123456789\r\n");
    }
    body.extend_from_slice(b"\r\n");
    let mut d = ChunkedDecoder::new(100);
    let mut at = 0;
    let err = loop {
        match d.decode(&body[at..]) {
            Ok((n, _)) => at += n,
            Err(v) => break v,
        }
        assert!(at < body.len(), "accepted");
    };
    assert_eq!(err, Violation::HeadTooLarge);
}

#[test]
fn encoder_output_decodes_back() {
    let mut hdr = [0u8; 18];
    assert_eq!(chunk_header(1, &mut hdr), b"1\r\n");
    assert_eq!(chunk_header(0x1f, &mut hdr), b"1f\r\n");
    assert_eq!(chunk_header(u64::MAX, &mut hdr), b"ffffffffffffffff\r\n");
    let mut wire = Vec::new();
    for part in [&b"hello"[..], &[b'x'; 300], b"!"] {
        wire.extend_from_slice(chunk_header(part.len() as u64, &mut hdr));
        wire.extend_from_slice(part);
        wire.extend_from_slice(CHUNK_END);
    }
    wire.extend_from_slice(LAST_CHUNK);
    wire.extend_from_slice(b"X-Sum: 9\r\n");
    wire.extend_from_slice(BODY_END);
    let (data, trailers, used) = decode(&wire, 7).expect("valid");
    assert_eq!(data.len(), 306);
    assert_eq!(trailers, b"X-Sum: 9\r\n");
    assert_eq!(used, wire.len());
}

#[test]
fn length_reader_takes_only_its_bytes() {
    let mut r = LengthReader::new(5);
    assert_eq!(r.take(3), 3);
    assert_eq!(r.take(10), 2);
    assert!(r.is_done());
    assert_eq!(r.take(10), 0);
}
