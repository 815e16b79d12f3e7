//! The gRPC health check: one `grpc.health.v1.Health/Check` call over a
//! fresh HTTP/2 connection (h2c on `http://` servers, TLS with ALPN `h2` on
//! `https://` ones), as `grpc_health_probe` and Kubernetes' gRPC probes
//! make it. The server passes when the call ends with `grpc-status: 0` and
//! its answer says SERVING.
//!
//! The two messages are tiny and fixed, so they are written and read here
//! (protobuf field 1 of each) rather than through a protobuf library.

use super::probe::{connect_failure, AbortOnDrop, Failure, USER_AGENT};
use crate::farm::Server;
use crate::health::outcome::Reason;
use crate::health::spec::GRPC_HEALTH_PATH;
use crate::proxy::connector::Connector;
use crate::proxy::grpc;
use crate::proxy::protocol::Alpn;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;

/// `HealthCheckResponse.status` SERVING.
const SERVING: u8 = 1;
/// More than this in an answer is not a health response.
const MAX_ANSWER: usize = 4096;

/// Asks `server` about `service` ("" = the whole server). `Ok((200,
/// None))` when SERVING.
pub async fn exchange(
    service: &str,
    connector: &Connector,
    server: &Server,
) -> Result<(u16, Option<bool>), Failure> {
    let uri = http::Uri::builder()
        .scheme(server.scheme.clone())
        .authority(server.authority.clone())
        .path_and_query(GRPC_HEALTH_PATH)
        .build()
        .map_err(|_| (None, Reason::Unreachable))?;
    let stream = connector
        .clone()
        .connect_server(server, Alpn::H2, None)
        .await
        .map_err(|e| (None, connect_failure(e.as_ref())))?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), stream)
        .await
        .map_err(|_| (None, Reason::BadResponse))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));

    let mut req = Request::new(Full::new(request_message(service)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));

    let resp = sender
        .send_request(req)
        .await
        .map_err(|_| (None, Reason::Reset))?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err((Some(status), Reason::Status(status)));
    }
    if let Some(code) = grpc::status(resp.headers()) {
        // Trailers-only: the call failed (or answered nothing).
        let code = if code == 0 { 13 } else { code };
        return Err((Some(status), Reason::GrpcStatus(code)));
    }
    let mut body = resp.into_body();
    let mut answer = BytesMut::new();
    let mut code = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| (Some(status), Reason::Reset))?;
        if let Some(data) = frame.data_ref() {
            if answer.len() + data.len() > MAX_ANSWER {
                return Err((Some(status), Reason::BadResponse));
            }
            answer.extend_from_slice(data);
        } else if let Some(t) = frame.trailers_ref() {
            code = grpc::status(t);
        }
    }
    match code {
        Some(0) => {}
        Some(c) => return Err((Some(status), Reason::GrpcStatus(c))),
        None => return Err((Some(status), Reason::BadResponse)),
    }
    match serving_status(&answer) {
        Some(SERVING) => Ok((status, None)),
        Some(other) => Err((Some(status), Reason::NotServing(other))),
        None => Err((Some(status), Reason::BadResponse)),
    }
}

/// A gRPC message (uncompressed, length-prefixed) holding
/// `HealthCheckRequest { string service = 1; }`.
fn request_message(service: &str) -> Bytes {
    let mut msg = BytesMut::new();
    if !service.is_empty() {
        msg.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.put_slice(service.as_bytes());
    }
    let mut framed = BytesMut::with_capacity(5 + msg.len());
    framed.put_u8(0);
    framed.put_u32(msg.len() as u32);
    framed.put_slice(&msg);
    framed.freeze()
}

fn put_varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// `HealthCheckResponse.status` (field 1, varint) of one framed message;
/// absent means 0 (UNKNOWN), as protobuf defaults go.
fn serving_status(framed: &[u8]) -> Option<u8> {
    let (&flag, rest) = framed.split_first()?;
    if flag != 0 || rest.len() < 4 {
        return None; // compressed or truncated
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let mut msg = rest.get(4..4 + len)?;
    let mut status = 0u8;
    while let Some((&tag, after)) = msg.split_first() {
        let (value, after) = varint(after)?;
        match tag {
            0x08 => status = u8::try_from(value).unwrap_or(u8::MAX),
            // Another varint field: skipped.
            t if t & 7 == 0 => {}
            // A length-delimited field: skipped.
            t if t & 7 == 2 => {
                let skip = usize::try_from(value).ok()?;
                msg = after.get(skip..)?;
                continue;
            }
            _ => return None,
        }
        msg = after;
    }
    Some(status)
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_messages() {
        assert_eq!(&request_message("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &request_message("shop")[..],
            &[0, 0, 0, 0, 6, 0x0a, 4, b's', b'h', b'o', b'p']
        );
    }

    #[test]
    fn answers() {
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(SERVING));
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        // An empty message is status 0 (UNKNOWN).
        assert_eq!(serving_status(&[0, 0, 0, 0, 0]), Some(0));
        // Compressed, truncated: not readable.
        assert_eq!(serving_status(&[1, 0, 0, 0, 2, 0x08, 1]), None);
        assert_eq!(serving_status(&[0, 0, 0, 0, 9, 0x08, 1]), None);
    }
}
