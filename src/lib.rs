//! farmgate: the front door for a web farm.
//!
//! A request flows `listener -> rules (pick a farm) -> cache -> farm (pick a
//! server) -> proxy (forward)`, with `health`, `metrics`, `admin` and
//! `config` beside it; `tls` terminates and re-encrypts TLS. `gateway` ties the running pieces together.

pub mod admin;
pub mod cache;
pub mod config;
pub mod demo;
pub mod farm;
pub mod gateway;
pub mod health;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod proxy;
pub mod reload;
pub mod rules;
pub mod signals;
pub mod tls;

pub use gateway::{Gateway, Running};
