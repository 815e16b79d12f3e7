//! Server farms: the compiled set of servers a request can go to, and how one
//! is chosen: cookie affinity first (`affinity.rs`), then the farm's
//! balancing policy (`selection/`, one file per policy), keyed by the request
//! part `hash_key.rs` names, with admission (slow start, probation trial) as
//! the last word (`admission.rs`).
//!
//! The ground layer: nothing here names health, caching or forwarding. What
//! those attach to a farm (health records, cache, connection pools) sits
//! beside it in the snapshot (`config::FarmRuntime`), and their long-lived
//! registries hang on [`StateRegistry`] by type.

pub mod admission;
pub mod affinity;
pub mod ewma;
pub mod hash_key;
pub mod resolve;
pub mod selection;
pub mod server;
pub mod state;

pub use server::Server;
pub use state::{AdminSource, AdminState, Prune, ServerKey, ServerState, StateRegistry};

use affinity::Affinity;
use hash_key::HashKey;
use selection::{PickContext, Policy};
use std::net::IpAddr;
use std::sync::Arc;

/// A farm as compiled into a runtime snapshot.
#[derive(Debug)]
pub struct Farm {
    pub name: Arc<str>,
    pub algorithm: String,
    pub servers: Vec<Server>,
    pub policy: Box<dyn Policy>,
    /// What the `hash` algorithm hashes; None for other algorithms.
    pub hash_key: Option<HashKey>,
    pub affinity: Option<Affinity>,
}

/// What a request brings to server selection, worked out once before its
/// first attempt (retries reuse it).
#[derive(Debug, Clone, Copy, Default)]
pub struct PickRequest {
    /// Hash of the farm's `hash_key` in this request.
    pub hash: Option<u64>,
    /// The server the client's affinity cookie names.
    pub bound: Option<usize>,
    /// The client came in over TLS (the affinity cookie gets `Secure`).
    pub secure: bool,
}

impl Farm {
    /// Reads what selection needs from the request head: the hash key and
    /// the affinity cookie. `peer_trusted`: the peer is a trusted proxy.
    pub fn pick_request(
        &self,
        head: &http::request::Parts,
        peer: IpAddr,
        peer_trusted: bool,
        secure: bool,
    ) -> PickRequest {
        PickRequest {
            hash: self
                .hash_key
                .as_ref()
                .and_then(|k| k.hash(head, peer, peer_trusted)),
            bound: self
                .affinity
                .as_ref()
                .and_then(|a| a.bound_server(&head.headers)),
            secure,
        }
    }

    /// Picks a server for a request, skipping the indexes in `exclude`
    /// (servers already tried). A client bound by affinity goes to its
    /// server while that server accepts affine traffic (in rotation or
    /// draining); otherwise the policy picks among servers in rotation, and
    /// admission (slow start, probation) has the last word on its pick.
    #[inline]
    pub fn pick(&self, req: &PickRequest, exclude: &[usize]) -> Option<usize> {
        if let Some(b) = req.bound {
            if !exclude.contains(&b) && self.servers[b].state.accepts_affine() {
                return Some(b);
            }
        }
        admission::admit(&self.servers, exclude, |exclude| {
            self.policy.pick(&PickContext {
                servers: &self.servers,
                exclude,
                hash: req.hash,
            })
        })
    }

    /// The Set-Cookie header to add to a response from `server`: present
    /// when the farm has affinity and the client is not already bound there.
    #[inline]
    pub fn affinity_cookie(&self, req: &PickRequest, server: usize) -> Option<&http::HeaderValue> {
        let affinity = self.affinity.as_ref()?;
        if req.bound == Some(server) {
            return None;
        }
        affinity.set_cookie(server, req.secure)
    }

    pub fn server_by_name(&self, name: &str) -> Option<(usize, &Server)> {
        self.servers
            .iter()
            .enumerate()
            .find(|(_, s)| &*s.name == name)
    }
}
