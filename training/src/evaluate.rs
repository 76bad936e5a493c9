//! Time-ordered holdout evaluation.
//!
//! Every model is trained on the purchases before a cutoff and asked for a
//! ranked list per customer; the list is scored against the items the customer
//! bought at or after the cutoff.
//!
//! - Customers scored: those with at least one purchase before the cutoff and
//!   at least one (net positive) purchase of an available item after it; the
//!   count is reported. Unavailable catalog items (fees, postage) are neither
//!   recommended by any list nor counted as relevant.
//! - Relevant items: distinct items bought after the cutoff. Items the customer
//!   had bought before count too, and every list may contain them: repeat
//!   buying is most of what a retailer sells, so it is not filtered away.
//!   The report also splits each metric into *repeat* relevant items (bought
//!   before the cutoff) and *new* ones.
//! - Metrics (binary relevance, averaged over scored customers):
//!   `Recall@K = |top K ∩ relevant| / |relevant|` and
//!   `NDCG@K = DCG@K / IDCG@K` with `DCG = Σ_{r ≤ K, item_r relevant} 1 / log2(r + 1)`
//!   and IDCG the DCG of a perfect list of `min(|relevant|, K)` hits.

use crate::progress::StageProgress;
use anyhow::{Result, bail};
use encore_data::timestamp::format_timestamp;
use encore_data::{InteractionMatrix, PurchaseLog, Weighting};
use encore_model::artifact::DataSummary;
use encore_model::engine::{Engine, ItemMeta, ListFilter};
use encore_model::metrics::{ndcg_at_k, recall_at_k};
use encore_model::pipeline::{EngineConfig, train_engine};
use encore_model::topk::top_k_dense;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// The models every evaluation scores.
pub const MODELS: [&str; 4] = ["als", "copurchase", "popularity", "own_top"];

/// What one model scored.
#[derive(Debug, Clone, Serialize)]
pub struct ModelScores {
    pub model: String,
    /// `recall@10`, `ndcg@10`, `recall_repeat@10`, `recall_new@10`, ...
    pub metrics: BTreeMap<String, f64>,
}

/// The result of an evaluation run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub cutoff: String,
    pub ks: Vec<usize>,
    pub train_purchases: usize,
    pub test_purchases: usize,
    /// Customers with purchases on both sides of the cutoff (the ones scored).
    pub customers_scored: usize,
    /// Customers with purchases after the cutoff.
    pub customers_in_test: usize,
    pub data_fingerprint: String,
    pub config: EngineConfig,
    pub models: Vec<ModelScores>,
    pub train_seconds: f64,
}

impl EvalReport {
    /// The score of `model` for `metric` (e.g. `"recall@10"`).
    pub fn get(&self, model: &str, metric: &str) -> Option<f64> {
        self.models
            .iter()
            .find(|m| m.model == model)
            .and_then(|m| m.metrics.get(metric).copied())
    }

    /// A plain-text table: one row a model, one column a metric.
    pub fn table(&self) -> String {
        let mut cols: Vec<String> = Vec::new();
        for &k in &self.ks {
            for m in ["recall", "ndcg", "recall_repeat", "recall_new"] {
                cols.push(format!("{m}@{k}"));
            }
        }
        let mut out = format!(
            "holdout from {}: {} customers scored ({} bought after the cutoff), {} train / {} test purchases\n",
            self.cutoff,
            self.customers_scored,
            self.customers_in_test,
            self.train_purchases,
            self.test_purchases
        );
        out.push_str(&format!("{:<12}", "model"));
        for c in &cols {
            out.push_str(&format!(" {c:>16}"));
        }
        out.push('\n');
        for m in &self.models {
            out.push_str(&format!("{:<12}", m.model));
            for c in &cols {
                match m.metrics.get(c) {
                    Some(v) => out.push_str(&format!(" {v:>16.4}")),
                    None => out.push_str(&format!(" {:>16}", "-")),
                }
            }
            out.push('\n');
        }
        out
    }
}

/// One scored customer: index, relevant items, and which of them were bought before.
struct Target {
    customer: u32,
    relevant: HashSet<u32>,
    repeat: HashSet<u32>,
    new: HashSet<u32>,
}

/// Trains on `log` before `cutoff` and scores every model after it.
pub fn evaluate(
    log: &PurchaseLog,
    item_meta: &[ItemMeta],
    config: &EngineConfig,
    data: &DataSummary,
    cutoff: i64,
    ks: &[usize],
    progress: Option<&mut StageProgress>,
) -> Result<EvalReport> {
    if ks.is_empty() || ks.contains(&0) {
        bail!("--k needs one or more positive cut-offs, e.g. 10,20");
    }
    let (train, test) = log.split_at(cutoff);
    if train.purchases.is_empty() {
        bail!(
            "no purchase before the holdout cutoff {}: move the cutoff later",
            format_timestamp(cutoff)
        );
    }
    if test.purchases.is_empty() {
        bail!(
            "no purchase at or after the holdout cutoff {}: move the cutoff earlier",
            format_timestamp(cutoff)
        );
    }
    let started = std::time::Instant::now();
    let mut silent = |_| {};
    let engine = match progress {
        Some(p) => train_engine(&train, item_meta.to_vec(), config, data.clone(), &mut |s| {
            p.on_stage(s)
        })?,
        None => train_engine(
            &train,
            item_meta.to_vec(),
            config,
            data.clone(),
            &mut silent,
        )?,
    };
    let train_seconds = started.elapsed().as_secs_f64();

    let after = InteractionMatrix::from_log(&test, &Weighting::default()).matrix;
    let history = engine.history();
    let customers_in_test = (0..after.n_rows())
        .filter(|&c| after.row_nnz(c) > 0)
        .count();
    let targets: Vec<Target> = (0..after.n_rows())
        .filter(|&c| after.row_nnz(c) > 0 && history.row_nnz(c) > 0)
        .map(|c| {
            // Unavailable catalog items (fees, postage) are never recommended,
            // so they are not counted as relevant either.
            let relevant: HashSet<u32> = after
                .row(c)
                .0
                .iter()
                .copied()
                .filter(|&i| engine.item_meta(i).available)
                .collect();
            let before = history.row(c).0;
            let (repeat, new) = relevant
                .iter()
                .partition(|i| before.binary_search(i).is_ok());
            Target {
                customer: c as u32,
                relevant,
                repeat,
                new,
            }
        })
        .filter(|t: &Target| !t.relevant.is_empty())
        .collect();
    if targets.is_empty() {
        bail!("no customer bought both before and after the cutoff: nothing to score");
    }
    let kmax = *ks.iter().max().expect("non-empty");
    let models = MODELS
        .iter()
        .map(|&name| score_model(&engine, name, &targets, ks, kmax))
        .collect();
    Ok(EvalReport {
        cutoff: format_timestamp(cutoff),
        ks: ks.to_vec(),
        train_purchases: train.purchases.len(),
        test_purchases: test.purchases.len(),
        customers_scored: targets.len(),
        customers_in_test,
        data_fingerprint: data.fingerprint.clone(),
        config: config.clone(),
        models,
        train_seconds,
    })
}

/// The ranked list `model` gives customer `c`, `k` long, purchased items allowed.
fn ranked_list(engine: &Engine, model: &str, c: u32, k: usize, scores: &mut [f32]) -> Vec<u32> {
    let filter = ListFilter {
        include_purchased: true,
        ..ListFilter::default()
    };
    let (bought, qty) = engine.history().row(c as usize);
    let available = |i: u32| engine.item_meta(i).available;
    let list = match model {
        "als" => engine.recommend(Some(c), k, &filter).1,
        "copurchase" => {
            scores.fill(0.0);
            let basket: Vec<(u32, f32)> = bought.iter().map(|&i| (i, 1.0)).collect();
            engine.copurchase().score_items(&basket, scores);
            let list = top_k_dense(scores, k, |i| scores[i as usize] <= 0.0 || !available(i));
            pad_with_popular(engine, list, k)
        }
        "popularity" => engine.fallback(k, &filter),
        "own_top" => {
            let mut own: Vec<(u32, f32)> = bought
                .iter()
                .copied()
                .zip(qty.iter().copied())
                .filter(|&(i, _)| available(i))
                .collect();
            own.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            own.truncate(k);
            pad_with_popular(engine, own, k)
        }
        other => unreachable!("unknown model {other}"),
    };
    list.into_iter().map(|(i, _)| i).collect()
}

/// Pads `list` with popular available items it does not hold, so every model answers `k` items.
fn pad_with_popular(engine: &Engine, mut list: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    if list.len() < k {
        let have: HashSet<u32> = list.iter().map(|&(i, _)| i).collect();
        let extra = engine.popularity().top(k - list.len(), |i| {
            have.contains(&i) || !engine.item_meta(i).available
        });
        list.extend(extra);
    }
    list
}

fn score_model(
    engine: &Engine,
    model: &str,
    targets: &[Target],
    ks: &[usize],
    kmax: usize,
) -> ModelScores {
    let n_items = engine.items().len();
    // Per target: for every k, (recall, ndcg, recall_repeat?, recall_new?).
    let per_target: Vec<Vec<[Option<f64>; 4]>> = targets
        .par_iter()
        .map_init(
            || vec![0f32; n_items],
            |scores, t| {
                let list = ranked_list(engine, model, t.customer, kmax, scores);
                ks.iter()
                    .map(|&k| {
                        [
                            recall_at_k(&list, &t.relevant, k),
                            ndcg_at_k(&list, &t.relevant, k),
                            recall_at_k(&list, &t.repeat, k),
                            recall_at_k(&list, &t.new, k),
                        ]
                    })
                    .collect()
            },
        )
        .collect();
    let mut metrics = BTreeMap::new();
    for (ki, &k) in ks.iter().enumerate() {
        for (mi, name) in ["recall", "ndcg", "recall_repeat", "recall_new"]
            .iter()
            .enumerate()
        {
            let vals: Vec<f64> = per_target.iter().filter_map(|v| v[ki][mi]).collect();
            if !vals.is_empty() {
                metrics.insert(
                    format!("{name}@{k}"),
                    vals.iter().sum::<f64>() / vals.len() as f64,
                );
            }
        }
    }
    ModelScores {
        model: model.to_string(),
        metrics,
    }
}
