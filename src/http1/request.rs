//! A client's request head, parsed in place in one pass (`scan.rs`): the
//! method, target and fields are kept as spans of the connection's buffer,
//! in a field table the connection reuses for every request.

use super::error::Violation;
use super::scan::{HeadScan, Role, Scanned};
use super::{BodyKind, Field, Span};

/// What [`RequestParser::parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A head of this many bytes (with any empty lines before it); the
    /// body, or the next request, follows.
    Head(usize),
    /// The client speaks HTTP/2 (prior knowledge): hand the connection on.
    Http2Preface,
}

/// Reads request heads off one connection, one after another.
#[derive(Debug)]
pub struct RequestParser {
    max_head: usize,
    scan: HeadScan,
    /// Heads completed on this connection.
    heads: u64,
    done: bool,
    method: Span,
    target: Span,
    minor: u8,
    fields: Vec<Field>,
    body: BodyKind,
    content_length: Option<u64>,
}

impl RequestParser {
    /// `max_head`: the largest head accepted (answered 431 beyond).
    pub fn new(max_head: usize) -> Self {
        RequestParser {
            max_head,
            scan: HeadScan::default(),
            heads: 0,
            done: false,
            method: Span::default(),
            target: Span::default(),
            minor: 1,
            fields: Vec::new(),
            body: BodyKind::None,
            content_length: None,
        }
    }

    /// Reads the next head from `bytes`, which begin where this head
    /// begins: the same start on every call until it is complete (a
    /// partial head is resumed, not re-read). After `Head`, the next call
    /// starts a new head; the caller passes the bytes after this one's
    /// body.
    pub fn parse(&mut self, bytes: &[u8]) -> Result<Parsed, Violation> {
        if self.done {
            self.scan = HeadScan::default();
            self.done = false;
        }
        if self.fields.capacity() == 0 {
            self.fields = super::buffer::field_table();
        }
        let end = match self.scan.scan(
            bytes,
            self.max_head,
            Role::Request,
            self.heads == 0,
            &mut self.fields,
        )? {
            Scanned::Partial => return Ok(Parsed::Partial),
            Scanned::Preface => return Ok(Parsed::Http2Preface),
            Scanned::Complete { end, .. } => end,
        };
        let line = self.scan.first_line();
        self.method = line.method;
        self.target = line.target;
        self.minor = line.minor;
        let framing = self.scan.framing();
        self.content_length = framing.content_length;
        self.body = if framing.chunked {
            BodyKind::Chunked
        } else {
            match framing.content_length {
                Some(n) if n > 0 => BodyKind::Length(n),
                _ => BodyKind::None,
            }
        };
        self.heads += 1;
        self.done = true;
        Ok(Parsed::Head(end))
    }

    /// The head last parsed, read from the same `bytes` given to `parse`.
    pub fn head<'a>(&'a self, bytes: &'a [u8]) -> RequestHead<'a> {
        RequestHead { p: self, bytes }
    }

    /// Heads completed on this connection.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// Gives back the field table's memory (an idle connection holds none).
    pub fn release(&mut self) {
        super::buffer::recycle_fields(&mut self.fields);
    }
}

impl Drop for RequestParser {
    fn drop(&mut self) {
        super::buffer::recycle_fields(&mut self.fields);
    }
}

/// A parsed request head: views into the connection's buffer.
#[derive(Clone, Copy)]
pub struct RequestHead<'a> {
    p: &'a RequestParser,
    bytes: &'a [u8],
}

impl<'a> RequestHead<'a> {
    pub fn method(&self) -> &'a [u8] {
        self.p.method.get(self.bytes)
    }

    pub fn target(&self) -> &'a [u8] {
        self.p.target.get(self.bytes)
    }

    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn minor(&self) -> u8 {
        self.p.minor
    }

    pub fn body(&self) -> BodyKind {
        self.p.body
    }

    /// The Content-Length field's value, when there is one (checked: one
    /// field, a plain number).
    pub fn content_length(&self) -> Option<u64> {
        self.p.content_length
    }

    pub fn is_head_method(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// The fields in arrival order, as (name, value).
    pub fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let bytes = self.bytes;
        self.p
            .fields
            .iter()
            .map(move |f| (f.name.get(bytes), f.value.get(bytes)))
    }

    /// The target's place in the bytes the head was parsed from.
    pub fn target_range(&self) -> std::ops::Range<usize> {
        self.p.target.range()
    }

    /// The fields in arrival order, as (name, the value's place in the
    /// bytes the head was parsed from).
    pub fn field_ranges(&self) -> impl Iterator<Item = (&'a [u8], std::ops::Range<usize>)> + 'a {
        let bytes = self.bytes;
        self.p
            .fields
            .iter()
            .map(move |f| (f.name.get(bytes), f.value.range()))
    }

    /// The first value of a field (names compare without case).
    pub fn field(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Does the head carry an `Upgrade` field?
    pub fn has_upgrade(&self) -> bool {
        self.p
            .fields
            .iter()
            .any(|f| f.kind == super::fields::Kind::Upgrade)
    }

    /// Does the client wait for `100 Continue` (`Expect: 100-continue`)?
    pub fn expects_continue(&self) -> bool {
        self.p.fields.iter().any(|f| {
            f.kind == super::fields::Kind::Expect
                && f.value
                    .get(self.bytes)
                    .eq_ignore_ascii_case(b"100-continue")
        })
    }

    /// Does the client accept trailers (`TE: trailers`)?
    pub fn wants_trailers(&self) -> bool {
        self.p.fields.iter().any(|f| {
            f.kind == super::fields::Kind::Te
                && super::tokens(f.value.get(self.bytes))
                    .any(|t| t.eq_ignore_ascii_case(b"trailers"))
        })
    }

    /// May the connection carry another request after this one? HTTP/1.1
    /// unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let mut close = false;
        let mut keep = false;
        for f in &self.p.fields {
            if f.kind == super::fields::Kind::Connection {
                for t in super::tokens(f.value.get(self.bytes)) {
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        !close && (self.p.minor == 1 || keep)
    }
}

impl std::fmt::Debug for RequestHead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &String::from_utf8_lossy(self.method()))
            .field("target", &String::from_utf8_lossy(self.target()))
            .field("minor", &self.p.minor)
            .field("body", &self.p.body)
            .finish()
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
