//! W3C Trace Context values (<https://www.w3.org/TR/trace-context/>): the
//! trace and span ids of one request's hop through farmgate, the
//! `traceparent` header read and written, ids drawn fresh.
//!
//! Ids come from the thread's `fastrand` generator (wyrand, seeded per
//! thread from the standard library's randomly keyed hasher): no lock, no
//! allocation, a few nanoseconds an id. They are unique, not secret, which
//! is what the spec asks of them.

use std::fmt;

/// The `traceparent` header as written: `00-{trace}-{span}-{flags}`.
pub const TRACEPARENT_LEN: usize = 55;

/// The `sampled` trace flag.
pub const SAMPLED: u8 = 0x01;

/// One hop's trace context: the trace it belongs to, this hop's own span,
/// and the span that called it (when the trace was continued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// This hop's span: the parent id the backend sees.
    pub span_id: [u8; 8],
    /// The caller's span, from a continued `traceparent`.
    pub parent_id: Option<[u8; 8]>,
    pub flags: u8,
}

/// A valid incoming `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceContext {
    /// A new trace, with this hop as its root span.
    #[inline]
    pub fn start(sampled: bool) -> Self {
        TraceContext {
            trace_id: trace_id(),
            span_id: span_id(),
            parent_id: None,
            flags: if sampled { SAMPLED } else { 0 },
        }
    }

    /// The trace `parent` belongs to, with a new span for this hop.
    #[inline]
    pub fn continued(parent: Parent) -> Self {
        TraceContext {
            trace_id: parent.trace_id,
            span_id: span_id(),
            parent_id: Some(parent.parent_id),
            // Only the flags version 00 defines go on (sampled, random).
            flags: parent.flags & 0x03,
        }
    }

    #[inline]
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The `traceparent` value for the next hop: this hop's span is its parent.
    #[inline]
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[..2].copy_from_slice(b"00");
        hex_into(&mut out[3..35], &self.trace_id);
        hex_into(&mut out[36..52], &self.span_id);
        hex_into(&mut out[53..55], &[self.flags]);
        out
    }

    /// The trace id as 32 lowercase hex digits.
    #[inline]
    pub fn trace_id_hex(&self) -> [u8; 32] {
        let mut out = [0; 32];
        hex_into(&mut out, &self.trace_id);
        out
    }
}

/// Reads a `traceparent` value; `None` when it is malformed or names the
/// invalid all-zero ids (the caller then starts a new trace). Versions
/// above 00 are read as 00 when their first fields have its shape, as the
/// spec asks.
pub fn parse_traceparent(v: &[u8]) -> Option<Parent> {
    let field = |range: std::ops::Range<usize>| v.get(range).and_then(unhex);
    if v.len() < TRACEPARENT_LEN || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = field(0..2)?;
    match (version.first(), v.len()) {
        (Some(0), TRACEPARENT_LEN) => {}
        // 0xff is forbidden; a later version may add fields after a dash.
        (Some(&ver), n) if ver != 0 && ver != 0xff && (n == 55 || v[55] == b'-') => {}
        _ => return None,
    }
    let trace = field(3..35)?;
    let parent = field(36..52)?;
    let flags = *field(53..55)?.first()?;
    let mut p = Parent {
        trace_id: [0; 16],
        parent_id: [0; 8],
        flags,
    };
    p.trace_id.copy_from_slice(&trace);
    p.parent_id.copy_from_slice(&parent);
    (p.trace_id != [0; 16] && p.parent_id != [0; 8]).then_some(p)
}

/// Lowercase hex digits (the spec refuses uppercase) to bytes.
fn unhex(s: &[u8]) -> Option<smallvec::SmallVec<[u8; 16]>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    s.chunks_exact(2)
        .map(|d| Some((digit(d[0])? << 4) | digit(d[1])?))
        .collect()
}

/// Writes `src` as lowercase hex into `dst` (twice its length).
#[inline]
pub fn hex_into(dst: &mut [u8], src: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in dst.chunks_exact_mut(2).zip(src) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// Bytes shown as lowercase hex (log lines, exported spans).
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

// Full-range draws: a ranged one (`u64(1..)`) pays a division per call to
// stay unbiased; an all-zero draw is redrawn instead (one in 2^64).

/// A fresh trace id, never the invalid all-zero one.
fn trace_id() -> [u8; 16] {
    loop {
        let (hi, lo) = (fastrand::u64(..), fastrand::u64(..));
        if hi | lo != 0 {
            return ((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes();
        }
    }
}

/// A fresh span id, never the invalid all-zero one.
fn span_id() -> [u8; 8] {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_and_writes_the_spec_example() {
        let p = parse_traceparent(SAMPLE).expect("valid");
        assert_eq!(
            Hex(&p.trace_id).to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(Hex(&p.parent_id).to_string(), "00f067aa0ba902b7");
        assert_eq!(p.flags, 1);
        let ctx = TraceContext::continued(p);
        assert_eq!(ctx.parent_id, Some(p.parent_id));
        assert_ne!(ctx.span_id, p.parent_id);
        let out = ctx.traceparent();
        assert_eq!(&out[..36], &SAMPLE[..36], "same version and trace id");
        assert_eq!(&out[52..], b"-01");
        assert_eq!(
            parse_traceparent(&out).map(|p| p.parent_id),
            Some(ctx.span_id)
        );
        assert_eq!(&ctx.trace_id_hex(), b"4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        let bad: [&[u8]; 9] = [
            b"",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ];
        for v in bad {
            assert_eq!(parse_traceparent(v), None, "{}", String::from_utf8_lossy(v));
        }
        // A later version with more fields is read as version 00.
        let later = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future";
        assert!(parse_traceparent(later).is_some());
    }

    #[test]
    fn new_ids_are_valid_and_differ() {
        let (a, b) = (TraceContext::start(true), TraceContext::start(false));
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        assert!(a.sampled() && !b.sampled());
        assert_eq!(a.parent_id, None);
        let p = parse_traceparent(&b.traceparent()).expect("our own header reads back");
        assert_eq!(
            (p.trace_id, p.parent_id, p.flags),
            (b.trace_id, b.span_id, 0)
        );
    }
}
