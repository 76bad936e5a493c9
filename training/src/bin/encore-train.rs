//! `encore-train`: build, evaluate and publish Encore models. See `--help`.
// The doc comments of the argument structs are the `--help` text, written for
// a terminal: `<out>` there is a placeholder, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use encore_data::timestamp::parse_timestamp;
use encore_model::artifact;
use encore_model::artifact::store::Store;
use encore_model::shard::check_shard;
use encore_training::batch::{ListKind, read_ids, write_lists};
use encore_training::config::load_config;
use encore_training::customers::{
    AudienceArgs, AudienceFormat, flag_problem, write_audience, write_customers,
};
use encore_training::evaluate::{
    DEFAULT_VALIDATION_DAYS, EvalOptions, Registry, Split, SplitKind, VALIDATION_EXPORT_DIR,
    evaluate_with, export_splits,
};
use encore_training::fit::{FitEvaluation, FitOutcome, Publish, Target, fit_and_publish, summary};
use encore_training::input::{InputArgs, data_summary, events_line, load_input, merge_events};
use encore_training::progress::StageProgress;
use encore_training::shard::{assemble_and_publish, fit_shared, run_shard};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "encore-train",
    version,
    about = "Train, evaluate and publish Encore recommendation models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Input {
    /// Purchase history: CSV (plain or .gz), a Parquet file, or a directory of
    /// Parquet part files (*.parquet; _SUCCESS, .crc and hidden files skipped).
    #[arg(long)]
    input: PathBuf,
    /// Column map for other schemas: field=Header,... (fields: order_id, customer_id,
    /// item_id, timestamp, quantity, price).
    #[arg(long)]
    columns: Option<String>,
    /// Item catalog CSV: item_id,title,category,price,available.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Fail on the first bad row instead of skipping and counting it.
    #[arg(long)]
    strict: bool,
    /// Where skipped rows go, written only if a row is skipped (a run that
    /// skips none removes an earlier run's file there) [default:
    /// <out>.rejects.csv for fit --out, STORE/rejects.csv for fit --store,
    /// <report>.rejects.csv for evaluate with --report or --html, otherwise
    /// <input file name>.rejects.csv in the current directory].
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Training configuration (TOML); defaults apply to missing keys.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The history a shard reads: the one its shared part was trained on.
#[derive(Args)]
struct ShardHistory {
    /// Purchase history, as given to `fit --shared-only` (checked by its fingerprint).
    #[arg(long)]
    input: PathBuf,
    /// Column map, as given to `fit --shared-only`.
    #[arg(long)]
    columns: Option<String>,
    /// As for `fit`.
    #[arg(long)]
    strict: bool,
    /// Where skipped rows go [default: not written; `fit --shared-only`
    /// wrote the same rows].
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Event log, as given to `fit --shared-only`.
    #[arg(long, value_name = "DIR")]
    events: Option<PathBuf>,
}

/// Reads a history for `shard` or `assemble`: the file, then the events.
/// Rows skipped go to `rejects` if given (the shared part's fit wrote the
/// same rows to its own rejects file already).
fn load_history(
    input: &std::path::Path,
    columns: Option<String>,
    strict: bool,
    rejects: Option<PathBuf>,
    events: Option<&std::path::Path>,
) -> Result<encore_training::input::Input> {
    let columns = match &columns {
        Some(spec) => spec
            .parse()
            .with_context(|| format!("--columns '{spec}'"))?,
        None => encore_data::ingest::ColumnMap::default(),
    };
    let opts = encore_data::ingest::IngestOptions {
        strict,
        rejects_path: rejects,
        columns,
    };
    let (log, report) = encore_data::input::read_purchases(input, &opts)?;
    let mut loaded = encore_training::input::Input {
        item_meta: vec![Default::default(); log.items.len()],
        log,
        report,
        catalog_unmatched: 0,
        events: None,
    };
    if let Some(dir) = events {
        merge_events(&mut loaded, dir, None)?;
    }
    Ok(loaded)
}

impl Input {
    fn args(&self) -> InputArgs {
        InputArgs {
            input: self.input.clone(),
            columns: self.columns.clone(),
            catalog: self.catalog.clone(),
            strict: self.strict,
            rejects: self.rejects.clone(),
        }
    }
}

/// The held-out split of `evaluate` (`tune` searches on its validation split).
#[derive(Args)]
struct Holdout {
    /// How to hold out: `time` (train before --holdout-from, score after it) or
    /// `next-basket` (score each customer's last order, train on the earlier ones).
    #[arg(long, value_enum, default_value = "time")]
    split: SplitKind,
    /// Test cutoff of the time split (RFC 3339, YYYY-MM-DD HH:MM:SS, YYYY-MM-DD or
    /// YYYYMMDD). Required by `--split time`, ignored by `next-basket`.
    #[arg(long, required_if_eq("split", "time"))]
    holdout_from: Option<String>,
    /// Length of the validation window of the time split, in days: the validation
    /// split trains before `cutoff - D days` and scores up to the cutoff. (The
    /// next-basket validation split scores each customer's second-to-last order.)
    #[arg(long, default_value_t = DEFAULT_VALIDATION_DAYS)]
    validation_days: f64,
}

impl Holdout {
    /// The split; with `note_ignored`, a --holdout-from that `next-basket`
    /// ignores is said on stderr.
    fn split(&self, note_ignored: bool) -> Result<Split> {
        Ok(match (self.split, &self.holdout_from) {
            (SplitKind::Time, Some(s)) => Split::Time {
                cutoff: parse_cutoff(s)?,
                end: None,
            },
            (SplitKind::Time, None) => bail!("--split time needs --holdout-from"),
            (SplitKind::NextBasket, cutoff) => {
                if note_ignored && cutoff.is_some() {
                    eprintln!(
                        "note: --holdout-from is ignored by --split next-basket (each customer's last order is the target)"
                    );
                }
                Split::NextBasket { skip_last: 0 }
            }
        })
    }
}

/// Where `fit` and `assemble` publish the model, and the promotion gate.
#[derive(Args)]
struct PublishArgs {
    /// Artifact directory to write (replaced atomically if it exists).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Model store: the model becomes a new version there, and the store's
    /// CURRENT moves to it if the promotion gate passes (for `assemble`, the
    /// gate needs --input).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The serving model the candidate must not be worse than [default:
    /// the store's current version; with --out, no gate unless given].
    #[arg(long)]
    previous: Option<PathBuf>,
    /// How much worse (absolute Recall@10 on the gate's holdout, on each
    /// of its two lists: new items, and with bought items) the candidate
    /// may be and still be promoted.
    #[arg(long, default_value_t = 0.0)]
    gate_margin: f64,
    /// Versions the store keeps after the run, promoted or refused (the
    /// current one and the rollback target always stay).
    #[arg(long, default_value_t = 5)]
    keep: usize,
}

impl PublishArgs {
    /// Refuses a --keep of 0 and a --gate-margin that is negative or not a number.
    fn check(&self) -> Result<()> {
        if self.keep == 0 {
            bail!("--keep must be at least 1");
        }
        if !(self.gate_margin.is_finite() && self.gate_margin >= 0.0) {
            bail!(
                "--gate-margin must be a non-negative number, not {}",
                self.gate_margin
            );
        }
        Ok(())
    }

    /// The checked flags, with the store opened (created if missing).
    fn open(self) -> Result<Publish> {
        self.check()?;
        let target = match (self.out, self.store) {
            (Some(out), None) => Target::Dir(out),
            (None, Some(store)) => Target::Store(
                Store::open(&store)
                    .with_context(|| format!("cannot open the store {}", store.display()))?,
            ),
            _ => bail!("give exactly one of --out and --store"),
        };
        Ok(Publish {
            target,
            previous: self.previous,
            margin: self.gate_margin,
            keep: self.keep,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train every model on a purchase history and write a versioned artifact.
    ///
    /// Exit status: 0 when the model was published, 3 when the promotion gate
    /// refused it, 1 on any error.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["out", "store"])))]
    Fit {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        publish: PublishArgs,
        /// Evaluate on the purchases from this time on (trained on those before)
        /// and record the metrics in the manifest [default: the last 30 days].
        #[arg(long, conflicts_with = "no_eval")]
        holdout_from: Option<String>,
        /// Skip the holdout evaluation.
        #[arg(long)]
        no_eval: bool,
        /// Event log directory of `encore-serve --events`: its purchase events
        /// are merged into the history, except those whose order_id is an
        /// order of the input file (already there).
        #[arg(long, value_name = "DIR")]
        events: Option<PathBuf>,
        /// Write only the shared part of a sharded fit to --out (every model
        /// but the per-customer lists, which `shard` makes and `assemble`
        /// puts together); see docs/spark.md.
        #[arg(long, conflicts_with_all = ["store", "previous"], requires = "out")]
        shared_only: bool,
    },
    /// Make the per-customer lists of one shard of customers from a shared
    /// part (`fit --shared-only`) and the same history.
    Shard {
        #[command(flatten)]
        history: ShardHistory,
        /// The shared part written by `fit --shared-only`.
        #[arg(long)]
        shared: PathBuf,
        /// This shard's number, from 0 to --of less one.
        #[arg(long)]
        shard: u32,
        /// The number of shards (customers go to shard crc32(id) mod N).
        #[arg(long, value_name = "N")]
        of: u32,
        /// Where to write the shard's part (replaced atomically if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a shared part and all of its shard parts together into one
    /// artifact and publish it as `fit` does.
    ///
    /// Exit status: 0 when the model was published, 3 when the promotion gate
    /// refused it, 1 on any error (a missing or damaged shard: nothing is
    /// published).
    #[command(group(clap::ArgGroup::new("target").required(true).args(["out", "store"])))]
    Assemble {
        /// The shared part written by `fit --shared-only`.
        #[arg(long)]
        shared: PathBuf,
        /// The shard parts written by `shard`, one directory for each shard.
        #[arg(long, num_args = 1.., required = true)]
        parts: Vec<PathBuf>,
        #[command(flatten)]
        publish: PublishArgs,
        /// The history of the shared part, for the promotion gate (read only
        /// when there is a serving model to compare with).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Column map of --input, as for `fit`.
        #[arg(long, requires = "input")]
        columns: Option<String>,
        /// Event log merged into --input, as for `fit`.
        #[arg(long, value_name = "DIR", requires = "input")]
        events: Option<PathBuf>,
    },
    /// Write recommendation lists as CSV to stdout.
    Recommend {
        /// Artifact directory written by `fit`.
        #[arg(long)]
        model: PathBuf,
        /// List length, 1 to 1000.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// File of ids, one a line (customers for for-you, items otherwise) [default: all].
        #[arg(long, alias = "items")]
        customers: Option<PathBuf>,
        /// Which list.
        #[arg(long, value_enum, default_value = "for-you")]
        list: ListKind,
        /// For-you only: the repeat-aware list, previously bought items
        /// included (as `include_purchased=true` of the API); without it only
        /// items the customer has not bought.
        #[arg(long)]
        include_purchased: bool,
    },
    /// Write a reactivation audience (one customer a row, with a send date and
    /// personal items) to stdout.
    Audience {
        /// Artifact directory written by `fit`.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        settings: AudienceArgs,
        #[arg(long, value_enum, default_value = "csv")]
        format: AudienceFormat,
    },
    /// Write one CSV row per customer with every profile field to stdout.
    Customers {
        /// Artifact directory written by `fit`.
        #[arg(long)]
        model: PathBuf,
    },
    /// Random search of the "for you" model's settings within a time budget,
    /// on the validation split only; writes the best as a training config.
    Tune {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        holdout: Holdout,
        /// The cut-off of the objective, Recall@K + NDCG@K.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Wall-time budget of the search, in seconds.
        #[arg(long, default_value_t = 300.0)]
        budget_secs: f64,
        /// Stop after this many trials even if budget is left (with it, the
        /// same seed gives the same search on any machine fast enough).
        #[arg(long, value_name = "N")]
        trials: Option<usize>,
        /// Seed of the random search.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where to write the best configuration (TOML, for `fit --config`).
        #[arg(long)]
        out_config: PathBuf,
    },
    /// Inspect and move the CURRENT version of a model store.
    Models {
        /// The model store.
        #[arg(long)]
        store: PathBuf,
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Score every model (and the baselines) on a held-out split: a time cutoff
    /// (`--holdout-from`) or each customer's last order (`--split next-basket`).
    Evaluate {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        holdout: Holdout,
        /// Also train and score every model on the validation split.
        #[arg(long)]
        score_validation: bool,
        /// List lengths to score, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "10,20")]
        k: Vec<usize>,
        /// Only these models, comma separated [default: all of popularity,
        /// p_topfreq, gp_topfreq, item_knn, als, tifu_knn, tifu_als, ranker,
        /// ease].
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Also write the report as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Also write a self-contained HTML report (tables and SVG plots) here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Also write the split as CSV into this directory, for other tools to train
        /// and score on the same data: train.csv (canonical input columns), test.csv
        /// (customer_id,item_id: the scored targets), items.csv, meta.json; the
        /// validation split goes to DIR/validation.
        #[arg(long, value_name = "DIR")]
        export_split: Option<PathBuf>,
    },
    /// Check, repair or prune a feedback event log directory.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Report an experiment from the feedback event log: per variant the
    /// exposed customers, conversion, revenue per exposed customer and
    /// repurchase rate with 95% CIs, the differences to control, and a
    /// sample-ratio mismatch check.
    ///
    /// Exit status: 0 when the report was written, 4 when it was written but
    /// flags a sample-ratio mismatch (do not trust the differences), 1 on error.
    ExperimentReport {
        /// Event log directory (events-*.jsonl files).
        #[arg(long)]
        events: PathBuf,
        /// The experiment's name, as logged in exposures.
        #[arg(long)]
        experiment: String,
        /// Experiments configuration (TOML) with this experiment's variants,
        /// shares and control [default: the variants logged, equal shares].
        #[arg(long)]
        experiments: Option<PathBuf>,
        /// The control variant when no --experiments file is given.
        #[arg(long, conflicts_with = "experiments")]
        control: Option<String>,
        /// Purchases count from the first exposure to this many days after it.
        #[arg(long, default_value_t = encore_model::experiment::report::DEFAULT_WINDOW_DAYS)]
        window_days: f64,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
    },
}

/// What `encore-train events` does to a log directory.
#[derive(Subcommand)]
enum EventsAction {
    /// Read every record and check its length, CRC-32C and event; list the
    /// damaged records and torn tails. Exit status 5 when there are any.
    Verify {
        /// The event log directory.
        dir: PathBuf,
    },
    /// Move damaged records out of the files (into FILE.damaged beside
    /// each) and cut torn tails. The server must be stopped (the log's lock
    /// is taken).
    Repair {
        /// The event log directory.
        dir: PathBuf,
    },
    /// Remove the compacted files (events-*-compacted.jsonl, left by
    /// retention) whose every purchase is dated at or before --through,
    /// i.e. already in the history you train on; or move them to --archive.
    /// The checkpoint is not touched, so their ids stay duplicates. The
    /// server must be stopped (the log's lock is taken).
    Prune {
        /// The event log directory.
        dir: PathBuf,
        /// The cut-off: a time (RFC 3339, a date, ...), or a model directory
        /// or model store whose (current) model's data end is taken (before
        /// the first purchase it merged from an event log, if it did).
        #[arg(long, value_name = "TIME|MODEL")]
        through: String,
        /// Move the files into this directory instead of removing them.
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
    },
}

/// The cut-off of `events prune --through`: a time, or a model directory or
/// store whose model's data end is taken; returns it with where it came from.
fn prune_cut_off(through: &str) -> Result<(i64, String)> {
    let path = std::path::Path::new(through);
    if !path.is_dir() {
        let t = parse_timestamp(through).with_context(|| {
            format!(
                "--through {through:?}: neither a time (RFC 3339, YYYY-MM-DD HH:MM:SS, a date, \
                 seconds since the epoch) nor a model directory or model store"
            )
        })?;
        return Ok((t, "given".into()));
    }
    let (dir, what) = if path.join("manifest.json").is_file() {
        (path.to_path_buf(), format!("model {}", path.display()))
    } else {
        let store = Store::open_existing(path).with_context(|| {
            format!(
                "--through {}: not a model directory nor a model store",
                path.display()
            )
        })?;
        let dir = store.current_dir()?.with_context(|| {
            format!(
                "--through {}: the store has no current version",
                path.display()
            )
        })?;
        (
            dir.clone(),
            format!(
                "current model of the store {} ({})",
                path.display(),
                dir.display()
            ),
        )
    };
    let manifest = artifact::read_manifest(&dir)
        .with_context(|| format!("cannot read the manifest of {}", dir.display()))?;
    let end = manifest
        .data
        .last_purchase
        .as_deref()
        .and_then(parse_timestamp)
        .with_context(|| format!("the manifest of {} records no data end", dir.display()))?;
    // Purchases the fit merged from an event log are not in its input file:
    // the next fit needs them from the log again, so the cut-off stays
    // before the first of them.
    let merged_from = manifest
        .data
        .events
        .as_ref()
        .filter(|e| e.purchases_merged > 0)
        .and_then(|e| e.first_purchase.as_deref())
        .and_then(parse_timestamp);
    Ok(match merged_from {
        Some(first) if first - 1 < end => (
            first - 1,
            format!(
                "{what}: just before the first purchase it merged from an event log (its data end is {})",
                encore_data::timestamp::format_timestamp(end)
            ),
        ),
        _ => (end, format!("{what}: its data end")),
    })
}

/// What `encore-train models` does to a store.
#[derive(Subcommand)]
enum ModelsAction {
    /// List the versions of the store; `*` marks CURRENT.
    List,
    /// Make VERSION the current model.
    Promote {
        /// The version to make current.
        version: String,
    },
    /// Make the version that was current before the present one current again.
    Rollback,
}

/// The gate column of `models list`: the decision, then each list's metric,
/// candidate and serving scores, and the serving version compared against.
fn gate_cell(g: &serde_json::Value) -> String {
    let decision = if g["promoted"].as_bool() == Some(true) {
        "passed"
    } else {
        "refused"
    };
    let lists: Vec<String> = g["lists"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|l| {
            format!(
                "{} {} {:.4} vs {:.4}",
                l["list"].as_str().unwrap_or("-"),
                l["metric"].as_str().unwrap_or("-"),
                l["candidate"].as_f64().unwrap_or(f64::NAN),
                l["previous"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    let lists = if !lists.is_empty() {
        lists.join(", ")
    } else if let Some(metric) = g["metric"].as_str() {
        // A manifest written before the gate scored two lists.
        format!(
            "{metric} {:.4} vs {:.4}",
            g["candidate"].as_f64().unwrap_or(f64::NAN),
            g["previous"].as_f64().unwrap_or(f64::NAN),
        )
    } else {
        "not judged".to_string()
    };
    format!(
        "{decision} {lists} ({})",
        g["previous_version"].as_str().unwrap_or("-")
    )
}

/// Exit status of `fit` when the promotion gate refused the model.
const EXIT_NOT_PROMOTED: i32 = 3;
/// The output format of `experiment-report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    /// A readable table.
    Text,
    /// Every number, as JSON.
    Json,
}

/// Exit status of `experiment-report` when the report flags a sample-ratio
/// mismatch.
const EXIT_SAMPLE_RATIO_MISMATCH: i32 = 4;
/// Exit status of `events verify` when the log holds damaged records or a
/// torn tail.
const EXIT_EVENT_LOG_DAMAGED: i32 = 5;

fn parse_cutoff(s: &str) -> Result<i64> {
    parse_timestamp(s).with_context(|| {
        format!("--holdout-from '{s}' is not a timestamp (RFC 3339, YYYY-MM-DD HH:MM:SS, YYYY-MM-DD or YYYYMMDD)")
    })
}

/// Prints a line of a command's report to stdout. A reader that closed the
/// pipe (`encore-train fit ... | head`) neither stops nor fails the command:
/// its work is the model or report file, not these lines. Any other write
/// error is said on stderr.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*)
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            eprintln!("warning: cannot write to stdout: {e}");
        }
    }};
}

/// Prints a published fit's summary; a model the gate refused ends the
/// process with [`EXIT_NOT_PROMOTED`].
fn finish_publish(outcome: &FitOutcome) {
    say!("{}", summary(outcome));
    if !outcome.promoted {
        std::process::exit(EXIT_NOT_PROMOTED);
    }
}

/// Runs `write` on a buffered stdout; a reader that went away (e.g. `| head`)
/// is not an error of ours and ends quietly with `None`.
fn to_stdout<T>(write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<Option<T>> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match write(&mut out).and_then(|v| {
        out.flush()?;
        Ok(v)
    }) {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn load_model(dir: &std::path::Path) -> Result<encore_model::engine::Engine> {
    artifact::load(dir).with_context(|| format!("cannot load the model at {}", dir.display()))
}

fn main() -> std::process::ExitCode {
    encore_data::alloc::keep_large_blocks_mapped();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each error says its cause in its message (see encore_data):
            // the chain, one cause after another, says each once.
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let show_progress = std::io::stderr().is_terminal();
    match cli.command {
        Command::Fit {
            input,
            publish,
            holdout_from,
            no_eval,
            events,
            shared_only,
        } => {
            // Flags are checked before anything is read, trained or created.
            publish.check()?;
            let config = load_config(input.config.as_deref())?;
            let publish = publish.open()?;
            let mut args = input.args();
            // Rejected rows go next to the model unless told otherwise.
            let beside = match &publish.target {
                Target::Dir(out) => PathBuf::from(format!("{}.rejects.csv", out.display())),
                Target::Store(s) => s.root().join("rejects.csv"),
            };
            args.rejects.get_or_insert(beside);
            let mut loaded = load_input(&args)?;
            say!("{}", loaded.report.summary());
            if let Some(dir) = &events {
                let catalog = input
                    .catalog
                    .as_deref()
                    .map(encore_data::catalog::read_catalog)
                    .transpose()?;
                let merged = merge_events(&mut loaded, dir, catalog.as_ref())?;
                say!("{}", events_line(&merged));
            }
            if input.catalog.is_some() && loaded.catalog_unmatched > 0 {
                say!(
                    "catalog: {} entries name items that are not in the history (ignored)",
                    loaded.catalog_unmatched
                );
            }
            let evaluation = match (no_eval, holdout_from) {
                (true, _) => FitEvaluation::Skip,
                (false, Some(s)) => FitEvaluation::Cutoff(parse_cutoff(&s)?),
                (false, None) => FitEvaluation::LastDays(30.0),
            };
            if let (true, Target::Dir(out)) = (shared_only, &publish.target) {
                let outcome =
                    fit_shared(&loaded, &config, evaluation, &[10, 20], out, show_progress)?;
                say!(
                    "shared part {} written to {} ({} customers, lists by {}) in {:.1}s",
                    outcome.id,
                    outcome.dir.display(),
                    outcome.customers,
                    outcome.plan,
                    outcome.total_seconds
                );
                return Ok(());
            }
            let outcome = fit_and_publish(
                &loaded,
                &config,
                evaluation,
                &[10, 20],
                &publish,
                show_progress,
            )?;
            finish_publish(&outcome);
        }
        Command::Shard {
            history,
            shared,
            shard,
            of,
            out,
        } => {
            check_shard(shard, of)?;
            let loaded = load_history(
                &history.input,
                history.columns,
                history.strict,
                history.rejects,
                history.events.as_deref(),
            )?;
            let outcome = run_shard(&loaded, &shared, shard, of, &out, show_progress)?;
            say!(
                "shard {} of {}: lists of {} customers written to {} in {:.1}s",
                outcome.shard,
                outcome.of,
                outcome.customers,
                out.display(),
                outcome.total_seconds
            );
        }
        Command::Assemble {
            shared,
            parts,
            publish,
            input,
            columns,
            events,
        } => {
            let publish = publish.open()?;
            let loaded = match &input {
                Some(path) => Some(load_history(path, columns, false, None, events.as_deref())?),
                None => None,
            };
            let outcome =
                assemble_and_publish(&shared, &parts, loaded.as_ref(), &publish, show_progress)?;
            finish_publish(&outcome);
        }
        Command::Recommend {
            model,
            k,
            customers,
            list,
            include_purchased,
        } => {
            if include_purchased && list != ListKind::ForYou {
                bail!("--include-purchased applies to --list for-you only");
            }
            let engine = load_model(&model)?;
            let ids = customers.as_deref().map(read_ids).transpose()?;
            let started = std::time::Instant::now();
            let Some(s) =
                to_stdout(|out| write_lists(&engine, list, ids, k, include_purchased, out))?
            else {
                return Ok(());
            };
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{} ids ({} unknown{}), {} lines in {:.2}s ({:.0} ids/s)",
                s.rows_in,
                s.unknown,
                if list == ListKind::ForYou {
                    ", given the fallback list"
                } else {
                    ", no list"
                },
                s.lines_out,
                secs,
                s.rows_in as f64 / secs.max(1e-9)
            );
        }
        Command::Audience {
            model,
            settings,
            format,
        } => {
            // Checked before the model is read.
            let query = settings.query().map_err(flag_problem)?;
            let engine = load_model(&model)?;
            let started = std::time::Instant::now();
            if let Some(n) = to_stdout(|out| write_audience(&engine, &query, format, out))? {
                eprintln!(
                    "{n} customers in the audience ({:.2}s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Command::Models { store, action } => {
            let store = Store::open_existing(&store)
                .with_context(|| format!("cannot open the store {}", store.display()))?;
            match action {
                ModelsAction::List => {
                    say!(
                        "  {:<28}  {:<20}  {:<20}  gate (candidate vs serving model)",
                        "version",
                        "created",
                        "data until"
                    );
                    for v in store.versions()? {
                        let mark = if v.current { "*" } else { " " };
                        match &v.manifest {
                            Some(m) => {
                                let gate = m.metrics.get("gate").map_or("-".to_string(), gate_cell);
                                say!(
                                    "{mark} {:<28}  {:<20}  {:<20}  {gate}",
                                    v.version,
                                    m.created_at,
                                    m.data.last_purchase.as_deref().unwrap_or("-"),
                                );
                            }
                            None => say!(
                                "{mark}       {:<30}  unreadable: {}",
                                v.version,
                                v.error.as_deref().unwrap_or("-")
                            ),
                        }
                    }
                }
                ModelsAction::Promote { version } => {
                    store.set_current(&version)?;
                    say!("{version} is now current");
                }
                ModelsAction::Rollback => {
                    let version = store.rollback()?;
                    say!("rolled back: {version} is now current");
                }
            }
        }
        Command::Tune {
            input,
            holdout,
            k,
            budget_secs,
            trials,
            seed,
            out_config,
        } => {
            if trials == Some(0) {
                bail!("--trials must be at least 1");
            }
            if !(budget_secs.is_finite() && budget_secs > 0.0) {
                bail!("--budget-secs must be a positive number, not {budget_secs}");
            }
            let split = holdout.split(false)?;
            let base = load_config(input.config.as_deref())?;
            let loaded = load_input(&input.args())?;
            say!("{}", loaded.report.summary());
            let budget = std::time::Duration::from_secs_f64(budget_secs);
            let options = encore_training::tune::TuneOptions {
                validation_days: holdout.validation_days,
                k,
                budget,
                max_trials: trials,
                seed,
            };
            let result =
                encore_training::tune::tune(&loaded, &base, &split, &options, &mut |n, t| {
                    say!(
                        "trial {n:>3}: recall@{k} {:.4}  ndcg@{k} {:.4}  ({:.1}s){}",
                        t.recall,
                        t.ndcg,
                        t.seconds,
                        if n == 0 {
                            "  (the given configuration)"
                        } else {
                            ""
                        }
                    );
                })?;
            let best = &result.trials[result.best];
            say!(
                "validation split {}\nbest: trial {} of {}: recall@{k} {:.4}, ndcg@{k} {:.4} (given configuration: {:.4}, {:.4})",
                result.split,
                result.best,
                result.trials.len(),
                best.recall,
                best.ndcg,
                result.trials[0].recall,
                result.trials[0].ndcg
            );
            let config = result.best_config(k, budget);
            let text = toml::to_string_pretty(&config).context("cannot write the configuration")?;
            std::fs::write(&out_config, text)
                .with_context(|| format!("cannot write {}", out_config.display()))?;
            say!(
                "written to {} (train with: encore-train fit --config {} ...)",
                out_config.display(),
                out_config.display()
            );
        }
        Command::Customers { model } => {
            let engine = load_model(&model)?;
            if let Some(n) = to_stdout(|out| write_customers(&engine, out))? {
                eprintln!("{n} customers");
            }
        }
        Command::Evaluate {
            input,
            holdout,
            score_validation,
            k,
            models,
            report,
            html,
            export_split,
        } => {
            let split = holdout.split(true)?;
            let registry = if models.is_empty() {
                Registry::standard()
            } else {
                Registry::standard().only(&models)?
            };
            let config = load_config(input.config.as_deref())?;
            let mut args = input.args();
            if let Some(report) = report.as_ref().or(html.as_ref()) {
                args.rejects.get_or_insert_with(|| {
                    PathBuf::from(format!("{}.rejects.csv", report.display()))
                });
            }
            let loaded = load_input(&args)?;
            say!("{}", loaded.report.summary());
            let data = data_summary(&loaded.report, &loaded.log);
            let mut progress = StageProgress::new(show_progress);
            let options = EvalOptions {
                split,
                validation_days: holdout.validation_days,
                ks: k,
                score_validation,
            };
            if let Some(dir) = &export_split {
                let (test, validation) = export_splits(
                    &loaded.log,
                    &loaded.item_meta,
                    &config,
                    &data,
                    &options,
                    dir,
                )?;
                say!(
                    "split exported to {}: {} training lines, {} targets of {} customers (validation in {}: {} targets of {} customers)",
                    dir.display(),
                    test.train_rows,
                    test.target_rows,
                    test.customers_scored,
                    dir.join(VALIDATION_EXPORT_DIR).display(),
                    validation.target_rows,
                    validation.customers_scored
                );
            }
            let r = evaluate_with(
                &loaded.log,
                &loaded.item_meta,
                &config,
                &data,
                &options,
                &registry,
                Some(&mut progress),
            )?;
            progress.finish();
            say!("{}", r.table());
            if let Some(path) = report {
                let json = serde_json::to_vec_pretty(&r)?;
                std::fs::write(&path, json)
                    .with_context(|| format!("cannot write the report to {}", path.display()))?;
                say!("report written to {}", path.display());
            }
            if let Some(path) = html {
                std::fs::write(&path, encore_training::report_html::render(&r)).with_context(
                    || format!("cannot write the HTML report to {}", path.display()),
                )?;
                say!("HTML report written to {}", path.display());
            }
            if r.customers_scored == 0 {
                bail!("no customer could be scored");
            }
        }
        Command::Events { action } => match action {
            EventsAction::Verify { dir } => {
                let report = encore_data::events::for_each_event(&dir, |_| {})
                    .with_context(|| format!("cannot read the event log {}", dir.display()))?;
                for (i, path) in report.files.iter().enumerate() {
                    let damaged = report.damaged.iter().filter(|d| d.path == *path).count();
                    let torn = report.torn_tails.contains(path);
                    say!(
                        "{}: {} bytes, {} damaged record{}{}",
                        path.display(),
                        report.bytes[i],
                        damaged,
                        if damaged == 1 { "" } else { "s" },
                        if torn { ", a torn last line" } else { "" }
                    );
                }
                for d in &report.damaged {
                    say!("damaged: {d}");
                }
                say!(
                    "{} files, {} records, {} damaged, {} torn tails, {} duplicate ids",
                    report.files.len(),
                    report.lines,
                    report.damaged.len(),
                    report.torn_tails.len(),
                    report.duplicates
                );
                let checkpoint_damaged = match encore_data::event_log::read_checkpoint(&dir) {
                    Ok(None) => {
                        say!("checkpoint: none (nothing compacted)");
                        false
                    }
                    Ok(Some(c)) => {
                        let leftovers = report
                            .files
                            .iter()
                            .filter_map(|p| p.file_name()?.to_str())
                            .filter_map(encore_data::event_log::original_seq)
                            .filter(|&seq| seq <= c.compacted_through)
                            .count();
                        say!(
                            "checkpoint: files up to {} compacted, {} ids of the idempotency window, written at {}{}",
                            c.compacted_through,
                            c.ids.len(),
                            encore_data::timestamp::format_timestamp(c.written_at),
                            if leftovers > 0 {
                                format!(
                                    "; {leftovers} compacted files not removed yet (a compaction cut short: the server removes them when it opens the log)"
                                )
                            } else {
                                String::new()
                            }
                        );
                        false
                    }
                    Err(e) => {
                        say!(
                            "{e} (`events repair` moves it aside; the server then reads every file)"
                        );
                        true
                    }
                };
                if !report.damaged.is_empty() || !report.torn_tails.is_empty() || checkpoint_damaged
                {
                    std::process::exit(EXIT_EVENT_LOG_DAMAGED);
                }
            }
            EventsAction::Repair { dir } => {
                let report = encore_data::event_log::repair_dir(&dir)
                    .with_context(|| format!("cannot repair the event log {}", dir.display()))?;
                for (d, aside) in &report.moved {
                    say!("moved {d} to {}", aside.display());
                }
                for (path, bytes) in &report.torn_cut {
                    say!(
                        "cut a torn last line of {bytes} bytes from {}",
                        path.display()
                    );
                }
                if let Some((reason, aside)) = &report.checkpoint_moved {
                    say!(
                        "moved the damaged checkpoint ({reason}) to {}: the server reads every file when it opens the log, and writes a new checkpoint at its next compaction",
                        aside.display()
                    );
                }
                say!(
                    "{} damaged records moved aside, {} torn tails cut",
                    report.moved.len(),
                    report.torn_cut.len()
                );
            }
            EventsAction::Prune {
                dir,
                through,
                archive,
            } => {
                let (cut, source) = prune_cut_off(&through)?;
                say!(
                    "cut-off: {} ({source})",
                    encore_data::timestamp::format_timestamp(cut)
                );
                let report = encore_data::event_log::prune_compacted(&dir, cut, archive.as_deref())
                    .map_err(|e| match e {
                        encore_data::events::EventLogError::Locked { .. } => anyhow::anyhow!(
                            "{e}: stop the server (or the other encore-train) first; nothing was removed"
                        ),
                        e => anyhow::Error::new(e),
                    })
                    .with_context(|| format!("cannot prune the event log {}", dir.display()))?;
                let mut bytes = 0;
                for f in &report.removed {
                    bytes += f.bytes;
                    let latest = f
                        .latest
                        .map_or("none".into(), encore_data::timestamp::format_timestamp);
                    match &f.archived {
                        Some(to) => say!(
                            "moved {} to {} ({} purchases, the latest {latest}, {} bytes)",
                            f.path.display(),
                            to.display(),
                            f.events,
                            f.bytes
                        ),
                        None => say!(
                            "removed {} ({} purchases, the latest {latest}, {} bytes)",
                            f.path.display(),
                            f.events,
                            f.bytes
                        ),
                    }
                }
                for (path, reason) in &report.kept {
                    say!("kept {}: {reason}", path.display());
                }
                say!(
                    "{} compacted files {} ({bytes} bytes), {} kept; the checkpoint is unchanged",
                    report.removed.len(),
                    if archive.is_some() {
                        "moved"
                    } else {
                        "removed"
                    },
                    report.kept.len()
                );
            }
        },
        Command::ExperimentReport {
            events,
            experiment,
            experiments,
            control,
            window_days,
            format,
        } => {
            use encore_model::experiment::ExperimentsConfig;
            use encore_model::experiment::report::{ReportOptions, report_from_dir};
            let config = match &experiments {
                None => None,
                Some(path) => {
                    let all = ExperimentsConfig::from_path(path)?;
                    let found = all.get(&experiment).cloned().with_context(|| {
                        format!("{} has no experiment {experiment:?}", path.display())
                    })?;
                    Some(found)
                }
            };
            let options = ReportOptions {
                experiment,
                window_days,
                config,
                control,
            };
            let (report, _) = report_from_dir(&events, &options)?;
            to_stdout(|out| {
                match format {
                    ReportFormat::Text => out.write_all(report.text().as_bytes())?,
                    ReportFormat::Json => {
                        serde_json::to_writer_pretty(&mut *out, &report)?;
                        out.write_all(b"\n")?;
                    }
                }
                Ok(())
            })?;
            if report.sample_ratio.mismatch {
                std::process::exit(EXIT_SAMPLE_RATIO_MISMATCH);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Cli, Registry, gate_cell};
    use serde_json::json;

    #[test]
    fn the_gate_cell_shows_every_list_and_reads_older_manifests() {
        let two_lists = json!({
            "promoted": false,
            "previous_version": "v1",
            "lists": [
                {"list": "new_items", "metric": "recall@10", "candidate": 0.2, "previous": 0.1},
                {"list": "with_purchased", "metric": "recall@10", "candidate": 0.3, "previous": 0.4},
            ],
        });
        assert_eq!(
            gate_cell(&two_lists),
            "refused new_items recall@10 0.2000 vs 0.1000, \
             with_purchased recall@10 0.3000 vs 0.4000 (v1)"
        );
        let one_list = json!({
            "promoted": true, "previous_version": "v0",
            "metric": "recall@10", "candidate": 0.25, "previous": 0.25,
        });
        assert_eq!(
            gate_cell(&one_list),
            "passed recall@10 0.2500 vs 0.2500 (v0)"
        );
        let not_judged = json!({"promoted": false, "previous_version": "v2", "lists": []});
        assert_eq!(gate_cell(&not_judged), "refused not judged (v2)");
    }

    /// The help of `evaluate --models` lists its default, every model of the
    /// registry: a model added to one and not the other fails here.
    #[test]
    fn evaluate_help_names_every_model() {
        let mut cli = <Cli as clap::CommandFactory>::command();
        let help = cli
            .find_subcommand_mut("evaluate")
            .unwrap()
            .render_long_help()
            .to_string();
        let text = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let start = text
            .find("[default: all of ")
            .expect("a default in the help");
        let listed: Vec<&str> = text[start + "[default: all of ".len()..]
            .split(']')
            .next()
            .unwrap()
            .split(", ")
            .map(|s| s.trim_end_matches('.'))
            .collect();
        let registry = Registry::standard();
        assert_eq!(listed, registry.names().collect::<Vec<_>>(), "{help}");
    }
}
