//! Co-purchase neighbours: "bought together" lists and item-kNN recommendations.
//!
//! Purchases become a binary *basis x item* matrix `B`: a row per order
//! ([`Basis::Orders`], "bought in the same order") or per customer
//! ([`Basis::Customers`], "bought by the same customer"), with `B[r, i] = 1`
//! when row `r` holds a positive-quantity line of item `i`. Returns and
//! cancellations (negative quantities) never create an entry. The
//! co-occurrence of two items is `C[i, j] = Σ_r B[r, i] B[r, j]`, the number of
//! rows holding both, and `n_i = C[i, i]` is the number of rows holding `i`.
//!
//! # Similarities
//! * [`Similarity::Cosine`]: `sim(i, j) = C[i, j] / sqrt(n_i n_j)`, in `(0, 1]`.
//! * [`Similarity::Bm25`]: items are BM25 "documents" and basis rows their
//!   "terms" (the orientation the `implicit` library uses for item-item BM25).
//!   With binary entries the BM25 weight of row `r` in item `i` is
//!
//!   ```text
//!   w[r, i] = idf_r · (k1 + 1) / (k1 · L_i + 1)
//!   idf_r   = ln(1 + (N - df_r + 0.5) / (df_r + 0.5))
//!   L_i     = (1 - b) + b · n_i / mean(n)
//!   ```
//!
//!   where `N` is the number of items with at least one row, `df_r` the number
//!   of distinct items in row `r` and `mean(n)` the mean of `n_i` over those
//!   items. The idf down-weights huge orders (a wholesale basket of 300 items
//!   says little about any two of them); `L_i` dampens very popular items.
//!   The similarity is the **dot product** `Σ_r w[r, i] w[r, j]`, not the
//!   cosine: with binary data `w[r, i]` factors into a row part and an item
//!   part, and a cosine would cancel the item part, reducing BM25 to an
//!   idf-weighted cosine. (The non-negative "BM25+" idf is used so that a row
//!   holding most items still adds a small positive amount.) BM25 scores are
//!   unbounded, but greater is still better.
//!
//! For each item only the `neighbours` most similar items with
//! `C[i, j] >= min_support` are kept (raw co-occurrence counts, whatever the
//! weighting), ties broken by the lower index.
//!
//! # Implementation notes
//! `C` is never materialised. Items are processed in parallel (rayon); for
//! item `i` a dense scratch buffer (one per rayon job, via `map_init`)
//! accumulates, over every row `r` of `i` and every item `j` of `r`, the count
//! `C[i, j]` and the row weight (`1` for cosine, `idf_r²` for BM25),
//! remembering which `j` it touched so that only those are read back and reset. The cost is `Σ_r |row r|²` plus `O(n_items)`
//! per rayon job for the scratch buffers (fit times: `docs/benchmarks.md`).

use crate::topk::{rank_order, top_k};
use encore_data::{Csr, Purchase, PurchaseLog};
use rayon::prelude::*;

/// What "together" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Basis {
    /// Bought in the same order.
    #[default]
    Orders,
    /// Bought by the same customer (at any time).
    Customers,
}

/// How co-occurrences become a similarity (see the module docs for formulas).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Similarity {
    /// `C[i, j] / sqrt(n_i n_j)`.
    #[default]
    Cosine,
    /// Dot product of BM25-weighted item columns. `k1 >= 0`, `0 <= b <= 1`;
    /// values outside those ranges (or not finite) are clamped into them.
    Bm25 { k1: f32, b: f32 },
}

/// Settings of [`CoPurchase`].
#[derive(Debug, Clone, PartialEq)]
pub struct CoPurchaseParams {
    pub basis: Basis,
    pub weighting: Similarity,
    /// Neighbours kept per item.
    pub neighbours: usize,
    /// Minimum co-occurrence count `C[i, j]` for `j` to be a neighbour of `i`.
    pub min_support: u32,
}

impl Default for CoPurchaseParams {
    fn default() -> Self {
        CoPurchaseParams {
            basis: Basis::Orders,
            weighting: Similarity::Cosine,
            neighbours: 100,
            min_support: 2,
        }
    }
}

/// Per-item-pair similarity once the co-occurrences are summed.
enum Scorer {
    /// `n_i` per item.
    Cosine { n: Vec<f64> },
    /// `(k1 + 1) / (k1 L_i + 1)` per item; row weights are `idf_r²`.
    Bm25 {
        item_factor: Vec<f64>,
        row_weight: Vec<f64>,
    },
}

impl Scorer {
    #[inline]
    fn row_weight(&self, r: usize) -> f64 {
        match self {
            Scorer::Cosine { .. } => 1.0,
            Scorer::Bm25 { row_weight, .. } => row_weight[r],
        }
    }

    /// The similarity of `i` and `j`, computed in `f64` from symmetric
    /// products so that `sim(i, j)` and `sim(j, i)` are the same `f32`.
    #[inline]
    fn finish(&self, i: usize, j: usize, count: u32, weighted: f64) -> f32 {
        let s = match self {
            Scorer::Cosine { n } => f64::from(count) / (n[i] * n[j]).sqrt(),
            Scorer::Bm25 { item_factor, .. } => weighted * (item_factor[i] * item_factor[j]),
        };
        s as f32
    }
}

/// Accumulation buffers of one rayon job, one slot per item.
struct Scratch {
    count: Vec<u32>,
    weighted: Vec<f64>,
    touched: Vec<u32>,
}

impl CoPurchaseParams {
    /// Builds the neighbour lists from the positive lines of `log`.
    pub fn fit(&self, log: &PurchaseLog) -> CoPurchase {
        self.fit_where(log, |_| true)
    }

    /// [`CoPurchaseParams::fit`] on the lines of `log` that `keep` accepts
    /// (without copying them into a log of their own).
    pub fn fit_where(&self, log: &PurchaseLog, keep: impl Fn(&Purchase) -> bool) -> CoPurchase {
        let n_items = log.items.len();
        let n_rows = match self.basis {
            Basis::Orders => log.orders.len(),
            Basis::Customers => log.customers.len(),
        };
        // Basis x item, binary (duplicates are summed by `from_triplets`; only
        // the pattern is used from here on).
        let rows = Csr::from_triplets_with(n_rows, n_items, || {
            log.purchases
                .iter()
                .filter(|p| p.quantity > 0.0 && keep(p))
                .map(|p| {
                    let r = match self.basis {
                        Basis::Orders => p.order.0,
                        Basis::Customers => p.customer.0,
                    };
                    (r, p.item.0, 1.0)
                })
        });
        let items = rows.transpose();
        let scorer = self.scorer(&rows, &items);
        let (keep, min_support) = (self.neighbours, self.min_support.max(1));

        let lists: Vec<Vec<(u32, f32)>> = (0..n_items)
            .into_par_iter()
            .map_init(
                || Scratch {
                    count: vec![0; n_items],
                    weighted: vec![0.0; n_items],
                    touched: Vec::new(),
                },
                |s, i| {
                    if keep == 0 {
                        return Vec::new();
                    }
                    let (my_rows, _) = items.row(i);
                    for &r in my_rows {
                        let w = scorer.row_weight(r as usize);
                        for &j in rows.row(r as usize).0 {
                            let slot = j as usize;
                            if s.count[slot] == 0 {
                                s.touched.push(j);
                            }
                            s.count[slot] += 1;
                            s.weighted[slot] += w;
                        }
                    }
                    let count = &s.count;
                    let weighted = &s.weighted;
                    let candidates = s
                        .touched
                        .iter()
                        .filter(|&&j| j as usize != i && count[j as usize] >= min_support)
                        .map(|&j| {
                            let j_ = j as usize;
                            (j, scorer.finish(i, j_, count[j_], weighted[j_]))
                        });
                    let mut best = top_k(candidates, keep);
                    for &j in &s.touched {
                        s.count[j as usize] = 0;
                        s.weighted[j as usize] = 0.0;
                    }
                    s.touched.clear();
                    best.retain(|&(_, v)| v > 0.0);
                    best.sort_unstable_by_key(|&(j, _)| j);
                    best
                },
            )
            .collect();

        let mut indptr = Vec::with_capacity(n_items + 1);
        let mut indices = Vec::new();
        let mut values = Vec::new();
        indptr.push(0);
        for list in lists {
            for (j, v) in list {
                indices.push(j);
                values.push(v);
            }
            indptr.push(indices.len());
        }
        let neighbours = Csr::from_parts(n_items, n_items, indptr, indices, values)
            .expect("neighbour rows are built sorted and in range");
        CoPurchase { neighbours }
    }

    fn scorer(&self, rows: &Csr, items: &Csr) -> Scorer {
        let n_of = |i: usize| items.row_nnz(i) as f64;
        match self.weighting {
            Similarity::Cosine => Scorer::Cosine {
                n: (0..items.n_rows()).map(n_of).collect(),
            },
            Similarity::Bm25 { k1, b } => {
                let k1 = if k1.is_finite() {
                    f64::from(k1.max(0.0))
                } else {
                    0.0
                };
                let b = if b.is_finite() {
                    f64::from(b.clamp(0.0, 1.0))
                } else {
                    0.0
                };
                let active = (0..items.n_rows())
                    .filter(|&i| items.row_nnz(i) > 0)
                    .count();
                let total: f64 = (0..items.n_rows()).map(n_of).sum();
                let mean_n = if active > 0 {
                    total / active as f64
                } else {
                    1.0
                };
                let n_docs = active as f64;
                let row_weight = (0..rows.n_rows())
                    .map(|r| {
                        let df = rows.row_nnz(r) as f64;
                        let idf = (1.0 + (n_docs - df + 0.5) / (df + 0.5)).ln();
                        idf * idf
                    })
                    .collect();
                let item_factor = (0..items.n_rows())
                    .map(|i| {
                        let len = (1.0 - b) + b * n_of(i) / mean_n;
                        (k1 + 1.0) / (k1 * len + 1.0)
                    })
                    .collect();
                Scorer::Bm25 {
                    item_factor,
                    row_weight,
                }
            }
        }
    }
}

/// Item x item neighbour lists: row `i` holds the kept neighbours of item `i`
/// (columns sorted by index, values = similarity).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CoPurchase {
    neighbours: Csr,
}

impl CoPurchase {
    /// Wraps a neighbour matrix loaded from an artifact.
    pub fn from_csr(neighbours: Csr) -> Self {
        CoPurchase { neighbours }
    }

    /// The neighbour matrix (item x item).
    pub fn as_csr(&self) -> &Csr {
        &self.neighbours
    }

    /// Number of items (rows).
    pub fn n_items(&self) -> usize {
        self.neighbours.n_rows()
    }

    /// The neighbours of `item`, most similar first (ties: lower index).
    /// Empty for an item out of range.
    pub fn neighbours(&self, item: u32) -> Vec<(u32, f32)> {
        if item as usize >= self.neighbours.n_rows() {
            return Vec::new();
        }
        let (cols, vals) = self.neighbours.row(item as usize);
        let mut list: Vec<(u32, f32)> = cols.iter().copied().zip(vals.iter().copied()).collect();
        list.sort_by(rank_order);
        list
    }

    /// Item-kNN scores for a weighted basket: **adds** `weight · sim(i, j)` to
    /// `out[j]` for every basket item `i` and every kept neighbour `j` of `i`.
    /// The caller zeroes `out` (of length [`Self::n_items`]) first and decides
    /// whether basket items themselves may be recommended. Basket items out of
    /// range are ignored.
    ///
    /// # Panics
    /// If `out` is shorter than the number of items.
    pub fn score_items(&self, basket: &[(u32, f32)], out: &mut [f32]) {
        assert!(
            out.len() >= self.neighbours.n_cols(),
            "score buffer of {} for {} items",
            out.len(),
            self.neighbours.n_cols()
        );
        for &(i, w) in basket {
            if i as usize >= self.neighbours.n_rows() {
                continue;
            }
            let (cols, vals) = self.neighbours.row(i as usize);
            for (&j, &s) in cols.iter().zip(vals) {
                out[j as usize] += w * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Orders: o1 {a, b, c}, o2 {a, b}, o3 {a, c}, o4 {b} by customer x, o5 {d}
    /// plus a return of d in o6 (ignored). Customer y placed o1..o3; x o4; z o5, o6.
    fn log() -> PurchaseLog {
        let mut log = PurchaseLog::default();
        for (o, c, i) in [
            ("o1", "y", "a"),
            ("o1", "y", "b"),
            ("o1", "y", "c"),
            ("o1", "y", "a"), // duplicate line: still one order
            ("o2", "y", "a"),
            ("o2", "y", "b"),
            ("o3", "y", "a"),
            ("o3", "y", "c"),
            ("o4", "x", "b"),
            ("o5", "z", "d"),
        ] {
            log.push(o, c, i, 0, 1.0, 1.0);
        }
        log.push("o6", "z", "a", 0, -3.0, 1.0);
        log
    }

    fn params(min_support: u32) -> CoPurchaseParams {
        CoPurchaseParams {
            min_support,
            ..CoPurchaseParams::default()
        }
    }

    const A: u32 = 0;
    const B: u32 = 1;
    const C: u32 = 2;
    const D: u32 = 3;

    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() < 1e-6
    }

    #[test]
    fn cosine_over_orders() {
        // n_a = 3, n_b = 3, n_c = 2; C[a,b] = 2, C[a,c] = 2, C[b,c] = 1.
        let cp = params(1).fit(&log());
        let a = cp.neighbours(A);
        assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), vec![C, B]);
        assert!(close(a[0].1, 2.0 / 6f64.sqrt()));
        assert!(close(a[1].1, 2.0 / 3.0));
        let c = cp.neighbours(C);
        assert_eq!(c[0].0, A);
        assert!(close(c[1].1, 1.0 / 6f64.sqrt()));
        assert!(cp.neighbours(D).is_empty());
        assert!(cp.neighbours(99).is_empty());
        // Symmetric.
        for i in 0..4 {
            for (j, s) in cp.neighbours(i) {
                assert_eq!(cp.as_csr().get(j as usize, i), s);
            }
        }
    }

    #[test]
    fn min_support_and_neighbour_cap() {
        let cp = params(2).fit(&log());
        assert_eq!(
            cp.neighbours(B).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![A]
        );
        assert_eq!(
            cp.neighbours(C).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![A]
        );
        let one = CoPurchaseParams {
            neighbours: 1,
            min_support: 1,
            ..CoPurchaseParams::default()
        }
        .fit(&log());
        assert_eq!(one.neighbours(A).len(), 1);
        assert_eq!(one.neighbours(A)[0].0, C);
        let none = CoPurchaseParams {
            neighbours: 0,
            ..CoPurchaseParams::default()
        }
        .fit(&log());
        assert_eq!(none.as_csr().nnz(), 0);
        assert_eq!(none.n_items(), 4);
    }

    #[test]
    fn customers_basis() {
        // y bought a, b, c; x bought b; z bought d (the return of a is ignored).
        // n_a = 1, n_b = 2, n_c = 1; C[a,b] = C[a,c] = C[b,c] = 1.
        let cp = CoPurchaseParams {
            basis: Basis::Customers,
            min_support: 1,
            ..CoPurchaseParams::default()
        }
        .fit(&log());
        let a = cp.neighbours(A);
        assert_eq!(a[0].0, C);
        assert!(close(a[0].1, 1.0));
        assert!(close(a[1].1, 1.0 / 2f64.sqrt()));
    }

    #[test]
    fn bm25_matches_formula() {
        let (k1, b) = (1.2f64, 0.75f64);
        let cp = CoPurchaseParams {
            weighting: Similarity::Bm25 {
                k1: k1 as f32,
                b: b as f32,
            },
            min_support: 1,
            ..CoPurchaseParams::default()
        }
        .fit(&log());
        // N = 4 items; n = [3, 3, 2, 1], mean 2.25; row sizes o1=3, o2=2, o3=2.
        let idf = |df: f64| (1.0 + (4.0 - df + 0.5) / (df + 0.5)).ln();
        let factor = |n: f64| (k1 + 1.0) / (k1 * ((1.0 - b) + b * n / 2.25) + 1.0);
        // a and b share o1 (df 3) and o2 (df 2).
        let ab = (idf(3.0).powi(2) + idf(2.0).powi(2)) * factor(3.0) * factor(3.0);
        // a and c share o1 and o3 (df 2).
        let ac = (idf(3.0).powi(2) + idf(2.0).powi(2)) * factor(3.0) * factor(2.0);
        let a = cp.neighbours(A);
        assert_eq!(a[0].0, C);
        assert!(close(a[0].1, ac), "{} vs {ac}", a[0].1);
        assert!(close(a[1].1, ab), "{} vs {ab}", a[1].1);
        // b = 0 turns the length normalisation off: factors are all 1.
        let flat = CoPurchaseParams {
            weighting: Similarity::Bm25 { k1: 1.2, b: 0.0 },
            min_support: 1,
            ..CoPurchaseParams::default()
        }
        .fit(&log());
        let bc = flat.neighbours(B).into_iter().find(|x| x.0 == C).unwrap();
        assert!(close(bc.1, idf(3.0).powi(2)));
    }

    #[test]
    fn score_items_adds_weighted_similarities() {
        let cp = params(1).fit(&log());
        let mut out = vec![0.0f32; 4];
        cp.score_items(&[(B, 2.0), (C, 1.0), (77, 5.0)], &mut out);
        let sim = |i, j| cp.as_csr().get(i as usize, j);
        assert!(close(out[A as usize], (2.0 * sim(B, A) + sim(C, A)) as f64));
        assert!(close(out[B as usize], sim(C, B) as f64));
        assert!(close(out[C as usize], (2.0 * sim(B, C)) as f64));
        assert_eq!(out[D as usize], 0.0);
    }

    #[test]
    fn roundtrip_through_csr() {
        let cp = params(1).fit(&log());
        assert_eq!(CoPurchase::from_csr(cp.as_csr().clone()), cp);
        assert_eq!(CoPurchase::default().n_items(), 0);
    }

    /// Reference: every pair by brute force over the order sets.
    fn brute_cosine(log: &PurchaseLog, min_support: u32) -> Vec<Vec<(u32, f32)>> {
        let n = log.items.len();
        let mut sets = vec![std::collections::BTreeSet::new(); n];
        for p in log.purchases.iter().filter(|p| p.quantity > 0.0) {
            sets[p.item.idx()].insert(p.order.0);
        }
        (0..n)
            .map(|i| {
                let mut v: Vec<(u32, f32)> = (0..n)
                    .filter(|&j| j != i)
                    .filter_map(|j| {
                        let c = sets[i].intersection(&sets[j]).count();
                        (c > 0 && c as u32 >= min_support).then(|| {
                            let s = c as f64 / ((sets[i].len() * sets[j].len()) as f64).sqrt();
                            (j as u32, s as f32)
                        })
                    })
                    .collect();
                v.sort_by(rank_order);
                v
            })
            .collect()
    }

    proptest! {
        #[test]
        fn cosine_matches_brute_force(
            lines in proptest::collection::vec((0u8..12, 0u8..9, -1i8..3), 1..80),
            min_support in 1u32..3,
        ) {
            let mut log = PurchaseLog::default();
            for (o, i, q) in &lines {
                log.push(&format!("o{o}"), "c", &format!("i{i}"), 0, f32::from(*q), 1.0);
            }
            let cp = CoPurchaseParams { neighbours: 100, min_support, ..Default::default() }.fit(&log);
            let want = brute_cosine(&log, min_support);
            for (i, w) in want.iter().enumerate() {
                // Compare by index: mathematically equal similarities may
                // differ in the last bit and so tie-break differently.
                let mut got = cp.neighbours(i as u32);
                got.sort_by_key(|x| x.0);
                let mut w = w.clone();
                w.sort_by_key(|x| x.0);
                prop_assert_eq!(got.len(), w.len());
                for (g, w) in got.iter().zip(&w) {
                    prop_assert_eq!(g.0, w.0);
                    prop_assert!((g.1 - w.1).abs() < 1e-5);
                }
            }
        }
    }
}
