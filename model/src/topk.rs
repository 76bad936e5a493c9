//! Selecting the `k` best-scored entries of a list.
//!
//! Every ranked list in Encore is "greater is better", best first, ties broken
//! by the lower index so that lists are reproducible. `NaN` scores are never
//! selected. `-0.0` and `0.0` are equal scores (so the index decides).
//!
//! # Implementation notes
//! Both functions keep the `k` best entries seen so far in a binary heap whose
//! top is the *worst* of them: an entry only enters when it beats that top,
//! which is `O(log k)`, so a whole scan is `O(n log k)` and, once the heap is
//! full, most entries are rejected by one comparison against the current
//! threshold. The dense variant tests the threshold *before* calling `skip`,
//! so an expensive filter only runs for entries that could make the list.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Ranking order of `(index, score)` entries: `Less` means `a` ranks before
/// `b` (higher score, or equal score and lower index). Scores must not be NaN.
#[inline]
pub fn rank_order(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.partial_cmp(&a.1)
        .unwrap_or(Ordering::Equal)
        .then(a.0.cmp(&b.0))
}

/// A heap entry; the heap's maximum is the worst-ranked entry.
#[derive(Debug, Clone, Copy)]
struct Worst((u32, f32));

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Worst {}

impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        rank_order(&self.0, &other.0)
    }
}

/// The `k` best entries seen so far.
struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            // Never reserve more than a modest amount up front: `k` may be huge.
            heap: BinaryHeap::with_capacity(k.min(1024)),
        }
    }

    /// True if `(index, score)` would enter the list now. `score` is not NaN.
    #[inline]
    fn admits(&self, entry: (u32, f32)) -> bool {
        if self.heap.len() < self.k {
            return true;
        }
        match self.heap.peek() {
            Some(worst) => rank_order(&entry, &worst.0) == Ordering::Less,
            None => false, // k == 0
        }
    }

    /// Offers an entry whose score is not NaN.
    #[inline]
    fn push(&mut self, entry: (u32, f32)) {
        if self.heap.len() < self.k {
            self.heap.push(Worst(entry));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && rank_order(&entry, &worst.0) == Ordering::Less
        {
            // Replacing the top through `PeekMut` re-sifts the heap when the
            // guard drops: one O(log k) operation instead of a pop and a push.
            *worst = Worst(entry);
        }
    }

    /// The selected entries, best first.
    fn into_sorted(self) -> Vec<(u32, f32)> {
        // `into_sorted_vec` is ascending in `Worst` order, i.e. best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|w| w.0)
            .collect()
    }
}

/// The `k` best `(index, score)` entries, best first (descending score, ties
/// broken by lower index). `NaN` scores are never selected; duplicate indices
/// are kept as separate entries. `O(n log k)`.
pub fn top_k(scores: impl IntoIterator<Item = (u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut top = TopK::new(k);
    for entry in scores {
        if !entry.1.is_nan() {
            top.push(entry);
        }
    }
    top.into_sorted()
}

/// [`top_k`] over a dense score array (index `i` has score `scores[i]`),
/// leaving out every index for which `skip` returns true.
///
/// `skip` is only called for entries whose score could still make the list,
/// so it may be comparatively expensive (a hash lookup, a binary search).
pub fn top_k_dense(scores: &[f32], k: usize, skip: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut top = TopK::new(k);
    for (i, &s) in scores.iter().enumerate() {
        let entry = (i as u32, s);
        if s.is_nan() || !top.admits(entry) || skip(entry.0) {
            continue;
        }
        top.push(entry);
    }
    top.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious reference: drop NaN, sort, truncate.
    fn reference(mut v: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
        v.retain(|e| !e.1.is_nan());
        v.sort_by(rank_order);
        v.truncate(k);
        v
    }

    #[test]
    fn orders_by_score_then_index() {
        let got = top_k([(5, 1.0), (2, 3.0), (9, 3.0), (1, f32::NAN), (0, -1.0)], 3);
        assert_eq!(got, vec![(2, 3.0), (9, 3.0), (5, 1.0)]);
        assert!(top_k([(1, 1.0)], 0).is_empty());
        assert_eq!(top_k([(1, f32::NAN)], 4), vec![]);
        assert_eq!(top_k([(3, 0.0), (1, -0.0)], 1), vec![(1, -0.0)]);
    }

    #[test]
    fn dense_skips_and_handles_infinities() {
        let scores = [0.5, f32::INFINITY, f32::NAN, 0.5, f32::NEG_INFINITY, 2.0];
        assert_eq!(
            top_k_dense(&scores, 3, |i| i == 5),
            vec![(1, f32::INFINITY), (0, 0.5), (3, 0.5)]
        );
        assert_eq!(top_k_dense(&scores, 10, |_| false).len(), 5);
        assert!(top_k_dense(&scores, 0, |_| false).is_empty());
        assert!(top_k_dense(&[], 3, |_| false).is_empty());
    }

    fn score() -> impl Strategy<Value = f32> {
        prop_oneof![
            4 => (-3i8..3).prop_map(f32::from),
            4 => any::<f32>(),
            1 => Just(f32::NAN),
            1 => Just(-0.0f32),
        ]
    }

    proptest! {
        #[test]
        fn top_k_equals_sort_and_truncate(
            v in proptest::collection::vec((0u32..50, score()), 0..200),
            k in 0usize..60,
        ) {
            prop_assert_eq!(top_k(v.iter().copied(), k), reference(v, k));
        }

        #[test]
        fn dense_equals_sort_and_truncate(
            s in proptest::collection::vec(score(), 0..200),
            k in 0usize..60,
            modulo in 1u32..5,
        ) {
            let skip = |i: u32| modulo > 1 && i.is_multiple_of(modulo);
            let all: Vec<(u32, f32)> = s
                .iter()
                .enumerate()
                .map(|(i, &x)| (i as u32, x))
                .filter(|&(i, _)| !skip(i))
                .collect();
            prop_assert_eq!(top_k_dense(&s, k, skip), reference(all, k));
        }
    }
}
