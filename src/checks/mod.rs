//! Active health checks: the probe and the background task that schedules
//! probes, probation and the minimum-servers floor.

pub mod grpc_probe;
pub mod probe;
pub mod supervisor;
