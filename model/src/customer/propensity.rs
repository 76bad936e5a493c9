//! Next-purchase propensity: the probability that a customer buys within the
//! next `H` days (default 30), from gradient-boosted trees over per-customer
//! behaviour features, learned from stacked windows of the customers' own
//! past and calibrated on the most recent window.
//!
//! BTYD models (BG/NBD, Pareto/NBD) answer "is this customer still a
//! customer, and how often does she buy?" under a stationary model. Whether
//! she buys *this month* also depends on where she is in her own rhythm
//! (the current gap against her usual gap), on momentum (more orders lately
//! than before), on seasonality and on what she buys. The trees learn how
//! these signals combine from what customers did in earlier windows of the
//! same history; the BTYD models' outputs are features among the others.
//!
//! # Features
//! [`features`] computes, at a time `t`, for every customer with a
//! *purchase* (an order with a positive-value line: `quantity > 0` and a
//! positive or unknown price) at or before `t`; lines after `t` are never
//! read. Times are in days; a statistic of gaps is missing (`NaN`, which the
//! trees send to the lowest bin) when the customer has fewer than two
//! purchase days.
//!
//! | name | definition |
//! |---|---|
//! | `days_since_last` | days from the last purchase to `t` |
//! | `tenure_days` | days from the first purchase to `t` |
//! | `orders` | distinct orders with a purchase |
//! | `purchase_days` | distinct UTC days with a purchase |
//! | `log_spend` | `ln(1 + value of the purchased lines)` (0 without prices) |
//! | `log_order_value` | `ln(1 + value / orders)` |
//! | `gap_mean_days`, `gap_median_days` | mean and median gap between purchase days |
//! | `gap_cv` | standard deviation / mean of those gaps |
//! | `last_gap_days` | the gap between the last two purchase days |
//! | `gap_ratio` | `days_since_last / max(median gap, 1)`: the current gap against the customer's own (with one purchase day the median counts as 1, so it is `days_since_last`) |
//! | `days_to_due` | `median gap − days_since_last` |
//! | `orders_30d`, `orders_90d`, `orders_180d` | orders in `(t − w, t]` |
//! | `orders_before_180d` | orders at or before `t − 180 d` |
//! | `trend_90d` | `ln` of the order rate in the last 90 days over the rate before them |
//! | `orders_last_year_window` | orders in `(t − 365 d, t − 365 d + H]`: the coming window a year ago (calendar position) |
//! | `lines_per_order`, `units_per_order` | basket size |
//! | `distinct_items` | item breadth |
//! | `repeat_line_share` | share of lines whose item the customer bought in an earlier order |
//! | `return_lines` | lines with a negative quantity |
//! | `days_since_first_return` | days from the first return line to `t` (missing without one) |
//! | `bgnbd_p_alive`, `bgnbd_expected` | BG/NBD P(alive) and expected purchases in the next `H` days |
//! | `pnbd_p_alive`, `pnbd_expected` | the same under Pareto/NBD |
//!
//! The BTYD models are fitted at `t` on the histories at `t` (purchase days,
//! weeks; at most `max_btyd_customers` customers, every `s`-th beyond), in
//! every window, so a feature means the same thing in training and in
//! prediction. A model that fails to fit leaves its two features missing.
//!
//! # Training
//! [`PropensityParams::fit`] with a `reference` time builds:
//! * the *calibration window*: features at `t_c = reference − H`, label =
//!   a purchase in `(t_c, reference]`;
//! * `training_windows` training windows: features at `t_k = reference − 2H −
//!   k · stride` (`k = 0, 1, …`), label = a purchase in `(t_k, t_k + H]`;
//!   every label window ends at or before `t_c`. Windows with one class only
//!   are skipped.
//!
//! The training rows of all windows are stacked and boosted trees
//! ([`crate::learn::boosting`]) fitted on them. The trees' log-odds on the
//! calibration window are then, with `blend_btyd` (the default), blended
//! with a BTYD model's expected purchases in the horizon ([`Blend`]: the
//! score `m + w·ln E`, with `E` BG/NBD's or Pareto/NBD's `*_expected`
//! feature and `w ≥ 0` among a few weights, the pair with the highest ROC
//! AUC on that window; `w = 0`, the trees alone, when nothing beats them).
//! The score is mapped to probabilities by Platt scaling (`p = σ(a·s + b)`,
//! `a ≥ 0`, fitted by Newton's method): monotone, so it never changes the
//! ranking, and the Brier score and reliability table of the calibrated
//! probabilities on that window are kept in
//! [`PropensityModel::calibration`]. With `refit` (the default) the trees are
//! then fitted again on windows shifted by `H` (the calibration window
//! becomes the newest training window, the oldest is dropped) and keep the
//! same blend and calibration: the most recent month is usually the most informative.
//! Training customers are a seeded sample of at most
//! `max_training_customers` (the same customers in every window), which
//! bounds the cost at any scale. [`PropensityModel::predict`] scores every
//! customer at `reference`, i.e. it predicts the `H` days after it.

use super::bgnbd::{self, BgNbd, BgNbdParams};
use super::pareto_nbd::{self, ParetoNbd, ParetoNbdParams};
use super::summary::DAY_SECS;
use crate::learn::boosting::{Boosted, BoostingParams};
use crate::math::special::logistic;
use crate::setting::{InvalidSetting, at_least_one};
use encore_data::{CustomerIdx, PurchaseLog};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Names of the columns of [`features`], in order.
pub const FEATURE_NAMES: [&str; 28] = [
    "days_since_last",
    "tenure_days",
    "orders",
    "purchase_days",
    "log_spend",
    "log_order_value",
    "gap_mean_days",
    "gap_median_days",
    "gap_cv",
    "last_gap_days",
    "gap_ratio",
    "days_to_due",
    "orders_30d",
    "orders_90d",
    "orders_180d",
    "orders_before_180d",
    "trend_90d",
    "orders_last_year_window",
    "lines_per_order",
    "units_per_order",
    "distinct_items",
    "repeat_line_share",
    "return_lines",
    "bgnbd_p_alive",
    "bgnbd_expected",
    "pnbd_p_alive",
    "pnbd_expected",
    "days_since_first_return",
];

const DAY: i64 = DAY_SECS;

/// Settings of the propensity model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PropensityParams {
    /// Prediction horizon `H` in days (default 30).
    pub horizon_days: f64,
    /// Training windows stacked before the calibration window (default 6).
    pub training_windows: usize,
    /// Days between the starts of consecutive training windows (default 30).
    pub window_stride_days: f64,
    /// Refit the trees with the calibration window as the newest training
    /// window (module docs; default true).
    pub refit: bool,
    /// At most this many customers train the model (a seeded sample; default 20,000).
    pub max_training_customers: usize,
    /// The BTYD feature models are fitted on at most this many customers
    /// (every `s`-th beyond; default 20,000).
    pub max_btyd_customers: usize,
    /// Seed of the training sample.
    pub seed: u64,
    /// Blend the trees' log-odds with the log of a BTYD model's expected
    /// purchases in the horizon, weight chosen on the calibration window
    /// (module docs; default true).
    pub blend_btyd: bool,
    /// The boosted trees.
    pub boosting: BoostingParams,
    /// The BG/NBD fits behind the `bgnbd_*` features.
    pub bgnbd: BgNbdParams,
    /// The Pareto/NBD fits behind the `pnbd_*` features.
    pub pareto_nbd: ParetoNbdParams,
}

impl Default for PropensityParams {
    /// Chosen on validation windows that end before the cutoffs of the three
    /// evaluation histories (`bench/propensity_vs_btyd.sh --validation`).
    fn default() -> Self {
        PropensityParams {
            horizon_days: 30.0,
            training_windows: 6,
            window_stride_days: 30.0,
            refit: true,
            max_training_customers: 20_000,
            max_btyd_customers: 20_000,
            seed: 42,
            blend_btyd: true,
            boosting: BoostingParams {
                trees: 150,
                depth: 3,
                learning_rate: 0.05,
                bins: 64,
                min_leaf_hessian: 5.0,
                l2: 1.0,
            },
            bgnbd: BgNbdParams::default(),
            pareto_nbd: ParetoNbdParams::default(),
        }
    }
}

/// Why a propensity model could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PropensityError {
    /// A setting is out of range.
    #[error("invalid propensity parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// No training window has customers of both classes.
    #[error("no training window before {t_train} has buyers and non-buyers")]
    NoTrainingData { t_train: i64 },
    /// Every calibration customer has the same label.
    #[error(
        "the calibration window has one class only: {positives} of {customers} customers bought in it"
    )]
    OneClass { customers: usize, positives: usize },
    /// The boosted trees failed.
    #[error("boosted trees: {0}")]
    Boosting(String),
}

crate::setting::invalid_setting_from!(PropensityError);

impl PropensityParams {
    /// Checks every setting.
    pub fn check(&self) -> Result<(), PropensityError> {
        let bad =
            |name, value: String, reason| Err(InvalidSetting::new(name, value, reason).into());
        if !(self.horizon_days.is_finite() && self.horizon_days >= 1.0) {
            return bad(
                "horizon_days",
                self.horizon_days.to_string(),
                "must be a finite number of days, at least 1",
            );
        }
        at_least_one(&[("training_windows", self.training_windows)])?;
        if !(self.window_stride_days.is_finite() && self.window_stride_days >= 1.0) {
            return bad(
                "window_stride_days",
                self.window_stride_days.to_string(),
                "must be a finite number of days, at least 1",
            );
        }
        if self.max_training_customers < 10 {
            return bad(
                "max_training_customers",
                self.max_training_customers.to_string(),
                "must be at least 10",
            );
        }
        if self.max_btyd_customers < 10 {
            return bad(
                "max_btyd_customers",
                self.max_btyd_customers.to_string(),
                "must be at least 10",
            );
        }
        self.boosting.check()?;
        if let Err(e) = self.bgnbd.check("BG/NBD") {
            return Err(PropensityError::InvalidParam {
                name: "bgnbd",
                value: e.to_string(),
                reason: "invalid BG/NBD settings",
            });
        }
        if let Err(e) = self.pareto_nbd.check("Pareto/NBD") {
            return Err(PropensityError::InvalidParam {
                name: "pareto_nbd",
                value: e.to_string(),
                reason: "invalid Pareto/NBD settings",
            });
        }
        Ok(())
    }

    fn horizon_secs(&self) -> i64 {
        (self.horizon_days * DAY as f64).round() as i64
    }

    /// Trains on the lines of `log` at or before `reference` (module docs).
    pub fn fit(
        &self,
        log: &PurchaseLog,
        reference: i64,
    ) -> Result<PropensityModel, PropensityError> {
        self.check()?;
        let h = self.horizon_secs();
        let stride = (self.window_stride_days * DAY as f64).round() as i64;
        let n_customers = log.customers.len().max(1);
        let ratio = (self.max_training_customers as f64 / n_customers as f64).min(1.0);
        let seed = self.seed;
        let histories = build_histories(log, reference, |c| keep(c, seed, ratio));

        let t_cal = reference - h;
        // Newest first: the calibration window, then the training windows.
        let times: Vec<i64> = std::iter::once(t_cal)
            .chain((0..self.training_windows as i64).map(|k| reference - 2 * h - k * stride))
            .collect();
        let windows: Vec<Window> = times
            .iter()
            .map(|&t| self.window(&histories, t, h))
            .collect();
        let usable = |w: &&Window| w.positives > 0 && w.positives < w.labels.len();
        let calibration_window = &windows[0];
        if !usable(&calibration_window) {
            return Err(PropensityError::OneClass {
                customers: calibration_window.labels.len(),
                positives: calibration_window.positives,
            });
        }
        let first_fit: Vec<&Window> = windows[1..].iter().filter(usable).collect();
        if first_fit.is_empty() {
            return Err(PropensityError::NoTrainingData {
                t_train: reference - 2 * h,
            });
        }
        let trees = self.fit_trees(&first_fit)?;
        let tree_margins: Vec<f64> = calibration_window
            .rows
            .iter()
            .map(|r| trees.margin(r))
            .collect();
        let blend = if self.blend_btyd {
            Blend::choose(&tree_margins, calibration_window)
        } else {
            Blend::NONE
        };
        let margins: Vec<f64> = tree_margins
            .iter()
            .zip(&calibration_window.rows)
            .map(|(&m, r)| blend.score(m, r))
            .collect();
        let platt = Platt::fit(&margins, &calibration_window.labels);
        let calibration = CalibrationReport::new(
            t_cal,
            &tree_margins,
            &margins,
            &calibration_window.labels,
            &platt,
        );

        let (trees, used) = if self.refit {
            let shifted: Vec<&Window> = windows[..self.training_windows]
                .iter()
                .filter(usable)
                .collect();
            (self.fit_trees(&shifted)?, shifted)
        } else {
            (trees, first_fit)
        };
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        for w in &used {
            for (r, &y) in w.rows.iter().zip(&w.labels) {
                scores.push(trees.margin(r));
                labels.push(y);
            }
        }
        let training_auc = roc_auc(&scores, &labels);
        let splits = trees.split_counts();
        let mut feature_splits: Vec<(String, usize)> = FEATURE_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .zip(splits)
            .collect();
        feature_splits.sort_by_key(|f| std::cmp::Reverse(f.1));
        Ok(PropensityModel {
            feature_names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
            horizon_days: self.horizon_days,
            reference,
            training_time: used[0].time,
            windows: used
                .iter()
                .map(|w| WindowSummary {
                    time: w.time,
                    customers: w.labels.len(),
                    positives: w.positives,
                })
                .collect(),
            training_customers: labels.len(),
            training_positives: labels.iter().filter(|&&y| y).count(),
            training_auc,
            calibration,
            platt,
            blend,
            feature_splits,
            max_btyd_customers: self.max_btyd_customers,
            bgnbd: self.bgnbd.clone(),
            pareto_nbd: self.pareto_nbd.clone(),
            trees,
        })
    }

    fn fit_trees(&self, windows: &[&Window]) -> Result<Boosted, PropensityError> {
        let rows: Vec<&[f64]> = windows
            .iter()
            .flat_map(|w| w.rows.iter().map(Vec::as_slice))
            .collect();
        let labels: Vec<bool> = windows
            .iter()
            .flat_map(|w| w.labels.iter().copied())
            .collect();
        self.boosting
            .fit(&rows, &labels)
            .map_err(PropensityError::Boosting)
    }

    fn window(&self, histories: &[History], t: i64, h: i64) -> Window {
        let btyd = Btyd::fit(
            histories,
            t,
            self.horizon_days,
            self.max_btyd_customers,
            &self.bgnbd,
            &self.pareto_nbd,
        );
        let rows: Vec<(Vec<f64>, bool)> = histories
            .par_iter()
            .filter_map(|hist| {
                let row = hist.features(t, h, &btyd)?;
                let bought = hist.orders.iter().any(|o| o.time > t && o.time <= t + h);
                Some((row, bought))
            })
            .collect();
        let (rows, labels): (Vec<Vec<f64>>, Vec<bool>) = rows.into_iter().unzip();
        let positives = labels.iter().filter(|&&y| y).count();
        Window {
            time: t,
            rows,
            labels,
            positives,
        }
    }
}

/// The feature rows and labels of one window.
struct Window {
    time: i64,
    rows: Vec<Vec<f64>>,
    labels: Vec<bool>,
    positives: usize,
}

/// Whether customer `c` is in the seeded training sample of `ratio`.
fn keep(c: CustomerIdx, seed: u64, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let mut z = u64::from(c.0) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < ratio
}

/// One window of the training set, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// Feature time `t` (seconds since the epoch); labels are `(t, t + H]`.
    pub time: i64,
    pub customers: usize,
    pub positives: usize,
}

/// Platt scaling of the trees' log-odds: `p = σ(a·m + b)` with `a ≥ 0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    /// Minimises the log-loss of `σ(a·m + b)` against `labels` by Newton's
    /// method from `(1, 0)` (a tiny ridge keeps the step defined), each step
    /// halved until the log-loss does not grow (a full Newton step can
    /// overshoot when the margins spread far, as blended ones can); `a` is
    /// kept at or above 0 so the map never reverses the ranking.
    pub fn fit(margins: &[f64], labels: &[bool]) -> Platt {
        let loss = |a: f64, b: f64| -> f64 {
            margins
                .iter()
                .zip(labels)
                .map(|(&m, &y)| {
                    let z = a * m + b;
                    // ln(1 + e^z) − y·z, without overflow.
                    z.max(0.0) + (-z.abs()).exp().ln_1p() - if y { z } else { 0.0 }
                })
                .sum()
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut current = loss(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (&m, &y) in margins.iter().zip(labels) {
                let p = logistic(a * m + b);
                let r = p - f64::from(u8::from(y));
                let w = (p * (1.0 - p)).max(1e-12);
                ga += r * m;
                gb += r;
                haa += w * m * m;
                hab += w * m;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-300 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            let mut step = 1.0;
            let mut moved = false;
            for _ in 0..40 {
                let (na, nb) = ((a - step * da).max(0.0), b - step * db);
                let l = loss(na, nb);
                if l <= current {
                    (a, b, current) = (na, nb, l);
                    moved = true;
                    break;
                }
                step /= 2.0;
            }
            if !moved || (step * da).abs() < 1e-10 && (step * db).abs() < 1e-10 {
                break;
            }
        }
        if a == 0.0 {
            // The margins rank backwards or not at all: the best flat map is
            // the base rate.
            let n = labels.len().max(1) as f64;
            let rate = (labels.iter().filter(|&&y| y).count() as f64 / n).clamp(1e-9, 1.0 - 1e-9);
            b = (rate / (1.0 - rate)).ln();
        }
        Platt { a, b }
    }

    /// The calibrated probability of a margin.
    pub fn apply(&self, margin: f64) -> f64 {
        logistic(self.a * margin + self.b)
    }
}

/// The blend of the trees' log-odds `m` with a BTYD model's expected
/// purchases `E` in the horizon (a column of the feature row): the score is
/// `m + w·ln E` (`E` floored at 1e-9), or `m` alone when `w` is 0 or the
/// row's `E` is missing. Both parts rank customers the same way the more
/// they are expected to buy, so `w ≥ 0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Blend {
    /// Column of the expected purchases in the feature row.
    pub column: usize,
    pub weight: f64,
}

impl Default for Blend {
    fn default() -> Self {
        Blend::NONE
    }
}

/// Weights tried by [`Blend::choose`].
const BLEND_WEIGHTS: [f64; 12] = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];

impl Blend {
    /// No blend: the trees alone.
    pub const NONE: Blend = Blend {
        column: 0,
        weight: 0.0,
    };

    /// The score of a row with the trees' log-odds `margin`.
    pub fn score(&self, margin: f64, row: &[f64]) -> f64 {
        if self.weight == 0.0 {
            return margin;
        }
        match row.get(self.column) {
            Some(&e) if e.is_finite() => margin + self.weight * e.max(1e-9).ln(),
            _ => margin,
        }
    }

    /// The blend with the highest ROC AUC on the calibration window (the
    /// first trees never trained on it), over the BG/NBD and the Pareto/NBD
    /// expected purchases and the weights of [`BLEND_WEIGHTS`]; a model
    /// whose expected purchases are missing for a customer of the window is
    /// not tried. Ties keep the smaller weight (0 first: the trees alone).
    fn choose(margins: &[f64], window: &Window) -> Blend {
        let mut best = (roc_auc(margins, &window.labels).unwrap_or(0.0), Blend::NONE);
        for name in ["bgnbd_expected", "pnbd_expected"] {
            let column = FEATURE_NAMES
                .iter()
                .position(|n| *n == name)
                .expect("a feature column");
            if window.rows.iter().any(|r| !r[column].is_finite()) {
                continue;
            }
            for &weight in &BLEND_WEIGHTS[1..] {
                let blend = Blend { column, weight };
                let scores: Vec<f64> = margins
                    .iter()
                    .zip(&window.rows)
                    .map(|(&m, r)| blend.score(m, r))
                    .collect();
                let auc = roc_auc(&scores, &window.labels).unwrap_or(0.0);
                if auc > best.0 {
                    best = (auc, blend);
                }
            }
        }
        best.1
    }
}

/// One bin of the reliability table: predictions in `[lower, upper)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub customers: usize,
    /// Mean calibrated probability in the bin.
    pub mean_predicted: f64,
    /// Share of the bin's customers who bought.
    pub observed: f64,
}

/// How well the calibrated probabilities fit the calibration window (the
/// Platt map was fitted on the same window: two parameters, so the figures
/// are only slightly optimistic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    /// Feature time of the window; labels `(time, time + H]`.
    pub time: i64,
    pub customers: usize,
    pub positives: usize,
    /// ROC AUC on it of the first trees (fitted without this window),
    /// blended ([`Blend`]; the blend's weight was chosen on this window).
    pub auc: Option<f64>,
    /// Brier score of the trees' own probabilities, of the calibrated ones,
    /// and of the base rate for everyone.
    pub brier_uncalibrated: f64,
    pub brier: f64,
    pub brier_base_rate: f64,
    /// Ten bins of width 0.1 (empty ones left out).
    pub reliability: Vec<ReliabilityBin>,
}

impl CalibrationReport {
    fn new(
        time: i64,
        tree_margins: &[f64],
        margins: &[f64],
        labels: &[bool],
        platt: &Platt,
    ) -> Self {
        let positives = labels.iter().filter(|&&l| l).count();
        let rate = positives as f64 / labels.len().max(1) as f64;
        let p: Vec<f64> = margins.iter().map(|&m| platt.apply(m)).collect();
        let raw: Vec<f64> = tree_margins.iter().map(|&m| logistic(m)).collect();
        CalibrationReport {
            time,
            customers: labels.len(),
            positives,
            auc: roc_auc(margins, labels),
            brier_uncalibrated: brier_score(&raw, labels),
            brier: brier_score(&p, labels),
            brier_base_rate: brier_score(&vec![rate; labels.len()], labels),
            reliability: reliability_bins(&p, labels),
        }
    }

    /// The report as lines of text.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "calibration window: {} customers, {} bought; AUC {}; Brier {:.4} (trees alone {:.4}, base rate {:.4})",
            self.customers,
            self.positives,
            self.auc.map_or_else(|| "-".into(), |a| format!("{a:.4}")),
            self.brier,
            self.brier_uncalibrated,
            self.brier_base_rate
        )];
        out.extend(reliability_lines(&self.reliability));
        out
    }
}

/// A fitted propensity model (plain data, serialisable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropensityModel {
    /// Feature names, [`FEATURE_NAMES`] at fitting time.
    pub feature_names: Vec<String>,
    /// Horizon `H` in days.
    pub horizon_days: f64,
    /// The reference time given to [`PropensityParams::fit`].
    pub reference: i64,
    /// Feature time of the newest training window.
    pub training_time: i64,
    /// The training windows of the final trees, newest first.
    pub windows: Vec<WindowSummary>,
    /// Training rows (customers × windows) and how many bought.
    pub training_customers: usize,
    pub training_positives: usize,
    /// ROC AUC of the final trees on their training rows.
    pub training_auc: Option<f64>,
    /// Fit of the calibrated probabilities on the calibration window.
    pub calibration: CalibrationReport,
    /// The calibration map.
    pub platt: Platt,
    /// The BTYD blend applied before it (models stored before the blend
    /// existed have none).
    #[serde(default)]
    pub blend: Blend,
    /// Splits per feature in the final trees, most first.
    pub feature_splits: Vec<(String, usize)>,
    /// Settings of the BTYD feature fits at prediction time.
    pub max_btyd_customers: usize,
    pub bgnbd: BgNbdParams,
    pub pareto_nbd: ParetoNbdParams,
    /// The trees.
    pub trees: Boosted,
}

impl PropensityModel {
    /// Probability of buying within the horizon after `reference`, per
    /// customer index with a purchase at or before `reference` (others,
    /// including customers with only returns, `None`). Lines after
    /// `reference` are ignored. The result has length `log.customers.len()`.
    pub fn predict(&self, log: &PurchaseLog, reference: i64) -> Vec<Option<f64>> {
        let (customers, rows) = features_with(
            log,
            reference,
            self.horizon_days,
            self.max_btyd_customers,
            &self.bgnbd,
            &self.pareto_nbd,
        );
        let mut out = vec![None; log.customers.len()];
        let p: Vec<f64> = rows.par_iter().map(|r| self.probability(r)).collect();
        for (c, p) in customers.iter().zip(p) {
            out[c.idx()] = Some(p);
        }
        out
    }

    /// The calibrated probability for one row of [`features`].
    pub fn probability(&self, row: &[f64]) -> f64 {
        self.platt
            .apply(self.blend.score(self.trees.margin(row), row))
    }

    /// A few lines for the fit summary: the windows, the calibration report
    /// and the most used features.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "buys within {} days: {} windows, {} training rows ({} bought), training AUC {}",
            self.horizon_days,
            self.windows.len(),
            self.training_customers,
            self.training_positives,
            self.training_auc
                .map_or_else(|| "-".into(), |a| format!("{a:.3}"))
        )];
        out.extend(self.calibration.describe());
        if self.blend.weight > 0.0 {
            out.push(format!(
                "blended with {} x ln({})",
                self.blend.weight,
                FEATURE_NAMES.get(self.blend.column).unwrap_or(&"?")
            ));
        }
        let top: Vec<String> = self
            .feature_splits
            .iter()
            .take(8)
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        out.push(format!("most used features (splits): {}", top.join(", ")));
        out
    }
}

/// One order with a purchase, as the features need it.
#[derive(Debug, Clone, Copy)]
struct Order {
    /// Earliest positive-value line of the order.
    time: i64,
    value: f32,
    units: f32,
    lines: u32,
    new_items: u32,
    repeat_lines: u32,
}

/// A customer's orders with a purchase, by time, and return lines' times.
struct History {
    customer: CustomerIdx,
    orders: Vec<Order>,
    returns: Vec<i64>,
}

fn is_positive_value(quantity: f32, price: f32) -> bool {
    quantity > 0.0 && quantity.is_finite() && (price.is_nan() || price > 0.0)
}

/// The histories of the customers `keep` accepts, from the lines at or
/// before `end`, sorted by customer index.
fn build_histories(
    log: &PurchaseLog,
    end: i64,
    keep: impl Fn(CustomerIdx) -> bool + Sync,
) -> Vec<History> {
    let mut lines: Vec<u32> = (0..log.purchases.len() as u32)
        .filter(|&i| {
            let p = &log.purchases[i as usize];
            p.time <= end && keep(p.customer)
        })
        .collect();
    lines.par_sort_unstable_by_key(|&i| {
        let p = &log.purchases[i as usize];
        (p.customer, p.order, p.time, i)
    });
    let mut starts = Vec::new();
    for (k, &i) in lines.iter().enumerate() {
        if k == 0
            || log.purchases[lines[k - 1] as usize].customer != log.purchases[i as usize].customer
        {
            starts.push(k);
        }
    }
    starts.push(lines.len());
    starts
        .par_windows(2)
        .map(|w| history_of(log, &lines[w[0]..w[1]]))
        .filter(|h| !h.orders.is_empty() || !h.returns.is_empty())
        .collect()
}

/// One customer's history from their lines sorted by (order, time).
fn history_of(log: &PurchaseLog, lines: &[u32]) -> History {
    let p = |i: u32| &log.purchases[i as usize];
    let customer = p(lines[0]).customer;
    let mut returns = Vec::new();
    // (time, first line, end line) of each order with a purchase.
    let mut spans: Vec<(i64, usize, usize)> = Vec::new();
    let mut k = 0;
    while k < lines.len() {
        let order = p(lines[k]).order;
        let mut end = k;
        let mut time = None;
        while end < lines.len() && p(lines[end]).order == order {
            let q = p(lines[end]);
            if is_positive_value(q.quantity, q.price) {
                time = Some(time.map_or(q.time, |t: i64| t.min(q.time)));
            } else if q.quantity < 0.0 {
                returns.push(q.time);
            }
            end += 1;
        }
        if let Some(t) = time {
            spans.push((t, k, end));
        }
        k = end;
    }
    spans.sort_unstable();
    returns.sort_unstable();
    let mut seen: HashSet<u32> = HashSet::new();
    let mut fresh: Vec<u32> = Vec::new();
    let orders = spans
        .into_iter()
        .map(|(time, a, b)| {
            let mut o = Order {
                time,
                value: 0.0,
                units: 0.0,
                lines: 0,
                new_items: 0,
                repeat_lines: 0,
            };
            fresh.clear();
            for &i in &lines[a..b] {
                let q = p(i);
                if !is_positive_value(q.quantity, q.price) {
                    continue;
                }
                o.lines += 1;
                o.units += q.quantity;
                if q.price.is_finite() {
                    o.value += q.quantity * q.price;
                }
                if seen.contains(&q.item.0) {
                    o.repeat_lines += 1;
                } else {
                    fresh.push(q.item.0);
                }
            }
            fresh.sort_unstable();
            fresh.dedup();
            o.new_items = fresh.len() as u32;
            seen.extend(fresh.iter().copied());
            o
        })
        .collect();
    History {
        customer,
        orders,
        returns,
    }
}

/// The BTYD feature models fitted at one time.
struct Btyd {
    bgnbd: Option<BgNbd>,
    pnbd: Option<ParetoNbd>,
    /// `H` in weeks.
    horizon: f64,
}

impl Btyd {
    fn fit(
        histories: &[History],
        t: i64,
        horizon_days: f64,
        max_customers: usize,
        bgnbd: &BgNbdParams,
        pnbd: &ParetoNbdParams,
    ) -> Btyd {
        let data: Vec<(f64, f64, f64)> = histories
            .iter()
            .filter_map(|h| h.repeat_summary(t))
            .collect();
        let step = data.len().div_ceil(max_customers).max(1);
        let sample: Vec<(f64, f64, f64)> = data.into_iter().step_by(step).collect();
        let (bg, pn) = if sample.is_empty() {
            (None, None)
        } else {
            rayon::join(
                || bgnbd::fit(bgnbd, &sample).ok(),
                || pareto_nbd::fit(pnbd, &sample).ok(),
            )
        };
        Btyd {
            bgnbd: bg,
            pnbd: pn,
            horizon: horizon_days / 7.0,
        }
    }
}

impl History {
    /// `(x, t_x, T)` in weeks at `t` over purchase days (the BTYD convention
    /// of [`super::summary`]: days, the reference truncated to its day).
    fn repeat_summary(&self, t: i64) -> Option<(f64, f64, f64)> {
        let n = self.orders.partition_point(|o| o.time <= t);
        if n == 0 {
            return None;
        }
        let day = |time: i64| time.div_euclid(DAY);
        let first = day(self.orders[0].time);
        let last = day(self.orders[n - 1].time);
        let mut days = 1;
        for w in self.orders[..n].windows(2) {
            if day(w[1].time) != day(w[0].time) {
                days += 1;
            }
        }
        Some((
            f64::from(days - 1),
            (last - first) as f64 / 7.0,
            (day(t) - first) as f64 / 7.0,
        ))
    }

    /// The feature row at `t` ([`FEATURE_NAMES`]), `None` without a
    /// purchase at or before `t`.
    fn features(&self, t: i64, h: i64, btyd: &Btyd) -> Option<Vec<f64>> {
        let n = self.orders.partition_point(|o| o.time <= t);
        if n == 0 {
            return None;
        }
        let orders = &self.orders[..n];
        let days = |secs: i64| secs as f64 / DAY as f64;
        let since_last = days(t - orders[n - 1].time);
        let tenure = days(t - orders[0].time);
        // Gaps between distinct purchase days.
        let mut purchase_days: Vec<i64> = orders.iter().map(|o| o.time.div_euclid(DAY)).collect();
        purchase_days.dedup();
        let mut gaps: Vec<f64> = purchase_days
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64)
            .collect();
        let last_gap = gaps.last().copied().unwrap_or(f64::NAN);
        let (mean, median, cv) = if gaps.is_empty() {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            let k = gaps.len() as f64;
            let mean = gaps.iter().sum::<f64>() / k;
            let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / k).sqrt();
            gaps.sort_by(f64::total_cmp);
            let m = gaps.len();
            let median = if m % 2 == 1 {
                gaps[m / 2]
            } else {
                (gaps[m / 2 - 1] + gaps[m / 2]) / 2.0
            };
            (mean, median, sd / mean.max(1e-9))
        };
        let count_in = |lo: i64, hi: i64| {
            orders
                .iter()
                .filter(|o| o.time > lo && o.time <= hi)
                .count()
        };
        let o30 = count_in(t - 30 * DAY, t);
        let o90 = count_in(t - 90 * DAY, t);
        let o180 = count_in(t - 180 * DAY, t);
        let before90 = n - o90;
        let trend = ((o90 as f64 + 0.5) / 90.0).ln()
            - ((before90 as f64 + 0.5) / (tenure - 90.0).max(30.0)).ln();
        let last_year = count_in(t - 365 * DAY, t - 365 * DAY + h);
        let value: f64 = orders.iter().map(|o| f64::from(o.value)).sum();
        let units: f64 = orders.iter().map(|o| f64::from(o.units)).sum();
        let lines: u64 = orders.iter().map(|o| u64::from(o.lines)).sum();
        let distinct: u64 = orders.iter().map(|o| u64::from(o.new_items)).sum();
        let repeat: u64 = orders.iter().map(|o| u64::from(o.repeat_lines)).sum();
        let returns = self.returns.partition_point(|&r| r <= t);
        let first_return = if returns > 0 {
            days(t - self.returns[0])
        } else {
            f64::NAN
        };
        let (x, t_x, big_t) = self.repeat_summary(t)?;
        let (bg_alive, bg_expected) = btyd.bgnbd.as_ref().map_or((f64::NAN, f64::NAN), |m| {
            (
                m.p_alive(x, t_x, big_t),
                m.expected_purchases(btyd.horizon, x, t_x, big_t)
                    .unwrap_or(f64::NAN),
            )
        });
        let (pn_alive, pn_expected) = btyd.pnbd.as_ref().map_or((f64::NAN, f64::NAN), |m| {
            (
                m.p_alive(x, t_x, big_t),
                m.expected_purchases(btyd.horizon, x, t_x, big_t)
                    .unwrap_or(f64::NAN),
            )
        });
        let nf = n as f64;
        Some(vec![
            since_last,
            tenure,
            nf,
            purchase_days.len() as f64,
            value.max(0.0).ln_1p(),
            (value.max(0.0) / nf).ln_1p(),
            mean,
            median,
            cv,
            last_gap,
            since_last / median.max(1.0),
            median - since_last,
            o30 as f64,
            o90 as f64,
            o180 as f64,
            (n - o180) as f64,
            trend,
            last_year as f64,
            lines as f64 / nf,
            units / nf,
            distinct as f64,
            repeat as f64 / (lines as f64).max(1.0),
            returns as f64,
            bg_alive,
            bg_expected,
            pn_alive,
            pn_expected,
            first_return,
        ])
    }
}

/// The feature matrix at `reference` with the default BTYD settings: one
/// row per customer with a purchase at or before `reference`, sorted by
/// customer index, columns as [`FEATURE_NAMES`]; `horizon_days` is `H`.
pub fn features(
    log: &PurchaseLog,
    reference: i64,
    horizon_days: f64,
) -> (Vec<CustomerIdx>, Vec<Vec<f64>>) {
    let p = PropensityParams::default();
    features_with(
        log,
        reference,
        horizon_days,
        p.max_btyd_customers,
        &p.bgnbd,
        &p.pareto_nbd,
    )
}

fn features_with(
    log: &PurchaseLog,
    reference: i64,
    horizon_days: f64,
    max_btyd_customers: usize,
    bgnbd: &BgNbdParams,
    pareto: &ParetoNbdParams,
) -> (Vec<CustomerIdx>, Vec<Vec<f64>>) {
    let histories = build_histories(log, reference, |_| true);
    let btyd = Btyd::fit(
        &histories,
        reference,
        horizon_days,
        max_btyd_customers,
        bgnbd,
        pareto,
    );
    let h = (horizon_days * DAY as f64).round() as i64;
    histories
        .par_iter()
        .filter_map(|hist| Some((hist.customer, hist.features(reference, h, &btyd)?)))
        .unzip()
}

/// Per customer index, whether the customer has a line with a positive
/// quantity at a time in `[start, end)`.
pub fn buyers(log: &PurchaseLog, start: i64, end: i64) -> Vec<bool> {
    let mut out = vec![false; log.customers.len()];
    for p in &log.purchases {
        if p.quantity > 0.0 && (start..end).contains(&{ p.time }) {
            out[p.customer.idx()] = true;
        }
    }
    out
}

/// Brier score: the mean of `(p_i − y_i)²` over the customers, `y_i` 1 for a
/// buyer (0 for no customer).
///
/// # Panics
/// If the slices have different lengths.
pub fn brier_score(p: &[f64], labels: &[bool]) -> f64 {
    assert_eq!(p.len(), labels.len(), "one label per probability");
    let n = labels.len().max(1) as f64;
    p.iter()
        .zip(labels)
        .map(|(&q, &l)| (q - f64::from(u8::from(l))).powi(2))
        .sum::<f64>()
        / n
}

/// The reliability table of probabilities `p` against `labels`: ten bins of
/// width 0.1 (`[0.9, 1.0]` closed), empty ones left out.
///
/// # Panics
/// If the slices have different lengths.
pub fn reliability_bins(p: &[f64], labels: &[bool]) -> Vec<ReliabilityBin> {
    assert_eq!(p.len(), labels.len(), "one label per probability");
    let mut bins = vec![(0usize, 0.0, 0.0); 10];
    for (&q, &l) in p.iter().zip(labels) {
        let b = ((q * 10.0) as usize).min(9);
        bins[b].0 += 1;
        bins[b].1 += q;
        bins[b].2 += f64::from(u8::from(l));
    }
    bins.into_iter()
        .enumerate()
        .filter(|(_, b)| b.0 > 0)
        .map(|(i, (c, sp, sy))| ReliabilityBin {
            lower: i as f64 / 10.0,
            upper: (i + 1) as f64 / 10.0,
            customers: c,
            mean_predicted: sp / c as f64,
            observed: sy / c as f64,
        })
        .collect()
}

/// A reliability table as lines of text: a header, then one line a bin.
pub fn reliability_lines(bins: &[ReliabilityBin]) -> Vec<String> {
    let mut out = vec!["  predicted     customers  mean predicted  observed".to_string()];
    for b in bins {
        out.push(format!(
            "  [{:.1}, {:.1})  {:>9}  {:>14.3}  {:>8.3}",
            b.lower, b.upper, b.customers, b.mean_predicted, b.observed
        ));
    }
    out
}

/// ROC AUC of `scores` (greater = more likely positive) against `labels`:
/// the Mann–Whitney probability that a random positive outscores a random
/// negative, ties counting one half. `None` if either class is empty.
///
/// # Panics
/// If the slices have different lengths.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len(), "one label per score");
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mid_rank = (start + end + 1) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        rank_sum += mid_rank * tied_positives as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A seeded history with a known signal: every customer buys on a
    /// personal rhythm (a period of 15 to 120 days, a little jitter) from a
    /// random start until a random drop-out day (or for good). Whether she
    /// buys in a 30-day window depends on where she is in her cycle, which
    /// neither the days since her last purchase nor her order count tells.
    fn rhythm_log(customers: usize, seed: u64) -> PurchaseLog {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut log = PurchaseLog::default();
        for c in 0..customers {
            let period: f64 = rng.gen_range(15.0..120.0);
            let start: f64 = rng.gen_range(0.0..300.0);
            let stop: f64 = if rng.gen_bool(0.3) {
                rng.gen_range(start..600.0)
            } else {
                1e9
            };
            let mut day = start;
            let mut k = 0;
            while day < 560.0 && day < stop {
                log.push(
                    &format!("c{c}o{k}"),
                    &format!("c{c}"),
                    &format!("i{}", rng.gen_range(0..20)),
                    (day * DAY as f64) as i64,
                    1.0,
                    10.0,
                );
                k += 1;
                day += period * rng.gen_range(0.85..1.15);
            }
        }
        log
    }

    fn quick() -> PropensityParams {
        PropensityParams {
            training_windows: 4,
            boosting: BoostingParams {
                trees: 60,
                learning_rate: 0.1,
                ..PropensityParams::default().boosting
            },
            ..Default::default()
        }
    }

    #[test]
    fn beats_counting_on_a_history_with_a_rhythm() {
        let log = rhythm_log(1_200, 7);
        let reference = 450 * DAY;
        let (before, _) = log.split_at(reference + 1);
        let model = quick().fit(&before, reference).unwrap();
        let p = model.predict(&before, reference);
        let bought = buyers(&log, reference + 1, reference + 30 * DAY + 1);
        let (customers, x) = features(&before, reference, 30.0);
        let col = |n: &str| FEATURE_NAMES.iter().position(|f| *f == n).unwrap();
        let labels: Vec<bool> = customers.iter().map(|c| bought[c.idx()]).collect();
        let ours: Vec<f64> = customers.iter().map(|c| p[c.idx()].unwrap()).collect();
        let recency: Vec<f64> = x.iter().map(|r| -r[col("days_since_last")]).collect();
        let orders: Vec<f64> = x.iter().map(|r| r[col("orders")]).collect();
        let auc = |s: &[f64]| roc_auc(s, &labels).unwrap();
        let (a, r, o) = (auc(&ours), auc(&recency), auc(&orders));
        assert!(
            a > r.max(o) + 0.05,
            "model {a:.4}, recency {r:.4}, orders {o:.4}"
        );
        assert!(model.calibration.brier < model.calibration.brier_base_rate);
        assert_eq!(p.iter().filter(|q| q.is_some()).count(), customers.len());
    }

    #[test]
    fn deterministic_and_round_trips() {
        let log = rhythm_log(300, 11);
        let reference = 450 * DAY;
        let model = quick().fit(&log, reference).unwrap();
        assert_eq!(
            quick().fit(&log, reference).unwrap(),
            model,
            "same seed, same model"
        );
        let json = serde_json::to_string(&model).unwrap();
        let back: PropensityModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, model);
        assert_eq!(
            back.predict(&log, reference),
            model.predict(&log, reference)
        );
        // Lines after the reference are never read.
        let (before, _) = log.split_at(reference + 1);
        assert_eq!(quick().fit(&before, reference).unwrap(), model);
        // A different sample of training customers gives a different model.
        let other = PropensityParams {
            max_training_customers: 150,
            ..quick()
        };
        let a = other.fit(&log, reference).unwrap();
        let b = PropensityParams { seed: 43, ..other }
            .fit(&log, reference)
            .unwrap();
        assert_ne!(a.trees, b.trees);
    }

    #[test]
    fn platt_is_monotone_and_never_reverses() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let margins: Vec<f64> = (0..2_000).map(|_| rng.gen_range(-4.0..4.0)).collect();
        // True probability σ(0.5 m − 1): the fit recovers it.
        let labels: Vec<bool> = margins
            .iter()
            .map(|&m| rng.gen_bool(logistic(0.5 * m - 1.0)))
            .collect();
        let p = Platt::fit(&margins, &labels);
        assert!((p.a - 0.5).abs() < 0.1 && (p.b + 1.0).abs() < 0.3, "{p:?}");
        let mut grid: Vec<f64> = (-50..=50).map(|k| f64::from(k) / 5.0).collect();
        grid.sort_by(f64::total_cmp);
        let out: Vec<f64> = grid.iter().map(|&m| p.apply(m)).collect();
        assert!(out.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
        // Margins that rank backwards: the map goes flat, never downwards.
        let flipped: Vec<bool> = labels.iter().map(|&y| !y).collect();
        let q = Platt::fit(&margins, &flipped);
        assert_eq!(q.a, 0.0);
        let rate = flipped.iter().filter(|&&y| y).count() as f64 / flipped.len() as f64;
        assert!((q.apply(1.0) - rate).abs() < 1e-6);
    }

    #[test]
    fn platt_converges_on_widely_spread_margins() {
        // Blended scores: most margins near -3, a tail far below (a BTYD
        // expectation near 0, times a large weight).
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(4);
        let margins: Vec<f64> = (0..5_000)
            .map(|_| {
                if rng.gen_bool(0.2) {
                    rng.gen_range(-110.0..-60.0)
                } else {
                    rng.gen_range(-6.0..1.0)
                }
            })
            .collect();
        let labels: Vec<bool> = margins
            .iter()
            .map(|&m| rng.gen_bool(logistic(0.4 * m - 0.5)))
            .collect();
        let p = Platt::fit(&margins, &labels);
        let probs: Vec<f64> = margins.iter().map(|&m| p.apply(m)).collect();
        let rate = labels.iter().filter(|&&y| y).count() as f64 / labels.len() as f64;
        assert!(
            brier_score(&probs, &labels) < brier_score(&vec![rate; labels.len()], &labels),
            "{p:?}"
        );
        assert!((p.a - 0.4).abs() < 0.1 && (p.b + 0.5).abs() < 0.3, "{p:?}");
        assert_eq!(
            roc_auc(&probs, &labels),
            roc_auc(&margins, &labels),
            "the ranking is kept"
        );
    }

    #[test]
    fn calibration_report_adds_up() {
        let log = rhythm_log(400, 5);
        let model = quick().fit(&log, 450 * DAY).unwrap();
        let c = &model.calibration;
        assert_eq!(c.time, 420 * DAY);
        assert_eq!(
            c.reliability.iter().map(|b| b.customers).sum::<usize>(),
            c.customers
        );
        let observed: f64 = c
            .reliability
            .iter()
            .map(|b| b.observed * b.customers as f64)
            .sum();
        assert!((observed - c.positives as f64).abs() < 1e-6);
        // Platt scaling matches the mean to the base rate.
        let predicted: f64 = c
            .reliability
            .iter()
            .map(|b| b.mean_predicted * b.customers as f64)
            .sum();
        assert!((predicted - c.positives as f64).abs() < 1e-3 * c.customers as f64);
        assert!(c.brier < c.brier_base_rate);
        assert!(model.describe().len() > 3);
        assert_eq!(
            model.windows[0].time,
            420 * DAY,
            "refit: newest window first"
        );
        let no_refit = PropensityParams {
            refit: false,
            ..quick()
        }
        .fit(&log, 450 * DAY)
        .unwrap();
        assert_eq!(no_refit.windows[0].time, 390 * DAY);
        assert_eq!(no_refit.calibration, model.calibration);
    }

    #[test]
    fn blend_scores_chooses_on_the_calibration_window_and_old_models_load() {
        let col = |n: &str| FEATURE_NAMES.iter().position(|f| *f == n).unwrap();
        let (bg, pn) = (col("bgnbd_expected"), col("pnbd_expected"));
        let b = Blend {
            column: pn,
            weight: 2.0,
        };
        let mut row = vec![0.0; FEATURE_NAMES.len()];
        row[pn] = 0.5;
        assert!((b.score(1.0, &row) - (1.0 + 2.0 * 0.5f64.ln())).abs() < 1e-12);
        row[pn] = 0.0;
        assert!((b.score(1.0, &row) - (1.0 + 2.0 * 1e-9f64.ln())).abs() < 1e-9);
        row[pn] = f64::NAN;
        assert_eq!(b.score(1.0, &row), 1.0, "missing: the trees alone");
        assert_eq!(Blend::NONE.score(1.0, &row), 1.0);

        // Trees that rank by noise, Pareto/NBD's expectation by the label,
        // BG/NBD's against it: the blend takes Pareto/NBD, with a weight.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let labels: Vec<bool> = (0..400).map(|_| rng.gen_bool(0.3)).collect();
        let rows: Vec<Vec<f64>> = labels
            .iter()
            .map(|&y| {
                let mut r = vec![0.0; FEATURE_NAMES.len()];
                let e = if y { 0.8 } else { 0.1 } * rng.gen_range(0.5..1.5);
                r[pn] = e;
                r[bg] = 1.0 / e;
                r
            })
            .collect();
        let positives = labels.iter().filter(|&&y| y).count();
        let window = Window {
            time: 0,
            rows,
            labels,
            positives,
        };
        let noise: Vec<f64> = (0..400).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let chosen = Blend::choose(&noise, &window);
        assert_eq!(chosen.column, pn);
        assert!(chosen.weight > 0.0);
        // Trees that rank perfectly: nothing to add, the trees alone.
        let perfect: Vec<f64> = window
            .labels
            .iter()
            .map(|&y| f64::from(u8::from(y)))
            .collect();
        assert_eq!(Blend::choose(&perfect, &window), Blend::NONE);
        // A model missing for one customer is not tried.
        let mut gap = window;
        gap.rows[0][pn] = f64::NAN;
        assert_ne!(Blend::choose(&noise, &gap).column, pn);

        // A model stored before the blend existed loads with none.
        let log = rhythm_log(300, 11);
        let model = quick().fit(&log, 450 * DAY).unwrap();
        let mut json = serde_json::to_value(&model).unwrap();
        json.as_object_mut().unwrap().remove("blend");
        let old: PropensityModel = serde_json::from_value(json).unwrap();
        assert_eq!(old.blend, Blend::NONE);
    }

    #[test]
    fn feature_values() {
        let mut log = PurchaseLog::default();
        log.push("o1", "a", "i", 0, 1.0, 10.0);
        log.push("o1", "a", "j", 0, 2.0, 5.0);
        log.push("o2", "a", "i", 100 * DAY, 2.0, 10.0);
        log.push("o3", "a", "k", 180 * DAY, 1.0, 10.0);
        log.push("r1", "a", "i", 181 * DAY, -1.0, 10.0);
        log.push("o4", "a", "i", 500 * DAY, 1.0, 10.0);
        log.push("o5", "b", "i", 150 * DAY, 1.0, 10.0);
        log.push("r2", "c", "i", 150 * DAY, -1.0, 10.0);
        let (customers, x) = features(&log, 200 * DAY, 30.0);
        assert_eq!(
            customers,
            vec![CustomerIdx(0), CustomerIdx(1)],
            "c only returned"
        );
        let get =
            |row: usize, name: &str| x[row][FEATURE_NAMES.iter().position(|n| *n == name).unwrap()];
        assert_eq!(get(0, "days_since_last"), 20.0);
        assert_eq!(get(0, "tenure_days"), 200.0);
        assert_eq!(get(0, "orders"), 3.0);
        assert_eq!(get(0, "purchase_days"), 3.0);
        assert!((get(0, "log_spend") - 50f64.ln_1p()).abs() < 1e-9);
        // Gaps 100 and 80 days.
        assert_eq!(get(0, "gap_mean_days"), 90.0);
        assert_eq!(get(0, "gap_median_days"), 90.0);
        assert!((get(0, "gap_cv") - 10.0 / 90.0).abs() < 1e-12);
        assert_eq!(get(0, "last_gap_days"), 80.0);
        assert!((get(0, "gap_ratio") - 20.0 / 90.0).abs() < 1e-12);
        assert_eq!(get(0, "days_to_due"), 70.0);
        assert_eq!(get(0, "orders_30d"), 1.0);
        assert_eq!(get(0, "orders_90d"), 1.0);
        assert_eq!(get(0, "orders_180d"), 2.0);
        assert_eq!(get(0, "orders_before_180d"), 1.0);
        assert!((get(0, "lines_per_order") - 4.0 / 3.0).abs() < 1e-12);
        assert!((get(0, "units_per_order") - 6.0 / 3.0).abs() < 1e-12);
        assert_eq!(get(0, "distinct_items"), 3.0);
        // o2's "i" was bought before; o1's and o3's lines were new.
        assert_eq!(get(0, "repeat_line_share"), 0.25);
        assert_eq!(get(0, "return_lines"), 1.0);
        assert_eq!(get(0, "days_since_first_return"), 19.0);
        // One purchase: gap statistics are missing, and the median gap
        // counts as one day in `gap_ratio` (`NaN.max(1)` is 1).
        assert!(get(1, "gap_median_days").is_nan() && get(1, "days_to_due").is_nan());
        assert_eq!(get(1, "gap_ratio"), 50.0);
        assert!(get(1, "days_since_first_return").is_nan());
    }

    #[test]
    fn rejects_bad_params_and_one_class() {
        let log = rhythm_log(200, 1);
        let bad = PropensityParams {
            horizon_days: 0.0,
            ..Default::default()
        };
        assert!(matches!(
            bad.fit(&log, 400 * DAY),
            Err(PropensityError::InvalidParam {
                name: "horizon_days",
                ..
            })
        ));
        let bad = PropensityParams {
            training_windows: 0,
            ..Default::default()
        };
        assert!(bad.check().is_err());
        // Calibration window after the data ends: nobody bought.
        assert!(matches!(
            quick().fit(&log, 900 * DAY),
            Err(PropensityError::OneClass { positives: 0, .. })
        ));
        let p: PropensityParams = serde_json::from_str(r#"{"horizon_days": 60}"#).unwrap();
        assert_eq!(p.horizon_days, 60.0);
        assert_eq!(p.training_windows, 6);
    }

    #[test]
    fn auc_known_cases() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.3, 0.4], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.4, 0.3, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &labels), Some(0.5));
        assert_eq!(
            roc_auc(&[0.1, 0.3, 0.3, 0.9], &[false, false, true, true]),
            Some(0.875)
        );
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[], &[]), None);
    }
}
