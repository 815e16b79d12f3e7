//! The embedded demo config (config/demo.yaml) must always be valid: it is
//! what a newcomer runs first.
#![allow(clippy::unwrap_used)]

use farmgate::config;
use farmgate::farm::StateRegistry;

#[test]
fn demo_config_builds() {
    let snap = config::load_str(
        farmgate::demo::DEMO_CONFIG,
        "config/demo.yaml",
        &StateRegistry::default(),
    )
    .unwrap_or_else(|e| panic!("config/demo.yaml is invalid:\n{e}"));
    assert!(!snap.farms.is_empty());
    // The demo shows a rate limit on one path.
    assert!(snap.limits.index("login").is_some());
    // And trace context, its id returned to the client.
    assert!(snap
        .trace
        .as_ref()
        .is_some_and(|t| t.response_header.is_some()));
    // The demo backends the binary starts must be the servers the config names.
    let addresses: Vec<String> = snap
        .farms
        .iter()
        .flat_map(|f| f.servers.iter().map(|s| s.address.to_string()))
        .collect();
    // A server given by host name shows what becomes of one: a member per
    // address, under a stable name.
    let by_name = &snap.farms[snap.farm_index("by-name").unwrap()];
    assert!(by_name
        .servers
        .iter()
        .all(|s| s.name.starts_with("localhost:9103#") && s.connect_to().is_some()));
    let hints = farmgate::demo::DEMO_HINTS_BACKEND.1;
    assert!(
        addresses.iter().any(|a| a == hints),
        "{hints} not in demo.yaml"
    );
    for (_, addr) in farmgate::demo::DEMO_BACKENDS {
        assert!(
            addresses.iter().any(|a| a == addr),
            "{addr} not in demo.yaml"
        );
    }
}

#[test]
fn shipped_example_configs_build() {
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml")
            && !path.to_string_lossy().contains("prometheus")
        {
            config::load_file(&path, &StateRegistry::default())
                .unwrap_or_else(|e| panic!("{} is invalid:\n{e}", path.display()));
        }
    }
}
