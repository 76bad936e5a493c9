//! The promotion gate of nightly retraining: is the candidate at least as
//! good as the model that serves now?
//!
//! # Protocol
//! The holdout is what the serving model has never seen: every purchase after
//! its reference time (the last purchase of its training data). The candidate
//! pipeline (this run's data and configuration) is trained on the purchases
//! up to that same time, so both models know the same past; both then rank
//! items for every customer who bought in the holdout and had bought before,
//! exactly as `/v1/customers/{id}/recommendations` serves them (items already
//! bought left out, unavailable items never shown). The primary metric is
//! Recall@K over those customers, relevant items being the available items
//! they bought in the holdout that they had not bought before. The candidate
//! is promoted if `candidate >= previous - margin`.
//!
//! Ids are matched by name, so the two models may have different catalogs or
//! customer bases; a customer unknown to a model gets its fallback list.

use anyhow::{Result, bail};
use encore_data::timestamp::format_timestamp;
use encore_data::{InteractionMatrix, PurchaseLog, Weighting};
use encore_model::artifact::DataSummary;
use encore_model::engine::{Engine, ItemMeta, ListFilter};
use encore_model::metrics::recall_at_k;
use encore_model::pipeline::{EngineConfig, train_engine};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashSet;

/// The gate's decision and the figures behind it (also written to the manifest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    /// `recall@K`.
    pub metric: String,
    /// Start of the holdout (RFC 3339).
    pub holdout_from: String,
    pub customers_scored: usize,
    pub candidate: f64,
    pub previous: f64,
    pub previous_version: String,
    pub margin: f64,
    pub promoted: bool,
    pub reason: String,
}

/// One scored customer: id and relevant item ids.
struct Target {
    customer: String,
    relevant: Vec<String>,
}

/// Mean Recall@`k` of `engine`'s "for you" lists over `targets`.
fn score(engine: &Engine, targets: &[Target], k: usize) -> f64 {
    let filter = ListFilter::default();
    let total: f64 = targets
        .par_iter()
        .map(|t| {
            let c = engine.customers().get(&t.customer);
            let (_, ranked) = engine.recommend(c, k, &filter);
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
        .sum();
    total / targets.len() as f64
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
        metric: format!("recall@{k}"),
        holdout_from: holdout_from.clone(),
        customers_scored: 0,
        candidate: f64::NAN,
        previous: f64::NAN,
        previous_version: previous_version.clone(),
        margin,
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
    let targets: Vec<Target> = (0..after.n_rows())
        .filter(|&c| after.row_nnz(c) > 0 && before.row_nnz(c) > 0)
        .filter_map(|c| {
            let (bought_before, _) = before.row(c);
            let (items, values) = after.row(c);
            let relevant: Vec<String> = items
                .iter()
                .zip(values)
                .filter(|&(&i, &q)| {
                    q > 0.0
                        && bought_before.binary_search(&i).is_err()
                        && item_meta.get(i as usize).is_none_or(|m| m.available)
                })
                .map(|(&i, _)| log.items.id(i).to_string())
                .collect();
            (!relevant.is_empty()).then(|| Target {
                customer: log.customers.id(c as u32).to_string(),
                relevant,
            })
        })
        .collect();
    if targets.is_empty() {
        return Ok(not_judged(format!(
            "no customer bought a new item after {holdout_from} who had bought before: nothing to compare on"
        )));
    }
    // The gate scores the ALS list (module docs), so the candidate's
    // precomputed "for you" lists are not built.
    let mut candidate_config = config.clone();
    candidate_config.for_you.repeat_aware = false;
    let candidate_engine = train_engine(
        &train,
        item_meta.to_vec(),
        &candidate_config,
        DataSummary::default(),
        &mut |_| {},
    )?;
    let candidate = score(&candidate_engine, &targets, k);
    let previous_score = score(previous, &targets, k);
    let promoted = candidate >= previous_score - margin;
    let reason = if promoted {
        format!("candidate {candidate:.4} >= previous {previous_score:.4} - margin {margin}")
    } else {
        format!("candidate {candidate:.4} < previous {previous_score:.4} - margin {margin}")
    };
    Ok(GateOutcome {
        metric: format!("recall@{k}"),
        holdout_from,
        customers_scored: targets.len(),
        candidate,
        previous: previous_score,
        previous_version,
        margin,
        promoted,
        reason,
    })
}
