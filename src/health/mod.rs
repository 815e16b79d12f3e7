//! Server health: whether each server of each farm may take traffic.
//!
//! Each server's health record ([`ServerHealth`]) is attached to its
//! `farm::ServerState` by identity through the [`HealthRegistry`], so it
//! survives reloads; `farm/` itself never names it. Three sources decide
//! health:
//! - explicit URL checks, probed by `checks/` (one layer up) and applied here
//!   through a consecutive-count rise/fall state machine (`state.rs`);
//! - live traffic (`passive.rs`): every attempt the forwarder reports through
//!   [`FarmHealth::record`], failures counted in a lock-free sliding window,
//!   with probation when no explicit check can bring a server back;
//! - the minimum-servers floor (`floor.rs`), which puts every enabled
//!   server back in rotation when too few are healthy.
//!
//! Slow start and the probation trial are admission, part of selection in
//! `farm/admission.rs`; this module starts and ends them. `spec.rs` owns the
//! YAML sections (raw types and compiler); `farm.rs` is the per-farm runtime
//! part of a snapshot.

pub mod farm;
pub mod floor;
pub mod outcome;
pub mod passive;
pub mod spec;
pub mod state;
pub mod status_ranges;
pub mod window;

pub use farm::FarmHealth;
pub use outcome::{ProbeReport, Reason};
pub use spec::{HealthCheck, HealthSpec, LiveTraffic};
pub use state::{HealthRegistry, HealthView, ServerHealth};
pub use status_ranges::StatusSet;

pub use crate::ground::clock::{human, now_ms};
