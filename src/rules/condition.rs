//! A rule's conditions: an input (a template, usually one server variable)
//! tested against a pattern, combined with `all` or `any`. The condition
//! that decided the outcome supplies the `{C:n}` back-references: with
//! `all` the last one, with `any` the first that matched (IIS's rule).

use super::pattern::{Captures, Pattern};
use super::template::{Ctx, Escape, Template};

/// How a rule's conditions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConditionMatch {
    /// Every condition must hold.
    #[default]
    All,
    /// One is enough.
    Any,
}

#[derive(Debug)]
pub struct Condition {
    pub input: Template,
    pub pattern: Pattern,
}

#[derive(Debug)]
pub struct Conditions {
    list: Box<[Condition]>,
    mode: ConditionMatch,
}

impl Conditions {
    pub fn new(list: Vec<Condition>, mode: ConditionMatch) -> Self {
        Conditions {
            list: list.into(),
            mode,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The most capture groups any condition's pattern has (group 0 counted).
    pub fn max_groups(&self) -> usize {
        self.list
            .iter()
            .filter(|c| !c.pattern.is_negated())
            .map(|c| c.pattern.groups())
            .max()
            .unwrap_or(0)
    }

    /// Evaluates the conditions. `Some(i)` when they hold, with `i` the
    /// deciding condition (`None` inside when there are no conditions or
    /// none of them decided by matching); `None` when they fail.
    /// `scratch` is reused for inputs made of several pieces.
    pub fn check(&self, ctx: &Ctx<'_>, scratch: &mut Vec<u8>) -> Option<Option<usize>> {
        if self.list.is_empty() {
            return Some(None);
        }
        match self.mode {
            ConditionMatch::All => {
                for c in self.list.iter() {
                    if !c.pattern.is_match(input(c, ctx, scratch)) {
                        return None;
                    }
                }
                Some(Some(self.list.len() - 1))
            }
            ConditionMatch::Any => self
                .list
                .iter()
                .position(|c| c.pattern.is_match(input(c, ctx, scratch)))
                .map(Some),
        }
    }

    /// The `{C:n}` captures of condition `i`, written over `hay` when its
    /// input has to be rendered.
    pub fn captures<'h>(&'h self, i: usize, ctx: &Ctx<'h>, hay: &'h mut Vec<u8>) -> Captures<'h> {
        match self.list.get(i) {
            Some(c) => c.pattern.captures(input(c, ctx, hay)),
            None => Captures::NONE,
        }
    }
}

fn input<'a>(c: &'a Condition, ctx: &Ctx<'a>, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    match c.input.single(ctx) {
        Some(v) => v,
        None => {
            scratch.clear();
            c.input.render(ctx, scratch, Escape::None);
            scratch
        }
    }
}
