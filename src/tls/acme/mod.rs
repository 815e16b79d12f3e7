//! Automatic certificates (ACME, RFC 8555) for TLS listeners:
//! `listeners[].tls.acme`.
//!
//! - `config`: the YAML section and its offline compiler.
//! - `store`: where the account and certificates are kept, behind a trait
//!   (a directory today; a shared store can plug in for a tier).
//! - `order`: one order with `instant-acme`: account, authorizations,
//!   challenges, finalization.
//! - `challenges`: pending HTTP-01 tokens and TLS-ALPN-01 certificates, read
//!   by the request stage and the TLS resolver.
//! - `manager`: per listener: placeholder, stored certificate, renewal,
//!   back-off, installation through the hot certificate swap.
//! - `placeholder`: the self-signed certificate served until the first issue.
//! - `lease`: one attempt: alone an order, in a tier an order under the
//!   tier's lock with a renewed lease.
//! - `tier`: what a store shared by a tier (`cluster:`, Redis) adds: the
//!   order lock, challenge answers for every instance, announcements.
//! - `schedule`: when to renew and how long to back off.
//! - `plan`: the manager's next renewal from the CA's window or the rule.
//! - `ari`: the CA's renewal window (RFC 9773) when it offers one, and the
//!   `replaces` of a renewal's order; `ari_client` the HTTP client it asks
//!   with.
//! - `status`: what the admin API, status page and metrics show.

pub mod ari;
pub mod ari_client;
pub mod challenges;
pub mod config;
pub mod lease;
pub mod manager;
pub mod order;
pub mod placeholder;
pub mod plan;
pub mod schedule;
pub mod status;
pub mod store;
pub mod tier;

pub use challenges::{book, ChallengeBook, ACME_TLS_ALPN, HTTP01_PREFIX};
pub use config::{AcmeSpec, RawAcme};
pub use status::{statuses, AcmeStatus};
pub use tier::{AcmeTier, Challenge, Lock, TierSlot};
