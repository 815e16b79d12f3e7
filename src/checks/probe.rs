//! One explicit health probe: a fresh connection to one server (plain or
//! TLS, through the gateway's connector with the current settings), one
//! request, a verdict, all bounded by the check's `timeout`. Probes never
//! use the client connection pool and never touch a server's traffic
//! counters.

use crate::farm::Server;
use crate::health::outcome::{ProbeReport, Reason};
use crate::health::spec::HealthCheck;
use crate::proxy::connector::{ConnectTimeout, Connector};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use std::time::Instant;

/// At most this much of a body is searched for `response_match`.
pub const MAX_MATCH_BODY: usize = 64 * 1024;

pub(super) const USER_AGENT: &str = concat!("farmgate-health-check/", env!("CARGO_PKG_VERSION"));

/// Runs `check` against `server`, connecting with `connector`.
pub async fn probe(check: &HealthCheck, connector: &Connector, server: &Server) -> ProbeReport {
    let started = Instant::now();
    let outcome = match &check.grpc {
        Some(service) => {
            let call = super::grpc_probe::exchange(service, connector, server);
            tokio::time::timeout(check.timeout, call).await
        }
        None => tokio::time::timeout(check.timeout, exchange(check, connector, server)).await,
    };
    let latency = started.elapsed();
    match outcome {
        Ok(Ok((status, body_match))) => {
            let verdict = if check.grpc.is_some() {
                Reason::Passed
            } else if !check.acceptable.contains(status) {
                Reason::Status(status)
            } else if body_match == Some(false) {
                Reason::BodyMismatch
            } else {
                Reason::Passed
            };
            ProbeReport {
                status: Some(status),
                latency,
                body_match,
                verdict,
            }
        }
        Ok(Err((status, reason))) => ProbeReport {
            status,
            latency,
            body_match: None,
            verdict: reason,
        },
        Err(_) => ProbeReport {
            status: None,
            latency,
            body_match: None,
            verdict: Reason::Timeout,
        },
    }
}

/// Aborts the connection task when the probe ends or is cancelled.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) type Failure = (Option<u16>, Reason);

async fn exchange(
    check: &HealthCheck,
    connector: &Connector,
    server: &Server,
) -> Result<(u16, Option<bool>), Failure> {
    let authority = &server.authority;
    let stream = connector
        .clone()
        .connect_server(server, crate::proxy::protocol::Alpn::Http1, None)
        .await
        .map_err(|e| (None, connect_failure(e.as_ref())))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(stream)
        .await
        .map_err(|_| (None, Reason::Reset))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));

    let host = match &check.host {
        Some(h) => h.clone(),
        None => {
            HeaderValue::from_str(authority.as_str()).map_err(|_| (None, Reason::Unreachable))?
        }
    };
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.method_mut() = check.method.clone();
    *req.uri_mut() = http::Uri::from(check.path.clone());
    let h = req.headers_mut();
    h.insert(header::HOST, host);
    h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));

    let resp = sender.send_request(req).await.map_err(|e| {
        let reason = if e.is_parse() || e.is_parse_status() {
            Reason::BadResponse
        } else {
            Reason::Reset
        };
        (None, reason)
    })?;
    let status = resp.status().as_u16();
    let Some(needle) = check.response_match.as_deref() else {
        return Ok((status, None));
    };
    // Read until the text shows up, the body ends, or the cap is reached.
    let needle = needle.as_bytes();
    let mut body = resp.into_body();
    let mut seen = BytesMut::new();
    while seen.len() < MAX_MATCH_BODY {
        match body.frame().await {
            None => break,
            Some(Err(_)) => return Err((Some(status), Reason::Reset)),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = MAX_MATCH_BODY - seen.len();
                    seen.extend_from_slice(&data[..data.len().min(room)]);
                    if contains(&seen, needle) {
                        return Ok((status, Some(true)));
                    }
                }
            }
        }
    }
    Ok((status, Some(contains(&seen, needle))))
}

/// Names why a connection could not be made.
pub(super) fn connect_failure(e: &(dyn std::error::Error + 'static)) -> Reason {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<ConnectTimeout>() {
            return Reason::Timeout;
        }
        if s.is::<rustls::Error>() {
            return Reason::Tls;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Reason::Refused;
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return Reason::Tls;
            }
        }
        source = s.source();
    }
    Reason::Unreachable
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring() {
        assert!(contains(b"status: OK\n", b"OK"));
        assert!(!contains(b"status: KO\n", b"OK"));
        assert!(!contains(b"O", b"OK"));
    }
}
