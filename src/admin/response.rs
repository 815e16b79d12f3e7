//! The admin API's responses: one JSON helper (pretty, with a trailing
//! newline) and one for text, both `Cache-Control: no-store` (live data),
//! and the refusal of a request that lacks the token.

use super::auth::Denied;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

pub type AdminResponse = Response<Full<Bytes>>;

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> AdminResponse {
    let mut bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
    bytes.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(r)
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: &str) -> AdminResponse {
    #[derive(Serialize)]
    struct E<'a> {
        error: &'a str,
    }
    json(status, &E { error: message })
}

pub fn text(status: StatusCode, body: &'static str) -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    no_store(r)
}

pub fn method_not_allowed(allow: &'static str) -> AdminResponse {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Live data: never cached by a browser or proxy.
pub fn no_store(mut r: AdminResponse) -> AdminResponse {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The answer to a request [`super::auth`] refused.
pub fn denied(refused: Denied) -> AdminResponse {
    let mut r = error(refused.status(), &refused.to_string());
    if refused.status() == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"farmgate admin\""),
        );
    }
    r
}
