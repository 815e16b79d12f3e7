//! Forwarding: sending a request to a server of the farm the request stage
//! chose and streaming the response back (`forward.rs`: retries, the
//! upstream, connection pools, the connector, headers, bodies, upgrades,
//! errors). HTTP/1.1 to servers by default; HTTP/2 (`protocol.rs`,
//! `upstream_h2.rs`, `h2pool.rs`) and gRPC's own error answers and status
//! accounting (`grpc.rs`) for farms that ask; `fast.rs` is the HTTP/1
//! engine's fast forward over raw pooled connections. It knows nothing of
//! routing or caching.

pub mod body;
pub mod connector;
pub mod error;
pub mod exchange;
pub mod fast;
pub mod fast_head;
pub mod forward;
pub mod grpc;
pub mod h2pool;
pub mod headers;
pub mod pool;
pub mod protocol;
pub mod send_proxy;
pub mod spec;
pub mod upgrade;
pub mod upstream;
pub mod upstream_h2;
