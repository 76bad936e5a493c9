//! The customer-model holdout (`encore_model::customer::holdout`): the date
//! errors on a hand-made log where the baseline's answer is known, and the
//! whole report on the bundled Online Retail sample at 2011-10-01.
//!
//! Run with `--nocapture` to see the Online Retail tables.

use crate::histories::{online_retail, online_retail_catalog};
use encore_data::PurchaseLog;
use encore_data::timestamp::parse_timestamp;
use encore_model::customer::book::CustomerConfig;
use encore_model::customer::holdout::{CustomerHoldout, DateErrors, evaluate_customers};
use encore_model::customer::replenishment::ReplenishmentParams;

const DAY: i64 = 86_400;
const NOON: i64 = DAY / 2;
const CUTOFF: i64 = 30 * DAY;

/// Customers `a`, `b` and `e` are the cases (see the test); 40 regular
/// buyers who stop before the cutoff give the models something to fit.
fn hand_log() -> PurchaseLog {
    let mut log = PurchaseLog::default();
    let mut n = 0;
    let mut buy = |log: &mut PurchaseLog, c: &str, item: &str, day: i64| {
        n += 1;
        log.push(&format!("o{n}"), c, item, day * DAY + NOON, 1.0, 5.0);
    };
    // a: item x on days 0, 10, 20; after the cutoff x on day 33 and a new item.
    for d in [0, 10, 20] {
        buy(&mut log, "a", "x", d);
    }
    buy(&mut log, "a", "x", 33);
    buy(&mut log, "a", "q", 36);
    // b: one occasion (item y on day 5), buys y again on day 40.
    buy(&mut log, "b", "y", 5);
    buy(&mut log, "b", "y", 40);
    // e: x and w on day 2, w on day 6; buys w on day 35 (x never again).
    buy(&mut log, "e", "x", 2);
    buy(&mut log, "e", "w", 2);
    buy(&mut log, "e", "w", 6);
    buy(&mut log, "e", "w", 35);
    // c: two occasions, nothing after the cutoff; d: only after it.
    buy(&mut log, "c", "z", 0);
    buy(&mut log, "c", "z", 28);
    buy(&mut log, "d", "z", 31);
    for k in 0..40i64 {
        let gap = 2 + k % 7;
        let mut d = k % 5;
        while d < 29 {
            buy(&mut log, &format!("f{k}"), "filler", d);
            d += gap;
        }
    }
    log
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn close(got: Option<f64>, want: Option<f64>) -> bool {
    match (got, want) {
        (Some(g), Some(w)) => (g - w).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn date_errors_on_a_hand_made_log() {
    let log = hand_log();
    let config = CustomerConfig::default();
    let h = evaluate_customers(&log, CUTOFF, None, &config, &[]).unwrap();
    let (before, _) = log.split_at(CUTOFF);
    let cust = |id: &str| log.customers.get(id).unwrap();
    let item = |id: &str| log.items.get(id).unwrap();

    // Customers: a, b and e buy after the cutoff (d is new, c does not
    // buy); b has a single occasion. Baselines: a 20.5 + 10 = day 30.5
    // against 33.5 (3 days), e 6.5 + 4 = 10.5 against 35.5 (25 days; 5.5
    // from the cutoff).
    let c = &h.next_purchase;
    assert_eq!(c.bought_after, 3);
    assert_eq!(c.single_occasion, 1);
    assert_eq!(c.measured + c.no_encore_date, 2);
    let book = config.build(&before, CUTOFF).unwrap();
    let (mut base, mut base_from, mut enc) = (vec![], vec![], vec![]);
    for (id, actual, err, err_from) in [("a", 33.5, 3.0, 3.0), ("e", 35.5, 25.0, 5.5)] {
        let p = book.profile(cust(id)).unwrap();
        if let Some(date) = p.predicted_next_purchase {
            assert!(date >= CUTOFF, "{id}: {date}");
            enc.push((date as f64 / DAY as f64 - actual).abs());
            base.push(err);
            base_from.push(err_from);
        }
    }
    assert_eq!(c.measured, enc.len());
    assert!(c.measured >= 1, "the regular customer a has a date");
    assert!(close(c.baseline.mean_days, mean(&base)), "{c:?}");
    assert!(close(c.baseline_from_cutoff.mean_days, mean(&base_from)));
    assert!(close(c.encore.mean_days, mean(&enc)), "{c:?} {enc:?}");
    assert_eq!(
        c.encore, c.encore_from_cutoff,
        "Encore's dates are never before the cutoff"
    );

    // Pairs: (a, x), (b, y), (e, w) are bought again; (b, y) has one
    // occasion. Baselines (day starts): (a, x) 20 + 10 = 30 against 33,
    // (e, w) 6 + 4 = 10 against 35 (30 from the cutoff: 5).
    let r = &h.replenishment;
    assert_eq!(
        (
            r.bought_after,
            r.single_occasion,
            r.no_encore_date,
            r.measured
        ),
        (3, 1, 0, 2)
    );
    assert!(close(r.baseline.mean_days, Some(14.0)), "{r:?}");
    assert!(close(r.baseline.median_days, Some(14.0)));
    assert!(close(r.baseline_from_cutoff.mean_days, Some(4.0)));
    let model = ReplenishmentParams::default()
        .fit(&before, &[], CUTOFF)
        .unwrap();
    let due = |c: &str, i: &str, actual: i64| {
        let d = model
            .scored(cust(c))
            .into_iter()
            .find(|d| d.item == item(i))
            .unwrap();
        (d.due_date - actual * DAY).abs() as f64 / DAY as f64
    };
    let (ax, ew) = (due("a", "x", 33), due("e", "w", 35));
    assert!(close(r.encore.mean_days, Some((ax + ew) / 2.0)), "{r:?}");
    assert!(close(r.encore.median_days, Some((ax + ew) / 2.0)));
    let ratio = r.ratio(false).unwrap();
    assert!((ratio - (ax + ew) / 28.0).abs() < 1e-9);

    // Who: every profiled customer is ranked; a, b and e bought within 30 days.
    assert_eq!(h.customers, 44, "a, b, c, e and 40 fillers");
    assert_eq!(h.buying.customers, 44);
    if h.buying.propensity_error.is_none() {
        let binned: usize = h.buying.reliability.iter().map(|b| b.customers).sum();
        assert_eq!(binned, 44);
    }
    assert_eq!(h.buying.buyers, 3);
    assert!(h.describe().len() > 10);

    // Ending the compared purchases at day 34 leaves e out (and b).
    let short = evaluate_customers(&log, CUTOFF, Some(34 * DAY), &config, &[]).unwrap();
    assert_eq!(short.next_purchase.bought_after, 1);
    assert_eq!(short.replenishment.bought_after, 1);
}

fn check_table(name: &str, t: &DateErrors) {
    assert_eq!(
        t.single_occasion + t.no_encore_date + t.measured,
        t.bought_after,
        "{name}: {t:?}"
    );
    assert!(t.measured > 100, "{name}: {t:?}");
    for s in [
        t.encore,
        t.baseline,
        t.encore_from_cutoff,
        t.baseline_from_cutoff,
    ] {
        let (m, med) = (s.mean_days.unwrap(), s.median_days.unwrap());
        assert!(
            m.is_finite() && m >= 0.0 && med.is_finite() && med >= 0.0,
            "{name}: {t:?}"
        );
    }
    assert!(t.ratio(false).unwrap().is_finite());
}

#[test]
fn customer_holdout_on_online_retail() {
    let log = online_retail();
    let (categories, _) = online_retail_catalog(&log);
    let cutoff = parse_timestamp("2011-10-01").unwrap();
    let h: CustomerHoldout =
        evaluate_customers(&log, cutoff, None, &CustomerConfig::default(), &categories).unwrap();
    for line in h.describe() {
        println!("{line}");
    }
    assert!(h.customers > 3_000, "{} customers", h.customers);
    check_table("next purchase", &h.next_purchase);
    check_table("replenishment", &h.replenishment);
    assert!(h.next_purchase.bought_after <= h.customers);
    let b = &h.buying;
    assert!(b.propensity_error.is_none(), "{:?}", b.propensity_error);
    assert_eq!(b.customers, h.customers);
    assert!(b.buyers > 0 && b.buyers < b.customers);
    for r in &b.rankings {
        let auc = r.auc.unwrap_or_else(|| panic!("{} has no AUC", r.score));
        assert!((0.0..=1.0).contains(&auc), "{}: {auc}", r.score);
    }
    let brier = b.brier.unwrap();
    assert!(
        brier > 0.0 && brier < b.brier_base_rate.unwrap() * 1.5,
        "{b:?}"
    );
    let binned: usize = b.reliability.iter().map(|x| x.customers).sum();
    assert_eq!(binned, b.customers);
}
