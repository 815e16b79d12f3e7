//! farmgate: the front door for a web farm.
//!
//! A request flows `listener -> rules (pick a farm) -> compress -> cache ->
//! farm (pick a server) -> proxy (forward)`, its response back the same way
//! (`compress` encodes it on the way out), with `health`, `metrics`, `admin` and
//! `config` beside it; `tls` terminates and re-encrypts TLS. `gateway` ties the running pieces together.

pub mod admin;
pub mod cache;
pub mod compress;
pub mod config;
pub mod demo;
pub mod farm;
pub mod gateway;
pub mod health;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod rules;
pub mod tls;

pub use gateway::{Gateway, Running};
