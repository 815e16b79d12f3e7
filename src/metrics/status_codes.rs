//! Lock-free response counters by exact HTTP status code.
//!
//! One atomic per code, grouped in classes of a hundred (1xx..9xx) that are
//! allocated the first time a code of that class is seen, so a server that
//! only ever answers 2xx and 3xx holds two small arrays. Counting is an
//! index and a `fetch_add`: no map, no lock, no label formatting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

type Class = Box<[AtomicU64; 100]>;

/// Counts per status code 100..=999.
#[derive(Default)]
pub struct StatusCounts {
    classes: [OnceLock<Class>; 9],
}

impl std::fmt::Debug for StatusCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl StatusCounts {
    /// Counts one response with `code` (codes outside 100..=999, which
    /// hyper never produces, are ignored).
    #[inline]
    pub fn inc(&self, code: u16) {
        let Some((class, slot)) = split(code) else {
            return;
        };
        let counts = self.classes[class]
            .get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
        counts[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for one code.
    pub fn get(&self, code: u16) -> u64 {
        split(code)
            .and_then(|(class, slot)| self.classes[class].get().map(|c| &c[slot]))
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// Every code seen at least once, ascending, with its count.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.classes
            .iter()
            .enumerate()
            .filter_map(|(class, c)| c.get().map(|c| (class, c)))
            .flat_map(|(class, counts)| {
                counts.iter().enumerate().filter_map(move |(slot, a)| {
                    let n = a.load(Ordering::Relaxed);
                    (n > 0).then_some(((class as u16 + 1) * 100 + slot as u16, n))
                })
            })
    }

    /// All responses counted.
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }

    /// Responses whose code is `from..=to` (e.g. 500..=599).
    pub fn between(&self, from: u16, to: u16) -> u64 {
        self.iter()
            .filter(|(c, _)| (from..=to).contains(c))
            .map(|(_, n)| n)
            .sum()
    }
}

#[inline]
fn split(code: u16) -> Option<(usize, usize)> {
    if !(100..=999).contains(&code) {
        return None;
    }
    Some((usize::from(code / 100 - 1), usize::from(code % 100)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exact_codes() {
        let c = StatusCounts::default();
        for code in [200, 200, 404, 503, 999, 100, 1000, 99] {
            c.inc(code);
        }
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            vec![(100, 1), (200, 2), (404, 1), (503, 1), (999, 1)]
        );
        assert_eq!(c.get(200), 2);
        assert_eq!(c.get(201), 0);
        assert_eq!(c.total(), 6);
        assert_eq!(c.between(500, 599), 1);
    }

    #[test]
    fn classes_are_allocated_on_first_use() {
        let c = StatusCounts::default();
        c.inc(204);
        assert!(c.classes[1].get().is_some());
        assert!(c.classes.iter().filter(|c| c.get().is_some()).count() == 1);
    }
}
