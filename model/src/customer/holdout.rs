//! The customer models checked against what customers did after a cutoff:
//! who buys (the buying probability), when (the predicted next purchase
//! date) and when again (the replenishment due dates).
//!
//! [`evaluate_customers`] fits on the purchase lines strictly before the
//! cutoff `c` ([`PurchaseLog::split_at`]), with `c` as the reference time of
//! every model, and compares with the lines at or after `c` (and before an
//! optional end). Nothing after `c` reaches a fit.
//!
//! # Who: the buying probability
//! The customers with a profile at `c` (a purchase before it) are ranked by
//! each score below; a customer is a *buyer* with a line of positive
//! quantity in `[c, c + H)` ([`buyers`]; `H` is the propensity horizon,
//! `customers.propensity.horizon_days`). Each score's ROC AUC ([`roc_auc`]):
//!
//! | score | |
//! |---|---|
//! | `buy_within_30d_probability` | the profile's calibrated probability |
//! | days since last purchase | fewer ranks higher |
//! | number of orders | |
//! | BG/NBD, Pareto/NBD, MBG/NBD expected purchases in `H` | each model as the customer book fitted it (the selection's candidates), on the profile's `(x, t_x, T)` |
//!
//! The probability's Brier score ([`brier_score`]) is set beside the Brier
//! score of one constant, the buying rate of the propensity model's own
//! calibration window (the last `H` days before `c`, known at `c`), and its
//! reliability table ([`reliability_bins`]). Customers without a
//! probability (the classifier could not be trained) have none of these.
//!
//! # When: the predicted next purchase date
//! For every profiled customer who buys at or after `c` (a positive-value
//! line, as in [`super::summary`]), the actual date is the first such line.
//! Errors are absolute differences in days:
//!
//! * Encore: the profile's `predicted_next_purchase` (the date at which the
//!   selected model's expected purchases reach 1).
//! * baseline: last purchase + the customer's own median gap between
//!   purchase occasions (`CustomerSummary::median_gap_days`).
//! * the same two dates moved to `c` when earlier ("from the cutoff"): a
//!   date before `c` cannot come true, and the actual date never is.
//!
//! Both are measured on the same customers. Left out of both, and counted:
//! customers with a single purchase occasion before `c` (they have no own
//! gap, so no baseline), and customers for whom Encore gives no date (the
//! expected purchases stay below 1 within `next_purchase_max_days`).
//!
//! # When again: the replenishment due dates
//! For every (customer, item) pair of the replenishment model at `c` (net
//! quantity positive before `c`) bought again at or after `c` (a line of
//! positive quantity), the actual date is that purchase's occasion time
//! (the start of its day with distinct-day occasions, as the model's last
//! purchase is). Errors of the pair's `due_date` against the baseline "last
//! occasion + the customer's own median interval between occasions of the
//! item", and both moved to `c` when earlier. Pairs with a single occasion
//! before `c` (no own interval) are left out of both and counted.
//!
//! Each table gives the mean and the median absolute error and the ratio of
//! Encore's mean to the baseline's (below 1: Encore is closer). The actual
//! dates are only those that happened before the end of the data, so the
//! errors are bounded by the length of the test window on the actual side;
//! a longer window changes the figures.

use super::book::{CustomerConfig, CustomerConfigError};
use super::propensity::{
    ReliabilityBin, brier_score, buyers, reliability_bins, reliability_lines, roc_auc,
};
use super::select::ModelKind;
use super::summary::{DAY_SECS, OccasionRule, SummaryParams, is_positive_value, median, summarize};
use encore_data::PurchaseLog;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Absolute errors in days over some cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorStats {
    pub mean_days: Option<f64>,
    pub median_days: Option<f64>,
}

impl ErrorStats {
    /// The mean and median of `errors` (`None` when empty).
    pub fn of(mut errors: Vec<f64>) -> ErrorStats {
        if errors.is_empty() {
            return ErrorStats {
                mean_days: None,
                median_days: None,
            };
        }
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        ErrorStats {
            mean_days: Some(mean),
            median_days: Some(median(&mut errors)),
        }
    }
}

/// One date-error table: Encore's dates and the baseline's against the
/// actual dates, on the same cases (customers, or (customer, item) pairs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DateErrors {
    /// Cases that bought at or after the cutoff.
    pub bought_after: usize,
    /// Left out of both: a single occasion before the cutoff (no own gap).
    pub single_occasion: usize,
    /// Left out of both: Encore gives no date (always 0 for pairs).
    pub no_encore_date: usize,
    /// Cases measured (the others).
    pub measured: usize,
    pub encore: ErrorStats,
    pub baseline: ErrorStats,
    /// Both dates moved to the cutoff when earlier.
    pub encore_from_cutoff: ErrorStats,
    pub baseline_from_cutoff: ErrorStats,
}

/// One case: the actual date, Encore's date, the baseline's date (`None`: a
/// single occasion).
type Case = (i64, Option<i64>, Option<i64>);

impl DateErrors {
    fn of(cases: &[Case], cutoff: i64) -> DateErrors {
        let days = |a: i64, b: i64| (a - b).abs() as f64 / DAY_SECS as f64;
        let (mut e, mut b, mut ec, mut bc) = (vec![], vec![], vec![], vec![]);
        let (mut single, mut no_date) = (0, 0);
        for &(actual, encore, baseline) in cases {
            match (encore, baseline) {
                (_, None) => single += 1,
                (None, Some(_)) => no_date += 1,
                (Some(enc), Some(base)) => {
                    e.push(days(enc, actual));
                    b.push(days(base, actual));
                    ec.push(days(enc.max(cutoff), actual));
                    bc.push(days(base.max(cutoff), actual));
                }
            }
        }
        DateErrors {
            bought_after: cases.len(),
            single_occasion: single,
            no_encore_date: no_date,
            measured: e.len(),
            encore: ErrorStats::of(e),
            baseline: ErrorStats::of(b),
            encore_from_cutoff: ErrorStats::of(ec),
            baseline_from_cutoff: ErrorStats::of(bc),
        }
    }

    /// Encore's mean absolute error over the baseline's (`None` if either is
    /// missing or the baseline's is 0); `from_cutoff` for the moved dates.
    pub fn ratio(&self, from_cutoff: bool) -> Option<f64> {
        let (e, b) = if from_cutoff {
            (self.encore_from_cutoff, self.baseline_from_cutoff)
        } else {
            (self.encore, self.baseline)
        };
        let (e, b) = (e.mean_days?, b.mean_days?);
        (b > 0.0).then_some(e / b)
    }

    /// The rows of the table: name (`baseline` for the baseline's), figures,
    /// and for Encore's rows the ratio of the means to the baseline's.
    pub fn rows<'a>(&self, baseline: &'a str) -> [(&'a str, ErrorStats, Option<f64>); 4] {
        [
            ("Encore", self.encore, self.ratio(false)),
            (baseline, self.baseline, None),
            (
                "Encore, from the cutoff",
                self.encore_from_cutoff,
                self.ratio(true),
            ),
            ("baseline, from the cutoff", self.baseline_from_cutoff, None),
        ]
    }

    /// The table as text: a line of counts, then one line a row.
    pub fn describe(&self, what: &str, baseline: &str) -> Vec<String> {
        let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        let r = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
        let mut out = vec![format!(
            "{what}: {} bought after the cutoff, {} measured; left out of both: {} with a single occasion before the cutoff, {} without an Encore date",
            self.bought_after, self.measured, self.single_occasion, self.no_encore_date
        )];
        out.push(format!(
            "  {:<44} {:>9} {:>11} {:>9}",
            "dates", "mean |d|", "median |d|", "ratio"
        ));
        for (name, s, ratio) in self.rows(baseline) {
            out.push(format!(
                "  {name:<44} {:>9} {:>11} {:>9}",
                f(s.mean_days),
                f(s.median_days),
                r(ratio)
            ));
        }
        out
    }
}

/// The ROC AUC of one ranking of the customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingAuc {
    pub score: String,
    /// `None` when the score is missing (its model could not be fitted) or
    /// one class is empty.
    pub auc: Option<f64>,
}

/// Who buys within the horizon, against the buying probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuyingReport {
    pub horizon_days: f64,
    /// Profiled customers ranked, and how many bought within the horizon.
    pub customers: usize,
    pub buyers: usize,
    /// Encore's probability first, then the baselines.
    pub rankings: Vec<RankingAuc>,
    /// Brier score of the probability, and of the calibration window's buying rate.
    pub brier: Option<f64>,
    pub brier_base_rate: Option<f64>,
    pub reliability: Vec<ReliabilityBin>,
    /// Why there is no probability, if there is none.
    pub propensity_error: Option<String>,
}

impl BuyingReport {
    /// The report as lines of text.
    pub fn describe(&self) -> Vec<String> {
        let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.4}"));
        let mut out = vec![format!(
            "buys within {} days: {} customers, {} bought",
            self.horizon_days, self.customers, self.buyers
        )];
        if let Some(e) = &self.propensity_error {
            out.push(format!("  no buying probability: {e}"));
        }
        out.push(format!("  {:<44} {:>8}", "ranking", "ROC AUC"));
        for r in &self.rankings {
            out.push(format!("  {:<44} {:>8}", r.score, f(r.auc)));
        }
        out.push(format!(
            "  Brier score {} (the calibration window's buying rate for everyone: {})",
            f(self.brier),
            f(self.brier_base_rate)
        ));
        if !self.reliability.is_empty() {
            out.extend(reliability_lines(&self.reliability));
        }
        out
    }
}

/// The customer models at a cutoff against what happened after it (module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerHoldout {
    /// The cutoff and the end of the target lines (seconds since the epoch;
    /// `None`: the end of the log).
    pub cutoff: i64,
    pub end: Option<i64>,
    /// The latest target line, if any.
    pub last_target: Option<i64>,
    /// Customers profiled at the cutoff.
    pub customers: usize,
    /// The repeat-buying model the book selected.
    pub selected_model: Option<String>,
    pub buying: BuyingReport,
    pub next_purchase: DateErrors,
    pub replenishment: DateErrors,
}

/// The baseline name of the next-purchase table.
pub const NEXT_PURCHASE_BASELINE: &str = "baseline: last purchase + own median gap";
/// The baseline name of the replenishment table.
pub const REPLENISHMENT_BASELINE: &str = "baseline: last purchase + own median interval";

impl CustomerHoldout {
    /// The report as lines of text.
    pub fn describe(&self) -> Vec<String> {
        let date = encore_data::timestamp::format_date;
        let mut out = vec![format!(
            "customer models fitted before {}, compared with the purchases from then to {} (last one {}); {} customers profiled, repeat-buying model {}",
            date(self.cutoff),
            self.end.map_or_else(|| "the end of the log".into(), date),
            self.last_target.map_or_else(|| "-".into(), date),
            self.customers,
            self.selected_model.as_deref().unwrap_or("none"),
        )];
        out.extend(self.buying.describe());
        out.extend(
            self.next_purchase
                .describe("next purchase date (customers)", NEXT_PURCHASE_BASELINE),
        );
        out.extend(self.replenishment.describe(
            "replenishment due date ((customer, item) pairs)",
            REPLENISHMENT_BASELINE,
        ));
        out
    }
}

/// Fits the customer book and the replenishment model of `config` on the
/// lines of `log` before `cutoff` (reference `cutoff`) and compares them with
/// the lines in `[cutoff, end)` (module docs). `item_category` is indexed like
/// `log.items` (empty: no categories). Fails only on invalid settings.
pub fn evaluate_customers(
    log: &PurchaseLog,
    cutoff: i64,
    end: Option<i64>,
    config: &CustomerConfig,
    item_category: &[Option<String>],
) -> Result<CustomerHoldout, CustomerConfigError> {
    let (before, mut after) = log.split_at(cutoff);
    if let Some(end) = end {
        after.purchases.retain(|p| p.time < end);
    }
    let book = config.build(&before, cutoff)?;
    let replenishment = config.replenishment.fit(&before, item_category, cutoff)?;
    let params = SummaryParams {
        unit: config.time_unit,
        occasion: config.occasion,
    };
    let summaries = summarize(&before, cutoff, &params);
    let models = book.models();

    // Who.
    let h = config.propensity.horizon_days;
    let bought = buyers(
        &after,
        cutoff,
        cutoff + (h * DAY_SECS as f64).round() as i64,
    );
    let has_probability = models.propensity.is_some();
    let mut labels = Vec::new();
    let mut encore = Vec::new();
    let (mut recency, mut orders) = (Vec::new(), Vec::new());
    let mut expected: Vec<Vec<f64>> = vec![Vec::new(); ModelKind::ALL.len()];
    let selection = models.selection.as_ref();
    let fitted: Vec<_> = ModelKind::ALL
        .iter()
        .map(|&k| selection.and_then(|s| s.candidate(k)?.model.as_ref()))
        .collect();
    for s in &summaries {
        let Some(profile) = book.profile(s.customer.0) else {
            continue;
        };
        let p = profile.buy_within_30d_probability;
        if has_probability && p.is_none() {
            continue;
        }
        labels.push(bought[s.customer.idx()]);
        encore.push(p.unwrap_or(f64::NAN));
        recency.push(-s.days_since_last(cutoff));
        orders.push(f64::from(s.orders));
        let (x, t_x, t) = s.repeat_summary().tuple();
        for (k, m) in fitted.iter().enumerate() {
            let v = m.and_then(|m| {
                m.expected_purchases(config.time_unit.from_days(h), x, t_x, t)
                    .ok()
            });
            expected[k].push(v.filter(|v| v.is_finite()).unwrap_or(f64::NAN));
        }
    }
    let auc = |scores: &[f64]| {
        if scores.iter().any(|v| v.is_nan()) {
            None
        } else {
            roc_auc(scores, &labels)
        }
    };
    let mut rankings = vec![
        RankingAuc {
            score: "Encore buy_within_30d_probability".into(),
            auc: auc(&encore),
        },
        RankingAuc {
            score: "days since last purchase".into(),
            auc: auc(&recency),
        },
        RankingAuc {
            score: "number of orders".into(),
            auc: auc(&orders),
        },
    ];
    for (k, values) in ModelKind::ALL.iter().zip(&expected) {
        rankings.push(RankingAuc {
            score: format!("{} expected purchases", k.name()),
            auc: auc(values),
        });
    }
    let buying = BuyingReport {
        horizon_days: h,
        customers: labels.len(),
        buyers: labels.iter().filter(|&&l| l).count(),
        rankings,
        brier: has_probability.then(|| brier_score(&encore, &labels)),
        brier_base_rate: models.propensity.as_ref().map(|m| {
            let c = &m.calibration;
            let rate = c.positives as f64 / c.customers.max(1) as f64;
            brier_score(&vec![rate; labels.len()], &labels)
        }),
        reliability: if has_probability {
            reliability_bins(&encore, &labels)
        } else {
            Vec::new()
        },
        propensity_error: models.propensity_error.clone(),
    };

    // When: the first purchase of each customer at or after the cutoff.
    let mut first: Vec<Option<i64>> = vec![None; log.customers.len()];
    for p in &after.purchases {
        if is_positive_value(p.quantity, p.price) {
            let f = &mut first[p.customer.idx()];
            *f = Some(f.map_or(p.time, |t| t.min(p.time)));
        }
    }
    let customer_cases: Vec<Case> = summaries
        .iter()
        .filter_map(|s| {
            let actual = first[s.customer.idx()]?;
            let profile = book.profile(s.customer.0)?;
            let baseline = s
                .median_gap_days
                .map(|g| s.last_purchase + (g * DAY_SECS as f64).round() as i64);
            Some((actual, profile.predicted_next_purchase, baseline))
        })
        .collect();

    // When again: occasions of each pair before the cutoff and the first after it.
    let rule = config.replenishment.occasion;
    let occasion = |time: i64, order: u32| match rule {
        OccasionRule::DistinctDays => (
            time.div_euclid(DAY_SECS),
            time.div_euclid(DAY_SECS) * DAY_SECS,
        ),
        OccasionRule::DistinctOrders => (i64::from(order), time),
    };
    let bought_item = |q: f32| q > 0.0 && q.is_finite();
    let mut history: HashMap<(u32, u32), Vec<(i64, i64)>> = HashMap::new();
    for p in &before.purchases {
        if bought_item(p.quantity) {
            history
                .entry((p.customer.0, p.item.0))
                .or_default()
                .push(occasion(p.time, p.order.0));
        }
    }
    let mut again: HashMap<(u32, u32), i64> = HashMap::new();
    for p in &after.purchases {
        if bought_item(p.quantity) {
            let t = occasion(p.time, p.order.0).1;
            let slot = again.entry((p.customer.0, p.item.0)).or_insert(t);
            *slot = (*slot).min(t);
        }
    }
    let mut pair_cases: Vec<Case> = Vec::new();
    for c in 0..replenishment.n_customers() as u32 {
        for due in replenishment.scored(c) {
            let Some(&actual) = again.get(&(c, due.item)) else {
                continue;
            };
            let baseline = history
                .get_mut(&(c, due.item))
                .and_then(|occ| own_median_gap(occ.as_mut_slice()))
                .map(|g| due.last_purchase + (g * DAY_SECS as f64).round() as i64);
            pair_cases.push((actual, Some(due.due_date), baseline));
        }
    }

    Ok(CustomerHoldout {
        cutoff,
        end,
        last_target: after.purchases.iter().map(|p| p.time).max(),
        customers: summaries.len(),
        selected_model: models
            .selection
            .as_ref()
            .and_then(|s| s.selected)
            .map(|k| k.name().to_string()),
        buying,
        next_purchase: DateErrors::of(&customer_cases, cutoff),
        replenishment: DateErrors::of(&pair_cases, cutoff),
    })
}

/// The median gap in days between the distinct occasions of `(key, time)`
/// (one occasion a key, at its earliest time); `None` with fewer than two.
fn own_median_gap(occasions: &mut [(i64, i64)]) -> Option<f64> {
    occasions.sort_unstable();
    let mut times: Vec<i64> = Vec::with_capacity(occasions.len());
    let mut last_key = None;
    for &(key, time) in occasions.iter() {
        if last_key != Some(key) {
            times.push(time);
            last_key = Some(key);
        }
    }
    times.sort_unstable();
    let mut gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / DAY_SECS as f64)
        .collect();
    (!gaps.is_empty()).then(|| median(&mut gaps))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = DAY_SECS;

    #[test]
    fn date_errors_count_and_measure_the_same_cases() {
        let cutoff = 100 * DAY;
        let cases: Vec<Case> = vec![
            // Encore 2 days late, the baseline 12 days early (10 from the cutoff).
            (110 * DAY, Some(112 * DAY), Some(100 * DAY - 2 * DAY)),
            // Encore 6 days early, the baseline exact.
            (120 * DAY, Some(114 * DAY), Some(120 * DAY)),
            // Encore 1 day late, the baseline 4 days late.
            (101 * DAY, Some(102 * DAY), Some(105 * DAY)),
            (130 * DAY, None, Some(131 * DAY)),
            (130 * DAY, Some(131 * DAY), None),
            (140 * DAY, None, None),
        ];
        let t = DateErrors::of(&cases, cutoff);
        assert_eq!(
            (
                t.bought_after,
                t.single_occasion,
                t.no_encore_date,
                t.measured
            ),
            (6, 2, 1, 3)
        );
        assert_eq!(t.encore.mean_days, Some(3.0));
        assert_eq!(t.encore.median_days, Some(2.0));
        assert_eq!(t.baseline.mean_days, Some(16.0 / 3.0));
        assert_eq!(t.baseline.median_days, Some(4.0));
        assert_eq!(t.baseline_from_cutoff.mean_days, Some(14.0 / 3.0));
        assert_eq!(t.encore_from_cutoff, t.encore);
        assert!((t.ratio(false).unwrap() - 9.0 / 16.0).abs() < 1e-12);
        assert!((t.ratio(true).unwrap() - 9.0 / 14.0).abs() < 1e-12);
        assert_eq!(t.describe("x", "b").len(), 6);

        let empty = DateErrors::of(&[], cutoff);
        assert_eq!(empty.measured, 0);
        assert_eq!(empty.encore.mean_days, None);
        assert_eq!(empty.ratio(false), None);
    }

    #[test]
    fn own_median_gap_takes_one_occasion_a_key() {
        // Keys 3 (earliest time 10 d), 1 (0 d), 7 (16 d): gaps 10 and 6.
        let mut occ = vec![(3, 12 * DAY), (1, 0), (3, 10 * DAY), (7, 16 * DAY)];
        assert_eq!(own_median_gap(&mut occ), Some(8.0));
        assert_eq!(own_median_gap(&mut [(1, 5 * DAY), (1, 6 * DAY)]), None);
        assert_eq!(own_median_gap(&mut []), None);
    }
}
