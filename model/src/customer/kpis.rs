//! Repurchase KPIs from a purchase log: repeat-buyer and repeat-order rates
//! per calendar month and per first-purchase cohort, and cohort retention.
//!
//! # Definitions
//! An **order** counts if it holds at least one line with a positive
//! quantity; its time is the earliest such line, its customer that line's
//! customer. Months are calendar months (`YYYY-MM`) of the order time shifted
//! by `utc_offset_secs`.
//!
//! For a period (a month, or the whole log for [`RepurchaseKpis::overall`]):
//! * `buyers`: customers with an order in the period;
//! * `repeat_buyers`: buyers with 2+ orders in the period;
//! * **user-level repurchase rate** = `repeat_buyers / buyers`;
//! * `repeat_orders`: each buyer's 2nd and later orders in the period
//!   (`orders − buyers`);
//! * **order-level repurchase rate** = `repeat_orders / orders`;
//! * `returning_buyers` / `returning_orders`: buyers whose first-ever order
//!   (in the log) is before the period, and orders that are not their
//!   customer's first-ever order, with `returning_buyer_share` and
//!   `returning_order_share` over buyers and orders.
//!
//! Rates are 0 when their denominator is 0. Every month from the first to
//! the last order appears, even without orders.
//!
//! For a **cohort** (customers whose first order falls in a month `C`):
//! * user-level repurchase rate = members with 2+ orders (ever) / members;
//! * order-level repurchase rate = (orders − members) / orders, over all the
//!   members' orders;
//! * `active[k]`: members with an order in month `C + k`, for `k = 0` up to
//!   the log's last month, and `retention[k] = active[k] / members`
//!   (so `retention[0] = 1`).

use encore_data::PurchaseLog;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Settings of [`repurchase_kpis`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KpiParams {
    /// Offset added to UTC times before cutting months (e.g. 3600 for UTC+1).
    pub utc_offset_secs: i64,
}

/// Why the KPI settings are invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KpiError {
    /// The offset is beyond ±18 hours.
    #[error("invalid utc_offset_secs = {value}: must be within ±64800 (18 hours)")]
    InvalidOffset { value: i64 },
}

/// Repurchase figures of one period (module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodKpis {
    /// `YYYY-MM`, or `all`.
    pub period: String,
    pub buyers: u32,
    pub repeat_buyers: u32,
    pub orders: u32,
    pub repeat_orders: u32,
    pub returning_buyers: u32,
    pub returning_orders: u32,
    /// `repeat_buyers / buyers`.
    pub user_repurchase_rate: f64,
    /// `repeat_orders / orders`.
    pub order_repurchase_rate: f64,
    /// `returning_buyers / buyers`.
    pub returning_buyer_share: f64,
    /// `returning_orders / orders`.
    pub returning_order_share: f64,
}

/// Repurchase figures of one first-purchase cohort (module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortKpis {
    /// The first-purchase month, `YYYY-MM`.
    pub cohort: String,
    pub customers: u32,
    /// Members with 2+ orders.
    pub repeat_customers: u32,
    /// All orders of the members.
    pub orders: u32,
    /// `repeat_customers / customers`.
    pub user_repurchase_rate: f64,
    /// `(orders − customers) / orders`.
    pub order_repurchase_rate: f64,
    /// Members with an order in month `cohort + k`.
    pub active: Vec<u32>,
    /// `active[k] / customers`.
    pub retention: Vec<f64>,
}

/// All repurchase KPIs of a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepurchaseKpis {
    /// The whole log as one period.
    pub overall: PeriodKpis,
    /// One entry per calendar month, in order.
    pub monthly: Vec<PeriodKpis>,
    /// One entry per first-purchase month, in order.
    pub cohorts: Vec<CohortKpis>,
}

/// `(year, month)` of a day count since 1970-01-01 (proleptic Gregorian).
fn year_month(days: i64) -> (i64, i64) {
    // Shift to years starting on March 1st so that the leap day ends a year;
    // 400-year eras have exactly 146,097 days.
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153; // 0 = March
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// Months since year 0 of a time (seconds since the epoch).
fn month_index(secs: i64) -> i64 {
    let (y, m) = year_month(secs.div_euclid(86_400));
    y * 12 + (m - 1)
}

fn month_label(index: i64) -> String {
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

fn ratio(num: u32, den: u32) -> f64 {
    if den == 0 {
        0.0
    } else {
        f64::from(num) / f64::from(den)
    }
}

/// Counts of one period, summed over customers.
#[derive(Debug, Clone, Copy, Default)]
struct PeriodCounts {
    buyers: u32,
    repeat_buyers: u32,
    orders: u32,
    returning_buyers: u32,
    returning_orders: u32,
}

impl PeriodCounts {
    fn add(&mut self, o: &PeriodCounts) {
        self.buyers += o.buyers;
        self.repeat_buyers += o.repeat_buyers;
        self.orders += o.orders;
        self.returning_buyers += o.returning_buyers;
        self.returning_orders += o.returning_orders;
    }

    fn kpis(&self, period: String) -> PeriodKpis {
        PeriodKpis {
            period,
            buyers: self.buyers,
            repeat_buyers: self.repeat_buyers,
            orders: self.orders,
            repeat_orders: self.orders - self.buyers,
            returning_buyers: self.returning_buyers,
            returning_orders: self.returning_orders,
            user_repurchase_rate: ratio(self.repeat_buyers, self.buyers),
            order_repurchase_rate: ratio(self.orders - self.buyers, self.orders),
            returning_buyer_share: ratio(self.returning_buyers, self.buyers),
            returning_order_share: ratio(self.returning_orders, self.orders),
        }
    }
}

/// Every count of [`RepurchaseKpis`] over a set of customers; `span`
/// months from the log's first month `lo`.
struct Counts {
    span: usize,
    overall: PeriodCounts,
    monthly: Vec<PeriodCounts>,
    /// Per cohort: members, members with 2+ orders, their orders.
    cohort: Vec<[u32; 3]>,
    /// `active[cohort][k]`: members of a cohort with an order `k` months
    /// after it; allocated (`span - cohort` long) when the cohort gets its
    /// first member, so a long history with few cohorts stays small.
    active: Vec<Vec<u32>>,
}

impl Counts {
    fn new(span: usize) -> Counts {
        Counts {
            span,
            overall: PeriodCounts::default(),
            monthly: vec![PeriodCounts::default(); span],
            cohort: vec![[0; 3]; span],
            active: vec![Vec::new(); span],
        }
    }

    /// Adds one customer's orders, given by their months (from `lo`) in
    /// time order.
    fn add_customer(&mut self, months: impl Iterator<Item = usize>) {
        let mut first = None;
        let mut n = 0u32;
        // The current run of orders in one month: (month, orders).
        let mut run: Option<(usize, u32)> = None;
        for m in months {
            n += 1;
            let cohort = *first.get_or_insert(m);
            match &mut run {
                Some((month, count)) if *month == m => *count += 1,
                _ => {
                    if let Some((month, count)) = run {
                        self.close_run(cohort, month, count);
                    }
                    run = Some((m, 1));
                }
            }
        }
        let (Some(cohort), Some((month, count))) = (first, run) else {
            return;
        };
        self.close_run(cohort, month, count);
        self.overall.buyers += 1;
        self.overall.repeat_buyers += u32::from(n >= 2);
        self.overall.orders += n;
        self.overall.returning_orders += n - 1;
        let c = &mut self.cohort[cohort];
        c[0] += 1;
        c[1] += u32::from(n >= 2);
        c[2] += n;
    }

    /// `count` orders in `month` of a customer whose first order is in
    /// `cohort`.
    fn close_run(&mut self, cohort: usize, month: usize, count: u32) {
        let p = &mut self.monthly[month];
        p.buyers += 1;
        p.repeat_buyers += u32::from(count >= 2);
        p.orders += count;
        if month > cohort {
            p.returning_buyers += 1;
            p.returning_orders += count;
        } else {
            // All but the first-ever order.
            p.returning_orders += count - 1;
        }
        let row = &mut self.active[cohort];
        if row.is_empty() {
            row.resize(self.span - cohort, 0);
        }
        row[month - cohort] += 1;
    }

    fn merge(mut self, other: Counts) -> Counts {
        self.overall.add(&other.overall);
        for (a, b) in self.monthly.iter_mut().zip(&other.monthly) {
            a.add(b);
        }
        for (a, b) in self.cohort.iter_mut().zip(&other.cohort) {
            for k in 0..3 {
                a[k] += b[k];
            }
        }
        for (a, b) in self.active.iter_mut().zip(other.active) {
            if a.is_empty() {
                *a = b;
            } else {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
        }
        self
    }
}

/// Computes the repurchase KPIs of `log` (module docs).
///
/// Memory is a few bytes an order (its time and customer, and its place in
/// its customer's list) and a few counters a month: nothing is kept per
/// order row or per customer beyond that.
pub fn repurchase_kpis(log: &PurchaseLog, params: &KpiParams) -> Result<RepurchaseKpis, KpiError> {
    if params.utc_offset_secs.abs() > 18 * 3600 {
        return Err(KpiError::InvalidOffset {
            value: params.utc_offset_secs,
        });
    }
    // Order -> time and customer of its earliest positive line, by order
    // index; `NONE` for an order without one.
    const NONE: u32 = u32::MAX;
    let n_orders = log
        .purchases
        .iter()
        .map(|p| p.order.idx() + 1)
        .max()
        .unwrap_or(0);
    let mut time = vec![i64::MAX; n_orders];
    let mut customer = vec![NONE; n_orders];
    for p in &log.purchases {
        if p.quantity.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let o = p.order.idx();
        if customer[o] == NONE || (p.time, p.customer.0) < (time[o], customer[o]) {
            time[o] = p.time;
            customer[o] = p.customer.0;
        }
    }
    // Each customer's orders in time order (ties by order index): a
    // counting sort by customer, then a sort within each customer.
    let n_customers = customer
        .iter()
        .filter(|&&c| c != NONE)
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    let mut start = vec![0usize; n_customers + 1];
    for &c in customer.iter().filter(|&&c| c != NONE) {
        start[c as usize + 1] += 1;
    }
    for c in 0..n_customers {
        start[c + 1] += start[c];
    }
    let mut next = start.clone();
    let mut by_customer = vec![0u32; start[n_customers]];
    for (o, &c) in customer.iter().enumerate() {
        if c != NONE {
            by_customer[next[c as usize]] = o as u32;
            next[c as usize] += 1;
        }
    }
    drop((customer, next));
    let mut slices: Vec<&mut [u32]> = Vec::with_capacity(n_customers);
    let mut rest = by_customer.as_mut_slice();
    for c in 0..n_customers {
        let (head, tail) = rest.split_at_mut(start[c + 1] - start[c]);
        if !head.is_empty() {
            slices.push(head);
        }
        rest = tail;
    }
    drop(start);
    slices
        .par_iter_mut()
        .for_each(|s| s.sort_unstable_by_key(|&o| (time[o as usize], o)));

    let month = |o: u32| month_index(time[o as usize] + params.utc_offset_secs);
    let (Some(lo), Some(hi)) = (
        slices.iter().map(|s| month(s[0])).min(),
        slices.iter().map(|s| month(s[s.len() - 1])).max(),
    ) else {
        return Ok(RepurchaseKpis {
            overall: PeriodCounts::default().kpis("all".to_owned()),
            monthly: Vec::new(),
            cohorts: Vec::new(),
        });
    };
    let span = (hi - lo + 1) as usize;
    // Few accumulators (one per job of at least 1,024 customers): each holds
    // the counters of every month and cohort.
    let counts = slices
        .par_iter()
        .with_min_len(1024)
        .fold(
            || Counts::new(span),
            |mut acc, s| {
                acc.add_customer(s.iter().map(|&o| (month(o) - lo) as usize));
                acc
            },
        )
        .reduce(|| Counts::new(span), Counts::merge);

    let monthly = counts
        .monthly
        .iter()
        .enumerate()
        .map(|(k, p)| p.kpis(month_label(lo + k as i64)))
        .collect();
    let cohorts = counts
        .cohort
        .iter()
        .enumerate()
        .filter(|(_, c)| c[0] > 0)
        .map(|(k, &[members, repeat, orders])| {
            let mut active = counts.active[k].clone();
            active.resize(span - k, 0);
            CohortKpis {
                cohort: month_label(lo + k as i64),
                customers: members,
                repeat_customers: repeat,
                orders,
                user_repurchase_rate: ratio(repeat, members),
                order_repurchase_rate: ratio(orders - members, orders),
                retention: active.iter().map(|&a| ratio(a, members)).collect(),
                active,
            }
        })
        .collect();
    Ok(RepurchaseKpis {
        overall: counts.overall.kpis("all".to_owned()),
        monthly,
        cohorts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// One counted order: `(customer, month, ordinal of the order for its customer)`.
    type OrderRow = (u32, i64, u32);

    fn period_kpis(
        period: String,
        rows: &[OrderRow],
        first_month: &HashMap<u32, i64>,
        start: Option<i64>,
    ) -> PeriodKpis {
        let mut per_customer: HashMap<u32, u32> = HashMap::new();
        for &(c, _, _) in rows {
            *per_customer.entry(c).or_default() += 1;
        }
        let buyers = per_customer.len() as u32;
        let repeat_buyers = per_customer.values().filter(|&&n| n >= 2).count() as u32;
        let orders = rows.len() as u32;
        let repeat_orders = orders - buyers;
        let returning_buyers = match start {
            Some(m) => per_customer.keys().filter(|c| first_month[c] < m).count() as u32,
            None => 0,
        };
        let returning_orders = rows.iter().filter(|r| r.2 > 0).count() as u32;
        PeriodKpis {
            period,
            buyers,
            repeat_buyers,
            orders,
            repeat_orders,
            returning_buyers,
            returning_orders,
            user_repurchase_rate: ratio(repeat_buyers, buyers),
            order_repurchase_rate: ratio(repeat_orders, orders),
            returning_buyer_share: ratio(returning_buyers, buyers),
            returning_order_share: ratio(returning_orders, orders),
        }
    }

    /// The direct computation, one row per order, the oracle of
    /// [`repurchase_kpis`].
    fn reference_kpis(log: &PurchaseLog, params: &KpiParams) -> Result<RepurchaseKpis, KpiError> {
        if params.utc_offset_secs.abs() > 18 * 3600 {
            return Err(KpiError::InvalidOffset {
                value: params.utc_offset_secs,
            });
        }
        // Order -> (time, customer) of its earliest positive line.
        let mut orders: HashMap<u32, (i64, u32)> = HashMap::new();
        for p in &log.purchases {
            if p.quantity.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            let e = orders.entry(p.order.0).or_insert((p.time, p.customer.0));
            if (p.time, p.customer.0) < *e {
                *e = (p.time, p.customer.0);
            }
        }
        // Sorted by (customer, time, order) to number each customer's orders.
        let mut list: Vec<(u32, i64, u32)> = orders.iter().map(|(&o, &(t, c))| (c, t, o)).collect();
        list.sort_unstable();
        let mut rows: Vec<OrderRow> = Vec::with_capacity(list.len());
        let mut first_month: HashMap<u32, i64> = HashMap::new();
        for (k, &(c, t, _)) in list.iter().enumerate() {
            let ordinal = if k > 0 && list[k - 1].0 == c {
                rows[k - 1].2 + 1
            } else {
                0
            };
            let month = month_index(t + params.utc_offset_secs);
            if ordinal == 0 {
                first_month.insert(c, month);
            }
            rows.push((c, month, ordinal));
        }
        let overall = period_kpis("all".to_owned(), &rows, &first_month, None);
        let (Some(lo), Some(hi)) = (
            rows.iter().map(|r| r.1).min(),
            rows.iter().map(|r| r.1).max(),
        ) else {
            return Ok(RepurchaseKpis {
                overall,
                monthly: Vec::new(),
                cohorts: Vec::new(),
            });
        };
        let span = (hi - lo + 1) as usize;
        let mut by_month: Vec<Vec<OrderRow>> = vec![Vec::new(); span];
        for &r in &rows {
            by_month[(r.1 - lo) as usize].push(r);
        }
        let monthly = by_month
            .iter()
            .enumerate()
            .map(|(k, rs)| {
                let m = lo + k as i64;
                period_kpis(month_label(m), rs, &first_month, Some(m))
            })
            .collect();

        // Cohorts: per customer, order count and the set of active months.
        let mut customers: Vec<(u32, i64, u32, Vec<i64>)> = Vec::new(); // (customer, cohort, orders, months)
        for group in rows.chunk_by(|a, b| a.0 == b.0) {
            let mut months: Vec<i64> = group.iter().map(|r| r.1).collect();
            months.sort_unstable();
            months.dedup();
            customers.push((
                group[0].0,
                first_month[&group[0].0],
                group.len() as u32,
                months,
            ));
        }
        let mut cohorts: Vec<CohortKpis> = Vec::new();
        customers.sort_by_key(|c| (c.1, c.0));
        for group in customers.chunk_by(|a, b| a.1 == b.1) {
            let cohort = group[0].1;
            let members = group.len() as u32;
            let orders: u32 = group.iter().map(|c| c.2).sum();
            let repeat = group.iter().filter(|c| c.2 >= 2).count() as u32;
            let mut active = vec![0u32; (hi - cohort + 1) as usize];
            for c in group {
                for &m in &c.3 {
                    active[(m - cohort) as usize] += 1;
                }
            }
            let retention = active.iter().map(|&a| ratio(a, members)).collect();
            cohorts.push(CohortKpis {
                cohort: month_label(cohort),
                customers: members,
                repeat_customers: repeat,
                orders,
                user_repurchase_rate: ratio(repeat, members),
                order_repurchase_rate: ratio(orders - members, orders),
                active,
                retention,
            });
        }
        Ok(RepurchaseKpis {
            overall,
            monthly,
            cohorts,
        })
    }

    use encore_data::timestamp::parse_timestamp;

    fn t(s: &str) -> i64 {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn calendar() {
        assert_eq!(year_month(0), (1970, 1));
        for (s, y, m) in [
            ("2000-02-29", 2000, 2),
            ("2000-03-01", 2000, 3),
            ("1969-12-31", 1969, 12),
            ("1600-01-01", 1600, 1),
            ("2024-12-31", 2024, 12),
            ("2100-03-01", 2100, 3),
        ] {
            assert_eq!(year_month(t(s).div_euclid(86_400)), (y, m), "{s}");
        }
        assert_eq!(month_label(month_index(t("1997-09-30"))), "1997-09");
        // Every day of four centuries maps to a valid month, and months never go back.
        let mut prev = month_index(t("1900-01-01"));
        for d in t("1900-01-01") / 86_400..t("2300-01-01") / 86_400 {
            let (_, m) = year_month(d);
            assert!((1..=12).contains(&m));
            let idx = month_index(d * 86_400);
            assert!(idx == prev || idx == prev + 1);
            prev = idx;
        }
    }

    fn log() -> PurchaseLog {
        let mut log = PurchaseLog::default();
        // a: Jan (2 orders), Mar. b: Jan. c: Feb, Feb. d: only a return in Feb.
        log.push("o1", "a", "x", t("2024-01-05"), 1.0, 1.0);
        log.push("o1", "a", "y", t("2024-01-05"), 2.0, 1.0);
        log.push("o2", "a", "x", t("2024-01-20"), 1.0, 1.0);
        log.push("o3", "b", "x", t("2024-01-31T23:00:00Z"), 1.0, 1.0);
        log.push("o4", "c", "x", t("2024-02-02"), 1.0, 1.0);
        log.push("o5", "c", "x", t("2024-02-10"), 1.0, 1.0);
        log.push("r1", "d", "x", t("2024-02-11"), -1.0, 1.0);
        log.push("o6", "a", "x", t("2024-03-01"), 1.0, 1.0);
        log
    }

    #[test]
    fn monthly_and_overall() {
        let k = repurchase_kpis(&log(), &KpiParams::default()).unwrap();
        let o = &k.overall;
        assert_eq!(
            (o.buyers, o.repeat_buyers, o.orders, o.repeat_orders),
            (3, 2, 6, 3)
        );
        assert_eq!(o.user_repurchase_rate, 2.0 / 3.0);
        assert_eq!(o.order_repurchase_rate, 0.5);
        assert_eq!(o.returning_orders, 3);
        let labels: Vec<&str> = k.monthly.iter().map(|m| m.period.as_str()).collect();
        assert_eq!(labels, ["2024-01", "2024-02", "2024-03"]);
        let jan = &k.monthly[0];
        assert_eq!(
            (jan.buyers, jan.repeat_buyers, jan.orders, jan.repeat_orders),
            (2, 1, 3, 1)
        );
        assert_eq!(jan.user_repurchase_rate, 0.5);
        assert_eq!(jan.returning_buyers, 0);
        assert_eq!(jan.returning_orders, 1);
        let mar = &k.monthly[2];
        assert_eq!(
            (mar.buyers, mar.repeat_buyers, mar.returning_buyers),
            (1, 0, 1)
        );
        assert_eq!(mar.returning_order_share, 1.0);
        assert_eq!(mar.user_repurchase_rate, 0.0);
    }

    #[test]
    fn cohorts_and_retention() {
        let k = repurchase_kpis(&log(), &KpiParams::default()).unwrap();
        assert_eq!(k.cohorts.len(), 2);
        let jan = &k.cohorts[0];
        assert_eq!(jan.cohort, "2024-01");
        assert_eq!((jan.customers, jan.repeat_customers, jan.orders), (2, 1, 4));
        assert_eq!(jan.user_repurchase_rate, 0.5);
        assert_eq!(jan.order_repurchase_rate, 0.5);
        assert_eq!(jan.active, vec![2, 0, 1]);
        assert_eq!(jan.retention, vec![1.0, 0.0, 0.5]);
        let feb = &k.cohorts[1];
        assert_eq!((feb.customers, feb.repeat_customers), (1, 1));
        assert_eq!(feb.retention, vec![1.0, 0.0]);
        let json = serde_json::to_string(&k).unwrap();
        let back: RepurchaseKpis = serde_json::from_str(&json).unwrap();
        assert_eq!(back, k);
    }

    #[test]
    fn offset_moves_month_boundaries() {
        // b's order at 23:00 UTC on Jan 31 is in February at UTC+2.
        let k = repurchase_kpis(
            &log(),
            &KpiParams {
                utc_offset_secs: 7200,
            },
        )
        .unwrap();
        assert_eq!(k.monthly[0].buyers, 1);
        assert_eq!(k.monthly[1].buyers, 2);
        assert!(
            repurchase_kpis(
                &log(),
                &KpiParams {
                    utc_offset_secs: 100_000
                }
            )
            .is_err()
        );
    }

    proptest::proptest! {
        /// The counting implementation gives exactly the direct one's
        /// figures on random logs: orders split across customers, returns,
        /// zero quantities, ties in time, gap months and any offset.
        #[test]
        fn equals_the_direct_computation(
            lines in proptest::collection::vec(
                (0u8..6, 0u8..12, 0i64..240, -1i8..3),
                0..60,
            ),
            offset in -64_800i64..=64_800,
        ) {
            let mut log = PurchaseLog::default();
            let base = t("2023-11-20");
            for &(c, o, day, q) in &lines {
                // Whole days and quarter days, so ties and month ends occur.
                let time = base + day * 21_600;
                log.push(&format!("o{o}"), &format!("c{c}"), "x", time, f32::from(q), 1.0);
            }
            let params = KpiParams { utc_offset_secs: offset };
            proptest::prop_assert_eq!(
                repurchase_kpis(&log, &params).unwrap(),
                reference_kpis(&log, &params).unwrap()
            );
        }
    }

    /// Enough customers for several parallel accumulators, so their merge
    /// is checked against the direct computation too.
    #[test]
    fn many_customers_equal_the_direct_computation() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let mut log = PurchaseLog::default();
        let base = t("2022-12-25");
        for _ in 0..40_000 {
            let c: u32 = rng.gen_range(0..6_000);
            let o: u32 = rng.gen_range(0..8);
            let day: i64 = rng.gen_range(0..400);
            let q: i8 = rng.gen_range(-1..3);
            log.push(
                &format!("c{c}-o{o}"),
                &format!("c{c}"),
                "x",
                base + day * 86_400,
                f32::from(q),
                1.0,
            );
        }
        let params = KpiParams::default();
        let k = repurchase_kpis(&log, &params).unwrap();
        assert!(k.cohorts.len() > 10 && k.overall.buyers > 3_000);
        assert_eq!(k, reference_kpis(&log, &params).unwrap());
    }

    #[test]
    fn empty_and_gap_months() {
        let k = repurchase_kpis(&PurchaseLog::default(), &KpiParams::default()).unwrap();
        assert_eq!(k.overall.buyers, 0);
        assert_eq!(k.overall.user_repurchase_rate, 0.0);
        assert!(k.monthly.is_empty() && k.cohorts.is_empty());
        let mut log = PurchaseLog::default();
        log.push("o1", "a", "x", t("2024-01-05"), 1.0, 1.0);
        log.push("o2", "a", "x", t("2024-04-05"), 1.0, 1.0);
        let k = repurchase_kpis(&log, &KpiParams::default()).unwrap();
        assert_eq!(k.monthly.len(), 4);
        assert_eq!(k.monthly[1].orders, 0);
        assert_eq!(k.monthly[1].order_repurchase_rate, 0.0);
        assert_eq!(k.cohorts[0].active, vec![1, 0, 0, 1]);
    }
}
