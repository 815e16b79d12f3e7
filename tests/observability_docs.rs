//! The documentation and the shipped Prometheus/Grafana examples name only
//! metrics farmgate really exports, and every exported metric is documented.
#![allow(clippy::unwrap_used)]

mod common;
use common::admin::*;
use common::*;
use std::collections::BTreeSet;

const SUFFIXES: [&str; 5] = ["_total", "_bucket", "_sum", "_count", "_info"];

#[tokio::test]
async fn docs_and_examples_match_the_exposition() {
    let a = Backend::named("a").await;
    let fg = start(&with_admin(
        &farm_config("round_robin", &[&a], "", ""),
        None,
    ))
    .await;
    let (_, _, text) = admin_get(&client(), &fg, "/metrics").await;
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert!(families.len() > 25, "{families:?}");
    let exported = |name: &str| {
        families.contains(name)
            || SUFFIXES
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|b| families.contains(b)))
    };

    let name = regex::Regex::new(r"\b(?:farmgate|process)_[a-z_]+[a-z]").unwrap();
    let docs = std::fs::read_to_string("docs/observability.md").unwrap();
    for file in [
        "docs/observability.md",
        "examples/grafana-dashboard.json",
        "examples/prometheus.yml",
        "examples/prometheus-alerts.yml",
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        for m in name.find_iter(&text) {
            assert!(
                exported(m.as_str()),
                "{file} names {} which is not exported",
                m.as_str()
            );
        }
    }
    for family in &families {
        assert!(
            docs.contains(family.as_str()),
            "{family} is not documented in docs/observability.md"
        );
    }

    // The examples are valid files.
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("examples/grafana-dashboard.json").unwrap())
            .unwrap();
    assert!(dash["panels"].as_array().unwrap().len() > 10);
    for file in ["examples/prometheus.yml", "examples/prometheus-alerts.yml"] {
        let _: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    }
}
