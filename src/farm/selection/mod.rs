//! Load-balancing policies. Each policy is one small type in its own file
//! behind the [`Policy`] trait; `build` is the only place that knows them all.
//!
//! Building a policy from the server set happens once per snapshot; `pick`
//! runs per request and takes no lock and allocates nothing.

mod hash;
mod least_requests;
mod least_response_time;
mod power_of_two;
mod random;
mod round_robin;
mod weighted_round_robin;

pub use hash::ConsistentHash;
pub use least_requests::LeastRequests;
pub use least_response_time::LeastResponseTime;
pub use power_of_two::PowerOfTwo;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

use super::server::Server;
use std::fmt;

/// Everything a policy may look at to choose a server.
pub struct PickContext<'a> {
    pub servers: &'a [Server],
    /// Indexes already tried for this request (a retry wants another server).
    pub exclude: &'a [usize],
    /// Hash of the request's `hash_key`, for the `hash` policy; None when
    /// the farm has no key or the request lacks it.
    pub hash: Option<u64>,
}

impl PickContext<'_> {
    /// In rotation and not already tried.
    #[inline]
    pub fn is_candidate(&self, i: usize) -> bool {
        self.servers[i].state.in_rotation() && !self.exclude.contains(&i)
    }
}

/// Indexes `start..n` then `0..start`: a scan from a rotating offset
/// without a division per step.
#[inline]
pub(crate) fn rotated(n: usize, start: usize) -> impl Iterator<Item = usize> {
    (start..n).chain(0..start)
}

/// A load-balancing policy: picks the index of a server, or None when no
/// server is a candidate.
pub trait Policy: Send + Sync + fmt::Debug {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<usize>;
}

/// Names accepted by `farms[].algorithm`.
pub const ALGORITHMS: &[&str] = &[
    "round_robin",
    "weighted_round_robin",
    "least_requests",
    "least_response_time",
    "random",
    "power_of_two",
    "hash",
];

/// The default algorithm, as in ARR.
pub const DEFAULT_ALGORITHM: &str = "least_requests";

/// Builds the policy named by the config for this server set.
pub fn build(algorithm: &str, servers: &[Server]) -> Result<Box<dyn Policy>, String> {
    match algorithm {
        "round_robin" => Ok(Box::new(RoundRobin::default())),
        "weighted_round_robin" => Ok(Box::new(WeightedRoundRobin::new(servers))),
        "least_requests" => Ok(Box::new(LeastRequests::default())),
        "least_response_time" => Ok(Box::new(LeastResponseTime::default())),
        "random" => Ok(Box::new(Random::new(servers))),
        "power_of_two" => Ok(Box::new(PowerOfTwo::new(servers))),
        "hash" => Ok(Box::new(ConsistentHash::new(servers))),
        other => Err(format!(
            "unknown algorithm {other:?}; expected one of: {}",
            ALGORITHMS.join(", ")
        )),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::farm::state::{ServerKey, ServerState};
    use std::sync::Arc;

    pub fn servers(weights: &[u32]) -> Vec<Server> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let name = format!("s{i}");
                let address = format!("127.0.0.1:{}", 9000 + i);
                let (scheme, authority) =
                    crate::farm::server::parse_address(&address).expect("address");
                Server {
                    name: name.as_str().into(),
                    address: address.as_str().into(),
                    scheme,
                    authority: authority.clone(),
                    weight: *w,
                    host_header: http::HeaderValue::from_str(authority.as_str()).expect("host"),
                    state: Arc::new(ServerState::new(ServerKey {
                        farm: "f".into(),
                        server: name,
                    })),
                    dns: None,
                }
            })
            .collect()
    }

    pub fn ctx(servers: &[Server]) -> PickContext<'_> {
        PickContext {
            servers,
            exclude: &[],
            hash: None,
        }
    }
}
