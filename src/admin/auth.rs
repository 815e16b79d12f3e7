//! Who may change state through the admin listener.
//!
//! Reading (`GET`, `HEAD`) is open to whoever reaches the admin port, which
//! is loopback unless a token is set (config build refuses otherwise).
//! Every other method changes state and needs:
//! - the bearer token, when `admin.token`/`token_file` is set
//!   (`Authorization: Bearer <token>`), compared in constant time;
//! - a same-origin request when the browser says where it comes from: a web
//!   page elsewhere cannot make the operator's browser drain a server
//!   through a token-less loopback admin port (cross-site request forgery).

use http::{header, HeaderMap, Method, StatusCode};

/// Why a state-changing request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this endpoint needs the admin token: send Authorization: Bearer <token>")]
    MissingToken,
    #[error("the admin token is wrong")]
    WrongToken,
    #[error("cross-origin requests may not change state")]
    CrossOrigin,
}

impl Denied {
    pub fn status(self) -> StatusCode {
        match self {
            Denied::MissingToken | Denied::WrongToken => StatusCode::UNAUTHORIZED,
            Denied::CrossOrigin => StatusCode::FORBIDDEN,
        }
    }
}

/// Does `method` only read?
pub fn is_read_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// Checks a state-changing request against the configured token.
pub fn authorize(headers: &HeaderMap, token: Option<&str>) -> Result<(), Denied> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        if origin_host.is_none() || origin_host != host {
            return Err(Denied::CrossOrigin);
        }
    }
    check_token(headers, token)
}

/// Checks the bearer token alone, for routes that need it whatever the
/// method (`/api/farms/...`, the cache purge). No token configured: allowed.
pub fn check_token(headers: &HeaderMap, token: Option<&str>) -> Result<(), Denied> {
    let Some(token) = token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or(Denied::MissingToken)?;
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(Denied::WrongToken)
    }
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guess was right (the length still shows; tokens should be long).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn token_is_required_when_set() {
        let t = Some("s3cret-token");
        assert_eq!(authorize(&headers(&[]), t), Err(Denied::MissingToken));
        assert_eq!(
            authorize(&headers(&[("authorization", "Basic abc")]), t),
            Err(Denied::MissingToken)
        );
        assert_eq!(
            authorize(&headers(&[("authorization", "Bearer s3cret-tokeN")]), t),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            authorize(&headers(&[("authorization", "bearer s3cret-token")]), t),
            Ok(())
        );
        assert_eq!(authorize(&headers(&[]), None), Ok(()));
    }

    #[test]
    fn cross_origin_is_refused() {
        let same = headers(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "http://127.0.0.1:9090"),
        ]);
        assert_eq!(authorize(&same, None), Ok(()));
        let other = headers(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(authorize(&other, None), Err(Denied::CrossOrigin));
        let null = headers(&[("host", "127.0.0.1:9090"), ("origin", "null")]);
        assert_eq!(authorize(&null, None), Err(Denied::CrossOrigin));
        assert_eq!(Denied::CrossOrigin.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn reads_are_open() {
        assert!(is_read_only(&Method::GET));
        assert!(is_read_only(&Method::HEAD));
        assert!(!is_read_only(&Method::POST));
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
        assert!(!constant_time_eq(b"", b"x"));
        let mut h = HeaderMap::new();
        assert!(check_token(&h, Some("t0k")).is_err());
        h.insert(header::AUTHORIZATION, "Bearer t0k".parse().expect("value"));
        assert!(check_token(&h, Some("t0k")).is_ok());
        assert!(check_token(&HeaderMap::new(), None).is_ok());
    }
}
