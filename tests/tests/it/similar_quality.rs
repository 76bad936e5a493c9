//! Quality of the item-to-item lists on a co-purchase holdout (Online Retail).
//!
//! Train on the purchases before 2011-10-01. For every item bought after the
//! cutoff, its relevant set is the items bought in the same orders after the
//! cutoff in at least 2 orders, the 20 most frequent (available items only).
//! For the "similar items" list (ALS embeddings, HNSW), the "bought together"
//! list (co-purchase neighbours) and 10 random items (seeded), Precision@10 =
//! relevant items in the list / 10 and HitRate@10 = share of items whose
//! list holds at least one relevant item. Run with `--nocapture` for the
//! figures; the test requires both lists to beat random by a wide margin.

use crate::support;
use encore_data::timestamp::parse_timestamp;
use encore_model::engine::ListFilter;
use encore_model::manifest::DataSummary;
use encore_model::pipeline::{EngineConfig, train_engine};
use encore_training::input::load_input;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::{HashMap, HashSet};

const K: usize = 10;

#[test]
fn similar_and_bought_together_beat_random_on_the_copurchase_holdout() {
    let dir = tempfile::tempdir().unwrap();
    let input = load_input(&support::sample_args(dir.path())).unwrap();
    let cutoff = parse_timestamp("2011-10-01").unwrap();
    let (train, test) = input.log.split_at(cutoff);
    let mut config = EngineConfig::default();
    config.als.factors = 32;
    config.als.iterations = 8;
    let engine = train_engine(
        &train,
        input.item_meta.clone(),
        &config,
        DataSummary::default(),
        &mut |_| {},
    )
    .unwrap();

    // Items of each order after the cutoff (positive, available lines).
    let mut orders: HashMap<u32, HashSet<u32>> = HashMap::new();
    for p in &test.purchases {
        if p.quantity > 0.0 && engine.item_meta(p.item.0).available {
            orders.entry(p.order.0).or_default().insert(p.item.0);
        }
    }
    let mut counts: HashMap<u32, HashMap<u32, u32>> = HashMap::new();
    for items in orders.values().filter(|o| o.len() >= 2) {
        for &a in items {
            let c = counts.entry(a).or_default();
            for &b in items.iter().filter(|&&b| b != a) {
                *c.entry(b).or_insert(0) += 1;
            }
        }
    }
    let relevant: HashMap<u32, HashSet<u32>> = counts
        .into_iter()
        .filter_map(|(a, c)| {
            let mut top: Vec<(u32, u32)> = c.into_iter().filter(|&(_, n)| n >= 2).collect();
            top.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            top.truncate(20);
            (!top.is_empty()).then(|| (a, top.into_iter().map(|(b, _)| b).collect()))
        })
        .collect();
    // Only items the trained model knows a purchase of.
    let history = engine.history();
    let mut bought = vec![false; engine.items().len()];
    for &i in history.indices() {
        bought[i as usize] = true;
    }
    let mut queries: Vec<u32> = relevant
        .keys()
        .copied()
        .filter(|&i| bought[i as usize])
        .collect();
    queries.sort_unstable();
    assert!(queries.len() > 500, "{} query items", queries.len());

    let filter = ListFilter::default();
    let available: Vec<u32> = (0..engine.items().len() as u32)
        .filter(|&i| engine.item_meta(i).available && bought[i as usize])
        .collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    // (hits, precision sum) per list.
    let mut score = [(0usize, 0.0f64); 3];
    for &q in &queries {
        let rel = &relevant[&q];
        let mut random: Vec<u32> = Vec::with_capacity(K);
        while random.len() < K {
            let i = available[rng.gen_range(0..available.len())];
            if i != q && !random.contains(&i) {
                random.push(i);
            }
        }
        let lists: [Vec<u32>; 3] = [
            engine.similar(q, K, &filter).iter().map(|x| x.0).collect(),
            engine
                .bought_together(q, K, &filter)
                .iter()
                .map(|x| x.0)
                .collect(),
            random,
        ];
        for (s, list) in score.iter_mut().zip(&lists) {
            let hits = list.iter().filter(|i| rel.contains(i)).count();
            s.0 += usize::from(hits > 0);
            s.1 += hits as f64 / K as f64;
        }
    }
    let n = queries.len() as f64;
    let [sim, tog, rnd] = score.map(|(h, p)| (h as f64 / n, p / n));
    println!(
        "co-purchase holdout from 2011-10-01, {} query items: HitRate@{K} / Precision@{K}: \
         similar {:.4} / {:.4}, bought-together {:.4} / {:.4}, random {:.4} / {:.4}",
        queries.len(),
        sim.0,
        sim.1,
        tog.0,
        tog.1,
        rnd.0,
        rnd.1
    );
    assert!(sim.1 > 3.0 * rnd.1, "similar {sim:?} vs random {rnd:?}");
    assert!(
        tog.1 > 3.0 * rnd.1,
        "bought-together {tog:?} vs random {rnd:?}"
    );
    assert!(sim.0 > rnd.0 && tog.0 > rnd.0);
}
