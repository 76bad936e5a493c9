//! Per-customer transaction summaries at a reference time: the inputs of the
//! BG/NBD, Gamma-Gamma, RFM and lifecycle models.
//!
//! # Conventions
//! * Only lines with `time <= reference` are read.
//! * A **purchase occasion** is, by default ([`OccasionRule::DistinctDays`]),
//!   a distinct UTC calendar day on which the customer has at least one
//!   *positive-value* line: `quantity > 0` and a price that is positive or
//!   unknown (`NaN`). This is the BG/NBD convention (Fader, Hardie & Lee 2005
//!   count CDNOW repeat purchases as distinct days). Free lines (price 0),
//!   negative adjustments and returns never create an occasion. With
//!   [`OccasionRule::DistinctOrders`] every order holding such a line is one
//!   occasion.
//! * Occasion times: with distinct days, the start of the day (and the
//!   reference is truncated to its day too, so recency and age are whole
//!   days); with distinct orders, the earliest positive-value line of the order.
//! * **Frequency** `x` = occasions − 1 (repeat occasions); **recency**
//!   `t_x` = last occasion − first occasion; **age** `T` = reference − first
//!   occasion; both in the configured [`TimeUnit`].
//! * **Monetary** (Gamma-Gamma convention): the mean value of the *repeat*
//!   occasions (the first is excluded), 0 when `x = 0`. An occasion's value is
//!   the gross `Σ quantity · price` of its positive-value lines (returns are a
//!   separate process and only reduce the total spend).
//! * **Total spend**: `Σ quantity · price` over every line read, returns
//!   (negative quantities) included, so it is net of returns. Lines without a
//!   price add 0 and clear [`CustomerSummary::spend_complete`].
//! * **Orders**: distinct orders with a positive-value line.
//!
//! Customers without any occasion up to the reference (e.g. only returns) are
//! left out.

use encore_data::{CustomerIdx, PurchaseLog};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Seconds per day.
pub const DAY_SECS: i64 = 86_400;

/// The unit of recency and age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Days.
    #[default]
    Days,
    /// Weeks of seven days.
    Weeks,
}

impl TimeUnit {
    /// Days in one unit.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
        }
    }

    /// Converts a number of days into this unit.
    pub fn from_days(self, days: f64) -> f64 {
        days / self.days()
    }

    /// Converts a number of seconds into this unit.
    pub fn from_secs(self, secs: i64) -> f64 {
        self.from_days(secs as f64 / DAY_SECS as f64)
    }
}

/// What makes one purchase occasion (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OccasionRule {
    /// Distinct UTC days with a positive-value line (the BG/NBD convention).
    #[default]
    DistinctDays,
    /// Distinct orders with a positive-value line.
    DistinctOrders,
}

/// Settings of [`summarize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SummaryParams {
    /// Unit of recency and age (default days).
    pub unit: TimeUnit,
    /// What counts as a purchase occasion (default distinct days).
    pub occasion: OccasionRule,
}

/// `(x, t_x, T)`: the sufficient statistics of the BG/NBD model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RepeatSummary {
    /// Repeat occasions (occasions − 1).
    pub x: f64,
    /// Time from the first to the last occasion.
    pub t_x: f64,
    /// Time from the first occasion to the reference.
    pub t: f64,
}

impl RepeatSummary {
    /// `(x, t_x, T)` as a tuple, the input format of the BG/NBD fit.
    pub fn tuple(&self) -> (f64, f64, f64) {
        (self.x, self.t_x, self.t)
    }
}

/// One customer's summary; see the module docs for every definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerSummary {
    /// The customer.
    pub customer: CustomerIdx,
    /// Purchase occasions up to the reference (at least 1).
    pub occasions: u32,
    /// Distinct orders with a positive-value line.
    pub orders: u32,
    /// Time of the earliest positive-value line (seconds since the epoch).
    pub first_purchase: i64,
    /// Time of the latest positive-value line (seconds since the epoch).
    pub last_purchase: i64,
    /// `x` = occasions − 1.
    pub frequency: f64,
    /// `t_x`, in `unit`.
    pub recency: f64,
    /// `T`, in `unit`.
    pub age: f64,
    /// Unit of `recency` and `age`.
    pub unit: TimeUnit,
    /// Mean value of the repeat occasions (0 when `frequency` is 0).
    pub monetary: f64,
    /// Net spend (returns subtracted); lines without a price add 0.
    pub total_spend: f64,
    /// False if some line read had no price (so spend figures are lower bounds).
    pub spend_complete: bool,
    /// Lines with a negative quantity.
    pub return_lines: u32,
    /// Median time between consecutive occasions, in days (`None` with one occasion).
    pub median_gap_days: Option<f64>,
}

impl CustomerSummary {
    /// `(x, t_x, T)` in this summary's unit.
    pub fn repeat_summary(&self) -> RepeatSummary {
        RepeatSummary {
            x: self.frequency,
            t_x: self.recency,
            t: self.age,
        }
    }

    /// Days from the last purchase to `reference` (never negative).
    pub fn days_since_last(&self, reference: i64) -> f64 {
        (reference - self.last_purchase).max(0) as f64 / DAY_SECS as f64
    }
}

/// True for a line that can make a purchase occasion.
pub(crate) fn is_positive_value(quantity: f32, price: f32) -> bool {
    quantity > 0.0 && quantity.is_finite() && (price.is_nan() || price > 0.0)
}

/// Median of a non-empty slice (sorted in place).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// Summarises every customer of `log` with an occasion at or before `reference`
/// (seconds since the epoch). The result is sorted by customer index.
pub fn summarize(
    log: &PurchaseLog,
    reference: i64,
    params: &SummaryParams,
) -> Vec<CustomerSummary> {
    let mut lines: Vec<usize> = (0..log.purchases.len())
        .filter(|&i| log.purchases[i].time <= reference)
        .collect();
    lines.sort_by_key(|&i| {
        let p = &log.purchases[i];
        (p.customer, p.time, i)
    });
    let mut out = Vec::new();
    for group in lines.chunk_by(|&a, &b| log.purchases[a].customer == log.purchases[b].customer) {
        if let Some(s) = summarize_one(log, group, reference, params) {
            out.push(s);
        }
    }
    out
}

/// One customer's lines, sorted by time.
fn summarize_one(
    log: &PurchaseLog,
    lines: &[usize],
    reference: i64,
    params: &SummaryParams,
) -> Option<CustomerSummary> {
    let customer = log.purchases[lines[0]].customer;
    let mut total_spend = 0.0_f64;
    let mut spend_complete = true;
    let mut return_lines = 0u32;
    // Occasion key -> (occasion time, value). Keys are days or order indices.
    let mut occasions: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    let mut orders: Vec<u32> = Vec::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for &i in lines {
        let p = &log.purchases[i];
        if p.price.is_finite() {
            total_spend += f64::from(p.quantity) * f64::from(p.price);
        } else {
            spend_complete = false;
        }
        if p.quantity < 0.0 {
            return_lines += 1;
        }
        if !is_positive_value(p.quantity, p.price) {
            continue;
        }
        first = first.min(p.time);
        last = last.max(p.time);
        orders.push(p.order.0);
        let value = if p.price.is_finite() {
            f64::from(p.quantity) * f64::from(p.price)
        } else {
            0.0
        };
        let (key, time) = match params.occasion {
            OccasionRule::DistinctDays => {
                let day = p.time.div_euclid(DAY_SECS);
                (day, day * DAY_SECS)
            }
            OccasionRule::DistinctOrders => (i64::from(p.order.0), p.time),
        };
        let slot = occasions.entry(key).or_insert((time, 0.0));
        slot.0 = slot.0.min(time);
        slot.1 += value;
    }
    if occasions.is_empty() {
        return None;
    }
    orders.sort_unstable();
    orders.dedup();
    let mut occ: Vec<(i64, f64)> = occasions.into_values().collect();
    occ.sort_by_key(|o| o.0);
    let n = occ.len();
    let reference_time = match params.occasion {
        OccasionRule::DistinctDays => reference.div_euclid(DAY_SECS) * DAY_SECS,
        OccasionRule::DistinctOrders => reference,
    };
    let (t0, tn) = (occ[0].0, occ[n - 1].0);
    let monetary = if n > 1 {
        occ[1..].iter().map(|o| o.1).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let median_gap_days = (n > 1).then(|| {
        let mut gaps: Vec<f64> = occ
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) as f64 / DAY_SECS as f64)
            .collect();
        median(&mut gaps)
    });
    Some(CustomerSummary {
        customer,
        occasions: n as u32,
        orders: orders.len() as u32,
        first_purchase: first,
        last_purchase: last,
        frequency: (n - 1) as f64,
        recency: params.unit.from_secs(tn - t0),
        age: params.unit.from_secs(reference_time - t0),
        unit: params.unit,
        monetary,
        total_spend,
        spend_complete,
        return_lines,
        median_gap_days,
    })
}

/// `(x, t_x, T)` per customer from bare `(customer, day)` purchase events,
/// `day` counted in days since the epoch: occasions are distinct days at or
/// before `reference_day`; recency and age are measured in `unit`. Events
/// after `reference_day` are ignored; customers without an event up to it are
/// left out. The result is sorted by customer.
///
/// ```
/// use encore_model::customer::summary::{summarize_day_events, TimeUnit};
///
/// let events = [("a", 0), ("a", 7), ("a", 7), ("b", 14), ("a", 30)];
/// let s = summarize_day_events(events, 21, TimeUnit::Weeks);
/// assert_eq!(s[0].0, "a");
/// assert_eq!(s[0].1.tuple(), (1.0, 1.0, 3.0));
/// assert_eq!(s[1].1.tuple(), (0.0, 0.0, 1.0));
/// ```
pub fn summarize_day_events<K, I>(
    events: I,
    reference_day: i64,
    unit: TimeUnit,
) -> Vec<(K, RepeatSummary)>
where
    K: Ord + Clone,
    I: IntoIterator<Item = (K, i64)>,
{
    let mut days: BTreeMap<K, Vec<i64>> = BTreeMap::new();
    for (k, day) in events {
        if day <= reference_day {
            days.entry(k).or_default().push(day);
        }
    }
    days.into_iter()
        .map(|(k, mut d)| {
            d.sort_unstable();
            d.dedup();
            let (first, last) = (d[0], d[d.len() - 1]);
            let s = RepeatSummary {
                x: (d.len() - 1) as f64,
                t_x: unit.from_days((last - first) as f64),
                t: unit.from_days((reference_day - first) as f64),
            };
            (k, s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = DAY_SECS;

    fn log() -> PurchaseLog {
        let mut log = PurchaseLog::default();
        // Customer a: day 0 (two orders, one day), day 7, a return on day 8,
        // day 21 (free gift only: no occasion), day 28; a line after the reference.
        log.push("o1", "a", "i1", 10 * 3600, 2.0, 5.0);
        log.push("o2", "a", "i2", 15 * 3600, 1.0, 10.0);
        log.push("o3", "a", "i1", 7 * DAY + 60, 1.0, 5.0);
        log.push("o3", "a", "i3", 7 * DAY + 120, 3.0, 1.0);
        log.push("r1", "a", "i1", 8 * DAY, -1.0, 5.0);
        log.push("o4", "a", "i4", 21 * DAY, 1.0, 0.0);
        log.push("o5", "a", "i2", 28 * DAY + 5, 1.0, 12.0);
        log.push("o6", "a", "i2", 50 * DAY, 1.0, 99.0);
        // Customer b: one order without a price.
        log.push("o7", "b", "i1", 14 * DAY, 1.0, f32::NAN);
        // Customer c: only a return.
        log.push("r2", "c", "i1", 3 * DAY, -1.0, 5.0);
        log
    }

    #[test]
    fn distinct_days_in_days() {
        let log = log();
        let reference = 35 * DAY + 3600;
        let s = summarize(&log, reference, &SummaryParams::default());
        assert_eq!(s.len(), 2, "c has no occasion");
        let a = &s[0];
        assert_eq!(a.customer, CustomerIdx(0));
        assert_eq!(a.occasions, 3); // days 0, 7, 28
        assert_eq!(a.orders, 4); // o1, o2, o3, o5
        assert_eq!(a.first_purchase, 10 * 3600);
        assert_eq!(a.last_purchase, 28 * DAY + 5);
        assert_eq!(a.repeat_summary().tuple(), (2.0, 28.0, 35.0));
        // Repeat occasions: day 7 = 5 + 3 = 8, day 28 = 12.
        assert_eq!(a.monetary, 10.0);
        // 10 + 10 + 8 - 5 + 0 + 12.
        assert_eq!(a.total_spend, 35.0);
        assert!(a.spend_complete);
        assert_eq!(a.return_lines, 1);
        // Gaps 7 and 21 days.
        assert_eq!(a.median_gap_days, Some(14.0));
        let b = &s[1];
        assert_eq!(b.repeat_summary().tuple(), (0.0, 0.0, 21.0));
        assert_eq!(b.monetary, 0.0);
        assert_eq!(b.total_spend, 0.0);
        assert!(!b.spend_complete);
        assert_eq!(b.median_gap_days, None);
        assert!(
            (a.days_since_last(reference) - (7.0 * 86_400.0 + 3595.0) / 86_400.0).abs() < 1e-12
        );
    }

    #[test]
    fn distinct_orders_in_weeks() {
        let log = log();
        let params = SummaryParams {
            unit: TimeUnit::Weeks,
            occasion: OccasionRule::DistinctOrders,
        };
        let reference = 35 * DAY;
        let s = summarize(&log, reference, &params);
        let a = &s[0];
        assert_eq!(a.occasions, 4);
        assert_eq!(a.frequency, 3.0);
        let t0 = 10 * 3600;
        assert!((a.recency - (28 * DAY + 5 - t0) as f64 / (7.0 * 86_400.0)).abs() < 1e-12);
        assert!((a.age - (reference - t0) as f64 / (7.0 * 86_400.0)).abs() < 1e-12);
        // Repeat orders o2 = 10, o3 = 8, o5 = 12.
        assert_eq!(a.monetary, 10.0);
        assert_eq!(a.unit, TimeUnit::Weeks);
    }

    #[test]
    fn nothing_before_the_reference() {
        let log = log();
        assert!(summarize(&log, -1, &SummaryParams::default()).is_empty());
        assert!(summarize(&PurchaseLog::default(), 0, &SummaryParams::default()).is_empty());
    }

    #[test]
    fn day_events_helper() {
        let events = vec![(3u32, 10), (3, 12), (3, 12), (1, 5), (3, 40), (2, 41)];
        let s = summarize_day_events(events, 26, TimeUnit::Days);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            (
                1,
                RepeatSummary {
                    x: 0.0,
                    t_x: 0.0,
                    t: 21.0
                }
            )
        );
        assert_eq!(
            s[1],
            (
                3,
                RepeatSummary {
                    x: 1.0,
                    t_x: 2.0,
                    t: 16.0
                }
            )
        );
    }

    #[test]
    fn params_serde() {
        let p: SummaryParams = serde_json::from_str(r#"{"unit":"weeks"}"#).unwrap();
        assert_eq!(p.unit, TimeUnit::Weeks);
        assert_eq!(p.occasion, OccasionRule::DistinctDays);
        assert_eq!(TimeUnit::Weeks.from_days(14.0), 2.0);
        let mut v = vec![3.0, 1.0, 2.0, 10.0];
        assert_eq!(median(&mut v), 2.5);
    }
}
