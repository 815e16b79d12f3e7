//! The `resolve:` section: where host names in server addresses are looked
//! up. By default the system resolver; with `hosts_file`, a hosts-style
//! file answers first (re-read at every lookup, so editing it moves
//! traffic without a reload), and `system: false` makes it the only source.

use super::{hosts, Resolver, SystemResolver};
use crate::ground::error::Problems;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// `resolve:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawResolve {
    /// A hosts-style file (`IP name [alias...]` per line) that answers for
    /// the names it lists; read again at every lookup. Relative to the
    /// config file's directory.
    #[serde(default)]
    pub hosts_file: Option<PathBuf>,
    /// Ask the system resolver for names the hosts file does not list
    /// (default true).
    #[serde(default)]
    pub system: Option<bool>,
}

/// `resolve:` compiled: the resolver the build and the re-resolving task use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveSpec {
    pub hosts_file: Option<PathBuf>,
    pub system: bool,
}

impl Default for ResolveSpec {
    fn default() -> Self {
        ResolveSpec {
            hosts_file: None,
            system: true,
        }
    }
}

impl Resolver for ResolveSpec {
    fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Some(path) = &self.hosts_file {
            let hosts = hosts::read(path)?;
            if let Some(ips) = hosts.get(&host.to_ascii_lowercase()) {
                return Ok(ips.clone());
            }
            if !self.system {
                return Err(format!("not listed in {}", path.display()));
            }
        }
        SystemResolver.lookup(host)
    }
}

pub fn compile(raw: &RawResolve, base: &Path, p: &mut Problems) -> ResolveSpec {
    let system = raw.system.unwrap_or(true);
    let hosts_file = raw.hosts_file.as_ref().map(|f| base.join(f));
    if let Some(path) = &hosts_file {
        if let Err(e) = hosts::read(path) {
            p.add("resolve.hosts_file", e);
        }
    } else if !system {
        p.add(
            "resolve.system",
            "with system: false names resolve only through hosts_file; give one",
        );
    }
    ResolveSpec { hosts_file, system }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_answers_first_and_alone_without_system() {
        let dir = std::env::temp_dir().join(format!("fg-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("hosts"), "127.0.0.9 api.test\n").unwrap_or_else(|e| panic!("{e}"));
        let mut p = Problems::default();
        let raw = RawResolve {
            hosts_file: Some("hosts".into()),
            system: Some(false),
        };
        let spec = compile(&raw, &dir, &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            spec.lookup("API.test").ok(),
            Some(vec!["127.0.0.9".parse().unwrap_or_else(|_| unreachable!())])
        );
        let e = spec.lookup("other.test").err().unwrap_or_default();
        assert!(e.starts_with("not listed in "), "{e}");
        let missing = RawResolve {
            hosts_file: Some("nope".into()),
            system: None,
        };
        compile(&missing, &dir, &mut p);
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.0[0].0, "resolve.hosts_file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
