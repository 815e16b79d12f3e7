//! What can be wrong with an HTTP/1 message's framing, and the status a
//! client is answered with for it.

/// A finding in a message head, a chunked body or its trailers. The same
/// table as the listener's framing scanner, plus what the head parser
/// (`httparse`) refuses on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("bare LF")]
    BareLf,
    #[error("bare CR")]
    BareCr,
    #[error("obsolete line folding")]
    ObsFold,
    #[error("invalid field name")]
    BadFieldName,
    #[error("both Content-Length and Transfer-Encoding")]
    ClAndTe,
    #[error("more than one Content-Length")]
    DuplicateCl,
    #[error("invalid Content-Length")]
    BadCl,
    #[error("Transfer-Encoding other than chunked")]
    BadTe,
    #[error("Transfer-Encoding in HTTP/1.0")]
    TeInHttp10,
    #[error("malformed chunk")]
    BadChunk,
    #[error("head larger than the limit")]
    HeadTooLarge,
    #[error("more header fields than the limit")]
    TooManyFields,
    /// The request or status line, a field value or the version is not
    /// HTTP/1.x syntax (what `httparse` refuses).
    #[error("malformed message head")]
    Malformed,
}

impl Violation {
    /// The status a client's request is answered with (a backend's bad
    /// response becomes 502 whatever the finding).
    pub fn status(self) -> http::StatusCode {
        match self {
            Violation::HeadTooLarge | Violation::TooManyFields => {
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}
