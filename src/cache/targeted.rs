//! Targeted cache control (RFC 9213): `CDN-Cache-Control` and any other
//! field names a farm lists, each a Structured Field Dictionary (RFC 8941)
//! of cache directives. The first listed field that is present and valid
//! replaces `Cache-Control` for farmgate's own storing and freshness
//! decisions; `Cache-Control` still reaches the client untouched. A field
//! that is not a valid dictionary, or has a known directive of the wrong
//! type, is ignored as a whole (the next listed field, then Cache-Control,
//! applies), so a typo at the origin can never make farmgate cache more.

use super::control::{CacheControl, DELTA_MAX};
use http::header::{HeaderMap, HeaderName};
use std::time::Duration;

/// The directives of the first valid targeted field in `names` order, or
/// `None` when none is present and valid.
pub fn select(headers: &HeaderMap, names: &[HeaderName]) -> Option<CacheControl> {
    names.iter().find_map(|name| {
        let mut lines = headers.get_all(name).iter().peekable();
        lines.peek()?;
        // Several field lines are one dictionary joined with commas.
        let mut joined = Vec::new();
        for (i, v) in lines.enumerate() {
            if i > 0 {
                joined.push(b',');
            }
            joined.extend_from_slice(v.as_bytes());
        }
        parse(&joined)
    })
}

/// A dictionary member's value, as far as cache directives care.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Integer(i64),
    Boolean(bool),
    InnerList,
    Other,
}

/// Parses one dictionary into directives; `None` when it is invalid.
fn parse(input: &[u8]) -> Option<CacheControl> {
    let mut p = Parser { s: input, i: 0 };
    p.skip_sp();
    // Later duplicates overwrite earlier ones (RFC 8941 §4.2.2).
    let mut members: Vec<(&[u8], Value)> = Vec::new();
    if p.i < p.s.len() {
        loop {
            let key = p.key()?;
            let value = if p.eat(b'=') {
                if p.peek() == Some(b'(') {
                    p.inner_list()?;
                    Value::InnerList
                } else {
                    let v = p.bare_item()?;
                    p.parameters()?;
                    v
                }
            } else {
                p.parameters()?;
                Value::Boolean(true)
            };
            members.retain(|(k, _)| *k != key);
            members.push((key, value));
            p.skip_ows();
            if p.i == p.s.len() {
                break;
            }
            if !p.eat(b',') {
                return None;
            }
            p.skip_ows();
            if p.i == p.s.len() {
                return None; // a trailing comma
            }
        }
    }
    let mut cc = CacheControl::default();
    for (key, value) in members {
        let flag = |v: Value| match v {
            Value::Boolean(b) => Some(b),
            Value::InnerList => Some(true),
            _ => None,
        };
        let secs = |v: Value| match v {
            Value::Integer(n) if n >= 0 => Some(Duration::from_secs((n as u64).min(DELTA_MAX))),
            _ => None,
        };
        match key {
            b"max-age" => cc.max_age = Some(secs(value)?),
            b"s-maxage" => cc.s_maxage = Some(secs(value)?),
            b"stale-while-revalidate" => cc.stale_while_revalidate = Some(secs(value)?),
            b"stale-if-error" => cc.stale_if_error = Some(secs(value)?),
            b"no-store" => cc.no_store = flag(value)?,
            b"no-cache" => cc.no_cache = flag(value)?,
            b"private" => cc.private = flag(value)?,
            b"public" => cc.public = flag(value)?,
            b"must-revalidate" => cc.must_revalidate = flag(value)?,
            b"proxy-revalidate" => cc.proxy_revalidate = flag(value)?,
            _ => {} // directives farmgate does not act on
        }
    }
    Some(cc)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        match self.peek()? {
            b'a'..=b'z' | b'*' => self.i += 1,
            _ => return None,
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.i += 1;
        }
        Some(&self.s[start..self.i])
    }

    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn inner_list(&mut self) -> Option<()> {
        if !self.eat(b'(') {
            return None;
        }
        loop {
            self.skip_sp();
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            // Items are separated by at least one space.
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return None;
            }
        }
    }

    fn bare_item(&mut self) -> Option<Value> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string().map(|_| Value::Other),
            b'?' => {
                self.i += 1;
                let b = match self.peek()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return None,
                };
                self.i += 1;
                Some(Value::Boolean(b))
            }
            b':' => self.binary().map(|_| Value::Other),
            b'A'..=b'Z' | b'a'..=b'z' | b'*' => {
                self.i += 1;
                while self
                    .peek()
                    .is_some_and(|b| is_tchar(b) || b == b':' || b == b'/')
                {
                    self.i += 1;
                }
                Some(Value::Other)
            }
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Value> {
        let negative = self.eat(b'-');
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        let int_digits = self.i - start;
        if int_digits == 0 {
            return None;
        }
        if self.eat(b'.') {
            let frac = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.i += 1;
            }
            let frac_digits = self.i - frac;
            if int_digits > 12 || !(1..=3).contains(&frac_digits) {
                return None;
            }
            return Some(Value::Other);
        }
        if int_digits > 15 {
            return None;
        }
        let mut n: i64 = 0;
        for &d in &self.s[start..self.i] {
            n = n * 10 + i64::from(d - b'0');
        }
        Some(Value::Integer(if negative { -n } else { n }))
    }

    fn string(&mut self) -> Option<()> {
        self.i += 1; // the opening quote
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    if !matches!(self.peek()?, b'"' | b'\\') {
                        return None;
                    }
                    self.i += 1;
                }
                0x20..=0x7e => self.i += 1,
                _ => return None,
            }
        }
    }

    fn binary(&mut self) -> Option<()> {
        self.i += 1;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b':' => return Some(()),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {}
                _ => return None,
            }
        }
        None
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cdn(values: &[&'static str]) -> Option<CacheControl> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("cdn-cache-control", HeaderValue::from_static(v));
        }
        select(&h, &[HeaderName::from_static("cdn-cache-control")])
    }

    #[test]
    fn directives_of_a_valid_dictionary() {
        let cc = cdn(&["max-age=3600, must-revalidate"]).expect("valid");
        assert_eq!(cc.max_age, Some(Duration::from_secs(3600)));
        assert!(cc.must_revalidate && !cc.no_store);
        let cc = cdn(&["no-store"]).expect("valid");
        assert!(cc.no_store);
        let cc = cdn(&["no-store=?0, private;x=1, stale-while-revalidate=30"]).expect("valid");
        assert!(!cc.no_store && cc.private);
        assert_eq!(cc.stale_while_revalidate, Some(Duration::from_secs(30)));
        let cc = cdn(&["max-age=10", "s-maxage=20"]).expect("two lines, one dictionary");
        assert_eq!(cc.s_maxage, Some(Duration::from_secs(20)));
        let cc = cdn(&["max-age=10, max-age=99"]).expect("valid");
        assert_eq!(cc.max_age, Some(Duration::from_secs(99)), "the last wins");
        let cc = cdn(&["no-cache=(\"set-cookie\"), foo=bar, baz=:aGk=:, q=1.5"]).expect("valid");
        assert!(cc.no_cache, "unknown members are ignored");
        assert_eq!(cdn(&[]), None, "absent");
    }

    #[test]
    fn invalid_fields_are_ignored_as_a_whole() {
        for bad in [
            "max-age=\"60\"",     // a string where an integer belongs
            "max-age=1.5",        // a decimal
            "max-age=-1",         // negative
            "no-store=1",         // an integer where a boolean belongs
            "Max-Age=60",         // keys are lowercase
            "max-age=60,",        // trailing comma
            "max-age=60 private", // no comma
            "max-age=1234567890123456",
            "a=\"unterminated",
            "a=(1 2",
        ] {
            let mut h = HeaderMap::new();
            h.insert("cdn-cache-control", HeaderValue::from_static(bad));
            let names = [HeaderName::from_static("cdn-cache-control")];
            assert_eq!(select(&h, &names), None, "{bad}");
        }
    }

    #[test]
    fn the_first_valid_listed_field_wins() {
        let mut h = HeaderMap::new();
        h.insert(
            "farmgate-cache-control",
            HeaderValue::from_static("max-age=\"x\""),
        );
        h.insert("cdn-cache-control", HeaderValue::from_static("max-age=5"));
        let names = [
            HeaderName::from_static("farmgate-cache-control"),
            HeaderName::from_static("cdn-cache-control"),
        ];
        assert_eq!(
            select(&h, &names).and_then(|c| c.max_age),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let alphabet = b"=\",;()?:-.* \tmax-age0123456789nostre\\";
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let _ = parse(&bytes);
        }
    }
}
