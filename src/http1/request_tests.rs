//! Request head parsing: every framing finding with its status, heads
//! split at every byte, pipelining, the head limit, buffer reuse.

use super::*;
use crate::http1::body::LengthReader;
use crate::http1::{ReadBuf, MAX_FIELDS};

const MAX: usize = 32 << 10;

/// Parses the first head of `bytes` whole, then fed a byte at a time
/// (each call seeing one more byte); both must agree.
fn parse(bytes: &[u8]) -> Result<Parsed, Violation> {
    let whole = RequestParser::new(MAX).parse(bytes);
    let mut p = RequestParser::new(MAX);
    let mut split = Ok(Parsed::Partial);
    for end in 0..=bytes.len() {
        split = p.parse(&bytes[..end]);
        if split != Ok(Parsed::Partial) {
            break;
        }
    }
    assert_eq!(
        split,
        whole,
        "byte-at-a-time differs for {:?}",
        String::from_utf8_lossy(bytes)
    );
    whole
}

fn bad(bytes: &[u8]) -> Violation {
    match parse(bytes) {
        Err(v) => v,
        Ok(p) => panic!("accepted ({p:?}): {:?}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn clean_heads_parse_into_spans() {
    let req = b"\r\nPOST /u?q=1 HTTP/1.1\r\nHost: a.example\r\ncontent-length:\t5 \r\nX-Empty:\r\n\r\nhello";
    let Ok(Parsed::Head(n)) = parse(req) else {
        panic!("not parsed")
    };
    assert_eq!(&req[n..], b"hello");
    let mut p = RequestParser::new(MAX);
    assert_eq!(p.parse(req), Ok(Parsed::Head(n)));
    let h = p.head(req);
    assert_eq!(h.method(), b"POST");
    assert_eq!(h.target(), b"/u?q=1");
    assert_eq!(h.minor(), 1);
    assert_eq!(h.body(), BodyKind::Length(5));
    assert_eq!(h.content_length(), Some(5));
    assert_eq!(h.field(b"HOST"), Some(&b"a.example"[..]));
    assert_eq!(h.field(b"x-empty"), Some(&b""[..]));
    assert_eq!(h.fields().count(), 3);
    assert!(h.keep_alive());

    for (req, body) in [
        (
            &b"POST / HTTP/1.1\r\nTransfer-Encoding:  CHUNKED\r\n\r\n"[..],
            BodyKind::Chunked,
        ),
        (
            b"GET / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
            BodyKind::None,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", BodyKind::None),
    ] {
        let mut p = RequestParser::new(MAX);
        assert!(matches!(parse(req), Ok(Parsed::Head(_))));
        assert!(matches!(p.parse(req), Ok(Parsed::Head(_))));
        assert_eq!(p.head(req).body(), body);
    }
}

#[test]
fn keep_alive_follows_version_and_connection() {
    for (req, keep) in [
        (&b"GET / HTTP/1.1\r\n\r\n"[..], true),
        (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: x, keep-alive\r\n\r\n", true),
    ] {
        let mut p = RequestParser::new(MAX);
        assert!(matches!(p.parse(req), Ok(Parsed::Head(_))));
        assert_eq!(
            p.head(req).keep_alive(),
            keep,
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
}

#[test]
fn framing_violations_and_their_statuses() {
    let cases: &[(&[u8], Violation)] = &[
        (
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            Violation::ClAndTe,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            Violation::ClAndTe,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n",
            Violation::DuplicateCl,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 4, 5\r\n\r\n",
            Violation::BadCl,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n",
            Violation::BadCl,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            Violation::BadCl,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            Violation::BadCl,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 000000000000000000000000005\r\n\r\n",
            Violation::BadCl,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Violation::BadTe,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            Violation::BadTe,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            Violation::BadTe,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            Violation::BadTe,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Violation::BadTe,
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Violation::TeInHttp10,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            Violation::BadFieldName,
        ),
        (
            b"GET / HTTP/1.1\r\nX\x00Y: 1\r\n\r\n",
            Violation::BadFieldName,
        ),
        (b"GET / HTTP/1.1\r\n: 1\r\n\r\n", Violation::BadFieldName),
        (
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            Violation::BadFieldName,
        ),
        (
            b"GET / HTTP/1.1\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n",
            Violation::ObsFold,
        ),
        (b"GET / HTTP/1.1\r\nX: y\r\n\tz\r\n\r\n", Violation::ObsFold),
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", Violation::BareLf),
        (
            b"GET / HTTP/1.1\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n",
            Violation::BareLf,
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\n", Violation::BareLf),
        (b"\nGET / HTTP/1.1\r\n\r\n", Violation::BareLf),
        (b"GET / HTTP/1.1\r\nX: a\rY: b\r\n\r\n", Violation::BareCr),
        (b"\rGET / HTTP/1.1\r\n\r\n", Violation::BareCr),
        // What only the head parser refuses (hyper's httparse today).
        (b"G\x01T / HTTP/1.1\r\n\r\n", Violation::Malformed),
        (b"GET / HTTP/1.2\r\n\r\n", Violation::Malformed),
        (b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", Violation::Malformed),
        (b"GET  / HTTP/1.1\r\n\r\n", Violation::Malformed),
    ];
    for (req, want) in cases {
        let got = bad(req);
        assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(req));
        assert_eq!(got.status(), 400);
    }
}

#[test]
fn head_limit_is_431_wherever_it_falls() {
    let req = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n\r\n";
    // Exactly the head's size passes; one byte less is 431, whatever the
    // limit cuts (the value, its CR, its LF).
    let mut p = RequestParser::new(req.len());
    assert_eq!(p.parse(req), Ok(Parsed::Head(req.len())));
    for max in 1..req.len() {
        let mut p = RequestParser::new(max);
        let got = p.parse(req);
        assert_eq!(got, Err(Violation::HeadTooLarge), "max {max}");
        assert_eq!(Violation::HeadTooLarge.status(), 431);
        // Arriving a byte at a time: the same finding once past the limit.
        let mut p = RequestParser::new(max);
        let mut first_err = None;
        for end in 0..=req.len() {
            if let Err(v) = p.parse(&req[..end]) {
                first_err = Some((end, v));
                break;
            }
        }
        assert_eq!(
            first_err,
            Some((max + 1, Violation::HeadTooLarge)),
            "max {max}"
        );
    }
    // Empty lines before the head do not count against it.
    let mut with_empties = b"\r\n\r\n".to_vec();
    with_empties.extend_from_slice(req);
    let mut p = RequestParser::new(req.len());
    assert_eq!(p.parse(&with_empties), Ok(Parsed::Head(with_empties.len())));
    // A violation before the limit is reported as itself.
    let mut p = RequestParser::new(24);
    assert_eq!(
        p.parse(b"GET / HTTP/1.1\r\nX Y: 1234567890"),
        Err(Violation::BadFieldName)
    );
}

#[test]
fn too_many_fields_is_431() {
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..MAX_FIELDS {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    let mut ok = req.clone();
    ok.extend_from_slice(b"\r\n");
    assert!(matches!(parse(&ok), Ok(Parsed::Head(_))));
    req.extend_from_slice(b"X-One-More: v\r\n\r\n");
    assert_eq!(bad(&req), Violation::TooManyFields);
    assert_eq!(Violation::TooManyFields.status(), 431);
}

#[test]
fn http2_preface_is_handed_on_only_first() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_eq!(parse(preface), Ok(Parsed::Http2Preface));
    let mut p = RequestParser::new(MAX);
    let first = b"GET / HTTP/1.1\r\n\r\n";
    assert!(matches!(p.parse(first), Ok(Parsed::Head(_))));
    // After an HTTP/1 request, `PRI` is just a (refused) HTTP/1 request.
    assert_eq!(p.parse(preface), Err(Violation::Malformed));
}

#[test]
fn every_split_point_of_a_realistic_head() {
    let req = b"GET /shop/cart?id=42 HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,*/*;q=0.8\r\nCookie: session=3f9a; theme=dark\r\nContent-Length: 0\r\n\r\n";
    for at in 0..=req.len() {
        let mut p = RequestParser::new(MAX);
        let first = p.parse(&req[..at]);
        let second = p.parse(req);
        if at < req.len() {
            assert_eq!(first, Ok(Parsed::Partial), "split at {at}");
        }
        assert_eq!(
            second.or(first),
            Ok(Parsed::Head(req.len())),
            "split at {at}"
        );
        let h = p.head(req);
        assert_eq!(h.target(), b"/shop/cart?id=42");
        assert_eq!(h.field(b"cookie"), Some(&b"session=3f9a; theme=dark"[..]));
    }
}

/// Drives pipelined requests through one buffer as a connection would.
fn requests(buf: &mut ReadBuf, p: &mut RequestParser) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut got = Vec::new();
    loop {
        let Ok(Parsed::Head(n)) = p.parse(buf.data()) else {
            return got;
        };
        let h = p.head(buf.data());
        let mut body = match h.body() {
            BodyKind::Length(len) => LengthReader::new(len),
            _ => LengthReader::new(0),
        };
        got.push((h.target().to_vec(), buf.data()[n..].to_vec()));
        buf.consume(n);
        let take = body.take(buf.data().len());
        buf.consume(take);
        assert!(body.is_done());
    }
}

#[test]
fn pipelined_requests_stay_in_the_buffer() {
    let mut buf = ReadBuf::new();
    let mut p = RequestParser::new(MAX);
    buf.extend(b"GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\n\r\nGET /4 HT");
    let got = requests(&mut buf, &mut p);
    let targets: Vec<_> = got.iter().map(|(t, _)| t.as_slice()).collect();
    assert_eq!(targets, [&b"/1"[..], b"/2", b"/3"]);
    assert_eq!(buf.data(), b"GET /4 HT");
    buf.extend(b"TP/1.1\r\n\r\n");
    assert_eq!(requests(&mut buf, &mut p).len(), 1);
    assert!(buf.is_empty());
    assert_eq!(p.heads(), 4);
}

#[test]
fn buffer_and_field_table_are_reused_across_keep_alive_requests() {
    let mut buf = ReadBuf::new();
    let mut p = RequestParser::new(MAX);
    let req = b"GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Trace: 1\r\n\r\n";
    buf.extend(req);
    assert_eq!(requests(&mut buf, &mut p).len(), 1);
    let (cap, fields_cap) = (buf.capacity(), p.fields.capacity());
    let ptr = buf.data().as_ptr();
    for _ in 0..1000 {
        buf.extend(req);
        assert_eq!(requests(&mut buf, &mut p).len(), 1);
    }
    assert_eq!(buf.capacity(), cap);
    assert_eq!(p.fields.capacity(), fields_cap);
    assert_eq!(
        buf.data().as_ptr(),
        ptr,
        "the same memory, read from its front again"
    );
    // Idle: everything given back.
    assert!(buf.release());
    p.release();
    assert_eq!((buf.capacity(), p.fields.capacity()), (0, 0));
}
