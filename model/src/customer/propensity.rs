//! Next-purchase propensity: the probability that a customer buys within the
//! next `H` days (default 30), from a logistic regression on RFM, tenure,
//! trend, rhythm and BG/NBD features.
//!
//! BG/NBD's P(alive) answers "is this customer still a customer?", which is
//! not the same question as "will she buy this month?": a loyal customer who
//! buys every quarter is alive but unlikely to buy in the next 30 days, and
//! recent buying momentum or a habit of buying at a fixed rhythm is invisible
//! to a stationary model. The propensity model learns how much each of these
//! signals matters from the customers' own recent past, so campaigns can
//! target the customers most likely to buy *now*.
//!
//! # Features
//! [`features`] computes, for every customer with a purchase occasion at or
//! before a time `t` (see [`super::summary`]; lines after `t` are never read):
//!
//! | name | definition |
//! |---|---|
//! | `log_days_since_last` | `ln(1 + days since the last positive-value line)` |
//! | `log_tenure_days` | `ln(1 + days since the first positive-value line)` |
//! | `log_orders` | `ln(1 + orders)` |
//! | `log_occasions` | `ln(occasions)` (distinct purchase days) |
//! | `log_net_spend` | signed `ln(1 + |net spend|)` |
//! | `log_order_value` | signed `ln(1 + |net spend / orders|)` |
//! | `log_orders_90d` | `ln(1 + orders in (t − 90 d, t])` |
//! | `orders_trend` | `ln(1 + orders in (t − 90 d, t]) − ln(1 + orders in (t − 180 d, t − 90 d])` |
//! | `log_gap_ratio` | `ln((1 + days since last) / (1 + median gap in days))`, 0 with one occasion |
//! | `one_time` | 1 with a single occasion, else 0 |
//! | `log_rate` | `ln(occasions / (1 + tenure days))` |
//! | `log_return_lines` | `ln(1 + lines with a negative quantity)` |
//! | `p_alive` | BG/NBD P(alive) |
//! | `log_expected_purchases` | `ln(1 + E[purchases in the next H days])` under BG/NBD |
//!
//! The BG/NBD features come from a model fitted on the same data up to `t`
//! (occasions = distinct days, time in weeks: [`fit_bgnbd`]).
//!
//! # Training
//! [`PropensityParams::fit`] with a `reference` time uses `t = reference − H`:
//! features from the lines at or before `t`, label = the customer has a
//! positive-quantity line in `(t, reference]`. Lines after `reference` are
//! ignored, so the model can be fitted on a log that goes on. Features are
//! standardised (means and standard deviations are stored in the model) and
//! a logistic regression with an L2 penalty on the weights (not the
//! intercept) is fitted with linfa-logistic (L-BFGS from zero, deterministic).
//! [`PropensityModel::predict`] then scores the customers at `reference`,
//! i.e. it predicts the `H` days after the data ends.
//!
//! # Implementation notes
//! * linfa-logistic maps the *more frequent* class to its positive label, so
//!   the fitted weights are flipped when "no purchase" is the majority; the
//!   stored weights always give P(buy).
//! * A non-finite feature (e.g. a BG/NBD expectation that failed to evaluate)
//!   is replaced by the training mean, i.e. 0 after standardisation.

use super::bgnbd::{BgNbd, BgNbdError, BgNbdParams};
use super::summary::{CustomerSummary, DAY_SECS, SummaryParams, TimeUnit, summarize};
use crate::learn::logistic::{column_stats, fit_logistic, standardise};
use encore_data::{CustomerIdx, PurchaseLog};
use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Names of the columns of [`features`], in order.
pub const FEATURE_NAMES: [&str; 14] = [
    "log_days_since_last",
    "log_tenure_days",
    "log_orders",
    "log_occasions",
    "log_net_spend",
    "log_order_value",
    "log_orders_90d",
    "orders_trend",
    "log_gap_ratio",
    "one_time",
    "log_rate",
    "log_return_lines",
    "p_alive",
    "log_expected_purchases",
];

/// The unit BG/NBD models passed to [`features`] and
/// [`PropensityModel::predict`] must be fitted in (see [`fit_bgnbd`]).
pub const BGNBD_UNIT: TimeUnit = TimeUnit::Weeks;

/// Length of the two trend windows, in days.
const TREND_WINDOW_DAYS: i64 = 90;

/// Settings of the propensity model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PropensityParams {
    /// Prediction horizon `H` in days (default 30).
    pub horizon_days: f64,
    /// L2 penalty `λ` on the weights: the fit minimises the summed log-loss
    /// plus `λ/2 · ‖w‖²` over standardised features (default 1).
    pub l2: f64,
    /// L-BFGS iterations (default 200).
    pub max_iterations: u64,
    /// L-BFGS stops when the gradient norm falls below this (default 1e-5).
    pub gradient_tolerance: f64,
    /// Settings of the BG/NBD fit behind the `p_alive` and
    /// `log_expected_purchases` features of the training set.
    pub bgnbd: BgNbdParams,
}

impl Default for PropensityParams {
    fn default() -> Self {
        PropensityParams {
            horizon_days: 30.0,
            l2: 1.0,
            max_iterations: 200,
            gradient_tolerance: 1e-5,
            bgnbd: BgNbdParams::default(),
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
    /// No customer has a purchase at or before the training time.
    #[error("no customer has a purchase at or before the training time {t_train}")]
    NoTrainingData { t_train: i64 },
    /// Every training customer has the same label.
    #[error(
        "the training labels have one class only: {positives} of {customers} customers bought in the label window"
    )]
    OneClass { customers: usize, positives: usize },
    /// The BG/NBD model behind the features could not be fitted.
    #[error("BG/NBD features: {0}")]
    BgNbd(BgNbdError),
    /// linfa-logistic refused or failed.
    #[error("logistic regression: {0}")]
    Logistic(String),
}

crate::error_from!(PropensityError { BgNbd(BgNbdError) });

impl PropensityParams {
    /// Checks every setting.
    pub fn check(&self) -> Result<(), PropensityError> {
        let bad = |name, value: String, reason| {
            Err(PropensityError::InvalidParam {
                name,
                value,
                reason,
            })
        };
        if !(self.horizon_days.is_finite() && self.horizon_days > 0.0) {
            return bad(
                "horizon_days",
                self.horizon_days.to_string(),
                "must be a finite positive number of days",
            );
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(
                "l2",
                self.l2.to_string(),
                "must be a finite non-negative number",
            );
        }
        if self.max_iterations == 0 {
            return bad("max_iterations", "0".into(), "must be at least 1");
        }
        if !(self.gradient_tolerance.is_finite() && self.gradient_tolerance > 0.0) {
            return bad(
                "gradient_tolerance",
                self.gradient_tolerance.to_string(),
                "must be a finite positive number",
            );
        }
        self.bgnbd.check()?;
        Ok(())
    }

    /// The horizon in seconds.
    fn horizon_secs(&self) -> i64 {
        (self.horizon_days * DAY_SECS as f64).round() as i64
    }

    /// Trains on `log` with labels from the last `horizon_days` before
    /// `reference` (module docs); lines after `reference` are ignored.
    pub fn fit(
        &self,
        log: &PurchaseLog,
        reference: i64,
    ) -> Result<PropensityModel, PropensityError> {
        self.check()?;
        let t_train = reference - self.horizon_secs();
        let summaries = summarize(log, t_train, &bgnbd_summary_params());
        if summaries.is_empty() {
            return Err(PropensityError::NoTrainingData { t_train });
        }
        let bgnbd = fit_bgnbd_on(&summaries, &self.bgnbd)?;
        let (customers, x) = features_of(log, t_train, &summaries, &bgnbd, self.horizon_days);
        let bought = buyers(log, t_train + 1, reference + 1);
        let y: Array1<bool> = customers.iter().map(|c| bought[c.idx()]).collect();
        let positives = y.iter().filter(|&&b| b).count();
        if positives == 0 || positives == y.len() {
            return Err(PropensityError::OneClass {
                customers: y.len(),
                positives,
            });
        }

        let (means, stds) = column_stats(x.view());
        let z = standardise(x.view(), &means, &stds);
        let (weights, intercept) = fit_logistic(
            z.clone(),
            y.clone(),
            self.l2,
            self.max_iterations,
            self.gradient_tolerance,
        )
        .map_err(PropensityError::Logistic)?;

        let mut model = PropensityModel {
            feature_names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
            means,
            stds,
            weights,
            intercept,
            horizon_days: self.horizon_days,
            reference,
            training_time: t_train,
            training_customers: y.len(),
            training_positives: positives,
            training_auc: None,
            bgnbd_at_training: bgnbd,
        };
        let scores = model.score_standardised(z.view());
        let labels: Vec<bool> = y.to_vec();
        model.training_auc = roc_auc(&scores, &labels);
        Ok(model)
    }
}

/// A fitted propensity model (plain data, serialisable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropensityModel {
    /// Feature names, [`FEATURE_NAMES`] at fitting time.
    pub feature_names: Vec<String>,
    /// Training mean of each feature.
    pub means: Vec<f64>,
    /// Training standard deviation of each feature (1 for a constant feature).
    pub stds: Vec<f64>,
    /// Weight of each standardised feature in the log-odds of buying.
    pub weights: Vec<f64>,
    /// Intercept of the log-odds of buying.
    pub intercept: f64,
    /// Horizon `H` in days.
    pub horizon_days: f64,
    /// The reference time given to [`PropensityParams::fit`] (end of the label window).
    pub reference: i64,
    /// `reference − H`: the time the training features were computed at.
    pub training_time: i64,
    /// Customers in the training set.
    pub training_customers: usize,
    /// Training customers who bought in the label window (the class balance
    /// is `training_positives / training_customers`).
    pub training_positives: usize,
    /// ROC AUC on the training set (`None` if it could not be computed).
    pub training_auc: Option<f64>,
    /// The BG/NBD model fitted at `training_time` for the training features.
    pub bgnbd_at_training: BgNbd,
}

impl PropensityModel {
    /// Probability of buying within the horizon after `reference`, per
    /// customer index with a purchase occasion at or before `reference`
    /// (others, including customers with only returns, `None`). `bgnbd` is
    /// the model fitted at `reference`, in [`BGNBD_UNIT`] ([`fit_bgnbd`]).
    /// The result has length `log.customers.len()`.
    pub fn predict(&self, log: &PurchaseLog, reference: i64, bgnbd: &BgNbd) -> Vec<Option<f64>> {
        let (customers, x) = features(log, reference, bgnbd, self.horizon_days);
        let z = standardise(x.view(), &self.means, &self.stds);
        let scores = self.score_standardised(z.view());
        let mut out = vec![None; log.customers.len()];
        for (c, p) in customers.iter().zip(scores) {
            out[c.idx()] = Some(p);
        }
        out
    }

    /// Probabilities for rows of raw (unstandardised) features in the order
    /// of [`FEATURE_NAMES`].
    pub fn predict_features(&self, x: ArrayView2<'_, f64>) -> Vec<f64> {
        let z = standardise(x, &self.means, &self.stds);
        self.score_standardised(z.view())
    }

    /// The weights by feature name, largest magnitude first.
    pub fn weights_by_name(&self) -> Vec<(&str, f64)> {
        let mut w: Vec<(&str, f64)> = self
            .feature_names
            .iter()
            .map(String::as_str)
            .zip(self.weights.iter().copied())
            .collect();
        w.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        w
    }

    fn score_standardised(&self, z: ArrayView2<'_, f64>) -> Vec<f64> {
        z.rows()
            .into_iter()
            .map(|row| {
                let eta = self.intercept
                    + row
                        .iter()
                        .zip(&self.weights)
                        .map(|(v, w)| v * w)
                        .sum::<f64>();
                sigmoid(eta)
            })
            .collect()
    }
}

fn sigmoid(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

/// The summary settings of the BG/NBD features: distinct days, in [`BGNBD_UNIT`].
fn bgnbd_summary_params() -> SummaryParams {
    SummaryParams {
        unit: BGNBD_UNIT,
        ..Default::default()
    }
}

fn fit_bgnbd_on(summaries: &[CustomerSummary], params: &BgNbdParams) -> Result<BgNbd, BgNbdError> {
    let data: Vec<(f64, f64, f64)> = summaries
        .iter()
        .map(|s| s.repeat_summary().tuple())
        .collect();
    params.fit(&data)
}

/// Fits the BG/NBD model the features need on the lines of `log` at or
/// before `reference` (occasions = distinct days, time in [`BGNBD_UNIT`]).
pub fn fit_bgnbd(
    log: &PurchaseLog,
    reference: i64,
    params: &BgNbdParams,
) -> Result<BgNbd, BgNbdError> {
    fit_bgnbd_on(&summarize(log, reference, &bgnbd_summary_params()), params)
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

/// The feature matrix at `reference` (module docs): one row per customer
/// with a purchase occasion at or before `reference`, sorted by customer
/// index, columns as [`FEATURE_NAMES`]. `bgnbd` must be fitted in
/// [`BGNBD_UNIT`]; `horizon_days` is the horizon of the expected purchases.
pub fn features(
    log: &PurchaseLog,
    reference: i64,
    bgnbd: &BgNbd,
    horizon_days: f64,
) -> (Vec<CustomerIdx>, Array2<f64>) {
    let summaries = summarize(log, reference, &bgnbd_summary_params());
    features_of(log, reference, &summaries, bgnbd, horizon_days)
}

fn features_of(
    log: &PurchaseLog,
    reference: i64,
    summaries: &[CustomerSummary],
    bgnbd: &BgNbd,
    horizon_days: f64,
) -> (Vec<CustomerIdx>, Array2<f64>) {
    // Distinct orders with a positive-value line in the two trend windows.
    let window = TREND_WINDOW_DAYS * DAY_SECS;
    let mut recent: HashSet<(u32, u32)> = HashSet::new();
    let mut before: HashSet<(u32, u32)> = HashSet::new();
    for p in &log.purchases {
        let positive_value =
            p.quantity > 0.0 && p.quantity.is_finite() && (p.price.is_nan() || p.price > 0.0);
        if !positive_value || p.time > reference || p.time <= reference - 2 * window {
            continue;
        }
        let key = (p.customer.0, p.order.0);
        if p.time > reference - window {
            recent.insert(key);
        } else {
            before.insert(key);
        }
    }
    let count = |set: &HashSet<(u32, u32)>| {
        let mut n = vec![0u32; log.customers.len()];
        for &(c, _) in set {
            n[c as usize] += 1;
        }
        n
    };
    let (recent, before) = (count(&recent), count(&before));

    let horizon = BGNBD_UNIT.from_days(horizon_days);
    let mut x = Array2::zeros((summaries.len(), FEATURE_NAMES.len()));
    let mut customers = Vec::with_capacity(summaries.len());
    for (mut row, s) in x.rows_mut().into_iter().zip(summaries) {
        let c = s.customer.idx();
        let since_last = s.days_since_last(reference);
        let tenure = (reference - s.first_purchase).max(0) as f64 / DAY_SECS as f64;
        let orders = f64::from(s.orders);
        let occasions = f64::from(s.occasions);
        let rs = s.repeat_summary();
        let expected = bgnbd
            .expected_purchases(horizon, rs.x, rs.t_x, rs.t)
            .unwrap_or(f64::NAN);
        let values = [
            since_last.ln_1p(),
            tenure.ln_1p(),
            orders.ln_1p(),
            occasions.ln(),
            signed_ln_1p(s.total_spend),
            signed_ln_1p(s.total_spend / orders.max(1.0)),
            f64::from(recent[c]).ln_1p(),
            f64::from(recent[c]).ln_1p() - f64::from(before[c]).ln_1p(),
            s.median_gap_days
                .map_or(0.0, |gap| since_last.ln_1p() - gap.ln_1p()),
            if s.occasions == 1 { 1.0 } else { 0.0 },
            (occasions / (1.0 + tenure)).ln(),
            f64::from(s.return_lines).ln_1p(),
            bgnbd.p_alive(rs.x, rs.t_x, rs.t),
            expected.ln_1p(),
        ];
        for (slot, v) in row.iter_mut().zip(values) {
            *slot = v;
        }
        customers.push(s.customer);
    }
    (customers, x)
}

fn signed_ln_1p(v: f64) -> f64 {
    v.signum() * v.abs().ln_1p()
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

    const DAY: i64 = DAY_SECS;

    #[test]
    fn auc_known_cases() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.3, 0.4], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.4, 0.3, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &labels), Some(0.5));
        // One positive above both negatives, one tied with one of them:
        // pairs (1 + 1 + 1 + 0.5) / 4.
        assert_eq!(
            roc_auc(&[0.1, 0.3, 0.3, 0.9], &[false, false, true, true]),
            Some(0.875)
        );
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[], &[]), None);
    }

    /// A log where "regulars" buy every 10 to 12 days and "lapsed"
    /// customers stopped long ago; first purchases are spread over 200 days.
    fn log() -> PurchaseLog {
        let mut log = PurchaseLog::default();
        let mut order = 0;
        let mut buy = |log: &mut PurchaseLog, customer: &str, day: i64| {
            order += 1;
            log.push(
                &format!("o{order}"),
                customer,
                "i",
                day * DAY + 3600,
                1.0,
                5.0,
            );
        };
        for k in 0..12 {
            let c = format!("regular{k}");
            let mut day = 17 * k;
            while day < 400 {
                buy(&mut log, &c, day);
                day += 10 + k % 3;
            }
        }
        for k in 0..12 {
            let c = format!("lapsed{k}");
            for d in [17 * k, 17 * k + 40, 17 * k + 90] {
                buy(&mut log, &c, d);
            }
        }
        for k in 0..6 {
            // Customers who look like the lapsed ones until they come back
            // in the label window.
            let c = format!("back{k}");
            for d in [34 * k + 8, 34 * k + 48, 34 * k + 98, 375 + k] {
                buy(&mut log, &c, d);
            }
        }
        // A customer with only a return, and one first seen after the reference.
        log.push("r1", "returner", "i", 5 * DAY, -1.0, 5.0);
        log.push("late", "newcomer", "i", 500 * DAY, 1.0, 5.0);
        log
    }

    #[test]
    fn fits_predicts_and_round_trips() {
        let log = log();
        let reference = 400 * DAY;
        let params = PropensityParams::default();
        let model = params.fit(&log, reference).unwrap();
        assert_eq!(model.training_time, reference - 30 * DAY);
        assert_eq!(model.feature_names.len(), model.weights.len());
        assert_eq!(model.training_customers, 30);
        // 12 regulars + 6 returning customers bought in the label window.
        assert_eq!(model.training_positives, 18);
        // Regulars outrank everyone; returning customers look like lapsed
        // ones (only their slightly longer tenure sets them apart).
        assert!(model.training_auc.unwrap() > 0.8, "{model:?}");
        assert_eq!(params.fit(&log, reference).unwrap(), model, "deterministic");

        let bgnbd = fit_bgnbd(&log, reference, &params.bgnbd).unwrap();
        let p = model.predict(&log, reference, &bgnbd);
        assert_eq!(p.len(), log.customers.len());
        let id = |s: &str| log.customers.get(s).unwrap() as usize;
        assert_eq!(p[id("returner")], None, "only a return");
        assert_eq!(
            p[id("newcomer")],
            None,
            "first purchase after the reference"
        );
        let regular = p[id("regular0")].unwrap();
        let lapsed = p[id("lapsed0")].unwrap();
        assert!(regular > 0.5 && lapsed < 0.5, "{regular} {lapsed}");

        let json = serde_json::to_string(&model).unwrap();
        let back: PropensityModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, model);
        assert_eq!(back.predict(&log, reference, &bgnbd), p);
    }

    #[test]
    fn rejects_bad_params_and_one_class() {
        let log = log();
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
            l2: -1.0,
            ..Default::default()
        };
        assert!(bad.check().is_err());
        // Nobody before the training time.
        assert_eq!(
            PropensityParams::default().fit(&log, 0),
            Err(PropensityError::NoTrainingData { t_train: -30 * DAY })
        );
        // Label window after the data ends: nobody bought.
        assert!(matches!(
            PropensityParams::default().fit(&log, 800 * DAY),
            Err(PropensityError::OneClass { positives: 0, .. })
        ));
        let p: PropensityParams = serde_json::from_str(r#"{"horizon_days": 60}"#).unwrap();
        assert_eq!(p.horizon_days, 60.0);
        assert_eq!(p.l2, 1.0);
    }

    #[test]
    fn feature_values() {
        let mut log = PurchaseLog::default();
        log.push("o1", "a", "i", 0, 1.0, 10.0);
        log.push("o2", "a", "i", 100 * DAY, 2.0, 10.0);
        log.push("o3", "a", "i", 180 * DAY, 1.0, 10.0);
        log.push("r1", "a", "i", 181 * DAY, -1.0, 10.0);
        log.push("o4", "a", "i", 500 * DAY, 1.0, 10.0);
        let bgnbd = BgNbd::new(0.24, 4.4, 0.79, 2.4).unwrap();
        let (customers, x) = features(&log, 200 * DAY, &bgnbd, 30.0);
        assert_eq!(customers, vec![CustomerIdx(0)]);
        let row = x.row(0);
        let get = |name: &str| row[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()];
        assert!((get("log_days_since_last") - 20f64.ln_1p()).abs() < 1e-12);
        assert!((get("log_tenure_days") - 200f64.ln_1p()).abs() < 1e-12);
        assert!((get("log_orders") - 3f64.ln_1p()).abs() < 1e-12);
        assert!((get("log_net_spend") - 30f64.ln_1p()).abs() < 1e-12);
        // Orders in (110, 200]: o3; in (20, 110]: o2.
        assert!((get("log_orders_90d") - 1f64.ln_1p()).abs() < 1e-12);
        assert_eq!(get("orders_trend"), 0.0);
        // Gaps 100 and 80 days: median 90.
        assert!((get("log_gap_ratio") - (21f64 / 91.0).ln()).abs() < 1e-12);
        assert_eq!(get("one_time"), 0.0);
        assert!((get("log_return_lines") - 1f64.ln_1p()).abs() < 1e-12);
        let p_alive = bgnbd.p_alive(2.0, 180.0 / 7.0, 200.0 / 7.0);
        assert!((get("p_alive") - p_alive).abs() < 1e-12);
        assert!(x.iter().all(|v| v.is_finite()));
    }
}
