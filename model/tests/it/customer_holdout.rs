//! Holdout check of the BG/NBD model on the full CDNOW cohort (23,570
//! customers): calibrate on 1997-01-01..1997-09-30, predict each customer's
//! repeat purchases in the 39 weeks 1997-10-01..1998-06-30, compare with what
//! they actually did. Purchases are counted as distinct days per customer, as
//! in Fader, Hardie & Lee (2005).
//!
//! Run with `--nocapture` to see the figures.
//!
//! # Tolerance of the aggregate forecast
//! The BG/NBD model is stationary, and CDNOW's holdout contains the 1997
//! Christmas season, so the model *under*-forecasts the holdout total even
//! with the published parameters: on the authors' own 2,357-customer sample,
//! `Σ E[Y(39) | x, t_x, T]` with r = 0.2426, α = 4.4135, a = 0.7929,
//! b = 2.4258 is 1,653.4 (checked independently with 30-digit arithmetic;
//! see `customer_golden.rs`) against 1,882 actual distinct-day repeat
//! purchases, −12.1 %. On the full cohort the same protocol gives about
//! −14 %. The test therefore bounds the aggregate error by
//! [`TOTAL_TOLERANCE`] = 15 % and requires under-forecasting, which a bug in
//! eq. 10 or in the data preparation would very likely break; the
//! per-customer comparison with the naive baseline is the sharper check.
//! The quarterly tracking it prints shows where the gap comes from: the
//! calibration weeks are forecast within 1 % (asserted within 2 %), each
//! holdout quarter runs 15 to 20 % above the forecast.

use encore_data::PurchaseLog;
use encore_data::timestamp::parse_timestamp;
use encore_model::customer::bgnbd::{self, BgNbdParams};
use encore_model::customer::summary::{SummaryParams, TimeUnit, summarize, summarize_day_events};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const DAY: i64 = 86_400;

/// Bound on the relative error of the predicted holdout total (module docs).
const TOTAL_TOLERANCE: f64 = 0.15;

struct Row {
    customer: u32,
    day: i64,
    cds: f32,
    dollars: f32,
}

fn day_of(yyyymmdd: &str) -> i64 {
    parse_timestamp(yyyymmdd).unwrap_or_else(|| panic!("bad date {yyyymmdd:?}")) / DAY
}

fn read_master() -> Vec<Row> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/cdnow/CDNOW_master.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "holdout data file {} is missing or unreadable ({e}); the shared datasets must sit \
             beside the checkout at ../shared/datasets",
            path.display()
        )
    });
    let mut lines = text.lines();
    let header = lines.next().expect("empty CDNOW_master.txt");
    assert!(
        header.contains("customer_id"),
        "unexpected header {header:?}"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "line {}: {l:?}", i + 2);
            Row {
                customer: f[0]
                    .parse()
                    .unwrap_or_else(|e| panic!("line {}: {e}", i + 2)),
                day: day_of(f[1]),
                cds: f[2]
                    .parse()
                    .unwrap_or_else(|e| panic!("line {}: {e}", i + 2)),
                dollars: f[3]
                    .parse()
                    .unwrap_or_else(|e| panic!("line {}: {e}", i + 2)),
            }
        })
        .collect()
}

#[test]
fn customer_bgnbd_predicts_the_cdnow_holdout() {
    let rows = read_master();
    assert_eq!(rows.len(), 69_659);
    let calibration_end = day_of("19970930");
    let holdout_start = day_of("19971001");
    let holdout_end = day_of("19980630");
    let holdout_weeks = (holdout_end - holdout_start + 1) as f64 / 7.0;
    assert_eq!(holdout_weeks, 39.0);

    let calibration = summarize_day_events(
        rows.iter().map(|r| (r.customer, r.day)),
        calibration_end,
        TimeUnit::Weeks,
    );
    assert_eq!(calibration.len(), 23_570);
    let mut holdout_days: BTreeMap<u32, BTreeSet<i64>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| (holdout_start..=holdout_end).contains(&r.day))
    {
        holdout_days.entry(r.customer).or_default().insert(r.day);
    }

    let data: Vec<(f64, f64, f64)> = calibration.iter().map(|(_, s)| s.tuple()).collect();
    let started = std::time::Instant::now();
    let fit = bgnbd::fit(&BgNbdParams::default(), &data).unwrap();
    let fit_secs = started.elapsed().as_secs_f64();
    assert!(fit.converged);

    let mut predicted_total = 0.0;
    let mut actual_total = 0.0;
    let (mut mae_model, mut mae_naive, mut naive_total) = (0.0, 0.0, 0.0);
    let mut unconditional_total = 0.0;
    // Per calibration frequency 0..=7 (7 = 7+): (customers, actual, predicted).
    let mut by_x = [(0u32, 0.0f64, 0.0f64); 8];
    for (customer, s) in &calibration {
        let actual = holdout_days.get(customer).map_or(0, BTreeSet::len) as f64;
        let predicted = fit
            .expected_purchases(holdout_weeks, s.x, s.t_x, s.t)
            .unwrap();
        let naive = if s.t > 0.0 {
            s.x / s.t * holdout_weeks
        } else {
            0.0
        };
        predicted_total += predicted;
        actual_total += actual;
        naive_total += naive;
        mae_model += (predicted - actual).abs();
        mae_naive += (naive - actual).abs();
        unconditional_total += fit
            .expected_purchases_unconditional(s.t + holdout_weeks)
            .unwrap()
            - fit.expected_purchases_unconditional(s.t).unwrap();
        let row = &mut by_x[(s.x as usize).min(7)];
        row.0 += 1;
        row.1 += actual;
        row.2 += predicted;
    }
    let n = calibration.len() as f64;
    mae_model /= n;
    mae_naive /= n;
    let calibration_repeats: f64 = data.iter().map(|d| d.0).sum();
    println!(
        "CDNOW holdout: {} customers, {calibration_repeats} calibration repeat purchases",
        calibration.len()
    );
    println!(
        "BG/NBD fit: r = {:.4}, alpha = {:.4}, a = {:.4}, b = {:.4}, LL = {:.2}, {} iterations, {fit_secs:.2} s",
        fit.r, fit.alpha, fit.a, fit.b, fit.log_likelihood, fit.iterations
    );
    println!(
        "holdout repeat purchases (39 weeks): actual {actual_total}, BG/NBD {predicted_total:.1} \
         ({:+.2} %), naive x/T {naive_total:.1} ({:+.2} %)",
        100.0 * (predicted_total / actual_total - 1.0),
        100.0 * (naive_total / actual_total - 1.0)
    );
    println!("per-customer MAE: BG/NBD {mae_model:.4}, naive {mae_naive:.4}");
    println!(
        "unconditional (cohort) forecast of the holdout: {unconditional_total:.1} ({:+.2} %)",
        100.0 * (unconditional_total / actual_total - 1.0)
    );
    println!("mean holdout purchases by calibration frequency x: customers, actual, BG/NBD");
    for (x, (n, actual, predicted)) in by_x.iter().enumerate() {
        let label = if x == 7 {
            "7+".to_owned()
        } else {
            x.to_string()
        };
        println!(
            "  x = {label:>2}: {n:>6}  {:.3}  {:.3}",
            actual / f64::from(*n),
            predicted / f64::from(*n)
        );
    }

    // Tracking from 1997-01-01 (the plot of Fader, Hardie & Lee 2005):
    // repeat purchases (distinct days after each customer's first) against
    // Σ over customers of the increments of E[X(t)] since their first
    // purchase, by quarter (13 weeks), then cumulated.
    let start = day_of("19970101");
    let mut days: BTreeMap<u32, BTreeSet<i64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.day <= holdout_end) {
        days.entry(r.customer).or_default().insert(r.day - start);
    }
    let weeks = 78;
    let mut actual_weekly = vec![0.0; weeks];
    let mut births: BTreeMap<i64, f64> = BTreeMap::new();
    for d in days.values() {
        let first = *d.first().unwrap();
        *births.entry(first).or_default() += 1.0;
        for &day in d.iter().skip(1) {
            actual_weekly[(day / 7) as usize] += 1.0;
        }
    }
    let cumulative = |week: usize| -> f64 {
        births
            .iter()
            .map(|(&birth, &n)| {
                let t = ((7 * week) as f64 - birth as f64).max(0.0) / 7.0;
                n * fit.expected_purchases_unconditional(t).unwrap()
            })
            .sum()
    };
    println!("tracking by quarter (13 weeks) from 1997-01-01: actual, BG/NBD, ratio");
    for block in (0..weeks).step_by(13) {
        let actual: f64 = actual_weekly[block..block + 13].iter().sum();
        let forecast = cumulative(block + 13) - cumulative(block);
        let period = if block < 39 { "calibration" } else { "holdout" };
        println!(
            "  weeks {block:>2}-{:>2} ({period:<11}) {actual:>6} {forecast:>8.1} {:.2}",
            block + 12,
            actual / forecast
        );
    }
    let calibration_actual: f64 = actual_weekly[..39].iter().sum();
    let calibration_forecast = cumulative(39);
    let all_actual: f64 = actual_weekly.iter().sum();
    let all_forecast = cumulative(weeks);
    for (label, actual, forecast) in [
        (
            "calibration weeks 0-38",
            calibration_actual,
            calibration_forecast,
        ),
        (
            "calibration + holdout, weeks 0-77",
            all_actual,
            all_forecast,
        ),
    ] {
        println!(
            "{label}: actual {actual}, BG/NBD {forecast:.1} ({:+.2} %)",
            100.0 * (forecast / actual - 1.0)
        );
    }
    assert_eq!(calibration_actual, calibration_repeats);
    // The fit reproduces the period it was fitted on; the holdout's shortfall
    // is the holdout's own.
    assert!(
        (calibration_forecast / calibration_actual - 1.0).abs() < 0.02,
        "calibration forecast {calibration_forecast} vs actual {calibration_actual}"
    );

    let error = predicted_total / actual_total - 1.0;
    assert!(
        error.abs() <= TOTAL_TOLERANCE && error < 0.0,
        "predicted total {predicted_total} vs actual {actual_total}: error {error:+.4}"
    );
    assert!(
        mae_model <= mae_naive,
        "BG/NBD MAE {mae_model} > naive MAE {mae_naive}"
    );
}

/// `summarize` on a `PurchaseLog` of the same rows agrees with the bare
/// distinct-day summary, except where a day holds only zero-value lines
/// (which `summarize` does not count as a purchase occasion).
#[test]
fn customer_log_summary_matches_the_day_event_summary() {
    let rows = read_master();
    let reference_day = day_of("19970930");
    let mut log = PurchaseLog::default();
    for (k, r) in rows.iter().enumerate() {
        let price = if r.cds > 0.0 {
            r.dollars / r.cds
        } else {
            f32::NAN
        };
        log.push(
            &k.to_string(),
            &r.customer.to_string(),
            "cd",
            r.day * DAY,
            r.cds,
            price,
        );
    }
    let params = SummaryParams {
        unit: TimeUnit::Weeks,
        ..Default::default()
    };
    let from_log = summarize(&log, reference_day * DAY, &params);
    let from_days = summarize_day_events(
        rows.iter().map(|r| (r.customer.to_string(), r.day)),
        reference_day,
        TimeUnit::Weeks,
    );
    let by_id: BTreeMap<&str, _> = from_days.iter().map(|(k, s)| (k.as_str(), *s)).collect();
    let zero_value_days: BTreeSet<(u32, i64)> = rows
        .iter()
        .filter(|r| r.dollars <= 0.0 && r.day <= reference_day)
        .map(|r| (r.customer, r.day))
        .collect();
    let mut differing = 0;
    for s in &from_log {
        let id = log.customers.id(s.customer.0);
        let want = by_id[id];
        if s.repeat_summary() != want {
            differing += 1;
        }
    }
    println!(
        "summaries: {} from the log, {} from day events, {differing} differ, {} zero-value (customer, day) pairs",
        from_log.len(),
        from_days.len(),
        zero_value_days.len()
    );
    assert!(differing <= zero_value_days.len());
    assert!(from_days.len() - from_log.len() <= zero_value_days.len());
}
