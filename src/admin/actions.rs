//! Operator actions on one server (the admin API):
//!
//! - `GET  /api/farms/{farm}/servers/{server}`: its state as JSON;
//! - `POST .../drain`: no new requests or sessions; requests in flight and
//!   clients bound by affinity finish;
//! - `POST .../disable`: no traffic at all; `POST .../enable`: back in
//!   rotation, health permitting (with slow start when configured);
//! - `POST .../verify`: runs the farm's health check against the server now
//!   and reports status, latency, body match and verdict (ARR's "Verify URL
//!   test"); it does not change the server's state.
//!
//! A server addressed by host name is reached by its members' names
//! (`api.internal:8080#10.0.0.7:8080`), or by its own name for GET, drain,
//! disable and enable on all its members at once.
//!
//! The admin state lives in the server's long-lived state, so it survives
//! reloads for servers that remain. With `admin.token` set every request
//! here needs `Authorization: Bearer <token>`.

use super::auth;
use super::response::{self, json};
use crate::checks::probe;
use crate::config::FarmRuntime;
use crate::farm::{AdminSource, AdminState, Server};
use crate::gateway::Gateway;
use crate::health::ServerHealth;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::Ordering;

/// Prefix of the routes served here.
pub const PREFIX: &str = "/api/farms/";

/// Serves a request whose path starts with [`PREFIX`].
pub async fn route<B>(gw: &Gateway, req: &Request<B>) -> Response<Full<Bytes>> {
    let snap = gw.snapshot();
    if let Err(refused) = auth::check_token(req.headers(), snap.admin.token.as_deref()) {
        return response::denied(refused);
    }
    let path = &req.uri().path()[PREFIX.len()..];
    let parts: Vec<&str> = path.split('/').collect();
    let (farm_name, server_name, action) = match parts.as_slice() {
        [f, "servers", s] => (decode(f), decode(s), None),
        [f, "servers", s, a] => (decode(f), decode(s), Some(*a)),
        _ => return error(StatusCode::NOT_FOUND, "no such admin route".into()),
    };
    let Some(farm) = snap.farms.iter().find(|f| *f.name == *farm_name) else {
        return error(StatusCode::NOT_FOUND, format!("no farm {farm_name:?}"));
    };
    let Some((index, server)) = farm.server_by_name(&server_name) else {
        // A server addressed by host name: the action is for all its members.
        let members: Vec<usize> = (0..farm.servers.len())
            .filter(|&i| {
                farm.servers[i]
                    .dns
                    .as_ref()
                    .is_some_and(|d| *d.parent == *server_name)
            })
            .collect();
        if members.is_empty() {
            return error(
                StatusCode::NOT_FOUND,
                format!("farm {farm_name:?} has no server {server_name:?}"),
            );
        }
        return on_members(gw, farm, &server_name, &members, action, req.method()).await;
    };
    let method = req.method();
    match (action, method) {
        (None, &Method::GET) => json(
            StatusCode::OK,
            &server_view(farm, server, farm.health.server(index)),
        ),
        (None, _) => not_allowed("GET"),
        (Some("drain"), &Method::POST) => {
            set_admin(gw, farm, index, server, AdminState::Draining).await
        }
        (Some("disable"), &Method::POST) => {
            set_admin(gw, farm, index, server, AdminState::Disabled).await
        }
        (Some("enable"), &Method::POST) => {
            set_admin(gw, farm, index, server, AdminState::Enabled).await
        }
        (Some("verify"), &Method::POST) => verify(gw, farm, server).await,
        (Some("drain" | "disable" | "enable" | "verify"), _) => not_allowed("POST"),
        (Some(other), _) => error(
            StatusCode::NOT_FOUND,
            format!("unknown action {other:?}; expected drain, disable, enable or verify"),
        ),
    }
}

/// An action on every member of the DNS-named server `name` (its
/// addresses now; one that joins later starts enabled).
async fn on_members(
    gw: &Gateway,
    farm: &FarmRuntime,
    name: &str,
    members: &[usize],
    action: Option<&str>,
    method: &Method,
) -> Response<Full<Bytes>> {
    let to = match (action, method) {
        (None, &Method::GET) => None,
        (None, _) => return not_allowed("GET"),
        (Some("drain"), &Method::POST) => Some(AdminState::Draining),
        (Some("disable"), &Method::POST) => Some(AdminState::Disabled),
        (Some("enable"), &Method::POST) => Some(AdminState::Enabled),
        (Some("drain" | "disable" | "enable"), _) => return not_allowed("POST"),
        (Some(other), _) => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown action {other:?} for the members of {name:?}; expected drain, \
                     disable or enable (verify one member by its name)"
                ),
            )
        }
    };
    if let Some(to) = to {
        for &i in members {
            farm.set_admin(i, to, AdminSource::Local, "through the admin API");
            crate::cluster::operator::publish(gw, &farm.name, &farm.servers[i].name, to).await;
        }
    }
    let views: Vec<_> = members
        .iter()
        .map(|&i| server_view(farm, &farm.servers[i], farm.health.server(i)))
        .collect();
    json(
        StatusCode::OK,
        &json!({ "farm": &*farm.name, "server": name, "members": views }),
    )
}

async fn set_admin(
    gw: &Gateway,
    farm: &FarmRuntime,
    index: usize,
    server: &Server,
    to: AdminState,
) -> Response<Full<Bytes>> {
    farm.set_admin(index, to, AdminSource::Local, "through the admin API");
    // With a tier, the change is recorded in Redis for every instance; when
    // Redis cannot take it now it holds here and is sent when it can.
    crate::cluster::operator::publish(gw, &farm.name, &server.name, to).await;
    json(
        StatusCode::OK,
        &server_view(farm, server, farm.health.server(index)),
    )
}

async fn verify(gw: &Gateway, farm: &FarmRuntime, server: &Server) -> Response<Full<Bytes>> {
    let Some(check) = &farm.health.check else {
        return error(
            StatusCode::CONFLICT,
            format!(
                "farm {:?} has no health_check; configure farms[].health_check.url to verify",
                &*farm.name
            ),
        );
    };
    let report = probe::probe(check, gw.connector(), server).await;
    let body = json!({
        "farm": &*farm.name,
        "server": &*server.name,
        "address": &*server.address,
        "method": check.method.as_str(),
        "url": &*check.url,
        "status": report.status,
        "latency_ms": report.latency.as_secs_f64() * 1000.0,
        "body_match": report.body_match,
        "verdict": if report.passed() { "healthy" } else { "unhealthy" },
        "reason": report.verdict.to_string(),
        "result": report.verdict.label(),
        "acceptable_status": check.acceptable.to_string(),
        "response_match": check.response_match.as_deref(),
    });
    json(StatusCode::OK, &body)
}

/// One server as the admin API shows it.
#[derive(Serialize)]
struct ServerView<'a> {
    farm: &'a str,
    server: &'a str,
    address: &'a str,
    admin: &'static str,
    /// `local`: decided on this instance only; `tier`: held by the tier.
    admin_source: &'static str,
    in_rotation: bool,
    in_flight: u64,
    requests: u64,
    failures: u64,
    health: crate::health::HealthView,
    floor_active: bool,
}

fn server_view<'a>(
    farm: &'a FarmRuntime,
    server: &'a Server,
    health: &ServerHealth,
) -> ServerView<'a> {
    let s = &server.state;
    ServerView {
        farm: &farm.name,
        server: &server.name,
        address: &server.address,
        admin: s.admin().as_str(),
        admin_source: s.admin_source().as_str(),
        in_rotation: s.in_rotation(),
        in_flight: s.in_flight(),
        requests: s.requests.load(Ordering::Relaxed),
        failures: s.failures.load(Ordering::Relaxed),
        health: health.health_view(),
        floor_active: farm.health.floor_active(),
    }
}

/// Percent-decodes a path segment (names may hold `:` or spaces).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    response::error(status, &message)
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("use {allow} on this route"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("127.0.0.1%3A9001"), "127.0.0.1:9001");
        assert_eq!(decode("web%20one"), "web one");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("bad%zz%4"), "bad%zz%4");
    }
}
