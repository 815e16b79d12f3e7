//! `GET /api/history?farm=NAME[&server=NAME][&seconds=N]`: the last minutes
//! of a farm (and its servers) as one sample a second, with the state
//! changes to mark; without `farm`, every farm. The shape is documented in
//! docs/observability.md; the samples come from `crate::history`.

use super::response::{error, json, AdminResponse};
use crate::gateway::Gateway;
use crate::history::CAPACITY;
use http::StatusCode;
use serde::Serialize;

#[derive(Serialize)]
struct All {
    farms: Vec<crate::history::FarmSeries>,
}

pub fn history(gw: &Gateway, query: Option<&str>) -> AdminResponse {
    let (mut farm, mut server, mut seconds) = (None, None, CAPACITY as u64);
    for (k, v) in super::router::query_pairs(query.unwrap_or("")) {
        match k.as_str() {
            "farm" => farm = Some(v),
            "server" => server = Some(v),
            "seconds" => match v.parse::<u64>() {
                Ok(n) if n > 0 => seconds = n.min(CAPACITY as u64),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "seconds: expected a whole number of seconds above 0",
                    )
                }
            },
            _ => {}
        }
    }
    let snap = gw.snapshot();
    let history = &gw.history;
    let Some(name) = farm else {
        if server.is_some() {
            return error(StatusCode::BAD_REQUEST, "server needs farm");
        }
        let farms = snap
            .farms
            .iter()
            .filter_map(|f| history.farm(f, None, seconds))
            .collect();
        return json(StatusCode::OK, &All { farms });
    };
    let Some(f) = snap.farms.iter().find(|f| *f.name == *name) else {
        return error(StatusCode::NOT_FOUND, &format!("no farm named {name:?}"));
    };
    if let Some(s) = &server {
        if f.server_by_name(s).is_none() {
            return error(
                StatusCode::NOT_FOUND,
                &format!("farm {name:?} has no server named {s:?}"),
            );
        }
    }
    match history.farm(f, server.as_deref(), seconds) {
        Some(series) => json(StatusCode::OK, &series),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no sample yet: the first comes a second after start",
        ),
    }
}
