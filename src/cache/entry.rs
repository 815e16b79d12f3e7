//! A stored response: status, head and body shared behind one `Arc`, with
//! what is needed to tell its age, freshness and validators. Bodies are one
//! `Bytes`, so a hit hands out a reference, never a copy.

use super::config::CacheSpec;
use super::control;
use super::policy::{Freshness, RequestPolicy};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long a stale response with a validator is kept for a cheap
/// conditional revalidation (nginx's `inactive` default).
pub const STALE_KEEP: Duration = Duration::from_secs(600);

/// Per-entry bookkeeping counted against `max_memory` besides head and body.
const OVERHEAD: usize = 256;

#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    /// The head as served: no Age (computed per hit), no Set-Cookie, no
    /// hop-by-hop fields, and an exact Content-Length.
    pub headers: HeaderMap,
    pub body: Bytes,
    pub freshness: Freshness,
    /// When the response head was received (for the resident time).
    pub received: Instant,
    /// After this the store may drop it: fresh time plus the time it is
    /// still useful stale (stale_if_error, revalidation).
    pub evict_at: Instant,
    /// The request headers the response varies on.
    pub vary: Box<[HeaderName]>,
    /// Head and identity body; encoded variants weigh in besides.
    pub weight: u32,
    /// Encoded forms of the body made for hits (`variants.rs`).
    pub variants: super::variants::Variants,
}

/// A response head as received from a backend, ready to be stored.
pub struct Received<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub freshness: Freshness,
    pub received: Instant,
    pub vary: Vec<HeaderName>,
}

impl Entry {
    pub fn new(head: Received<'_>, body: Bytes, spec: &CacheSpec) -> Arc<Entry> {
        let mut headers = shareable_head(head.headers);
        headers.remove(header::AGE);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        Entry::assemble(
            head.status,
            headers,
            body,
            head.freshness,
            head.received,
            head.vary.into(),
            spec,
        )
    }

    /// Builds an entry from parts already prepared for storing.
    pub fn assemble(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        freshness: Freshness,
        received: Instant,
        vary: Box<[HeaderName]>,
        spec: &CacheSpec,
    ) -> Arc<Entry> {
        let has_validator =
            headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
        let fresh_left = freshness.lifetime.saturating_sub(freshness.initial_age);
        let mut keep = Duration::ZERO;
        if !freshness.no_stale && !freshness.revalidate_always {
            keep = freshness
                .stale_if_error
                .unwrap_or(spec.stale_if_error)
                .max(freshness.stale_while_revalidate);
        }
        if has_validator {
            keep = keep.max(STALE_KEEP);
        }
        let head_bytes: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let weight = (body.len() + head_bytes + OVERHEAD).min(u32::MAX as usize) as u32;
        Arc::new(Entry {
            status,
            headers,
            body,
            freshness,
            received,
            // Saturates rather than panics on absurd lifetimes.
            evict_at: received
                .checked_add(fresh_left.saturating_add(keep))
                .unwrap_or(received + Duration::from_secs(super::control::DELTA_MAX)),
            vary,
            weight,
            variants: Default::default(),
        })
    }

    /// The current age (§4.2.3).
    #[inline]
    pub fn age(&self) -> Duration {
        self.freshness.initial_age + self.received.elapsed()
    }

    /// May this entry answer `req` without asking the backend?
    #[inline]
    pub fn fresh_for(&self, req: &RequestPolicy) -> bool {
        self.freshness.fresh_for(self.age(), req)
    }

    /// Stale but within its stale-while-revalidate window for `req`.
    pub fn within_swr(&self, req: &RequestPolicy) -> bool {
        self.freshness.within_swr(self.age(), req)
    }

    /// May this entry stand in, stale, for a failing farm?
    pub fn usable_on_error(&self, spec: &CacheSpec) -> bool {
        self.freshness
            .usable_on_error(self.age(), spec.stale_if_error)
    }

    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(header::ETAG)
    }

    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(header::LAST_MODIFIED)
    }

    pub fn has_validator(&self) -> bool {
        self.etag().is_some() || self.last_modified().is_some()
    }

    /// The date If-Modified-Since is compared with: Last-Modified, or Date.
    pub fn modified_time(&self) -> Option<SystemTime> {
        control::date(&self.headers, header::LAST_MODIFIED)
            .or_else(|| control::date(&self.headers, header::DATE))
    }
}

/// A backend's response head as other clients may see it: no Set-Cookie,
/// so one user's cookie never reaches another.
pub fn shareable_head(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.remove(header::SET_COOKIE);
    h
}
