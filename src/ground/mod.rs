//! The ground layer's small shared pieces: config units, config errors that
//! say where, the YAML locator, client addresses. Imports nothing from the rest of farmgate.

pub mod clock;
pub mod error;
pub mod hex;
pub mod locate;
pub mod net;
pub mod trace_context;
pub mod units;
pub mod worker;
pub mod yaml;
