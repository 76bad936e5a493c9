//! Holdout evaluation of the repeat-aware "for you" models (TIFU-KNN, its
//! blend with ALS) and EASE on UCI Online Retail (the bundled
//! `data/sample/online_retail.csv.gz`), against the customer's own most-bought
//! items (P-TopFreq), ALS alone and a BM25 item-kNN.
//!
//! # Protocol
//! * Train on the purchases before the cutoff 2011-10-01; test on the
//!   purchases from the cutoff to the end of the data.
//! * A customer is scored if they have a positive line on both sides and at
//!   least one relevant item. Relevant = items with a net positive quantity
//!   after the cutoff; items marked `available=false` in the catalog (fees,
//!   postage) are never relevant nor listed. Lists may contain items the
//!   customer bought before.
//! * Recall@10 and NDCG@10 from `encore_model::metrics`, averaged over the
//!   scored customers.
//! * P-TopFreq: the customer's items with a net positive quantity before the
//!   cutoff, by distinct orders containing the item, then total quantity, then
//!   index. ALS: `AlsConfig::default()` (64 factors, alpha 10, log
//!   quantities, 15 iterations) on `pipeline::interaction_matrix`, as the
//!   engine trains it. Item-kNN: customer-basis BM25 (`k1` 100, `b` 0.8, 20
//!   neighbours, the `implicit` library's defaults), summed over the
//!   customer's items.
//!
//! The defaults of `TifuParams` and `EaseParams` were chosen on a validation
//! split inside the training period: train before 2011-08-01, validate on
//! 2011-08-01..2011-10-01 (`cargo run --release -p encore-model --example
//! tifu_tuning` reruns the search). This test prints the validation figures
//! of the defaults, then the test figures.
//!
//! Run with `--nocapture` to see the figures (`--release` makes it quick).

// Also included by `examples/tifu_tuning.rs`, which uses only the harness.
#![allow(dead_code)]

use encore_data::timestamp::parse_timestamp;
use encore_data::{
    Csr, IngestOptions, InteractionMatrix, PurchaseLog, Weighting, read_catalog, read_purchases,
};
use encore_model::cf::als::Als;
use encore_model::cf::ease::{Ease, EaseParams};
use encore_model::cf::item_knn::{Basis, CoPurchase, CoPurchaseParams, Similarity};
use encore_model::cf::tifu::{TifuKnn, TifuParams};
use encore_model::metrics::{ndcg_at_k, recall_at_k};
use encore_model::pipeline::{AlsConfig, interaction_matrix};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;

pub const K: usize = 10;

pub struct Data {
    pub log: PurchaseLog,
    pub unavailable: Vec<bool>,
}

pub fn load() -> Data {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample");
    let opts = IngestOptions {
        columns: "order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
            .parse()
            .unwrap(),
        ..Default::default()
    };
    let (log, _) = read_purchases(&dir.join("online_retail.csv.gz"), &opts).unwrap();
    let catalog = read_catalog(&dir.join("online_retail_catalog.csv")).unwrap();
    let unavailable = log
        .items
        .ids()
        .map(|id| catalog.get(id).is_some_and(|e| !e.available))
        .collect();
    Data { log, unavailable }
}

pub fn date(s: &str) -> i64 {
    parse_timestamp(s).unwrap()
}

/// One train / evaluation split.
pub struct Split {
    pub train: PurchaseLog,
    /// Scored customers with their relevant items.
    pub customers: Vec<(u32, HashSet<u32>)>,
    /// Binary customer x item matrix of net positive training pairs.
    pub binary: Csr,
    pub unavailable: Vec<bool>,
}

pub fn split(data: &Data, cutoff: i64, end: i64) -> Split {
    let (train, rest) = data.log.split_at(cutoff);
    let mut before: HashSet<u32> = HashSet::new();
    for p in train.purchases.iter().filter(|p| p.quantity > 0.0) {
        before.insert(p.customer.0);
    }
    let mut after: BTreeMap<u32, BTreeMap<u32, f64>> = BTreeMap::new();
    let mut bought_after: HashSet<u32> = HashSet::new();
    for p in rest.purchases.iter().filter(|p| p.time < end) {
        if p.quantity > 0.0 {
            bought_after.insert(p.customer.0);
        }
        *after
            .entry(p.customer.0)
            .or_default()
            .entry(p.item.0)
            .or_default() += f64::from(p.quantity);
    }
    let customers = after
        .into_iter()
        .filter(|(c, _)| before.contains(c) && bought_after.contains(c))
        .map(|(c, items)| {
            let relevant: HashSet<u32> = items
                .into_iter()
                .filter(|&(i, q)| q > 0.0 && !data.unavailable[i as usize])
                .map(|(i, _)| i)
                .collect();
            (c, relevant)
        })
        .filter(|(_, r)| !r.is_empty())
        .collect();
    let binary = InteractionMatrix::from_log(&train, &Weighting::default())
        .matrix
        .map_values(|_| 1.0);
    Split {
        train,
        customers,
        binary,
        unavailable: data.unavailable.clone(),
    }
}

/// Mean Recall@K and NDCG@K of `list` over the scored customers.
pub fn evaluate(split: &Split, list: impl Fn(u32) -> Vec<u32> + Sync) -> (f64, f64) {
    use rayon::prelude::*;
    let sums = split
        .customers
        .par_iter()
        .map(|(c, relevant)| {
            let l = list(*c);
            (
                recall_at_k(&l, relevant, K).unwrap(),
                ndcg_at_k(&l, relevant, K).unwrap(),
            )
        })
        .collect::<Vec<_>>();
    let n = sums.len() as f64;
    let (r, g) = sums
        .iter()
        .fold((0.0, 0.0), |(a, b), (r, g)| (a + r, b + g));
    (r / n, g / n)
}

/// P-TopFreq lists: the customer's own items by distinct orders, then
/// quantity, then index (net positive and available only).
pub fn top_freq(split: &Split) -> BTreeMap<u32, Vec<u32>> {
    let mut stats: BTreeMap<(u32, u32), (f64, HashSet<u32>, f64)> = BTreeMap::new();
    for p in &split.train.purchases {
        let s = stats.entry((p.customer.0, p.item.0)).or_default();
        s.0 += f64::from(p.quantity);
        if p.quantity > 0.0 {
            s.1.insert(p.order.0);
            s.2 += f64::from(p.quantity);
        }
    }
    let mut per: BTreeMap<u32, Vec<(u32, usize, f64)>> = BTreeMap::new();
    for ((c, i), (net, orders, q)) in stats {
        if net > 0.0 && !split.unavailable[i as usize] {
            per.entry(c).or_default().push((i, orders.len(), q));
        }
    }
    per.into_iter()
        .map(|(c, mut v)| {
            v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.total_cmp(&a.2)).then(a.0.cmp(&b.0)));
            (c, v.into_iter().take(K).map(|e| e.0).collect())
        })
        .collect()
}

pub fn fit_als(split: &Split) -> Als {
    let config = AlsConfig::default();
    let (m, _) = interaction_matrix(&split.train, &config);
    encore_model::cf::als::AlsParams::new(config.factors)
        .regularization(config.regularization)
        .alpha(config.alpha)
        .iterations(config.iterations)
        .cg_steps(config.cg_steps)
        .seed(config.seed)
        .fit(&m)
        .unwrap()
}

pub fn als_scores(als: &Als, customer: u32) -> Vec<f32> {
    let mut s = vec![0f32; als.item_factors().nrows()];
    als.score_user(customer as usize, &mut s);
    s
}

pub fn fit_bm25(split: &Split) -> CoPurchase {
    CoPurchaseParams {
        basis: Basis::Customers,
        weighting: Similarity::Bm25 { k1: 100.0, b: 0.8 },
        neighbours: 20,
        min_support: 1,
    }
    .fit(&split.train)
}

fn ids(list: Vec<(u32, f32)>) -> Vec<u32> {
    list.into_iter().map(|e| e.0).collect()
}

pub fn tifu_list(split: &Split, model: &TifuKnn, als: Option<&Als>, c: u32) -> Vec<u32> {
    let skip = |i: u32| split.unavailable[i as usize];
    match als {
        None => ids(model.recommend(c, K, skip, None)),
        Some(als) => ids(model.recommend(c, K, skip, Some(&als_scores(als, c)))),
    }
}

pub fn ease_list(split: &Split, ease: &Ease, c: u32) -> Vec<u32> {
    ids(ease.recommend(split.binary.row(c as usize), K, |i| {
        split.unavailable[i as usize]
    }))
}

pub fn bm25_list(split: &Split, knn: &CoPurchase, c: u32) -> Vec<u32> {
    let (items, _) = split.binary.row(c as usize);
    let basket: Vec<(u32, f32)> = items.iter().map(|&i| (i, 1.0)).collect();
    let mut s = vec![0f32; knn.n_items()];
    knn.score_items(&basket, &mut s);
    ids(encore_model::topk::top_k_dense(&s, K, |i| {
        split.unavailable[i as usize]
    }))
}

/// Figures of every model on one split.
pub struct Report {
    pub customers: usize,
    /// (name, Recall@K, NDCG@K, fit seconds)
    pub rows: Vec<(&'static str, f64, f64, f64)>,
}

pub fn run_all(split: &Split, tifu: &TifuParams, ease: &EaseParams) -> Report {
    let mut rows = Vec::new();
    let tf = top_freq(split);
    let (r, g) = evaluate(split, |c| tf.get(&c).cloned().unwrap_or_default());
    rows.push(("P-TopFreq (own most-bought)", r, g, 0.0));

    let t = Instant::now();
    let als = fit_als(split);
    let als_secs = t.elapsed().as_secs_f64();
    let (r, g) = evaluate(split, |c| {
        ids(encore_model::topk::top_k_dense(
            &als_scores(&als, c),
            K,
            |i| split.unavailable[i as usize],
        ))
    });
    rows.push(("ALS (engine defaults)", r, g, als_secs));

    let t = Instant::now();
    let knn = fit_bm25(split);
    let secs = t.elapsed().as_secs_f64();
    let (r, g) = evaluate(split, |c| bm25_list(split, &knn, c));
    rows.push(("item-kNN BM25 (customers)", r, g, secs));

    let t = Instant::now();
    let model = tifu.fit(&split.train).unwrap();
    let tifu_secs = t.elapsed().as_secs_f64();
    let (r, g) = evaluate(split, |c| tifu_list(split, &model, None, c));
    rows.push(("TIFU-KNN", r, g, tifu_secs));
    let (r, g) = evaluate(split, |c| tifu_list(split, &model, Some(&als), c));
    rows.push(("TIFU-KNN + ALS blend", r, g, tifu_secs + als_secs));

    let t = Instant::now();
    let e = ease.fit(&split.binary).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let (r, g) = evaluate(split, |c| ease_list(split, &e, c));
    rows.push(("EASE", r, g, secs));
    Report {
        customers: split.customers.len(),
        rows,
    }
}

pub fn print(label: &str, report: &Report) {
    println!("{label}: {} customers scored", report.customers);
    println!(
        "  {:<30} {:>9} {:>9} {:>9}",
        "model", "Recall@10", "NDCG@10", "fit s"
    );
    for (name, r, g, s) in &report.rows {
        println!("  {name:<30} {r:>9.4} {g:>9.4} {s:>9.2}");
    }
}

fn figure(report: &Report, name: &str) -> (f64, f64) {
    let row = report.rows.iter().find(|r| r.0 == name).unwrap();
    (row.1, row.2)
}

#[test]
fn holdout_repeat_aware_models_beat_p_topfreq() {
    let data = load();
    let cutoff = date("2011-10-01");
    let end = data.log.time_range().unwrap().1 + 1;
    let tifu = TifuParams::default();
    let ease = EaseParams::default();
    println!("TIFU-KNN defaults: {tifu:?}\nEASE defaults: {ease:?}");

    let validation = run_all(&split(&data, date("2011-08-01"), cutoff), &tifu, &ease);
    print(
        "validation (train < 2011-08-01, 2011-08-01..2011-10-01)",
        &validation,
    );
    let test = run_all(&split(&data, cutoff, end), &tifu, &ease);
    print("test (train < 2011-10-01, 2011-10-01..2011-12-09)", &test);
    assert!(test.customers > 1500, "{} customers", test.customers);

    let baseline = [
        "P-TopFreq (own most-bought)",
        "ALS (engine defaults)",
        "item-kNN BM25 (customers)",
    ];
    let best_base = baseline
        .iter()
        .map(|b| figure(&test, b))
        .fold((0.0f64, 0.0f64), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    let repeat_aware = ["TIFU-KNN", "TIFU-KNN + ALS blend"];
    let best = repeat_aware
        .iter()
        .map(|m| figure(&test, m))
        .fold((0.0f64, 0.0f64), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    println!(
        "best repeat-aware vs best baseline: Recall@10 {:.4} vs {:.4} ({:+.1} %), NDCG@10 {:.4} vs {:.4} ({:+.1} %)",
        best.0,
        best_base.0,
        100.0 * (best.0 / best_base.0 - 1.0),
        best.1,
        best_base.1,
        100.0 * (best.1 / best_base.1 - 1.0),
    );
    let top_freq = figure(&test, "P-TopFreq (own most-bought)");
    assert!(
        best.0 > top_freq.0,
        "best repeat-aware Recall@10 {} vs P-TopFreq {}",
        best.0,
        top_freq.0
    );
}
