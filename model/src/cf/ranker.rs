//! A learned re-ranker for the "for you" list: candidates from the
//! repeat-aware model, from ALS and from popularity, scored by gradient-boosted
//! trees (or a logistic regression) on features of the customer's own history
//! and of the item, trained on a cut of the training data itself.
//!
//! Why: TIFU-KNN ranks the customer's own items well and ALS finds new ones,
//! but a fixed blend cannot tell a weekly staple bought three weeks ago from
//! a one-off bought once; how often the customer's past items come back, how
//! long ago they were bought relative to the customer's rhythm, and how
//! often *anyone* buys the item twice decide more than any single score.
//!
//! # Training (stacking on an inner split)
//! [`RankerParams::fit`] never looks past the log it is given. It cuts that
//! log once more:
//! - `label_days > 0` (default 30): purchases in the last `label_days` days
//!   of the log are the labels, the earlier ones the history;
//! - `label_days = 0`: each customer's last order is the label, the earlier
//!   orders the history (customers with one order only give no rows).
//!
//! With `label_cuts = n` (default 2) the rows of `n` such splits are
//! stacked: the second labels the window (or order) before the first, on the
//! history before it, and so on; each cut fits its own base models. (In the
//! next-order mode a customer with too few orders for cut `k` keeps all of
//! them in that cut's history and gives no rows there.)
//!
//! The base models are fitted on the history part by the caller's `build`
//! function; every candidate of every labelled customer becomes one row,
//! positive when the item was bought in the label part. The learner is
//! boosted trees ([`crate::learn::boosting`], default) or a logistic regression
//! on standardised features (linfa-logistic, L2 penalty `l2`). At serving
//! time the same features are computed from base models fitted on the whole
//! log ([`Signals`]), and candidates are ranked by the learner's score.
//!
//! The score is a probability in `(0, 1)` for the training cut, but it is for
//! ranking only: count-like features (buyers, neighbour scores) are larger on
//! the whole log than on the shorter inner history, so scores are not
//! calibrated purchase probabilities at serving time.
//!
//! # Features
//! For customer `c` and candidate item `i`, with `n_c` orders of `c`, `o_ci`
//! the orders of `c` holding `i`, `d_ci` the days since `c` last bought `i`
//! and `g_c` the customer's mean days between orders, in the column order of
//! [`FEATURE_NAMES`]:
//! - TIFU own and neighbour scores, `ln(1 + o_ci)`, `o_ci / n_c`, bought
//!   before, `ln(1 + d_ci / g_c)` and `ln(1 + d_ci)` (bought items only);
//! - the ALS score standardised over the catalog for `c`, `ln(1 + Σ
//!   co-purchase similarity)` with `c`'s items, `ln(1 + recent buyers)`,
//!   `ln(1 + buyers)`, the item's repeat rate (share of its buyers who bought
//!   it in two or more orders, shrunk towards the global share with 5
//!   pseudo-buyers) alone and times "bought before", and the ALS score times
//!   "never bought";
//! - in the last order, how many of the last 5 orders hold `i` over 5 (a
//!   customer with fewer orders stays below 1), days
//!   since `i` against `c`'s own mean days between orders of `i`, bought in
//!   exactly one order, "bought before" times `c`'s repeat share (share of
//!   `c`'s items bought in two or more orders), `o_ci` over the orders since
//!   `c` first bought `i`, `ln(1 +` orders since `c` last bought `i)`, and
//!   the number of `c`'s newest orders in a row holding `i`;
//! - the candidate's rank in `c`'s TIFU head (the `candidates_repeat` best
//!   TIFU items of the whole catalog, available or not; `ln(1 + rank)`, 0 =
//!   best, the head's length when outside it) and its TIFU score over the
//!   best one: the TIFU evidence on a scale shared by every customer, which a
//!   pointwise learner cannot derive from raw scores whose size differs
//!   between customers;
//! - about `c`, so that trees can condition the rest on it: `ln(1 + n_c)`,
//!   `c`'s repeat share, and `ln(1 +` mean items per order`)`.
//! - how often an order holding `i` is followed by another one holding it:
//!   over every customer's orders (the item's next-order rate, shrunk
//!   towards the share over all items with 5 pseudo-orders), and over `c`'s
//!   own (shrunk towards the item's rate with 2 pseudo-orders; 0 when never
//!   bought). Only orders with a later order of the same customer count.
//!   Where the repeat rate says whether buyers ever come back for `i`, these
//!   say whether they come back in the very next order.
//!
//! Everything is deterministic: the same log, base models and parameters
//! give the same weights and lists.

use crate::cf::als::{Als, SCORE_BLOCK};
use crate::cf::item_knn::CoPurchase;
use crate::cf::tifu::TifuKnn;
use crate::learn::boosting::{Boosted, BoostingParams};
use crate::learn::logistic::{column_stats, fit_logistic, standardise};
use crate::setting::{InvalidSetting, at_least_one};
use crate::topk::{rank_order, top_k, top_k_dense};
use encore_data::{ByCustomer, PurchaseLog};
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

const DAY: f64 = 86_400.0;

/// Names of the features, in column order (module docs).
pub const FEATURE_NAMES: [&str; 29] = [
    "tifu_own",
    "tifu_neighbours",
    "ln_orders_with_item",
    "share_of_orders_with_item",
    "bought_before",
    "ln_days_since_item_over_gap",
    "ln_days_since_item",
    "als_z",
    "ln_copurchase",
    "ln_recent_buyers",
    "ln_buyers",
    "item_repeat_rate",
    "bought_x_repeat_rate",
    "never_bought_x_als_z",
    "in_last_order",
    "share_of_last_5_orders",
    "ln_days_since_item_over_item_interval",
    "bought_once",
    "bought_x_customer_repeat_share",
    "share_of_orders_since_first",
    "ln_orders_since_item",
    "streak_of_last_orders",
    "ln_tifu_rank",
    "tifu_over_best",
    "ln_customer_orders",
    "customer_repeat_share",
    "ln_customer_basket_size",
    "item_next_order_rate",
    "own_next_order_rate",
];
const N_FEATURES: usize = FEATURE_NAMES.len();

/// Pseudo-buyers of the repeat-rate shrinkage.
const REPEAT_PRIOR_BUYERS: f64 = 5.0;
/// Pseudo-orders of the item's next-order rate shrinkage.
const NEXT_PRIOR: f64 = 5.0;
/// Pseudo-orders of a customer's own next-order rate shrinkage.
const OWN_NEXT_PRIOR: f64 = 2.0;

/// The learner of the re-ranker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Learner {
    /// Logistic regression (linfa-logistic) on standardised features.
    Logistic,
    /// Gradient-boosted trees ([`crate::learn::boosting`]).
    #[default]
    BoostedTrees,
}

/// Settings of the re-ranker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankerParams {
    /// Candidates from the repeat-aware (TIFU-KNN) scores.
    pub candidates_repeat: usize,
    /// Candidates from ALS among items the customer never bought.
    pub candidates_new: usize,
    /// Candidates from recent popularity.
    pub candidates_popular: usize,
    /// Label part of the inner split: 0 for each customer's last order,
    /// otherwise the last `label_days` days of the log.
    pub label_days: f64,
    /// Inner splits stacked into the training rows: the first labels the
    /// last order (or window), the next one the order (window) before it on
    /// the history before that, and so on.
    pub label_cuts: usize,
    /// Window of the "recent buyers" feature, in days before the log's end.
    pub recent_days: f64,
    /// Which learner scores the candidates.
    pub learner: Learner,
    /// Settings of the boosted trees.
    pub boosting: BoostingParams,
    /// L2 penalty of the logistic regression (standardised features).
    pub l2: f64,
    pub max_iterations: u64,
    /// At most this many labelled customers per cut train the learner (every
    /// n-th one is kept beyond it). This bounds the training rows, held in
    /// memory at 8 bytes a feature (233 bytes a row with its label):
    /// customers x cuts x candidates (at most 80), so at most about 370 MB at
    /// the defaults on a large shop.
    pub max_training_customers: usize,
}

impl Default for RankerParams {
    /// Chosen on the validation split of Online Retail (the 30 days before
    /// 2011-10-01; `encore-train evaluate --score-validation`): a 30-day label
    /// window beat the next order and 60 or 90 days, two stacked cuts beat
    /// one. On next-basket data (Instacart) the next order (`label_days = 0`)
    /// validated better; `encore-train tune` searches both.
    fn default() -> Self {
        RankerParams {
            candidates_repeat: 50,
            candidates_new: 20,
            candidates_popular: 10,
            label_days: 30.0,
            label_cuts: 2,
            recent_days: 90.0,
            learner: Learner::BoostedTrees,
            boosting: BoostingParams::default(),
            l2: 1.0,
            max_iterations: 200,
            max_training_customers: 10_000,
        }
    }
}

/// Why the re-ranker could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum RankerError {
    #[error("invalid re-ranker parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("the re-ranker's inner split has no labelled customer: {0}")]
    NoLabels(String),
    #[error("fitting the re-ranker's base models on its inner split: {0}")]
    Base(String),
    #[error("the re-ranker's training rows are all {0}")]
    OneClass(&'static str),
    #[error("logistic regression: {0}")]
    Logistic(String),
    #[error("boosted trees: {0}")]
    Boosting(String),
}

crate::setting::invalid_setting_from!(RankerError);

/// The base models the features are computed from, fitted on one log.
pub struct BaseModels {
    pub tifu: TifuKnn,
    pub als: Als,
    pub copurchase: CoPurchase,
}

impl RankerParams {
    pub fn check(&self) -> Result<(), RankerError> {
        let bad =
            |name, value: String, reason| Err(InvalidSetting::new(name, value, reason).into());
        if self.candidates_repeat + self.candidates_new + self.candidates_popular == 0 {
            return bad("candidates_repeat", "0".into(), "no candidate source left");
        }
        if !(self.label_days >= 0.0 && self.label_days.is_finite()) {
            return bad(
                "label_days",
                self.label_days.to_string(),
                "must be finite and >= 0",
            );
        }
        if !(self.recent_days > 0.0 && self.recent_days.is_finite()) {
            return bad(
                "recent_days",
                self.recent_days.to_string(),
                "must be finite and > 0",
            );
        }
        if !(self.l2 > 0.0 && self.l2.is_finite()) {
            return bad("l2", self.l2.to_string(), "must be finite and > 0");
        }
        at_least_one(&[("label_cuts", self.label_cuts)])?;
        self.boosting.check()?;
        at_least_one(&[("max_iterations", self.max_iterations)])?;
        at_least_one(&[("max_training_customers", self.max_training_customers)])?;
        Ok(())
    }

    /// Trains the learner on an inner split of `log` (module docs);
    /// `build` fits the base models on the history part of that split. Its
    /// second argument lists the customers whose features will be computed
    /// (ascending): base models may skip work for the others.
    pub fn fit(
        &self,
        log: &PurchaseLog,
        available: impl Fn(u32) -> bool + Sync,
        build: impl Fn(&PurchaseLog, &[u32]) -> Result<BaseModels, String>,
    ) -> Result<Ranker, RankerError> {
        self.check()?;
        let mut rows: Vec<(Vec<[f64; N_FEATURES]>, Vec<bool>)> = Vec::new();
        for skip in 0..self.label_cuts {
            let (history, labels) = inner_split(log, self.label_days, skip);
            let labelled: Vec<u32> = (0..labels.len() as u32)
                .filter(|&c| !labels[c as usize].is_empty())
                .collect();
            if labelled.is_empty() {
                continue;
            }
            let stride = labelled.len().div_ceil(self.max_training_customers);
            let kept: Vec<u32> = labelled.iter().step_by(stride).copied().collect();
            let base = build(&history, &kept).map_err(RankerError::Base)?;
            let signals = Signals::new(&history, base.tifu, &base.als, &base.copurchase, self);
            rows.par_extend(kept.par_chunks(SCORE_BLOCK).flat_map_iter(|some| {
                signals
                    .candidate_features_of(some, &available)
                    .into_iter()
                    .zip(some)
                    .map(|((items, x), &c)| {
                        let y = items
                            .iter()
                            .map(|i| labels[c as usize].contains(i))
                            .collect();
                        (x, y)
                    })
            }));
        }
        if rows.is_empty() {
            return Err(RankerError::NoLabels(if self.label_days > 0.0 {
                format!(
                    "no customer bought both in the last {} days of the data and before them",
                    self.label_days
                )
            } else {
                "no customer has two orders".into()
            }));
        }
        let training_customers = rows.len();
        let n_rows: usize = rows.iter().map(|r| r.0.len()).sum();
        let mut x: Vec<[f64; N_FEATURES]> = Vec::with_capacity(n_rows);
        let mut y: Vec<bool> = Vec::with_capacity(n_rows);
        for (xs, ys) in rows {
            x.extend(xs);
            y.extend(ys);
        }
        let positives = y.iter().filter(|&&b| b).count();
        if positives == 0 {
            return Err(RankerError::OneClass("negative"));
        }
        if positives == n_rows {
            return Err(RankerError::OneClass("positive"));
        }
        let model = match self.learner {
            Learner::Logistic => {
                let x = Array2::from_shape_vec((n_rows, N_FEATURES), x.concat())
                    .expect("rows of N_FEATURES values");
                let y = Array1::from(y);
                let (means, stds) = column_stats(x.view());
                let z = standardise(x.view(), &means, &stds);
                // linfa-logistic's own default gradient tolerance.
                let (weights, intercept) = fit_logistic(z, y, self.l2, self.max_iterations, 1e-4)
                    .map_err(RankerError::Logistic)?;
                Learned::Logistic {
                    means,
                    stds,
                    weights,
                    intercept,
                }
            }
            Learner::BoostedTrees => {
                Learned::Trees(self.boosting.fit(&x, &y).map_err(RankerError::Boosting)?)
            }
        };
        Ok(Ranker {
            params: self.clone(),
            model,
            training_rows: n_rows,
            training_positives: positives,
            training_customers,
        })
    }
}

/// `(history, labels)`: the inner split of `log` (module docs). `labels[c]`
/// holds the items of customer `c`'s label part.
fn inner_split(
    log: &PurchaseLog,
    label_days: f64,
    skip: usize,
) -> (PurchaseLog, Vec<HashSet<u32>>) {
    let n = log.customers.len();
    let mut labels = vec![HashSet::new(); n];
    let mut keep = Vec::with_capacity(log.purchases.len());
    if label_days > 0.0 {
        let end = log.time_range().map_or(0, |(_, last)| last);
        let window = (label_days * DAY) as i64;
        let label_end = end.saturating_sub(window.saturating_mul(skip as i64));
        let cut = label_end.saturating_sub(window);
        for p in &log.purchases {
            if p.time <= cut {
                keep.push(*p);
            } else if p.time <= label_end && p.quantity > 0.0 {
                labels[p.customer.idx()].insert(p.item.0);
            }
        }
    } else {
        // The label order of each customer with enough orders: its key
        // (time of its earliest positive line, order index).
        // Keyed by (customer, order): order ids need not be unique across
        // customers.
        let mut order_time: std::collections::HashMap<(u32, u32), i64> = Default::default();
        for p in log.purchases.iter().filter(|p| p.quantity > 0.0) {
            let t = order_time
                .entry((p.customer.0, p.order.0))
                .or_insert(p.time);
            *t = (*t).min(p.time);
        }
        let mut orders: Vec<Vec<(i64, u32)>> = vec![Vec::new(); n];
        for p in log.purchases.iter().filter(|p| p.quantity > 0.0) {
            orders[p.customer.idx()].push((order_time[&(p.customer.0, p.order.0)], p.order.0));
        }
        let target: Vec<Option<(i64, u32)>> = orders
            .into_iter()
            .map(|mut o| {
                o.sort_unstable();
                o.dedup();
                (o.len() >= skip + 2).then(|| o[o.len() - 1 - skip])
            })
            .collect();
        for p in &log.purchases {
            match target[p.customer.idx()] {
                Some((_, o)) if p.order.0 == o => {
                    if p.quantity > 0.0 {
                        labels[p.customer.idx()].insert(p.item.0);
                    }
                }
                Some(key) if (p.time, p.order.0) >= key => {}
                _ => keep.push(*p),
            }
        }
    }
    let history = PurchaseLog {
        customers: log.customers.clone(),
        items: log.items.clone(),
        orders: log.orders.clone(),
        purchases: keep,
    };
    // A customer with nothing left to learn from gives no row.
    let mut has_history = vec![false; n];
    for p in history.purchases.iter().filter(|p| p.quantity > 0.0) {
        has_history[p.customer.idx()] = true;
    }
    for (c, l) in labels.iter_mut().enumerate() {
        if !has_history[c] {
            l.clear();
        }
    }
    (history, labels)
}

/// One item of one customer's history.
#[derive(Debug, Clone, Copy)]
struct Held {
    item: u32,
    /// Orders holding the item.
    orders: u32,
    first: i64,
    last: i64,
    /// Of the customer's last 5 orders, how many hold the item; and whether
    /// the very last one does.
    in_last_5: u32,
    in_last: bool,
    /// Orders since the first (resp. last) order holding the item: 0 when
    /// that is the customer's newest order.
    first_rank: u32,
    last_rank: u32,
    /// How many of the customer's newest orders in a row hold the item.
    streak: u32,
    /// Orders holding the item that have a later order, and how many of
    /// those were followed by an order holding it again.
    opportunities: u32,
    followed: u32,
}

/// Per customer and item activity of one log.
///
/// # Implementation notes
/// Each customer's items ([`Held`]) are computed from their own lines when
/// asked ([`Activity::held`]) rather than held for every customer: a
/// customer's lines are found through an index of the log grouped by
/// customer (4 bytes a positive line). The per-item counts come from one
/// pass that computes every customer's items and drops them.
struct Activity {
    /// The log's positive lines, by customer.
    by_customer: ByCustomer,
    recent_from: i64,
    /// Share of the customer's items bought in two or more orders.
    repeat_share: Vec<f64>,
    n_orders: Vec<u32>,
    /// Mean days between the customer's orders (the log's median of those
    /// for customers with one order).
    gap_days: Vec<f64>,
    buyers: Vec<u32>,
    recent_buyers: Vec<u32>,
    /// Shrunk share of buyers with two or more orders of the item.
    repeat_rate: Vec<f64>,
    /// Shrunk share of the orders holding the item whose next order holds it too.
    next_rate: Vec<f64>,
    /// Items by recent buyers, best first.
    popular: Vec<u32>,
    end: i64,
}

/// What one customer's lines say, beside their items.
struct CustomerActivity {
    /// Bought items, by item.
    held: Vec<Held>,
    /// Whether each held item was bought on or after the recent window's start.
    recent: Vec<bool>,
    n_orders: u32,
    /// Time of the first and last positive line.
    span: (i64, i64),
}

/// Per-item counts summed over customers.
#[derive(Clone)]
struct ItemCounts {
    buyers: Vec<u32>,
    repeaters: Vec<u32>,
    recent_buyers: Vec<u32>,
    next_opportunities: Vec<u64>,
    next_followed: Vec<u64>,
}

impl ItemCounts {
    fn new(n_items: usize) -> Self {
        ItemCounts {
            buyers: vec![0; n_items],
            repeaters: vec![0; n_items],
            recent_buyers: vec![0; n_items],
            next_opportunities: vec![0; n_items],
            next_followed: vec![0; n_items],
        }
    }

    fn add(mut self, other: ItemCounts) -> Self {
        fn sum<T: std::ops::AddAssign + Copy>(a: &mut [T], b: &[T]) {
            for (x, &y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        sum(&mut self.buyers, &other.buyers);
        sum(&mut self.repeaters, &other.repeaters);
        sum(&mut self.recent_buyers, &other.recent_buyers);
        sum(&mut self.next_opportunities, &other.next_opportunities);
        sum(&mut self.next_followed, &other.next_followed);
        self
    }
}

impl Activity {
    fn new(log: &PurchaseLog, recent_days: f64) -> Self {
        let n_customers = log.customers.len();
        let n_items = log.items.len();
        let end = log.time_range().map_or(0, |(_, last)| last);
        let recent_from = end.saturating_sub((recent_days * DAY) as i64);
        let mut activity = Activity {
            by_customer: ByCustomer::new(log, |p| p.quantity > 0.0),
            recent_from,
            repeat_share: Vec::new(),
            n_orders: Vec::new(),
            gap_days: Vec::new(),
            buyers: Vec::new(),
            recent_buyers: Vec::new(),
            repeat_rate: Vec::new(),
            next_rate: Vec::new(),
            popular: Vec::new(),
            end,
        };
        let per_customer: Vec<(f64, u32, (i64, i64))>;
        let counts;
        {
            let this = &activity;
            (per_customer, counts) = (0..n_customers as u32)
                .into_par_iter()
                .fold(
                    || (Vec::new(), ItemCounts::new(n_items)),
                    |(mut rows, mut counts), c| {
                        let a = this.customer(log, c);
                        for (h, &recent) in a.held.iter().zip(&a.recent) {
                            let i = h.item as usize;
                            counts.next_opportunities[i] += u64::from(h.opportunities);
                            counts.next_followed[i] += u64::from(h.followed);
                            counts.buyers[i] += 1;
                            counts.repeaters[i] += u32::from(h.orders >= 2);
                            counts.recent_buyers[i] += u32::from(recent);
                        }
                        let n = a.held.len().max(1) as f64;
                        let share = a.held.iter().filter(|h| h.orders >= 2).count() as f64 / n;
                        rows.push((share, a.n_orders, a.span));
                        (rows, counts)
                    },
                )
                .reduce(
                    || (Vec::new(), ItemCounts::new(n_items)),
                    |(mut rows, counts), (more, other)| {
                        rows.extend(more);
                        (rows, counts.add(other))
                    },
                );
        }
        let n_orders: Vec<u32> = per_customer.iter().map(|r| r.1).collect();
        let span: Vec<(i64, i64)> = per_customer.iter().map(|r| r.2).collect();
        activity.repeat_share = per_customer.iter().map(|r| r.0).collect();
        drop(per_customer);
        let mut gaps: Vec<f64> = (0..n_customers)
            .filter(|&c| n_orders[c] >= 2)
            .map(|c| (span[c].1 - span[c].0) as f64 / DAY / f64::from(n_orders[c] - 1))
            .collect();
        gaps.sort_by(f64::total_cmp);
        let median_gap = gaps.get(gaps.len() / 2).copied().unwrap_or(30.0).max(1.0);
        activity.gap_days = (0..n_customers)
            .map(|c| {
                if n_orders[c] >= 2 {
                    ((span[c].1 - span[c].0) as f64 / DAY / f64::from(n_orders[c] - 1)).max(1.0)
                } else {
                    median_gap
                }
            })
            .collect();
        activity.n_orders = n_orders;
        let ItemCounts {
            buyers,
            repeaters,
            recent_buyers,
            next_opportunities,
            next_followed,
        } = counts;
        let total_buyers: u64 = buyers.iter().map(|&b| u64::from(b)).sum();
        let total_repeaters: u64 = repeaters.iter().map(|&b| u64::from(b)).sum();
        let global = if total_buyers > 0 {
            total_repeaters as f64 / total_buyers as f64
        } else {
            0.0
        };
        activity.repeat_rate = buyers
            .iter()
            .zip(&repeaters)
            .map(|(&b, &r)| {
                (f64::from(r) + REPEAT_PRIOR_BUYERS * global) / (f64::from(b) + REPEAT_PRIOR_BUYERS)
            })
            .collect();
        let total_opportunities: u64 = next_opportunities.iter().sum();
        let global_next = if total_opportunities > 0 {
            next_followed.iter().sum::<u64>() as f64 / total_opportunities as f64
        } else {
            0.0
        };
        activity.next_rate = next_opportunities
            .iter()
            .zip(&next_followed)
            .map(|(&o, &f)| (f as f64 + NEXT_PRIOR * global_next) / (o as f64 + NEXT_PRIOR))
            .collect();
        let mut popular: Vec<(u32, f32)> = recent_buyers
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b > 0)
            .map(|(i, &b)| (i as u32, b as f32))
            .collect();
        popular.sort_by(rank_order);
        activity.popular = popular.into_iter().map(|(i, _)| i).collect();
        activity.buyers = buyers;
        activity.recent_buyers = recent_buyers;
        activity
    }

    fn n_customers(&self) -> usize {
        self.by_customer.n_customers()
    }

    /// Customer `c`'s bought items, by item (`log` is the log the activity
    /// was built from).
    fn held(&self, log: &PurchaseLog, c: u32) -> Vec<Held> {
        self.customer(log, c).held
    }

    fn customer(&self, log: &PurchaseLog, c: u32) -> CustomerActivity {
        // (item, order, time) of the customer's positive lines.
        let mut lines: Vec<(u32, u32, i64)> = self
            .by_customer
            .lines(log, c)
            .map(|p| (p.item.0, p.order.0, p.time))
            .collect();
        lines.sort_unstable();
        // Rank of each order among the customer's, from the newest (0), by
        // (time of its earliest line, order index).
        let mut order_time: Vec<(u32, i64)> = lines.iter().map(|&(_, o, t)| (o, t)).collect();
        order_time.sort_unstable();
        order_time.dedup_by_key(|e| e.0);
        let mut keys: Vec<(i64, u32)> = order_time.iter().map(|&(o, t)| (t, o)).collect();
        keys.sort_unstable();
        let mut rank_of: Vec<(u32, u32)> = keys
            .iter()
            .rev()
            .enumerate()
            .map(|(r, &(_, o))| (o, r as u32))
            .collect();
        rank_of.sort_unstable();
        let rank = |o: u32| rank_of[rank_of.binary_search_by_key(&o, |e| e.0).unwrap()].1;
        let mut span = (i64::MAX, i64::MIN);
        let mut held_items = Vec::new();
        let mut recent_items = Vec::new();
        let mut s = 0;
        while s < lines.len() {
            let i = lines[s].0;
            let mut e = s;
            let mut held = Held {
                item: i,
                orders: 0,
                first: i64::MAX,
                last: i64::MIN,
                in_last_5: 0,
                in_last: false,
                first_rank: 0,
                last_rank: u32::MAX,
                streak: 0,
                opportunities: 0,
                followed: 0,
            };
            let mut recent = false;
            let mut prev_order = None;
            let mut ranks: Vec<u32> = Vec::new();
            while e < lines.len() && lines[e].0 == i {
                let (o, t) = (lines[e].1, lines[e].2);
                if prev_order != Some(o) {
                    held.orders += 1;
                    prev_order = Some(o);
                    let r = rank(o);
                    held.in_last_5 += u32::from(r < 5);
                    held.in_last |= r == 0;
                    ranks.push(r);
                }
                held.first = held.first.min(t);
                held.last = held.last.max(t);
                recent |= t >= self.recent_from;
                span = (span.0.min(t), span.1.max(t));
                e += 1;
            }
            ranks.sort_unstable();
            ranks.dedup();
            held.opportunities = ranks.iter().filter(|&&r| r > 0).count() as u32;
            held.followed = ranks.windows(2).filter(|w| w[1] == w[0] + 1).count() as u32;
            held.first_rank = ranks.last().copied().unwrap_or(0);
            held.last_rank = ranks.first().copied().unwrap_or(0);
            held.streak = ranks
                .iter()
                .enumerate()
                .take_while(|&(k, &r)| r == k as u32)
                .count() as u32;
            held_items.push(held);
            recent_items.push(recent);
            s = e;
        }
        CustomerActivity {
            held: held_items,
            recent: recent_items,
            n_orders: order_time.len() as u32,
            span,
        }
    }
}

/// Dense per-item buffers of one thread's feature computation (reused, so
/// scoring a customer allocates nothing of catalog size).
#[derive(Default)]
struct Scratch {
    own: Vec<f32>,
    neighbours: Vec<f32>,
    co: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
    /// One customer's ALS scores over the catalog, when the caller did not
    /// give them.
    static ALS_SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Base models fitted on one log plus that log's activity: what the
/// features of [`Ranker`] are computed from.
pub struct Signals<'a> {
    log: &'a PurchaseLog,
    tifu: TifuKnn,
    als: &'a Als,
    copurchase: &'a CoPurchase,
    activity: Activity,
    candidates: (usize, usize, usize),
}

impl<'a> Signals<'a> {
    /// `tifu`, `als` and `copurchase` must have been fitted on `log`.
    pub fn new(
        log: &'a PurchaseLog,
        tifu: TifuKnn,
        als: &'a Als,
        copurchase: &'a CoPurchase,
        params: &RankerParams,
    ) -> Self {
        Signals {
            log,
            tifu,
            als,
            copurchase,
            activity: Activity::new(log, params.recent_days),
            candidates: (
                params.candidates_repeat,
                params.candidates_new,
                params.candidates_popular,
            ),
        }
    }

    /// The candidates of customer `c` (available items only) and their features.
    fn candidate_features(
        &self,
        c: u32,
        available: impl Fn(u32) -> bool,
    ) -> (Vec<u32>, Vec<[f64; N_FEATURES]>) {
        if c as usize >= self.activity.n_customers() {
            return (Vec::new(), Vec::new());
        }
        ALS_SCORES.with_borrow_mut(|cf| {
            cf.clear();
            cf.resize(self.tifu.n_items(), 0.0);
            self.als.score_user(c as usize, cf);
            self.candidate_features_scored(c, available, cf)
        })
    }

    /// [`Signals::candidate_features`] of each of `customers`, their ALS
    /// scores computed together ([`Als::score_users`]).
    fn candidate_features_of(
        &self,
        customers: &[u32],
        available: impl Fn(u32) -> bool,
    ) -> Vec<(Vec<u32>, Vec<[f64; N_FEATURES]>)> {
        let n_items = self.tifu.n_items();
        let known: Vec<u32> = customers
            .iter()
            .copied()
            .filter(|&c| (c as usize) < self.activity.n_customers())
            .collect();
        ALS_SCORES.with_borrow_mut(|cf| {
            cf.clear();
            cf.resize(known.len() * n_items, 0.0);
            self.als.score_users(&known, cf);
            let mut scored = cf.chunks_exact(n_items.max(1));
            customers
                .iter()
                .map(|&c| match (c as usize) < self.activity.n_customers() {
                    true => {
                        let cf = scored.next().expect("one score row per known customer");
                        self.candidate_features_scored(c, &available, cf)
                    }
                    false => (Vec::new(), Vec::new()),
                })
                .collect()
        })
    }

    /// [`Signals::candidate_features`] with `cf`, the ALS scores of `c`
    /// over the catalog ([`Als::score_user`]), already computed.
    fn candidate_features_scored(
        &self,
        c: u32,
        available: impl Fn(u32) -> bool,
        cf: &[f32],
    ) -> (Vec<u32>, Vec<[f64; N_FEATURES]>) {
        if c as usize >= self.activity.n_customers() {
            return (Vec::new(), Vec::new());
        }
        assert_eq!(cf.len(), self.tifu.n_items(), "one ALS score per item");
        SCRATCH.with_borrow_mut(|scratch| self.features_with(c, available, scratch, cf))
    }

    /// [`Signals::candidate_features`] with the thread's dense buffers and
    /// `c`'s ALS scores `cf`.
    fn features_with(
        &self,
        c: u32,
        available: impl Fn(u32) -> bool,
        scratch: &mut Scratch,
        cf: &[f32],
    ) -> (Vec<u32>, Vec<[f64; N_FEATURES]>) {
        let n_items = self.tifu.n_items();
        let a = &self.activity;
        let cu = c as usize;
        let Scratch {
            own,
            neighbours,
            co,
        } = scratch;
        for buffer in [&mut *own, &mut *neighbours, &mut *co] {
            buffer.clear();
            buffer.resize(n_items, 0.0);
        }
        let (pi, pv) = self.tifu.personal_vector(c);
        for (&i, &v) in pi.iter().zip(pv) {
            own[i as usize] = v;
        }
        self.tifu.neighbour_mean(c, neighbours);
        let alpha = self.tifu.params().alpha;
        let mine = &a.held(self.log, c);
        let bought = |i: u32| {
            mine.binary_search_by_key(&i, |h| h.item)
                .ok()
                .map(|p| mine[p])
        };

        let (n_repeat, n_new, n_popular) = self.candidates;
        let mut candidates: Vec<u32> = Vec::new();
        let mut seen = HashSet::new();
        let tifu_of = |i: u32| alpha * own[i as usize] + (1.0 - alpha) * neighbours[i as usize];
        let tifu_scores = (0..n_items as u32)
            .map(|i| (i, tifu_of(i)))
            .filter(|&(_, s)| s > 0.0);
        // The TIFU head over every item, available or not, so that the rank
        // features below do not change with the availability filter. When
        // the filter keeps the whole head, the head is the repeat candidates
        // (same order, same ties); only otherwise is the catalog walked again.
        let tifu_head = top_k(tifu_scores.clone(), n_repeat.max(1));
        let repeat = if n_repeat == 0 {
            Vec::new()
        } else if tifu_head.iter().all(|e| available(e.0)) {
            tifu_head.clone()
        } else {
            top_k(tifu_scores.filter(|&(i, _)| available(i)), n_repeat)
        };
        for (i, _) in repeat {
            if seen.insert(i) {
                candidates.push(i);
            }
        }
        for (i, _) in top_k_dense(cf, n_new, |i| {
            !available(i) || bought(i).is_some() || !cf[i as usize].is_finite()
        }) {
            if seen.insert(i) {
                candidates.push(i);
            }
        }
        for &i in a.popular.iter().filter(|&&i| available(i)).take(n_popular) {
            if seen.insert(i) {
                candidates.push(i);
            }
        }
        // ALS standardised over the catalog for this customer.
        let finite = cf.iter().filter(|v| v.is_finite());
        let n = finite.clone().count().max(1) as f64;
        let mean = finite.clone().map(|&v| f64::from(v)).sum::<f64>() / n;
        let sd = (finite.map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n)
            .sqrt()
            .max(1e-9);
        let basket: Vec<(u32, f32)> = mine.iter().map(|h| (h.item, 1.0)).collect();
        self.copurchase.score_items(&basket, co);

        let n_orders = f64::from(a.n_orders[cu].max(1));
        let gap = a.gap_days[cu];
        let basket_size = mine.iter().map(|h| f64::from(h.orders)).sum::<f64>() / n_orders;
        // Each candidate's rank in the customer's TIFU head (its length when
        // outside) and its TIFU score over the best one: the same evidence on
        // a scale shared by every customer.
        let best_tifu = tifu_head
            .first()
            .map_or(0.0, |&(_, s)| f64::from(s))
            .max(1e-12);
        let tifu_rank = |i: u32| {
            tifu_head
                .iter()
                .position(|e| e.0 == i)
                .unwrap_or(tifu_head.len()) as f64
        };
        let x = candidates
            .iter()
            .map(|&i| {
                let iu = i as usize;
                let als_z = if cf[iu].is_finite() {
                    (f64::from(cf[iu]) - mean) / sd
                } else {
                    0.0
                };
                let held = bought(i);
                let (orders, days) = held.map_or((0.0, 0.0), |h| {
                    (
                        f64::from(h.orders),
                        ((a.end - h.last) as f64 / DAY).max(0.0),
                    )
                });
                // Mean days between the orders holding the item (bought in two or more).
                let item_interval = held
                    .filter(|h| h.orders >= 2)
                    .map(|h| ((h.last - h.first) as f64 / DAY / f64::from(h.orders - 1)).max(1.0));
                let b = if orders > 0.0 { 1.0 } else { 0.0 };
                let repeat = a.repeat_rate[iu];
                [
                    f64::from(own[iu]),
                    f64::from(neighbours[iu]),
                    orders.ln_1p(),
                    orders / n_orders,
                    b,
                    b * (days / gap).ln_1p(),
                    b * days.ln_1p(),
                    als_z,
                    f64::from(co[iu].max(0.0)).ln_1p(),
                    f64::from(a.recent_buyers[iu]).ln_1p(),
                    f64::from(a.buyers[iu]).ln_1p(),
                    repeat,
                    b * repeat,
                    (1.0 - b) * als_z,
                    if held.is_some_and(|h| h.in_last) {
                        1.0
                    } else {
                        0.0
                    },
                    held.map_or(0.0, |h| f64::from(h.in_last_5) / 5.0),
                    item_interval.map_or(0.0, |iv| (days / iv).ln_1p()),
                    if orders == 1.0 { 1.0 } else { 0.0 },
                    b * a.repeat_share[cu],
                    held.map_or(0.0, |h| f64::from(h.orders) / f64::from(h.first_rank + 1)),
                    held.map_or(0.0, |h| f64::from(h.last_rank).ln_1p()),
                    held.map_or(0.0, |h| f64::from(h.streak)),
                    tifu_rank(i).ln_1p(),
                    f64::from(tifu_of(i)) / best_tifu,
                    n_orders.ln_1p(),
                    a.repeat_share[cu],
                    basket_size.ln_1p(),
                    a.next_rate[iu],
                    held.map_or(0.0, |h| {
                        (f64::from(h.followed) + OWN_NEXT_PRIOR * a.next_rate[iu])
                            / (f64::from(h.opportunities) + OWN_NEXT_PRIOR)
                    }),
                ]
            })
            .collect();
        (candidates, x)
    }
}

/// The learned scorer of a [`Ranker`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Learned {
    Logistic {
        means: Vec<f64>,
        stds: Vec<f64>,
        /// Weight of each standardised feature in the log-odds of buying.
        weights: Vec<f64>,
        intercept: f64,
    },
    Trees(Boosted),
}

/// A fitted re-ranker over [`FEATURE_NAMES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranker {
    pub params: RankerParams,
    model: Learned,
    pub training_rows: usize,
    pub training_positives: usize,
    /// Labelled customers summed over the cuts (a customer labelled in two
    /// cuts counts twice).
    pub training_customers: usize,
}

impl Ranker {
    /// The `k` best candidates of `customer` with their scores (module docs:
    /// for ranking, not calibrated), best first; items for which `available`
    /// is false are left out.
    pub fn recommend(
        &self,
        signals: &Signals<'_>,
        customer: u32,
        k: usize,
        available: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let (items, x) = signals.candidate_features(customer, available);
        self.rank(&items, &x, k)
    }

    /// [`Ranker::recommend`] with the customer's ALS scores over the
    /// catalog already computed (`Als::score_user` of the model `signals`
    /// holds), for a caller that needs them for another list too: the same
    /// list, without scoring the catalog again.
    ///
    /// # Panics
    /// If `als_scores` does not hold one score per item.
    pub fn recommend_scored(
        &self,
        signals: &Signals<'_>,
        customer: u32,
        k: usize,
        available: impl Fn(u32) -> bool,
        als_scores: &[f32],
    ) -> Vec<(u32, f32)> {
        let (items, x) = signals.candidate_features_scored(customer, available, als_scores);
        self.rank(&items, &x, k)
    }

    /// The `k` best of `items` by the learner's score of their features `x`.
    fn rank(&self, items: &[u32], x: &[[f64; N_FEATURES]], k: usize) -> Vec<(u32, f32)> {
        if items.is_empty() {
            return Vec::new();
        }
        let probabilities: Vec<f64> = match &self.model {
            Learned::Logistic {
                means,
                stds,
                weights,
                intercept,
            } => {
                let mut raw = Array2::<f64>::zeros((items.len(), N_FEATURES));
                for (r, row) in x.iter().enumerate() {
                    raw.row_mut(r).assign(&ndarray::ArrayView1::from(&row[..]));
                }
                let z = standardise(raw.view(), means, stds);
                z.rows()
                    .into_iter()
                    .map(|row| {
                        let eta =
                            intercept + row.iter().zip(weights).map(|(v, w)| v * w).sum::<f64>();
                        1.0 / (1.0 + (-eta).exp())
                    })
                    .collect()
            }
            Learned::Trees(trees) => x.iter().map(|row| trees.probability(row)).collect(),
        };
        top_k(
            items.iter().zip(probabilities).map(|(&i, p)| (i, p as f32)),
            k,
        )
    }

    /// What the model leans on, by feature name, largest first: for the
    /// logistic regression the weights of the standardised features (by
    /// magnitude), for boosted trees each feature's share of the splits.
    pub fn importance(&self) -> Vec<(&'static str, f64)> {
        let values: Vec<f64> = match &self.model {
            Learned::Logistic { weights, .. } => weights.clone(),
            Learned::Trees(trees) => {
                let counts = trees.split_counts();
                let total = counts.iter().sum::<usize>().max(1) as f64;
                counts.iter().map(|&c| c as f64 / total).collect()
            }
        };
        let mut w: Vec<(&'static str, f64)> = FEATURE_NAMES.iter().copied().zip(values).collect();
        w.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        w
    }

    /// `logistic` or `boosted_trees`.
    pub fn learner(&self) -> &'static str {
        match self.model {
            Learned::Logistic { .. } => "logistic",
            Learned::Trees(_) => "boosted_trees",
        }
    }

    /// The intercept of the logistic regression (`None` for trees).
    pub fn intercept(&self) -> Option<f64> {
        match self.model {
            Learned::Logistic { intercept, .. } => Some(intercept),
            Learned::Trees(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One customer: o1 {x, y}, o2 {x}, o3 {x, y}, o4 {y}; a second one
    /// buys z once. x is followed by x twice in three chances, y once in two.
    #[test]
    fn next_order_rates_count_consecutive_orders() {
        let mut log = PurchaseLog::default();
        let day = 86_400;
        for (o, t, items) in [
            ("o1", 1, &["x", "y"][..]),
            ("o2", 2, &["x"]),
            ("o3", 3, &["x", "y", "x"]),
            ("o4", 4, &["y"]),
        ] {
            for item in items {
                log.push(o, "a", item, t * day, 1.0, 1.0);
            }
        }
        log.push("o5", "b", "z", 4 * day, 1.0, 1.0);
        // A return is not an order holding the item.
        log.push("o6", "a", "z", 4 * day, -1.0, 1.0);
        let activity = Activity::new(&log, 90.0);
        let held = |c: &str, i: &str| {
            let (c, i) = (log.customers.get(c).unwrap(), log.items.get(i).unwrap());
            activity
                .held(&log, c)
                .iter()
                .find(|h| h.item == i)
                .copied()
                .unwrap()
        };
        let (x, y) = (held("a", "x"), held("a", "y"));
        assert_eq!((x.opportunities, x.followed), (3, 2));
        assert_eq!((y.opportunities, y.followed), (2, 1));
        let z = held("b", "z");
        assert_eq!((z.opportunities, z.followed), (0, 0));
        // Shrunk towards the share over all items, (2 + 1) / (3 + 2).
        let global = 3.0 / 5.0;
        let rate = |i: &str| activity.next_rate[log.items.get(i).unwrap() as usize];
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(rate("x"), (2.0 + NEXT_PRIOR * global) / (3.0 + NEXT_PRIOR));
        close(rate("y"), (1.0 + NEXT_PRIOR * global) / (2.0 + NEXT_PRIOR));
        close(rate("z"), global);
    }
}
