//! Forwarding: sending a request to a server of the farm the request stage
//! chose and streaming the response back (`forward.rs`: retries, the
//! upstream, connection pools, the connector, headers, bodies, upgrades,
//! errors). It knows nothing of routing or caching. `fast.rs` is the HTTP/1
//! engine's fast forward over raw pooled connections.

pub mod body;
pub mod connector;
pub mod error;
pub mod exchange;
pub mod fast;
pub mod forward;
pub mod headers;
pub mod pool;
pub mod send_proxy;
pub mod spec;
pub mod upgrade;
pub mod upstream;
