//! A backend's response head, parsed in place like a request head, in one
//! pass (`scan.rs`): status, reason and fields as spans of the backend
//! connection's buffer; and how the body is delimited,
//! which also depends on the request (HEAD) and the status (1xx, 204,
//! 304). A backend's framing is held to the same rules as a client's: a
//! response that two readers could frame differently is refused (502 by
//! the caller), never forwarded.

use super::error::Violation;
use super::scan::{HeadScan, Role, Scanned};
use super::{BodyKind, Field, Span};

/// Fields a backend connection's table keeps room for between responses
/// (20 bytes each).
const FIELDS_KEPT: usize = 24;

/// Reads response heads off one backend connection.
#[derive(Debug)]
pub struct ResponseParser {
    max_head: usize,
    scan: HeadScan,
    done: bool,
    status: u16,
    reason: Span,
    minor: u8,
    fields: Vec<Field>,
    body: BodyKind,
    content_length: Option<u64>,
}

impl ResponseParser {
    pub fn new(max_head: usize) -> Self {
        ResponseParser {
            max_head,
            scan: HeadScan::default(),
            done: false,
            status: 0,
            reason: Span::default(),
            minor: 1,
            fields: Vec::with_capacity(FIELDS_KEPT),
            body: BodyKind::None,
            content_length: None,
        }
    }

    /// Reads the next head from `bytes` (same contract as the request
    /// parser's `parse`): `Some(len)` once complete. `head_request`: the
    /// request was HEAD, so no body follows whatever the fields say.
    pub fn parse(&mut self, bytes: &[u8], head_request: bool) -> Result<Option<usize>, Violation> {
        if self.done {
            self.scan = HeadScan::default();
            self.done = false;
        }
        let end = match self.scan.scan(
            bytes,
            self.max_head,
            Role::Response,
            false,
            &mut self.fields,
        )? {
            Scanned::Partial | Scanned::Preface => return Ok(None),
            Scanned::Complete { end, .. } => end,
        };
        let line = self.scan.first_line();
        let code = line.status;
        if !(100..=999).contains(&code) {
            return Err(Violation::Malformed);
        }
        self.status = code;
        self.minor = line.minor;
        self.reason = line.reason;
        let framing = self.scan.framing();
        self.content_length = framing.content_length.filter(|_| !framing.chunked);
        // RFC 9112 §6.3, in its order.
        self.body = if head_request || code < 200 || code == 204 || code == 304 {
            BodyKind::None
        } else if framing.chunked {
            BodyKind::Chunked
        } else if let Some(n) = framing.content_length {
            if n == 0 {
                BodyKind::None
            } else {
                BodyKind::Length(n)
            }
        } else {
            BodyKind::UntilClose
        };
        self.done = true;
        Ok(Some(end))
    }

    pub fn head<'a>(&'a self, bytes: &'a [u8]) -> ResponseHead<'a> {
        ResponseHead { p: self, bytes }
    }

    /// Gives back a large field table's memory (a pooled connection keeps
    /// a small one: refilling it on every request would allocate twice).
    pub fn release(&mut self) {
        self.fields.clear();
        self.fields.shrink_to(FIELDS_KEPT);
    }
}

/// A parsed response head: views into the backend connection's buffer.
#[derive(Clone, Copy)]
pub struct ResponseHead<'a> {
    p: &'a ResponseParser,
    bytes: &'a [u8],
}

impl<'a> ResponseHead<'a> {
    pub fn status(&self) -> u16 {
        self.p.status
    }

    pub fn reason(&self) -> &'a [u8] {
        self.p.reason.get(self.bytes)
    }

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

    /// An interim response (1xx other than 101): the final one follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.p.status) && self.p.status != 101
    }

    pub fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let bytes = self.bytes;
        self.p
            .fields
            .iter()
            .map(move |f| (f.name.get(bytes), f.value.get(bytes)))
    }

    /// The fields as spans of [`bytes`](Self::bytes), with their kinds.
    pub(super) fn spans(&self) -> impl Iterator<Item = super::Field> + 'a {
        self.p.fields.iter().copied()
    }

    /// The bytes the head was parsed from.
    pub(super) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The first `Keep-Alive` field's value (the server's idle timeout).
    pub fn keep_alive_value(&self) -> Option<&'a [u8]> {
        self.valued(super::fields::Kind::KeepAlive).next()
    }

    /// The values of the fields of kind `kind` (the others' bytes are not
    /// touched: the kinds were told when the head was read).
    fn valued(&self, kind: super::fields::Kind) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = self.bytes;
        self.p
            .fields
            .iter()
            .filter(move |f| f.kind == kind)
            .map(move |f| f.value.get(bytes))
    }

    pub fn field(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// May the backend connection be reused after this response? Not
    /// when the body runs until close, nor on `Connection: close`, nor
    /// from HTTP/1.0 without `keep-alive`.
    pub fn reusable(&self) -> bool {
        if self.p.body == BodyKind::UntilClose {
            return false;
        }
        let (mut close, mut keep) = (false, false);
        for v in self.valued(super::fields::Kind::Connection) {
            // The usual value, without splitting it into tokens.
            if v.eq_ignore_ascii_case(b"keep-alive") {
                keep = true;
                continue;
            }
            for t in super::tokens(v) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        !close && (self.p.minor == 1 || keep)
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
