//! Client conditionals a cache answers itself (RFC 9110 §13.1,
//! RFC 9111 §4.3.2): If-None-Match (weak comparison, `*`) and, only when
//! there is no If-None-Match, If-Modified-Since. A match yields a 304 from
//! the cache without a body.

use super::control;
use http::header::{self, HeaderMap, HeaderValue};
use std::time::SystemTime;

/// The conditionals of one request.
#[derive(Debug, Default, Clone)]
pub struct Conditions {
    if_none_match: Vec<HeaderValue>,
    if_modified_since: Option<SystemTime>,
}

impl Conditions {
    pub fn from_headers(h: &HeaderMap) -> Conditions {
        let if_none_match: Vec<HeaderValue> =
            h.get_all(header::IF_NONE_MATCH).iter().cloned().collect();
        let if_modified_since = if if_none_match.is_empty() {
            control::date(h, header::IF_MODIFIED_SINCE)
        } else {
            None
        };
        Conditions {
            if_none_match,
            if_modified_since,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.if_none_match.is_empty() && self.if_modified_since.is_none()
    }

    /// Would the stored or fetched response with this `etag` and
    /// modification time answer these conditionals with 304?
    pub fn not_modified(&self, etag: Option<&HeaderValue>, modified: Option<SystemTime>) -> bool {
        if !self.if_none_match.is_empty() {
            return self.if_none_match.iter().any(|v| {
                let v = v.as_bytes();
                if v.trim_ascii() == b"*" {
                    return true;
                }
                let Some(etag) = etag.and_then(|e| opaque(e.as_bytes().trim_ascii())) else {
                    return false;
                };
                EntityTags(v).any(|t| t == etag)
            });
        }
        match (self.if_modified_since, modified) {
            (Some(since), Some(m)) => m <= since,
            _ => false,
        }
    }

    /// Answers from a response head: its ETag and Last-Modified (or Date).
    pub fn not_modified_by(&self, headers: &HeaderMap) -> bool {
        if self.is_empty() {
            return false;
        }
        let modified = control::date(headers, header::LAST_MODIFIED)
            .or_else(|| control::date(headers, header::DATE));
        self.not_modified(headers.get(header::ETAG), modified)
    }
}

/// Removes the client's validators before a request meant to fill the
/// cache, so the backend sends a full response (the client's conditionals
/// are answered by farmgate from it).
pub fn strip(h: &mut HeaderMap) {
    h.remove(header::IF_NONE_MATCH);
    h.remove(header::IF_MODIFIED_SINCE);
}

/// The opaque part of one entity-tag (`"x"` or `W/"x"`), quotes included.
fn opaque(tag: &[u8]) -> Option<&[u8]> {
    let t = tag.strip_prefix(b"W/").unwrap_or(tag);
    (t.len() >= 2 && t[0] == b'"' && t[t.len() - 1] == b'"').then_some(t)
}

/// The opaque tags of an If-None-Match list (commas may occur inside
/// quotes, so it is scanned, not split).
struct EntityTags<'a>(&'a [u8]);

impl<'a> Iterator for EntityTags<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.0;
        let mut i = 0;
        while i < s.len() && (s[i] == b',' || s[i] == b' ' || s[i] == b'\t') {
            i += 1;
        }
        if s[i..].starts_with(b"W/") {
            i += 2;
        }
        if i >= s.len() || s[i] != b'"' {
            self.0 = &[];
            return None;
        }
        let start = i;
        let end = s[start + 1..].iter().position(|b| *b == b'"')? + start + 2;
        self.0 = &s[end..];
        Some(&s[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn conds(pairs: &[(&'static str, &'static str)]) -> Conditions {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        Conditions::from_headers(&h)
    }

    #[test]
    fn if_none_match_weak_comparison() {
        let etag = HeaderValue::from_static("W/\"v1\"");
        let c = conds(&[("if-none-match", "\"v0\", \"v1\"")]);
        assert!(c.not_modified(Some(&etag), None));
        let c = conds(&[("if-none-match", "\"a,b\", W/\"v2\"")]);
        assert!(!c.not_modified(Some(&etag), None));
        assert!(conds(&[("if-none-match", "*")]).not_modified(None, None));
        assert!(!conds(&[("if-none-match", "garbage")]).not_modified(Some(&etag), None));
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let c = conds(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert!(c.not_modified(None, Some(t)));
        assert!(!c.not_modified(None, Some(t + Duration::from_secs(1))));
        let c = conds(&[
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("if-none-match", "\"other\""),
        ]);
        let etag = HeaderValue::from_static("\"v1\"");
        assert!(
            !c.not_modified(Some(&etag), Some(t)),
            "If-None-Match decides"
        );
        assert!(conds(&[]).is_empty());
    }

    #[test]
    fn entity_tag_scanner_survives_garbage() {
        for s in ["", ",", "\"", "W/", "W/\"", "\"a\"\"b\"", ", ,\"x", "\"\""] {
            let _ = EntityTags(s.as_bytes()).count();
        }
    }
}
