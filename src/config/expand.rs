//! `${VAR}` and `${VAR:-default}` in a config file, expanded from the
//! environment before the YAML is parsed, so a value keeps its YAML type
//! (`weight: ${WEIGHT:-1}` is a number) and every key can be set from a
//! deployment's environment.
//!
//! Expansion is YAML-aware enough to be safe: comments are left alone, a
//! value placed in a double- or single-quoted scalar is escaped for that
//! style, and a value that would change the document's structure (a line
//! break, or `: `/` #`/a leading indicator in an unquoted scalar) is an
//! error asking for quotes. `$${` writes a literal `${`. An undefined
//! variable without a default is an error at its line and column.

use super::error::{ConfigError, ConfigErrors};

/// Where a variable's text is placed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Quote {
    Plain,
    Single,
    Double,
}

/// Expands every reference in `text`; `lookup` reads a variable.
pub fn expand(
    text: &str,
    file: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigErrors> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        expand_line(line, n + 1, file, &lookup, &mut out, &mut errors);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Expands the environment of this process.
pub fn expand_env(text: &str, file: &str) -> Result<String, ConfigErrors> {
    expand(text, file, |name| std::env::var(name).ok())
}

fn expand_line(
    line: &str,
    line_no: usize,
    file: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<ConfigError>,
) {
    let bytes = line.as_bytes();
    let mut quote = Quote::Plain;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match (quote, b) {
            (Quote::Plain, b'#') if i == 0 || bytes[i - 1].is_ascii_whitespace() => break,
            (Quote::Plain, b'"') => quote = Quote::Double,
            (Quote::Plain, b'\'') => quote = Quote::Single,
            (Quote::Double, b'\\') => i += 1,
            (Quote::Double, b'"') | (Quote::Single, b'\'') => quote = Quote::Plain,
            (_, b'$') if bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{') => {
                out.push_str(&line[copied..i]);
                out.push_str("${");
                i += 3;
                copied = i;
                continue;
            }
            (_, b'$') if bytes.get(i + 1) == Some(&b'{') => {
                let column = line[..i].chars().count() + 1;
                let mut fail = |message: String| {
                    errors.push(ConfigError {
                        file: file.to_string(),
                        line: line_no,
                        column,
                        path: String::new(),
                        message,
                    })
                };
                let Some(len) = line[i + 2..].find('}') else {
                    fail("`${` without a closing `}` (write `$${` for a literal `${`)".into());
                    break;
                };
                let inner = &line[i + 2..i + 2 + len];
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                out.push_str(&line[copied..i]);
                i += len + 3;
                copied = i;
                if !valid_name(name) {
                    fail(format!(
                        "${{{inner}}}: a variable name is letters, digits and _, not starting \
                         with a digit; a default is written ${{NAME:-default}}"
                    ));
                    continue;
                }
                // As in the shell: `:-` also replaces an empty value.
                let value = match (lookup(name), default) {
                    (Some(v), None) => v,
                    (Some(v), Some(_)) if !v.is_empty() => v,
                    (_, Some(d)) => d.to_string(),
                    (None, None) => {
                        fail(format!(
                            "environment variable {name} is not set (give a default with \
                             ${{{name}:-default}})"
                        ));
                        continue;
                    }
                };
                let at_start = start_of_scalar(&out[out.rfind('\n').map_or(0, |p| p + 1)..]);
                match place(&value, quote, at_start) {
                    Ok(text) => out.push_str(&text),
                    Err(why) => fail(format!("the value of {name} {why}")),
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&line[copied..]);
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Does a plain scalar start here (only indentation, a key or a list dash
/// before it on the line)?
fn start_of_scalar(before: &str) -> bool {
    let t = before.trim_end();
    t.is_empty() || t.ends_with(':') || t.ends_with('-') || t.ends_with('[') || t.ends_with(',')
}

/// The text to write for `value` in a scalar of style `quote`.
fn place(value: &str, quote: Quote, at_start: bool) -> Result<String, &'static str> {
    if value.contains(['\n', '\r']) {
        return Err("holds a line break, which a config value cannot");
    }
    Ok(match quote {
        Quote::Double => value.replace('\\', "\\\\").replace('"', "\\\""),
        Quote::Single => value.replace('\'', "''"),
        Quote::Plain => {
            let leading = value.starts_with([
                '[', ']', '{', '}', ',', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '#',
            ]) || value.starts_with("- ")
                || value.starts_with("? ");
            if value.contains(": ")
                || value.contains(" #")
                || value.ends_with(':')
                || (at_start && leading)
            {
                return Err("would change the YAML structure here; put the reference in quotes");
            }
            value.to_string()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.7".into()),
            "WEIGHT" => Some("3".into()),
            "QUOTE" => Some("say \"hi\" \\o/".into()),
            "TRICKY" => Some("a: b".into()),
            "LIST" => Some("[1, 2]".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, Vec<String>> {
        expand(text, "f.yaml", env).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn references_expand_in_place_keeping_yaml_types() {
        assert_eq!(
            run("address: \"${HOST}:8080\"\nweight: ${WEIGHT}\nname: ${NAME:-web}\n"),
            Ok("address: \"10.0.0.7:8080\"\nweight: 3\nname: web\n".into())
        );
        assert_eq!(run("x: ${EMPTY:-d}|${MISSING:-}\n"), Ok("x: d|\n".into()));
        assert_eq!(
            run("x: $${HOST} # ${NOPE}\n"),
            Ok("x: ${HOST} # ${NOPE}\n".into())
        );
    }

    #[test]
    fn values_are_escaped_for_their_quotes() {
        assert_eq!(
            run("a: \"${QUOTE}\"\nb: '${TRICKY} it''s'\n"),
            Ok("a: \"say \\\"hi\\\" \\\\o/\"\nb: 'a: b it''s'\n".into())
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            run("listeners:\n  - bind: \"${BIND}\"\n    x: ${1X}\n"),
            Err(vec![
                "f.yaml:2:12: environment variable BIND is not set (give a default with ${BIND:-default})".into(),
                "f.yaml:3:8: ${1X}: a variable name is letters, digits and _, not starting with a digit; a default is written ${NAME:-default}".into(),
            ])
        );
        let e = run("a: ${TRICKY}\nb: ${LIST}\nc: x${LIST}\nd: ${OPEN\n").unwrap_err();
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].starts_with("f.yaml:1:4: the value of TRICKY would change"));
        assert!(e[1].starts_with("f.yaml:2:4: the value of LIST would change"));
        assert!(e[2].starts_with("f.yaml:4:4: `${` without a closing"));
    }
}
