//! One pass over the path for every rule's `match` pattern. Rules are
//! tried in order, but asking 200 regexes one by one costs 200 searches;
//! a multi-pattern regex answers "which of them match?" in one scan, so a
//! request pays for the path's length, not the rule count.
//!
//! The set holds the first [`SET_MAX`] patterns (a bitmap on the stack
//! carries the answer, so nothing is allocated per request); rules past
//! that, every rule of a short list, or every rule if the set cannot be
//! built, are asked one by one.

use regex_automata::meta::{self, Regex};
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};
use std::cell::RefCell;

/// Patterns the set carries; the bitmap is `SET_MAX / 64` words.
pub const SET_MAX: usize = 256;

/// Below this many rules, asking each regex is as fast as the set (the set
/// must scan the whole path to report every pattern; one regex can stop
/// early), so no set is built.
pub const SET_MIN: usize = 5;

#[derive(Debug, Default)]
pub struct Prefilter {
    set: Option<Regex>,
}

/// Which of the first [`SET_MAX`] patterns match (before `negate`).
#[derive(Debug, Clone, Copy)]
pub struct Candidates {
    bits: [u64; SET_MAX / 64],
    /// Patterns the bitmap answers for.
    covered: usize,
}

impl Candidates {
    /// Does pattern `i` match, if the bitmap knows?
    #[inline]
    pub fn get(&self, i: usize) -> Option<bool> {
        (i < self.covered).then(|| self.bits[i / 64] & (1 << (i % 64)) != 0)
    }
}

thread_local! {
    static SCRATCH: RefCell<PatternSet> = RefCell::new(PatternSet::new(SET_MAX));
}

impl Prefilter {
    /// Builds the set from `(pattern, ignore_case)` pairs with the same
    /// syntax the rules' own regexes use (bytes, Unicode on). A set too
    /// large for the size limit is skipped: rules then run one by one.
    pub fn build(patterns: &[(&str, bool)]) -> Prefilter {
        if patterns.len() < SET_MIN {
            return Prefilter::default();
        }
        let mut hirs = Vec::with_capacity(patterns.len().min(SET_MAX));
        for (p, ignore_case) in patterns.iter().take(SET_MAX) {
            let parsed = regex_syntax::ParserBuilder::new()
                .utf8(false)
                .case_insensitive(*ignore_case)
                .build()
                .parse(p);
            match parsed {
                Ok(h) => hirs.push(h),
                Err(_) => return Prefilter::default(),
            }
        }
        let config = meta::Config::new()
            .match_kind(MatchKind::All)
            .utf8_empty(false)
            .which_captures(WhichCaptures::None)
            .nfa_size_limit(Some(16 << 20))
            .hybrid_cache_capacity(2 << 20);
        let set = meta::Builder::new()
            .configure(config)
            .syntax(syntax::Config::new().utf8(false))
            .build_many_from_hir(&hirs)
            .ok();
        Prefilter { set }
    }

    /// Which patterns match `hay`.
    pub fn candidates(&self, hay: &[u8]) -> Candidates {
        let mut c = Candidates {
            bits: [0; SET_MAX / 64],
            covered: 0,
        };
        let Some(set) = &self.set else {
            return c;
        };
        SCRATCH.with(|s| {
            let Ok(mut ps) = s.try_borrow_mut() else {
                return;
            };
            ps.clear();
            set.which_overlapping_matches(&Input::new(hay), &mut ps);
            for i in ps.iter() {
                c.bits[i.as_usize() / 64] |= 1 << (i.as_usize() % 64);
            }
            c.covered = set.pattern_len();
        });
        c
    }
}
