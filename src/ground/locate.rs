//! Finds the line and column of a key path (`farms[0].servers[1].weight`) in
//! YAML text. It replays the document through the same YAML parser with a
//! visitor that stops with an error at the wanted node, so the parser's own
//! position marks say where the node is; this works for block and flow style
//! alike. A path that is absent resolves to its nearest present ancestor.

use super::yaml::Scalar;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

const HERE: &str = "\u{0}farmgate-locate-here";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped.find(']').unwrap_or(stripped.len());
            if let Ok(i) = stripped[..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = stripped.get(end + 1..).unwrap_or("");
        }
    }
    out
}

/// Returns (line, column), both 1-based, of the node at `path`, or of its
/// nearest ancestor that exists. Falls back to (1, 1).
pub fn locate(text: &str, path: &str) -> (usize, usize) {
    let segs = parse_path(path);
    let de = yaml_serde::Deserializer::from_str(text);
    match (Seek { path: &segs }).deserialize(de) {
        Err(e) => match e.location() {
            Some(loc) => (loc.line(), loc.column()),
            None => (1, 1),
        },
        Ok(()) => (1, 1),
    }
}

struct Seek<'p> {
    path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        while let Some(key) = map.next_key::<KeyText>()? {
            let key = key.map_or(String::new(), |k| k.0);
            if matches!(first, Seg::Key(k) if *k == key) {
                return map.next_value_seed(Seek { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(HERE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        let mut i = 0;
        loop {
            if matches!(first, Seg::Index(n) if *n == i) {
                return match seq.next_element_seed(Seek { path: rest })? {
                    Some(()) => Ok(()),
                    None => Err(de::Error::custom(HERE)),
                };
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(HERE));
            }
            i += 1;
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
}

/// A mapping key as text, whatever scalar type YAML gave it (`~`: empty).
type KeyText = Option<Scalar>;

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
listeners:
  - bind: \"127.0.0.1:8080\"
farms:
  - name: web
    servers:
      - address: \"127.0.0.1:9001\"
      - address: \"127.0.0.1:9002\"
        weight: heavy
  - { name: api, servers: [ { address: \"x:1\" } ] }
";

    #[test]
    fn finds_block_nodes() {
        assert_eq!(locate(DOC, "farms[0].servers[1].weight"), (8, 17));
        assert_eq!(locate(DOC, "farms[0].name"), (4, 11));
        assert_eq!(locate(DOC, "listeners[0].bind"), (2, 11));
    }

    #[test]
    fn finds_flow_nodes() {
        let (line, col) = locate(DOC, "farms[1].servers[0].address");
        assert_eq!(line, 9);
        assert!(col > 30, "column {col}");
    }

    #[test]
    fn missing_key_falls_back_to_parent() {
        assert_eq!(locate(DOC, "farms[0].servers[0].weight").0, 6);
        assert_eq!(locate(DOC, "farms[7]").0, 4);
    }
}
