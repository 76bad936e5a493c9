//! Behavioural segments: k-means clusters of customers on standardised
//! recency, frequency, monetary value and tenure.
//!
//! [`super::rfm`] cuts every measure into fixed quintiles and names cells
//! from a hand-written map; here the groups are found in the data instead,
//! so their number and their boundaries follow how this customer base
//! actually behaves. Each cluster gets a readable label from its centroid
//! ("frequent high spenders, recent, long-standing").
//!
//! # Features (from [`CustomerSummary`] at a reference time)
//! | name | definition |
//! |---|---|
//! | `log_days_since_last` | `ln(1 + days from the last purchase to the reference)` |
//! | `log_orders` | `ln(orders)` |
//! | `log_net_spend` | `ln(1 + max(net spend, 0))` |
//! | `tenure_days` | days from the first purchase to the reference |
//!
//! Each is standardised with the training mean and standard deviation
//! (stored in the model), then k-means (linfa-clustering, k-means++
//! initialisation, several runs, the lowest inertia wins) runs with an RNG
//! seeded from [`SegmentParams::seed`]: the same seed and data give the same
//! clusters.
//!
//! # Labels
//! With `z` the centroid in standardised units: frequency is "one-off" when
//! the centroid is below 1.5 orders, else "frequent" (`z > 0.5`),
//! "occasional" (`z < −0.5`) or "regular"; spend is "high" / "low" / "mid"
//! spenders on the same thresholds; recency is "recent" (`z < −0.5`),
//! "lapsed" (`z > 0.5`) or "cooling"; tenure adds "long-standing" or "new"
//! beyond ±0.5. Repeated labels get a `#2`, `#3`, … suffix.
//!
//! # Implementation notes
//! * Clusters are renumbered by decreasing value, `z_orders + z_spend −
//!   z_recency`, so cluster 0 holds the best customers whatever order the
//!   algorithm found them in.
//! * The k-means|| initialisation of linfa draws from per-thread RNGs and is
//!   not reproducible, so k-means++ is set explicitly.
//! * Centroids "in original units" undo the log transforms, so they are
//!   geometric-mean-like typical values, not arithmetic means.

use super::summary::{CustomerSummary, DAY_SECS};
use crate::setting::{at_least_one, positive};
use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::{Array2, ArrayView1};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Names of the clustering features, in order.
pub const FEATURE_NAMES: [&str; 4] = [
    "log_days_since_last",
    "log_orders",
    "log_net_spend",
    "tenure_days",
];

/// Settings of the segmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegmentParams {
    /// Number of clusters (default 5).
    pub k: usize,
    /// Seed of the k-means initialisation (default 42).
    pub seed: u64,
    /// Iterations per run (default 300).
    pub max_iterations: u64,
    /// Runs from different initialisations; the lowest inertia wins (default 10).
    pub runs: usize,
    /// A run stops when the centroids move less than this (default 1e-6).
    pub tolerance: f64,
}

impl Default for SegmentParams {
    fn default() -> Self {
        SegmentParams {
            k: 5,
            seed: 42,
            max_iterations: 300,
            runs: 10,
            tolerance: 1e-6,
        }
    }
}

/// Why the segments could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
    /// A setting is out of range.
    #[error("invalid segment parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// Fewer customers than clusters.
    #[error("{customers} customers cannot make {k} segments")]
    TooFewCustomers { customers: usize, k: usize },
    /// linfa-clustering failed.
    #[error("k-means: {0}")]
    KMeans(String),
}

crate::setting::invalid_setting_from!(SegmentError);

impl SegmentParams {
    /// Checks every setting.
    pub fn check(&self) -> Result<(), SegmentError> {
        at_least_one(&[("k", self.k)])?;
        at_least_one(&[("max_iterations", self.max_iterations)])?;
        at_least_one(&[("runs", self.runs)])?;
        positive(&[("tolerance", self.tolerance)])?;
        Ok(())
    }

    /// Clusters the customers of `summaries` (computed at `reference`).
    pub fn fit(
        &self,
        summaries: &[CustomerSummary],
        reference: i64,
    ) -> Result<SegmentModel, SegmentError> {
        self.check()?;
        if summaries.len() < self.k {
            return Err(SegmentError::TooFewCustomers {
                customers: summaries.len(),
                k: self.k,
            });
        }
        let x = features(summaries, reference);
        let (means, stds) = column_stats(&x);
        let z = standardise(&x, &means, &stds);
        let rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let fitted = KMeans::params_with_rng(self.k, rng)
            .init_method(KMeansInit::KMeansPlusPlus)
            .n_runs(self.runs)
            .max_n_iterations(self.max_iterations)
            .tolerance(self.tolerance)
            .fit(&DatasetBase::from(z.clone()))
            .map_err(|e| SegmentError::KMeans(e.to_string()))?;
        let mut centroids: Vec<Vec<f64>> = fitted
            .centroids()
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect();
        if centroids.iter().flatten().any(|v| !v.is_finite()) {
            return Err(SegmentError::KMeans("non-finite centroid".into()));
        }
        // Renumber by decreasing value (module docs).
        let value = |c: &[f64]| c[1] + c[2] - c[0];
        centroids.sort_by(|a, b| value(b).total_cmp(&value(a)));

        let mut model = SegmentModel {
            feature_names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
            means,
            stds,
            centroids,
            centroids_original: Vec::new(),
            labels: Vec::new(),
            sizes: vec![0; self.k],
            inertia: 0.0,
            seed: self.seed,
        };
        model.centroids_original = model
            .centroids
            .iter()
            .map(|c| model.to_original(c))
            .collect();
        model.labels = unique(
            model
                .centroids
                .iter()
                .zip(&model.centroids_original)
                .map(|(z, orig)| label(z, orig))
                .collect(),
        );
        let mut sse = 0.0;
        for row in z.rows() {
            let (c, d2) = model.nearest(row);
            model.sizes[c] += 1;
            sse += d2;
        }
        model.inertia = sse / z.nrows() as f64;
        Ok(model)
    }
}

/// Fitted segments (plain data, serialisable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentModel {
    /// Feature names, [`FEATURE_NAMES`] at fitting time.
    pub feature_names: Vec<String>,
    /// Training mean of each feature.
    pub means: Vec<f64>,
    /// Training standard deviation of each feature (1 for a constant feature).
    pub stds: Vec<f64>,
    /// Centroids in standardised units, cluster 0 the most valuable.
    pub centroids: Vec<Vec<f64>>,
    /// Centroids in original units: days since last purchase, orders, net
    /// spend, tenure in days (module docs).
    pub centroids_original: Vec<Vec<f64>>,
    /// A readable label per cluster.
    pub labels: Vec<String>,
    /// Training customers per cluster.
    pub sizes: Vec<usize>,
    /// Mean squared distance of a training customer to its centroid, in
    /// standardised units.
    pub inertia: f64,
    /// The seed the model was fitted with.
    pub seed: u64,
}

impl SegmentModel {
    /// Number of clusters.
    pub fn k(&self) -> usize {
        self.centroids.len()
    }

    /// The cluster of each summary (same order), computed at `reference`:
    /// the nearest centroid in standardised units.
    pub fn assign(&self, summaries: &[CustomerSummary], reference: i64) -> Vec<usize> {
        let z = standardise(&features(summaries, reference), &self.means, &self.stds);
        z.rows().into_iter().map(|r| self.nearest(r).0).collect()
    }

    /// A plain-text table of the clusters: size, label and centroid in
    /// original units.
    pub fn describe(&self) -> String {
        let mut out = String::from(
            "cluster  customers  days_since_last  orders  net_spend  tenure_days  label\n",
        );
        for (i, ((size, orig), label)) in self
            .sizes
            .iter()
            .zip(&self.centroids_original)
            .zip(&self.labels)
            .enumerate()
        {
            let _ = writeln!(
                out,
                "{i:>7}  {size:>9}  {:>15.1}  {:>6.1}  {:>9.0}  {:>11.0}  {label}",
                orig[0], orig[1], orig[2], orig[3]
            );
        }
        out
    }

    /// Nearest centroid and its squared distance.
    fn nearest(&self, row: ArrayView1<'_, f64>) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        for (i, c) in self.centroids.iter().enumerate() {
            let d2: f64 = row.iter().zip(c).map(|(a, b)| (a - b).powi(2)).sum();
            if d2 < best.1 {
                best = (i, d2);
            }
        }
        best
    }

    /// A standardised point back in original units.
    fn to_original(&self, z: &[f64]) -> Vec<f64> {
        let v: Vec<f64> = z
            .iter()
            .zip(self.means.iter().zip(&self.stds))
            .map(|(z, (m, s))| z * s + m)
            .collect();
        vec![v[0].exp_m1(), v[1].exp(), v[2].exp_m1(), v[3]]
    }
}

/// The raw clustering features (module docs), one row per summary.
pub fn features(summaries: &[CustomerSummary], reference: i64) -> Array2<f64> {
    let mut x = Array2::zeros((summaries.len(), FEATURE_NAMES.len()));
    for (mut row, s) in x.rows_mut().into_iter().zip(summaries) {
        let tenure = (reference - s.first_purchase).max(0) as f64 / DAY_SECS as f64;
        row[0] = s.days_since_last(reference).ln_1p();
        row[1] = f64::from(s.orders.max(1)).ln();
        row[2] = s.total_spend.max(0.0).ln_1p();
        row[3] = tenure;
    }
    x
}

fn column_stats(x: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
    x.columns()
        .into_iter()
        .map(|col| {
            let n = col.len().max(1) as f64;
            let mean = col.sum() / n;
            let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            (mean, if std > 1e-12 { std } else { 1.0 })
        })
        .unzip()
}

fn standardise(x: &Array2<f64>, means: &[f64], stds: &[f64]) -> Array2<f64> {
    let mut z = x.clone();
    for mut row in z.rows_mut() {
        for ((v, m), s) in row.iter_mut().zip(means).zip(stds) {
            *v = (*v - m) / s;
        }
    }
    z
}

/// The label of a centroid (module docs).
fn label(z: &[f64], original: &[f64]) -> String {
    let level = |v: f64, high: &'static str, mid: &'static str, low: &'static str| {
        if v > 0.5 {
            high
        } else if v < -0.5 {
            low
        } else {
            mid
        }
    };
    let frequency = if original[1] < 1.5 {
        "one-off"
    } else {
        level(z[1], "frequent", "regular", "occasional")
    };
    let spend = level(z[2], "high spenders", "mid spenders", "low spenders");
    let recency = level(z[0], "lapsed", "cooling", "recent");
    let mut out = format!("{frequency} {spend}, {recency}");
    let tenure = level(z[3], "long-standing", "", "new");
    if !tenure.is_empty() {
        out.push_str(", ");
        out.push_str(tenure);
    }
    out
}

/// Appends `#2`, `#3`, … to repeated labels.
fn unique(labels: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for l in labels {
        let seen = out
            .iter()
            .filter(|o| *o == &l || o.starts_with(&format!("{l} #")))
            .count();
        out.push(if seen == 0 {
            l
        } else {
            format!("{l} #{}", seen + 1)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::summary::{SummaryParams, summarize};
    use super::*;
    use encore_data::PurchaseLog;

    const DAY: i64 = DAY_SECS;

    /// Three clear groups: recent big frequent buyers, lapsed one-off small
    /// buyers, new mid-size buyers.
    fn summaries() -> (Vec<CustomerSummary>, i64) {
        let mut log = PurchaseLog::default();
        let mut n = 0;
        for k in 0..20 {
            let c = format!("vip{k}");
            for d in (0..360).step_by(15 + k % 4) {
                n += 1;
                log.push(&format!("o{n}"), &c, "i", d as i64 * DAY, 2.0, 50.0);
            }
        }
        for k in 0..20 {
            n += 1;
            let day = 10 + k as i64;
            log.push(
                &format!("o{n}"),
                &format!("gone{k}"),
                "i",
                day * DAY,
                1.0,
                5.0,
            );
        }
        for k in 0..20 {
            let c = format!("new{k}");
            for d in [330 + k as i64, 350 + k as i64 / 2] {
                n += 1;
                log.push(&format!("o{n}"), &c, "i", d * DAY, 1.0, 20.0);
            }
        }
        let reference = 365 * DAY;
        (
            summarize(&log, reference, &SummaryParams::default()),
            reference,
        )
    }

    #[test]
    fn finds_the_groups_deterministically() {
        let (s, reference) = summaries();
        let params = SegmentParams {
            k: 3,
            ..Default::default()
        };
        let model = params.fit(&s, reference).unwrap();
        assert_eq!(model.sizes, vec![20, 20, 20]);
        let a = model.assign(&s, reference);
        // vips first (most valuable), then the new customers, then the lapsed.
        assert!(a[..20].iter().all(|&c| c == 0), "{a:?}");
        assert!(a[20..40].iter().all(|&c| c == 2), "{a:?}");
        assert!(a[40..].iter().all(|&c| c == 1), "{a:?}");
        assert!(model.labels[0].starts_with("frequent high spenders, recent"));
        assert!(model.labels[2].starts_with("one-off low spenders, lapsed"));
        assert!(model.centroids_original[2][1] < 1.0 + 1e-9);
        assert_eq!(params.fit(&s, reference).unwrap(), model, "same seed");
        let other = SegmentParams {
            seed: 7,
            ..params.clone()
        };
        assert_eq!(other.fit(&s, reference).unwrap().sizes, model.sizes);
        assert!(model.describe().contains("one-off low spenders"));

        let json = serde_json::to_string(&model).unwrap();
        let back: SegmentModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, model);
        assert_eq!(back.assign(&s, reference), a);
    }

    #[test]
    fn rejects_bad_settings() {
        let (s, reference) = summaries();
        let p = SegmentParams {
            k: 0,
            ..Default::default()
        };
        assert!(matches!(
            p.fit(&s, reference),
            Err(SegmentError::InvalidParam { name: "k", .. })
        ));
        let p = SegmentParams {
            k: 61,
            ..Default::default()
        };
        assert_eq!(
            p.fit(&s, reference),
            Err(SegmentError::TooFewCustomers {
                customers: 60,
                k: 61
            })
        );
        let p: SegmentParams = serde_json::from_str(r#"{"k": 4}"#).unwrap();
        assert_eq!((p.k, p.seed), (4, 42));
        assert_eq!(
            unique(vec!["a".into(), "b".into(), "a".into(), "a".into()]),
            vec!["a", "b", "a #2", "a #3"]
        );
    }
}
