//! `encore-train fit`: ingest, train, evaluate, publish.

use crate::evaluate::{EvalReport, evaluate};
use crate::gate::{GateOutcome, gate};
use crate::input::{Input, input_summary};
use crate::progress::StageProgress;
use anyhow::{Context, Result};
use encore_model::artifact;
use encore_model::artifact::store::{Store, StoreError};
use encore_model::customer::book::CustomerModels;
use encore_model::engine::Engine;
use encore_model::manifest::Manifest;
use encore_model::pipeline::{EngineConfig, train_engine};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How `fit` checks the model it publishes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FitEvaluation {
    /// No holdout evaluation; the manifest's metrics stay empty.
    Skip,
    /// Evaluate on the last `days` of the history (trained on what comes
    /// before), then train the published model on everything.
    LastDays(f64),
    /// Evaluate with this cutoff (seconds since the epoch).
    Cutoff(i64),
}

/// Where a trained model goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// One artifact directory, replaced atomically.
    Dir(PathBuf),
    /// A new version of a store; `CURRENT` moves to it if the gate passes.
    Store(Store),
}

/// How `fit` publishes: the target, and the promotion gate.
#[derive(Debug, Clone)]
pub struct Publish {
    pub target: Target,
    /// The serving model to beat [default: the store's current version].
    pub previous: Option<PathBuf>,
    /// The candidate may be this much worse (absolute Recall@10) and still pass.
    pub margin: f64,
    /// Versions a store keeps (the current one and the rollback target always stay).
    pub keep: usize,
}

/// What `fit` produced.
pub struct FitOutcome {
    pub manifest: Manifest,
    /// Where the artifact was written (`None`: refused by the gate and not written).
    pub location: Option<PathBuf>,
    /// The gate's decision, if there was a model to compare with.
    pub gate: Option<GateOutcome>,
    /// False if the gate refused the candidate, or if the store's CURRENT
    /// moved while this run was being gated (`current_moved` says so).
    pub promoted: bool,
    /// Why a candidate that passed its gate was not made current: another
    /// run changed CURRENT after this one read it.
    pub current_moved: Option<String>,
    pub evaluation: Option<EvalReport>,
    /// The customer models of the published engine.
    pub customers: CustomerModels,
    pub timings: Vec<(&'static str, f64)>,
    pub total_seconds: f64,
    /// Versions `--keep` removed from the store (none with `--out`).
    pub pruned: Vec<String>,
}

/// Trains on `input` and writes the artifact to `out` (no gate).
pub fn fit(
    input: &Input,
    config: &EngineConfig,
    evaluation: FitEvaluation,
    ks: &[usize],
    out: &Path,
    show_progress: bool,
) -> Result<FitOutcome> {
    let publish = Publish {
        target: Target::Dir(out.to_path_buf()),
        previous: None,
        margin: 0.0,
        keep: usize::MAX,
    };
    fit_and_publish(input, config, evaluation, ks, &publish, show_progress)
}

/// Trains on `input`, runs the promotion gate against the serving model (if
/// any) and publishes the candidate if it passes; see [`crate::gate`].
pub fn fit_and_publish(
    input: &Input,
    config: &EngineConfig,
    evaluation: FitEvaluation,
    ks: &[usize],
    publish: &Publish,
    show_progress: bool,
) -> Result<FitOutcome> {
    let data = input_summary(input);
    let mut progress = StageProgress::new(show_progress);
    let report = holdout_report(input, config, evaluation, ks, &mut progress)?;
    let mut engine = train_engine(
        &input.log,
        input.item_meta.clone(),
        config,
        data,
        &mut |s| progress.on_stage(s),
    )?;
    if let Some(r) = &report {
        engine.manifest_mut().metrics = serde_json::to_value(r).expect("report serialises");
    }
    publish_engine(engine, Some(input), config, publish, report, progress)
}

/// The holdout evaluation `fit` records in the manifest, if asked for.
pub(crate) fn holdout_report(
    input: &Input,
    config: &EngineConfig,
    evaluation: FitEvaluation,
    ks: &[usize],
    progress: &mut StageProgress,
) -> Result<Option<EvalReport>> {
    let data = input_summary(input);
    let cutoff = match evaluation {
        FitEvaluation::Skip => None,
        FitEvaluation::Cutoff(t) => Some(t),
        FitEvaluation::LastDays(days) => input
            .log
            .time_range()
            .map(|(_, last)| last - (days * 86_400.0) as i64),
    };
    Ok(match cutoff {
        Some(cutoff) => match evaluate(
            &input.log,
            &input.item_meta,
            config,
            &data,
            cutoff,
            ks,
            Some(progress),
        ) {
            Ok(r) => Some(r),
            // The default holdout is a convenience: a history it does not fit
            // (shorter than the window, no returning customer) still gets a model.
            Err(e) if matches!(evaluation, FitEvaluation::LastDays(_)) => {
                eprintln!("warning: skipped the holdout evaluation: {e:#}");
                None
            }
            Err(e) => return Err(e.context("holdout evaluation")),
        },
        None => None,
    })
}

/// Publishes a trained `engine` as `publish` says: the promotion gate (on
/// `input`, the history the engine was trained on, with `config`) against
/// the serving model if there is one, then the directory or the store.
pub(crate) fn publish_engine(
    mut engine: Engine,
    input: Option<&Input>,
    config: &EngineConfig,
    publish: &Publish,
    report: Option<EvalReport>,
    mut progress: StageProgress,
) -> Result<FitOutcome> {
    // The version the run is gated against, read once: promotion happens
    // only if CURRENT still names it then (a compare-and-swap).
    let gated_against = match &publish.target {
        Target::Store(store) => store.current()?,
        Target::Dir(_) => None,
    };
    let previous_dir = match (&publish.previous, &publish.target) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Target::Store(store)) => gated_against.as_deref().map(|v| store.dir_of(v)),
        (None, Target::Dir(_)) => None,
    };
    let gate = match &previous_dir {
        Some(dir) => {
            let Some(input) = input else {
                anyhow::bail!(
                    "the promotion gate against {} needs the purchase history the model was \
                     trained on: give --input (and --columns) as for the shared part",
                    dir.display()
                );
            };
            let previous = artifact::load(dir).with_context(|| {
                format!(
                    "cannot load the serving model {} for the gate",
                    dir.display()
                )
            })?;
            let outcome = gate(
                &input.log,
                &input.item_meta,
                config,
                &previous,
                publish.margin,
                10,
            )
            .context("promotion gate")?;
            let metrics = engine.manifest_mut().metrics.as_object_mut();
            let value = serde_json::to_value(&outcome).expect("gate serialises");
            match metrics {
                Some(m) => {
                    m.insert("gate".into(), value);
                }
                None => engine.manifest_mut().metrics = serde_json::json!({ "gate": value }),
            }
            Some(outcome)
        }
        None => None,
    };
    let mut promoted = gate.as_ref().is_none_or(|g| g.promoted);
    let mut current_moved = None;
    let (manifest, location, pruned) = match &publish.target {
        Target::Dir(out) if promoted => {
            let m = artifact::save(&engine, out)
                .with_context(|| format!("cannot write the model to {}", out.display()))?;
            (m, Some(out.clone()), Vec::new())
        }
        Target::Dir(_) => (engine.manifest().clone(), None, Vec::new()),
        Target::Store(store) => {
            // Every candidate is kept in the store for inspection; only a
            // promoted one becomes current. Pruning follows every run, so
            // refused candidates do not pile up; it never removes the
            // newest versions, the current one or the rollback target.
            let (version, m) = store
                .publish(&mut engine)
                .with_context(|| format!("cannot write the model to {}", store.root().display()))?;
            if promoted {
                match store.set_current_if(&version, gated_against.as_deref()) {
                    Ok(()) => {}
                    Err(e @ StoreError::CurrentMoved { .. }) => {
                        promoted = false;
                        current_moved = Some(e.to_string());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let pruned = store.prune(publish.keep)?;
            (m, Some(store.dir_of(&version)), pruned)
        }
    };
    let total_seconds = progress.finish();
    Ok(FitOutcome {
        manifest,
        location,
        gate,
        promoted,
        current_moved,
        evaluation: report,
        customers: engine.customer_book().models().clone(),
        timings: progress.timings,
        total_seconds,
        pruned,
    })
}

/// The end-of-run summary.
pub fn summary(outcome: &FitOutcome) -> String {
    let m = &outcome.manifest;
    let d = &m.data;
    let bytes: u64 = m.files.values().map(|f| f.bytes).sum();
    let mut s = String::new();
    match &outcome.location {
        Some(dir) => s.push_str(&format!(
            "model {} written to {}\n",
            m.model_version,
            dir.display()
        )),
        None => s.push_str(&format!(
            "model {} NOT written: the promotion gate refused it\n",
            m.model_version
        )),
    }
    s.push_str(&format!(
        "  data        {} customers, {} items, {} orders, {} customer-item pairs ({} .. {})\n",
        d.customers,
        d.items,
        d.orders,
        d.interactions,
        d.first_purchase.as_deref().unwrap_or("-"),
        d.last_purchase.as_deref().unwrap_or("-"),
    ));
    if let Some(e) = &d.events {
        s.push_str(&format!(
            "  events      {} purchases merged ({} .. {}), {} skipped as already in the input, {} exposures/clicks, {} torn tails, from {}\n",
            e.purchases_merged,
            e.first_purchase.as_deref().unwrap_or("-"),
            e.last_purchase.as_deref().unwrap_or("-"),
            e.purchases_in_input,
            e.other_events,
            e.torn_tails,
            e.dir
        ));
    }
    s.push_str(&format!(
        "  als         {} factors, {} iterations, regularization {}, alpha {}, seed {}\n",
        m.als.factors, m.als.iterations, m.als.regularization, m.als.alpha, m.als.seed
    ));
    // The summary is set when the lists are built; the file list only once
    // the model is written (not for a model the gate refused).
    let for_you = if m.for_you.is_some() || m.files.contains_key("for_you.csr") {
        let model = match &m.for_you {
            Some(f) if f.model == "ranker" => "learned re-ranker".to_string(),
            Some(f) => match &f.fallback_reason {
                Some(why) => format!("TIFU-KNN + ALS (re-ranker not trained: {why})"),
                None => "TIFU-KNN + ALS".to_string(),
            },
            None => "TIFU-KNN + ALS".to_string(),
        };
        format!("repeat-aware lists ({model}) with include_purchased=true, ALS otherwise")
    } else {
        let why = match m.config["for_you"]["max_customers"].as_u64() {
            Some(limit) => format!("off, or more than {limit} customers"),
            None => "off".to_string(),
        };
        format!("ALS only (repeat-aware lists not built: {why})")
    };
    s.push_str(&format!("  for you     {for_you}\n"));
    // Known once the model is written: the graph is among its files or not.
    if !m.files.is_empty() {
        let hnsw = &m.config["hnsw"];
        let min_items = hnsw["min_items"].as_u64().unwrap_or(0);
        let similar = if m.files.contains_key("similar.hnsw.graph") {
            format!(
                "HNSW graph (m {}, ef_search {}; catalogs from [hnsw] min_items = {min_items} items)",
                hnsw["m"], hnsw["ef_search"]
            )
        } else {
            format!(
                "exact scan of the {} items (fewer than [hnsw] min_items = {min_items})",
                m.data.items
            )
        };
        s.push_str(&format!("  similar     {similar}\n"));
    }
    s.push_str(&format!(
        "  artifact    {} files, {:.1} MB\n",
        m.files.len() + 1,
        bytes as f64 / 1e6
    ));
    if !outcome.timings.is_empty() {
        let parts: Vec<String> = outcome
            .timings
            .iter()
            .map(|(name, secs)| format!("{name} {secs:.1}s"))
            .collect();
        s.push_str(&format!(
            "  time        {:.1}s ({})\n",
            outcome.total_seconds,
            parts.join(", ")
        ));
    }
    s.push_str(&customer_report(&outcome.customers));
    if let Some(why) = &outcome.current_moved {
        s.push_str(&format!("\nNOT made current: {why}\n"));
    }
    if let Some(g) = &outcome.gate {
        s.push_str(&format!(
            "\npromotion gate against {} (holdout from {}): {}\n",
            g.previous_version,
            g.holdout_from,
            if g.promoted {
                "PROMOTED"
            } else {
                "NOT PROMOTED"
            },
        ));
        for l in &g.lists {
            s.push_str(&format!(
                "  {:<15} {} over {} customers: candidate {:.4}, serving {:.4}: {}\n",
                l.list,
                l.metric,
                l.customers_scored,
                l.candidate,
                l.previous,
                if l.passed { "passed" } else { "worse" },
            ));
        }
        if g.lists.is_empty() {
            s.push_str(&format!("  {}\n", g.reason));
        }
    }
    if !outcome.pruned.is_empty() {
        s.push_str(&format!(
            "\npruned from the store (--keep): {}\n",
            outcome.pruned.join(", ")
        ));
    }
    if let Some(r) = &outcome.evaluation {
        s.push_str("\nholdout evaluation (models trained on the purchases before the cutoff)\n");
        s.push_str(&r.table());
    }
    s
}

/// How a customer-model fit ended, for the report ([`encore_model::math::optim`]).
fn fit_status(converged: bool, collapsed: bool) -> &'static str {
    match (converged, collapsed) {
        (true, _) => "converged",
        (false, true) => {
            "parameters settled, the likelihood flat to its rounding there \
             (an optimum far out on a ridge, e.g. BG/NBD's a near 0: almost nobody drops out)"
        }
        (false, false) => "NOT converged",
    }
}

/// The line of a customer model that could not be fitted, and why.
fn not_fitted(s: &mut String, model: &str, error: Option<&str>) {
    let _ = writeln!(s, "  {model:<11} not fitted: {}", error.unwrap_or("-"));
}

/// The customer part of the fit summary: model fits with their diagnostics,
/// stage and segment counts, repurchase KPIs.
pub fn customer_report(m: &CustomerModels) -> String {
    let mut s = String::new();
    let unit = match m.time_unit {
        encore_model::customer::summary::TimeUnit::Days => "days",
        encore_model::customer::summary::TimeUnit::Weeks => "weeks",
    };
    let _ = writeln!(s, "\ncustomers ({} profiled)", m.customers);
    match (&m.bgnbd, &m.bgnbd_error) {
        (Some(b), _) => {
            let _ = writeln!(
                s,
                "  bg/nbd      r {:.4}, alpha {:.4} ({unit}), a {:.4}, b {:.4}; log-likelihood {:.2}, {} iterations, {}",
                b.r,
                b.alpha,
                b.a,
                b.b,
                b.log_likelihood,
                b.iterations,
                fit_status(b.converged, b.collapsed)
            );
        }
        (None, e) => not_fitted(&mut s, "bg/nbd", e.as_deref()),
    }
    if let Some(sel) = &m.selection {
        let how = match &sel.criterion {
            encore_model::customer::select::Criterion::Validation {
                days, customers, ..
            } => {
                format!("validation log-likelihood of the last {days} days ({customers} customers)")
            }
            encore_model::customer::select::Criterion::FullHistory => {
                "full-history log-likelihood (no validation window)".to_string()
            }
        };
        let chosen = sel.selected.map_or("none", |k| k.name());
        let _ = writeln!(s, "  repeat model {chosen}, selected by {how}:");
        for line in sel.describe() {
            let _ = writeln!(s, "    {line}");
        }
    }
    match (&m.gamma_gamma, &m.gamma_gamma_error) {
        (Some(g), _) => {
            let _ = writeln!(
                s,
                "  gamma-gamma p {:.4}, q {:.4}, v {:.4}; log-likelihood {:.2} on {} repeat customers, {} iterations, {}",
                g.p,
                g.q,
                g.v,
                g.log_likelihood,
                g.n_customers,
                g.iterations,
                fit_status(g.converged, g.collapsed)
            );
        }
        (None, e) => not_fitted(&mut s, "gamma-gamma", e.as_deref()),
    }
    let _ = writeln!(
        s,
        "  clv         {} months, {:.0}% a year discount, margin {}",
        m.clv.horizon_months,
        100.0 * m.clv.discount_rate_annual,
        m.clv.margin
    );
    match (&m.propensity, &m.propensity_error) {
        (Some(p), _) => {
            for (k, line) in p.describe().into_iter().enumerate() {
                let head = if k == 0 {
                    "  propensity  "
                } else {
                    "              "
                };
                let _ = writeln!(s, "{head}{line}");
            }
        }
        (None, e) => not_fitted(&mut s, "propensity", e.as_deref()),
    }
    if let Some(e) = &m.segments_error {
        not_fitted(&mut s, "segments", Some(e));
    }
    if m.numeric_failures > 0 {
        let _ = writeln!(
            s,
            "  warning     {} customers have no CLV or next-purchase figure (numerical failure)",
            m.numeric_failures
        );
    }
    let stages: Vec<String> = m
        .stage_counts
        .iter()
        .map(|(k, v)| format!("{} {v}", k.as_str()))
        .collect();
    let _ = writeln!(s, "  stages      {}", stages.join(", "));
    let mut segments: Vec<(&String, &usize)> = m.segment_counts.iter().collect();
    segments.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let segments: Vec<String> = segments.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "  rfm         {}", segments.join(", "));
    if let Some(seg) = &m.segments {
        let parts: Vec<String> = seg
            .labels
            .iter()
            .zip(&seg.sizes)
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        let _ = writeln!(s, "  behaviour   {}", parts.join(", "));
    }
    let o = &m.kpis.overall;
    let _ = writeln!(
        s,
        "  repurchase  {:.1}% of {} buyers bought 2+ times; {:.1}% of {} orders were repeat orders",
        100.0 * o.user_repurchase_rate,
        o.buyers,
        100.0 * o.order_repurchase_rate,
        o.orders
    );
    if let Some(last) = m.kpis.monthly.last() {
        let _ = writeln!(
            s,
            "  last month  {}: {} buyers, {:.1}% returning, user-level repurchase {:.1}%",
            last.period,
            last.buyers,
            100.0 * last.returning_buyer_share,
            100.0 * last.user_repurchase_rate
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_not_fitted_is_said_in_the_report_column() {
        let mut s = String::new();
        not_fitted(&mut s, "bg/nbd", Some("no repeat customers"));
        not_fitted(&mut s, "gamma-gamma", None);
        assert_eq!(
            s,
            "  bg/nbd      not fitted: no repeat customers\n  gamma-gamma not fitted: -\n"
        );
    }
}
