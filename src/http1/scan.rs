//! A message head read in one pass: line endings, obsolete folding, field
//! names and the framing fields (RFC 9112 §2.2, §5, §6), with the same
//! rules and the same first-finding order as the listener's framing
//! scanner; the request or status line and the field values held to
//! `httparse`'s syntax (a differential test keeps the two in step); and
//! each field recorded as it is read: name and value spans and what the
//! proxy makes of the name ([`Kind`]), so nothing reads the head again.
//!
//! The scan is incremental: it resumes where the previous call stopped, so
//! a head arriving a byte at a time is read once, not re-parsed per read.
//! The request or status line is found with `memchr2`; a field line in one
//! pass, eight bytes at a time (its name while letters, digits and `-`; its
//! value to its CR or LF, bad bytes found on the way).
//!
//! Findings of the line scan end the head at once; what `httparse` would
//! refuse (a malformed first line or value, too many fields) is held until
//! the head is complete, so that a later line-scan finding still wins, as
//! it did when the two ran one after the other.

use super::error::Violation;
use super::fields::{kind, Kind};
use super::{Field, Span, MAX_FIELDS};

const CR: u8 = b'\r';
const LF: u8 = b'\n';
/// Longest Content-Length or Transfer-Encoding value read (as the framing
/// scanner: anything longer is invalid anyway).
const VALUE_CAP: usize = 24;

/// Where a head scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// More bytes are needed.
    Partial,
    /// The head is `bytes[start..end]` (`end` after its empty line; empty
    /// lines before `start` were skipped).
    Complete { start: usize, end: usize },
    /// The connection opens with the HTTP/2 preface.
    Preface,
}

/// The framing fields of a complete head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framing {
    pub content_length: Option<u64>,
    pub chunked: bool,
    pub http10: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Request,
    Response,
}

/// The first line of a complete head: a request line's method and
/// target, or a status line's code and reason; the version's minor digit.
#[derive(Debug, Default, Clone, Copy)]
pub struct FirstLine {
    pub method: Span,
    pub target: Span,
    pub status: u16,
    pub reason: Span,
    pub minor: u8,
}

/// Scan state of one head. `Default` is a fresh head.
#[derive(Debug, Default, Clone)]
pub struct HeadScan {
    started: bool,
    start: usize,
    /// Next byte to look at (offsets are into the bytes fed, which begin
    /// at the same place on every call for one head).
    pos: usize,
    line_start: usize,
    first_line_done: bool,
    framing: Framing,
    first: FirstLine,
    /// What `httparse` would have refused first, reported once the head
    /// is complete (see the module doc).
    held: Option<Violation>,
}

impl HeadScan {
    /// The framing fields; meaningful once the scan is complete.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The first line; meaningful once the scan is complete.
    pub fn first_line(&self) -> FirstLine {
        self.first
    }

    /// Reads `bytes` (the same start as the previous call, possibly more
    /// at the end). `max` bounds the head from its first line on; `first`
    /// says this is a connection's first head (where the HTTP/2 preface
    /// may come).
    /// The head's fields are recorded into `fields` (cleared when the
    /// head starts).
    pub fn scan(
        &mut self,
        bytes: &[u8],
        max: usize,
        role: Role,
        first: bool,
        fields: &mut Vec<Field>,
    ) -> Result<Scanned, Violation> {
        if !self.started {
            // RFC 9112 §2.2: empty lines before a request line are ignored
            // (and a backend's stray CRLF before a status line likewise).
            loop {
                match bytes.get(self.pos) {
                    None => return Ok(Scanned::Partial),
                    Some(&CR) => match bytes.get(self.pos + 1) {
                        None => return Ok(Scanned::Partial),
                        Some(&LF) => self.pos += 2,
                        Some(_) => return Err(Violation::BareCr),
                    },
                    Some(&LF) => return Err(Violation::BareLf),
                    Some(_) => break,
                }
            }
            self.started = true;
            self.start = self.pos;
            self.line_start = self.pos;
            fields.clear();
        }
        let limit = bytes.len().min(self.start.saturating_add(max));
        let cut = limit < bytes.len();
        loop {
            let (end, colon) = if self.first_line_done {
                self.field_line(bytes, limit)?
            } else {
                let end = match memchr::memchr2(CR, LF, &bytes[self.pos..limit]) {
                    Some(off) => self.pos + off,
                    None => limit,
                };
                if role == Role::Request
                    && first
                    && bytes[self.line_start..end].starts_with(b"PRI ")
                {
                    return Ok(Scanned::Preface);
                }
                (end, None)
            };
            let line = &bytes[self.line_start..end];
            if end == limit {
                self.pos = limit;
                return if cut {
                    Err(Violation::HeadTooLarge)
                } else {
                    Ok(Scanned::Partial)
                };
            }
            if bytes[end] == LF {
                return Err(Violation::BareLf);
            }
            if end + 1 >= limit {
                if cut {
                    return Err(Violation::HeadTooLarge);
                }
                // Look at this CR again when more bytes come.
                self.pos = end;
                return Ok(Scanned::Partial);
            }
            if bytes[end + 1] != LF {
                return Err(Violation::BareCr);
            }
            let line_at = self.line_start;
            self.pos = end + 2;
            self.line_start = self.pos;
            if !self.first_line_done {
                self.first_line_done = true;
                self.framing.http10 = match role {
                    Role::Request => line.ends_with(b"HTTP/1.0"),
                    Role::Response => line.starts_with(b"HTTP/1.0"),
                };
                let parsed = match role {
                    Role::Request => request_line(line, line_at),
                    Role::Response => status_line(line, line_at),
                };
                match parsed {
                    Some(l) => self.first = l,
                    None => self.hold(Violation::Malformed),
                }
            } else if line.is_empty() {
                let f = self.framing;
                // A response with both is read as chunked (RFC 9112 §6.3:
                // Transfer-Encoding overrides), as hyper's client reads it,
                // and its Content-Length is not forwarded; a request with
                // both is refused (the smuggling table).
                if f.chunked && f.content_length.is_some() && role == Role::Request {
                    return Err(Violation::ClAndTe);
                }
                if f.chunked && f.http10 {
                    return Err(Violation::TeInHttp10);
                }
                if let Some(v) = self.held {
                    return Err(v);
                }
                return Ok(Scanned::Complete {
                    start: self.start,
                    end: self.pos,
                });
            } else {
                self.end_field(line, line_at, colon, fields)?;
            }
        }
    }

    /// Holds `v` unless an earlier one is held.
    fn hold(&mut self, v: Violation) {
        self.held.get_or_insert(v);
    }

    /// Where the field line at `line_start` ends (its CR or LF; `limit`
    /// when not here yet) and where its name's colon is, with the checks
    /// a field line gets as its bytes arrive, in byte order: no folding, a
    /// token name ended by `:`, a short framing value; a value byte no
    /// value may hold is held as `httparse` would refuse it. One pass: the
    /// name a byte at a time, the value eight bytes at a time, looking for
    /// its end and its bad bytes at once.
    fn field_line(
        &mut self,
        bytes: &[u8],
        limit: usize,
    ) -> Result<(usize, Option<usize>), Violation> {
        let at = self.line_start;
        let rest = &bytes[at..limit];
        match rest.first() {
            None => return Ok((limit, None)),
            Some(b' ' | b'\t') => return Err(Violation::ObsFold),
            // The empty line that ends the head (or a bare LF).
            Some(&CR | &LF) => return Ok((at, None)),
            Some(_) => {}
        }
        // `:` is not a token character: the first non-token byte is the
        // colon, or a bad name (a CR or LF ends a name without its colon).
        let Some(colon) = token_end(rest) else {
            return Ok((limit, None));
        };
        if rest[colon] != b':' || colon == 0 {
            return Err(Violation::BadFieldName);
        }
        let value_at = at + colon + 1;
        // Resumed where the previous call stopped, when it did in the value.
        let mut from = value_at.max(self.pos);
        let end = loop {
            match find_ctl(&bytes[from..limit]) {
                None => break limit,
                Some(off) => match bytes[from + off] {
                    CR | LF => break from + off,
                    b'\t' => from += off + 1,
                    _ => {
                        self.hold(Violation::Malformed);
                        from += off + 1;
                    }
                },
            }
        };
        if end - value_at > VALUE_CAP {
            match kind(&rest[..colon]) {
                Kind::ContentLength => return Err(Violation::BadCl),
                Kind::TransferEncoding => return Err(Violation::BadTe),
                _ => {}
            }
        }
        Ok((end, Some(colon)))
    }

    /// A complete field line (at `at` in the bytes): its framing value
    /// checked and the field recorded (its value's syntax was checked as
    /// its end was found).
    fn end_field(
        &mut self,
        line: &[u8],
        at: usize,
        colon: Option<usize>,
        fields: &mut Vec<Field>,
    ) -> Result<(), Violation> {
        let Some(colon) = colon else {
            return Err(Violation::BadFieldName);
        };
        // The value without the whitespace around it.
        let (mut start, mut end) = (colon + 1, line.len());
        while start < end && matches!(line[start], b' ' | b'\t') {
            start += 1;
        }
        while end > start && matches!(line[end - 1], b' ' | b'\t') {
            end -= 1;
        }
        let value = &line[start..end];
        let k = kind(&line[..colon]);
        match k {
            Kind::ContentLength => {
                if self.framing.content_length.is_some() {
                    return Err(Violation::DuplicateCl);
                }
                let n = parse_decimal(value).ok_or(Violation::BadCl)?;
                self.framing.content_length = Some(n);
            }
            Kind::TransferEncoding => {
                if self.framing.chunked || !value.eq_ignore_ascii_case(b"chunked") {
                    return Err(Violation::BadTe);
                }
                self.framing.chunked = true;
            }
            _ => {}
        }
        if fields.len() == MAX_FIELDS {
            self.hold(Violation::TooManyFields);
            return Ok(());
        }
        fields.push(Field {
            name: Span::at(at, colon),
            value: Span::at(at + start, value.len()),
            kind: k,
        });
        Ok(())
    }
}

/// `method SP target SP HTTP/1.x`, as `httparse` reads it: a token, a
/// target of visible ASCII or UTF-8, one space each.
fn request_line(line: &[u8], at: usize) -> Option<FirstLine> {
    let sp = line.iter().position(|&b| !TCHAR[usize::from(b)])?;
    if sp == 0 || line[sp] != b' ' {
        return None;
    }
    let rest = &line[sp + 1..];
    let len = rest.iter().position(|&b| !URI[usize::from(b)])?;
    if len == 0 || rest[len] != b' ' {
        return None;
    }
    let target = &rest[..len];
    if !target.is_ascii() && std::str::from_utf8(target).is_err() {
        return None;
    }
    Some(FirstLine {
        method: Span::at(at, sp),
        target: Span::at(at + sp + 1, len),
        minor: version(&rest[len + 1..])?,
        ..FirstLine::default()
    })
}

/// `HTTP/1.x SP 3DIGIT [SP reason]`, as `httparse` reads it (a reason
/// with obs-text reads as empty).
fn status_line(line: &[u8], at: usize) -> Option<FirstLine> {
    let minor = version(line.get(..8)?)?;
    let [b' ', d @ ..] = line.get(8..12)? else {
        return None;
    };
    let mut status = 0u16;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        status = status * 10 + u16::from(c - b'0');
    }
    let reason = match &line[12..] {
        [] => Span::at(at + 12, 0),
        [b' ', r @ ..] => {
            if !is_value(r) {
                return None;
            }
            let len = if r.is_ascii() { r.len() } else { 0 };
            Span::at(at + 13, len)
        }
        _ => return None,
    };
    Some(FirstLine {
        status,
        reason,
        minor,
        ..FirstLine::default()
    })
}

fn version(v: &[u8]) -> Option<u8> {
    match v {
        b"HTTP/1.1" => Some(1),
        b"HTTP/1.0" => Some(0),
        _ => None,
    }
}

/// Are all of `v`'s bytes [`VALUE`] bytes? Eight at a time: a word with
/// no byte below 0x20 and none equal to 0x7f needs no closer look (the
/// usual case: values are printable), one with such a byte (a tab, or a
/// control character) is looked at byte by byte.
fn is_value(v: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = v.chunks_exact(8);
    for w in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(w) else {
            return false;
        };
        let x = u64::from_le_bytes(bytes);
        // Some byte below 0x20 (bytes of 0x80 and up never count).
        let low = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        // Some byte equal to 0x7f.
        let d = x ^ (ONES * 0x7f);
        let del = d.wrapping_sub(ONES) & !d & HIGH;
        if low | del != 0 && !w.iter().all(|&b| VALUE[usize::from(b)]) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| VALUE[usize::from(b)])
}

/// Where the first byte of `v` that is not a token character is (a field
/// name's end): eight bytes at a time while they are letters, digits and
/// `-` (the names clients and servers send), then byte by byte.
fn token_end(v: &[u8]) -> Option<usize> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    for w in v.chunks_exact(8) {
        let Ok(bytes) = <[u8; 8]>::try_from(w) else {
            break;
        };
        let other = !usual(u64::from_le_bytes(bytes)) & HIGH;
        if other != 0 {
            i += (other.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    v[i..]
        .iter()
        .position(|&b| !TCHAR[usize::from(b)])
        .map(|p| i + p)
}

/// The high bit of each byte of `x` that is an ASCII letter, digit or `-`,
/// exactly (seven-bit sums: no carry reaches the next byte).
fn usual(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let t = x & !HIGH;
    // High bit set: the byte is at least `lo`; the byte is above `hi`.
    let at_least = |v: u64, lo: u8| v + ONES * u64::from(0x80 - lo);
    let above = |v: u64, hi: u8| v + ONES * u64::from(0x7f - hi);
    let folded = t | (ONES * 0x20);
    let letter = at_least(folded, b'a') & !above(folded, b'z');
    let digit = at_least(t, b'0') & !above(t, b'9');
    let dash = !((t ^ (ONES * u64::from(b'-'))) + ONES * 0x7f);
    (letter | digit | dash) & !x & HIGH
}

/// Where the first byte below 0x20 or equal to 0x7f is in `v` (a line's
/// CR or LF, a tab, or a byte no value may hold), eight bytes at a time.
/// The lowest byte a word flags is exact: a borrow only ever reaches the
/// bytes above a flagged one.
fn find_ctl(v: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = v.chunks_exact(8);
    let mut i = 0;
    for w in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(w) else {
            break;
        };
        let x = u64::from_le_bytes(bytes);
        let low = x.wrapping_sub(ONES * 0x20) & !x;
        let d = x ^ (ONES * 0x7f);
        let del = d.wrapping_sub(ONES) & !d;
        let m = (low | del) & HIGH;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = words.remainder();
    rest.iter()
        .position(|&b| b < 0x20 || b == 0x7f)
        .map(|p| v.len() - rest.len() + p)
}

/// Field value bytes (and a reason phrase's): HTAB, SP, VCHAR, obs-text.
static VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b == 0x09 || (b >= 0x20 && b != 0x7f);
        b += 1;
    }
    t
};

/// A request target's bytes as `httparse` takes them: visible ASCII and
/// any byte of a UTF-8 sequence.
static URI: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b >= 0x21 && b <= 0x7e) || b >= 0x80;
        b += 1;
    }
    t
};

/// RFC 9110 token characters, one look-up per byte.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

pub fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// 1*DIGIT, at most 19 digits (fits a u64 without overflow).
pub fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
#[path = "scan_differential_tests.rs"]
mod differential;

#[cfg(test)]
mod value_tests {
    use super::{find_ctl, is_value, token_end, TCHAR, VALUE};

    #[test]
    fn words_find_what_bytes_find() {
        // Every byte at every place of a 19-byte name or value (two words
        // and a remainder), the rest usual.
        for b in 0..=255u8 {
            for at in 0..19 {
                let mut v = *b"Content-Type-x01234";
                v[at] = b;
                let slow = v.iter().position(|&c| !TCHAR[usize::from(c)]);
                assert_eq!(token_end(&v), slow, "byte {b:#x} at {at}");
                let mut w = *b"text/html; q=0.9, *";
                w[at] = b;
                let slow = w.iter().position(|&c| c < 0x20 || c == 0x7f);
                assert_eq!(find_ctl(&w), slow, "byte {b:#x} at {at}");
            }
        }
        assert_eq!(token_end(b"Host: a"), Some(4));
        assert_eq!(token_end(b"host"), None);
        assert_eq!(find_ctl(b"a\tb\r\n"), Some(1));
    }

    #[test]
    fn words_and_bytes_agree() {
        // Every byte at every place of a 19-byte value (two words and a
        // remainder), in a value otherwise printable.
        for b in 0..=255u8 {
            for at in 0..19 {
                let mut v = *b"abcdefghijklmnopqrs";
                v[at] = b;
                assert_eq!(is_value(&v), VALUE[usize::from(b)], "byte {b:#x} at {at}");
            }
        }
        assert!(is_value(b""));
        assert!(is_value("caf\u{e9} \t ok".as_bytes()));
    }
}
