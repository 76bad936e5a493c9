//! Gradient-boosted regression trees for binary labels (logistic loss): the
//! non-linear learner of the "for you" re-ranker (`cf::ranker`).
//!
//! Why: the re-ranker's features interact (how long ago an item was bought
//! matters only against how often it comes back; a popular item matters only
//! for a customer who buys new things), which a logistic regression cannot
//! express without hand-made crosses. Small boosted trees learn them.
//!
//! # Algorithm
//! Second-order boosting as in XGBoost (Chen & Guestrin, KDD 2016), kept
//! small: features are cut into at most `bins` quantile bins once; every
//! round fits one tree of depth at most `depth` to the gradients `g = p − y`
//! and hessians `h = p (1 − p)` of the current predictions, choosing at each
//! node the split with the largest gain
//!
//! ```text
//! gain = G_L² / (H_L + λ) + G_R² / (H_R + λ) − G² / (H + λ)
//! ```
//!
//! among splits leaving at least `min_leaf_hessian` on each side; a leaf's
//! value is `−η G / (H + λ)` (`η = learning_rate`). The start is the log-odds
//! of the base rate.
//!
//! Deterministic: ties between splits go to the lower feature, then the lower
//! bin; the histograms of blocks of eight features are built in parallel,
//! each block by one thread in one pass over the node's rows, so every bin
//! adds its rows in row order. Below the root only the smaller child's
//! histograms are summed; the larger child's are its parent's minus the
//! smaller's (as in LightGBM), which rounds differently, so a split could
//! differ from summing every child only where two gains tie to within
//! rounding.

use crate::setting::{InvalidSetting, at_least_one};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Settings of the boosted trees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoostingParams {
    /// Boosting rounds (trees).
    pub trees: usize,
    /// Maximum depth of a tree (1 = stumps).
    pub depth: usize,
    /// Shrinkage `η` in `(0, 1]`.
    pub learning_rate: f64,
    /// Quantile bins per feature, 2 to 256.
    pub bins: usize,
    /// Smallest sum of hessians on each side of a split.
    pub min_leaf_hessian: f64,
    /// `λ >= 0`: L2 penalty on leaf values.
    pub l2: f64,
}

impl Default for BoostingParams {
    fn default() -> Self {
        BoostingParams {
            trees: 100,
            depth: 3,
            learning_rate: 0.1,
            bins: 32,
            min_leaf_hessian: 1.0,
            l2: 1.0,
        }
    }
}

impl BoostingParams {
    /// Checks every setting; the names carry the `boosting.` prefix of the
    /// configuration table.
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        let bad = |name, value: String, reason| Err(InvalidSetting::new(name, value, reason));
        at_least_one(&[("boosting.trees", self.trees)])?;
        if self.depth == 0 || self.depth > 12 {
            return bad("boosting.depth", self.depth.to_string(), "must be 1 to 12");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad(
                "boosting.learning_rate",
                self.learning_rate.to_string(),
                "must be in (0, 1]",
            );
        }
        if !(2..=256).contains(&self.bins) {
            return bad("boosting.bins", self.bins.to_string(), "must be 2 to 256");
        }
        if !(self.min_leaf_hessian >= 0.0 && self.min_leaf_hessian.is_finite()) {
            return bad(
                "boosting.min_leaf_hessian",
                self.min_leaf_hessian.to_string(),
                "must be finite and >= 0",
            );
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return bad(
                "boosting.l2",
                self.l2.to_string(),
                "must be finite and >= 0",
            );
        }
        if self.l2 == 0.0 && self.min_leaf_hessian == 0.0 {
            // A leaf of a few saturated rows would get an unbounded value.
            return bad(
                "boosting.l2",
                "0".into(),
                "must be > 0 when min_leaf_hessian is 0",
            );
        }
        Ok(())
    }

    /// Fits on `rows` (each of the same length; non-finite values count as
    /// the smallest) with `labels`. Both classes must be present.
    pub fn fit<R: AsRef<[f64]> + Sync>(
        &self,
        rows: &[R],
        labels: &[bool],
    ) -> Result<Boosted, String> {
        if let Err(e) = self.check() {
            return Err(format!("{} = {}: {}", e.name, e.value, e.reason));
        }
        assert_eq!(rows.len(), labels.len(), "one label per row");
        let n = rows.len();
        let positives = labels.iter().filter(|&&y| y).count();
        if positives == 0 || positives == n {
            return Err("the labels hold one class only".into());
        }
        let n_features = rows[0].as_ref().len();
        let value = |r: usize, f: usize| {
            let v = rows[r].as_ref()[f];
            if v.is_finite() { v } else { f64::MIN }
        };
        // Cut points per feature: values at the bin quantiles, deduplicated;
        // bin b holds values <= cuts[b] (the last bin the rest).
        let cuts: Vec<Vec<f64>> = (0..n_features)
            .into_par_iter()
            .map(|f| {
                let mut v: Vec<f64> = (0..n).map(|r| value(r, f)).collect();
                v.sort_by(f64::total_cmp);
                let mut c: Vec<f64> = (1..self.bins)
                    .map(|b| v[(b * n / self.bins).min(n - 1)])
                    .collect();
                c.dedup();
                if c.last() == v.last() {
                    c.pop();
                }
                c
            })
            .collect();
        // Bin of every (feature, row), feature-major.
        let binned: Vec<Vec<u8>> = (0..n_features)
            .into_par_iter()
            .map(|f| {
                (0..n)
                    .map(|r| cuts[f].partition_point(|&c| c < value(r, f)) as u8)
                    .collect()
            })
            .collect();

        let rate = positives as f64 / n as f64;
        let base = (rate / (1.0 - rate)).ln();
        let mut margin = vec![base; n];
        let mut trees = Vec::with_capacity(self.trees);
        let lambda = self.l2;
        for _ in 0..self.trees {
            let (g, h): (Vec<f64>, Vec<f64>) = margin
                .iter()
                .zip(labels)
                .map(|(&m, &y)| {
                    let p = 1.0 / (1.0 + (-m).exp());
                    (p - f64::from(u8::from(y)), (p * (1.0 - p)).max(1e-12))
                })
                .unzip();
            let mut nodes: Vec<Node> = Vec::new();
            // (node index, rows, depth, histograms if already known) still to grow.
            let mut open: Vec<(usize, Vec<u32>, usize, Option<Histograms>)> =
                vec![(0, (0..n as u32).collect(), 0, None)];
            nodes.push(Node::Leaf(0.0));
            while let Some((id, members, depth, hists)) = open.pop() {
                let (gs, hs) = members.iter().fold((0.0, 0.0), |(a, b), &r| {
                    (a + g[r as usize], b + h[r as usize])
                });
                let leaf = -self.learning_rate * gs / (hs + lambda);
                let searched = depth < self.depth && members.len() >= 2;
                let hists = if searched {
                    Some(hists.unwrap_or_else(|| all_histograms(&binned, &cuts, &members, &g, &h)))
                } else {
                    None
                };
                let split = hists
                    .as_ref()
                    .and_then(|node| best_split(node, gs, hs, self));
                let Some((feature, bin)) = split else {
                    nodes[id] = Node::Leaf(leaf);
                    for &r in &members {
                        margin[r as usize] += leaf;
                    }
                    continue;
                };
                let (left, right): (Vec<u32>, Vec<u32>) = members
                    .into_iter()
                    .partition(|&r| usize::from(binned[feature][r as usize]) <= bin);
                let (l, r) = (nodes.len(), nodes.len() + 1);
                nodes.push(Node::Leaf(0.0));
                nodes.push(Node::Leaf(0.0));
                nodes[id] = Node::Split {
                    feature: feature as u32,
                    threshold: cuts[feature][bin],
                    left: l as u32,
                    right: r as u32,
                };
                // The children's histograms, if they will search splits: the
                // smaller child's summed from its rows, the larger one's as
                // the parent's minus the smaller one's (half the passes or
                // fewer). The subtraction rounds differently from summing,
                // so a split could change only where two gains tie to within
                // rounding; leaf values are summed from the rows themselves.
                let parent = hists.expect("a split node has histograms");
                let (lh, rh) = if depth + 1 < self.depth {
                    let (small, small_is_left) = if left.len() <= right.len() {
                        (&left, true)
                    } else {
                        (&right, false)
                    };
                    let sh = all_histograms(&binned, &cuts, small, &g, &h);
                    let big = subtract(&parent, &sh);
                    if small_is_left {
                        (Some(sh), Some(big))
                    } else {
                        (Some(big), Some(sh))
                    }
                } else {
                    (None, None)
                };
                open.push((r, right, depth + 1, rh));
                open.push((l, left, depth + 1, lh));
            }
            trees.push(nodes);
        }
        Ok(Boosted {
            base,
            n_features,
            trees,
        })
    }
}

/// Features whose histograms one pass over a node's rows builds together.
const FEATURE_BLOCK: usize = 8;

/// Per feature, a node's `(Σ g, Σ h)` per bin.
type Histograms = Vec<Vec<(f64, f64)>>;

/// Per feature, the sums of the gradients and hessians of `members` per bin
/// (an empty histogram for a feature with a single bin). Blocks of features
/// are built in parallel, each block in one pass over the rows, so the
/// additions of different features overlap in the processor instead of each
/// feature's chain of dependent adds running alone; every bin adds its rows
/// in member order whatever the block size.
fn all_histograms(
    binned: &[Vec<u8>],
    cuts: &[Vec<f64>],
    members: &[u32],
    g: &[f64],
    h: &[f64],
) -> Histograms {
    let gh: Vec<(f64, f64)> = members
        .iter()
        .map(|&r| (g[r as usize], h[r as usize]))
        .collect();
    let features: Vec<usize> = (0..binned.len()).collect();
    features
        .par_chunks(FEATURE_BLOCK)
        .flat_map_iter(|block| block_histograms(binned, cuts, members, &gh, block))
        .map(|histogram| {
            if histogram.len() < 2 {
                Vec::new()
            } else {
                histogram
            }
        })
        .collect()
}

/// The best `(feature, bin)` split of a node with histograms `hists` and
/// totals `gs`, `hs`, if any has a positive gain; ties go to the lower
/// feature, then the lower bin.
fn best_split(
    hists: &[Vec<(f64, f64)>],
    gs: f64,
    hs: f64,
    p: &BoostingParams,
) -> Option<(usize, usize)> {
    let lambda = p.l2;
    let parent = gs * gs / (hs + lambda);
    let mut best: Option<(f64, usize, usize)> = None;
    for (f, histogram) in hists.iter().enumerate().filter(|(_, h)| !h.is_empty()) {
        let (mut gl, mut hl) = (0.0, 0.0);
        for (b, &(bg, bh)) in histogram[..histogram.len() - 1].iter().enumerate() {
            gl += bg;
            hl += bh;
            let (gr, hr) = (gs - gl, hs - hl);
            if hl < p.min_leaf_hessian || hr < p.min_leaf_hessian {
                continue;
            }
            let gain = gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent;
            if gain > 1e-12 && best.is_none_or(|(bg, _, _)| gain > bg) {
                best = Some((gain, f, b));
            }
        }
    }
    best.map(|(_, f, b)| (f, b))
}

/// `parent − child`, bin by bin: the sibling's histograms.
fn subtract(parent: &[Vec<(f64, f64)>], child: &[Vec<(f64, f64)>]) -> Histograms {
    parent
        .iter()
        .zip(child)
        .map(|(p, c)| {
            p.iter()
                .zip(c)
                .map(|(a, b)| (a.0 - b.0, a.1 - b.1))
                .collect()
        })
        .collect()
}

/// Per feature of `block`: the sums of `gh` (the members' gradients and
/// hessians, in member order) per bin, built in one pass over the members.
fn block_histograms(
    binned: &[Vec<u8>],
    cuts: &[Vec<f64>],
    members: &[u32],
    gh: &[(f64, f64)],
    block: &[usize],
) -> Histograms {
    let columns: Vec<&[u8]> = block.iter().map(|&f| binned[f].as_slice()).collect();
    let mut histograms: Vec<Vec<(f64, f64)>> = block
        .iter()
        .map(|&f| vec![(0.0, 0.0); cuts[f].len() + 1])
        .collect();
    for (&r, &(gr, hr)) in members.iter().zip(gh) {
        for (column, histogram) in columns.iter().zip(histograms.iter_mut()) {
            let bin = &mut histogram[usize::from(column[r as usize])];
            bin.0 += gr;
            bin.1 += hr;
        }
    }
    histograms
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Node {
    Leaf(f64),
    /// Rows with `x[feature] <= threshold` go left.
    Split {
        feature: u32,
        threshold: f64,
        left: u32,
        right: u32,
    },
}

/// A fitted ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boosted {
    base: f64,
    n_features: usize,
    trees: Vec<Vec<Node>>,
}

impl Boosted {
    /// Log-odds of the positive class for one row.
    pub fn margin(&self, row: &[f64]) -> f64 {
        assert_eq!(row.len(), self.n_features, "feature count");
        let mut m = self.base;
        for tree in &self.trees {
            let mut id = 0usize;
            loop {
                match tree[id] {
                    Node::Leaf(v) => {
                        m += v;
                        break;
                    }
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    } => {
                        let v = row[feature as usize];
                        let v = if v.is_finite() { v } else { f64::MIN };
                        id = if v <= threshold { left } else { right } as usize;
                    }
                }
            }
        }
        m
    }

    /// Probability of the positive class for one row.
    pub fn probability(&self, row: &[f64]) -> f64 {
        1.0 / (1.0 + (-self.margin(row)).exp())
    }

    /// How often each feature splits a node, over all trees.
    pub fn split_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_features];
        for node in self.trees.iter().flatten() {
            if let Node::Split { feature, .. } = node {
                counts[*feature as usize] += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sibling's histograms as the parent's minus the other child's equal
    /// its own sums up to rounding, so splits are chosen on the same gains.
    #[test]
    fn subtracted_histograms_match_summed_ones() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let (n, n_features) = (4_000, 6);
        let cuts: Vec<Vec<f64>> = (0..n_features).map(|f| vec![0.0; f * 7]).collect();
        let binned: Vec<Vec<u8>> = cuts
            .iter()
            .map(|c| (0..n).map(|_| rng.gen_range(0..=c.len()) as u8).collect())
            .collect();
        let g: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let h: Vec<f64> = (0..n).map(|_| rng.gen_range(0.0..0.25)).collect();
        let all: Vec<u32> = (0..n as u32).collect();
        let (left, right): (Vec<u32>, Vec<u32>) =
            all.iter().partition(|&&r| binned[3][r as usize] <= 9);
        let parent = all_histograms(&binned, &cuts, &all, &g, &h);
        let derived = subtract(&parent, &all_histograms(&binned, &cuts, &left, &g, &h));
        let summed = all_histograms(&binned, &cuts, &right, &g, &h);
        // Feature 0 has one bin: no histogram to split on.
        assert!(parent[0].is_empty() && derived[0].is_empty());
        assert_eq!(derived.len(), summed.len());
        for (d, s) in derived.iter().zip(&summed) {
            assert_eq!(d.len(), s.len());
            for (a, b) in d.iter().zip(s) {
                assert!(
                    (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9,
                    "{a:?} vs {b:?}"
                );
            }
        }
        // Both children of a split on feature 3 at bin 9: every row of the
        // right child lies above that bin.
        assert!(summed[3][..=9].iter().all(|&(g, h)| g == 0.0 && h == 0.0));
    }

    /// A block's one-pass histograms equal one feature at a time, bin by
    /// bin and to the last bit (each bin adds its rows in member order), for
    /// blocks of every size and members in any subset.
    #[test]
    fn block_histograms_equal_one_feature_at_a_time() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let (n, n_features) = (5_000, 11);
        let cuts: Vec<Vec<f64>> = (0..n_features)
            .map(|f| vec![0.0; [1, 2, 5, 63][f % 4]])
            .collect();
        let binned: Vec<Vec<u8>> = cuts
            .iter()
            .map(|c| (0..n).map(|_| rng.gen_range(0..=c.len()) as u8).collect())
            .collect();
        // Values of very different sizes, so that another order of the
        // additions would change the sums.
        let g: Vec<f64> = (0..n)
            .map(|_| rng.gen_range(-1.0..1.0) * 10f64.powi(rng.gen_range(-8..8)))
            .collect();
        let h: Vec<f64> = (0..n).map(|_| rng.gen_range(0.0..0.25)).collect();
        let members: Vec<u32> = (0..n as u32).filter(|_| rng.gen_bool(0.6)).collect();
        let gh: Vec<(f64, f64)> = members
            .iter()
            .map(|&r| (g[r as usize], h[r as usize]))
            .collect();
        let one = |f: usize| {
            let mut hist = vec![(0.0, 0.0); cuts[f].len() + 1];
            for &r in &members {
                let b = usize::from(binned[f][r as usize]);
                hist[b].0 += g[r as usize];
                hist[b].1 += h[r as usize];
            }
            hist
        };
        let features: Vec<usize> = (0..n_features).collect();
        for size in [1, 3, 8, n_features] {
            for block in features.chunks(size) {
                let got = block_histograms(&binned, &cuts, &members, &gh, block);
                for (&f, hist) in block.iter().zip(&got) {
                    let want = one(f);
                    assert_eq!(hist.len(), want.len());
                    for ((a, b), (c, d)) in hist.iter().zip(&want) {
                        assert_eq!((a.to_bits(), b.to_bits()), (c.to_bits(), d.to_bits()));
                    }
                }
            }
        }
    }

    /// XOR of two features: no linear model separates it; depth-2 trees do.
    #[test]
    fn learns_an_interaction_a_linear_model_cannot() {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..400 {
            let a = f64::from(i % 2);
            let b = f64::from((i / 2) % 2);
            let noise = f64::from(i % 7) / 100.0;
            rows.push(vec![a + noise, b - noise, noise]);
            labels.push((a > 0.5) != (b > 0.5));
        }
        let model = BoostingParams {
            depth: 2,
            trees: 50,
            learning_rate: 0.3,
            ..BoostingParams::default()
        }
        .fit(&rows, &labels)
        .unwrap();
        for (row, &y) in rows.iter().zip(&labels) {
            let p = model.probability(row);
            assert_eq!(p > 0.5, y, "row {row:?} p {p}");
        }
        let counts = model.split_counts();
        assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
        assert!(counts[2] < counts[0], "{counts:?}");
    }

    #[test]
    fn is_deterministic_and_refuses_one_class() {
        let rows: Vec<Vec<f64>> = (0..100).map(|i| vec![f64::from(i), f64::NAN]).collect();
        let labels: Vec<bool> = (0..100).map(|i| i % 3 == 0 || i > 70).collect();
        let p = BoostingParams::default();
        assert_eq!(
            p.fit(&rows, &labels).unwrap(),
            p.fit(&rows, &labels).unwrap()
        );
        assert!(
            p.fit(&rows, &[true; 100])
                .unwrap_err()
                .contains("one class")
        );
        let bad = BoostingParams {
            learning_rate: 0.0,
            ..p
        };
        assert!(
            bad.fit(&rows, &labels)
                .unwrap_err()
                .contains("learning_rate")
        );
    }

    /// A base-rate-only problem gives the base rate.
    #[test]
    fn without_signal_predicts_the_base_rate() {
        let rows: Vec<Vec<f64>> = (0..200).map(|_| vec![1.0]).collect();
        let labels: Vec<bool> = (0..200).map(|i| i % 4 == 0).collect();
        let model = BoostingParams::default().fit(&rows, &labels).unwrap();
        assert!((model.probability(&[1.0]) - 0.25).abs() < 1e-9);
    }
}
