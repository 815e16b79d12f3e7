//! A server of a farm as the runtime snapshot sees it: where it is, its
//! weight, and a handle to its long-lived state.

use super::state::ServerState;
use http::uri::{Authority, Scheme};
use std::sync::Arc;

/// One backend server, compiled from config.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: Arc<str>,
    /// The address as written in the config (for status and logs).
    pub address: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    pub weight: u32,
    /// `Host` sent when `preserve_host: false`.
    pub host_header: http::HeaderValue,
    pub state: Arc<ServerState>,
}

pub use crate::ground::net::parse_address;
