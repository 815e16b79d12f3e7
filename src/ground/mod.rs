//! The ground layer's small shared pieces: config units, config errors that
//! say where, and the YAML locator. Imports nothing from the rest of farmgate.

pub mod error;
pub mod locate;
pub mod units;
