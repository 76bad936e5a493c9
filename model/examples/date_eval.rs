//! The customer models against what customers did after a cutoff
//! ([`encore_model::customer::holdout`]): the buying probability's ROC AUC
//! against simple rankings, and the errors in days of the predicted next
//! purchase dates and the replenishment due dates against the "own median
//! gap" baselines. The customer settings are the defaults.
//!
//! ```text
//! cargo run --release -p encore-model --example date_eval -- \
//!     [--shift-days N] [--only NAME] [--instacart CSV]
//! ```
//!
//! * Histories: Online Retail (bundled sample, with its catalog's
//!   categories) at 2011-10-01, CDNOW at 1997-10-01 and the grocery log at
//!   2007-07-01 when they are beside the checkout, and with `--instacart
//!   CSV` the Instacart sample converted by `bench/instacart_to_csv.py`
//!   (relative days: every user starts at 2020-01-01). Its cutoff is the day
//!   before which 80 % of its lines fall, so that about a fifth of the
//!   history is left to compare with; the rule looks at no model output.
//! * `--shift-days N` moves every cutoff N days back and ends the compared
//!   purchases at the real cutoff: a validation window that never sees the
//!   test period.

#[path = "../tests/it/support/histories.rs"]
mod histories;

use encore_data::PurchaseLog;
use encore_data::timestamp::{format_date, parse_timestamp};
use encore_model::customer::book::CustomerConfig;
use encore_model::customer::holdout::{DateErrors, evaluate_customers};
use std::path::PathBuf;
use std::time::Instant;

const DAY: i64 = 86_400;

struct Args {
    shift_days: i64,
    only: Option<String>,
    instacart: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        shift_days: 0,
        only: None,
        instacart: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--shift-days" => {
                a.shift_days = value()?.parse().map_err(|e| format!("--shift-days: {e}"))?
            }
            "--only" => a.only = Some(value()?),
            "--instacart" => a.instacart = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

/// The start of the day before which `share` of the lines fall.
fn quantile_day(log: &PurchaseLog, share: f64) -> i64 {
    let mut times: Vec<i64> = log.purchases.iter().map(|p| p.time).collect();
    times.sort_unstable();
    let i = ((times.len() as f64 * share) as usize).min(times.len().saturating_sub(1));
    times.get(i).map_or(0, |t| t.div_euclid(DAY) * DAY)
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// One table's columns of the summary: cases measured (right-aligned in
/// `width`), then MAE, ratio and median of Encore and of the baseline.
fn columns(t: &DateErrors, width: usize) -> String {
    format!(
        "{:>width$}  {:>7}  {:>8}  {:>5}  {:>8}  {:>8}",
        t.measured,
        f(t.encore.mean_days, 1),
        f(t.baseline.mean_days, 1),
        f(t.ratio(false), 3),
        f(t.encore.median_days, 1),
        f(t.baseline.median_days, 1),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let mut runs: Vec<(String, i64, PurchaseLog, Vec<Option<String>>)> = Vec::new();
    for (name, cutoff, load) in histories::EVALUATION_HISTORIES {
        if a.only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let Some(log) = load() else {
            eprintln!("{name}: dataset not found, skipped");
            continue;
        };
        let categories = if name == "online_retail" {
            histories::online_retail_catalog(&log).0
        } else {
            Vec::new()
        };
        let cutoff = parse_timestamp(cutoff).ok_or("bad cutoff")?;
        runs.push((name.to_string(), cutoff, log, categories));
    }
    if let Some(path) = &a.instacart
        && a.only.as_deref().is_none_or(|o| o == "instacart")
    {
        let log = histories::canonical_csv(path);
        let cutoff = quantile_day(&log, 0.8);
        runs.push(("instacart".into(), cutoff, log, Vec::new()));
    }
    let config = CustomerConfig::default();
    let mut rows = Vec::new();
    for (name, cutoff, log, categories) in &runs {
        let test_cutoff = *cutoff;
        let cutoff = test_cutoff - a.shift_days * DAY;
        let end = (a.shift_days > 0).then_some(test_cutoff);
        let started = Instant::now();
        let h = evaluate_customers(log, cutoff, end, &config, categories)?;
        println!(
            "== {name}: cutoff {} ({:.1} s) ==",
            format_date(cutoff),
            started.elapsed().as_secs_f64()
        );
        for line in h.describe() {
            println!("{line}");
        }
        rows.push((name.clone(), h));
    }
    println!();
    println!(
        "history        cutoff      customers  MAE enc  MAE base  ratio   med enc  med base | pairs   MAE enc  MAE base  ratio   med enc  med base"
    );
    for (name, h) in &rows {
        println!(
            "{name:<14} {:<11} {} | {}",
            format_date(h.cutoff),
            columns(&h.next_purchase, 9),
            columns(&h.replenishment, 6),
        );
    }
    Ok(())
}
