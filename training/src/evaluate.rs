//! Offline evaluation: honest splits, ranking metrics and baselines.
//!
//! Every model is trained on the purchases of a *training* part of the log and
//! asked for a ranked list per customer; the list is scored against the items
//! the customer bought in the *target* part.
//!
//! # Splits ([`Split`])
//! - **Time** (`--holdout-from T`): train on the purchases before `T`, target
//!   the purchases at or after it (up to an optional end). Scored customers
//!   bought something (net) on both sides; the report counts them and the
//!   customers who bought after the cutoff.
//! - **Next basket** (`--split next-basket`): each customer's last order (by
//!   time, ties by order index; only orders with a positive line count) is the
//!   target and the earlier orders are the history. Training uses everyone's
//!   history, i.e. the log without any customer's last order (and without
//!   cancellations dated after it). Customers with two or more orders are
//!   eligible; those whose earlier orders leave a net purchase are scored.
//! - **Validation** ([`Split::validation`]): the same protocol moved back so
//!   that nothing of the test targets is seen. For the time split the
//!   validation cutoff is `T - D days` and its targets end at `T`; for next
//!   basket the second-to-last order is the target and the last is dropped.
//!   Parameters are chosen on the validation split only (a tuner calls
//!   [`evaluate_split`] on it); `encore-train evaluate` reports the test split
//!   and states the validation split it would use.
//!
//! # What counts
//! - Relevant items: distinct items bought (net positive) in the target part,
//!   available ones only. Unavailable catalog items (fees, postage) are
//!   neither recommended by any list (the evaluator drops them from every
//!   list) nor counted as relevant.
//! - Items the customer had bought before may be recommended: repeat buying is
//!   most of what a retailer sells. Each metric is split into *repeat*
//!   relevant items (bought before the target) and *new* ones.
//! - Metrics (binary relevance, averaged over the customers for whom they are
//!   defined): Recall, NDCG, HitRate and MAP at each K, and catalog coverage;
//!   formulas in [`encore_model::metrics`]. The coverage catalog is the set of
//!   available items with a net purchase in the training part.
//!
//! # Customer models
//! With the time split, the customer book and the replenishment model of
//! the configuration (`[customers]`) are fitted on the training part with
//! the cutoff as their reference and checked against the target period
//! ([`encore_model::customer::holdout`]): the buying probability's ROC AUC
//! against simple rankings, its Brier score and reliability, and the errors
//! of the predicted next purchase and replenishment due dates against "own
//! median gap" baselines ([`EvalReport::customers`]). The next-basket split
//! has no common cutoff: the section is skipped and says so.
//!
//! # Models ([`Registry`])
//! A registry maps names to builders that turn the trained split
//! ([`Trained`]) into a [`Recommender`]. [`Registry::baselines`] holds the
//! models every report shows; more are added with one call to
//! [`Registry::with`].

use crate::progress::StageProgress;
use anyhow::{Result, bail};
use encore_data::timestamp::format_timestamp;
use encore_data::{Csr, InteractionMatrix, PurchaseLog, Weighting};
use encore_model::cf::ranker::{RankerError, Signals};
use encore_model::customer::holdout::{CustomerHoldout, evaluate_customers};
use encore_model::engine::{Engine, ItemMeta, ListFilter};
use encore_model::manifest::DataSummary;
use encore_model::metrics::{
    average_precision_at_k, catalog_coverage, hit_rate_at_k, ndcg_at_k, recall_at_k,
};
use encore_model::pipeline::{EngineConfig, ranker_base_models, train_engine};
use encore_model::topk::top_k_dense;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

const DAY: f64 = 86_400.0;

/// The default validation window of the time split, in days.
pub const DEFAULT_VALIDATION_DAYS: f64 = 30.0;

/// Per-customer metrics, in table order.
pub const METRICS: [&str; 4] = ["recall", "ndcg", "hit_rate", "map"];

/// The relevant-set views every per-customer metric is computed on: all
/// relevant items, the repeat ones, the new ones (metric name suffixes).
pub const VIEWS: [&str; 3] = ["", "_repeat", "_new"];

// ---------------------------------------------------------------------------
// Splits

/// Which split `encore-train evaluate` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SplitKind {
    /// A global time cutoff (`--holdout-from`).
    #[default]
    Time,
    /// Each customer's last order is the target.
    NextBasket,
}

/// How the log is cut into a training part and a target part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// Train on purchases before `cutoff`; the target is the purchases at or
    /// after it and before `end` (to the end of the log if `None`).
    Time { cutoff: i64, end: Option<i64> },
    /// For each customer, the order `skip_last` places before the last one
    /// (0: the last order) is the target, the earlier orders are the history
    /// and the later ones are left out altogether.
    NextBasket { skip_last: usize },
}

impl Split {
    /// The validation split for tuning: it ends where this split's targets
    /// begin, so it never sees them. `days` is the length of the validation
    /// window of a time split (ignored for next basket, whose validation
    /// target is the order before the test target).
    pub fn validation(&self, days: f64) -> Split {
        match *self {
            Split::Time { cutoff, .. } => Split::Time {
                cutoff: cutoff.saturating_sub((days * DAY) as i64),
                end: Some(cutoff),
            },
            Split::NextBasket { skip_last } => Split::NextBasket {
                skip_last: skip_last + 1,
            },
        }
    }

    /// `"time"` or `"next_basket"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Split::Time { .. } => "time",
            Split::NextBasket { .. } => "next_basket",
        }
    }

    /// One line saying what is trained on and what is scored.
    pub fn describe(&self) -> String {
        match *self {
            Split::Time { cutoff, end: None } => format!(
                "train before {}, targets from then to the end of the log",
                format_timestamp(cutoff)
            ),
            Split::Time {
                cutoff,
                end: Some(end),
            } => format!(
                "train before {}, targets from then until {} ({:.0} days)",
                format_timestamp(cutoff),
                format_timestamp(end),
                (end - cutoff) as f64 / DAY
            ),
            Split::NextBasket { skip_last } => {
                let which = match skip_last {
                    0 => "last order".to_string(),
                    1 => "second-to-last order (the last is left out)".to_string(),
                    n => format!("order {} places before the last (later ones left out)", n),
                };
                format!(
                    "each customer's {which} is the target, earlier orders the history; customers with at least {} orders",
                    skip_last + 2
                )
            }
        }
    }
}

/// One scored customer: index, relevant items, and their repeat / new halves.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub customer: u32,
    pub relevant: HashSet<u32>,
    /// Relevant items the customer had bought (net) in the training part.
    pub repeat: HashSet<u32>,
    /// The other relevant items.
    pub new: HashSet<u32>,
}

/// Counts and dates of a split, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitSummary {
    /// `time` or `next_basket`.
    pub kind: String,
    pub description: String,
    /// Time split: the cutoff; next basket: `None`.
    pub cutoff: Option<String>,
    /// Time split: the end of the targets, if any.
    pub end: Option<String>,
    /// Time of the earliest and latest target purchase.
    pub targets_from: Option<String>,
    pub targets_to: Option<String>,
    pub train_purchases: usize,
    pub test_purchases: usize,
    /// Purchases in neither part (next basket: orders after the target,
    /// cancellations dated after it; time split with an end: after the end).
    pub left_out_purchases: usize,
    /// Time split: customers who bought (net) in the target period; next
    /// basket: customers with enough orders.
    pub customers_eligible: usize,
    /// Eligible customers with a training history and an available relevant item.
    pub customers_scored: usize,
    /// Scored customers with at least one repeat (resp. new) relevant item.
    pub customers_with_repeat: usize,
    pub customers_with_new: usize,
    /// Mean number of relevant items per scored customer.
    pub mean_relevant: f64,
    /// Share of the relevant items (summed over scored customers) that are repeats.
    pub repeat_share: f64,
}

/// A split cut out of a log, ready to train on and to score.
pub struct PreparedSplit {
    pub split: Split,
    pub train: PurchaseLog,
    pub test: PurchaseLog,
    /// Customer x item net purchased quantity of the training part.
    pub history: Csr,
    pub targets: Vec<Target>,
    pub summary: SplitSummary,
}

/// Cuts `log` by `split` and finds the customers to score. Never fails: an
/// empty part shows as zero counts (see [`evaluate_split`] for the checks).
pub fn prepare_split(log: &PurchaseLog, item_meta: &[ItemMeta], split: &Split) -> PreparedSplit {
    let with = |purchases| PurchaseLog {
        customers: log.customers.clone(),
        items: log.items.clone(),
        orders: log.orders.clone(),
        purchases,
    };
    let (train, test, left_out, eligible_by_orders) = match *split {
        Split::Time { cutoff, end } => {
            let mut train = Vec::new();
            let mut test = Vec::new();
            let mut left_out = 0;
            for p in &log.purchases {
                if p.time < cutoff {
                    train.push(*p);
                } else if end.is_none_or(|e| p.time < e) {
                    test.push(*p);
                } else {
                    left_out += 1;
                }
            }
            (train, test, left_out, None)
        }
        Split::NextBasket { skip_last } => {
            let (train, test, left_out, eligible) = next_basket_parts(log, skip_last);
            (train, test, left_out, Some(eligible))
        }
    };
    let (train, test) = (with(train), with(test));
    let history = InteractionMatrix::from_log(&train, &Weighting::default()).matrix;
    let after = InteractionMatrix::from_log(&test, &Weighting::default()).matrix;
    let available = |i: u32| item_meta.get(i as usize).is_none_or(|m| m.available);
    let customers_eligible = eligible_by_orders.unwrap_or_else(|| {
        (0..after.n_rows())
            .filter(|&c| after.row_nnz(c) > 0)
            .count()
    });
    let targets: Vec<Target> = (0..after.n_rows())
        .filter(|&c| after.row_nnz(c) > 0 && history.row_nnz(c) > 0)
        .filter_map(|c| {
            let relevant: HashSet<u32> = after
                .row(c)
                .0
                .iter()
                .copied()
                .filter(|&i| available(i))
                .collect();
            if relevant.is_empty() {
                return None;
            }
            let before = history.row(c).0;
            let (repeat, new) = relevant
                .iter()
                .partition(|i| before.binary_search(i).is_ok());
            Some(Target {
                customer: c as u32,
                relevant,
                repeat,
                new,
            })
        })
        .collect();
    let n_relevant: usize = targets.iter().map(|t| t.relevant.len()).sum();
    let n_repeat: usize = targets.iter().map(|t| t.repeat.len()).sum();
    let range = test.time_range();
    let (cutoff, end) = match *split {
        Split::Time { cutoff, end } => (Some(format_timestamp(cutoff)), end.map(format_timestamp)),
        Split::NextBasket { .. } => (None, None),
    };
    let summary = SplitSummary {
        kind: split.kind().to_string(),
        description: split.describe(),
        cutoff,
        end,
        targets_from: range.map(|(a, _)| format_timestamp(a)),
        targets_to: range.map(|(_, b)| format_timestamp(b)),
        train_purchases: train.purchases.len(),
        test_purchases: test.purchases.len(),
        left_out_purchases: left_out,
        customers_eligible,
        customers_scored: targets.len(),
        customers_with_repeat: targets.iter().filter(|t| !t.repeat.is_empty()).count(),
        customers_with_new: targets.iter().filter(|t| !t.new.is_empty()).count(),
        mean_relevant: ratio(n_relevant, targets.len()),
        repeat_share: ratio(n_repeat, n_relevant),
    };
    PreparedSplit {
        split: *split,
        train,
        test,
        history,
        targets,
        summary,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The next-basket cut: (train lines, target lines, lines left out, eligible customers).
///
/// A customer's orders are those holding a positive-quantity line, ordered by
/// `(time, order index)`. With `n` orders the target is order `n - 1 - skip`;
/// lines keyed before it train, its lines are the target, and everything from
/// the target on that is not the target (later orders, later cancellations)
/// is left out. A customer with `n <= skip` orders trains on the lines dated
/// before their first order (cancellations only) and the rest is left out.
fn next_basket_parts(
    log: &PurchaseLog,
    skip: usize,
) -> (
    Vec<encore_data::Purchase>,
    Vec<encore_data::Purchase>,
    usize,
    usize,
) {
    let n_customers = log.customers.len();
    let mut orders: Vec<Vec<(i64, u32)>> = vec![Vec::new(); n_customers];
    for p in log.purchases.iter().filter(|p| p.quantity > 0.0) {
        orders[p.customer.idx()].push((p.time, p.order.0));
    }
    // Per customer: the first `(time, order)` key not trained on, and the target order if any.
    type Boundary = Option<((i64, u32), Option<u32>)>;
    let boundary: Vec<Boundary> = orders
        .into_iter()
        .map(|mut o| {
            o.sort_unstable();
            o.dedup();
            let n = o.len();
            if n == 0 {
                None
            } else if n > skip {
                let t = o[n - 1 - skip];
                Some((t, Some(t.1)))
            } else {
                Some((o[0], None))
            }
        })
        .collect();
    // Eligible: a target with at least one order before it.
    let mut has_before = vec![false; n_customers];
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut left_out = 0;
    for p in &log.purchases {
        let c = p.customer.idx();
        match boundary[c] {
            None => train.push(*p),
            Some((key, target)) => {
                if (p.time, p.order.0) < key {
                    if p.quantity > 0.0 {
                        has_before[c] = true;
                    }
                    train.push(*p);
                } else if Some(p.order.0) == target {
                    test.push(*p);
                } else {
                    left_out += 1;
                }
            }
        }
    }
    let eligible = (0..n_customers)
        .filter(|&c| has_before[c] && boundary[c].is_some_and(|(_, t)| t.is_some()))
        .count();
    (train, test, left_out, eligible)
}

// ---------------------------------------------------------------------------
// Models

/// What a model may use to build its lists: the engine trained on the
/// training part, that part itself, and per-customer order counts.
pub struct Trained<'a> {
    pub engine: &'a Engine,
    pub train: &'a PurchaseLog,
    pub config: &'a EngineConfig,
    /// Customer x item: number of orders of the training part holding a
    /// positive line of the item.
    pub order_counts: &'a Csr,
}

/// A fitted model that ranks items for a customer (by dense index).
///
/// Lists are best first and at most `k` long. Items must be available; the
/// evaluator drops unavailable and repeated items anyway, so a model cannot
/// gain from them.
pub trait Recommender: Sync {
    fn recommend(&self, customer: u32, k: usize) -> Vec<u32>;
}

/// A closure as a recommender; see [`list_fn`] to box one with its types inferred.
pub struct ListFn<F>(pub F);

impl<F: Fn(u32, usize) -> Vec<u32> + Sync> Recommender for ListFn<F> {
    fn recommend(&self, customer: u32, k: usize) -> Vec<u32> {
        (self.0)(customer, k)
    }
}

/// Boxes `f(customer, k) -> ranked items` as a [`Recommender`].
pub fn list_fn<'a, F>(f: F) -> Box<dyn Recommender + 'a>
where
    F: Fn(u32, usize) -> Vec<u32> + Sync + 'a,
{
    Box::new(ListFn(f))
}

type Build =
    Box<dyn for<'a> Fn(&'a Trained<'a>) -> Result<Box<dyn Recommender + 'a>> + Send + Sync>;

/// One named model of a [`Registry`].
pub struct ModelEntry {
    /// Short name: the row of the table and the key of [`EvalReport::get`].
    pub name: String,
    /// What it is, for the reports.
    pub label: String,
    build: Build,
}

/// The models an evaluation scores, in report order.
///
/// ```
/// use encore_training::evaluate::{Registry, list_fn};
///
/// // The baselines plus a model that always answers the same item.
/// let registry = Registry::baselines().with("item_zero", "always item 0", |_trained| {
///     Ok(list_fn(|_customer, k| vec![0].into_iter().take(k).collect()))
/// });
/// assert!(registry.names().any(|n| n == "item_zero"));
/// ```
pub struct Registry {
    entries: Vec<ModelEntry>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::baselines()
    }
}

impl Registry {
    /// No models.
    pub fn empty() -> Self {
        Registry {
            entries: Vec::new(),
        }
    }

    /// The baselines every report shows: global popularity, P-TopFreq,
    /// GP-TopFreq, item-kNN and ALS.
    pub fn baselines() -> Self {
        Registry::empty()
            .with(
                "popularity",
                "global popularity (distinct buyers in the recent window)",
                |t| Ok(list_fn(|_, k| popularity(t.engine, k, &HashSet::new()))),
            )
            .with(
                "p_topfreq",
                "P-TopFreq: the customer's own items by number of orders",
                |t| Ok(list_fn(|c, k| own_top_freq(t, c, k))),
            )
            .with(
                "gp_topfreq",
                "GP-TopFreq: own items by number of orders, then popularity",
                |t| {
                    Ok(list_fn(|c, k| {
                        let own = own_top_freq(t, c, k);
                        pad_with_popular(t.engine, own, k)
                    }))
                },
            )
            .with(
                "item_knn",
                "item-kNN: co-purchase similarities summed over the customer's items, then popularity",
                |t| Ok(list_fn(|c, k| item_knn(t.engine, c, k))),
            )
            .with(
                "als",
                "ALS matrix factorisation (implicit feedback)",
                |t| {
                    Ok(list_fn(|c, k| {
                        let filter = ListFilter {
                            include_purchased: true,
                            ..ListFilter::default()
                        };
                        ids(t.engine.recommend(Some(c), k, &filter).1)
                    }))
                },
            )
    }

    /// What `encore-train fit`'s holdout check scores: the baselines and the
    /// "for you" model the configuration serves with `include_purchased`
    /// (`[for_you] model`), unless it builds no repeat-aware lists for this
    /// many customers (`[for_you] repeat_aware = false` or more than
    /// `max_customers`: ALS, a baseline, serves then). Not the other list
    /// models of [`Registry::standard`]: `encore-train evaluate` compares them.
    pub fn for_fit(config: &EngineConfig, customers: usize) -> Result<Self> {
        let mut names: Vec<String> = Registry::baselines().names().map(str::to_owned).collect();
        let f = &config.for_you;
        if f.builds_repeat_aware(customers) {
            names.push(f.model.evaluation_name().to_owned());
        }
        Registry::standard().only(&names)
    }

    /// The baselines plus Encore's other list models: the repeat-aware
    /// TIFU-KNN alone and blended with ALS for new items, the learned
    /// re-ranker (the "for you" model), and EASE (left out
    /// with a warning above its item limit). What `encore-train evaluate`
    /// scores by default.
    pub fn standard() -> Self {
        Registry::baselines()
            .with(
                "tifu_knn",
                "TIFU-KNN: time-decayed own item frequencies plus similar customers'",
                |t| {
                    let model = t.config.repeat_aware.fit(t.train)?;
                    Ok(Box::new(ListFn(move |c: u32, k: usize| {
                        ids(model.recommend(c, k, |i| !t.engine.item_meta(i).available, None))
                    })))
                },
            )
            .with(
                "tifu_als",
                "TIFU-KNN blended with ALS for items the customer never bought",
                tifu_als,
            )
            .with(
                "ranker",
                "learned re-ranker of TIFU-KNN, ALS and popular candidates, trained on an inner split of the training part (the \"for you\" model; TIFU-KNN + ALS when it cannot train)",
                |t| {
                    let available = |i: u32| t.engine.item_meta(i).available;
                    let fitted = t.config.ranker.fit(t.train, available, |l, scored| {
                        ranker_base_models(l, t.config, Some(scored)).map_err(|e| e.to_string())
                    });
                    let ranker = match fitted {
                        Ok(ranker) => ranker,
                        Err(e @ RankerError::InvalidParam { .. }) => return Err(e.into()),
                        // As `fit` serves it: TIFU-KNN + ALS.
                        Err(e) => {
                            eprintln!(
                                "warning: the re-ranker could not train ({e}); its row scores TIFU-KNN + ALS, as a fitted model would serve"
                            );
                            return tifu_als(t);
                        }
                    };
                    let signals = Signals::new(
                        t.train,
                        t.config.repeat_aware.fit(t.train)?,
                        t.engine.als(),
                        t.engine.copurchase(),
                        &t.config.ranker,
                    );
                    Ok(Box::new(ListFn(move |c: u32, k: usize| {
                        ids(ranker.recommend(&signals, c, k, available))
                    })))
                },
            )
            .with(
                "ease",
                "EASE: closed-form item-item regression on who bought what",
                |t| {
                    let binary = t.order_counts.map_values(|_| 1.0);
                    match t.config.ease.fit(&binary) {
                        Ok(model) => Ok(Box::new(ListFn(move |c: u32, k: usize| {
                            ids(model.recommend(
                                binary.row(c as usize),
                                k,
                                |i| !t.engine.item_meta(i).available,
                            ))
                        }))),
                        Err(e @ encore_model::cf::ease::EaseError::TooManyItems { .. }) => {
                            eprintln!("warning: EASE left out of the evaluation: {e}");
                            Ok(list_fn(|_, _| Vec::new()))
                        }
                        Err(e) => Err(e.into()),
                    }
                },
            )
    }

    /// Adds a model at the end (replacing one of the same name in place).
    pub fn with<F>(mut self, name: &str, label: &str, build: F) -> Self
    where
        F: for<'a> Fn(&'a Trained<'a>) -> Result<Box<dyn Recommender + 'a>> + Send + Sync + 'static,
    {
        let entry = ModelEntry {
            name: name.to_string(),
            label: label.to_string(),
            build: Box::new(build),
        };
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
        self
    }

    /// Keeps only the models named in `names` (unknown names are an error).
    pub fn only(mut self, names: &[String]) -> Result<Self> {
        for n in names {
            if !self.entries.iter().any(|e| &e.name == n) {
                let known: Vec<&str> = self.names().collect();
                bail!("unknown model '{n}' (known: {})", known.join(", "));
            }
        }
        self.entries.retain(|e| names.contains(&e.name));
        Ok(self)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// TIFU-KNN blended with ALS for never-bought items, as `fit` builds it.
fn tifu_als<'a>(t: &'a Trained<'a>) -> Result<Box<dyn Recommender + 'a>> {
    let model = t.config.repeat_aware.fit(t.train)?;
    Ok(Box::new(ListFn(move |c: u32, k: usize| {
        let mut cf = vec![0f32; t.engine.items().len()];
        t.engine.als().score_user(c as usize, &mut cf);
        ids(model.recommend(c, k, |i| !t.engine.item_meta(i).available, Some(&cf)))
    })))
}

fn ids(list: Vec<(u32, f32)>) -> Vec<u32> {
    list.into_iter().map(|(i, _)| i).collect()
}

fn available(engine: &Engine, i: u32) -> bool {
    engine.item_meta(i).available
}

/// The first `k` popular available items not in `skip`.
fn popularity(engine: &Engine, k: usize, skip: &HashSet<u32>) -> Vec<u32> {
    ids(engine
        .popularity()
        .top(k, |i| skip.contains(&i) || !available(engine, i)))
}

/// P-TopFreq: the customer's items (net positive in training) by the number of
/// orders holding them, ties by net quantity, then by the lower index.
fn own_top_freq(t: &Trained<'_>, c: u32, k: usize) -> Vec<u32> {
    let (items, qty) = t.engine.history().row(c as usize);
    let (oi, on) = t.order_counts.row(c as usize);
    let orders = |i: u32| oi.binary_search(&i).map_or(0.0, |p| on[p]);
    let mut own: Vec<(u32, f32, f32)> = items
        .iter()
        .zip(qty)
        .filter(|&(&i, _)| available(t.engine, i))
        .map(|(&i, &q)| (i, orders(i), q))
        .collect();
    own.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.2.total_cmp(&a.2))
            .then(a.0.cmp(&b.0))
    });
    own.into_iter().take(k).map(|(i, _, _)| i).collect()
}

/// Item-kNN: `score(j) = Σ_{i bought} sim(i, j)`, positive scores only, then popularity.
fn item_knn(engine: &Engine, c: u32, k: usize) -> Vec<u32> {
    let mut scores = vec![0f32; engine.items().len()];
    let basket: Vec<(u32, f32)> = engine
        .history()
        .row(c as usize)
        .0
        .iter()
        .map(|&i| (i, 1.0))
        .collect();
    engine.copurchase().score_items(&basket, &mut scores);
    let list = ids(top_k_dense(&scores, k, |i| {
        scores[i as usize] <= 0.0 || !available(engine, i)
    }));
    pad_with_popular(engine, list, k)
}

/// Pads `list` with popular available items it does not hold, up to `k`.
fn pad_with_popular(engine: &Engine, mut list: Vec<u32>, k: usize) -> Vec<u32> {
    if list.len() < k {
        let have: HashSet<u32> = list.iter().copied().collect();
        list.extend(popularity(engine, k - list.len(), &have));
    }
    list
}

/// Customer x item count of training orders holding a positive line of the item.
pub fn order_counts(log: &PurchaseLog) -> Csr {
    let mut triples: Vec<(u32, u32, u32)> = log
        .purchases
        .iter()
        .filter(|p| p.quantity > 0.0)
        .map(|p| (p.customer.0, p.item.0, p.order.0))
        .collect();
    triples.sort_unstable();
    triples.dedup();
    Csr::from_triplets(
        log.customers.len(),
        log.items.len(),
        triples.into_iter().map(|(c, i, _)| (c, i, 1.0)),
    )
}

// ---------------------------------------------------------------------------
// Scoring

/// What one model scored.
#[derive(Debug, Clone, Serialize)]
pub struct ModelScores {
    pub model: String,
    pub label: String,
    /// `recall@10`, `ndcg@10`, `hit_rate@10`, `map@10`, each also with
    /// `_repeat` and `_new` (e.g. `recall_repeat@10`), and `coverage@10`.
    pub metrics: BTreeMap<String, f64>,
    /// Seconds to build the model from the trained engine and score every customer.
    pub seconds: f64,
    /// Per metric (`recall@K`, `ndcg@K`) and other model of the same run:
    /// this model's relative gain over it with a paired bootstrap interval
    /// ([`Gain`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gains: BTreeMap<String, BTreeMap<String, Gain>>,
}

/// `mean(model) / mean(other) − 1` on one metric over the scored customers,
/// and the 2.5 % and 97.5 % quantiles of that ratio over
/// [`BOOTSTRAP_RESAMPLES`] resamples of the customers (drawn with
/// replacement, the same customers for both models: a paired bootstrap).
/// Seeded by the configuration's seed, so the same run gives the same
/// interval. It says how much of a difference between two rows is the
/// choice of customers: an interval that holds 0 is not a difference this
/// split can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gain {
    pub gain: f64,
    pub low: f64,
    pub high: f64,
}

/// Resamples of the customers behind each [`Gain`] interval.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// The scores of every model on one split.
#[derive(Debug, Clone, Serialize)]
pub struct SplitEvaluation {
    pub split: SplitSummary,
    /// Available items with a net purchase in the training part (the coverage denominator).
    pub catalog_items: usize,
    pub models: Vec<ModelScores>,
    /// Seconds to train the engine on the training part.
    pub train_seconds: f64,
}

/// Trains the engine on the training part of `split` and scores every model
/// of `registry` at each cut-off in `ks`. This is what a tuner calls on the
/// validation split ([`Split::validation`]).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_split(
    log: &PurchaseLog,
    item_meta: &[ItemMeta],
    config: &EngineConfig,
    data: &DataSummary,
    split: &Split,
    ks: &[usize],
    registry: &Registry,
    progress: Option<&mut StageProgress>,
) -> Result<SplitEvaluation> {
    if ks.is_empty() || ks.contains(&0) {
        bail!("--k needs one or more positive cut-offs, e.g. 10,20");
    }
    let prepared = prepare_split(log, item_meta, split);
    let what = split.describe();
    if prepared.train.purchases.is_empty() {
        bail!("no purchase to train on ({what}): move the cutoff later");
    }
    if prepared.test.purchases.is_empty() {
        bail!("no purchase to score ({what}): move the cutoff earlier");
    }
    if prepared.targets.is_empty() {
        bail!("no customer has both a history and a target ({what}): nothing to score");
    }
    let started = std::time::Instant::now();
    let mut silent = |_| {};
    // No model here needs the engine's precomputed lists (the repeat-aware
    // models fit their own below; ALS lists are scored for the target
    // customers only; no evaluated model reads the kept similar-items
    // lists), so they are not built.
    let mut engine_config = config.clone();
    engine_config.for_you.repeat_aware = false;
    engine_config.for_you.new_items_top_n = 0;
    engine_config.hnsw.keep_lists = false;
    let engine = match progress {
        Some(p) => train_engine(
            &prepared.train,
            item_meta.to_vec(),
            &engine_config,
            data.clone(),
            &mut |s| p.on_stage(s),
        )?,
        None => train_engine(
            &prepared.train,
            item_meta.to_vec(),
            &engine_config,
            data.clone(),
            &mut silent,
        )?,
    };
    let train_seconds = started.elapsed().as_secs_f64();
    let counts = order_counts(&prepared.train);
    let trained = Trained {
        engine: &engine,
        train: &prepared.train,
        config,
        order_counts: &counts,
    };
    let mut catalog = vec![false; engine.items().len()];
    for &i in engine.history().indices() {
        catalog[i as usize] = available(&engine, i);
    }
    let catalog_items = catalog.iter().filter(|&&b| b).count();
    let kmax = *ks.iter().max().expect("non-empty");
    let mut models = Vec::new();
    // Per model: per-customer recall and NDCG at each cut-off, for the gains.
    let mut per_customer: Vec<Vec<Vec<f64>>> = Vec::new();
    for entry in registry.entries() {
        let started = std::time::Instant::now();
        let model = (entry.build)(&trained)?;
        let lists: Vec<Vec<u32>> = prepared
            .targets
            .par_iter()
            .map(|t| clean_list(&engine, model.recommend(t.customer, kmax), kmax))
            .collect();
        let mut metrics = score_lists(&lists, &prepared.targets, ks);
        for &k in ks {
            let cov = catalog_coverage(lists.iter().map(Vec::as_slice), k, catalog_items, |i| {
                catalog.get(i as usize).copied().unwrap_or(false)
            });
            metrics.insert(format!("coverage@{k}"), cov);
        }
        per_customer.push(gain_metric_values(&lists, &prepared.targets, ks));
        models.push(ModelScores {
            model: entry.name.clone(),
            label: entry.label.clone(),
            metrics,
            seconds: started.elapsed().as_secs_f64(),
            gains: BTreeMap::new(),
        });
    }
    add_gains(&mut models, &per_customer, ks, config.als.seed);
    Ok(SplitEvaluation {
        split: prepared.summary,
        catalog_items,
        models,
        train_seconds,
    })
}

/// The metrics [`Gain`]s are given for, in the order of
/// [`gain_metric_values`]: recall and NDCG at each cut-off.
fn gain_metric_names(ks: &[usize]) -> Vec<String> {
    ks.iter()
        .flat_map(|k| [format!("recall@{k}"), format!("ndcg@{k}")])
        .collect()
}

/// Per metric of [`gain_metric_names`], the value of each target customer
/// (0 where undefined: every target has a relevant item, so none is).
fn gain_metric_values(lists: &[Vec<u32>], targets: &[Target], ks: &[usize]) -> Vec<Vec<f64>> {
    ks.iter()
        .flat_map(|&k| {
            [
                recall_at_k as fn(&[u32], &HashSet<u32>, usize) -> Option<f64>,
                ndcg_at_k,
            ]
            .map(|f| {
                lists
                    .iter()
                    .zip(targets)
                    .map(|(l, t)| f(l, &t.relevant, k).unwrap_or(0.0))
                    .collect()
            })
        })
        .collect()
}

/// Fills [`ModelScores::gains`] of every model against every other from
/// `values[model][metric][customer]` ([`gain_metric_values`]). Each resample
/// draws the customers once and sums every model's metrics over them, so the
/// cost is resamples x customers x models x metrics additions, whatever the
/// number of pairs.
fn add_gains(models: &mut [ModelScores], values: &[Vec<Vec<f64>>], ks: &[usize], seed: u64) {
    use rand::{Rng, SeedableRng};
    let names = gain_metric_names(ks);
    let n = values.first().and_then(|m| m.first()).map_or(0, Vec::len);
    if models.len() < 2 || n == 0 {
        return;
    }
    let total = |m: usize, f: usize| values[m][f].iter().sum::<f64>();
    // sums[r][m][f]: model m's metric f summed over resample r's customers.
    let sums: Vec<Vec<Vec<f64>>> = (0..BOOTSTRAP_RESAMPLES)
        .into_par_iter()
        .map(|r| {
            // One stream per resample: the same draws on any number of threads.
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(
                seed ^ (r as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut counts = vec![0u32; n];
            for _ in 0..n {
                counts[rng.gen_range(0..n)] += 1;
            }
            values
                .iter()
                .map(|metrics| {
                    metrics
                        .iter()
                        .map(|v| v.iter().zip(&counts).map(|(x, &c)| x * f64::from(c)).sum())
                        .collect()
                })
                .collect()
        })
        .collect();
    let quantile = |sorted: &[f64], q: f64| {
        let pos = q * (sorted.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    };
    for a in 0..models.len() {
        for (f, name) in names.iter().enumerate() {
            let mut row = BTreeMap::new();
            for b in (0..models.len()).filter(|&b| b != a) {
                let base = total(b, f);
                if base <= 0.0 {
                    continue;
                }
                let mut ratios: Vec<f64> = sums
                    .iter()
                    .filter(|s| s[b][f] > 0.0)
                    .map(|s| s[a][f] / s[b][f] - 1.0)
                    .collect();
                if ratios.is_empty() {
                    continue;
                }
                ratios.sort_by(f64::total_cmp);
                row.insert(
                    models[b].model.clone(),
                    Gain {
                        gain: total(a, f) / base - 1.0,
                        low: quantile(&ratios, 0.025),
                        high: quantile(&ratios, 0.975),
                    },
                );
            }
            if !row.is_empty() {
                models[a].gains.insert(name.clone(), row);
            }
        }
    }
}

/// Drops unavailable and repeated items and truncates to `k`.
fn clean_list(engine: &Engine, list: Vec<u32>, k: usize) -> Vec<u32> {
    let n = engine.items().len();
    let mut seen = HashSet::new();
    list.into_iter()
        .filter(|&i| (i as usize) < n && available(engine, i) && seen.insert(i))
        .take(k)
        .collect()
}

/// Mean per-customer metrics of `lists` (one per target, same order) for
/// every metric, view and cut-off; a metric undefined for every customer is
/// left out.
pub fn score_lists(lists: &[Vec<u32>], targets: &[Target], ks: &[usize]) -> BTreeMap<String, f64> {
    type Metric = fn(&[u32], &HashSet<u32>, usize) -> Option<f64>;
    let fns: [Metric; 4] = [
        recall_at_k,
        ndcg_at_k,
        hit_rate_at_k,
        average_precision_at_k,
    ];
    let mut sums: HashMap<String, (f64, usize)> = HashMap::new();
    for (list, t) in lists.iter().zip(targets) {
        for (view, set) in VIEWS.iter().zip([&t.relevant, &t.repeat, &t.new]) {
            for &k in ks {
                for (name, f) in METRICS.iter().zip(fns) {
                    if let Some(v) = f(list, set, k) {
                        let e = sums.entry(format!("{name}{view}@{k}")).or_default();
                        e.0 += v;
                        e.1 += 1;
                    }
                }
            }
        }
    }
    sums.into_iter()
        .map(|(k, (s, n))| (k, s / n as f64))
        .collect()
}

// ---------------------------------------------------------------------------
// The report

/// What `encore-train evaluate` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// The test split.
    pub split: Split,
    /// Length of the time split's validation window.
    pub validation_days: f64,
    pub ks: Vec<usize>,
    /// Also train and score every model on the validation split.
    pub score_validation: bool,
}

/// The validation split as reported.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub split: SplitSummary,
    /// Time split: the window length in days.
    pub days: Option<f64>,
    /// Scores on the validation split, when asked for (`--score-validation`).
    pub models: Option<Vec<ModelScores>>,
}

/// The result of an evaluation run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The test cutoff, or `each customer's last order` for next basket.
    pub cutoff: String,
    pub split: SplitSummary,
    pub validation: ValidationReport,
    pub ks: Vec<usize>,
    pub train_purchases: usize,
    pub test_purchases: usize,
    /// Customers scored (history and target).
    pub customers_scored: usize,
    /// Customers eligible on the target side (see [`SplitSummary::customers_eligible`]).
    pub customers_in_test: usize,
    /// The coverage denominator.
    pub catalog_items: usize,
    pub data_fingerprint: String,
    pub data: DataSummary,
    pub config: EngineConfig,
    /// The ALS seed (every other model is deterministic).
    pub seed: u64,
    pub models: Vec<ModelScores>,
    pub train_seconds: f64,
    /// The customer models fitted before the time split's cutoff and checked
    /// against the target period ([`encore_model::customer::holdout`]);
    /// `None` when skipped (see `customers_skipped`).
    pub customers: Option<CustomerHoldout>,
    /// Why there is no customer section (the next-basket split).
    pub customers_skipped: Option<String>,
}

/// Trains on the purchases before `cutoff` and scores the baselines after it
/// (the time split with the default validation window), and the "for you"
/// model the configuration serves ([`Registry::for_fit`]).
///
/// The lists only: the customer section is left out (`customers_skipped`
/// says so), so that the holdout evaluation of `fit` costs no second
/// customer fit.
pub fn evaluate(
    log: &PurchaseLog,
    item_meta: &[ItemMeta],
    config: &EngineConfig,
    data: &DataSummary,
    cutoff: i64,
    ks: &[usize],
    progress: Option<&mut StageProgress>,
) -> Result<EvalReport> {
    let options = EvalOptions {
        split: Split::Time { cutoff, end: None },
        validation_days: DEFAULT_VALIDATION_DAYS,
        ks: ks.to_vec(),
        score_validation: false,
    };
    let mut r = evaluate_lists(
        log,
        item_meta,
        config,
        data,
        &options,
        &Registry::for_fit(config, log.customers.len())?,
        progress,
    )?;
    r.customers_skipped = Some(CUSTOMERS_SKIPPED_FIT.to_string());
    Ok(r)
}

/// Scores every model of `registry` on the test split of `options`,
/// describes (optionally scores) its validation split, and with the time
/// split checks the customer models at its cutoff (module docs).
pub fn evaluate_with(
    log: &PurchaseLog,
    item_meta: &[ItemMeta],
    config: &EngineConfig,
    data: &DataSummary,
    options: &EvalOptions,
    registry: &Registry,
    progress: Option<&mut StageProgress>,
) -> Result<EvalReport> {
    let mut r = evaluate_lists(log, item_meta, config, data, options, registry, progress)?;
    let (customers, skipped) = customer_section(log, item_meta, config, &options.split)?;
    r.customers = customers;
    r.customers_skipped = skipped;
    Ok(r)
}

/// [`evaluate_with`] without the customer section.
fn evaluate_lists(
    log: &PurchaseLog,
    item_meta: &[ItemMeta],
    config: &EngineConfig,
    data: &DataSummary,
    options: &EvalOptions,
    registry: &Registry,
    mut progress: Option<&mut StageProgress>,
) -> Result<EvalReport> {
    if registry.is_empty() {
        bail!("no model to evaluate");
    }
    if !(options.validation_days.is_finite() && options.validation_days > 0.0) {
        bail!(
            "--validation-days must be a positive number of days, not {}",
            options.validation_days
        );
    }
    let ks = &options.ks;
    let test = evaluate_split(
        log,
        item_meta,
        config,
        data,
        &options.split,
        ks,
        registry,
        progress.as_deref_mut(),
    )?;
    let vsplit = options.split.validation(options.validation_days);
    let (vsummary, vmodels) = if options.score_validation {
        let v = evaluate_split(
            log, item_meta, config, data, &vsplit, ks, registry, progress,
        )
        .map_err(|e| e.context("validation split"))?;
        (v.split, Some(v.models))
    } else {
        (prepare_split(log, item_meta, &vsplit).summary, None)
    };
    let cutoff = match options.split {
        Split::Time { cutoff, .. } => format_timestamp(cutoff),
        Split::NextBasket { .. } => "each customer's last order".to_string(),
    };
    Ok(EvalReport {
        cutoff,
        ks: ks.clone(),
        train_purchases: test.split.train_purchases,
        test_purchases: test.split.test_purchases,
        customers_scored: test.split.customers_scored,
        customers_in_test: test.split.customers_eligible,
        split: test.split,
        validation: ValidationReport {
            split: vsummary,
            days: matches!(options.split, Split::Time { .. }).then_some(options.validation_days),
            models: vmodels,
        },
        catalog_items: test.catalog_items,
        data_fingerprint: data.fingerprint.clone(),
        data: data.clone(),
        config: config.clone(),
        seed: config.als.seed,
        models: test.models,
        train_seconds: test.train_seconds,
        customers: None,
        customers_skipped: None,
    })
}

/// Why the holdout evaluation of `fit` has no customer section.
pub const CUSTOMERS_SKIPPED_FIT: &str = "the holdout evaluation of fit scores the lists only; encore-train evaluate adds the customer models";

/// Why the next-basket split has no customer section.
pub const CUSTOMERS_SKIPPED_NEXT_BASKET: &str = "the next-basket split has no common cutoff to fit the customer models at; \
     run evaluate with --split time --holdout-from T for the customer section";

/// The customer section of a report: the customer models of `config`
/// fitted before a time split's cutoff (the catalog's categories for the
/// replenishment cycles) and checked against the split's target period;
/// skipped, with the reason, for next basket.
fn customer_section(
    log: &PurchaseLog,
    item_meta: &[ItemMeta],
    config: &EngineConfig,
    split: &Split,
) -> Result<(Option<CustomerHoldout>, Option<String>)> {
    let Split::Time { cutoff, end } = *split else {
        return Ok((None, Some(CUSTOMERS_SKIPPED_NEXT_BASKET.to_string())));
    };
    let categories: Vec<Option<String>> = (0..log.items.len())
        .map(|i| item_meta.get(i).and_then(|m| m.category.clone()))
        .collect();
    let h = evaluate_customers(log, cutoff, end, &config.customers, &categories)
        .map_err(|e| anyhow::anyhow!("the customer models: {e}"))?;
    Ok((Some(h), None))
}

/// Column headers of the table and the metric each shows, per cut-off.
const COLUMNS: [(&str, &str); 7] = [
    ("R", "recall"),
    ("NDCG", "ndcg"),
    ("HR", "hit_rate"),
    ("MAP", "map"),
    ("Rrep", "recall_repeat"),
    ("Rnew", "recall_new"),
    ("Cov", "coverage"),
];

impl EvalReport {
    /// The score of `model` for `metric` (e.g. `"recall@10"`).
    pub fn get(&self, model: &str, metric: &str) -> Option<f64> {
        self.models
            .iter()
            .find(|m| m.model == model)
            .and_then(|m| m.metrics.get(metric).copied())
    }

    /// A plain-text report: the split, its counts, and a table with one row a
    /// model and one column a metric at a cut-off.
    pub fn table(&self) -> String {
        let s = &self.split;
        let mut out = String::new();
        out.push_str(&format!("split       {}: {}\n", s.kind, s.description));
        let v = &self.validation.split;
        out.push_str(&format!(
            "validation  {} ({} customers would be scored; for tuning only, the test targets are never used to choose parameters)\n",
            v.description, v.customers_scored
        ));
        out.push_str(&format!(
            "customers   {} scored of {} eligible ({} with repeat targets, {} with new); {:.2} relevant items each, {:.1}% repeats\n",
            s.customers_scored,
            s.customers_eligible,
            s.customers_with_repeat,
            s.customers_with_new,
            s.mean_relevant,
            100.0 * s.repeat_share
        ));
        out.push_str(&format!(
            "purchases   {} train / {} target / {} left out; coverage over {} items; seed {}\n",
            s.train_purchases,
            s.test_purchases,
            s.left_out_purchases,
            self.catalog_items,
            self.seed
        ));
        out.push_str(&models_table(&self.models, &self.ks));
        out.push_str(&gains_table(&self.models, &self.ks));
        if let Some(vm) = &self.validation.models {
            out.push_str("validation split:\n");
            out.push_str(&models_table(vm, &self.ks));
        }
        out.push_str(
            "R recall, HR hit rate, Rrep/Rnew recall of repeat/new items, Cov catalog coverage\n",
        );
        match (&self.customers, &self.customers_skipped) {
            (Some(h), _) => {
                for line in h.describe() {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            (None, Some(why)) => out.push_str(&format!("customer models: skipped, {why}\n")),
            (None, None) => {}
        }
        out
    }
}

/// For recall and NDCG at each cut-off of `ks`, the
/// best model against the second best and the best one's [`Gain`] over it:
/// `(metric, best, second, gain)`. What the text and HTML reports show.
pub fn best_against_second<'a>(
    models: &'a [ModelScores],
    ks: &[usize],
) -> Vec<(String, &'a ModelScores, &'a ModelScores, Gain)> {
    gain_metric_names(ks)
        .into_iter()
        .filter_map(|name| {
            let mut ranked: Vec<(&ModelScores, f64)> = models
                .iter()
                .filter_map(|m| m.metrics.get(&name).map(|&v| (m, v)))
                .collect();
            ranked.sort_by(|x, y| y.1.total_cmp(&x.1));
            let [(best, _), (second, _), ..] = ranked[..] else {
                return None;
            };
            let gain = *best.gains.get(&name)?.get(&second.model)?;
            Some((name, best, second, gain))
        })
        .collect()
}

/// [`best_against_second`] as text lines under the table.
fn gains_table(models: &[ModelScores], ks: &[usize]) -> String {
    let rows = best_against_second(models, ks);
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "best against second best, relative, with a 95% paired bootstrap interval over customers ({BOOTSTRAP_RESAMPLES} resamples):\n"
    );
    for (name, best, second, g) in rows {
        out.push_str(&format!(
            "  {name:<10} {} vs {}: {:+.1}% [{:+.1}%, {:+.1}%]\n",
            best.model,
            second.model,
            100.0 * g.gain,
            100.0 * g.low,
            100.0 * g.high
        ));
    }
    out
}

fn models_table(models: &[ModelScores], ks: &[usize]) -> String {
    let width = models
        .iter()
        .map(|m| m.model.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:<width$}", "model");
    for &k in ks {
        for (head, _) in COLUMNS {
            out.push_str(&format!(" {:>8}", format!("{head}@{k}")));
        }
    }
    out.push('\n');
    for m in models {
        out.push_str(&format!("{:<width$}", m.model));
        for &k in ks {
            for (_, metric) in COLUMNS {
                match m.metrics.get(&format!("{metric}@{k}")) {
                    Some(v) => out.push_str(&format!(" {v:>8.4}")),
                    None => out.push_str(&format!(" {:>8}", "-")),
                }
            }
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// Export

/// Where [`export_splits`] puts the validation split, under the export directory.
pub const VALIDATION_EXPORT_DIR: &str = "validation";

/// What [`export_split`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedSplit {
    /// Lines of `train.csv`.
    pub train_rows: usize,
    /// Lines of `test.csv`: one per scored customer and relevant item.
    pub target_rows: usize,
    pub customers_scored: usize,
}

/// Writes `prepared` as files any tool can read, so that other libraries are
/// trained and scored on exactly what the evaluator trains and scores:
///
/// - `train.csv`: the training part in the canonical input schema
///   (`order_id,customer_id,item_id,timestamp,quantity,price`), one line a
///   purchase line in log order, returns as negative quantities, an empty
///   price when the input had none. Ingesting it gives the same purchases.
/// - `test.csv` (`customer_id,item_id`): the targets, one line per scored
///   customer and relevant item (available, net positive in the target part,
///   customers with a training history), sorted by customer and item index.
/// - `items.csv` (`item_id,available`): every item of the log in index order
///   (list ties break by it); unavailable items are never recommended.
/// - `meta.json`: the split, its cut-offs and counts, the cut-offs `ks`, the
///   input's path and fingerprint and the popularity window (for baselines
///   that pad with popularity).
pub fn export_split(
    prepared: &PreparedSplit,
    item_meta: &[ItemMeta],
    ks: &[usize],
    data: &DataSummary,
    config: &EngineConfig,
    dir: &std::path::Path,
) -> Result<ExportedSplit> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let writer = |name: &str| {
        let path = dir.join(name);
        csv::Writer::from_path(&path).with_context(|| format!("cannot write {}", path.display()))
    };
    let log = &prepared.train;
    let mut train = writer("train.csv")?;
    train.write_record([
        "order_id",
        "customer_id",
        "item_id",
        "timestamp",
        "quantity",
        "price",
    ])?;
    for p in &log.purchases {
        let price = if p.price.is_nan() {
            String::new()
        } else {
            p.price.to_string()
        };
        train.write_record([
            log.orders.id(p.order.0),
            log.customers.id(p.customer.0),
            log.items.id(p.item.0),
            &format_timestamp(p.time),
            &p.quantity.to_string(),
            &price,
        ])?;
    }
    train.flush()?;
    let mut test = writer("test.csv")?;
    test.write_record(["customer_id", "item_id"])?;
    let mut target_rows = 0;
    for t in &prepared.targets {
        let mut items: Vec<u32> = t.relevant.iter().copied().collect();
        items.sort_unstable();
        for i in items {
            test.write_record([log.customers.id(t.customer), log.items.id(i)])?;
            target_rows += 1;
        }
    }
    test.flush()?;
    let mut items = writer("items.csv")?;
    items.write_record(["item_id", "available"])?;
    for (i, id) in log.items.ids().enumerate() {
        let available = item_meta.get(i).is_none_or(|m| m.available);
        items.write_record([id, if available { "1" } else { "0" }])?;
    }
    items.flush()?;
    let (cutoff, end, skip_last) = match prepared.split {
        Split::Time { cutoff, end } => (Some(cutoff), end, None),
        Split::NextBasket { skip_last } => (None, None, Some(skip_last)),
    };
    let meta = serde_json::json!({
        "split": prepared.split.kind(),
        "description": prepared.split.describe(),
        "cutoff": cutoff.map(format_timestamp),
        "end": end.map(format_timestamp),
        "skip_last": skip_last,
        "ks": ks,
        "customers_scored": prepared.targets.len(),
        "target_rows": target_rows,
        "train_rows": log.purchases.len(),
        "input": { "path": data.source, "fingerprint": data.fingerprint },
        "popularity_window_days": config.popularity.window_days,
        "summary": prepared.summary,
        "files": { "train": "train.csv", "test": "test.csv", "items": "items.csv" },
    });
    let path = dir.join("meta.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&meta)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(ExportedSplit {
        train_rows: log.purchases.len(),
        target_rows,
        customers_scored: prepared.targets.len(),
    })
}

/// Exports the test split of `options` to `dir` and its validation split
/// ([`Split::validation`]) to `dir/validation` (see [`export_split`]).
pub fn export_splits(
    log: &PurchaseLog,
    item_meta: &[ItemMeta],
    config: &EngineConfig,
    data: &DataSummary,
    options: &EvalOptions,
    dir: &std::path::Path,
) -> Result<(ExportedSplit, ExportedSplit)> {
    let test = prepare_split(log, item_meta, &options.split);
    let test = export_split(&test, item_meta, &options.ks, data, config, dir)?;
    let vsplit = options.split.validation(options.validation_days);
    let validation = prepare_split(log, item_meta, &vsplit);
    let validation = export_split(
        &validation,
        item_meta,
        &options.ks,
        data,
        config,
        &dir.join(VALIDATION_EXPORT_DIR),
    )?;
    Ok((test, validation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u32]) -> HashSet<u32> {
        items.iter().copied().collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Two customers scored by hand.
    #[test]
    fn hand_computed_means() {
        let targets = vec![
            // Relevant {1, 2, 3}; 1 bought before.
            Target {
                customer: 0,
                relevant: set(&[1, 2, 3]),
                repeat: set(&[1]),
                new: set(&[2, 3]),
            },
            // Relevant {5}, new.
            Target {
                customer: 1,
                relevant: set(&[5]),
                repeat: set(&[]),
                new: set(&[5]),
            },
        ];
        // Customer 0: hits at ranks 2 (item 1) and 3 (item 3). Customer 1: no hit.
        let lists = vec![vec![9, 1, 3], vec![1, 2, 3]];
        let m = score_lists(&lists, &targets, &[1, 3]);
        // recall@3: (2/3 + 0) / 2
        assert!(close(m["recall@3"], 1.0 / 3.0));
        assert!(close(m["recall@1"], 0.0));
        // hit_rate@3: (1 + 0) / 2
        assert!(close(m["hit_rate@3"], 0.5));
        // NDCG@3, customer 0: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3 + 1/log2 4)
        let l3 = 3f64.log2();
        let n0 = (1.0 / l3 + 0.5) / (1.0 + 1.0 / l3 + 0.5);
        assert!(close(m["ndcg@3"], n0 / 2.0));
        // AP@3, customer 0: (1/2 + 2/3) / min(3, 3)
        assert!(close(m["map@3"], (0.5 + 2.0 / 3.0) / 3.0 / 2.0));
        // Repeat: only customer 0 has repeat targets; item 1 at rank 2.
        assert!(close(m["recall_repeat@3"], 1.0));
        assert!(close(m["ndcg_repeat@3"], 1.0 / l3));
        assert!(close(m["map_repeat@3"], 0.5));
        // New: customer 0 finds 3 of {2, 3} at rank 3, customer 1 nothing.
        assert!(close(m["recall_new@3"], (0.5 + 0.0) / 2.0));
        assert!(close(m["hit_rate_new@1"], 0.0));
    }

    fn log_of(lines: &[(&str, &str, &str, i64, f32)]) -> PurchaseLog {
        let mut log = PurchaseLog::default();
        for &(o, c, i, t, q) in lines {
            log.push(o, c, i, t, q, 1.0);
        }
        log
    }

    fn scores(name: &str) -> ModelScores {
        ModelScores {
            model: name.into(),
            label: String::new(),
            metrics: BTreeMap::new(),
            seconds: 0.0,
            gains: BTreeMap::new(),
        }
    }

    #[test]
    fn gains_and_their_bootstrap_intervals() {
        let ks = [10];
        // Per model, per metric (recall@10, ndcg@10), per customer.
        let b: Vec<f64> = (0..200).map(|c| f64::from(c % 7) / 10.0).collect();
        let doubled: Vec<f64> = b.iter().map(|v| 2.0 * v).collect();
        // Better on some customers, worse on others: a noisy difference.
        let noisy: Vec<f64> = b
            .iter()
            .enumerate()
            .map(|(c, v)| if c % 3 == 0 { 0.0 } else { v + 0.1 })
            .collect();
        let values = vec![
            vec![b.clone(), b.clone()],
            vec![doubled.clone(), doubled],
            vec![noisy.clone(), noisy.clone()],
        ];
        let run = |seed| {
            let mut models = vec![scores("b"), scores("double"), scores("noisy")];
            add_gains(&mut models, &values, &ks, seed);
            models
        };
        let models = run(42);
        // Twice as good on every customer: +100 % in every resample.
        let g = models[1].gains["ndcg@10"]["b"];
        assert!((g.gain - 1.0).abs() < 1e-12 && (g.low - 1.0).abs() < 1e-12);
        assert!((g.high - 1.0).abs() < 1e-12, "{g:?}");
        let back = models[0].gains["recall@10"]["double"];
        assert!((back.gain + 0.5).abs() < 1e-12, "{back:?}");
        // A noisy difference: the interval brackets the gain and has width.
        let g = models[2].gains["recall@10"]["b"];
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!((g.gain - (mean(&noisy) / mean(&b) - 1.0)).abs() < 1e-12);
        assert!(g.low < g.gain && g.gain < g.high, "{g:?}");
        assert!(g.high - g.low > 0.01, "{g:?}");
        // Seeded: the same seed gives the same intervals, another seed others.
        assert_eq!(run(42)[2].gains, models[2].gains);
        assert_ne!(run(7)[2].gains["recall@10"]["b"], g);
        // No model is compared with itself.
        assert!(!models[0].gains["recall@10"].contains_key("b"));
    }

    #[test]
    fn next_basket_cut() {
        let log = log_of(&[
            ("o1", "a", "x", 10, 2.0),
            ("o1", "a", "y", 10, 1.0),
            ("o2", "a", "y", 20, 1.0),
            ("o3", "a", "z", 30, 1.0),
            ("o3", "a", "x", 30, 1.0),
            ("c1", "a", "z", 40, -1.0), // cancellation after the last order: left out
            ("o4", "b", "x", 15, 1.0),  // b has a single order: target without history
            ("o5", "c", "y", 5, 1.0),
            ("o6", "c", "z", 25, 1.0),
        ]);
        let meta = vec![ItemMeta::default(); 3];
        let p = prepare_split(&log, &meta, &Split::NextBasket { skip_last: 0 });
        // Train: a's o1, o2; c's o5. Target: a's o3, b's o4, c's o6.
        assert_eq!(p.train.purchases.len(), 4);
        assert_eq!(p.test.purchases.len(), 4);
        assert_eq!(p.summary.left_out_purchases, 1);
        assert_eq!(p.summary.customers_eligible, 2);
        assert_eq!(p.summary.customers_scored, 2);
        let a = &p.targets[0];
        assert_eq!(a.relevant, set(&[0, 2]));
        assert_eq!(a.repeat, set(&[0]));
        assert_eq!(a.new, set(&[2]));

        let v = prepare_split(
            &log,
            &meta,
            &Split::NextBasket { skip_last: 0 }.validation(30.0),
        );
        // Validation: a's o2 is the target (history o1), c has no history before o5.
        assert_eq!(v.summary.customers_eligible, 1);
        assert_eq!(v.targets.len(), 1);
        assert_eq!(v.targets[0].relevant, set(&[1]));
        assert_eq!(v.targets[0].repeat, set(&[1]));
        assert_eq!(v.train.purchases.len(), 2);
    }

    #[test]
    fn time_split_validation_ends_at_the_test_cutoff() {
        let s = Split::Time {
            cutoff: 100 * 86_400,
            end: None,
        };
        assert_eq!(
            s.validation(30.0),
            Split::Time {
                cutoff: 70 * 86_400,
                end: Some(100 * 86_400)
            }
        );
        let log = log_of(&[
            ("o1", "a", "x", 10, 1.0),
            ("o2", "a", "y", 75 * 86_400, 1.0),
            ("o3", "a", "z", 100 * 86_400, 1.0),
        ]);
        let meta = vec![ItemMeta::default(); 3];
        let v = prepare_split(&log, &meta, &s.validation(30.0));
        assert_eq!(v.train.purchases.len(), 1);
        assert_eq!(v.test.purchases.len(), 1);
        assert_eq!(v.summary.left_out_purchases, 1);
        assert_eq!(v.targets[0].new, set(&[1]));
    }

    #[test]
    fn order_counts_count_orders_not_lines() {
        let log = log_of(&[
            ("o1", "a", "x", 10, 1.0),
            ("o1", "a", "x", 10, 1.0),
            ("o2", "a", "x", 20, 5.0),
            ("o3", "a", "x", 30, -1.0),
        ]);
        let m = order_counts(&log);
        assert_eq!(m.get(0, 0), 2.0);
    }
    /// The exported targets are the evaluator's, and `train.csv` ingests back
    /// to the same training purchases.
    #[test]
    fn export_round_trips() {
        use encore_data::ingest::IngestOptions;
        use encore_data::input::read_purchases;
        use encore_data::synth::{SynthParams, generate};
        let log = generate(&SynthParams {
            customers: 120,
            items: 60,
            purchases: 3_000,
            categories: 4,
            zipf_exponent: 1.0,
            seed: 3,
            start: 1_672_531_200,
        });
        let mut log = log;
        // A return and a line without a price.
        let (c, i) = (log.customers.id(0).to_string(), log.items.id(1).to_string());
        log.push("r1", &c, &i, 1_672_531_200 + 86_400, -1.0, 2.5);
        log.push("n1", &c, &i, 1_672_531_200 + 2 * 86_400, 3.0, f32::NAN);
        let mut meta = vec![ItemMeta::default(); log.items.len()];
        meta[0].available = false;
        let config = EngineConfig::default();
        let data = DataSummary {
            fingerprint: "sha256:synthetic".into(),
            source: "synth".into(),
            ..DataSummary::default()
        };
        let (_, last) = log.time_range().unwrap();
        for split in [
            Split::Time {
                cutoff: last - 40 * 86_400,
                end: None,
            },
            Split::NextBasket { skip_last: 0 },
        ] {
            let dir = tempfile::tempdir().unwrap();
            let options = EvalOptions {
                split,
                validation_days: 20.0,
                ks: vec![10, 20],
                score_validation: false,
            };
            let (test, validation) =
                export_splits(&log, &meta, &config, &data, &options, dir.path()).unwrap();
            for (sub, exported, s) in [
                (dir.path().to_path_buf(), &test, split),
                (
                    dir.path().join(VALIDATION_EXPORT_DIR),
                    &validation,
                    split.validation(20.0),
                ),
            ] {
                let p = prepare_split(&log, &meta, &s);
                let n_relevant: usize = p.targets.iter().map(|t| t.relevant.len()).sum();
                assert!(n_relevant > 0);
                assert_eq!(exported.target_rows, n_relevant);
                assert_eq!(exported.customers_scored, p.targets.len());
                // test.csv: the same (customer, item) pairs.
                let mut rows = csv::Reader::from_path(sub.join("test.csv")).unwrap();
                let mut pairs: HashSet<(String, String)> = HashSet::new();
                for r in rows.records() {
                    let r = r.unwrap();
                    pairs.insert((r[0].to_string(), r[1].to_string()));
                }
                assert_eq!(pairs.len(), n_relevant);
                for t in &p.targets {
                    for &i in &t.relevant {
                        let key = (
                            log.customers.id(t.customer).to_string(),
                            log.items.id(i).to_string(),
                        );
                        assert!(pairs.contains(&key));
                    }
                }
                // train.csv ingests back to the training purchases.
                let opts = IngestOptions {
                    strict: true,
                    ..IngestOptions::default()
                };
                let (back, report) = read_purchases(&sub.join("train.csv"), &opts).unwrap();
                assert_eq!(report.rows_accepted, p.train.purchases.len() as u64);
                assert_eq!(back.purchases.len(), p.train.purchases.len());
                for (a, b) in back.purchases.iter().zip(&p.train.purchases) {
                    assert_eq!(
                        back.customers.id(a.customer.0),
                        log.customers.id(b.customer.0)
                    );
                    assert_eq!(back.items.id(a.item.0), log.items.id(b.item.0));
                    assert_eq!(back.orders.id(a.order.0), log.orders.id(b.order.0));
                    assert_eq!((a.time, a.quantity), (b.time, b.quantity));
                    assert!(a.price == b.price || (a.price.is_nan() && b.price.is_nan()));
                }
                let m: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(sub.join("meta.json")).unwrap()).unwrap();
                assert_eq!(m["customers_scored"].as_u64(), Some(p.targets.len() as u64));
                assert_eq!(m["split"].as_str(), Some(s.kind()));
                let items = std::fs::read_to_string(sub.join("items.csv")).unwrap();
                assert_eq!(items.lines().count(), log.items.len() + 1);
            }
        }
    }
}
