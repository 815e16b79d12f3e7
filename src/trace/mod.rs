//! Trace context (`trace:`): every request gets a W3C trace context for its
//! hop through farmgate. A `traceparent` from a trusted source is continued
//! with a new span id (its `tracestate` passes through); from anyone else,
//! or when it is malformed, a new trace starts and whatever the client sent
//! is removed. The backend gets the hop's `traceparent`
//! (`proxy::headers::traceparent`), the access log the trace id, the client
//! the trace id in `response_header` when one is set, and a collector one
//! span per sampled request when `export` is set (`export.rs`, `otlp.rs`,
//! `client.rs`). Without a `trace:` section none of this runs.
//!
//! The ids themselves (and the header's format) are the ground's
//! (`ground::trace_context`), so the access log can carry them.

mod client;
pub mod export;
pub mod otlp;
pub mod spec;

pub use export::{Span, SpanExporter, SpanStats};
pub use spec::{ExportSpec, RawTrace, TraceSpec};

use crate::ground::trace_context::{parse_traceparent, TraceContext, SAMPLED};
use http::{HeaderMap, HeaderName};
use std::net::IpAddr;

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

impl TraceSpec {
    /// This hop's trace context for a request from `peer`. Removes the
    /// incoming `traceparent` (the hop writes its own), and `tracestate`
    /// too when the trace is not continued: it described another trace.
    #[inline]
    pub fn begin(&self, peer: IpAddr, headers: &mut HeaderMap) -> TraceContext {
        let trusted = !self.trusted.is_empty() && self.trusted.iter().any(|n| n.contains(&peer));
        // One `traceparent` field only: several are not a valid context.
        let parent = if trusted {
            let mut all = headers.get_all(&TRACEPARENT).iter();
            match (all.next(), all.next()) {
                (Some(v), None) => parse_traceparent(v.as_bytes()),
                _ => None,
            }
        } else {
            None
        };
        headers.remove(&TRACEPARENT);
        match parent {
            Some(p) => TraceContext::continued(p),
            None => {
                headers.remove(&TRACESTATE);
                let mut ctx = TraceContext::start(true);
                if self.sample_below != u64::MAX && low_bits(&ctx) >= self.sample_below {
                    ctx.flags &= !SAMPLED;
                }
                ctx
            }
        }
    }
}

/// The trace id's random low 8 bytes, for the ratio sampler.
fn low_bits(ctx: &TraceContext) -> u64 {
    let mut low = [0u8; 8];
    low.copy_from_slice(&ctx.trace_id[8..]);
    u64::from_be_bytes(low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn spec(trusted: &[&str], ratio: f64) -> TraceSpec {
        let raw = RawTrace {
            trusted_sources: trusted.iter().map(|s| s.to_string()).collect(),
            sample_ratio: Some(ratio),
            ..RawTrace::default()
        };
        let mut p = crate::ground::error::Problems::default();
        spec::build(&raw, &mut p)
    }

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(PARENT));
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        h
    }

    #[test]
    fn continues_a_trusted_parent_and_keeps_its_state() {
        let s = spec(&["10.0.0.0/8"], 1.0);
        let mut h = headers();
        let ctx = s.begin("10.1.2.3".parse().expect("ip"), &mut h);
        assert_eq!(&ctx.trace_id_hex(), b"4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(ctx.parent_id.is_some() && ctx.sampled());
        assert!(!h.contains_key(&TRACEPARENT));
        assert_eq!(h[&TRACESTATE], "vendor=1");
    }

    #[test]
    fn restarts_an_untrusted_parent_and_drops_its_state() {
        let s = spec(&["10.0.0.0/8"], 1.0);
        let mut h = headers();
        let ctx = s.begin("192.0.2.1".parse().expect("ip"), &mut h);
        assert_ne!(&ctx.trace_id_hex(), b"4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_id, None);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn two_traceparent_fields_are_not_continued() {
        let s = spec(&["10.0.0.0/8"], 1.0);
        let mut h = headers();
        h.append(&TRACEPARENT, HeaderValue::from_static(PARENT));
        let ctx = s.begin("10.1.2.3".parse().expect("ip"), &mut h);
        assert_eq!(ctx.parent_id, None);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn ratio_samples_about_that_share_of_new_traces() {
        let s = spec(&[], 0.25);
        let ip = "192.0.2.1".parse().expect("ip");
        let sampled = (0..4000)
            .filter(|_| s.begin(ip, &mut HeaderMap::new()).sampled())
            .count();
        assert!((800..1200).contains(&sampled), "{sampled}");
        let none = spec(&[], 0.0);
        assert!(!none.begin(ip, &mut HeaderMap::new()).sampled());
    }
}
