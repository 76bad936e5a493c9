//! `encore-train`: build, evaluate and publish Encore models. See `--help`.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use encore_data::timestamp::parse_timestamp;
use encore_model::artifact;
use encore_model::customer::lifecycle::parse_stages;
use encore_model::outreach::AudienceQuery;
use encore_training::batch::{ListKind, read_ids, write_lists};
use encore_training::config::load_config;
use encore_training::customers::{AudienceFormat, write_audience, write_customers};
use encore_training::evaluate::evaluate;
use encore_training::fit::{FitEvaluation, fit, summary};
use encore_training::input::{InputArgs, data_summary, load_input};
use encore_training::progress::StageProgress;
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
    /// Purchase history CSV (plain or .gz).
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
    /// Where skipped rows go, written only if a row is skipped [default:
    /// <out>.rejects.csv for fit, <report>.rejects.csv or <input file name>.rejects.csv
    /// in the current directory for evaluate].
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Training configuration (TOML); defaults apply to missing keys.
    #[arg(long)]
    config: Option<PathBuf>,
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

#[derive(Subcommand)]
enum Command {
    /// Train every model on a purchase history and write a versioned artifact.
    Fit {
        #[command(flatten)]
        input: Input,
        /// Artifact directory to write (replaced atomically if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Evaluate on the purchases from this time on (trained on those before)
        /// and record the metrics in the manifest [default: the last 30 days].
        #[arg(long, conflicts_with = "no_eval")]
        holdout_from: Option<String>,
        /// Skip the holdout evaluation.
        #[arg(long)]
        no_eval: bool,
    },
    /// Write recommendation lists as CSV to stdout.
    Recommend {
        /// Artifact directory written by `fit`.
        #[arg(long)]
        model: PathBuf,
        /// List length.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// File of ids, one a line (customers for for-you, items otherwise) [default: all].
        #[arg(long, alias = "items")]
        customers: Option<PathBuf>,
        /// Which list.
        #[arg(long, value_enum, default_value = "for-you")]
        list: ListKind,
    },
    /// Write a reactivation audience (one customer a row, with a send date and
    /// personal items) to stdout.
    Audience {
        /// Artifact directory written by `fit`.
        #[arg(long)]
        model: PathBuf,
        /// Lifecycle stages to include, comma separated (new, active, dormant, at_risk, lost).
        #[arg(long, default_value = "dormant,at_risk")]
        stage: String,
        /// RFM segments to include, comma separated [default: all].
        #[arg(long)]
        segment: Option<String>,
        /// Only customers with at least this P(alive).
        #[arg(long)]
        min_p_alive: Option<f64>,
        /// Only customers with at least this CLV.
        #[arg(long)]
        min_clv: Option<f64>,
        /// Items per customer.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// At most this many customers (highest CLV first).
        #[arg(long)]
        limit: Option<usize>,
        /// First day of the campaign [default: the model's last purchase date].
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, value_enum, default_value = "csv")]
        format: AudienceFormat,
    },
    /// Write one CSV row per customer with every profile field to stdout.
    Customers {
        /// Artifact directory written by `fit`.
        #[arg(long)]
        model: PathBuf,
    },
    /// Train on purchases before a cutoff and score every model on what came after.
    Evaluate {
        #[command(flatten)]
        input: Input,
        /// Cutoff time (RFC 3339, YYYY-MM-DD HH:MM:SS, YYYY-MM-DD or YYYYMMDD).
        #[arg(long)]
        holdout_from: String,
        /// List lengths to score, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "10,20")]
        k: Vec<usize>,
        /// Also write the report as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

fn parse_cutoff(s: &str) -> Result<i64> {
    parse_timestamp(s).with_context(|| {
        format!("--holdout-from '{s}' is not a timestamp (RFC 3339, YYYY-MM-DD HH:MM:SS, YYYY-MM-DD or YYYYMMDD)")
    })
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

fn main() -> Result<()> {
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
            out,
            holdout_from,
            no_eval,
        } => {
            let config = load_config(input.config.as_deref())?;
            let mut args = input.args();
            // Rejected rows go next to the model unless told otherwise.
            args.rejects
                .get_or_insert_with(|| PathBuf::from(format!("{}.rejects.csv", out.display())));
            let loaded = load_input(&args)?;
            println!("{}", loaded.report.summary());
            if input.catalog.is_some() && loaded.catalog_unmatched > 0 {
                println!(
                    "catalog: {} entries name items that are not in the history (ignored)",
                    loaded.catalog_unmatched
                );
            }
            let evaluation = match (no_eval, holdout_from) {
                (true, _) => FitEvaluation::Skip,
                (false, Some(s)) => FitEvaluation::Cutoff(parse_cutoff(&s)?),
                (false, None) => FitEvaluation::LastDays(30.0),
            };
            let outcome = fit(&loaded, &config, evaluation, &[10, 20], &out, show_progress)?;
            println!("{}", summary(&outcome, &out));
        }
        Command::Recommend {
            model,
            k,
            customers,
            list,
        } => {
            let engine = load_model(&model)?;
            let ids = customers.as_deref().map(read_ids).transpose()?;
            let started = std::time::Instant::now();
            let Some(s) = to_stdout(|out| write_lists(&engine, list, ids, k, out))? else {
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
            stage,
            segment,
            min_p_alive,
            min_clv,
            k,
            limit,
            as_of,
            format,
        } => {
            let stages = parse_stages(&stage).map_err(|e| anyhow::anyhow!("--stage: {e}"))?;
            if stages.is_empty() {
                bail!("--stage must name at least one stage");
            }
            if let Some(p) = min_p_alive
                && !(0.0..=1.0).contains(&p)
            {
                bail!("--min-p-alive must be within [0, 1], not {p}");
            }
            if let Some(v) = min_clv
                && !v.is_finite()
            {
                bail!("--min-clv must be a finite number, not {v}");
            }
            if limit == Some(0) {
                bail!("--limit must be at least 1");
            }
            let as_of = as_of
                .map(|s| {
                    parse_timestamp(&s)
                        .with_context(|| format!("--as-of '{s}' is not a date (YYYY-MM-DD)"))
                })
                .transpose()?;
            let query = AudienceQuery {
                stages,
                segments: segment
                    .map(|s| {
                        s.split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                min_p_alive,
                min_clv,
                k,
                limit,
                as_of,
                ..AudienceQuery::default()
            };
            let engine = load_model(&model)?;
            let started = std::time::Instant::now();
            if let Some(n) = to_stdout(|out| write_audience(&engine, &query, format, out))? {
                eprintln!(
                    "{n} customers in the audience ({:.2}s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Command::Customers { model } => {
            let engine = load_model(&model)?;
            if let Some(n) = to_stdout(|out| write_customers(&engine, out))? {
                eprintln!("{n} customers");
            }
        }
        Command::Evaluate {
            input,
            holdout_from,
            k,
            report,
        } => {
            let cutoff = parse_cutoff(&holdout_from)?;
            let config = load_config(input.config.as_deref())?;
            let mut args = input.args();
            if let Some(report) = &report {
                args.rejects.get_or_insert_with(|| {
                    PathBuf::from(format!("{}.rejects.csv", report.display()))
                });
            }
            let loaded = load_input(&args)?;
            println!("{}", loaded.report.summary());
            let data = data_summary(&loaded.report, &loaded.log);
            let mut progress = StageProgress::new(show_progress);
            let r = evaluate(
                &loaded.log,
                &loaded.item_meta,
                &config,
                &data,
                cutoff,
                &k,
                Some(&mut progress),
            )?;
            progress.finish();
            println!("{}", r.table());
            if let Some(path) = report {
                let json = serde_json::to_vec_pretty(&r)?;
                std::fs::write(&path, json)
                    .with_context(|| format!("cannot write the report to {}", path.display()))?;
                println!("report written to {}", path.display());
            }
            if r.customers_scored == 0 {
                bail!("no customer could be scored");
            }
        }
    }
    Ok(())
}
