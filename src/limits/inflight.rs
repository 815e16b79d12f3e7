//! Counting what a key has open at once: requests in flight under a
//! limit's `concurrent`, or connections under a listener's
//! `max_connections_per_ip`. A fixed set-associative table like the rate
//! store's, but each slot is ONE atomic word (a 48-bit key tag and a 16-bit
//! count), so taking and giving back a place are single compare-and-swaps
//! that can never mix two keys up: no lock, no allocation, 8 bytes a slot.
//! A slot whose count is back to 0 is free for any key. When every slot of
//! a key's bucket is busy with other keys the key is let through uncounted
//! ([`Admit::Untracked`]): the table bounds memory, never honest clients.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

const WAYS: usize = 8;
const COUNT_BITS: u32 = 16;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

#[derive(Debug)]
pub struct InFlight {
    slots: Box<[AtomicU64]>,
    mask: u64,
}

/// The answer to [`InFlight::enter`].
#[derive(Debug)]
pub enum Admit {
    /// Counted; the place is given back when the guard drops.
    In(InFlightGuard),
    /// The key already has `max` open.
    Full,
    /// No slot free for the key: let through, uncounted.
    Untracked,
}

/// A key's place in the table while its request or connection is open.
#[derive(Debug)]
pub struct InFlightGuard {
    table: Arc<InFlight>,
    index: usize,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let slot = &self.table.slots[self.index];
        // Counts only go down by their own guard: the tag stays until 0.
        let _ = slot.fetch_update(Relaxed, Relaxed, |w| {
            let n = w & COUNT_MASK;
            Some(if n <= 1 { 0 } else { w - 1 })
        });
    }
}

impl InFlight {
    /// A table of at least `max_keys` slots.
    pub fn new(max_keys: usize) -> InFlight {
        let slots = max_keys.div_ceil(WAYS).max(1).next_power_of_two() * WAYS;
        InFlight {
            slots: std::iter::repeat_with(AtomicU64::default)
                .take(slots)
                .collect(),
            mask: (slots / WAYS) as u64 - 1,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Takes a place for the key hashed to `h` if it has fewer than `max`
    /// (at most 65,535) open.
    pub fn enter(self: &Arc<Self>, h: u64, max: u32) -> Admit {
        let max = u64::from(max).min(COUNT_MASK);
        let tag = h << COUNT_BITS;
        let start = ((h >> 40) & self.mask) as usize * WAYS;
        for _ in 0..4 {
            let bucket = &self.slots[start..start + WAYS];
            if let Some(i) = (0..WAYS).find(|&i| {
                let w = bucket[i].load(Relaxed);
                w & !COUNT_MASK == tag && w & COUNT_MASK != 0
            }) {
                let taken = bucket[i].fetch_update(Relaxed, Relaxed, |w| {
                    (w & !COUNT_MASK == tag && w & COUNT_MASK != 0 && w & COUNT_MASK < max)
                        .then_some(w + 1)
                });
                match taken {
                    Ok(_) => return self.guard(start + i),
                    Err(w) if w & !COUNT_MASK == tag && w & COUNT_MASK != 0 => return Admit::Full,
                    // Given back to 0 meanwhile: look again.
                    Err(_) => continue,
                }
            }
            if max == 0 {
                return Admit::Full;
            }
            let Some(i) = (0..WAYS).find(|&i| bucket[i].load(Relaxed) & COUNT_MASK == 0) else {
                return Admit::Untracked;
            };
            let old = bucket[i].load(Relaxed);
            if old & COUNT_MASK == 0
                && bucket[i]
                    .compare_exchange(old, tag | 1, Relaxed, Relaxed)
                    .is_ok()
            {
                return self.guard(start + i);
            }
        }
        Admit::Untracked
    }

    fn guard(self: &Arc<Self>, index: usize) -> Admit {
        Admit::In(InFlightGuard {
            table: self.clone(),
            index,
        })
    }

    /// Keys with something open now.
    pub fn keys(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(Relaxed) & COUNT_MASK != 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_max_places_and_gets_them_back() {
        let t = Arc::new(InFlight::new(100));
        let a: Vec<_> = (0..3).map(|_| t.enter(7, 3)).collect();
        assert!(a.iter().all(|x| matches!(x, Admit::In(_))));
        assert!(matches!(t.enter(7, 3), Admit::Full));
        assert!(
            matches!(t.enter(8, 3), Admit::In(_)),
            "keys are independent"
        );
        drop(a);
        assert_eq!(t.keys(), 0);
        assert!(matches!(t.enter(7, 3), Admit::In(_)));
    }

    #[test]
    fn a_full_bucket_lets_keys_through_uncounted() {
        let t = Arc::new(InFlight::new(8));
        let held: Vec<_> = (1..=8u64).map(|k| t.enter(k, 1)).collect();
        assert!(held.iter().all(|x| matches!(x, Admit::In(_))));
        assert!(matches!(t.enter(99, 1), Admit::Untracked));
        assert_eq!(t.keys(), 8);
    }
}
