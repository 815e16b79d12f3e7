//! Response head parsing and response framing (RFC 9112 §6.3).

use super::*;

fn parse(bytes: &[u8], head_request: bool) -> Result<(BodyKind, u16, usize), Violation> {
    let mut p = ResponseParser::new(8192);
    // Byte at a time first: the same verdict.
    let mut split = Ok(None);
    for end in 0..=bytes.len() {
        split = p.parse(&bytes[..end], head_request);
        if split != Ok(None) {
            break;
        }
    }
    let mut q = ResponseParser::new(8192);
    let whole = q.parse(bytes, head_request);
    assert_eq!(split, whole);
    let n = whole?.ok_or(Violation::Malformed)?;
    let h = q.head(bytes);
    Ok((h.body(), h.status(), n))
}

#[test]
fn framing_of_responses() {
    let cases: &[(&[u8], bool, BodyKind)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, BodyKind::Length(5)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, BodyKind::None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, BodyKind::Chunked),
        (b"HTTP/1.1 200 OK\r\n\r\n", false, BodyKind::UntilClose),
        (b"HTTP/1.0 200 OK\r\n\r\n", false, BodyKind::UntilClose),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, BodyKind::None),
        (b"HTTP/1.1 204 No Content\r\n\r\n", false, BodyKind::None),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 20\r\n\r\n", false, BodyKind::None),
        (b"HTTP/1.1 100 Continue\r\n\r\n", false, BodyKind::None),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", false, BodyKind::None),
        (b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false, BodyKind::None),
    ];
    for (resp, head, want) in cases {
        let (body, _, _) = parse(resp, *head)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(resp)));
        assert_eq!(body, *want, "{:?}", String::from_utf8_lossy(resp));
    }
}

#[test]
fn interim_and_reuse() {
    let bytes = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let mut p = ResponseParser::new(8192);
    let n = p.parse(bytes, false).expect("valid").expect("complete");
    assert!(p.head(bytes).is_interim());
    let rest = &bytes[n..];
    let m = p.parse(rest, false).expect("valid").expect("complete");
    let h = p.head(rest);
    assert!(!h.is_interim());
    assert_eq!(
        (h.status(), h.reason(), h.body()),
        (200, &b"OK"[..], BodyKind::Length(2))
    );
    assert_eq!(&rest[m..], b"hi");
    assert!(h.reusable());
    for (resp, reusable) in [
        (
            &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"[..],
            false,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            true,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", false),
    ] {
        let mut p = ResponseParser::new(8192);
        assert!(matches!(p.parse(resp, false), Ok(Some(_))));
        assert_eq!(
            p.head(resp).reusable(),
            reusable,
            "{:?}",
            String::from_utf8_lossy(resp)
        );
    }
}

#[test]
fn chunked_overrides_content_length_in_a_response() {
    let mut p = ResponseParser::new(8192);
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(p.parse(resp, false), Ok(Some(resp.len())));
    let head = p.head(resp);
    assert_eq!(head.body(), BodyKind::Chunked);
    assert_eq!(head.content_length(), None);
}

#[test]
fn ambiguous_backend_framing_is_refused() {
    for (resp, want) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            Violation::DuplicateCl,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            Violation::BadTe,
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Violation::TeInHttp10,
        ),
        (
            b"HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\n",
            Violation::BareLf,
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            Violation::ObsFold,
        ),
        (
            b"HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
            Violation::BadFieldName,
        ),
        (b"HTTP/1.1 20 OK\r\n\r\n", Violation::Malformed),
        (b"HTTP/2 200 OK\r\n\r\n", Violation::Malformed),
    ] {
        assert_eq!(
            parse(resp, false).map(|r| r.0),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(resp)
        );
    }
}
