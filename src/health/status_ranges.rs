//! Sets of HTTP status codes written as lists and ranges, `"200, 204, 300-399"`,
//! as used by `health_check.acceptable_status` and `live_traffic.failure_codes`.
//! Parsed once at config load into a bitset, so a lookup on the request path is
//! one shift and one mask.

use std::fmt;

/// Highest status code a set can hold (HTTP status codes are three digits).
const MAX: u16 = 999;
const WORDS: usize = (MAX as usize + 1).div_ceil(64);

/// A set of status codes.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusSet {
    bits: [u64; WORDS],
}

impl StatusSet {
    pub const fn empty() -> Self {
        StatusSet { bits: [0; WORDS] }
    }

    /// Parses `"200, 204, 300-399"`. An empty text is the empty set.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = StatusSet::empty();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (code(a.trim(), text)?, code(b.trim(), text)?),
                None => {
                    let c = code(part, text)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(format!(
                    "range {part:?} in {text:?} runs backwards; write the lower code first"
                ));
            }
            for c in lo..=hi {
                set.insert(c);
            }
        }
        Ok(set)
    }

    pub fn insert(&mut self, code: u16) {
        if code <= MAX {
            self.bits[usize::from(code / 64)] |= 1 << (code % 64);
        }
    }

    #[inline]
    pub fn contains(&self, code: u16) -> bool {
        code <= MAX && self.bits[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }
}

fn code(text: &str, whole: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err(format!(
            "{text:?} in {whole:?} is not an HTTP status code (100-599); \
             write a list of codes and ranges such as \"200, 204, 300-399\""
        )),
    }
}

/// Renders the set back as a compact list of codes and ranges.
impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut c = 0u16;
        while c <= MAX {
            if !self.contains(c) {
                c += 1;
                continue;
            }
            let start = c;
            while c < MAX && self.contains(c + 1) {
                c += 1;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            if start == c {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{c}")?;
            }
            c += 1;
        }
        Ok(())
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        let s = StatusSet::parse("200, 204, 300-399").expect("valid");
        for c in [200, 204, 300, 350, 399] {
            assert!(s.contains(c), "{c}");
        }
        for c in [199, 201, 299, 400, 503, 0, 1000, u16::MAX] {
            assert!(!s.contains(c), "{c}");
        }
        assert_eq!(s.to_string(), "200, 204, 300-399");
    }

    #[test]
    fn spaces_and_single_range() {
        let s = StatusSet::parse(" 500 ,502 - 504").expect("valid");
        assert_eq!(s.to_string(), "500, 502-504");
        assert!(StatusSet::parse("").expect("empty").is_empty());
    }

    #[test]
    fn bad_input_is_explained() {
        for bad in ["abc", "200-", "99", "600", "399-300", "2OO", "200;204"] {
            let e = StatusSet::parse(bad).expect_err(bad);
            assert!(e.contains(bad) || e.contains("backwards"), "{bad}: {e}");
        }
    }
}
