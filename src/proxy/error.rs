//! Why a request could not be proxied, who is to blame, and the small plain
//! response the client gets. Nothing internal (addresses, error text) leaks.

use super::body::ProxyBody;
use http::{header, HeaderValue, Response, StatusCode};

/// Which side of the proxy caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Client,
    Backend,
    Proxy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no farm serves this request")]
    NoRoute,
    #[error("no server of the farm is available")]
    NoServer,
    #[error("could not connect to the backend")]
    Connect,
    #[error("the backend sent no response headers in time")]
    Timeout,
    #[error("the backend failed before answering")]
    Backend,
    #[error("the request body is larger than max_request_body")]
    BodyTooLarge,
    #[error("the client request is malformed")]
    BadRequest,
    #[error("the client is refused by an access list")]
    Forbidden,
}

impl ProxyError {
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoServer => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect | ProxyError::Backend => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequest => StatusCode::BAD_REQUEST,
            ProxyError::Forbidden => StatusCode::FORBIDDEN,
        }
    }

    pub fn origin(self) -> Origin {
        match self {
            ProxyError::Connect | ProxyError::Timeout | ProxyError::Backend => Origin::Backend,
            ProxyError::BodyTooLarge | ProxyError::BadRequest | ProxyError::Forbidden => {
                Origin::Client
            }
            ProxyError::NoRoute | ProxyError::NoServer => Origin::Proxy,
        }
    }

    /// May another server be tried (if the request allows it)? Connect
    /// failures and connections that broke before any response byte (a
    /// reset, often a reused pooled connection the server had just closed)
    /// are; timeouts waiting for a response are not (the server may be
    /// working on it).
    pub fn is_retryable(self) -> bool {
        matches!(self, ProxyError::Connect | ProxyError::Backend)
    }

    /// The label used in logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no_route",
            ProxyError::NoServer => "no_server",
            ProxyError::Connect => "connect",
            ProxyError::Timeout => "timeout",
            ProxyError::Backend => "reset",
            ProxyError::BodyTooLarge => "body_too_large",
            ProxyError::BadRequest => "bad_request",
            ProxyError::Forbidden => "forbidden",
        }
    }

    pub fn into_response(self) -> Response<ProxyBody> {
        let mut resp = local_response(self.status(), self.body());
        if self == ProxyError::NoServer {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }

    fn body(self) -> &'static str {
        match self {
            ProxyError::NoRoute => "404 Not Found\n",
            ProxyError::NoServer => "503 Service Unavailable: no server is available\n",
            ProxyError::Connect | ProxyError::Backend => "502 Bad Gateway\n",
            ProxyError::Timeout => "504 Gateway Timeout\n",
            ProxyError::BodyTooLarge => "413 Payload Too Large\n",
            ProxyError::BadRequest => "400 Bad Request\n",
            ProxyError::Forbidden => "403 Forbidden\n",
        }
    }
}

/// A small plain-text response made by farmgate itself.
pub fn local_response(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(bytes::Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
