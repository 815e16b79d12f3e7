//! Rewrite maps (IIS URL Rewrite `<rewriteMaps>`, nginx `map`): named
//! key -> value tables that templates and condition inputs look up as
//! `{MapName:{R:1}}`. This file owns the `rewrite_maps:` section end to
//! end: its serde types, the compiler (inline entries, or a YAML or
//! two-column text file for long redirect lists) and the runtime table.
//!
//! A lookup is one hash probe on the exact key. Maps are case-insensitive
//! by default, as in IIS: keys are stored folded to lower case and a looked
//! up key is folded on the stack (no allocation for keys up to
//! [`STACK_KEY`] bytes).

use super::raw::TextMap;
use crate::ground::error::Problems;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Keys up to this length are folded on the stack.
pub const STACK_KEY: usize = 256;

/// `rewrite_maps[]`: one named table.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMap {
    /// Referred to as `{Name:key}` in templates (case-insensitive).
    pub name: String,
    /// Entries written in the config.
    #[serde(default)]
    pub entries: TextMap,
    /// A file of more entries: `.yaml`/`.yml` holds one mapping, any other
    /// file two whitespace-separated columns per line (`#` comments).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The value when the key is not in the map (default empty, as in IIS).
    #[serde(default)]
    pub default: Option<String>,
    /// Compare keys without regard to ASCII case (default true, as in IIS).
    #[serde(default)]
    pub ignore_case: Option<bool>,
}

/// A compiled map.
#[derive(Debug)]
pub struct RewriteMap {
    pub name: Arc<str>,
    entries: HashMap<Box<[u8]>, Box<[u8]>>,
    default: Box<[u8]>,
    ignore_case: bool,
}

impl PartialEq for RewriteMap {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for RewriteMap {}

impl RewriteMap {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value for `key`, or the map's default.
    #[inline]
    pub fn get(&self, key: &[u8]) -> &[u8] {
        let found = if !self.ignore_case || !key.iter().any(u8::is_ascii_uppercase) {
            self.entries.get(key)
        } else if key.len() <= STACK_KEY {
            let mut buf = [0u8; STACK_KEY];
            let folded = &mut buf[..key.len()];
            folded.copy_from_slice(key);
            folded.make_ascii_lowercase();
            self.entries.get(&*folded)
        } else {
            self.entries.get(&*key.to_ascii_lowercase())
        };
        found.map_or(&self.default, |v| v)
    }
}

/// The compiled maps of a snapshot, found by name.
#[derive(Debug, Default)]
pub struct Maps {
    by_name: HashMap<String, Arc<RewriteMap>>,
    /// Files the maps were read from: reloads watch them with the config.
    pub files: Vec<PathBuf>,
}

impl Maps {
    /// The map called `name` (case-insensitive, as IIS names are).
    pub fn get(&self, name: &str) -> Option<&Arc<RewriteMap>> {
        self.by_name.get(&name.to_ascii_lowercase())
    }
    pub fn len(&self) -> usize {
        self.by_name.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Compiles `rewrite_maps:`; relative file paths are taken from `base`
/// (the config file's directory).
pub fn compile(raw: &[RawMap], base: &Path, p: &mut Problems) -> Maps {
    let mut maps = Maps::default();
    for (i, m) in raw.iter().enumerate() {
        let at = format!("rewrite_maps[{i}]");
        if !valid_name(&m.name) {
            p.add(
                format!("{at}.name"),
                format!(
                    "{:?} cannot name a map: use letters, digits and _, starting with a \
                     letter, at least two characters (R and C are back-references)",
                    m.name
                ),
            );
            continue;
        }
        let folded = m.name.to_ascii_lowercase();
        if maps.by_name.contains_key(&folded) {
            p.add(
                format!("{at}.name"),
                format!("duplicate map name {:?}", m.name),
            );
            continue;
        }
        let ignore_case = m.ignore_case.unwrap_or(true);
        let mut table = Table::new(ignore_case);
        for (k, v) in &m.entries.0 {
            if table.insert(k, v, 0).is_err() {
                p.add(
                    format!("{at}.entries"),
                    format!("duplicate key {k:?} in map {:?}", m.name),
                );
            }
        }
        if let Some(file) = &m.file {
            let path = base.join(file);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let shown = path.display().to_string();
                    let yaml = matches!(
                        path.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml")
                    );
                    let errors = if yaml {
                        load_yaml(&text, &mut table)
                    } else {
                        load_columns(&text, &mut table)
                    };
                    for (line, message) in errors.into_iter().take(20) {
                        p.add(format!("{at}.file"), format!("{shown}:{line}: {message}"));
                    }
                }
                Err(e) => p.add(
                    format!("{at}.file"),
                    format!("cannot read {}: {e}", path.display()),
                ),
            }
            maps.files.push(path);
        }
        let map = RewriteMap {
            name: m.name.as_str().into(),
            entries: table.entries,
            default: m.default.clone().unwrap_or_default().into_bytes().into(),
            ignore_case,
        };
        maps.by_name.insert(folded, Arc::new(map));
    }
    maps
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Entries being gathered, with the line each key came from.
struct Table {
    entries: HashMap<Box<[u8]>, Box<[u8]>>,
    lines: HashMap<Box<[u8]>, usize>,
    ignore_case: bool,
}

impl Table {
    fn new(ignore_case: bool) -> Self {
        Table {
            entries: HashMap::new(),
            lines: HashMap::new(),
            ignore_case,
        }
    }

    /// Adds an entry; a key already present is refused with the line it
    /// was first seen on.
    fn insert(&mut self, key: &str, value: &str, line: usize) -> Result<(), usize> {
        let mut k = key.as_bytes().to_vec();
        if self.ignore_case {
            k.make_ascii_lowercase();
        }
        let k: Box<[u8]> = k.into();
        if let Some(first) = self.lines.get(&k) {
            return Err(*first);
        }
        self.lines.insert(k.clone(), line);
        self.entries.insert(k, value.as_bytes().into());
        Ok(())
    }
}

/// Two columns per line: key, whitespace, value. Blank lines and lines
/// starting with `#` are skipped. Returns (line, message) for bad lines.
fn load_columns(text: &str, table: &mut Table) -> Vec<(usize, String)> {
    let mut errors = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut cols = l.split_whitespace();
        let (Some(k), Some(v), None) = (cols.next(), cols.next(), cols.next()) else {
            errors.push((
                line,
                format!("expected two columns, a key and a value, found {l:?}"),
            ));
            continue;
        };
        if let Err(first) = table.insert(k, v, line) {
            errors.push((line, format!("duplicate key {k:?} (first on line {first})")));
        }
    }
    errors
}

/// A YAML file holding one mapping of keys to values.
fn load_yaml(text: &str, table: &mut Table) -> Vec<(usize, String)> {
    match yaml_serde::from_str::<TextMap>(text) {
        Ok(map) => {
            let mut errors = Vec::new();
            for (k, v) in &map.0 {
                if table.insert(k, v, 0).is_err() {
                    let line = key_line(text, k);
                    errors.push((line, format!("duplicate key {k:?}")));
                }
            }
            errors
        }
        Err(e) => {
            let line = e.location().map_or(1, |l| l.line());
            let full = e.to_string();
            let message = full.rfind(" at line ").map_or(&*full, |i| &full[..i]);
            vec![(line, message.to_string())]
        }
    }
}

/// The line of the last top-level occurrence of `key` in a YAML mapping
/// (where a duplicate is), for messages.
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start_matches(['"', '\'']);
            l.starts_with(key)
                && l[key.len()..]
                    .trim_start_matches(['"', '\''])
                    .starts_with(':')
        })
        .map(|(n, _)| n + 1)
        .last()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str, ignore_case: bool) -> (Table, Vec<(usize, String)>) {
        let mut t = Table::new(ignore_case);
        let e = load_columns(text, &mut t);
        (t, e)
    }

    #[test]
    fn two_column_files_report_bad_lines() {
        let (t, e) = table("# old -> new\n/a /b\n\n/c\n/A /d\n/x /y z\n", true);
        assert_eq!(t.entries.len(), 1);
        assert_eq!(
            e,
            vec![
                (
                    4,
                    "expected two columns, a key and a value, found \"/c\"".into()
                ),
                (5, "duplicate key \"/A\" (first on line 2)".into()),
                (
                    6,
                    "expected two columns, a key and a value, found \"/x /y z\"".into()
                ),
            ]
        );
    }

    #[test]
    fn lookups_fold_case_unless_told_not_to() {
        let (t, _) = table("/Old /new\n", true);
        let m = RewriteMap {
            name: "m".into(),
            entries: t.entries,
            default: b"dflt"[..].into(),
            ignore_case: true,
        };
        assert_eq!(m.get(b"/OLD"), b"/new");
        assert_eq!(m.get(b"/old"), b"/new");
        assert_eq!(m.get(&[b'A'; 300]), b"dflt");
        let (t, _) = table("/Old /new\n", false);
        let m = RewriteMap {
            name: "m".into(),
            entries: t.entries,
            default: Box::default(),
            ignore_case: false,
        };
        assert_eq!(m.get(b"/Old"), b"/new");
        assert_eq!(m.get(b"/old"), b"");
    }

    #[test]
    fn yaml_files_name_the_duplicate_line() {
        let mut t = Table::new(true);
        let e = load_yaml("/a: /b\n/c: /d\n/A: /e\n", &mut t);
        assert_eq!(e, vec![(3, "duplicate key \"/A\"".into())]);
        let e = load_yaml("/a: [\n", &mut Table::new(true));
        assert_eq!(e.len(), 1);
    }
}
