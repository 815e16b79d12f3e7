//! The `limits:` section and its references (listeners, farms, rules)
//! through the real config pipeline: errors placed in the file.

use crate::config::load_str;
use crate::farm::StateRegistry;

fn errors(yaml: &str) -> Vec<String> {
    match load_str(yaml, "f.yaml", &StateRegistry::default()) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const LIMITS: &str =
    "limits:\n  - { name: ip, rate: 10/s }\n  - { name: user, key: \"{R:1}\", rate: 1/s }\n";

fn config(listener: &str, farm: &str, rules: &str) -> String {
    format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\n{listener}farms:\n  - name: web\n    servers:\n      \
         - address: \"127.0.0.1:9001\"\n{farm}{LIMITS}{rules}"
    )
}

#[test]
fn references_resolve_and_bad_ones_are_placed() {
    let ok = config(
        "    limits: [ip]\n",
        "    limits: [ip]\n",
        "rules:\n  - { match: \"^/u/(\\\\w+)\", action: { limit: user } }\n",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());

    let bad = config(
        "    limits: [nope, user]\n    max_connections_per_ip: 0\n",
        "    limits: [ip, gone]\n",
        "rules:\n  - { match: \"^/u/\\\\w+\", action: { limit: user } }\n  \
         - { match: \"^/x\", action: { limit: missing } }\n",
    );
    let errs = errors(&bad);
    let has = |needle: &str| errs.iter().any(|e| e.contains(needle));
    assert!(
        has("listeners[0].limits[0]: unknown limit \"nope\""),
        "{errs:?}"
    );
    assert!(
        has("listeners[0].limits[1]: limit \"user\" counts by a rule's capture"),
        "{errs:?}"
    );
    assert!(
        has("listeners[0].max_connections_per_ip: must be between 1 and 65535"),
        "{errs:?}"
    );
    assert!(
        has("farms[0].limits[1]: unknown limit \"gone\""),
        "{errs:?}"
    );
    assert!(
        has("rules[0].action.limit: {R:1} refers to a group"),
        "{errs:?}"
    );
    assert!(
        has("rules[1].action.limit: unknown limit \"missing\""),
        "{errs:?}"
    );
}
