//! The layer order of `src/` (written in `farmgate::LAYERS`) kept by the
//! build: every `crate::` path and every `super::` that leaves its module must
//! name a top-level module of a lower layer. A failure names the file and the
//! import that runs upward or sideways.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where `module` sits in `layers` (0 is the ground).
fn layer_of(layers: &[&[&str]], module: &str) -> Option<usize> {
    layers.iter().position(|l| l.contains(&module))
}

/// The file's text without comments (doc comments name modules freely) and
/// without string contents; line breaks are kept, so lines keep their numbers.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let line_c = rest.find("//");
        let block_c = rest.find("/*");
        let quote = rest.find('"');
        let next = [line_c, block_c, quote].into_iter().flatten().min();
        let Some(at) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |e| &rest[e..]);
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            out.extend(rest[..end].chars().filter(|c| *c == '\n'));
            rest = &rest[end..];
        } else {
            // A string literal: skip it (escaped quotes included).
            let mut end = 1;
            let b = rest.as_bytes();
            while end < b.len() && b[end] != b'"' {
                end += if b[end] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            out.extend(rest[..end.min(rest.len())].chars().filter(|c| *c == '\n'));
            rest = rest.get(end + 1..).unwrap_or("");
        }
    }
    out
}

/// The module path of a file under `src/`: `src/a/b.rs` is `[a, b]`,
/// `src/a/mod.rs` is `[a]`.
fn module_path(rel: &str) -> Vec<String> {
    let rel = rel.trim_start_matches("src/").trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The line (`number: text`) of `code` at byte `at`.
fn line_at(code: &str, at: usize) -> String {
    let start = code[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = code[at..].find('\n').map_or(code.len(), |i| at + i);
    let number = code[..at].matches('\n').count() + 1;
    format!("{number}: `{}`", code[start..end].trim())
}

/// The top-level modules a file's code names, with the line naming each:
/// `crate::x`, `crate::{x, y}` and `super::` paths that climb out of the
/// file's own top-level module.
fn imports(rel: &str, text: &str) -> Vec<(String, String)> {
    let code = code_only(text);
    let mut found = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        // `$crate::` and `farmgate_crate::` are not ours.
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        let line = line_at(&code, i);
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    found.push((name, line.clone()));
                }
            }
        } else {
            found.push((ident(rest), line));
        }
    }
    let path = module_path(rel);
    for (i, _) in code.match_indices("super::") {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue; // the second `super::` of a chain, or not a path start
        }
        let mut rest = &code[i..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            up += 1;
            rest = r;
        }
        // Only a climb to the crate root leaves the top-level module.
        if up == path.len() {
            found.push((ident(rest), line_at(&code, i)));
        }
    }
    found
}

/// Every import in `files` that does not run downward, as
/// ``file:line: `code` runs upward: `from` (layer i) imports `to` (layer j)``.
fn violations(layers: &[&[&str]], files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, text) in files {
        let path = module_path(rel);
        let Some(own) = path.first() else { continue };
        let Some(own_layer) = layer_of(layers, own) else {
            out.push(format!(
                "{rel}: top-level module `{own}` is in no layer of farmgate::LAYERS (src/lib.rs)"
            ));
            continue;
        };
        let mut seen = BTreeSet::new();
        for (target, line) in imports(rel, text) {
            if target == *own || !seen.insert((target.clone(), line.clone())) {
                continue;
            }
            let Some(to_layer) = layer_of(layers, &target) else {
                continue; // not a top-level module (a re-export at the root, a macro)
            };
            if to_layer >= own_layer {
                let how = if to_layer == own_layer {
                    "sideways, within its own layer"
                } else {
                    "upward"
                };
                out.push(format!(
                    "{rel}:{line} runs {how}: `{own}` (layer {own_layer}) imports `{target}` (layer {to_layer})"
                ));
            }
        }
    }
    out
}

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p
                .strip_prefix(root)
                .expect("under the crate root")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            out.push((rel, text));
        }
    }
}

/// The library's files (`src/lib.rs` and `src/main.rs` stand above every layer).
fn library_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), root, &mut files);
    files.retain(|(rel, _)| rel != "src/lib.rs" && rel != "src/main.rs");
    files
}

#[test]
fn every_import_runs_downward() {
    let found = violations(farmgate::LAYERS, &library_files());
    assert!(
        found.is_empty(),
        "imports that break the layer order of src/lib.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_module_of_src_is_in_a_layer() {
    let mut modules = BTreeSet::new();
    for (rel, _) in library_files() {
        if let Some(m) = module_path(&rel).first() {
            modules.insert(m.clone());
        }
    }
    let missing: Vec<_> = modules
        .iter()
        .filter(|m| layer_of(farmgate::LAYERS, m).is_none())
        .collect();
    assert!(missing.is_empty(), "modules in no layer: {missing:?}");
    let listed: Vec<&str> = farmgate::LAYERS
        .iter()
        .flat_map(|l| l.iter().copied())
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a module listed twice: {listed:?}"
    );
}

// === the checker checks ===

#[test]
fn an_upward_import_fails_naming_file_and_import() {
    // `farm` is ground; reaching up into the forwarder must fail.
    let files = vec![
        (
            "src/farm/server.rs".to_string(),
            "//! A server.\nuse crate::proxy::pool::BackendPool;\nuse super::state::ServerState;\n"
                .to_string(),
        ),
        (
            "src/proxy/forward.rs".to_string(),
            "use crate::farm::{Farm, Server};\n".to_string(),
        ),
    ];
    let found = violations(farmgate::LAYERS, &files);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("src/farm/server.rs:2: `use crate::proxy::pool::BackendPool;`"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("upward"), "{}", found[0]);
}

#[test]
fn grouped_super_and_sideways_imports_are_seen_but_comments_are_not() {
    let layers: &[&[&str]] = &[&["low"], &["mid", "side"], &["high"]];
    let files = vec![
        (
            "src/mid/mod.rs".to_string(),
            "// crate::high is only mentioned\nuse crate::{low::A, high::B};\nuse super::side::C;\nconst S: &str = \"crate::high\";\n"
                .to_string(),
        ),
        (
            "src/low/deep/x.rs".to_string(),
            "use super::super::y;\nuse super::super::super::high::Z;\n".to_string(),
        ),
    ];
    let found = violations(layers, &files);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("`high` (layer 2)") && found[0].contains("upward"));
    assert!(found[1].contains("sideways") && found[1].contains("`side`"));
    assert!(found[2].starts_with("src/low/deep/x.rs") && found[2].contains("`high`"));
}

#[test]
fn a_module_outside_the_layers_fails() {
    let files = vec![("src/stray/mod.rs".to_string(), String::new())];
    let found = violations(&[&["farm"]], &files);
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("`stray` is in no layer"), "{}", found[0]);
}
