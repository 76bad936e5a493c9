//! The promotion gate of nightly retraining: is the candidate at least as
//! good as the model that serves now?
//!
//! # Protocol
//! The holdout is what the serving model has never seen: every purchase after
//! its reference time (the last purchase of its training data). The candidate
//! pipeline (this run's data and configuration) is trained on the purchases
//! up to that same time, so both models know the same past; its ids are
//! numbered as they were then (customers and items first seen later are left
//! out, [`PurchaseLog::compacted`]), so with the serving model's
//! configuration and an appended history the candidate *is* the serving
//! model and passes at margin 0. Both then rank
//! items for every customer who bought in the holdout and had bought before,
//! exactly as `/v1/customers/{id}/recommendations` serves them (unavailable
//! items never shown), in both of its forms:
//! - `new_items`, the default list (items already bought left out): relevant
//!   are the available items the customer bought in the holdout and had not
//!   bought before;
//! - `with_purchased` (`include_purchased=true`, the repeat-aware "for you"
//!   list): relevant are all the available items the customer bought in the
//!   holdout.
//!
//! The metric is Recall@K over the customers with at least one relevant
//! item. A list passes if `candidate >= previous - margin`; the candidate is
//! promoted if every list with customers to score passes, so a change that
//! helps one list cannot hide a loss on the other.
//!
//! Ids are matched by name, so the two models may have different catalogs or
//! customer bases; a customer unknown to a model gets its fallback list.

use anyhow::{Result, bail};
use encore_data::timestamp::format_timestamp;
use encore_data::{InteractionMatrix, PurchaseLog, Weighting};
use encore_model::engine::{Engine, ItemMeta, ListFilter};
use encore_model::manifest::DataSummary;
use encore_model::metrics::recall_at_k;
use encore_model::pipeline::{EngineConfig, train_engine};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;

/// The gate's decision and the figures behind it (also written to the manifest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    /// Start of the holdout (RFC 3339).
    pub holdout_from: String,
    pub previous_version: String,
    pub margin: f64,
    /// One entry per list with customers to score (module docs).
    pub lists: Vec<GateList>,
    pub promoted: bool,
    pub reason: String,
}

/// The scores of one list of the gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateList {
    /// `new_items` or `with_purchased` (module docs).
    pub list: String,
    /// `recall@K`.
    pub metric: String,
    pub customers_scored: usize,
    pub candidate: f64,
    pub previous: f64,
    /// `candidate >= previous - margin`.
    pub passed: bool,
}

impl GateOutcome {
    /// The scores of `list` (`new_items` or `with_purchased`), if it was judged.
    pub fn list(&self, list: &str) -> Option<&GateList> {
        self.lists.iter().find(|l| l.list == list)
    }
}

/// The lists the gate scores: name and whether bought items are kept.
const LISTS: [(&str, bool); 2] = [("new_items", false), ("with_purchased", true)];

/// One scored customer: id and relevant item ids.
struct Target {
    customer: String,
    relevant: Vec<String>,
}

/// Mean Recall@`k` of `engine`'s "for you" lists over `targets`, as served
/// with or without `include_purchased`.
fn score(engine: &Engine, targets: &[Target], k: usize, include_purchased: bool) -> f64 {
    let filter = ListFilter {
        include_purchased,
        ..ListFilter::default()
    };
    // Per customer in parallel, summed in order: a parallel sum's order (and
    // so its last bit) would depend on the threads, and an identical model
    // could score a hair lower and be refused at margin 0.
    let recalls: Vec<f64> = targets
        .par_iter()
        .map(|t| {
            let c = engine.customers().get(&t.customer);
            let (_, ranked) = engine.for_you(c, k, &filter);
            let list: Vec<u32> = ranked.iter().map(|&(i, _)| i).collect();
            // An item the model does not know can never be hit by it; it
            // still counts as relevant (u32::MAX never matches a list entry).
            let relevant: HashSet<u32> = t
                .relevant
                .iter()
                .enumerate()
                .map(|(n, id)| engine.items().get(id).unwrap_or(u32::MAX - n as u32))
                .collect();
            recall_at_k(&list, &relevant, k).unwrap_or(0.0)
        })
        .collect();
    recalls.iter().sum::<f64>() / targets.len() as f64
}

/// Runs the gate for a candidate trained with `config` on `log` against
/// `previous` (see the module docs).
pub fn gate(
    log: &PurchaseLog,
    item_meta: &[ItemMeta],
    config: &EngineConfig,
    previous: &Engine,
    margin: f64,
    k: usize,
) -> Result<GateOutcome> {
    if !(margin.is_finite() && margin >= 0.0) {
        bail!("the gate margin must be a non-negative number, not {margin}");
    }
    let previous_version = previous.manifest().model_version.clone();
    let cutoff = previous.customer_book().models().reference + 1;
    let holdout_from = format_timestamp(cutoff);
    let (train, test) = log.split_at(cutoff);
    let not_judged = |reason: String| GateOutcome {
        holdout_from: holdout_from.clone(),
        previous_version: previous_version.clone(),
        margin,
        lists: Vec::new(),
        promoted: false,
        reason,
    };
    if test.purchases.is_empty() {
        return Ok(not_judged(format!(
            "no purchase after the serving model's data ({holdout_from}): nothing to compare on; \
             use `encore-train models promote` to publish anyway"
        )));
    }
    if train.purchases.is_empty() {
        bail!("no purchase before {holdout_from}, the end of the serving model's data");
    }
    let before = InteractionMatrix::from_log(&train, &Weighting::default()).matrix;
    let after = InteractionMatrix::from_log(&test, &Weighting::default()).matrix;
    // Per list (in LISTS order), the customers with a relevant item.
    let mut targets: [Vec<Target>; 2] = [Vec::new(), Vec::new()];
    for c in (0..after.n_rows()).filter(|&c| after.row_nnz(c) > 0 && before.row_nnz(c) > 0) {
        let (bought_before, _) = before.row(c);
        let (items, values) = after.row(c);
        let bought: Vec<(u32, bool)> = items
            .iter()
            .zip(values)
            .filter(|&(&i, &q)| q > 0.0 && item_meta.get(i as usize).is_none_or(|m| m.available))
            .map(|(&i, _)| (i, bought_before.binary_search(&i).is_err()))
            .collect();
        for (list, (_, include_purchased)) in targets.iter_mut().zip(LISTS) {
            let relevant: Vec<String> = bought
                .iter()
                .filter(|&&(_, new)| new || include_purchased)
                .map(|&(i, _)| log.items.id(i).to_string())
                .collect();
            if !relevant.is_empty() {
                list.push(Target {
                    customer: log.customers.id(c as u32).to_string(),
                    relevant,
                });
            }
        }
    }
    if targets.iter().all(Vec::is_empty) {
        return Ok(not_judged(format!(
            "no customer bought an available item after {holdout_from} who had bought before: \
             nothing to compare on"
        )));
    }
    // Trained on the past alone, indexed as that past was (customers and
    // items first seen later would otherwise hold rows and columns of their
    // own): with the serving model's configuration, the candidate is the
    // serving model.
    let (past, origin) = train.compacted();
    let past_meta: Vec<ItemMeta> = origin
        .iter()
        .map(|&i| item_meta.get(i as usize).cloned().unwrap_or_default())
        .collect();
    // The gate scores "for you" lists only: the kept similar-items lists
    // would be built for nothing.
    let mut candidate_config = config.clone();
    candidate_config.hnsw.keep_lists = false;
    let candidate_engine = train_engine(
        &past,
        past_meta,
        &candidate_config,
        DataSummary::default(),
        &mut |_| {},
    )?;
    let lists: Vec<GateList> = LISTS
        .iter()
        .zip(&targets)
        .filter(|(_, t)| !t.is_empty())
        .map(|(&(name, include_purchased), t)| {
            let candidate = score(&candidate_engine, t, k, include_purchased);
            let previous = score(previous, t, k, include_purchased);
            GateList {
                list: name.to_string(),
                metric: format!("recall@{k}"),
                customers_scored: t.len(),
                candidate,
                previous,
                passed: candidate >= previous - margin,
            }
        })
        .collect();
    let promoted = lists.iter().all(|l| l.passed);
    let reason = lists
        .iter()
        .map(|l| {
            format!(
                "{} {}: candidate {:.4} {} previous {:.4} - margin {margin}",
                l.list,
                l.metric,
                l.candidate,
                if l.passed { ">=" } else { "<" },
                l.previous
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(GateOutcome {
        holdout_from,
        previous_version,
        margin,
        lists,
        promoted,
        reason,
    })
}
