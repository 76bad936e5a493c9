//! Holdout evaluation of the buying-probability model against counting on
//! the three evaluation histories (Online Retail cutoff 2011-10-01, CDNOW
//! calibration to 1997-09-30, the grocery log cutoff 2007-07-01), `H` = 30
//! days: fit on the lines before the cutoff, score every customer with a
//! purchase before it, compare with who bought in `[cutoff, cutoff + 30 d)`.
//!
//! ```text
//! cargo run --release -p encore-model --example propensity_eval -- \
//!     [--shift-days N] [--out DIR] [--params JSON] [--only NAME]
//! ```
//!
//! * `--shift-days N` moves every cutoff N days back (validation mode: with
//!   N >= 30 the label window ends before the real cutoff, so settings can be
//!   chosen without looking at the test period).
//! * `--out DIR` writes `DIR/<name>.csv` per history (customer, label,
//!   Encore's probability, days since last purchase, orders and the BTYD
//!   summary `x, t_x, T` in days) for `bench/propensity_peers.py`, which fits
//!   the Python BTYD peers on the same training history.
//! * `--params JSON` overrides the propensity settings (a JSON object of
//!   `PropensityParams` fields).
//!
//! The datasets are read from `../shared/datasets` beside the checkout
//! (Online Retail from the bundled sample); a missing one is skipped.

#[path = "../tests/it/support/histories.rs"]
mod histories;

use encore_data::timestamp::parse_timestamp;
use encore_model::customer::propensity::{PropensityParams, buyers, roc_auc};
use encore_model::customer::summary::{SummaryParams, TimeUnit, summarize};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

const DAY: i64 = 86_400;

struct Args {
    shift_days: i64,
    out: Option<PathBuf>,
    params: PropensityParams,
    only: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        shift_days: 0,
        out: None,
        params: PropensityParams::default(),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--shift-days" => a.shift_days = value()?.parse().map_err(|e| format!("{e}"))?,
            "--out" => a.out = Some(PathBuf::from(value()?)),
            "--params" => {
                a.params = serde_json::from_str(&value()?).map_err(|e| format!("--params: {e}"))?
            }
            "--only" => a.only = Some(value()?),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let histories = histories::EVALUATION_HISTORIES;
    let h = a.params.horizon_days;
    println!(
        "history        cutoff      customers  buyers  encore  days_since_last  orders  margin_over_counting  fit_s"
    );
    for (name, cutoff, load) in histories {
        if a.only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let Some(log) = load() else {
            eprintln!("{name}: dataset not found, skipped");
            continue;
        };
        let cutoff = parse_timestamp(cutoff).ok_or("bad cutoff")? - a.shift_days * DAY;
        let (before, _) = log.split_at(cutoff);
        let started = Instant::now();
        let model = a.params.fit(&before, cutoff)?;
        let p = model.predict(&before, cutoff);
        let fit_s = started.elapsed().as_secs_f64();
        let bought = buyers(&log, cutoff, cutoff + (h * DAY as f64).round() as i64);
        let summaries = summarize(
            &before,
            cutoff,
            &SummaryParams {
                unit: TimeUnit::Days,
                ..Default::default()
            },
        );
        let (mut labels, mut s_enc, mut s_rec, mut s_ord) = (vec![], vec![], vec![], vec![]);
        let mut csv = String::from("customer,label,encore,days_since_last,orders,x,t_x,T_days\n");
        for s in &summaries {
            let Some(pr) = p[s.customer.idx()] else {
                continue;
            };
            let rs = s.repeat_summary();
            let y = bought[s.customer.idx()];
            labels.push(y);
            s_enc.push(pr);
            s_rec.push(-s.days_since_last(cutoff));
            s_ord.push(f64::from(s.orders));
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                log.customers.id(s.customer.0),
                u8::from(y),
                pr,
                s.days_since_last(cutoff),
                s.orders,
                rs.x,
                rs.t_x,
                rs.t
            ));
        }
        let auc = |s: &[f64]| roc_auc(s, &labels).unwrap_or(f64::NAN);
        let (e, r, o) = (auc(&s_enc), auc(&s_rec), auc(&s_ord));
        println!(
            "{name:<14} {:<11} {:>9}  {:>6}  {e:.4}  {r:>15.4}  {o:.4}  {:>+20.4}  {fit_s:.1}",
            encore_data::timestamp::format_date(cutoff),
            labels.len(),
            labels.iter().filter(|&&y| y).count(),
            e - r.max(o),
        );
        for line in model.describe() {
            println!("    {line}");
        }
        if let Some(dir) = &a.out {
            std::fs::create_dir_all(dir)?;
            std::fs::File::create(dir.join(format!("{name}.csv")))?.write_all(csv.as_bytes())?;
        }
    }
    Ok(())
}
