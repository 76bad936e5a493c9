//! Ranking metrics for offline evaluation, with binary relevance.
//!
//! Every function takes a ranked list of item indices (best first), the set of
//! relevant items (what the customer actually bought in the test period) and
//! the cut-off `k`, and returns `None` when the relevant set is empty: such a
//! customer says nothing about the model and the caller skips them rather than
//! averaging in a 0 or a 1.
//!
//! Notation: `L_k` is the first `k` entries of the list, `rel_i` is 1 if the
//! entry at rank `i` (1-based) is relevant and 0 otherwise, `R` is the relevant
//! set.
//!
//! An item that appears more than once in the list counts only at its first
//! position (later copies are treated as non-relevant), so every metric stays
//! in `[0, 1]` whatever the list holds. `k = 0` gives 0 for every metric.
//!
//! # Aggregation over customers
//! A report's figure for a model is the mean of the per-customer value over
//! the customers for whom it is defined (non-empty `R`):
//!
//! ```text
//! Recall@k  = mean_c recall@k(c)
//! NDCG@k    = mean_c nDCG@k(c)
//! HitRate@k = mean_c hit@k(c)
//! MAP@k     = mean_c AP@k(c)
//! ```
//!
//! # Repeat and new items
//! As in next-basket evaluations (Cornac's `NextBasketEvaluation`, the "Next
//! Basket Recommendation Reality Check"), every per-customer metric is also
//! computed against two halves of the relevant set: `R_rep = R ∩ H`, the
//! relevant items the customer had bought before the cutoff (`H`, their
//! history), and `R_new = R \ H`. The ranked list is the same in all three;
//! only the relevant set changes. `recall_repeat@k` is thus
//! `|L_k ∩ R_rep| / |R_rep|`, averaged over the customers with a non-empty
//! `R_rep` (and likewise for `new`), so the repeat and new means are taken
//! over different customer sets and do not add up to the overall recall.
//!
//! # Catalog coverage
//! [`catalog_coverage`] is not per customer: with `C` the catalog of items
//! that could be recommended and `L_k(c)` each scored customer's list,
//!
//! ```text
//! coverage@k = |C ∩ ⋃_c L_k(c)| / |C|
//! ```
//!
//! the share of the catalog that appears in at least one list.

use std::collections::HashSet;

/// `rel_i` for `i = 1..=min(k, len)`, counting each relevant item once.
fn relevance<'a>(
    ranked: &'a [u32],
    relevant: &'a HashSet<u32>,
    k: usize,
) -> impl Iterator<Item = bool> + 'a {
    let mut seen: Vec<u32> = Vec::new();
    ranked.iter().take(k).map(move |&item| {
        if relevant.contains(&item) && !seen.contains(&item) {
            seen.push(item);
            true
        } else {
            false
        }
    })
}

fn hits(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> usize {
    relevance(ranked, relevant, k).filter(|&r| r).count()
}

/// Recall at `k`, the standard definition:
///
/// ```text
/// recall@k = |L_k ∩ R| / |R|
/// ```
///
/// It cannot reach 1 when `|R| > k`; see [`recall_at_k_capped`] for the
/// variant that can. `None` if `R` is empty.
pub fn recall_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> Option<f64> {
    if relevant.is_empty() {
        return None;
    }
    Some(hits(ranked, relevant, k) as f64 / relevant.len() as f64)
}

/// Recall at `k` with the denominator capped at `k` (sometimes called
/// "R-precision at k" or the recall used by the Million Song / `implicit`
/// evaluations):
///
/// ```text
/// recall_capped@k = |L_k ∩ R| / min(|R|, k)
/// ```
///
/// A perfect list scores 1 even when the customer bought more than `k` items.
/// `None` if `R` is empty; 0 if `k = 0`.
pub fn recall_at_k_capped(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> Option<f64> {
    if relevant.is_empty() {
        return None;
    }
    let denom = relevant.len().min(k);
    if denom == 0 {
        return Some(0.0);
    }
    Some(hits(ranked, relevant, k) as f64 / denom as f64)
}

/// Hit rate at `k`: 1 if any of the first `k` entries is relevant, else 0.
///
/// ```text
/// hit@k = [ |L_k ∩ R| > 0 ]
/// ```
///
/// Averaged over customers this is the share of customers with at least one
/// good recommendation. `None` if `R` is empty.
pub fn hit_rate_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> Option<f64> {
    if relevant.is_empty() {
        return None;
    }
    let hit = ranked.iter().take(k).any(|i| relevant.contains(i));
    Some(if hit { 1.0 } else { 0.0 })
}

/// Normalised discounted cumulative gain at `k`, binary relevance, log2 discount:
///
/// ```text
/// DCG@k  = Σ_{i=1..k} rel_i / log2(i + 1)
/// IDCG@k = Σ_{i=1..min(|R|, k)} 1 / log2(i + 1)      (all relevant items first)
/// nDCG@k = DCG@k / IDCG@k
/// ```
///
/// `None` if `R` is empty; 0 if `k = 0`.
pub fn ndcg_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> Option<f64> {
    if relevant.is_empty() {
        return None;
    }
    let discount = |i: usize| 1.0 / ((i + 2) as f64).log2(); // i is 0-based
    let ideal: f64 = (0..relevant.len().min(k)).map(discount).sum();
    if ideal == 0.0 {
        return Some(0.0);
    }
    let dcg: f64 = relevance(ranked, relevant, k)
        .enumerate()
        .filter(|&(_, r)| r)
        .map(|(i, _)| discount(i))
        .sum();
    Some((dcg / ideal).min(1.0))
}

/// Average precision at `k` (its mean over customers is MAP@k), normalised by
/// the number of relevant items the list could hold:
///
/// ```text
/// P@i  = |L_i ∩ R| / i
/// AP@k = Σ_{i=1..k} P@i · rel_i  /  min(|R|, k)
/// ```
///
/// `None` if `R` is empty; 0 if `k = 0`.
pub fn average_precision_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> Option<f64> {
    if relevant.is_empty() {
        return None;
    }
    let denom = relevant.len().min(k);
    if denom == 0 {
        return Some(0.0);
    }
    let mut found = 0usize;
    let mut sum = 0.0;
    for (i, rel) in relevance(ranked, relevant, k).enumerate() {
        if rel {
            found += 1;
            sum += found as f64 / (i + 1) as f64;
        }
    }
    Some((sum / denom as f64).min(1.0))
}

/// Catalog coverage at `k` (see the module docs): the share of the items for
/// which `in_catalog` is true that appear among the first `k` entries of at
/// least one of `lists`. Items outside the catalog are ignored; `catalog_size`
/// is the number of items in the catalog. 0 for an empty catalog.
pub fn catalog_coverage<'a>(
    lists: impl IntoIterator<Item = &'a [u32]>,
    k: usize,
    catalog_size: usize,
    in_catalog: impl Fn(u32) -> bool,
) -> f64 {
    if catalog_size == 0 {
        return 0.0;
    }
    let mut seen: HashSet<u32> = HashSet::new();
    for list in lists {
        seen.extend(list.iter().take(k).copied().filter(|&i| in_catalog(i)));
    }
    (seen.len() as f64 / catalog_size as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(items: &[u32]) -> HashSet<u32> {
        items.iter().copied().collect()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn hand_computed_values() {
        let rel = set(&[1, 3, 7]);
        let list = [3, 2, 7, 9];
        // Hits at ranks 1 and 3.
        assert!(close(recall_at_k(&list, &rel, 4), 2.0 / 3.0));
        assert!(close(recall_at_k(&list, &rel, 2), 1.0 / 3.0));
        assert!(close(recall_at_k_capped(&list, &rel, 2), 1.0 / 2.0));
        assert!(close(hit_rate_at_k(&list, &rel, 1), 1.0));
        assert!(close(hit_rate_at_k(&[2, 3], &rel, 1), 0.0));
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!(close(ndcg_at_k(&list, &rel, 4), dcg / idcg));
        // AP@4 = (1/1 + 2/3) / min(3, 4)
        assert!(close(
            average_precision_at_k(&list, &rel, 4),
            (1.0 + 2.0 / 3.0) / 3.0
        ));
    }

    #[test]
    fn coverage_hand_computed() {
        let lists: [&[u32]; 3] = [&[1, 2, 9], &[2, 3], &[]];
        // Catalog {1, 2, 3, 4}; 9 is outside it.
        let cat = |i: u32| (1..=4).contains(&i);
        assert_eq!(catalog_coverage(lists, 1, 4, cat), 0.5); // {1, 2}
        assert_eq!(catalog_coverage(lists, 3, 4, cat), 0.75); // {1, 2, 3}
        assert_eq!(catalog_coverage(lists, 3, 0, cat), 0.0);
    }

    #[test]
    fn empty_relevant_is_none_and_k_zero_is_zero() {
        let none = HashSet::new();
        assert_eq!(recall_at_k(&[1, 2], &none, 2), None);
        assert_eq!(recall_at_k_capped(&[1, 2], &none, 2), None);
        assert_eq!(hit_rate_at_k(&[1, 2], &none, 2), None);
        assert_eq!(ndcg_at_k(&[1, 2], &none, 2), None);
        assert_eq!(average_precision_at_k(&[1, 2], &none, 2), None);
        let rel = set(&[1]);
        assert_eq!(ndcg_at_k(&[1], &rel, 0), Some(0.0));
        assert_eq!(average_precision_at_k(&[1], &rel, 0), Some(0.0));
        assert_eq!(recall_at_k_capped(&[1], &rel, 0), Some(0.0));
        assert_eq!(recall_at_k(&[1], &rel, 0), Some(0.0));
    }

    #[test]
    fn duplicates_count_once() {
        let rel = set(&[1, 2]);
        assert_eq!(recall_at_k(&[1, 1, 1], &rel, 3), Some(0.5));
        assert_eq!(ndcg_at_k(&[1, 1], &rel, 2), ndcg_at_k(&[1, 9], &rel, 2));
        assert_eq!(
            average_precision_at_k(&[1, 1], &rel, 2),
            average_precision_at_k(&[1, 9], &rel, 2)
        );
    }

    type Metric = fn(&[u32], &HashSet<u32>, usize) -> Option<f64>;
    const ALL: [Metric; 5] = [
        recall_at_k,
        recall_at_k_capped,
        hit_rate_at_k,
        ndcg_at_k,
        average_precision_at_k,
    ];
    /// Metrics that reach 1 for a perfect list at any `k >= 1`.
    const CAPPED: [Metric; 4] = [
        recall_at_k_capped,
        hit_rate_at_k,
        ndcg_at_k,
        average_precision_at_k,
    ];

    proptest! {
        #[test]
        fn perfect_list_scores_one(
            relevant in proptest::collection::hash_set(0u32..100, 1..20),
            extra in proptest::collection::vec(100u32..200, 0..10),
            k in 1usize..30,
        ) {
            let mut list: Vec<u32> = relevant.iter().copied().collect();
            list.sort_unstable();
            list.extend(extra);
            for m in CAPPED {
                prop_assert!(close(m(&list, &relevant, k), 1.0));
            }
            // Plain recall reaches 1 once k covers every relevant item.
            prop_assert!(close(recall_at_k(&list, &relevant, relevant.len().max(k)), 1.0));
        }

        #[test]
        fn empty_list_scores_zero(
            relevant in proptest::collection::hash_set(0u32..100, 1..20),
            k in 0usize..30,
        ) {
            for m in ALL {
                prop_assert_eq!(m(&[], &relevant, k), Some(0.0));
            }
        }

        #[test]
        fn recall_is_monotone_in_k(
            relevant in proptest::collection::hash_set(0u32..30, 1..20),
            list in proptest::collection::vec(0u32..40, 0..50),
            k in 0usize..60,
        ) {
            for m in [recall_at_k, hit_rate_at_k] {
                let (a, b) = (m(&list, &relevant, k), m(&list, &relevant, k + 1));
                prop_assert!(a <= b, "{:?} > {:?}", a, b);
            }
        }

        #[test]
        fn coverage_in_unit_interval_and_monotone(
            lists in proptest::collection::vec(proptest::collection::vec(0u32..40, 0..20), 0..10),
            k in 0usize..25,
        ) {
            // The catalog: even items below 30.
            let in_catalog = |i: u32| i < 30 && i.is_multiple_of(2);
            let cov = |k| catalog_coverage(lists.iter().map(Vec::as_slice), k, 15, in_catalog);
            let (a, b) = (cov(k), cov(k + 1));
            prop_assert!((0.0..=1.0).contains(&a));
            prop_assert!(a <= b);
            if k == 0 {
                prop_assert_eq!(a, 0.0);
            }
        }

        #[test]
        fn values_in_unit_interval(
            relevant in proptest::collection::hash_set(0u32..30, 0..20),
            list in proptest::collection::vec(0u32..40, 0..50),
            k in 0usize..60,
        ) {
            for m in ALL {
                match m(&list, &relevant, k) {
                    None => prop_assert!(relevant.is_empty()),
                    Some(v) => prop_assert!((0.0..=1.0).contains(&v), "value {}", v),
                }
            }
        }
    }
}
