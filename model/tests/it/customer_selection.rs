//! Model selection on the shared histories, and the agreement of the
//! lifecycle stages with P(alive) and the churn risk on Online Retail.
//!
//! Run with `--nocapture` to see every model's fit and validation score.
//! The data sit beside the checkout in `../shared/datasets/`; a missing file
//! is a failure, not a skip.

use encore_data::PurchaseLog;
use encore_data::timestamp::parse_timestamp;
use encore_model::customer::bgnbd::BgNbdParams;
use encore_model::customer::book::CustomerConfig;
use encore_model::customer::lifecycle::Stage;
use encore_model::customer::select::{History, ModelSelection, SelectionParams, select};
use encore_model::customer::summary::{TimeUnit, summarize_day_events};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DAY: i64 = 86_400;

fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .join(path)
}

fn read(path: &str) -> String {
    let path = shared(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "data file {} is missing or unreadable ({e}); the shared datasets must sit beside \
             the checkout at ../shared/datasets",
            path.display()
        )
    })
}

fn day_of(date: &str) -> i64 {
    parse_timestamp(date).unwrap_or_else(|| panic!("bad date {date:?}")) / DAY
}

/// Selects on `(customer, day)` events: histories at `end_day`, validated on
/// the `validation_days` before it.
fn select_on_days(
    name: &str,
    events: &[(u32, i64)],
    end_day: i64,
    validation_days: i64,
) -> ModelSelection {
    let cutoff_day = end_day - validation_days;
    let full: BTreeMap<u32, History> =
        summarize_day_events(events.iter().copied(), end_day, TimeUnit::Weeks)
            .into_iter()
            .map(|(c, s)| (c, s.tuple()))
            .collect();
    let pairs: Vec<(History, History)> =
        summarize_day_events(events.iter().copied(), cutoff_day, TimeUnit::Weeks)
            .into_iter()
            .map(|(c, s)| (s.tuple(), full[&c]))
            .collect();
    let full: Vec<History> = full.into_values().collect();
    let sel = select(
        &SelectionParams::default(),
        &BgNbdParams::default(),
        &full,
        Some((&pairs, cutoff_day * DAY, validation_days as f64)),
    )
    .unwrap();
    println!(
        "{name}: {} customers, {} validated on the last {validation_days} days; selected {:?}",
        full.len(),
        pairs.len(),
        sel.selected
    );
    for line in sel.describe() {
        println!("  {line}");
    }
    sel
}

#[test]
fn selection_on_the_cdnow_cohort() {
    let events: Vec<(u32, i64)> = read("cdnow/CDNOW_master.txt")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().unwrap(), day_of(f[1]))
        })
        .collect();
    // The calibration period of the literature, its last 13 weeks held out.
    let sel = select_on_days("CDNOW", &events, day_of("19970930"), 91);
    assert!(sel.selected.is_some());
    assert!(
        sel.candidates
            .iter()
            .all(|c| c.validation_log_likelihood.is_some())
    );
}

#[test]
fn selection_on_the_grocery_history() {
    let events: Vec<(u32, i64)> = read("grocery_elog/groceryElog.csv")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (c, d) = l.split_once(',').unwrap();
            (c.trim().parse().unwrap(), day_of(d.trim()))
        })
        .collect();
    let end = events.iter().map(|e| e.1).max().unwrap();
    let sel = select_on_days("grocery", &events, end, 91);
    assert!(sel.selected.is_some());
}

fn online_retail() -> PurchaseLog {
    crate::histories::online_retail_at(&shared("online_retail/online_retail.csv.gz"))
}

/// Online Retail at 2011-10-01: BG/NBD degenerates there (`a → 0`, P(alive)
/// 1 for everybody). Whatever is selected, no profile the lifecycle calls
/// lost claims P(alive) ≥ 0.999, and every lost profile has a churn risk of
/// at least `lost_churn_risk`.
#[test]
fn online_retail_lost_customers_are_not_surely_alive() {
    let (before, _) = online_retail().split_at(parse_timestamp("2011-10-01").unwrap());
    let reference = parse_timestamp("2011-10-01").unwrap();
    let config = CustomerConfig::default();
    let book = config.build(&before, reference).unwrap();
    let sel = book.models().selection.as_ref().unwrap();
    println!(
        "Online Retail at 2011-10-01: selected {:?} ({:?})",
        sel.selected, sel.criterion
    );
    for line in sel.describe() {
        println!("  {line}");
    }
    let profiles: Vec<_> = book.profiles().flatten().collect();
    assert!(profiles.len() > 3_000, "{} profiles", profiles.len());
    let lost: Vec<_> = profiles.iter().filter(|p| p.stage == Stage::Lost).collect();
    let with_p = profiles.iter().filter(|p| p.p_alive.is_some()).count();
    let sure = profiles
        .iter()
        .filter(|p| p.p_alive.is_some_and(|v| v >= 0.999))
        .count();
    println!(
        "{} profiles, {} lost, {} with P(alive), {} of them >= 0.999; stages {:?}",
        profiles.len(),
        lost.len(),
        with_p,
        sure,
        book.models().stage_counts
    );
    assert!(!lost.is_empty());
    for p in &lost {
        assert!(p.p_alive.is_none_or(|v| v < 0.999), "{p:?}");
        let risk = p.churn_risk.expect("every profile has a churn risk");
        assert!(risk >= config.lifecycle.lost_churn_risk, "{p:?}");
    }
    assert!(
        profiles
            .iter()
            .all(|p| p.churn_risk.is_some_and(|c| (0.0..=1.0).contains(&c)))
    );
    // Nobody's P(alive) is 1 while the lifecycle calls them lost, and if the
    // selected fit is degenerate no P(alive) is claimed at all.
    let chosen = sel.selected_candidate().unwrap();
    if chosen.degenerate {
        assert_eq!(with_p, 0);
    }
}
