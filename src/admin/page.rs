//! `GET /`: the status page, one self-contained HTML file (styles and
//! script inline, no external assets) compiled into the binary. It polls
//! `/api/status` and posts the drain / disable / enable actions.

use super::response::AdminResponse;
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;

/// The page, as shipped in src/admin/status.html.
pub const STATUS_PAGE: &str = include_str!("status.html");

pub fn index() -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::from_static(STATUS_PAGE.as_bytes())));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Only its own inline code, talking only to this admin listener; never
    // framed (its buttons change state).
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; frame-ancestors 'none'; form-action 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}
