//! Holdout check of the replenishment model's "buy again" list on UCI Online
//! Retail (the bundled `data/sample/online_retail.csv.gz`).
//!
//! # Protocol
//! * Fit on the purchases before the cutoff 2011-10-01 (reference = cutoff − 1 s).
//! * A customer is scored if they bought before and after the cutoff and at
//!   least one item they bought after (net positive quantity in the test
//!   period) is one they had bought before (net positive quantity before).
//!   Relevant = those items. Items marked `available=false` in the catalog
//!   (fees, postage) are never relevant nor listed.
//! * The buy-again list (best due score first, top 10) is compared with the
//!   baseline "the customer's most-bought items": distinct orders containing
//!   the item, ties by total quantity, then item index; both lists rank the
//!   same candidates (items bought before, net positive, available).
//! * Metrics: Recall@10, capped Recall@10 and NDCG@10 from
//!   `encore_model::metrics`, averaged over the scored customers.
//!
//! The defaults of `ReplenishmentParams` were chosen on a validation split
//! entirely before the test period: fit before 2011-07-24, evaluate on
//! 2011-07-24..2011-10-01 (the same 69-day length as the test window
//! 2011-10-01..2011-12-09). The example `replenishment_tuning` reruns
//! that search: `cargo run --release -p encore-model --example
//! replenishment_tuning`.
//!
//! Run with `--nocapture` to see the figures.

use crate::support::{date, evaluate, load, print};
use encore_model::customer::replenishment::ReplenishmentParams;

/// The margin (in Recall@10) the buy-again list must keep over the baseline
/// on the test period: measured 0.4198 vs 0.3754 (+0.044) with the tuned
/// defaults (+0.038 with the hand-set starting values), minus slack.
const MIN_RECALL_MARGIN: f64 = 0.03;

#[test]
fn holdout_buy_again_beats_most_bought() {
    let data = load();
    let cutoff = date("2011-10-01");
    let end = data.log.time_range().unwrap().1 + 1;
    let params = ReplenishmentParams::default();
    let validation = evaluate(&data, &params, date("2011-07-24"), cutoff);
    print("validation 2011-07-24..2011-10-01", &validation);
    let test = evaluate(&data, &params, cutoff, end);
    print("test 2011-10-01..2011-12-09", &test);
    assert!(test.customers > 1000, "{} customers", test.customers);
    // Sanity check of the protocol. The issue quoted about 0.15 for this
    // baseline: that is its Recall@10 against every after-item, new ones
    // included (measured 0.148, printed above); with relevant = after-items ∩
    // items bought before, this protocol, it measures 0.375.
    assert!(
        (0.30..0.45).contains(&test.baseline.recall),
        "baseline Recall@10 {}",
        test.baseline.recall
    );
    assert!(
        test.model.recall > test.baseline.recall + MIN_RECALL_MARGIN,
        "buy-again Recall@10 {} vs baseline {}",
        test.model.recall,
        test.baseline.recall
    );
    assert!(
        test.model.ndcg > test.baseline.ndcg,
        "buy-again NDCG@10 {} vs baseline {}",
        test.model.ndcg,
        test.baseline.ndcg
    );
}
