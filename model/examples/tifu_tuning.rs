//! Validation search behind the defaults of `TifuParams` and `EaseParams`.
//!
//! Trains before 2011-08-01 and scores 2011-08-01..2011-10-01 on Online
//! Retail (inside the training period of the holdout test, which starts at
//! 2011-10-01), with the protocol of `tests/it/repeat_aware_holdout.rs`.
//! Candidates are ranked by Recall@10 + NDCG@10.
//!
//! ```sh
//! cargo run --release -p encore-model --example tifu_tuning
//! ```

#[path = "../tests/it/repeat_aware_holdout.rs"]
mod holdout;

use encore_model::cf::ease::EaseParams;
use encore_model::cf::tifu::{CfNormalisation, TifuParams};
use holdout::{date, evaluate, fit_als, load, split, tifu_list};

fn main() {
    let data = load();
    let val = split(&data, date("2011-08-01"), date("2011-10-01"));
    println!("validation: {} customers scored", val.customers.len());

    // 1. TIFU-KNN alone.
    let mut best: Option<(f64, f64, TifuParams)> = None;
    for group_size in [5, 10, 15, 20, 30] {
        for within_decay in [0.8, 0.9, 1.0] {
            for group_decay in [0.3, 0.4, 0.5, 0.6, 0.8] {
                for neighbours in [100, 300, 600] {
                    for alpha in [0.4, 0.5, 0.6, 0.75] {
                        let p = TifuParams {
                            group_size,
                            within_decay,
                            group_decay,
                            neighbours,
                            alpha,
                            ..TifuParams::default()
                        };
                        let model = p.fit(&val.train).unwrap();
                        let (r, g) = evaluate(&val, |c| tifu_list(&val, &model, None, c));
                        if best.as_ref().is_none_or(|b| r + g > b.0 + b.1) {
                            println!("  TIFU {r:.4} {g:.4} {p:?}");
                            best = Some((r, g, p));
                        }
                    }
                }
            }
        }
    }
    let (r, g, tifu) = best.unwrap();
    println!("best TIFU-KNN: Recall@10 {r:.4} NDCG@10 {g:.4} {tifu:?}");

    // 2. Blend with ALS.
    let als = fit_als(&val);
    let model = tifu.fit(&val.train).unwrap();
    let mut best: Option<(f64, f64, f32, CfNormalisation)> = None;
    for norm in [CfNormalisation::Max, CfNormalisation::Rank] {
        for beta in [0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5] {
            let p = TifuParams {
                beta,
                cf_normalisation: norm,
                ..tifu.clone()
            };
            let model = p.fit(&val.train).unwrap();
            let (r, g) = evaluate(&val, |c| tifu_list(&val, &model, Some(&als), c));
            println!("  blend {norm:?} beta {beta}: {r:.4} {g:.4}");
            if best.as_ref().is_none_or(|b| r + g > b.0 + b.1) {
                best = Some((r, g, beta, norm));
            }
        }
    }
    drop(model);
    let (r, g, beta, norm) = best.unwrap();
    println!("best blend: Recall@10 {r:.4} NDCG@10 {g:.4} beta {beta} {norm:?}");

    // 3. EASE.
    for lambda in [25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0] {
        let p = EaseParams {
            lambda,
            ..EaseParams::default()
        };
        let t = std::time::Instant::now();
        let e = p.fit(&val.binary).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let (r, g) = evaluate(&val, |c| holdout::ease_list(&val, &e, c));
        println!("  EASE lambda {lambda}: {r:.4} {g:.4} ({secs:.1} s)");
    }
}
