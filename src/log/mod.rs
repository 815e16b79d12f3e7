//! Logging: the application log through `tracing`, and the access log
//! (`access`, its line formats in `format`, its syslog sender in `syslog`),
//! which has its own writer so its format is stable.

pub mod access;
pub mod format;
pub mod spec;
pub mod syslog;

pub use spec::LogSpec;

use tracing_subscriber::EnvFilter;

/// Installs the application log at `level` unless RUST_LOG says otherwise.
/// Safe to call more than once (tests); later calls do nothing.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("farmgate={level},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
