//! The response cache (RFC 9111, shared cache) with request consolidation.
//! The request stage calls [`serve`] between routing and forwarding, handing
//! it a [`Fetch`] (the forwarder) for what it does not have; the cache never
//! names the forwarder itself.
//!
//! | file | owns |
//! |---|---|
//! | `config.rs` | `farms[].cache`: serde shape, defaults, compiled [`CacheSpec`] |
//! | `control.rs` | parsing Cache-Control, Expires, Age, Date, Pragma |
//! | `targeted.rs` | CDN-Cache-Control and other targeted fields (RFC 9213) |
//! | `policy.rs` | storability, freshness lifetime, age, reuse rules |
//! | `key.rs` | primary keys and Vary secondary keys |
//! | `entry.rs` | a stored response |
//! | `store.rs` | the bounded moka store, Vary and pass markers, purge |
//! | `registry.rs` | stores by farm name, surviving reloads |
//! | `stats.rs` | per-farm counters for metrics |
//! | `consolidate.rs` | one backend request for concurrent misses |
//! | `buffer.rs` | the shared growing body followers stream from |
//! | `fill.rs` | the task that reads a backend body and stores it |
//! | `revalidate.rs` | conditional requests for stale entries, 304 refresh |
//! | `range.rs` | byte ranges cut from stored or fetched complete responses |
//! | `conditional.rs` | client If-None-Match / If-Modified-Since |
//! | `invalidate.rs` | invalidation after successful unsafe requests |
//! | `respond.rs` | responses from the cache, 304s, X-Cache |
//! | `variants.rs` | encoded forms of stored bodies, kept for later hits |
//! | `serve.rs` | the request path through all of the above |

pub mod buffer;
pub mod conditional;
pub mod config;
pub mod consolidate;
pub mod control;
pub mod entry;
pub mod fill;
pub mod invalidate;
pub mod key;
pub mod policy;
pub mod range;
pub mod registry;
pub mod respond;
pub mod revalidate;
pub mod serve;
pub mod stats;
pub mod store;
pub mod targeted;
pub mod variants;

pub use config::{CacheSpec, QueryString, RawCache};
pub use registry::CacheRegistry;
pub use serve::{serve, Answer, Fetch};
pub use stats::{CacheResult, CacheStats};
pub use store::CacheStore;
pub use variants::StoredResponse;

use std::sync::Arc;

/// A farm's cache as a runtime snapshot holds it: the compiled settings
/// and the long-lived store (shared with the registry and later snapshots).
/// Cheap to clone (a background revalidation takes its own).
#[derive(Debug, Clone)]
pub struct FarmCache {
    pub spec: CacheSpec,
    pub store: Arc<CacheStore>,
    pub targeted: Arc<config::Targeted>,
}

impl FarmCache {
    /// The directives the cache obeys for a response: its first valid
    /// targeted field's (RFC 9213), else its Cache-Control.
    pub fn response_control(&self, headers: &http::HeaderMap) -> control::CacheControl {
        targeted::select(headers, &self.targeted.names)
            .unwrap_or_else(|| control::CacheControl::from_headers(headers))
    }
}
