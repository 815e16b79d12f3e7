//! Configuration: one YAML file in, one immutable runtime snapshot out.
//!
//! The pipeline is
//! `file text -> raw (serde types mirroring YAML) -> build (validate, compile) -> Snapshot`.
//! Type errors come from the YAML parser with their position; semantic
//! problems (unknown farm, duplicate name, ...) are gathered by key path in
//! `build` and placed in the file by `locate`. Either way every error reads
//! `file:line:column: key.path: message`.

pub mod build;
pub mod cluster;
pub mod expand;
pub mod include;
pub use crate::ground::{error, locate, units};
pub mod raw;
pub mod schema;
pub mod servers;
pub mod snapshot;

pub use error::{ConfigError, ConfigErrors};
pub use snapshot::{FarmRuntime, Snapshot};

use crate::farm::StateRegistry;
use std::path::Path;

/// Reads and validates a config file.
pub fn load_file(path: &Path, registry: &StateRegistry) -> Result<Snapshot, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::whole_file(&file, format!("cannot read config file: {e}")))?;
    load_str(&text, &file, registry)
}

/// Validates config text; `file` names it in messages, and its directory
/// is where relative `include` patterns and map files are found.
/// `${VAR}` references are expanded from the environment first.
pub fn load_str(
    text: &str,
    file: &str,
    registry: &StateRegistry,
) -> Result<Snapshot, ConfigErrors> {
    let original = text;
    let text = expand::expand_env(text, file)?;
    let mut raw = parse_raw(&text, file)?;
    let base = build::base_dir(file);
    let origins = include::compose(&mut raw, (file, &text), base, expand::expand_env)?;
    let place = |(path, message): (String, String)| {
        let (file, text, path) = origins.place(&path);
        let (line, column) = locate::locate(text, &path);
        ConfigError {
            file: file.to_string(),
            line,
            column,
            path,
            message,
        }
    };
    let mut snapshot = build::build(raw, file, registry)
        .map_err(|problems| ConfigErrors(problems.0.into_iter().map(place).collect()))?;
    snapshot.warnings = std::mem::take(&mut snapshot.warnings)
        .into_iter()
        .map(|w| place((w.path, w.message)))
        .collect();
    snapshot.tier_hash = cluster::tier_hash(&text, &snapshot);
    snapshot.sources.extend(origins.sources);
    // Again from the same text (included and map files are read again).
    let (original, file): (std::sync::Arc<str>, std::sync::Arc<str>) =
        (original.into(), file.into());
    snapshot.rebuild = snapshot::Rebuild(std::sync::Arc::new(move |registry| {
        load_str(&original, &file, registry)
    }));
    Ok(snapshot)
}

/// Parses YAML into the raw serde types, with positioned errors.
pub fn parse_raw(text: &str, file: &str) -> Result<raw::RawConfig, ConfigErrors> {
    if text.trim().is_empty() {
        return Err(ConfigErrors::whole_file(file, "the config file is empty"));
    }
    parse_yaml(text, file)
}

/// Parses YAML into `T`, with errors placed at their line and column.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, ConfigErrors> {
    yaml_serde::from_str::<T>(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let full = e.to_string();
        // yaml_serde renders "path: message at line L column C".
        let without_pos = match full.rfind(" at line ") {
            Some(i) => &full[..i],
            None => full.as_str(),
        };
        let (path, message) = match without_pos.split_once(": ") {
            Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
            _ => (String::new(), without_pos.to_string()),
        };
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line,
            column,
            path,
            message: error::friendly(&message),
        }])
    })
}

#[cfg(test)]
mod section_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match load_str(text, "farmgate.yaml", &StateRegistry::default()) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const GOOD: &str = "\
listeners:
  - bind: \"127.0.0.1:0\"
farms:
  - name: web
    algorithm: round_robin
    servers:
      - address: \"127.0.0.1:9001\"
      - address: \"127.0.0.1:9002\"
        weight: 2
";

    #[test]
    fn good_config_builds() {
        let s = load_str(GOOD, "f.yaml", &StateRegistry::default()).expect("valid");
        assert_eq!(s.farms[0].servers.len(), 2);
        assert_eq!(s.default_farm, Some(0));
        assert_eq!(
            s.summary(),
            "1 listener(s), 1 farm(s), 2 server(s), 0 rule(s)"
        );
    }

    #[test]
    fn type_error_names_line_column_and_key() {
        let bad = GOOD.replace("weight: 2", "weight: heavy");
        assert_eq!(
            errors(&bad),
            vec!["farmgate.yaml:9:17: farms[0].servers[1].weight: expected a whole number, found string \"heavy\""]
        );
    }

    #[test]
    fn every_semantic_problem_is_listed_with_its_place() {
        let bad = "\
listeners:
  - bind: \"127.0.0.1:8080\"
  - bind: \"127.0.0.1:8080\"
farms:
  - name: web
    algorithm: fastest
    servers:
      - address: \"127.0.0.1\"
  - name: web
    servers: []
default_farm: nowhere
";
        let errs = errors(bad);
        assert!(errs.contains(&"farmgate.yaml:3:11: listeners[1].bind: another listener already binds 127.0.0.1:8080".to_string()), "{errs:#?}");
        assert!(
            errs.iter().any(|e| e.starts_with(
                "farmgate.yaml:6:16: farms[0].algorithm: unknown algorithm \"fastest\""
            )),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("farmgate.yaml:8:18: farms[0].servers[0].address:")),
            "{errs:#?}"
        );
        assert!(
            errs.contains(
                &"farmgate.yaml:9:11: farms[1].name: duplicate farm name \"web\"".to_string()
            ),
            "{errs:#?}"
        );
        assert!(
            errs.contains(
                &"farmgate.yaml:10:14: farms[1].servers: farm \"web\" has no servers".to_string()
            ),
            "{errs:#?}"
        );
        assert!(
            errs.contains(
                &"farmgate.yaml:11:15: default_farm: unknown farm \"nowhere\"".to_string()
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let bad = GOOD.replace("algorithm:", "algoritm:");
        let errs = errors(&bad);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("farmgate.yaml:5:5: farms[0]: unknown field `algoritm`"),
            "{errs:?}"
        );
    }

    #[test]
    fn broken_yaml_names_position() {
        let errs = errors("listeners:\n  - bind: [\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("farmgate.yaml:"), "{errs:?}");
    }
}
