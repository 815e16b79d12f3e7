//! The request stage.

pub mod route;
