//! Rate limiting's core: the GCRA decision per key (`gcra.rs`) and the
//! bounded, sharded store of keys (`store.rs`). Protocol-free and
//! config-free, so the request stage, the listeners and a cluster sync can
//! all drive it; a key's whole state is one number (its theoretical
//! arrival time), which is what makes the store small and exchangeable.

pub mod gcra;
pub mod store;

pub use gcra::{Decision, Rate};
pub use store::Limiter;
