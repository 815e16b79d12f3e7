//! A strict, second reading of the HTTP/1 byte stream a client sends, for
//! request smuggling defence in depth.
//!
//! hyper parses every request; this scanner reads the same bytes alongside
//! it (it never changes them) and follows message framing with the strict
//! rules of RFC 9112: it flags what hyper tolerates but a backend might read
//! differently, so the request is answered 400 and the connection closed
//! instead of being forwarded:
//!
//! * both Content-Length and Transfer-Encoding, more than one Content-Length
//!   field, a Content-Length that is not a plain number;
//! * a Transfer-Encoding other than exactly `chunked` (`chunked, chunked`,
//!   `gzip, chunked`, `chunked ,x`, `xchunked`, quoted, ...), several
//!   Transfer-Encoding fields, Transfer-Encoding in HTTP/1.0;
//! * a bare LF or a bare CR in the head or a chunk line, obsolete line
//!   folding, whitespace or other non-token bytes in a field name;
//! * a malformed chunk size or chunk terminator;
//! * a head larger than `max_header_size` (answered 431).
//!
//! Whatever is forwarded is re-framed by hyper's client, never copied, so
//! even an accepted request reaches the backend with one unambiguous length.
//! The scanner keeps a fixed few dozen bytes of state per connection and
//! never allocates. It stops reading at the HTTP/2 preface (HTTP/2 framing is
//! binary and hyper's h2 handles it) and after its first finding.

/// What was wrong with a request head or body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    BareLf,
    BareCr,
    ObsFold,
    BadFieldName,
    ClAndTe,
    DuplicateCl,
    BadCl,
    BadTe,
    TeInHttp10,
    BadChunk,
    HeadTooLarge,
}

impl Violation {
    /// The status the request is answered with.
    pub fn status(self) -> http::StatusCode {
        match self {
            Violation::HeadTooLarge => http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Violation::BareLf => "bare LF",
            Violation::BareCr => "bare CR",
            Violation::ObsFold => "obsolete line folding",
            Violation::BadFieldName => "invalid field name",
            Violation::ClAndTe => "both Content-Length and Transfer-Encoding",
            Violation::DuplicateCl => "more than one Content-Length",
            Violation::BadCl => "invalid Content-Length",
            Violation::BadTe => "Transfer-Encoding other than chunked",
            Violation::TeInHttp10 => "Transfer-Encoding in HTTP/1.0",
            Violation::BadChunk => "malformed chunk",
            Violation::HeadTooLarge => "request head larger than max_header_size",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages: optional empty lines, then a request line.
    Idle,
    IdleLf,
    RequestLine,
    /// After a CR, a LF must follow; `then` is the state after it.
    Lf(AfterLf),
    LineStart,
    Name,
    Value,
    BodyFixed(u64),
    ChunkSize {
        digits: u8,
        size: u64,
    },
    /// Whitespace after a chunk size: only a `;` extension may follow.
    ChunkLws(u64),
    ChunkExt(u64),
    ChunkData(u64),
    ChunkDataCr,
    TrailerStart,
    TrailerLine,
    /// Stop reading: HTTP/2, or a finding was made.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterLf {
    RequestLine,
    Field,
    HeadEnd,
    ChunkSize(u64),
    ChunkData,
    TrailerLine,
    TrailerEnd,
    IdleLine,
}

/// Which framing field the current header line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Other,
    ContentLength,
    TransferEncoding,
}

const CL: &[u8] = b"content-length";
const TE: &[u8] = b"transfer-encoding";
/// Longest value of a framing field we read (longer is invalid anyway).
const VALUE_CAP: usize = 24;

/// The outcome of feeding bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// A request head is partly received at the end of the bytes fed.
    pub in_head: bool,
}

#[derive(Debug, Clone)]
pub struct Framing {
    state: State,
    max_head: usize,
    /// Request heads completed so far.
    heads: u32,
    head_len: usize,
    /// The request line so far (its first bytes, for the HTTP/2 preface and
    /// its version).
    line: [u8; 16],
    line_len: usize,
    /// The request line's last 8 bytes, for the version.
    tail: [u8; 8],
    http10: bool,
    name: [u8; 17],
    name_len: usize,
    name_long: bool,
    field: Field,
    value: [u8; VALUE_CAP],
    value_len: usize,
    cl: Option<u64>,
    te: bool,
    finding: Option<(u32, Violation)>,
}

impl Framing {
    pub fn new(max_head: usize) -> Self {
        Framing {
            state: State::Idle,
            max_head,
            heads: 0,
            head_len: 0,
            line: [0; 16],
            line_len: 0,
            tail: [0; 8],
            http10: false,
            name: [0; 17],
            name_len: 0,
            name_long: false,
            field: Field::Other,
            value: [0; VALUE_CAP],
            value_len: 0,
            cl: None,
            te: false,
            finding: None,
        }
    }

    /// The first finding: the index (0-based, in arrival order) of the
    /// request whose head or body it is in, and what it is.
    pub fn finding(&self) -> Option<(u32, Violation)> {
        self.finding
    }

    /// Request heads read completely so far.
    pub fn heads(&self) -> u32 {
        self.heads
    }

    /// Has the scanner stopped (HTTP/2 or a finding)?
    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Is a request body (or its chunk framing) due next? Then a read that
    /// finds nothing waits on the client (`proxy.body_timeout`).
    pub fn in_body(&self) -> bool {
        matches!(
            self.state,
            State::BodyFixed(_)
                | State::ChunkSize { .. }
                | State::ChunkLws(_)
                | State::ChunkExt(_)
                | State::ChunkData(_)
                | State::ChunkDataCr
                | State::TrailerStart
                | State::TrailerLine
                | State::Lf(
                    AfterLf::ChunkSize(_)
                        | AfterLf::ChunkData
                        | AfterLf::TrailerLine
                        | AfterLf::TrailerEnd
                )
        )
    }

    /// Reads `bytes`, the next bytes the client sent.
    pub fn feed(&mut self, bytes: &[u8]) -> Fed {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Off => return Fed::default(),
                State::BodyFixed(n) => {
                    let take = (bytes.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Idle
                    } else {
                        State::BodyFixed(left)
                    };
                    continue;
                }
                State::ChunkData(n) => {
                    let take = (bytes.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::ChunkDataCr
                    } else {
                        State::ChunkData(left)
                    };
                    continue;
                }
                // Inside a line whose bytes need no look (a request line past
                // its first bytes, a field value other than the framing
                // fields): skip to the next CR or LF in one scan.
                State::RequestLine if self.line_len >= self.line.len() => {
                    let n = self.plain_run(&bytes[i..]);
                    if n > 0 {
                        self.push_line_run(&bytes[i..i + n]);
                        i += n;
                        continue;
                    }
                }
                State::Value if self.field == Field::Other => {
                    let n = self.plain_run(&bytes[i..]);
                    if n > 0 {
                        self.head_len += n;
                        i += n;
                        continue;
                    }
                }
                _ => {}
            }
            let b = bytes[i];
            i += 1;
            if self.in_head() {
                self.head_len += 1;
                if self.head_len > self.max_head {
                    self.fail(Violation::HeadTooLarge);
                    continue;
                }
            }
            self.step(b);
        }
        Fed {
            in_head: self.in_head(),
        }
    }

    /// How many bytes before the next CR or LF can be taken at once without
    /// passing `max_head` (0: go byte by byte, which reports the overflow).
    fn plain_run(&self, bytes: &[u8]) -> usize {
        let n = memchr::memchr2(b'\r', b'\n', bytes).unwrap_or(bytes.len());
        if self.head_len + n > self.max_head {
            0
        } else {
            n
        }
    }

    /// `push_line` for a run of bytes after the request line's first 16.
    fn push_line_run(&mut self, run: &[u8]) {
        self.head_len += run.len();
        self.line_len += run.len();
        const T: usize = 8;
        if run.len() >= T {
            self.tail.copy_from_slice(&run[run.len() - T..]);
        } else {
            self.tail.copy_within(run.len().., 0);
            self.tail[T - run.len()..].copy_from_slice(run);
        }
    }

    fn in_head(&self) -> bool {
        match self.state {
            State::RequestLine | State::LineStart | State::Name | State::Value => true,
            State::Lf(a) => matches!(a, AfterLf::RequestLine | AfterLf::Field | AfterLf::HeadEnd),
            _ => false,
        }
    }

    fn fail(&mut self, v: Violation) {
        // A finding in a body belongs to the request whose head came last.
        let in_body = !matches!(self.state, State::Idle | State::IdleLf) && !self.in_head();
        let index = if in_body {
            self.heads.saturating_sub(1)
        } else {
            self.heads
        };
        if self.finding.is_none() {
            self.finding = Some((index, v));
        }
        self.state = State::Off;
    }

    fn step(&mut self, b: u8) {
        match self.state {
            State::Idle => match b {
                // RFC 9112 §2.2: empty lines before a request line are ignored.
                b'\r' => self.state = State::IdleLf,
                b'\n' => self.fail(Violation::BareLf),
                _ => self.start_head(b),
            },
            State::IdleLf => self.expect_lf(b, AfterLf::IdleLine),
            State::RequestLine => match b {
                b'\r' => self.state = State::Lf(AfterLf::RequestLine),
                b'\n' => self.fail(Violation::BareLf),
                _ => self.push_line(b),
            },
            State::Lf(then) => self.expect_lf(b, then),
            State::LineStart => match b {
                b'\r' => self.state = State::Lf(AfterLf::HeadEnd),
                b'\n' => self.fail(Violation::BareLf),
                b' ' | b'\t' => self.fail(Violation::ObsFold),
                _ => {
                    self.name_len = 0;
                    self.name_long = false;
                    self.state = State::Name;
                    self.push_name(b);
                }
            },
            State::Name => match b {
                b':' if self.name_len > 0 || self.name_long => self.end_name(),
                _ => self.push_name(b),
            },
            State::Value => match b {
                b'\r' => self.state = State::Lf(AfterLf::Field),
                b'\n' => self.fail(Violation::BareLf),
                _ => self.push_value(b),
            },
            State::ChunkSize { digits, size } => match b {
                b'\r' if digits > 0 => self.state = State::Lf(AfterLf::ChunkSize(size)),
                b'\n' => self.fail(Violation::BareLf),
                b';' if digits > 0 => self.state = State::ChunkExt(size),
                b' ' | b'\t' if digits > 0 => self.state = State::ChunkLws(size),
                _ => match char::from(b).to_digit(16) {
                    // 16 hex digits already fill a u64: more is an overflow.
                    Some(d) if digits < 16 => {
                        self.state = State::ChunkSize {
                            digits: digits + 1,
                            size: size << 4 | u64::from(d),
                        }
                    }
                    _ => self.fail(Violation::BadChunk),
                },
            },
            State::ChunkLws(size) => match b {
                b' ' | b'\t' => {}
                b';' => self.state = State::ChunkExt(size),
                _ => self.fail(Violation::BadChunk),
            },
            State::ChunkExt(size) => match b {
                b'\r' => self.state = State::Lf(AfterLf::ChunkSize(size)),
                b'\n' => self.fail(Violation::BareLf),
                _ => {}
            },
            State::ChunkDataCr => match b {
                b'\r' => self.state = State::Lf(AfterLf::ChunkData),
                _ => self.fail(Violation::BadChunk),
            },
            State::TrailerStart => match b {
                b'\r' => self.state = State::Lf(AfterLf::TrailerEnd),
                b'\n' => self.fail(Violation::BareLf),
                b' ' | b'\t' => self.fail(Violation::ObsFold),
                _ => self.state = State::TrailerLine,
            },
            State::TrailerLine => match b {
                b'\r' => self.state = State::Lf(AfterLf::TrailerLine),
                b'\n' => self.fail(Violation::BareLf),
                _ => {}
            },
            State::BodyFixed(_) | State::ChunkData(_) | State::Off => {}
        }
    }

    fn expect_lf(&mut self, b: u8, then: AfterLf) {
        if b != b'\n' {
            let v = if matches!(then, AfterLf::ChunkData) {
                Violation::BadChunk
            } else {
                Violation::BareCr
            };
            return self.fail(v);
        }
        match then {
            AfterLf::IdleLine => self.state = State::Idle,
            AfterLf::RequestLine => {
                self.http10 = &self.tail == b"HTTP/1.0";
                self.state = State::LineStart;
            }
            AfterLf::Field => self.end_field(),
            AfterLf::HeadEnd => self.end_head(),
            AfterLf::ChunkSize(0) => self.state = State::TrailerStart,
            AfterLf::ChunkSize(n) => self.state = State::ChunkData(n),
            AfterLf::ChunkData => self.state = State::ChunkSize { digits: 0, size: 0 },
            AfterLf::TrailerLine => self.state = State::TrailerStart,
            AfterLf::TrailerEnd => self.state = State::Idle,
        }
    }

    fn start_head(&mut self, b: u8) {
        self.head_len = 1;
        self.line_len = 0;
        self.tail = [0; 8];
        self.cl = None;
        self.te = false;
        self.state = State::RequestLine;
        self.push_line(b);
    }

    fn push_line(&mut self, b: u8) {
        if self.line_len < self.line.len() {
            self.line[self.line_len] = b;
        }
        self.line_len += 1;
        self.tail.copy_within(1.., 0);
        self.tail[7] = b;
        // The HTTP/2 connection preface ("PRI * HTTP/2.0") opens only a
        // connection, before any HTTP/1 request.
        if self.heads == 0 && self.line_len == 4 && &self.line[..4] == b"PRI " {
            self.state = State::Off;
        }
    }

    fn push_name(&mut self, b: u8) {
        if !is_tchar(b) {
            return self.fail(Violation::BadFieldName);
        }
        if self.name_len < self.name.len() {
            self.name[self.name_len] = b.to_ascii_lowercase();
            self.name_len += 1;
        } else {
            self.name_long = true;
        }
    }

    fn end_name(&mut self) {
        let name = &self.name[..self.name_len];
        self.field = if self.name_long {
            Field::Other
        } else if name == CL {
            Field::ContentLength
        } else if name == TE {
            Field::TransferEncoding
        } else {
            Field::Other
        };
        self.value_len = 0;
        self.state = State::Value;
    }

    fn push_value(&mut self, b: u8) {
        if self.field == Field::Other {
            return;
        }
        if self.value_len == VALUE_CAP {
            let v = if self.field == Field::ContentLength {
                Violation::BadCl
            } else {
                Violation::BadTe
            };
            return self.fail(v);
        }
        self.value[self.value_len] = b;
        self.value_len += 1;
    }

    fn end_field(&mut self) {
        self.state = State::LineStart;
        let value = trim_ows(&self.value[..self.value_len]);
        match self.field {
            Field::Other => {}
            Field::ContentLength => {
                if self.cl.is_some() {
                    return self.fail(Violation::DuplicateCl);
                }
                match parse_decimal(value) {
                    Some(n) => self.cl = Some(n),
                    None => self.fail(Violation::BadCl),
                }
            }
            Field::TransferEncoding => {
                if self.te || !value.eq_ignore_ascii_case(b"chunked") {
                    return self.fail(Violation::BadTe);
                }
                self.te = true;
            }
        }
    }

    fn end_head(&mut self) {
        if self.te && self.cl.is_some() {
            return self.fail(Violation::ClAndTe);
        }
        if self.te && self.http10 {
            return self.fail(Violation::TeInHttp10);
        }
        self.heads += 1;
        self.state = if self.te {
            State::ChunkSize { digits: 0, size: 0 }
        } else {
            match self.cl {
                Some(n) if n > 0 => State::BodyFixed(n),
                _ => State::Idle,
            }
        };
    }
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// 1*DIGIT, at most 19 digits (fits a u64 without overflow).
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
