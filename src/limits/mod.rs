//! Abuse protection's building blocks, free of any HTTP stack:
//!
//! - `gcra.rs`: the rate decision per key (GCRA: one timestamp a key);
//! - `store.rs`: where keys' state lives, behind the [`KeyStore`] trait (the
//!   local store is a bounded, lock-free table);
//! - `cluster.rs`: the store of a `scope: cluster` limit: the local table
//!   plus the per-key counts a tier's sync task exchanges through Redis;
//! - `inflight.rs`: keys' open requests or connections (a limit's
//!   `concurrent`, a listener's `max_connections_per_ip`);
//! - `key.rs`: what a limit counts by, read from a request in place;
//! - `access.rs`: IP allow and deny lists and address sets;
//! - `config.rs`: the `limits:` section (raw types, compiler, [`Limit`]) and
//!   the [`LimitRegistry`] that keeps limits' state across reloads.
//!
//! The request stage applies them (`request/limit.rs`), the listeners apply
//! connection caps and access lists (`listener/`).

pub mod access;
pub mod cluster;
pub mod config;
pub mod gcra;
pub mod inflight;
pub mod key;
pub mod store;

pub use access::{AccessList, NetSet, RawAccess};
pub use cluster::ClusterStore;
pub use config::{Limit, LimitRegistry, LimitState, Limits, RawLimit, Scope, SyncSpec};
pub use gcra::{Decision, Rate};
pub use inflight::{Admit, InFlight, InFlightGuard};
pub use key::{LimitKey, RequestKeys};
pub use store::{KeyStore, LocalStore};
