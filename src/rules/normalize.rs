//! Path normalisation before rules match, so that a rule cannot be dodged
//! by spelling the same path differently (RFC 3986 §6.2.2):
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!   decoded (`/%61dmin` is `/admin`); other escapes stay encoded with
//!   upper-case hex (`%2f` becomes `%2F`, which is not a separator);
//! - `\` is a separator, as IIS and browsers treat it;
//! - empty segments collapse (`//admin` is `/admin`);
//! - `.` and `..` segments are resolved (`/x/../admin` is `/admin`);
//!   climbing above the root is an error (the request gets 400);
//! - a `%` not followed by two hex digits is an error.
//!
//! A path that needs none of this (almost every real one) is returned
//! borrowed after one scan; only a path that changes is copied.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("the path climbs above the root")]
    AboveRoot,
    #[error("the path has a malformed percent-encoding")]
    BadEncoding,
}

/// The normalised form of `path` (the path of a request URI, no query).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, NormalizeError> {
    if path.is_empty() {
        return Ok(Cow::Borrowed("/"));
    }
    if !path.starts_with('/') {
        // Only the asterisk-form (`OPTIONS *`) reaches here; nothing to do.
        return Ok(Cow::Borrowed(path));
    }
    if is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path.as_bytes())?;
    resolve_segments(&decoded).map(Cow::Owned)
}

/// One pass: does the path hold anything normalisation would change?
fn is_normal(p: &[u8]) -> bool {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'%' => {
                // Already canonical: upper-case hex of a reserved byte.
                let canonical =
                    |b: Option<&u8>| b.is_some_and(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'));
                if !canonical(p.get(i + 1)) || !canonical(p.get(i + 2)) {
                    return false;
                }
                let (Some(hi), Some(lo)) = (hex(p[i + 1]), hex(p[i + 2])) else {
                    return false;
                };
                if is_unreserved(hi << 4 | lo) {
                    return false;
                }
                i += 3;
                continue;
            }
            b'\\' => return false,
            b'/' => {
                let rest = &p[i + 1..];
                let seg_end = rest
                    .iter()
                    .position(|&b| b == b'/' || b == b'\\')
                    .unwrap_or(rest.len());
                let seg = &rest[..seg_end];
                // Empty segments are fine only as the final trailing slash.
                if (seg.is_empty() && seg_end < rest.len()) || seg == b"." || seg == b".." {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes escapes of unreserved characters, upper-cases the others and
/// turns `\` into `/`.
fn decode_unreserved(p: &[u8]) -> Result<Vec<u8>, NormalizeError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    p.get(i + 1).copied().and_then(hex),
                    p.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(NormalizeError::BadEncoding);
                };
                let byte = hi << 4 | lo;
                if is_unreserved(byte) {
                    out.push(byte);
                } else {
                    out.extend_from_slice(&[b'%', HEX[hi as usize], HEX[lo as usize]]);
                }
                i += 3;
            }
            b'\\' => {
                out.push(b'/');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Collapses empty segments and resolves `.` and `..`.
fn resolve_segments(p: &[u8]) -> Result<String, NormalizeError> {
    let mut out: Vec<u8> = Vec::with_capacity(p.len());
    let mut trailing_slash = false;
    // `p` starts with '/', so the first split piece is empty.
    for seg in p.split(|&b| b == b'/').skip(1) {
        match seg {
            b"" | b"." => trailing_slash = true,
            b".." => {
                let cut = out
                    .iter()
                    .rposition(|&b| b == b'/')
                    .ok_or(NormalizeError::AboveRoot)?;
                out.truncate(cut);
                trailing_slash = true;
            }
            _ => {
                out.push(b'/');
                out.extend_from_slice(seg);
                trailing_slash = false;
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push(b'/');
    }
    // Only ASCII was inserted and input was cut at ASCII bytes, so the
    // bytes are still UTF-8; the check keeps that a fact, not a hope.
    String::from_utf8(out).map_err(|_| NormalizeError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let ok = [
            ("/", "/"),
            ("", "/"),
            ("*", "*"),
            ("/admin", "/admin"),
            ("/a/b/", "/a/b/"),
            ("/%61dmin", "/admin"),
            ("/%41%42%7e%2D%5f%2e", "/AB~-_."),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/x/../admin", "/admin"),
            ("/x/./admin", "/x/admin"),
            ("/./admin", "/admin"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/x/%2e%2e/admin", "/admin"),
            ("/x/%2E./admin", "/admin"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb", "/a%2Fb"),
            ("/%c3%a9", "/%C3%A9"),
            ("/é", "/é"),
            ("/\\admin", "/admin"),
            ("/x\\..\\admin", "/admin"),
            ("/a/...", "/a/..."),
            ("/a/.b/..c", "/a/.b/..c"),
            ("/%00", "/%00"),
        ];
        for (input, want) in ok {
            assert_eq!(
                normalize(input).as_deref(),
                Ok(want),
                "normalize({input:?})"
            );
        }
        let bad = [
            ("/..", NormalizeError::AboveRoot),
            ("/../etc/passwd", NormalizeError::AboveRoot),
            ("/a/../..", NormalizeError::AboveRoot),
            ("/a/%2e%2e/%2e%2e/x", NormalizeError::AboveRoot),
            ("/%", NormalizeError::BadEncoding),
            ("/%4", NormalizeError::BadEncoding),
            ("/%zz", NormalizeError::BadEncoding),
            ("/a%g0", NormalizeError::BadEncoding),
        ];
        for (input, want) in bad {
            assert_eq!(normalize(input), Err(want), "normalize({input:?})");
        }
    }

    #[test]
    fn a_normal_path_is_borrowed_not_copied() {
        for p in [
            "/",
            "/a/b/c",
            "/v1/users/42",
            "/a/b/",
            "/a.b/c..d/.e",
            "/a%20b/%2F",
        ] {
            assert!(
                matches!(normalize(p), Ok(Cow::Borrowed(_))),
                "{p} was copied"
            );
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["/x/../a//b/./%63", "/%2e/a/", "/a\\b/..", "/a%2fb/%7E"] {
            let once = normalize(p).expect("valid").into_owned();
            assert_eq!(normalize(&once).as_deref(), Ok(once.as_str()), "{p}");
        }
    }
}
