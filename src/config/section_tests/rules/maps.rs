//! Rewrite maps through the config pipeline: lookups in route URLs,
//! redirects and conditions, defaults, case folding, and the errors
//! `farmgate check` reports for them.

use super::*;
use crate::config::load_str;
use crate::farm::StateRegistry;

fn with_maps(maps: &str, rules: &str) -> Result<Snapshot, Vec<String>> {
    let text = format!("{FARMS}rewrite_maps:\n{maps}rules:\n{rules}");
    load_str(&text, "t.yaml", &StateRegistry::default())
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

const VERSIONS: &str = r#"  - name: Versions
    default: /current
    entries: { v1: /legacy, V2: /current, "3": /next }
"#;

#[test]
fn a_map_rewrites_routes_with_its_default_and_ignores_case() {
    let s = with_maps(
        VERSIONS,
        r#"  - match: '^/api/([^/]+)/(.*)$'
    set_headers: { X-Generation: "{Versions:{R:1}}" }
    action: { route: { farm: b, url: "{Versions:{R:1}}/{R:2}" } }
"#,
    )
    .expect("valid");
    for (path, want) in [
        ("/api/v1/users", "/legacy/users"),
        ("/api/V1/users", "/legacy/users"),
        ("/api/v2/x", "/current/x"),
        ("/api/3/x", "/next/x"),
        ("/api/v9/x", "/current/x"),
    ] {
        let d = eval(&s, &get(path));
        assert_eq!(routed(&s, &d), ("b".into(), Some(want.into())), "{path}");
    }
    let d = eval(&s, &get("/api/v1/x"));
    assert_eq!(header(&d, "x-generation"), Some("/legacy"));
}

#[test]
fn a_map_in_a_condition_redirects_only_listed_paths() {
    let maps = r#"  - name: Moved
    ignore_case: false
    entries: { /Old-Page: /new-page, /about-us: "https://about.example.com/" }
"#;
    let rules = r#"  - match: '.*'
    conditions: [ { input: "{Moved:{URL}}", pattern: '.+' } ]
    action: { redirect: { url: "{C:0}", status: 308, append_query_string: false } }
"#;
    let s = with_maps(maps, rules).expect("valid");
    let location = |path| match eval(&s, &get(path)).outcome {
        Outcome::Redirect { status, location } => {
            assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
            Some(location.to_str().expect("ascii").to_string())
        }
        _ => None,
    };
    assert_eq!(location("/Old-Page").as_deref(), Some("/new-page"));
    assert_eq!(
        location("/about-us?x=1").as_deref(),
        Some("https://about.example.com/")
    );
    // Case-sensitive map: no entry, empty default, the condition fails.
    assert_eq!(location("/old-page"), None);
    assert_eq!(location("/elsewhere"), None);
}

#[test]
fn map_errors_name_the_map_the_key_and_the_line() {
    let dir = std::env::temp_dir().join(format!("farmgate-map-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("moved.txt");
    std::fs::write(&file, "# old new\n/a /b\n/c\n/A /d\n").expect("write");
    let maps = format!(
        r#"  - name: Moved
    file: {file:?}
  - name: moved
  - name: R
  - name: Dup
    entries: {{ /x: /y, /X: /z }}
  - name: Gone
    file: /nonexistent/farmgate/map.txt
"#
    );
    let errs = with_maps(
        &maps,
        "  - { match: '(.*)', action: { route: { url: \"{Nope:{R:1}}\" } } }\n",
    )
    .expect_err("invalid");
    let shown = file.display().to_string();
    let want = [
        format!("rewrite_maps[0].file: {shown}:3: expected two columns, a key and a value"),
        format!("rewrite_maps[0].file: {shown}:4: duplicate key \"/A\" (first on line 2)"),
        "rewrite_maps[1].name: duplicate map name \"moved\"".into(),
        "rewrite_maps[2].name: \"R\" cannot name a map".into(),
        "rewrite_maps[3].entries: duplicate key \"/X\" in map \"Dup\"".into(),
        "rewrite_maps[4].file: cannot read /nonexistent/farmgate/map.txt".into(),
        "rules[0].action.route.url: {Nope:...}: functions are not supported and no rewrite map is called \"Nope\"".into(),
    ];
    for w in &want {
        assert!(
            errs.iter().any(|e| e.contains(w.as_str())),
            "missing {w:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    // Each error sits on its line of the config (t.yaml:LINE:COL: ...).
    assert!(
        errs.iter()
            .all(|e| e.starts_with("t.yaml:") && !e.starts_with("t.yaml:1:1:")),
        "{errs:#?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_yaml_map_file_is_read_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!("farmgate-map-yaml-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("maps")).expect("temp dir");
    std::fs::write(dir.join("maps/tenants.yaml"), "acme: b\nglobex: c\n").expect("write");
    let text = format!(
        "{FARMS}rewrite_maps: [ {{ name: Tenants, file: maps/tenants.yaml, default: a }} ]\nrules:\n  \
         - {{ match: '^/t/(\\w+)', set_headers: {{ X-Pool: \"{{Tenants:{{R:1}}}}\" }}, action: none }}\n"
    );
    let cfg = dir.join("farmgate.yaml");
    std::fs::write(&cfg, text).expect("write");
    let s = crate::config::load_file(&cfg, &StateRegistry::default()).expect("valid");
    assert_eq!(s.sources, vec![dir.join("maps/tenants.yaml")]);
    assert_eq!(header(&eval(&s, &get("/t/ACME")), "x-pool"), Some("b"));
    assert_eq!(header(&eval(&s, &get("/t/initech")), "x-pool"), Some("a"));
    std::fs::remove_dir_all(&dir).ok();
}
