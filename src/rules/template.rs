//! Action strings (`/{R:1}`, `https://{HTTP_HOST}{REQUEST_URI}`) parsed at
//! config load into pieces: literal bytes, rule back-references `{R:n}`,
//! condition back-references `{C:n}` and server variables. Rendering walks
//! the pieces and copies bytes; nothing is parsed per request.
//!
//! A brace group is a reference only when its content is name-shaped
//! (`{R:1}`, `{HTTP_HOST}`); other braces are literal, so a JSON body like
//! `{"error":"down"}` needs no escaping.

use super::maps::{Maps, RewriteMap};
use super::pattern::Captures;
use super::variables::{RequestView, Variable};
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(Box<[u8]>),
    Rule(usize),
    Cond(usize),
    Var(Variable),
    /// `{Map:key}`: the key's pieces rendered, then looked up.
    Map(Arc<RewriteMap>, Box<[Piece]>),
}

/// How expanded values are written into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are (header values).
    None,
    /// Bytes that may not appear in a URL are percent-encoded (a header
    /// value with a space cannot break a rewritten URL or a Location).
    Url,
}

/// What a template can refer to while rendering.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub req: &'a RequestView<'a>,
    /// The path being matched (normalised, after earlier rewrites).
    pub url: &'a str,
    pub r: &'a Captures<'a>,
    pub c: &'a Captures<'a>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pieces: Box<[Piece]>,
    /// The whole text when it has no references, ready to hand out.
    literal: Option<Bytes>,
}

impl Template {
    /// Parses a template that refers to no rewrite map.
    pub fn parse(text: &str) -> Result<Template, String> {
        Template::parse_in(text, &Maps::default())
    }

    /// Parses a template; `{Name:...}` looks the inner text up in map
    /// `Name` of `maps`.
    pub fn parse_in(text: &str, maps: &Maps) -> Result<Template, String> {
        let pieces = parse_pieces(text, maps)?;
        let literal = match pieces.as_slice() {
            [] => Some(Bytes::new()),
            [Piece::Lit(l)] => Some(Bytes::copy_from_slice(l)),
            _ => None,
        };
        Ok(Template {
            pieces: pieces.into(),
            literal,
        })
    }

    /// The text, when the template has no references.
    pub fn literal(&self) -> Option<&Bytes> {
        self.literal.as_ref()
    }

    /// The highest `{R:n}` used, if any.
    pub fn max_rule_ref(&self) -> Option<usize> {
        self.all_pieces()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Rule(n) => Some(*n),
                _ => None,
            })
            .max()
    }

    /// The highest `{C:n}` used, if any.
    pub fn max_cond_ref(&self) -> Option<usize> {
        self.all_pieces()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Cond(n) => Some(*n),
                _ => None,
            })
            .max()
    }

    fn all_pieces(&self) -> Vec<&Piece> {
        let mut out = Vec::new();
        walk(&self.pieces, &mut out);
        out
    }

    /// The literal bytes for which `bad` holds, for validation at build.
    pub fn bad_literal_bytes(&self, bad: impl Fn(u8) -> bool) -> Option<u8> {
        self.pieces.iter().find_map(|p| match p {
            Piece::Lit(l) => l.iter().copied().find(|&b| bad(b)),
            _ => None,
        })
    }

    /// Does the rendered text start with a literal `/`, or may it (a
    /// reference comes first)?
    pub fn starts_with_slash_or_reference(&self) -> bool {
        match self.pieces.first() {
            Some(Piece::Lit(l)) => l.first() == Some(&b'/'),
            Some(_) => true,
            None => false,
        }
    }

    /// Borrows the value without copying when the template is exactly one
    /// piece (`{HTTP_HOST}`, `{R:1}`, a plain literal).
    #[inline]
    pub fn single<'a>(&'a self, ctx: &Ctx<'a>) -> Option<&'a [u8]> {
        match &*self.pieces {
            [p] => Some(value(p, ctx)),
            [] => Some(b""),
            _ => None,
        }
    }

    /// Appends the rendered text to `out`.
    pub fn render(&self, ctx: &Ctx<'_>, out: &mut Vec<u8>, escape: Escape) {
        for p in self.pieces.iter() {
            match (p, escape) {
                (Piece::Lit(l), _) => out.extend_from_slice(l),
                (p, Escape::None) => out.extend_from_slice(value(p, ctx)),
                (p, Escape::Url) => url_escape_into(value(p, ctx), out),
            }
        }
    }

    /// A rough size for the output buffer: literal bytes plus a guess.
    pub fn size_hint(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Lit(l) => l.len(),
                _ => 32,
            })
            .sum()
    }
}

fn parse_pieces(text: &str, maps: &Maps) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut lit = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let word = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(after, |end| &after[..end]);
        if word.len() > 1 && after[word.len()..].starts_with(':') {
            // `{Map:key}`; `{ToLower:...}` and other IIS functions are not run.
            let Some(map) = maps.get(word) else {
                return Err(format!(
                    "{{{word}:...}}: functions are not supported and no rewrite map is called \
                     {word:?}; use back-references {{R:n}}, {{C:n}}, server variables or a \
                     map from rewrite_maps"
                ));
            };
            let inner_start = word.len() + 1;
            let Some(len) = closing(&after[inner_start..]) else {
                return Err(format!("{{{word}:...}}: the map lookup has no closing }}"));
            };
            let key = parse_pieces(&after[inner_start..inner_start + len], maps)?;
            lit.extend_from_slice(&rest.as_bytes()[..open]);
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit).into()));
            }
            pieces.push(Piece::Map(map.clone(), key.into()));
            rest = &after[inner_start + len + 1..];
            continue;
        }
        let reference = after.find('}').map(|close| &after[..close]);
        match reference.filter(|r| is_name_shaped(r)) {
            Some(r) => {
                lit.extend_from_slice(&rest.as_bytes()[..open]);
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit).into()));
                }
                pieces.push(parse_reference(r)?);
                rest = &after[r.len() + 1..];
            }
            None => {
                lit.extend_from_slice(&rest.as_bytes()[..=open]);
                rest = after;
            }
        }
    }
    lit.extend_from_slice(rest.as_bytes());
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit.into()));
    }
    Ok(pieces)
}

/// The length of `s` up to the `}` that closes an already opened brace.
fn closing(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Every piece, map keys included, for the build-time checks.
fn walk<'a>(pieces: &'a [Piece], out: &mut Vec<&'a Piece>) {
    for p in pieces {
        out.push(p);
        if let Piece::Map(_, key) = p {
            walk(key, out);
        }
    }
}

#[inline]
fn value<'a>(p: &'a Piece, ctx: &Ctx<'a>) -> &'a [u8] {
    match p {
        Piece::Lit(l) => l,
        Piece::Rule(n) => ctx.r.get(*n),
        Piece::Cond(n) => ctx.c.get(*n),
        Piece::Var(v) => v.value(ctx.req, ctx.url),
        Piece::Map(map, key) => match &**key {
            [one] => map.get(value(one, ctx)),
            pieces => {
                let mut k = Vec::with_capacity(64);
                for p in pieces.iter() {
                    k.extend_from_slice(value(p, ctx));
                }
                map.get(&k)
            }
        },
    }
}

fn is_name_shaped(r: &str) -> bool {
    let mut chars = r.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_reference(r: &str) -> Result<Piece, String> {
    if let Some((kind, rest)) = r.split_once(':') {
        let n = rest.parse::<usize>().ok().filter(|n| *n <= 9);
        return match (kind, n) {
            ("R" | "r", Some(n)) => Ok(Piece::Rule(n)),
            ("C" | "c", Some(n)) => Ok(Piece::Cond(n)),
            ("R" | "r" | "C" | "c", None) => Err(format!(
                "{{{r}}}: back-references are {{R:0}}..{{R:9}} and {{C:0}}..{{C:9}}"
            )),
            _ => Err(format!(
                "{{{r}}}: functions are not supported; use back-references \
                 {{R:n}}, {{C:n}} or server variables"
            )),
        };
    }
    Variable::parse(r).map(Piece::Var)
}

/// May `b` appear unencoded in a URL we emit? RFC 3986 unreserved and
/// reserved characters plus `%` (existing escapes pass through); not `#`,
/// which would cut the URL short.
pub fn url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'%'
        )
}

fn url_escape_into(v: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in v {
        if url_safe(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method, Uri, Version};

    fn render(t: &str, escape: Escape) -> String {
        let (m, u) = (Method::GET, Uri::from_static("/a/b?x=1"));
        let mut h = HeaderMap::new();
        h.insert("host", "api.example".parse().expect("valid"));
        h.insert("x-note", "a b#c".parse().expect("valid"));
        let req = RequestView::new(&m, &u, Version::HTTP_11, &h, b"10.1.2.3", 443, true);
        let p = super::super::pattern::Pattern::compile("^/(a)/(b)$", true, false).expect("ok");
        let r = p.captures(b"/a/b");
        let ctx = Ctx {
            req: &req,
            url: "/a/b",
            r: &r,
            c: &Captures::NONE,
        };
        let mut out = Vec::new();
        Template::parse(t)
            .expect("valid")
            .render(&ctx, &mut out, escape);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn pieces_render_in_order() {
        assert_eq!(render("/{R:2}/{R:1}", Escape::None), "/b/a");
        assert_eq!(
            render("https://{HTTP_HOST}{REQUEST_URI}", Escape::Url),
            "https://api.example/a/b?x=1"
        );
        assert_eq!(render("{R:7}|{C:1}", Escape::None), "|");
        assert_eq!(render("{\"ok\": {R:1}}", Escape::None), "{\"ok\": a}");
        assert_eq!(render("plain", Escape::None), "plain");
    }

    #[test]
    fn url_escaping_applies_to_expansions_only() {
        assert_eq!(render("/n/{HTTP_X_NOTE}", Escape::Url), "/n/a%20b%23c");
        assert_eq!(render("/n/{HTTP_X_NOTE}", Escape::None), "/n/a b#c");
    }

    #[test]
    fn bad_references_are_errors() {
        assert!(Template::parse("/{R:10}").is_err());
        assert!(Template::parse("/{X:1}").unwrap_err().contains("functions"));
        let e = Template::parse("/{ToLower:{R:1}}").unwrap_err();
        assert!(
            e.starts_with("{ToLower:...}: functions are not supported"),
            "{e}"
        );
        assert!(Template::parse("/{NOPE}")
            .unwrap_err()
            .contains("unknown server variable"));
        let t = Template::parse("/{R:3}{C:2}").expect("valid");
        assert_eq!((t.max_rule_ref(), t.max_cond_ref()), (Some(3), Some(2)));
    }

    #[test]
    fn a_literal_template_is_prebuilt() {
        let t = Template::parse("Down for maintenance").expect("valid");
        assert_eq!(
            t.literal().map(|b| &b[..]),
            Some(&b"Down for maintenance"[..])
        );
        assert!(Template::parse("{URL}").expect("valid").literal().is_none());
    }
}
