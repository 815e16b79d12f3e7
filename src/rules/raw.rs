//! Serde types of the `rules:` section (URL rewrite rules), mirroring the
//! YAML one to one. Compiled into `rules::RuleSet` by `compile.rs`;
//! nothing on the request path sees them.
//!
//! Two spots accept a shorthand: `match` is a pattern string or a mapping
//! `{pattern, ignore_case, negate}`, and `action` is `abort`/`none` or a
//! one-key mapping `{route|redirect|respond: ...}`.

use crate::ground::yaml::Scalar;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// One rule, evaluated in file order. `C` is the `compression` section,
/// whose shape the compression stage owns (a layer above this one): the
/// config names it (`config::raw::RawRule`) and compiles it beside the
/// rule set; the rules only note which rule has one.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule<C> {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matches: RawMatch,
    #[serde(default)]
    pub conditions: Vec<RawCondition>,
    #[serde(default)]
    pub condition_match: RawConditionMatch,
    #[serde(default)]
    pub set_headers: TextMap,
    pub action: RawAction,
    #[serde(default)]
    pub stop_processing: Option<bool>,
    /// IP allow and deny lists: a matching request from a client they
    /// refuse gets 403.
    #[serde(default)]
    pub access: Option<crate::limits::RawAccess>,
    /// Replaces the compression of the farm this rule routes to.
    #[serde(default)]
    pub compression: Option<C>,
}

/// The rule's pattern against the normalised path.
#[derive(Debug)]
pub struct RawMatch {
    pub pattern: String,
    pub ignore_case: Option<bool>,
    pub negate: bool,
}

/// `all` (every condition must hold) or `any` (one is enough).
#[derive(Debug, Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RawConditionMatch {
    #[default]
    All,
    Any,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub input: String,
    pub pattern: String,
    #[serde(default)]
    pub negate: bool,
    #[serde(default)]
    pub ignore_case: Option<bool>,
}

#[derive(Debug)]
pub enum RawAction {
    Route(RawRoute),
    Redirect(RawRedirect),
    Respond(RawRespond),
    /// The name of a limit (`limits:`) applied to matching requests.
    Limit(String),
    Abort,
    None,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default)]
    pub farm: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub append_query_string: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    pub url: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub append_query_string: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    pub status: u16,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub headers: TextMap,
}

// === impl RawMatch ===

impl<'de> Deserialize<'de> for RawMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            pattern: String,
            #[serde(default)]
            ignore_case: Option<bool>,
            #[serde(default)]
            negate: bool,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMatch;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a pattern string or a mapping {pattern, ignore_case, negate}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawMatch, E> {
                Ok(RawMatch {
                    pattern: v.to_string(),
                    ignore_case: None,
                    negate: false,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawMatch, A::Error> {
                let f = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawMatch {
                    pattern: f.pattern,
                    ignore_case: f.ignore_case,
                    negate: f.negate,
                })
            }
        }
        d.deserialize_any(V)
    }
}

// === impl RawAction ===

const ACTIONS: &[&str] = &["route", "redirect", "respond", "limit", "abort", "none"];

impl<'de> Deserialize<'de> for RawAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAction;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("abort, none, or a mapping with one of route, redirect, respond, limit")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawAction, E> {
                match v {
                    "abort" => Ok(RawAction::Abort),
                    "none" => Ok(RawAction::None),
                    "route" | "redirect" | "respond" | "limit" => Err(E::custom(format!(
                        "{v} needs settings, e.g. `{v}: {{ ... }}`"
                    ))),
                    _ => Err(E::unknown_variant(v, ACTIONS)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAction, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("an action is needed"));
                };
                let action = match kind.as_str() {
                    "route" => RawAction::Route(map.next_value()?),
                    "redirect" => RawAction::Redirect(map.next_value()?),
                    "respond" => RawAction::Respond(map.next_value()?),
                    "limit" => RawAction::Limit(map.next_value::<Scalar>()?.0),
                    "abort" | "none" => {
                        map.next_value::<de::IgnoredAny>()?;
                        if kind == "abort" {
                            RawAction::Abort
                        } else {
                            RawAction::None
                        }
                    }
                    other => return Err(de::Error::unknown_variant(other, ACTIONS)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "one action per rule; `{extra}` is a second one"
                    )));
                }
                Ok(action)
            }
        }
        d.deserialize_any(V)
    }
}

// === impl TextMap ===

/// A mapping of names to text in document order (header names to values).
/// Scalar values are taken as text, so `Retry-After: 120` needs no quotes.
#[derive(Debug, Default)]
pub struct TextMap(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for TextMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Scalar, Scalar>()? {
                    out.push((k.0, v.0));
                }
                Ok(TextMap(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TextMap, E> {
                Ok(TextMap::default())
            }
        }
        d.deserialize_any(V)
    }
}
