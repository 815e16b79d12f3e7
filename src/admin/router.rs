//! The admin listener's routes: one line per endpoint in [`route`].
//!
//! Paths are split into percent-decoded segments and matched with slice
//! patterns (`["api", "status"]`); a subtree with its own router (the server
//! actions under `/api/farms/`) gets the request whole. Requests that change
//! state pass `auth::authorize` first, whatever their route.

use super::response::{denied, error, json, method_not_allowed, no_store, text, AdminResponse};
use super::{actions, auth, page, status};
use crate::gateway::Gateway;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::sync::Arc;

/// Serves one admin request.
pub async fn route(gw: &Arc<Gateway>, req: Request<Incoming>) -> AdminResponse {
    let owned: Vec<String> = match segments(req.uri().path()) {
        Some(s) => s,
        None => return error(StatusCode::BAD_REQUEST, "the path is not valid UTF-8"),
    };
    let segs: Vec<&str> = owned.iter().map(String::as_str).collect();
    if !auth::is_read_only(req.method()) {
        let token = gw.snapshot().admin.token.clone();
        if let Err(refused) = auth::authorize(req.headers(), token.as_deref()) {
            return denied(refused);
        }
    }
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let post = req.method() == Method::POST;
    match segs.as_slice() {
        [] if get => page::index(),
        ["healthz"] if get => healthz(gw),
        ["metrics"] if get => metrics(gw),
        ["api", "status"] if get => json(StatusCode::OK, &status::status(gw)),
        ["api", "cluster"] if get => super::cluster::view(gw),
        ["api", "history"] if get => super::history::history(gw, req.uri().query()),
        ["api", "farms", ..] => actions::route(gw, &req).await,
        ["api", "reload"] if post => reload(gw).await,
        ["api", "upgrade"] if post => upgrade(gw).await,
        ["api", "cache", "purge"] if post => super::cache_purge::purge(gw, req).await,
        // Known paths with the wrong method.
        []
        | ["healthz"]
        | ["metrics"]
        | ["api", "status"]
        | ["api", "history"]
        | ["api", "cluster"] => method_not_allowed("GET, HEAD"),
        ["api", "reload"] | ["api", "upgrade"] | ["api", "cache", "purge"] => {
            method_not_allowed("POST")
        }
        _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

fn healthz(gw: &Gateway) -> AdminResponse {
    if gw.is_shutting_down() {
        text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        text(StatusCode::OK, "ok\n")
    }
}

fn metrics(gw: &Gateway) -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::from(gw.metrics.encode())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    no_store(r)
}

/// `POST /api/reload`: re-reads the config file now; 200 with the summary,
/// or 422 with every problem (the running config stays).
async fn reload(gw: &Arc<Gateway>) -> AdminResponse {
    let event = crate::reload::reload(gw, "admin").await;
    let status = if event.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    json(status, &event)
}

/// `POST /api/upgrade`: starts the binary again and hands over; answers
/// once the new process serves (200 with both pids), or with why not (409:
/// not now; 500: the new process did not start; this one keeps serving).
async fn upgrade(gw: &Arc<Gateway>) -> AdminResponse {
    use crate::handover::{upgrade, UpgradeError};
    #[derive(serde::Serialize)]
    struct Upgraded {
        old_pid: u32,
        new_pid: u32,
    }
    match upgrade(gw).await {
        Ok(new_pid) => json(
            StatusCode::OK,
            &Upgraded {
                old_pid: std::process::id(),
                new_pid,
            },
        ),
        Err(e @ UpgradeError::Refused(_)) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(e @ UpgradeError::Failed(_)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    }
}

/// The non-empty, percent-decoded segments of `path`; None when a decoded
/// segment is not UTF-8.
fn segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// The `key=value` pairs of a query string, percent-decoded (`+` is a
/// space, as forms send it); pairs that do not decode are left out.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode(&s.replace('+', " "));
            Some((decode(k)?, decode(v)?))
        })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_and_decode() {
        assert_eq!(segments("/").expect("root"), Vec::<String>::new());
        assert_eq!(
            segments("/api/farms/web/servers/127.0.0.1%3A9001/drain").expect("path"),
            vec!["api", "farms", "web", "servers", "127.0.0.1:9001", "drain"]
        );
        assert_eq!(percent_decode("a%20b%zz%4").expect("lenient"), "a b%zz%4");
        assert_eq!(percent_decode("%C3%A9").expect("utf8"), "é");
        assert!(percent_decode("%FF").is_none());
    }

    #[test]
    fn query_pairs_decode() {
        let q: Vec<_> = query_pairs("farm=my%20farm&server=a+b&seconds=60&flag&bad=%FF").collect();
        assert_eq!(
            q,
            vec![
                ("farm".into(), "my farm".into()),
                ("server".into(), "a b".into()),
                ("seconds".into(), "60".into()),
                ("flag".into(), String::new()),
            ]
        );
    }
}
