//! Similar items by HNSW against the exact scan, side by side, at several
//! catalog sizes: recall@k of the HNSW answers against the exact ones and
//! the latency of one query on one thread (an item's own vector, `k + 1`
//! results, as the engine asks), so the catalog size from which the graph
//! pays for itself can be read off one run.
//!
//! ```text
//! cargo run --release -p encore-model --example ann_crossover -- \
//!     [--sizes 5000,20000,50000,200000] [--dim 64] [--queries 2000] [--k 10] [--seed 1]
//! ```
//!
//! The vectors are seeded and clustered (one cluster per 50 items, spread
//! like trained item factors after normalisation); the HNSW parameters are
//! the engine's defaults ([`HnswParams::default`]). Latencies are medians and
//! 99th percentiles over the queries, after one untimed pass over them.

use encore_model::ann::{ExactIndex, HnswIndex, HnswParams, VectorSearch, recall_at_k};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Instant;

struct Args {
    sizes: Vec<usize>,
    dim: usize,
    queries: usize,
    k: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sizes: vec![5_000, 20_000, 50_000, 200_000],
        dim: 64,
        queries: 2_000,
        k: 10,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--sizes" => {
                a.sizes = value
                    .split(',')
                    .map(|s| s.trim().parse().map_err(bad))
                    .collect::<Result<_, _>>()?
            }
            "--dim" => a.dim = value.parse().map_err(bad)?,
            "--queries" => a.queries = value.parse().map_err(bad)?,
            "--k" => a.k = value.parse().map_err(bad)?,
            "--seed" => a.seed = value.parse().map_err(bad)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.sizes.iter().any(|&n| n < 2) || a.dim == 0 || a.queries == 0 || a.k == 0 {
        return Err("sizes must be at least 2; dim, queries and k at least 1".into());
    }
    Ok(a)
}

/// `n` seeded vectors of dimension `dim` around `n / 50` random centres.
fn clustered(n: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let clusters = (n / 50).max(1);
    let centres: Vec<f32> = (0..clusters * dim)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    Array2::from_shape_fn((n, dim), |(i, d)| {
        centres[(i % clusters) * dim + d] + rng.gen_range(-0.35f32..0.35)
    })
}

/// Median and 99th percentile of one-thread query times, in microseconds.
fn latency(index: &dyn VectorSearch, queries: &Array2<f32>, k: usize) -> (f64, f64) {
    let rows: Vec<Vec<f32>> = queries.rows().into_iter().map(|r| r.to_vec()).collect();
    for q in &rows {
        std::hint::black_box(index.search(q, k));
    }
    let mut us: Vec<f64> = rows
        .iter()
        .map(|q| {
            let t = Instant::now();
            std::hint::black_box(index.search(q, k));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    let at = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ann_crossover: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "| items | HNSW build | recall@{k} | HNSW p50 / p99 | exact p50 / p99 | exact / HNSW (p50) |",
        k = args.k
    );
    println!("|---|---|---|---|---|---|");
    for &n in &args.sizes {
        let vectors = clustered(n, args.dim, args.seed);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(args.seed ^ 0x5eed);
        let picks: Vec<usize> = (0..args.queries).map(|_| rng.gen_range(0..n)).collect();
        let queries = vectors.select(ndarray::Axis(0), &picks);
        let exact = ExactIndex::new(&vectors);
        let t = Instant::now();
        let hnsw = HnswIndex::build(&vectors, &HnswParams::default()).expect("the HNSW build");
        let build = t.elapsed().as_secs_f64();
        // An item's neighbours: its own row comes back first, so k + 1.
        let recall = recall_at_k(&exact, &hnsw, &queries, args.k + 1);
        let (h50, h99) = latency(&hnsw, &queries, args.k + 1);
        let (e50, e99) = latency(&exact, &queries, args.k + 1);
        println!(
            "| {n} | {build:.1} s | {recall:.4} | {h50:.0} / {h99:.0} us | {e50:.0} / {e99:.0} us | {:.2} |",
            e50 / h50
        );
    }
}
