//! The config's JSON Schema: `farmgate schema` matches the shipped
//! config/farmgate.schema.json, every example config validates against it
//! and names it for YAML language servers, the schema rejects what `check`
//! rejects for shape (a typo'd key, a wrong type), and `farmgate check
//! --format json` reports problems for CI.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use process::{bin, temp_file};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped_schema() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("config/farmgate.schema.json")).unwrap(),
    )
    .unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&shipped_schema()).unwrap()
}

/// Every YAML config under examples/ and config/.
fn example_configs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![
        Path::new(ROOT).join("examples"),
        Path::new(ROOT).join("config"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn yaml_value(text: &str) -> serde_json::Value {
    yaml_serde::from_str(text).unwrap()
}

#[test]
fn schema_command_matches_the_shipped_file() {
    let out = Command::new(bin()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let shipped =
        std::fs::read_to_string(Path::new(ROOT).join("config/farmgate.schema.json")).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == shipped,
        "config/farmgate.schema.json is stale: run `cargo run -- schema > config/farmgate.schema.json`"
    );
}

#[test]
fn every_example_validates_and_names_the_schema() {
    let v = validator();
    let examples = example_configs();
    assert!(examples.len() >= 6, "{examples:?}");
    for path in examples {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap_or("");
        let rel = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| {
                panic!(
                    "{}: first line is not the yaml-language-server $schema line",
                    path.display()
                )
            });
        let schema_file = path.parent().unwrap().join(rel);
        assert!(
            schema_file.canonicalize().ok()
                == Path::new(ROOT)
                    .join("config/farmgate.schema.json")
                    .canonicalize()
                    .ok(),
            "{}: $schema={rel} does not lead to config/farmgate.schema.json",
            path.display()
        );
        let instance = yaml_value(&text);
        let errors: Vec<String> = v
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn schema_rejects_typos_and_wrong_types_and_accepts_shorthands() {
    let v = validator();
    let base = "listeners:\n  - bind: \"127.0.0.1:8080\"\nfarms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9001\"\n";
    assert!(v.is_valid(&yaml_value(base)));
    for (bad, why) in [
        (base.replace("    servers:", "    algoritm: round_robin\n    servers:"), "an unknown key"),
        (base.replace("\"127.0.0.1:9001\"", "\"127.0.0.1:9001\"\n        weight: heavy"), "a weight that is not a number"),
        (format!("{base}proxy:\n  connect_timeout: 5\n"), "a duration without a unit"),
        (format!("{base}proxy:\n  connect_timeout: 5 parsecs\n"), "a duration with an unknown unit"),
        (format!("{base}log:\n  access: apache\n"), "an unknown access log format"),
        (format!("{base}rules:\n  - match: \"^/a\"\n    action: teleport\n"), "an unknown action"),
        (format!("{base}rules:\n  - match: \"^/a\"\n    action: {{ route: {{ farm: web }}, redirect: {{ url: /x }} }}\n"), "two actions"),
    ] {
        assert!(!v.is_valid(&yaml_value(&bad)), "the schema accepts {why}:\n{bad}");
    }
    for (good, what) in [
        (format!("{base}proxy:\n  connect_timeout: 1.5s\n  max_request_body: 8MiB\n  max_header_size: 65536\n"), "units"),
        (format!("{base}rules:\n  - match: {{ pattern: \"^/a\", ignore_case: true }}\n    action: abort\n    set_headers: {{ Retry-After: 120 }}\n"), "rule shorthands"),
        (format!("{base}rules:\n  - match: \"^/old\"\n    action: {{ redirect: {{ url: \"/new\", status: 301 }} }}\n"), "a redirect"),
        (format!("{base}log:\n  access: w3c\n  access_syslog: {{ address: \"udp:127.0.0.1:514\" }}\n"), "syslog (shape only)"),
    ] {
        let instance = yaml_value(&good);
        let errors: Vec<String> = v.iter_errors(&instance).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "the schema refuses {what}: {errors:?}\n{good}");
    }
}

fn check_json(text: &str) -> (i32, serde_json::Value) {
    let path = temp_file("farmgate.yaml", text);
    let out = Command::new(bin())
        .args(["check", "--format", "json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), doc)
}

#[test]
fn check_format_json_gives_file_line_column_key_and_message() {
    let good = "listeners:\n  - bind: \"127.0.0.1:8080\"\nfarms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9001\"\n";
    let (code, doc) = check_json(good);
    assert_eq!(code, 0);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["problems"], serde_json::json!([]));
    assert!(
        doc["summary"].as_str().unwrap().contains("1 farm(s)"),
        "{doc}"
    );

    let bad = good.replace(
        "\"127.0.0.1:9001\"",
        "\"127.0.0.1:9001\"\n        weight: heavy",
    ) + "default_farm: nowhere\n";
    let (code, doc) = check_json(&bad);
    assert_eq!(code, 1);
    assert_eq!(doc["ok"], false);
    let problems = doc["problems"].as_array().unwrap();
    assert!(!problems.is_empty(), "{doc}");
    let p = &problems[0];
    assert!(
        p["file"].as_str().unwrap().ends_with("farmgate.yaml"),
        "{p}"
    );
    assert_eq!(p["line"], 7, "{p}");
    assert_eq!(p["column"], 17, "{p}");
    assert_eq!(p["key"], "farms[0].servers[0].weight", "{p}");
    assert!(
        p["message"].as_str().unwrap().contains("whole number"),
        "{p}"
    );
}
