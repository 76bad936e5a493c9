//! `encore-train fit`: ingest, train, evaluate, publish.

use crate::evaluate::{EvalReport, evaluate};
use crate::input::{Input, data_summary};
use crate::progress::StageProgress;
use anyhow::{Context, Result};
use encore_model::artifact::{self, Manifest};
use encore_model::pipeline::{EngineConfig, train_engine};
use std::path::Path;

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

/// What `fit` produced.
pub struct FitOutcome {
    pub manifest: Manifest,
    pub evaluation: Option<EvalReport>,
    pub timings: Vec<(&'static str, f64)>,
    pub total_seconds: f64,
}

/// Trains on `input` and writes the artifact to `out`.
pub fn fit(
    input: &Input,
    config: &EngineConfig,
    evaluation: FitEvaluation,
    ks: &[usize],
    out: &Path,
    show_progress: bool,
) -> Result<FitOutcome> {
    let data = data_summary(&input.report, &input.log);
    let mut progress = StageProgress::new(show_progress);
    let cutoff = match evaluation {
        FitEvaluation::Skip => None,
        FitEvaluation::Cutoff(t) => Some(t),
        FitEvaluation::LastDays(days) => input
            .log
            .time_range()
            .map(|(_, last)| last - (days * 86_400.0) as i64),
    };
    let report = match cutoff {
        Some(cutoff) => match evaluate(
            &input.log,
            &input.item_meta,
            config,
            &data,
            cutoff,
            ks,
            Some(&mut progress),
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
    };
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
    let manifest = artifact::save(&engine, out)
        .with_context(|| format!("cannot write the model to {}", out.display()))?;
    let total_seconds = progress.finish();
    Ok(FitOutcome {
        manifest,
        evaluation: report,
        timings: progress.timings,
        total_seconds,
    })
}

/// The end-of-run summary.
pub fn summary(outcome: &FitOutcome, out: &Path) -> String {
    let m = &outcome.manifest;
    let d = &m.data;
    let bytes: u64 = m.files.values().map(|f| f.bytes).sum();
    let mut s = String::new();
    s.push_str(&format!(
        "model {} written to {}\n",
        m.model_version,
        out.display()
    ));
    s.push_str(&format!(
        "  data        {} customers, {} items, {} orders, {} customer-item pairs ({} .. {})\n",
        d.customers,
        d.items,
        d.orders,
        d.interactions,
        d.first_purchase.as_deref().unwrap_or("-"),
        d.last_purchase.as_deref().unwrap_or("-"),
    ));
    s.push_str(&format!(
        "  als         {} factors, {} iterations, regularization {}, alpha {}, seed {}\n",
        m.als.factors, m.als.iterations, m.als.regularization, m.als.alpha, m.als.seed
    ));
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
    if let Some(r) = &outcome.evaluation {
        s.push_str("\nholdout evaluation (models trained on the purchases before the cutoff)\n");
        s.push_str(&r.table());
    }
    s
}
