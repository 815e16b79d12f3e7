//! The one-pass head reader against `httparse`, the parser it replaced:
//! seed heads and many byte-level mutations of them, as requests and as
//! responses. Wherever the line scan finds nothing, the two must agree on
//! accepting the head, and on its first line and every field (name and
//! value); a head `httparse` refuses must be refused (431 for too many
//! fields, 400 otherwise).

use super::super::{RequestParser, ResponseParser, Violation};
use super::{HeadScan, Role, Scanned};

const MAX: usize = 64 << 10;

const REQUESTS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\nPOST /u?q=1 HTTP/1.1\r\nHost: a.example\r\ncontent-length:\t5 \r\nX-Empty:\r\n\r\n",
    b"GET /caf\xc3\xa9 HTTP/1.0\r\nUser-Agent: x/1 (y; z)\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nX-Obs: caf\xe9 \t \r\n\r\n",
    b"M-SEARCH http://a.example:8080/p?x=%20 HTTP/1.1\r\nhost:a\r\ntransfer-encoding: chunked\r\n\r\n",
];

const RESPONSES: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: s\r\n\r\n",
    b"HTTP/1.0 404 Not Found\r\nX: \t y \r\n\r\n",
    b"HTTP/1.1 204\r\nDate: Mon, 07 Dec 2026 05:00:00 GMT\r\n\r\n",
    b"HTTP/1.1 599 \r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 302 Moved \xe9t\xe9\r\nLocation: /x\r\n\r\n",
];

/// Bytes that matter to a head's syntax, for mutations.
const INTERESTING: &[u8] = b" \t\r\n:/.01HTtP\x00\x7f\x80\xc3\xff,;\"(A";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(v.len() + 1);
        let b = INTERESTING[rng.below(INTERESTING.len())];
        match rng.below(3) {
            0 if at < v.len() => v[at] = b,
            1 if at < v.len() => {
                v.remove(at);
            }
            _ => v.insert(at, b),
        }
    }
    v
}

/// Where the line scan says the head is, if it finds nothing wrong
/// with its lines (the part both parsers share).
fn head_of(bytes: &[u8], role: Role) -> Option<(usize, usize)> {
    let mut scan = HeadScan::default();
    match scan.scan(bytes, MAX, role, false, &mut Vec::new()) {
        Ok(Scanned::Complete { start, end }) => Some((start, end)),
        // Refused for what httparse would refuse: the lines were fine.
        Err(Violation::Malformed | Violation::TooManyFields) => {
            let mut at = 0;
            while bytes[at..].starts_with(b"\r\n") {
                at += 2;
            }
            let end = memchr::memmem::find(&bytes[at..], b"\r\n\r\n")? + at + 4;
            Some((at, end))
        }
        _ => None,
    }
}

fn expect_refusal(got: Violation, theirs: &httparse::Error, bytes: &[u8]) -> Compared {
    let want = if *theirs == httparse::Error::TooManyHeaders {
        Violation::TooManyFields
    } else {
        Violation::Malformed
    };
    assert_eq!(
        got,
        want,
        "{theirs:?} for {:?}",
        String::from_utf8_lossy(bytes)
    );
    Compared::Refused
}

/// What a comparison came to: both accepted, both refused, or the line
/// scan refused it (nothing to compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Compared {
    Accepted,
    Refused,
    LineScan,
}

fn same_fields<'a>(
    ours: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    theirs: &[httparse::Header<'_>],
    what: &str,
) {
    let ours: Vec<_> = ours.collect();
    let theirs: Vec<_> = theirs
        .iter()
        .map(|h| (h.name.as_bytes(), h.value))
        .collect();
    assert_eq!(ours, theirs, "{what:?}");
}

fn check_request(bytes: &[u8]) -> Compared {
    let Some((start, end)) = head_of(bytes, Role::Request) else {
        return Compared::LineScan;
    };
    let mut p = RequestParser::new(MAX);
    let ours = p.parse(bytes);
    let mut slots = [httparse::EMPTY_HEADER; super::MAX_FIELDS];
    let mut req = httparse::Request::new(&mut slots);
    let theirs = req.parse(&bytes[start..end]);
    let what = String::from_utf8_lossy(bytes);
    match (ours, theirs) {
        (Ok(super::super::Parsed::Head(n)), Ok(httparse::Status::Complete(m))) => {
            assert_eq!((n, m), (end, end - start), "{what:?}");
            let head = p.head(bytes);
            assert_eq!(
                Some(head.method()),
                req.method.map(str::as_bytes),
                "{what:?}"
            );
            assert_eq!(Some(head.target()), req.path.map(str::as_bytes), "{what:?}");
            assert_eq!(Some(head.minor()), req.version, "{what:?}");
            same_fields(head.fields(), req.headers, &what);
            Compared::Accepted
        }
        (Err(v), Err(e)) => expect_refusal(v, &e, bytes),
        (ours, theirs) => panic!("ours {ours:?}, httparse {theirs:?}: {what:?}"),
    }
}

fn check_response(bytes: &[u8]) -> Compared {
    let Some((start, end)) = head_of(bytes, Role::Response) else {
        return Compared::LineScan;
    };
    let mut p = ResponseParser::new(MAX);
    let ours = p.parse(bytes, false);
    let mut slots = [httparse::EMPTY_HEADER; super::MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut slots);
    let theirs = resp.parse(&bytes[start..end]);
    let what = String::from_utf8_lossy(bytes);
    match (ours, theirs) {
        (Ok(Some(n)), Ok(httparse::Status::Complete(m))) => {
            assert_eq!((n, m), (end, end - start), "{what:?}");
            let head = p.head(bytes);
            assert_eq!(Some(head.status()), resp.code, "{what:?}");
            assert_eq!(Some(head.minor()), resp.version, "{what:?}");
            assert_eq!(
                Some(head.reason()),
                resp.reason.map(str::as_bytes),
                "{what:?}"
            );
            same_fields(head.fields(), resp.headers, &what);
            Compared::Accepted
        }
        // Status codes below 100 are refused on top of httparse.
        (Err(Violation::Malformed), Ok(_)) if resp.code.is_some_and(|c| c < 100) => {
            Compared::Refused
        }
        (Err(v), Err(e)) => expect_refusal(v, &e, bytes),
        (ours, theirs) => panic!("ours {ours:?}, httparse {theirs:?}: {what:?}"),
    }
}

#[test]
fn seeds_agree_with_httparse() {
    for seed in REQUESTS {
        assert_eq!(check_request(seed), Compared::Accepted);
        assert!(matches!(
            RequestParser::new(MAX).parse(seed),
            Ok(super::super::Parsed::Head(_))
        ));
    }
    for seed in RESPONSES {
        assert_eq!(check_response(seed), Compared::Accepted);
        assert!(matches!(
            ResponseParser::new(MAX).parse(seed, false),
            Ok(Some(_))
        ));
    }
}

#[test]
fn mutations_agree_with_httparse() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::HashMap::new();
    for _ in 0..40_000 {
        let seed = REQUESTS[rng.below(REQUESTS.len())];
        *seen
            .entry(("request", check_request(&mutate(seed, &mut rng))))
            .or_insert(0) += 1;
        let seed = RESPONSES[rng.below(RESPONSES.len())];
        *seen
            .entry(("response", check_response(&mutate(seed, &mut rng))))
            .or_insert(0) += 1;
    }
    // The mutations reach both verdicts on both sides, often.
    for role in ["request", "response"] {
        for c in [Compared::Accepted, Compared::Refused] {
            let n = seen.get(&(role, c)).copied().unwrap_or(0);
            assert!(n > 2_000, "{role} {c:?}: {n} of 40000 ({seen:?})");
        }
    }
}

#[test]
fn too_many_fields_and_a_bad_value_refused_as_httparse_does() {
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=super::MAX_FIELDS {
        many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(check_request(&many), Compared::Refused);
    assert_eq!(
        RequestParser::new(MAX).parse(&many),
        Err(Violation::TooManyFields)
    );
    let nul = b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n";
    assert_eq!(check_request(nul), Compared::Refused);
    assert_eq!(
        RequestParser::new(MAX).parse(nul),
        Err(Violation::Malformed)
    );
    // A line-scan finding after a bad value still wins, as before.
    let both = b"GET / HTTP/1.1\r\nX: a\x00b\r\nY: 1\nZ: 2\r\n\r\n";
    assert_eq!(RequestParser::new(MAX).parse(both), Err(Violation::BareLf));
}
