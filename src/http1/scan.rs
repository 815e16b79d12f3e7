//! The strict reading of a message head's lines, before `httparse` builds
//! the head: line endings, obsolete folding, field names and the framing
//! fields (RFC 9112 §2.2, §5, §6), with the same rules and the same
//! first-finding order as the listener's framing scanner.
//!
//! The scan is incremental: it resumes where the previous call stopped, so
//! a head arriving a byte at a time is read once, not re-parsed per read.
//! Lines are found with one `memchr2` per line; only the first line, field
//! names and the values of Content-Length and Transfer-Encoding are looked
//! at byte by byte.

use super::error::Violation;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Other,
    ContentLength,
    TransferEncoding,
}

impl HeadScan {
    /// The framing fields; meaningful once the scan is complete.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Reads `bytes` (the same start as the previous call, possibly more
    /// at the end). `max` bounds the head from its first line on; `first`
    /// says this is a connection's first head (where the HTTP/2 preface
    /// may come).
    pub fn scan(
        &mut self,
        bytes: &[u8],
        max: usize,
        role: Role,
        first: bool,
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
        }
        let limit = bytes.len().min(self.start.saturating_add(max));
        let cut = limit < bytes.len();
        loop {
            let mut colon = None;
            let end = match memchr::memchr2(CR, LF, &bytes[self.pos..limit]) {
                Some(off) => self.pos + off,
                None => limit,
            };
            let line = &bytes[self.line_start..end];
            if !self.first_line_done {
                if role == Role::Request && first && line.starts_with(b"PRI ") {
                    return Ok(Scanned::Preface);
                }
            } else {
                colon = check_field_prefix(line, end < limit)?;
            }
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
            self.pos = end + 2;
            self.line_start = self.pos;
            if !self.first_line_done {
                self.first_line_done = true;
                self.framing.http10 = match role {
                    Role::Request => line.ends_with(b"HTTP/1.0"),
                    Role::Response => line.starts_with(b"HTTP/1.0"),
                };
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
                return Ok(Scanned::Complete {
                    start: self.start,
                    end: self.pos,
                });
            } else {
                self.end_field(line, colon)?;
            }
        }
    }

    /// A complete field line's framing value.
    fn end_field(&mut self, line: &[u8], colon: Option<usize>) -> Result<(), Violation> {
        let Some(colon) = colon else {
            return Err(Violation::BadFieldName);
        };
        let value = trim_ows(&line[colon + 1..]);
        match field_kind(&line[..colon]) {
            Field::Other => {}
            Field::ContentLength => {
                if self.framing.content_length.is_some() {
                    return Err(Violation::DuplicateCl);
                }
                let n = parse_decimal(value).ok_or(Violation::BadCl)?;
                self.framing.content_length = Some(n);
            }
            Field::TransferEncoding => {
                if self.framing.chunked || !value.eq_ignore_ascii_case(b"chunked") {
                    return Err(Violation::BadTe);
                }
                self.framing.chunked = true;
            }
        }
        Ok(())
    }
}

/// The checks a field line gets as its bytes arrive, in byte order: no
/// folding, a token name ended by `:`, a short framing value. `ended`: the
/// line's CR or LF is here (a name must have ended by then). Returns
/// where the name's colon is.
fn check_field_prefix(line: &[u8], ended: bool) -> Result<Option<usize>, Violation> {
    match line.first() {
        None => return Ok(None),
        Some(b' ' | b'\t') => return Err(Violation::ObsFold),
        Some(_) => {}
    }
    // `:` is not a token character: the first non-token byte is the
    // colon, or a bad name.
    let Some(colon) = line.iter().position(|&b| !TCHAR[usize::from(b)]) else {
        // All name so far; a CR or LF ends a name without its colon.
        return if ended {
            Err(Violation::BadFieldName)
        } else {
            Ok(None)
        };
    };
    if line[colon] != b':' || colon == 0 {
        return Err(Violation::BadFieldName);
    }
    if line.len() - colon - 1 > VALUE_CAP {
        match field_kind(&line[..colon]) {
            Field::Other => {}
            Field::ContentLength => return Err(Violation::BadCl),
            Field::TransferEncoding => return Err(Violation::BadTe),
        }
    }
    Ok(Some(colon))
}

fn field_kind(name: &[u8]) -> Field {
    if name.eq_ignore_ascii_case(b"content-length") {
        Field::ContentLength
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        Field::TransferEncoding
    } else {
        Field::Other
    }
}

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
