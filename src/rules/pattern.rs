//! A compiled pattern: a regular expression, case-insensitive unless told
//! otherwise (IIS's default), optionally negated. Patterns work on bytes so
//! that any header value can be tested, UTF-8 or not.

use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

/// Compiled regexes are capped so that one rule cannot eat memory.
const SIZE_LIMIT: usize = 2 << 20;

#[derive(Debug)]
pub struct Pattern {
    re: Regex,
    negate: bool,
    ignore_case: bool,
}

impl Pattern {
    pub fn compile(pattern: &str, ignore_case: bool, negate: bool) -> Result<Pattern, String> {
        let re = RegexBuilder::new(pattern)
            .case_insensitive(ignore_case)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| {
                // The regex crate's message spans several lines (pattern,
                // caret, reason); the reason alone keeps the error on the
                // `file:line:col: ...` line.
                let text = e.to_string();
                let reason = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("error: "))
                    .map(str::to_string)
                    .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "));
                format!("invalid regular expression {pattern:?}: {reason}")
            })?;
        Ok(Pattern {
            re,
            negate,
            ignore_case,
        })
    }

    /// Does `hay` satisfy the pattern (with `negate` applied)?
    #[inline]
    pub fn is_match(&self, hay: &[u8]) -> bool {
        self.re.is_match(hay) != self.negate
    }

    /// Capture groups in the pattern, counting group 0 (the whole match).
    pub fn groups(&self) -> usize {
        self.re.captures_len()
    }

    pub fn is_negated(&self) -> bool {
        self.negate
    }

    /// The pattern text and its case-insensitivity, for the prefilter.
    pub fn source(&self) -> (&str, bool) {
        (self.re.as_str(), self.ignore_case)
    }

    /// The capture positions of a match of `hay`, for back-references.
    /// A negated pattern captures nothing.
    pub fn captures<'h>(&self, hay: &'h [u8]) -> Captures<'h> {
        if self.negate {
            return Captures { hay, locs: None };
        }
        let mut locs = self.re.capture_locations();
        let found = self.re.captures_read(&mut locs, hay).is_some();
        Captures {
            hay,
            locs: found.then_some(locs),
        }
    }
}

/// Back-reference values: `{R:n}` or `{C:n}`.
#[derive(Debug)]
pub struct Captures<'h> {
    hay: &'h [u8],
    locs: Option<CaptureLocations>,
}

impl<'h> Captures<'h> {
    pub const NONE: Captures<'static> = Captures {
        hay: b"",
        locs: None,
    };

    /// Group `n`, empty when it did not participate.
    #[inline]
    pub fn get(&self, n: usize) -> &'h [u8] {
        self.locs
            .as_ref()
            .and_then(|l| l.get(n))
            .map_or(b"", |(s, e)| &self.hay[s..e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_by_default_and_negate_inverts() {
        let p = Pattern::compile("^/admin", true, false).expect("valid");
        assert!(p.is_match(b"/ADMIN/x"));
        let exact = Pattern::compile("^/admin", false, false).expect("valid");
        assert!(!exact.is_match(b"/ADMIN/x"));
        let neg = Pattern::compile("^/admin", true, true).expect("valid");
        assert!(!neg.is_match(b"/admin"));
        assert!(neg.is_match(b"/public"));
    }

    #[test]
    fn captures_by_index_and_empty_when_absent() {
        let p = Pattern::compile("^/v(\\d+)/(.*)$", true, false).expect("valid");
        assert_eq!(p.groups(), 3);
        let c = p.captures(b"/v2/users/7");
        assert_eq!(c.get(0), b"/v2/users/7");
        assert_eq!(c.get(1), b"2");
        assert_eq!(c.get(2), b"users/7");
        assert_eq!(c.get(9), b"");
        let neg = Pattern::compile("^/v(\\d+)", true, true).expect("valid");
        assert_eq!(neg.captures(b"/other").get(0), b"");
    }

    #[test]
    fn a_bad_regex_is_a_one_line_message() {
        let e = Pattern::compile("^/(unclosed", true, false).unwrap_err();
        assert_eq!(
            e,
            "invalid regular expression \"^/(unclosed\": unclosed group"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}
