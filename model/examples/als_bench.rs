//! Training and serving benchmark for [`encore_model::cf::als`].
//!
//! ```text
//! cargo run --release -p encore-model --example als_bench -- [options]
//!
//!   --users N        users (rows) of the generated matrix       [100000]
//!   --items N        items (columns)                            [20000]
//!   --nnz N          target number of nonzeros                  [5000000]
//!   --data-seed N    seed of the generator                      [7]
//!   --read DIR       train on DIR/{shape.txt,indptr.u64,indices.u32,data.f32}
//!                    instead of generating
//!   --write DIR      generate, write the matrix to DIR in that format and exit
//!   --factors N      [64]     --reg X   [0.01]   --alpha X [1.0]
//!   --iterations N   [15]     --cg-steps N [3]   --seed N  [42]
//!   --threads N      rayon threads (default: all cores)
//!   --k N            list length of the recommend benchmark     [10]
//!   --rec-users N    users served by the recommend benchmark    [all]
//!   --no-exclude     do not filter already-bought items
//!   --no-recommend   skip the recommend benchmark
//!   --loss           print the training objective of the result
//! ```
//!
//! The matrix files are raw little-endian arrays (`u64` row pointers, `u32`
//! column indices, `f32` values) plus `shape.txt` (`rows cols nnz`), so that
//! `bench/als_implicit.py` can read the very same matrix with `np.fromfile`.
//!
//! Output is human-readable lines followed by one `RESULT key=value ...` line
//! for scripts.

use encore_data::Csr;
use encore_model::cf::als::AlsParams;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug)]
struct Args {
    users: usize,
    items: usize,
    nnz: usize,
    data_seed: u64,
    read: Option<PathBuf>,
    write: Option<PathBuf>,
    factors: usize,
    reg: f32,
    alpha: f32,
    iterations: usize,
    cg_steps: usize,
    seed: u64,
    threads: Option<usize>,
    k: usize,
    rec_users: Option<usize>,
    exclude: bool,
    recommend: bool,
    loss: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        users: 100_000,
        items: 20_000,
        nnz: 5_000_000,
        data_seed: 7,
        read: None,
        write: None,
        factors: 64,
        reg: 0.01,
        alpha: 1.0,
        iterations: 15,
        cg_steps: 3,
        seed: 42,
        threads: None,
        k: 10,
        rec_users: None,
        exclude: true,
        recommend: true,
        loss: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("bad value for {flag}: {v}"))
        }
        match flag.as_str() {
            "--users" => a.users = num(&flag, value()?)?,
            "--items" => a.items = num(&flag, value()?)?,
            "--nnz" => a.nnz = num(&flag, value()?)?,
            "--data-seed" => a.data_seed = num(&flag, value()?)?,
            "--read" => a.read = Some(value()?.into()),
            "--write" => a.write = Some(value()?.into()),
            "--factors" => a.factors = num(&flag, value()?)?,
            "--reg" => a.reg = num(&flag, value()?)?,
            "--alpha" => a.alpha = num(&flag, value()?)?,
            "--iterations" => a.iterations = num(&flag, value()?)?,
            "--cg-steps" => a.cg_steps = num(&flag, value()?)?,
            "--seed" => a.seed = num(&flag, value()?)?,
            "--threads" => a.threads = Some(num(&flag, value()?)?),
            "--k" => a.k = num(&flag, value()?)?,
            "--rec-users" => a.rec_users = Some(num(&flag, value()?)?),
            "--no-exclude" => a.exclude = false,
            "--no-recommend" => a.recommend = false,
            "--loss" => a.loss = true,
            "-h" | "--help" => {
                return Err("see the doc comment at the top of model/examples/als_bench.rs".into());
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.users == 0 || a.items == 0 {
        return Err("--users and --items must be positive".into());
    }
    Ok(a)
}

/// Cumulative distribution of Zipf(1) weights `1 / (rank + 1)` over `n` ranks.
fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (0..n)
        .map(|r| {
            acc += 1.0 / (r as f64 + 1.0);
            acc
        })
        .collect();
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

/// A rank drawn from `cdf`.
fn draw(cdf: &[f64], rng: &mut impl Rng) -> usize {
    let u: f64 = rng.r#gen();
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

/// A power-law user x item matrix with about `nnz` entries.
///
/// Items have Zipf(1) popularity and belong to one of `items / 100` clusters
/// (assigned by a random permutation, so popularity and cluster are
/// independent). Each user has two or three favourite clusters; 70% of their
/// purchases come from those (Zipf within the cluster), the rest from the
/// global popularity. User activity (distinct items) is log-normal. Values are
/// purchase counts: how often the item was drawn while filling the row.
fn generate(users: usize, items: usize, nnz: usize, seed: u64) -> Csr {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let clusters = (items / 100).max(1);
    // Popularity rank -> item id.
    let mut by_rank: Vec<u32> = (0..items as u32).collect();
    for i in (1..items).rev() {
        by_rank.swap(i, rng.gen_range(0..=i));
    }
    // Cluster c holds the items whose rank is c mod clusters, in rank order.
    let members: Vec<Vec<u32>> = (0..clusters)
        .map(|c| by_rank.iter().skip(c).step_by(clusters).copied().collect())
        .collect();
    let global = zipf_cdf(items);
    let cluster_cdfs: Vec<Vec<f64>> = members.iter().map(|m| zipf_cdf(m.len())).collect();
    // Log-normal activity with sigma 1: mean exp(mu + 1/2) = nnz / users.
    let mean = (nnz as f64 / users as f64).max(1.0);
    let mu = mean.ln() - 0.5;
    let max_row = (items / 2).max(1);
    let mut indptr = Vec::with_capacity(users + 1);
    let mut indices: Vec<u32> = Vec::with_capacity(nnz + nnz / 16);
    let mut values: Vec<f32> = Vec::with_capacity(nnz + nnz / 16);
    indptr.push(0usize);
    // Dense per-item counts of the current row and the items it touched.
    let mut counts = vec![0f32; items];
    let mut row: Vec<u32> = Vec::new();
    for _ in 0..users {
        // Box-Muller normal.
        let (u1, u2): (f64, f64) = (rng.r#gen::<f64>().max(1e-300), rng.r#gen());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let n = ((mu + z).exp().round() as usize).clamp(1, max_row);
        let favourites: Vec<usize> = (0..rng.gen_range(2..=3))
            .map(|_| rng.gen_range(0..clusters))
            .collect();
        row.clear();
        // Draw until the row has `n` distinct items; a repeat raises the count.
        let mut attempts = 0;
        while row.len() < n && attempts < 50 * n {
            attempts += 1;
            let item = if rng.gen_bool(0.7) {
                let c = favourites[rng.gen_range(0..favourites.len())];
                members[c][draw(&cluster_cdfs[c], &mut rng)]
            } else {
                by_rank[draw(&global, &mut rng)]
            };
            if counts[item as usize] == 0.0 {
                row.push(item);
            }
            counts[item as usize] += 1.0;
        }
        row.sort_unstable();
        for &i in row.iter() {
            indices.push(i);
            values.push(std::mem::take(&mut counts[i as usize]));
        }
        indptr.push(indices.len());
    }
    Csr::from_parts(users, items, indptr, indices, values).expect("generator builds a valid CSR")
}

fn write_matrix(m: &Csr, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("shape.txt"),
        format!("{} {} {}\n", m.n_rows(), m.n_cols(), m.nnz()),
    )?;
    let mut w = BufWriter::new(File::create(dir.join("indptr.u64"))?);
    for &p in m.indptr() {
        w.write_all(&(p as u64).to_le_bytes())?;
    }
    w.flush()?;
    let mut w = BufWriter::new(File::create(dir.join("indices.u32"))?);
    for &c in m.indices() {
        w.write_all(&c.to_le_bytes())?;
    }
    w.flush()?;
    let mut w = BufWriter::new(File::create(dir.join("data.f32"))?);
    for &v in m.values() {
        w.write_all(&v.to_le_bytes())?;
    }
    w.flush()
}

/// Reads `n` little-endian `N`-byte words without holding the file in memory twice.
fn read_words<const N: usize, T>(path: &Path, n: usize, conv: fn([u8; N]) -> T) -> Vec<T> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).expect("open matrix file"));
    let mut out = Vec::with_capacity(n);
    let mut word = [0u8; N];
    for _ in 0..n {
        r.read_exact(&mut word).expect("matrix file too short");
        out.push(conv(word));
    }
    out
}

fn read_matrix(dir: &Path) -> Csr {
    let shape = std::fs::read_to_string(dir.join("shape.txt")).expect("read shape.txt");
    let dims: Vec<usize> = shape
        .split_whitespace()
        .map(|s| s.parse().expect("shape.txt holds three integers"))
        .collect();
    let (rows, cols, nnz) = (dims[0], dims[1], dims[2]);
    let indptr = read_words(&dir.join("indptr.u64"), rows + 1, |b| {
        u64::from_le_bytes(b) as usize
    });
    let indices = read_words(&dir.join("indices.u32"), nnz, u32::from_le_bytes);
    let values = read_words(&dir.join("data.f32"), nnz, f32::from_le_bytes);
    Csr::from_parts(rows, cols, indptr, indices, values).expect("valid matrix files")
}

/// Peak resident set size in MiB (`VmHWM`), if the platform reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("als_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .expect("configure rayon");
    }
    let t0 = Instant::now();
    let m = match &args.read {
        Some(dir) => read_matrix(dir),
        None => generate(args.users, args.items, args.nnz, args.data_seed),
    };
    println!(
        "matrix: {} x {}, {} nonzeros ({} in {:.2} s)",
        m.n_rows(),
        m.n_cols(),
        m.nnz(),
        if args.read.is_some() {
            "read"
        } else {
            "generated"
        },
        t0.elapsed().as_secs_f64()
    );
    if let Some(dir) = &args.write {
        write_matrix(&m, dir).expect("write matrix files");
        println!("wrote {}", dir.display());
        return;
    }

    let params = AlsParams::new(args.factors)
        .regularization(args.reg)
        .alpha(args.alpha)
        .iterations(args.iterations)
        .cg_steps(args.cg_steps)
        .seed(args.seed);
    println!(
        "training: {params:?}, {} threads",
        rayon::current_num_threads()
    );
    let start = Instant::now();
    let mut last = start;
    let mut per_iter = Vec::with_capacity(args.iterations);
    let als = params
        .fit_with(&m, &mut |it| {
            let now = Instant::now();
            per_iter.push((now - last).as_secs_f64());
            last = now;
            if it == 1 || it == args.iterations {
                println!("  iteration {it}: {:.3} s", per_iter[it - 1]);
            }
        })
        .expect("ALS fit");
    let train = start.elapsed().as_secs_f64();
    let mut sorted = per_iter.clone();
    sorted.sort_by(f64::total_cmp);
    let median_iter = sorted[sorted.len() / 2];
    let rss_train = peak_rss_mib().unwrap_or(f64::NAN);
    println!(
        "train: {train:.3} s total, median {median_iter:.3} s/iteration, peak RSS {rss_train:.1} MiB"
    );
    let mut result =
        format!("RESULT train_s={train:.4} iter_s={median_iter:.4} rss_train_mib={rss_train:.1}");
    if args.loss {
        let t = Instant::now();
        let loss = als.loss(&m);
        println!(
            "loss: {loss:.6e} ({:.3} s to compute)",
            t.elapsed().as_secs_f64()
        );
        result += &format!(" loss={loss:.6e}");
    }

    if args.recommend {
        let n = args.rec_users.unwrap_or(m.n_rows()).min(m.n_rows());
        let users: Vec<u32> = (0..n as u32).collect();
        let exclude = args.exclude.then_some(&m);
        let t = Instant::now();
        let lists = als.recommend_batch(&users, args.k, exclude);
        let secs = t.elapsed().as_secs_f64();
        let returned: usize = lists.iter().map(Vec::len).sum();
        let rate = n as f64 / secs;
        println!(
            "recommend_batch: {n} users, k={}, exclude={}: {secs:.3} s, {rate:.0} users/s ({returned} items returned)",
            args.k, args.exclude
        );
        result += &format!(" rec_s={secs:.4} rec_users_per_s={rate:.1}");
    }
    let rss = peak_rss_mib().unwrap_or(f64::NAN);
    result += &format!(" rss_mib={rss:.1}");
    println!("{result}");
}
