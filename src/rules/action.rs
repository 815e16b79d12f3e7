//! What a matching rule does: `route` to a farm (optionally with a
//! rewritten URL), `redirect`, `respond` with a fixed answer, `abort` the
//! connection, or `none` (only its `set_headers`). Rendering an action
//! builds the [`Outcome`] a request gets; that output is the only thing
//! evaluation allocates.

use super::template::{Ctx, Escape, Template};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::StatusCode;

#[derive(Debug)]
pub enum Action {
    Route {
        /// Farm index in the snapshot; `None` means the default farm.
        farm: Option<usize>,
        url: Option<Template>,
        append_query: bool,
    },
    Redirect {
        url: Template,
        status: StatusCode,
        append_query: bool,
    },
    Respond {
        status: StatusCode,
        body: Template,
        headers: Box<[(HeaderName, Template)]>,
    },
    /// Apply limit `limit` (its index in the snapshot's `limits`); its key
    /// is this rule's capture `capture` when it counts by `{R:n}`.
    Limit {
        limit: usize,
        capture: Option<usize>,
        /// The limit's key hasher, for the capture.
        hasher: crate::limits::key::KeyHasher,
    },
    Abort,
    None,
}

impl Action {
    /// Does this action end rule processing unless told otherwise?
    pub fn stops_by_default(&self) -> bool {
        !matches!(self, Action::None | Action::Limit { .. })
    }
}

/// What the rules decided for a request.
#[derive(Debug)]
pub enum Outcome {
    /// Forward to a farm (`None`: the default farm); `url` replaces the
    /// request's path and query when the rule rewrote it.
    Route {
        farm: Option<usize>,
        url: Option<PathAndQuery>,
    },
    Redirect {
        status: StatusCode,
        location: HeaderValue,
    },
    Respond {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    },
    /// Close the connection without a response.
    Abort,
    /// The path cannot be normalised (climbs above the root, bad escape).
    BadRequest,
    /// A matching rule's `access` lists refuse the client (403).
    Forbidden,
}

/// Renders a URL template, appending the original query string when asked
/// (`?q` or `&q` depending on whether the URL already has one).
pub fn render_url(t: &Template, ctx: &Ctx<'_>, append_query: bool, leading_slash: bool) -> Vec<u8> {
    let query = ctx.req.query();
    let mut out = Vec::with_capacity(t.size_hint() + query.len() + 2);
    t.render(ctx, &mut out, Escape::Url);
    if leading_slash && out.first() != Some(&b'/') {
        out.insert(0, b'/');
    }
    if append_query && !query.is_empty() {
        out.push(if out.contains(&b'?') { b'&' } else { b'?' });
        out.extend_from_slice(query.as_bytes());
    }
    out
}

/// Renders a header value (an empty one removes the header); `None` when
/// the text is not a valid header value.
pub fn render_header(t: &Template, ctx: &Ctx<'_>) -> Option<HeaderValue> {
    if let Some(lit) = t.literal() {
        return HeaderValue::from_maybe_shared(lit.clone()).ok();
    }
    let mut out = Vec::with_capacity(t.size_hint());
    t.render(ctx, &mut out, Escape::None);
    HeaderValue::from_maybe_shared(Bytes::from(out)).ok()
}

/// Renders a response body, sharing a literal body instead of copying it.
pub fn render_body(t: &Template, ctx: &Ctx<'_>) -> Bytes {
    match t.literal() {
        Some(lit) => lit.clone(),
        None => {
            let mut out = Vec::with_capacity(t.size_hint());
            t.render(ctx, &mut out, Escape::None);
            Bytes::from(out)
        }
    }
}
