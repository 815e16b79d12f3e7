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
//! - `schedule`: when to renew and how long to back off.
//! - `status`: what the admin API, status page and metrics show.

pub mod challenges;
pub mod config;
pub mod manager;
pub mod order;
pub mod schedule;
pub mod status;
pub mod store;

pub use challenges::{book, ChallengeBook, ACME_TLS_ALPN, HTTP01_PREFIX};
pub use config::{AcmeSpec, RawAcme};
pub use status::{statuses, AcmeStatus};
