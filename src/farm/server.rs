//! A server of a farm as the runtime snapshot sees it: where it is, its
//! weight, and a handle to its long-lived state.

use super::resolve::Resolving;
use super::state::ServerState;
use http::uri::{Authority, Scheme};
use std::net::SocketAddr;
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
    /// Where to connect: one address of a DNS-named server (this server is
    /// then one of its members). None: `authority` itself (an IP address,
    /// or a name that has not resolved yet).
    pub connect_to: Option<SocketAddr>,
    /// Set when the address names a host (`resolve/`).
    pub dns: Option<Resolving>,
}

pub use crate::ground::net::parse_address;
