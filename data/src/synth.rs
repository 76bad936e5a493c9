//! A seeded generator of synthetic purchase histories, for scale tests and benchmarks.
//!
//! The histories have the structure that matters to the models: power-law
//! (Zipf) item popularity, items grouped into categories, customers with one
//! to three favourite categories and heavy-tailed activity, repeat purchases
//! of their own favourites, and orders of one to five lines spread over a year
//! (each customer is active from a random start date to the end of the year).
//! The same parameters and seed give the same history, whatever the thread count:
//! every customer draws from its own generator seeded from `(seed, customer)`.
//!
//! [`generate`] builds the [`PurchaseLog`] in memory; [`write_csv`] writes it
//! as canonical CSV, gzip-compressed when the path ends in `.gz`.

use crate::ids::{CustomerIdx, IdMap, ItemIdx, OrderIdx};
use crate::ingest::IngestError;
use crate::log::{Purchase, PurchaseLog};
use crate::timestamp::format_timestamp;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

/// Length of the generated history.
const YEAR: i64 = 365 * 86_400;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthParams {
    pub customers: usize,
    pub items: usize,
    /// Purchase lines in all (approximately: each customer gets at least one).
    pub purchases: usize,
    /// Taste clusters: every item belongs to one, every customer favours one to three.
    pub categories: usize,
    /// Item popularity `∝ 1 / rank^zipf_exponent`.
    pub zipf_exponent: f64,
    pub seed: u64,
    /// Start of the history, seconds since the epoch; it spans 365 days.
    pub start: i64,
}

impl Default for SynthParams {
    /// 100k customers x 20k items x 5M purchases, the benchmark size.
    fn default() -> Self {
        SynthParams {
            customers: 100_000,
            items: 20_000,
            purchases: 5_000_000,
            categories: 50,
            zipf_exponent: 1.0,
            seed: 42,
            start: 1_672_531_200, // 2023-01-01
        }
    }
}

/// One generated line of a customer: (order number, item, time, quantity, price).
type Line = (u32, u32, i64, f32, f32);

/// Cumulative weights for sampling by binary search.
struct Sampler {
    items: Vec<u32>,
    cumulative: Vec<f64>,
}

impl Sampler {
    fn new(items: Vec<u32>, weight: impl Fn(u32) -> f64) -> Self {
        let mut total = 0.0;
        let cumulative = items
            .iter()
            .map(|&i| {
                total += weight(i);
                total
            })
            .collect();
        Sampler { items, cumulative }
    }

    fn sample(&self, rng: &mut impl Rng) -> u32 {
        let total = *self.cumulative.last().expect("non-empty sampler");
        let x = rng.r#gen::<f64>() * total;
        let k = self.cumulative.partition_point(|&c| c <= x);
        self.items[k.min(self.items.len() - 1)]
    }
}

/// The category (taste cluster) of every item, by item index: the ground truth
/// behind [`generate`], for judging what a model recovers.
pub fn item_categories(p: &SynthParams) -> Vec<usize> {
    assert!(p.categories > 0, "categories must be positive");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed ^ 0xC47E_6021_u64);
    (0..p.items)
        .map(|_| rng.gen_range(0..p.categories))
        .collect()
}

/// Generates a purchase history in memory.
///
/// Customers are `c0..`, items `i0..`, orders `c{customer}-o{k}`; purchases come
/// grouped by customer, in time order within a customer. Panics if a size is zero.
pub fn generate(p: &SynthParams) -> PurchaseLog {
    assert!(
        p.customers > 0 && p.items > 0 && p.categories > 0,
        "sizes must be positive"
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    // Popularity rank of each item is a random permutation.
    let mut rank: Vec<u32> = (0..p.items as u32).collect();
    for i in (1..rank.len()).rev() {
        rank.swap(i, rng.gen_range(0..=i));
    }
    let weight = |i: u32| 1.0 / f64::from(rank[i as usize] + 1).powf(p.zipf_exponent);
    let category = item_categories(p);
    let global = Sampler::new((0..p.items as u32).collect(), weight);
    let by_category: Vec<Option<Sampler>> = (0..p.categories)
        .map(|c| {
            let items: Vec<u32> = (0..p.items as u32)
                .filter(|&i| category[i as usize] == c)
                .collect();
            (!items.is_empty()).then(|| Sampler::new(items, weight))
        })
        .collect();
    // Heavy-tailed activity: Pareto-like weights, normalised to the purchase budget.
    let activity: Vec<f64> = (0..p.customers)
        .map(|_| 1.0 / (1.0 - rng.r#gen::<f64>()).powf(0.7))
        .collect();
    let total: f64 = activity.iter().sum();
    let budget = p.purchases as f64;

    let per_customer: Vec<Vec<Line>> = (0..p.customers)
        .into_par_iter()
        .map(|c| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                p.seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let n = ((activity[c] / total * budget).round() as usize).max(1);
            let favourites: Vec<usize> = (0..rng.gen_range(1..=3))
                .map(|_| rng.gen_range(0..p.categories))
                .collect();
            // Order sizes first, then that many order times, sorted, between the
            // customer's first day and the end of the year.
            let mut sizes: Vec<usize> = Vec::new();
            let mut planned = 0;
            while planned < n {
                let size = rng.gen_range(1..=5).min(n - planned);
                sizes.push(size);
                planned += size;
            }
            let first = p.start + rng.gen_range(0..YEAR / 2);
            let mut times: Vec<i64> = (0..sizes.len())
                .map(|_| rng.gen_range(first..p.start + YEAR))
                .collect();
            times.sort_unstable();
            let mut own: Vec<u32> = Vec::new();
            let mut lines = Vec::with_capacity(n);
            for (order, (&size, &t)) in sizes.iter().zip(&times).enumerate() {
                for _ in 0..size {
                    let roll = rng.r#gen::<f64>();
                    let item = if roll < 0.1 && !own.is_empty() {
                        own[rng.gen_range(0..own.len())]
                    } else if roll < 0.7 {
                        let c = favourites[rng.gen_range(0..favourites.len())];
                        match &by_category[c] {
                            Some(s) => s.sample(&mut rng),
                            None => global.sample(&mut rng),
                        }
                    } else {
                        global.sample(&mut rng)
                    };
                    own.push(item);
                    let qty = 1.0 + (rng.r#gen::<f64>().powi(3) * 5.0).floor() as f32;
                    let price = 1.0 + (item % 97) as f32 * 0.25;
                    lines.push((order as u32, item, t, qty, price));
                }
            }
            lines
        })
        .collect();

    let mut log = PurchaseLog {
        customers: IdMap::from_ids((0..p.customers).map(|c| format!("c{c}"))),
        items: IdMap::from_ids((0..p.items).map(|i| format!("i{i}"))),
        orders: IdMap::new(),
        purchases: Vec::with_capacity(p.purchases + p.customers),
    };
    for (c, lines) in per_customer.into_iter().enumerate() {
        let base = log.orders.len() as u32;
        let n_orders = lines.last().map_or(0, |l| l.0 + 1);
        for k in 0..n_orders {
            log.orders.get_or_insert(&format!("c{c}-o{k}"));
        }
        for (order, item, time, quantity, price) in lines {
            log.purchases.push(Purchase {
                order: OrderIdx(base + order),
                customer: CustomerIdx(c as u32),
                item: ItemIdx(item),
                time,
                quantity,
                price,
            });
        }
    }
    log
}

/// Writes `log` as canonical CSV (`order_id,customer_id,item_id,timestamp,quantity,price`),
/// gzip-compressed when `path` ends in `.gz`.
pub fn write_csv(log: &PurchaseLog, path: &Path) -> Result<(), IngestError> {
    let io = |source| IngestError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    if gz {
        // Buffered on both sides: the encoder is slow with many small writes.
        let enc = flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::fast(),
        );
        let mut out = std::io::BufWriter::with_capacity(1 << 20, enc);
        write_lines(log, &mut out).map_err(io)?;
        let enc = out.into_inner().map_err(|e| io(e.into_error()))?;
        enc.finish().map_err(io)?.flush().map_err(io)
    } else {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        write_lines(log, &mut out).map_err(io)?;
        out.flush().map_err(io)
    }
}

fn write_lines(log: &PurchaseLog, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "order_id,customer_id,item_id,timestamp,quantity,price")?;
    for p in &log.purchases {
        write!(
            out,
            "{},{},{},{},{},",
            log.orders.id(p.order.0),
            log.customers.id(p.customer.0),
            log.items.id(p.item.0),
            format_timestamp(p.time),
            p.quantity,
        )?;
        // An absent price stays an empty field, which ingestion reads back as NaN.
        if p.price.is_nan() {
            writeln!(out)?;
        } else {
            writeln!(out, "{}", p.price)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::IngestOptions;
    use crate::input::read_purchases;
    use std::collections::{HashMap, HashSet};

    fn small(seed: u64) -> SynthParams {
        SynthParams {
            customers: 300,
            items: 200,
            purchases: 5_000,
            categories: 10,
            seed,
            ..SynthParams::default()
        }
    }

    #[test]
    fn deterministic_and_seed_sensitive() {
        let a = generate(&small(1));
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| generate(&small(1)));
        let c = generate(&small(2));
        assert_eq!(a.purchases, b.purchases);
        assert_eq!(a.orders, b.orders);
        assert_ne!(a.purchases, c.purchases);
        let n = a.purchases.len();
        assert!((4_500..6_000).contains(&n), "{n}");
    }

    #[test]
    fn structured_not_uniform() {
        let p = small(3);
        let log = generate(&p);
        // Power-law popularity: the top 5% of items hold far more than 5% of lines.
        let mut counts = vec![0usize; p.items];
        for x in &log.purchases {
            counts[x.item.idx()] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top10: usize = counts[..10].iter().sum();
        assert!(
            top10 * 5 > log.purchases.len() / 2,
            "top 10 items hold {top10}"
        );
        // Orders have one to five lines of one customer at one time.
        let mut orders: HashMap<u32, (u32, i64, usize)> = HashMap::new();
        for x in &log.purchases {
            let e = orders.entry(x.order.0).or_insert((x.customer.0, x.time, 0));
            assert_eq!((e.0, e.1), (x.customer.0, x.time));
            e.2 += 1;
        }
        assert!(orders.values().all(|o| (1..=5).contains(&o.2)));
        // Times fill the year rather than piling up at its end.
        let end = p.start + YEAR;
        assert!(
            log.purchases
                .iter()
                .all(|x| (p.start..end).contains(&{ x.time }))
        );
        let last_month = log
            .purchases
            .iter()
            .filter(|x| x.time >= end - 30 * 86_400)
            .count();
        assert!(last_month * 5 < log.purchases.len(), "{last_month}");
        // Repeat purchases: fewer distinct (customer, item) pairs than lines.
        let pairs: HashSet<(u32, u32)> = log
            .purchases
            .iter()
            .map(|x| (x.customer.0, x.item.0))
            .collect();
        assert!(
            pairs.len() * 10 < log.purchases.len() * 9,
            "{}",
            pairs.len()
        );
    }

    #[test]
    fn taste_clusters_concentrate_customers() {
        // Popularity switched off so only taste shapes the choice of items.
        let p = SynthParams {
            customers: 200,
            items: 1_000,
            purchases: 20_000,
            categories: 20,
            zipf_exponent: 0.0,
            seed: 5,
            ..SynthParams::default()
        };
        let log = generate(&p);
        let category = item_categories(&p);
        let mut per_customer = vec![vec![0usize; p.categories]; p.customers];
        for x in &log.purchases {
            per_customer[x.customer.idx()][category[x.item.idx()]] += 1;
        }
        // Share of each active customer's lines in their three most bought
        // categories; uniform choice would give about 3/20 plus noise.
        let shares: Vec<f64> = per_customer
            .iter_mut()
            .filter(|c| c.iter().sum::<usize>() >= 40)
            .map(|c| {
                let total: usize = c.iter().sum();
                c.sort_unstable_by(|a, b| b.cmp(a));
                (c[0] + c[1] + c[2]) as f64 / total as f64
            })
            .collect();
        assert!(shares.len() > 50, "{}", shares.len());
        let mean = shares.iter().sum::<f64>() / shares.len() as f64;
        assert!(mean > 0.6, "top-3 category share {mean}");
    }

    #[test]
    fn roundtrips_through_csv_and_gzip() {
        let log = generate(&small(4));
        let dir = tempfile::tempdir().unwrap();
        for name in ["s.csv", "s.csv.gz"] {
            let path = dir.path().join(name);
            write_csv(&log, &path).unwrap();
            let (back, report) = read_purchases(&path, &IngestOptions::default()).unwrap();
            assert_eq!(report.rows_accepted as usize, log.purchases.len());
            assert_eq!(back.orders.len(), log.orders.len());
            for (a, b) in log.purchases.iter().zip(&back.purchases) {
                assert_eq!(
                    log.customers.id(a.customer.0),
                    back.customers.id(b.customer.0)
                );
                assert_eq!(log.items.id(a.item.0), back.items.id(b.item.0));
                assert_eq!(log.orders.id(a.order.0), back.orders.id(b.order.0));
                assert_eq!((a.time, a.quantity, a.price), (b.time, b.quantity, b.price));
            }
        }
        let bad = dir.path().join("no/such/dir/s.csv");
        assert!(matches!(write_csv(&log, &bad), Err(IngestError::Io { .. })));
    }
}
