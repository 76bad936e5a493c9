//! A seeded generator of synthetic purchase histories, for scale tests and benchmarks.
//!
//! The histories have the structure that matters to the models: power-law
//! (Zipf) item popularity, items grouped into categories, customers with one
//! to three favourite categories and heavy-tailed activity, repeat purchases
//! of their own favourites, and orders of one to five lines spread over a year.
//! The same parameters and seed give the same history, whatever the thread count.

use crate::ids::{CustomerIdx, IdMap, ItemIdx, OrderIdx};
use crate::log::{Purchase, PurchaseLog};
use crate::timestamp::format_timestamp;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthParams {
    pub customers: usize,
    pub items: usize,
    /// Purchase lines in all (approximately: each customer gets at least one).
    pub purchases: usize,
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
            zipf_exponent: 0.8,
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

/// Generates a purchase history in memory.
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
    let category: Vec<usize> = (0..p.items)
        .map(|_| rng.gen_range(0..p.categories))
        .collect();
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
            let mut own: Vec<u32> = Vec::new();
            let mut lines = Vec::with_capacity(n);
            let mut order = 0u32;
            let mut t = p.start + rng.gen_range(0..86_400 * 30);
            while lines.len() < n {
                let size = rng.gen_range(1..=5).min(n - lines.len());
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
                    lines.push((order, item, t, qty, price));
                }
                order += 1;
                t += rng.gen_range(3_600..86_400 * 40);
                t = t.min(p.start + 365 * 86_400 - 1);
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

/// Writes `log` as canonical CSV (`order_id,customer_id,item_id,timestamp,quantity,price`).
pub fn write_csv(log: &PurchaseLog, path: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "order_id,customer_id,item_id,timestamp,quantity,price")?;
    for p in &log.purchases {
        writeln!(
            out,
            "{},{},{},{},{},{}",
            log.orders.id(p.order.0),
            log.customers.id(p.customer.0),
            log.items.id(p.item.0),
            format_timestamp(p.time),
            p.quantity,
            p.price
        )?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let b = generate(&small(1));
        let c = generate(&small(2));
        assert_eq!(a.purchases, b.purchases);
        assert_ne!(a.purchases, c.purchases);
        let n = a.purchases.len();
        assert!((4_500..6_000).contains(&n), "{n}");
    }

    #[test]
    fn popularity_is_skewed_and_roundtrips_through_csv() {
        let log = generate(&small(3));
        let mut counts = vec![0usize; 200];
        for p in &log.purchases {
            counts[p.item.idx()] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top10: usize = counts[..10].iter().sum();
        assert!(
            top10 * 5 > log.purchases.len() / 2,
            "top 10 items hold {top10}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        write_csv(&log, &path).unwrap();
        let (back, report) =
            crate::ingest::read_purchases(&path, &crate::ingest::IngestOptions::default()).unwrap();
        assert_eq!(report.rows_accepted as usize, log.purchases.len());
        assert_eq!(back.orders.len(), log.orders.len());
    }
}
