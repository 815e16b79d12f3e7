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
    /// Set when the address names a host (`resolve/`): the name, and the
    /// one of its addresses this member connects to. Boxed: selection
    /// scans servers, and most have none.
    pub dns: Option<Arc<Resolving>>,
}

impl Server {
    /// Where to connect: one address of a DNS-named server (this server is
    /// then one of its members). None: `authority` itself (an IP address,
    /// or a name that has not resolved yet).
    #[inline]
    pub fn connect_to(&self) -> Option<SocketAddr> {
        self.dns.as_ref().and_then(|d| d.addr)
    }
}

pub use crate::ground::net::parse_address;
