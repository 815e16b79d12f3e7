//! Server farms: the compiled set of servers a request can go to, and how one
//! is chosen (`selection/`, one file per policy).

pub mod selection;
pub mod server;
pub mod state;

pub use server::Server;
pub use state::{AdminState, ServerKey, ServerState, StateRegistry};

use selection::{PickContext, Policy};
use std::sync::Arc;

/// A farm as compiled into a runtime snapshot.
#[derive(Debug)]
pub struct Farm {
    pub name: Arc<str>,
    pub algorithm: String,
    pub servers: Vec<Server>,
    pub policy: Box<dyn Policy>,
    /// Long-lived per-farm statistics (cache counters), kept across reloads.
    /// Health checks, live traffic, minimum servers, slow start.
    pub health: crate::health::FarmHealth,
    /// The response cache, when `cache` is configured and enabled.
    pub cache: Option<crate::cache::FarmCache>,
}

impl Farm {
    /// Picks a server for a new request, skipping the indexes in `exclude`.
    /// Admission (slow start, probation) has the last word on the pick.
    #[inline]
    pub fn pick(&self, exclude: &[usize]) -> Option<usize> {
        crate::health::slow_start::admit(&self.servers, exclude, |exclude| {
            self.policy.pick(&PickContext {
                servers: &self.servers,
                exclude,
                hash: None,
            })
        })
    }

    pub fn server_by_name(&self, name: &str) -> Option<(usize, &Server)> {
        self.servers
            .iter()
            .enumerate()
            .find(|(_, s)| &*s.name == name)
    }
}
