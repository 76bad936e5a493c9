//! The validation search behind the defaults of `ReplenishmentParams` (it
//! never looks at the test period): coordinate ascent on validation
//! Recall@10 of the buy-again list on Online Retail, fitted before
//! 2011-07-24 and scored on 2011-07-24..2011-10-01, two rounds over the grid
//! of each setting, starting from the defaults.
//!
//! ```text
//! cargo run --release -p encore-model --example replenishment_tuning
//! ```

#[path = "../tests/it/support/histories.rs"]
mod histories;
#[path = "../tests/it/support/buy_again.rs"]
mod support;

use encore_model::customer::replenishment::ReplenishmentParams;
use support::{date, evaluate, load, print};

fn main() {
    let data = load();
    let (cutoff, end) = (date("2011-07-24"), date("2011-10-01"));
    let mut best = ReplenishmentParams::default();
    let mut best_e = evaluate(&data, &best, cutoff, end);
    print("defaults", &best_e);
    type Setter = fn(&mut ReplenishmentParams, f64);
    let grids: [(&str, &[f64], Setter); 8] = [
        (
            "horizon_days",
            &[7.0, 14.0, 30.0, 60.0, 90.0, 180.0],
            |p, v| p.horizon_days = v,
        ),
        (
            "quantity_elasticity",
            &[0.0, 0.25, 0.5, 0.75, 1.0],
            |p, v| p.quantity_elasticity = v,
        ),
        (
            "own_repeat_strength",
            &[0.5, 1.0, 2.0, 5.0, 10.0],
            |p, v| p.own_repeat_strength = v,
        ),
        (
            "own_gap_strength",
            &[0.25, 0.5, 1.0, 2.0, 5.0, 20.0],
            |p, v| p.own_gap_strength = v,
        ),
        ("min_spread", &[0.25, 0.5, 1.0, 1.5, 2.0, 3.0], |p, v| {
            p.min_spread = v
        }),
        ("cycle_prior_strength", &[1.0, 5.0, 20.0, 100.0], |p, v| {
            p.cycle_prior_strength = v
        }),
        ("repeat_prior_strength", &[2.0, 10.0, 50.0], |p, v| {
            p.repeat_prior_strength = v
        }),
        ("max_interval_days", &[90.0, 180.0, 365.0, 730.0], |p, v| {
            p.max_interval_days = v
        }),
    ];
    for round in 1..=2 {
        for (name, values, set) in &grids {
            for &v in *values {
                let mut p = best.clone();
                set(&mut p, v);
                let e = evaluate(&data, &p, cutoff, end);
                println!(
                    "round {round} {name} = {v}: R@10 {:.4} capped {:.4} NDCG {:.4}",
                    e.model.recall, e.model.recall_capped, e.model.ndcg
                );
                if e.model.recall > best_e.model.recall + 1e-4 {
                    best = p;
                    best_e = e;
                }
            }
        }
        println!("after round {round}: {best:?}");
        print("best", &best_e);
    }
}
