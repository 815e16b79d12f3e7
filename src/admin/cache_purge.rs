//! `POST /api/cache/purge`: drops stored responses. The JSON body names a
//! farm and a path prefix, both optional: `{"farm": "web", "prefix":
//! "/static/"}` purges that farm's `/static/...` responses; an empty body
//! or `{}` purges every farm's cache. Answers `{"purged": N, "farms": [...]}`.
//! With `admin.token` set it needs `Authorization: Bearer <token>`, like
//! every state-changing admin route.

use super::{auth, response};
use crate::gateway::Gateway;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

/// Largest purge request body read.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    #[serde(default)]
    farm: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
}

/// Handles one purge request.
pub async fn purge(gw: &Gateway, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let snap = gw.snapshot();
    if let Err(refused) = auth::check_token(req.headers(), snap.admin.token.as_deref()) {
        return response::denied(refused);
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                error("the body could not be read or is over 64KiB"),
            )
        }
    };
    let ask: PurgeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PurgeRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    error(&format!(
                        "expected {{\"farm\": \"...\", \"prefix\": \"/...\"}} (both optional): {e}"
                    )),
                )
            }
        }
    };
    if let Some(p) = &ask.prefix {
        if !p.starts_with('/') {
            return json(
                StatusCode::BAD_REQUEST,
                error("prefix must start with \"/\""),
            );
        }
    }
    let farms: Vec<_> = match &ask.farm {
        Some(name) => match snap.farms.iter().find(|f| &*f.name == name.as_str()) {
            None => {
                return json(
                    StatusCode::NOT_FOUND,
                    error(&format!("no farm named {name:?}")),
                )
            }
            Some(f) if f.cache.is_none() => {
                return json(
                    StatusCode::NOT_FOUND,
                    error(&format!("farm {name:?} has no cache")),
                )
            }
            Some(f) => vec![f],
        },
        None => snap.farms.iter().filter(|f| f.cache.is_some()).collect(),
    };
    let mut purged = 0;
    let mut names = Vec::new();
    for f in farms {
        if let Some(c) = &f.cache {
            let prefix = ask.prefix.as_deref().map(str::as_bytes);
            purged += c.store.purge(prefix);
            // With cache.shared: the tier's copies and every other instance.
            if let Some(t) = c.store.shared() {
                t.store.purge(&t.farm, prefix);
            }
            names.push(f.name.to_string());
        }
    }
    tracing::info!(farms = ?names, prefix = ?ask.prefix, purged, "cache purged");
    json(
        StatusCode::OK,
        serde_json::json!({ "purged": purged, "farms": names }),
    )
}

fn error(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    response::json(status, &v)
}
