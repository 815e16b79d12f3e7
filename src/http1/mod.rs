//! farmgate's own HTTP/1.1 engine for proxied traffic: the protocol only,
//! no sockets policy and nothing from the rest of farmgate.
//!
//! In the spirit of nginx, HAProxy and Pingora's `protocols::http::v1`:
//! heads are parsed in place ([`request`], [`response`]) into a
//! connection's buffer ([`buffer`]) that is reused for every request on it,
//! fields kept as spans of that buffer; the upstream request head and the
//! client's response head are written into one buffer each straight from
//! the parsed heads ([`upstream`], [`downstream`]); bodies are framed by a
//! streaming chunked decoder and encoder and a Content-Length count
//! ([`body`]); `Date` is formatted once a second ([`date`]). The framing
//! rules are the strict ones of `listener::framing` (the smuggling table),
//! with the same statuses ([`Violation`]). In the common case nothing
//! here allocates per request (`tests/http1_allocations.rs` counts).
//!
//! Connections are driven from above: the client's read loop in
//! `listener/engine.rs`, the backend exchange in `proxy/fast.rs`; see
//! docs/performance.md, "HTTP/1 fast path on the request path".

pub mod body;
pub mod buffer;
pub mod date;
pub mod downstream;
pub mod error;
mod fields;
pub mod io;
pub mod request;
pub mod response;
mod scan;
pub mod timer;
pub mod upstream;

pub use body::{BodyKind, ChunkedDecoder, Piece};
pub use buffer::ReadBuf;
pub use error::Violation;
/// What a field name is to the proxy (hop-by-hop, framing, forwarding):
/// one length switch and one case-blind compare.
pub use fields::{kind as field_kind, Kind as FieldKind};
pub use request::{Parsed, RequestHead, RequestParser};
pub use response::{ResponseHead, ResponseParser};

/// The most header fields a head may carry (hyper's limit too); more is
/// answered 431.
pub const MAX_FIELDS: usize = 100;

/// A byte range of the bytes a head was parsed from (heads are far below
/// 4 GiB: the head limit bounds them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `len` bytes from `start`.
    fn at(start: usize, len: usize) -> Span {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        Span {
            start,
            end: start.saturating_add(u32::try_from(len).unwrap_or(u32::MAX)),
        }
    }

    fn get(self, whole: &[u8]) -> &[u8] {
        whole.get(self.range()).unwrap_or_default()
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One header field: name and value spans, and what the name is to the
/// proxy.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: Span,
    value: Span,
    kind: fields::Kind,
}

/// The comma-separated tokens of a list field, trimmed, empty ones skipped.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(scan::trim_ows)
        .filter(|t| !t.is_empty())
}
