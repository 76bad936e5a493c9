//! Times the re-ranker's boosted trees on seeded synthetic rows of the
//! re-ranker's shape (29 features, about 9 % positives) and prints a digest
//! of the fitted model, so that two builds can be compared for speed and
//! for identical output:
//!
//! ```sh
//! cargo run --release -p encore-model --example boosting_fit -- [ROWS] [RUNS]
//! ```
//!
//! ROWS defaults to 1,600,000 (about the training rows of the 100k-customer
//! synthetic fit), RUNS to 3; the median fit time is printed last.

use encore_model::learn::boosting::BoostingParams;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::hash::{Hash, Hasher};

const FEATURES: usize = 29;

fn main() {
    let mut args = std::env::args().skip(1);
    let rows = positive(args.next(), "ROWS", 1_600_000);
    let runs = positive(args.next(), "RUNS", 3);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let mut x: Vec<[f64; FEATURES]> = Vec::with_capacity(rows);
    let mut y: Vec<bool> = Vec::with_capacity(rows);
    for _ in 0..rows {
        let mut row = [0.0; FEATURES];
        for (f, v) in row.iter_mut().enumerate() {
            // A mix of binary, count-like and continuous columns.
            *v = match f % 3 {
                0 => f64::from(u8::from(rng.gen_bool(0.3))),
                1 => f64::from(rng.gen_range(0u32..40)).ln_1p(),
                _ => rng.gen_range(-2.0..2.0),
            };
        }
        let eta = -6.5 + 1.5 * row[0] + 0.8 * row[1] - 0.6 * row[2] * row[5] + 0.4 * row[4];
        y.push(rng.gen_bool(1.0 / (1.0 + (-eta).exp())));
        x.push(row);
    }
    let positives = y.iter().filter(|&&b| b).count();
    println!(
        "{rows} rows x {FEATURES} features, {:.1} % positive",
        100.0 * positives as f64 / rows as f64
    );
    let params = BoostingParams::default();
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        let started = std::time::Instant::now();
        let model = params.fit(&x, &y).expect("fit");
        let seconds = started.elapsed().as_secs_f64();
        times.push(seconds);
        // Digest of the exact model: its JSON, hashed.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&model).expect("json").hash(&mut h);
        println!(
            "run {}: {seconds:.2} s, model digest {:016x}",
            run + 1,
            h.finish()
        );
    }
    times.sort_by(f64::total_cmp);
    println!("median fit: {:.2} s", times[times.len() / 2]);
}

/// A positive count from the command line, or exit with the usage.
fn positive(arg: Option<String>, name: &str, default: usize) -> usize {
    let Some(arg) = arg else { return default };
    match arg.parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            eprintln!("{name} must be a positive whole number, got {arg:?}");
            eprintln!("usage: boosting_fit [ROWS] [RUNS]   (default 1600000 3)");
            std::process::exit(2);
        }
    }
}
