//! A fit in three steps, for histories whose per-customer lists are best
//! made on several machines: `fit --shared-only` (the shared part, once),
//! `shard` (the lists of one shard of customers, any number at once,
//! anywhere), `assemble` (one ordinary artifact, published as `fit`
//! publishes). See [`encore_model::shard`] for the files and docs/spark.md
//! for running the shards on Apache Spark.

use crate::fit::{FitEvaluation, FitOutcome, Publish, Target, holdout_report, publish_engine};
use crate::input::{Input, input_summary};
use crate::progress::StageProgress;
use anyhow::{Context, Result, bail};
use encore_model::pipeline::{EngineConfig, customer_lists, train_shared};
use encore_model::shard::{
    SharedPart, assemble, check_shard, load_shared, save_part, save_shared, shard_customers,
};
use std::path::{Path, PathBuf};

/// What `fit --shared-only` wrote.
pub struct SharedOutcome {
    /// The shared part's id, which every shard part records.
    pub id: String,
    pub dir: PathBuf,
    pub customers: usize,
    /// How the lists will be made: `ranker`, `tifu_als` or `new_items_only`.
    pub plan: &'static str,
    pub total_seconds: f64,
}

/// Trains the shared part of a fit on `input` (with `fit`'s holdout
/// evaluation, recorded in its manifest) and writes it to `out`.
pub fn fit_shared(
    input: &Input,
    config: &EngineConfig,
    evaluation: FitEvaluation,
    ks: &[usize],
    out: &Path,
    show_progress: bool,
) -> Result<SharedOutcome> {
    let mut progress = StageProgress::new(show_progress);
    let report = holdout_report(input, config, evaluation, ks, &mut progress)?;
    let mut fit = train_shared(
        &input.log,
        input.item_meta.clone(),
        config,
        input_summary(input),
        &mut |s| progress.on_stage(s),
    )?;
    if let Some(r) = &report {
        fit.engine.manifest_mut().metrics = serde_json::to_value(r).expect("report serialises");
    }
    let id = save_shared(&fit, out)
        .with_context(|| format!("cannot write the shared part to {}", out.display()))?;
    Ok(SharedOutcome {
        id,
        dir: out.to_path_buf(),
        customers: fit.engine.customers().len(),
        plan: plan_name(&fit.plan),
        total_seconds: progress.finish(),
    })
}

fn plan_name(plan: &encore_model::pipeline::ListPlan) -> &'static str {
    match plan {
        encore_model::pipeline::ListPlan::NewItemsOnly => "new_items_only",
        encore_model::pipeline::ListPlan::Ranker { .. } => "ranker",
        encore_model::pipeline::ListPlan::TifuAls => "tifu_als",
    }
}

/// Reads the shared part at `dir`, with the path in the error.
pub fn open_shared(dir: &Path) -> Result<SharedPart> {
    load_shared(dir).with_context(|| format!("cannot read the shared part {}", dir.display()))
}

/// What `shard` wrote.
pub struct ShardOutcome {
    pub shard: u32,
    pub of: u32,
    pub customers: usize,
    pub total_seconds: f64,
}

/// Makes the lists of shard `shard` of `of` from the shared part at
/// `shared` and `input` (the history the shared part was trained on,
/// checked by its fingerprint), and writes them to `out`.
pub fn run_shard(
    input: &Input,
    shared: &Path,
    shard: u32,
    of: u32,
    out: &Path,
    show_progress: bool,
) -> Result<ShardOutcome> {
    check_shard(shard, of)?;
    let mut progress = StageProgress::new(show_progress);
    let shared = open_shared(shared)?;
    check_same_history(input, &shared)?;
    let customers = shard_customers(shared.engine.customers(), shard, of);
    let lists = customer_lists(
        &input.log,
        &shared.engine,
        &shared.config,
        &shared.plan,
        &customers,
        &mut |s| progress.on_stage(s),
    )?;
    save_part(out, &shared, shard, of, &lists)
        .with_context(|| format!("cannot write shard {shard} to {}", out.display()))?;
    Ok(ShardOutcome {
        shard,
        of,
        customers: customers.len(),
        total_seconds: progress.finish(),
    })
}

/// Refuses a history other than the one the shared part was trained on:
/// another file (its fingerprint), or other rows read from it.
fn check_same_history(input: &Input, shared: &SharedPart) -> Result<()> {
    let had = &shared.engine.manifest().data;
    let has = input_summary(input);
    let what = if has.fingerprint != had.fingerprint {
        format!(
            "its fingerprint is {}, the shared part was trained on {} ({})",
            has.fingerprint, had.fingerprint, had.source
        )
    } else if has.events != had.events
        || has.rows_accepted != had.rows_accepted
        || !input
            .log
            .customers
            .ids()
            .eq(shared.engine.customers().ids())
        || !input.log.items.ids().eq(shared.engine.items().ids())
    {
        "the same file gave other rows than the shared part's \
         (another --columns, --events or --strict?)"
            .to_string()
    } else {
        return Ok(());
    };
    bail!(
        "{}: not the history of the shared part {}: {what}",
        input.report.path.display(),
        shared.dir.display()
    )
}

/// Assembles the shared part at `shared` and the shard parts in `parts`
/// into one artifact and publishes it as `fit` does: to a directory, or as
/// a store's new version that becomes current only through the promotion
/// gate, which scores on `input` (the history; needed when there is a
/// serving model to compare with).
pub fn assemble_and_publish(
    shared: &Path,
    parts: &[PathBuf],
    input: Option<&Input>,
    publish: &Publish,
    show_progress: bool,
) -> Result<FitOutcome> {
    if let Target::Dir(out) = &publish.target
        && (parts.iter().any(|p| p == out) || out == shared)
    {
        bail!("--out {} is the shared part or a shard part", out.display());
    }
    let progress = StageProgress::new(show_progress);
    let shared = open_shared(shared)?;
    if let Some(input) = input {
        check_same_history(input, &shared)?;
    }
    let config = shared.config.clone();
    let engine = assemble(shared, parts).context("assembly refused, nothing was published")?;
    let outcome = publish_engine(engine, input, &config, publish, None, progress)?;
    Ok(outcome)
}
