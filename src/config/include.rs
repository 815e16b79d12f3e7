//! `include:`: farms, rules, listeners, rewrite maps and limits kept in
//! other files (`include: [farms/*.yaml, rules.yaml]`), merged into the main
//! file's lists: the main file's entries first, then each included file's,
//! in the order the patterns and (sorted) file names give.
//!
//! Each included file is expanded (`${VAR}`) and parsed on its own, so its
//! type errors carry its own name and position; [`Origins`] remembers which
//! file each merged list entry came from, so a problem the builder reports
//! by key path (`farms[3].name`) is placed in the included file
//! (`farms/api.yaml:1:9: farms[0].name: ...`).

use super::error::{ConfigError, ConfigErrors};
use super::raw::{RawConfig, RawFarm, RawListener, RawRule};
use crate::limits::RawLimit;
use crate::rules::maps::RawMap;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// An included file: the lists it may add to.
#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawInclude {
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub farms: Vec<RawFarm>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    #[serde(default)]
    pub rewrite_maps: Vec<RawMap>,
    #[serde(default)]
    pub limits: Vec<RawLimit>,
}

/// The lists an included file contributes to, by their key.
const LISTS: [&str; 5] = ["listeners", "farms", "rules", "rewrite_maps", "limits"];

/// One run of merged entries from one file.
#[derive(Debug, Clone)]
struct Run {
    list: usize,
    start: usize,
    len: usize,
    file: usize,
}

/// The files a config was composed of (the main one first) and where each
/// merged list entry came from.
#[derive(Debug, Default)]
pub struct Origins {
    /// (name for messages, expanded text) of each file.
    files: Vec<(String, String)>,
    runs: Vec<Run>,
    /// Files read (and directories listed) besides the main file.
    pub sources: Vec<PathBuf>,
}

impl Origins {
    /// The file, its text and the key path within it for a problem the
    /// builder reported on the merged config.
    pub fn place<'a>(&'a self, path: &str) -> (&'a str, &'a str, String) {
        let main = |p: &str| (self.files[0].0.as_str(), self.files[0].1.as_str(), p.into());
        if self.files.len() < 2 {
            return main(path);
        }
        for (li, list) in LISTS.iter().enumerate() {
            let Some(rest) = path.strip_prefix(list).and_then(|r| r.strip_prefix('[')) else {
                continue;
            };
            let Some((n, tail)) = rest.split_once(']') else {
                break;
            };
            let Ok(n) = n.parse::<usize>() else {
                break;
            };
            if let Some(run) = self
                .runs
                .iter()
                .find(|r| r.list == li && (r.start..r.start + r.len).contains(&n))
            {
                let (file, text) = &self.files[run.file];
                // One run per list and file: the index within the file.
                let local = n - run.start;
                return (file, text, format!("{list}[{local}]{tail}"));
            }
        }
        main(path)
    }
}

/// Reads the files `raw.include` names (relative to `base`) and merges
/// their lists into `raw`. `main` is the main file's (name, expanded text).
pub fn compose(
    raw: &mut RawConfig,
    main: (&str, &str),
    base: &Path,
    expand: impl Fn(&str, &str) -> Result<String, ConfigErrors>,
) -> Result<Origins, ConfigErrors> {
    let mut origins = Origins {
        files: vec![(main.0.to_string(), main.1.to_string())],
        ..Origins::default()
    };
    let lens = |r: &RawConfig| {
        [
            r.listeners.len(),
            r.farms.len(),
            r.rules.len(),
            r.rewrite_maps.len(),
            r.limits.len(),
        ]
    };
    for (list, len) in lens(raw).into_iter().enumerate() {
        origins.runs.push(Run {
            list,
            start: 0,
            len,
            file: 0,
        });
    }
    let mut errors = Vec::new();
    let patterns = std::mem::take(&mut raw.include);
    for (i, pattern) in patterns.iter().enumerate() {
        let files = match expand_pattern(base, pattern, &mut origins.sources) {
            Ok(f) => f,
            Err(message) => {
                let (line, column) = super::locate::locate(main.1, &format!("include[{i}]"));
                errors.push(ConfigError {
                    file: main.0.to_string(),
                    line,
                    column,
                    path: format!("include[{i}]"),
                    message,
                });
                continue;
            }
        };
        for path in files {
            let name = path.display().to_string();
            origins.sources.push(path.clone());
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.extend(
                        ConfigErrors::whole_file(&name, format!("cannot read included file: {e}"))
                            .0,
                    );
                    continue;
                }
            };
            let text = match expand(&text, &name) {
                Ok(t) => t,
                Err(e) => {
                    errors.extend(e.0);
                    continue;
                }
            };
            let inc = if text.trim().is_empty() {
                RawInclude::default()
            } else {
                match super::parse_yaml::<RawInclude>(&text, &name) {
                    Ok(inc) => inc,
                    Err(e) => {
                        errors.extend(e.0);
                        continue;
                    }
                }
            };
            let file = origins.files.len();
            let before = lens(raw);
            raw.listeners.extend(inc.listeners);
            raw.farms.extend(inc.farms);
            raw.rules.extend(inc.rules);
            raw.rewrite_maps.extend(inc.rewrite_maps);
            raw.limits.extend(inc.limits);
            for (list, (b, a)) in before.into_iter().zip(lens(raw)).enumerate() {
                if a > b {
                    origins.runs.push(Run {
                        list,
                        start: b,
                        len: a - b,
                        file,
                    });
                }
            }
            origins.files.push((name, text));
        }
    }
    if errors.is_empty() {
        Ok(origins)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The files a pattern names: a plain path (which must exist), or `*` and
/// `?` in the last component (any number of matches, sorted by name). The
/// directory of a pattern is watched too, so a file added there reloads.
fn expand_pattern(
    base: &Path,
    pattern: &str,
    sources: &mut Vec<PathBuf>,
) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let Some(name) = full.file_name().and_then(|n| n.to_str()) else {
        return Err(format!("{pattern:?} does not name a file"));
    };
    if !name.contains(['*', '?']) {
        if !full.is_file() {
            return Err(format!("included file {} does not exist", full.display()));
        }
        return Ok(vec![full]);
    }
    let dir = full.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err(format!(
            "{pattern:?}: wildcards are allowed in the file name only"
        ));
    }
    let entries = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &dir
    })
    .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(name, n)))
        .map(|e| dir.join(e.file_name()))
        .collect();
    out.sort();
    sources.push(dir);
    Ok(out)
}

/// Does `name` match `pattern` (`*` any run, `?` one character)? A
/// leading dot must be matched literally, as in the shell.
fn wildcard(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_like_the_shell() {
        assert!(wildcard("*.yaml", "api.yaml"));
        assert!(!wildcard("*.yaml", "api.yaml.bak"));
        assert!(!wildcard("*.yaml", ".hidden.yaml"));
        assert!(wildcard("farm-??.yml", "farm-01.yml"));
        assert!(wildcard("a*b*c", "a-b-x-c"));
        assert!(!wildcard("a*b*c", "a-b-x-d"));
    }
}
