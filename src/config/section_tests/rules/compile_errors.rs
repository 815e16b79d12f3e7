//! Config errors of the `rules:` section, each named by its key path and
//! placed on its line.

use super::errors;

#[test]
fn compile_errors_name_their_key_path() {
    let bad = r#"  - { match: "^/(unclosed", action: abort }
  - { match: ".*", action: { route: { farm: nowhere } } }
  - match: ".*"
    conditions: [ { input: "{NO_SUCH_VAR}", pattern: "x" } ]
    action: none
  - { match: ".*", action: { redirect: { url: "/x", status: 200 } } }
  - { match: ".*", action: { respond: { status: 42 } } }
  - { match: "^/(a)", action: { route: { url: "/{R:2}" } } }
  - { match: ".*", action: { respond: { status: 200, body: "{C:1}" } } }
  - { match: ".*", stop_processing: false, action: abort }
  - { match: ".*", set_headers: { Content-Length: "1" }, action: none }
  - { match: ".*", action: { route: { url: "http://farm/x" } } }
  - { match: { pattern: "^/(x)", negate: true }, action: { route: { url: "/{R:1}" } } }
  - { name: dup, match: "a", action: none }
  - { name: dup, match: "b", action: none }
  - match: ".*"
    conditions: [ { input: "{HTTP_HOST}", pattern: "(" } ]
    action: none
"#;
    let errs = errors(bad);
    let want = [
        "rules[0].match: invalid regular expression \"^/(unclosed\": unclosed group",
        "rules[1].action.route.farm: unknown farm \"nowhere\"",
        "rules[2].conditions[0].input: unknown server variable {NO_SUCH_VAR}",
        "rules[3].action.redirect.status: a redirect status is 301, 302, 303, 307 or 308, not 200",
        "rules[4].action.respond.status:",
        "rules[5].action.route.url: {R:2} refers to a group the match pattern does not have",
        "rules[6].action.respond.body: {C:1} needs a condition",
        "rules[7].stop_processing:",
        "rules[8].set_headers.Content-Length: Content-Length cannot be set by a rule",
        "rules[9].action.route.url: a route url is a path starting with /",
        "rules[10].action.route.url: {R:1} is always empty",
        "rules[12].name: duplicate rule name \"dup\"",
        "rules[13].conditions[0].pattern: invalid regular expression",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.contains(&format!(": {w}"))),
            "missing {w:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    // Every message is placed on a line of the rule it names.
    assert!(errs[0].starts_with("t.yaml:9:14:"), "{}", errs[0]);
}

#[test]
fn action_shape_errors_come_from_the_parser() {
    let errs = errors("  - { match: \".*\", action: explode }\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("rules[0].action"), "{errs:?}");
    let errs = errors("  - { match: \".*\", action: { route: { farm: a, bogus: 1 } } }\n");
    assert!(errs[0].contains("unknown field `bogus`"), "{errs:?}");
}
