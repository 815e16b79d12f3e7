//! Unit tests of the framing scanner: each finding, the clean cases it must
//! pass (so honest clients are never refused), and byte-at-a-time feeding.

use super::*;

const MAX: usize = 32 << 10;

fn scan(bytes: &[u8]) -> Option<(u32, Violation)> {
    let mut f = Framing::new(MAX);
    f.feed(bytes);
    let whole = f.finding();
    // Splitting the input anywhere must not change the verdict.
    let mut g = Framing::new(MAX);
    for b in bytes {
        g.feed(std::slice::from_ref(b));
    }
    assert_eq!(g.finding(), whole, "byte-at-a-time differs for {bytes:?}");
    whole
}

fn bad(bytes: &[u8]) -> Violation {
    match scan(bytes) {
        Some((_, v)) => v,
        None => panic!("accepted: {:?}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn clean_requests_pass() {
    for req in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /u HTTP/1.1\r\nHost: a\r\ncontent-length:\t5 \r\n\r\nhello",
        b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /u HTTP/1.1\r\nTransfer-Encoding:  CHUNKED\r\n\r\n5;ext=1\r\nhello\r\n5 ;x\r\nworld\r\n0\r\nX-T: 1\r\n\r\n",
        b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
        b"GET / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        // A body that looks like a head is a body.
        b"POST / HTTP/1.1\r\nContent-Length: 32\r\n\r\nX\nTransfer-Encoding: chunked\n\n\n\nGET / HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(scan(req), None, "{:?}", String::from_utf8_lossy(req));
    }
}

#[test]
fn pipelined_requests_are_counted() {
    let two = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    assert_eq!(scan(two), Some((2, Violation::DuplicateCl)));
}

#[test]
fn body_findings_belong_to_their_request() {
    let req = b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n";
    assert_eq!(scan(req), Some((1, Violation::BadChunk)));
    assert_eq!(
        scan(b"GET / HTTP/1.1\r\n\r\n\n"),
        Some((1, Violation::BareLf))
    );
}

#[test]
fn content_length_with_transfer_encoding() {
    for req in [
        &b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    ] {
        assert_eq!(bad(req), Violation::ClAndTe);
    }
}

#[test]
fn content_length_variants() {
    assert_eq!(
        bad(b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"),
        Violation::DuplicateCl
    );
    assert_eq!(
        bad(b"POST / HTTP/1.1\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n"),
        Violation::DuplicateCl
    );
    for v in [
        "4, 5",
        "+4",
        "-1",
        "0x10",
        "",
        "4 4",
        "99999999999999999999",
    ] {
        let req = format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n");
        assert_eq!(bad(req.as_bytes()), Violation::BadCl, "{v:?}");
    }
}

#[test]
fn obfuscated_transfer_encoding() {
    for v in [
        "chunked ,x",
        "xchunked",
        "chunked, chunked",
        "gzip, chunked",
        "\"chunked\"",
        "chunked\x0b",
        "identity",
    ] {
        let req = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {v}\r\n\r\n");
        assert_eq!(bad(req.as_bytes()), Violation::BadTe, "{v:?}");
    }
    assert_eq!(
        bad(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Violation::BadTe
    );
    assert_eq!(
        bad(b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"),
        Violation::BadFieldName
    );
    assert_eq!(
        bad(b"POST / HTTP/1.1\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n"),
        Violation::ObsFold
    );
    assert_eq!(
        bad(b"POST / HTTP/1.1\r\nX: y\r\n\tTransfer-Encoding: chunked\r\n\r\n"),
        Violation::ObsFold
    );
    assert_eq!(
        bad(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Violation::TeInHttp10
    );
}

#[test]
fn bare_line_endings() {
    assert_eq!(bad(b"GET / HTTP/1.1\nHost: a\r\n\r\n"), Violation::BareLf);
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n"),
        Violation::BareLf
    );
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: a\r\n\n"), Violation::BareLf);
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nX: a\rY: b\r\n\r\n"),
        Violation::BareCr
    );
}

#[test]
fn chunk_syntax() {
    let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "g\r\nx\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "10000000000000000\r\n",
        "-1\r\n",
        "5;a\nhello\r\n0\r\n\r\n",
    ] {
        let req = format!("{head}{body}");
        let v = bad(req.as_bytes());
        assert!(
            matches!(v, Violation::BadChunk | Violation::BareLf),
            "{body:?}: {v:?}"
        );
    }
    assert_eq!(
        bad(format!("{head}5\nhello\r\n0\r\n\r\n").as_bytes()),
        Violation::BareLf
    );
    assert_eq!(
        bad(format!("{head}5\r\nhello\n0\r\n\r\n").as_bytes()),
        Violation::BadChunk
    );
}

#[test]
fn head_size_limit() {
    let mut f = Framing::new(64);
    let fed = f.feed(b"GET / HTTP/1.1\r\nHost: a\r\n");
    assert!(fed.in_head);
    f.feed(&[b'x'; 40]);
    assert_eq!(f.finding(), Some((0, Violation::HeadTooLarge)));
    // A body does not count against the head limit.
    let mut f = Framing::new(64);
    let fed = f.feed(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n");
    assert!(!fed.in_head);
    f.feed(&[b'x'; 100]);
    assert_eq!(f.finding(), None);
}

#[test]
fn http2_preface_switches_off() {
    let mut f = Framing::new(MAX);
    f.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\n\n\n");
    assert!(f.is_off());
    assert_eq!(f.finding(), None);
}

#[test]
fn in_head_tracks_partial_heads() {
    let mut f = Framing::new(MAX);
    assert!(f.feed(b"GET / HT").in_head);
    assert!(!f.feed(b"TP/1.1\r\n\r\n").in_head);
    assert!(!f.feed(b"\r\n").in_head);
    assert!(f.feed(b"G").in_head);
}

#[test]
fn long_lines_read_in_runs_keep_every_verdict() {
    // Request lines and field values are skipped in runs up to the next CR
    // or LF; the version at the end of a long line and the head limit must
    // come out the same for every way the bytes arrive.
    let path = "/".to_string() + &"p".repeat(100);
    let http10 = format!(
        "POST {path} HTTP/1.0\r\nX-Long: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        "v".repeat(300)
    );
    let http11 = http10.replace("HTTP/1.0", "HTTP/1.1") + "0\r\n\r\n";
    for size in 1..=13 {
        let feed = |bytes: &[u8], max: usize| {
            let mut f = Framing::new(max);
            for part in bytes.chunks(size) {
                f.feed(part);
            }
            f.finding()
        };
        assert_eq!(
            feed(http10.as_bytes(), MAX),
            Some((0, Violation::TeInHttp10)),
            "parts of {size}"
        );
        assert_eq!(feed(http11.as_bytes(), MAX), None, "parts of {size}");
        // The limit falls inside the long value: found wherever it splits.
        assert_eq!(
            feed(http11.as_bytes(), 300),
            Some((0, Violation::HeadTooLarge)),
            "parts of {size}"
        );
        assert_eq!(
            feed(http11.as_bytes(), http11.len() - 5),
            None,
            "parts of {size}"
        );
    }
}
