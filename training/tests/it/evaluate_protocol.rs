//! The evaluation protocol end to end on a small synthetic history: both
//! splits, the report's structure and counts, the registry, the HTML page.

use encore_data::synth::{SynthParams, generate};
use encore_data::timestamp::format_timestamp;
use encore_data::{InteractionMatrix, PurchaseLog, Weighting};
use encore_model::engine::ItemMeta;
use encore_model::manifest::DataSummary;
use encore_model::pipeline::EngineConfig;
use encore_training::evaluate::{
    EvalOptions, EvalReport, Registry, Split, evaluate_split, evaluate_with, list_fn, prepare_split,
};
use encore_training::report_html as html;
use std::collections::{HashMap, HashSet};

const DAY: i64 = 86_400;
const BASELINES: [&str; 5] = ["popularity", "p_topfreq", "gp_topfreq", "item_knn", "als"];

fn params() -> SynthParams {
    SynthParams {
        customers: 400,
        items: 150,
        purchases: 12_000,
        categories: 8,
        zipf_exponent: 1.0,
        seed: 7,
        start: 1_672_531_200,
    }
}

fn setup() -> (PurchaseLog, Vec<ItemMeta>, EngineConfig, DataSummary) {
    let log = generate(&params());
    // One unavailable item (a "fee"): never recommended, never relevant.
    let mut meta = vec![ItemMeta::default(); log.items.len()];
    meta[0].available = false;
    let mut config = EngineConfig::default();
    config.als.factors = 8;
    config.als.iterations = 4;
    let data = DataSummary {
        fingerprint: "sha256:synthetic".into(),
        source: "synth".into(),
        customers: log.customers.len(),
        items: log.items.len(),
        ..DataSummary::default()
    };
    (log, meta, config, data)
}

/// Every baseline is there with every metric at every K, within [0, 1], and
/// the invariants that follow from the models' definitions hold.
fn check_models(r: &EvalReport) {
    let names: Vec<&str> = r.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(&names[..5], &BASELINES);
    for m in &r.models {
        for &k in &r.ks {
            for metric in ["recall", "ndcg", "hit_rate", "map"] {
                for view in ["", "_repeat", "_new"] {
                    let key = format!("{metric}{view}@{k}");
                    let v = m.metrics.get(&key).unwrap_or_else(|| {
                        panic!("{} lacks {key}", m.model);
                    });
                    assert!((0.0..=1.0).contains(v), "{} {key} = {v}", m.model);
                }
            }
            let cov = m.metrics[&format!("coverage@{k}")];
            assert!(cov > 0.0 && cov <= 1.0, "{} coverage {cov}", m.model);
        }
    }
    for &k in &r.ks {
        let get = |m: &str, metric: &str| r.get(m, &format!("{metric}@{k}")).unwrap();
        // Own items only: a new item is never found.
        assert_eq!(get("p_topfreq", "recall_new"), 0.0);
        // GP-TopFreq's list starts with P-TopFreq's: it finds at least as much.
        for metric in ["recall", "hit_rate", "recall_repeat"] {
            assert!(get("gp_topfreq", metric) >= get("p_topfreq", metric));
        }
        // One list for everybody: coverage is K over the catalog.
        let pop_cov = get("popularity", "coverage");
        assert!((pop_cov - k as f64 / r.catalog_items as f64).abs() < 1e-12);
    }
    let (k1, k2) = (r.ks[0], r.ks[1]);
    for m in &r.models {
        assert!(m.metrics[&format!("recall@{k1}")] <= m.metrics[&format!("recall@{k2}")]);
    }
}

fn check_json(r: &EvalReport) {
    let json = serde_json::to_value(r).unwrap();
    for field in [
        "cutoff",
        "split",
        "validation",
        "ks",
        "train_purchases",
        "test_purchases",
        "customers_scored",
        "customers_in_test",
        "catalog_items",
        "data_fingerprint",
        "data",
        "config",
        "seed",
        "models",
    ] {
        assert!(json.get(field).is_some(), "no {field} in the JSON report");
    }
    assert_eq!(json["seed"], 42);
    assert_eq!(json["models"][0]["model"], "popularity");
    assert!(json["models"][4]["metrics"]["recall@10"].is_f64());
    // Every model against every other (never itself), with a finite gain and an ordered interval.
    let n_models = r.models.len();
    for m in json["models"].as_array().unwrap() {
        let gains = m["gains"].as_object().expect("gains per model");
        for metric in ["recall@10", "ndcg@10", "recall@20", "ndcg@20"] {
            let row = gains[metric].as_object().unwrap();
            assert!(row.len() < n_models && !row.contains_key(m["model"].as_str().unwrap()));
            for g in row.values() {
                let [gain, low, high] = ["gain", "low", "high"].map(|k| g[k].as_f64().unwrap());
                assert!(gain.is_finite() && low.is_finite() && low <= high, "{g}");
            }
        }
    }
    // The best model against the second best, in the text table.
    let best = encore_training::evaluate::best_against_second(&r.models, &r.ks);
    assert_eq!(best.len(), 4);
    let text = r.table();
    for (metric, a, b, _) in &best {
        assert!(
            text.contains(&format!("{metric:<10} {} vs {}", a.model, b.model)),
            "{text}"
        );
        assert!(a.metrics[metric] >= b.metrics[metric]);
    }
}

fn check_html(r: &EvalReport, path: &std::path::Path) {
    std::fs::write(path, html::render(r)).unwrap();
    let page = std::fs::read_to_string(path).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    // Self-contained: no script, no external resource.
    for banned in ["<script", "src=", "href=", "<link", "@import"] {
        assert!(!page.contains(banned), "the page holds {banned}");
    }
    // Four plots, and the reliability chart of the customer section.
    let plots = 4 + usize::from(
        r.customers
            .as_ref()
            .is_some_and(|h| !h.buying.reliability.is_empty()),
    );
    assert_eq!(page.matches("<svg").count(), plots);
    assert_eq!(page.matches("</svg>").count(), plots);
    assert!(page.contains("<h2>Customer models</h2>"));
    if r.customers.is_some() {
        assert!(page.contains("Replenishment due date"));
    } else {
        assert!(page.contains("Skipped: the next-basket split"));
    }
    for needle in [
        "sha256:synthetic",
        "Recall@K",
        "NDCG@K",
        "Catalog coverage",
        "Validation split",
        &html::escape(&r.split.description),
        "&quot;factors&quot;: 8",
        "95 % paired bootstrap",
    ] {
        assert!(page.contains(needle), "the page lacks {needle}");
    }
    for m in BASELINES {
        assert!(page.contains(m));
    }
}

#[test]
fn time_split_report() {
    let (log, meta, config, data) = setup();
    let cutoff = params().start + 300 * DAY;
    let options = EvalOptions {
        split: Split::Time { cutoff, end: None },
        validation_days: 30.0,
        ks: vec![10, 20],
        score_validation: false,
    };
    let r = evaluate_with(
        &log,
        &meta,
        &config,
        &data,
        &options,
        &Registry::baselines(),
        None,
    )
    .unwrap();
    println!("{}", r.table());

    // Counts, recomputed independently.
    let s = &r.split;
    assert_eq!(s.kind, "time");
    assert_eq!(r.cutoff, format_timestamp(cutoff));
    let before = log.purchases.iter().filter(|p| p.time < cutoff).count();
    assert_eq!(s.train_purchases, before);
    assert_eq!(s.test_purchases, log.purchases.len() - before);
    assert_eq!(s.left_out_purchases, 0);
    let buyers = |f: &dyn Fn(i64) -> bool| -> HashSet<u32> {
        log.purchases
            .iter()
            .filter(|p| f(p.time) && p.quantity > 0.0 && p.item.0 != 0)
            .map(|p| p.customer.0)
            .collect()
    };
    let (b, a) = (buyers(&|t| t < cutoff), buyers(&|t| t >= cutoff));
    assert_eq!(s.customers_scored, b.intersection(&a).count());
    assert!(s.customers_scored > 50);
    assert!(s.customers_eligible >= s.customers_scored);
    assert!(s.customers_with_repeat <= s.customers_scored);
    assert!(s.customers_with_new <= s.customers_scored);
    assert!(s.customers_with_repeat + s.customers_with_new >= s.customers_scored);
    assert_eq!(r.customers_scored, s.customers_scored);

    // The validation split ends where the test targets begin.
    let v = &r.validation.split;
    assert_eq!(
        v.cutoff.as_deref(),
        Some(&*format_timestamp(cutoff - 30 * DAY))
    );
    assert_eq!(v.end.as_deref(), Some(&*format_timestamp(cutoff)));
    assert_eq!(r.validation.days, Some(30.0));
    assert!(r.validation.models.is_none());
    assert!(v.targets_to.as_deref().unwrap() < r.cutoff.as_str());

    // The customer models at the cutoff: every profiled customer (a
    // purchase before the cutoff) is ranked, and every buyer after it
    // who was profiled is a date case.
    let h = r
        .customers
        .as_ref()
        .expect("a customer section with the time split");
    assert!(r.customers_skipped.is_none());
    assert_eq!(h.cutoff, cutoff);
    let profiled: HashSet<u32> = log
        .purchases
        .iter()
        .filter(|p| p.time < cutoff && p.quantity > 0.0)
        .map(|p| p.customer.0)
        .collect();
    assert_eq!(h.customers, profiled.len());
    let after: HashSet<u32> = log
        .purchases
        .iter()
        .filter(|p| p.time >= cutoff && p.quantity > 0.0)
        .map(|p| p.customer.0)
        .collect();
    let t = &h.next_purchase;
    assert_eq!(t.bought_after, profiled.intersection(&after).count());
    assert_eq!(
        t.single_occasion + t.no_encore_date + t.measured,
        t.bought_after
    );
    assert!(r.table().contains("next purchase date (customers)"));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["customers"]["next_purchase"]["bought_after"],
        t.bought_after
    );

    check_models(&r);
    check_json(&r);
    let dir = tempfile::tempdir().unwrap();
    check_html(&r, &dir.path().join("eval.html"));
}

#[test]
fn next_basket_report() {
    let (log, meta, config, data) = setup();
    let options = EvalOptions {
        split: Split::NextBasket { skip_last: 0 },
        validation_days: 30.0,
        ks: vec![10, 20],
        score_validation: true,
    };
    let registry = Registry::baselines().with("first_item", "always the first item", |_| {
        Ok(list_fn(|_, k| (0..k as u32).collect()))
    });
    let r = evaluate_with(&log, &meta, &config, &data, &options, &registry, None).unwrap();
    println!("{}", r.table());

    // Orders per customer (the synthetic log has no returns), and each last order.
    let mut orders: HashMap<u32, Vec<(i64, u32)>> = HashMap::new();
    for p in &log.purchases {
        orders
            .entry(p.customer.0)
            .or_default()
            .push((p.time, p.order.0));
    }
    let mut last: HashSet<u32> = HashSet::new();
    let mut second: HashSet<u32> = HashSet::new();
    let mut eligible = 0;
    let mut eligible_validation = 0;
    for o in orders.values_mut() {
        o.sort_unstable();
        o.dedup();
        last.insert(o[o.len() - 1].1);
        if o.len() >= 2 {
            eligible += 1;
            second.insert(o[o.len() - 2].1);
        }
        eligible_validation += usize::from(o.len() >= 3);
    }
    let s = &r.split;
    assert_eq!(s.kind, "next_basket");
    assert_eq!(s.cutoff, None);
    assert_eq!(s.customers_eligible, eligible);
    let target_lines = log
        .purchases
        .iter()
        .filter(|p| last.contains(&p.order.0))
        .count();
    assert_eq!(s.test_purchases, target_lines);
    assert_eq!(s.train_purchases, log.purchases.len() - target_lines);
    assert_eq!(s.left_out_purchases, 0);
    assert!(s.customers_scored > 50 && s.customers_scored <= eligible);

    // Validation: second-to-last orders, the last ones left out.
    let v = &r.validation.split;
    assert_eq!(v.customers_eligible, eligible_validation);
    assert_eq!(v.left_out_purchases, target_lines);
    assert_eq!(
        v.test_purchases,
        log.purchases
            .iter()
            .filter(|p| second.contains(&p.order.0))
            .count()
    );
    assert_eq!(r.validation.days, None);
    assert!(r.customers.is_none());
    assert!(
        r.customers_skipped
            .as_deref()
            .unwrap()
            .contains("next-basket")
    );
    assert!(r.table().contains("customer models: skipped"));
    let vm = r.validation.models.as_ref().expect("validation scored");
    assert_eq!(vm.len(), 6);

    check_models(&r);
    // The added model is scored after the baselines. It is asked for the
    // largest K (20 items); item 0 is unavailable and dropped, so its top 10
    // are items 1..=10 for everybody.
    assert_eq!(r.models[5].model, "first_item");
    let cov = r.get("first_item", "coverage@10").unwrap();
    assert!((cov - 10.0 / r.catalog_items as f64).abs() < 1e-12);
    check_json(&r);
    let dir = tempfile::tempdir().unwrap();
    check_html(&r, &dir.path().join("eval.html"));
}

/// What a tuner does: score on the validation split only, and get the same
/// figures as the full run's validation scores.
#[test]
fn validation_split_for_tuning() {
    let (log, meta, config, data) = setup();
    let test = Split::Time {
        cutoff: params().start + 300 * DAY,
        end: None,
    };
    let validation = test.validation(30.0);
    let registry = Registry::baselines().only(&["p_topfreq".into()]).unwrap();
    let v = evaluate_split(
        &log,
        &meta,
        &config,
        &data,
        &validation,
        &[10, 20],
        &registry,
        None,
    )
    .unwrap();
    assert_eq!(v.models.len(), 1);
    let prepared = prepare_split(&log, &meta, &validation);
    assert_eq!(v.split, prepared.summary);
    // Nothing at or after the test cutoff is trained on or scored.
    let Split::Time { cutoff, .. } = test else {
        unreachable!()
    };
    assert!(prepared.train.purchases.iter().all(|p| p.time < cutoff));
    assert!(prepared.test.purchases.iter().all(|p| p.time < cutoff));
    // Repeat targets are exactly those bought (net) before the validation cutoff.
    let history = InteractionMatrix::from_log(&prepared.train, &Weighting::default()).matrix;
    for t in &prepared.targets {
        for i in &t.repeat {
            assert!(history.get(t.customer as usize, *i) > 0.0);
        }
        for i in &t.new {
            assert_eq!(history.get(t.customer as usize, *i), 0.0);
        }
        assert!(!t.relevant.contains(&0), "an unavailable item is relevant");
    }
    assert!(Registry::baselines().only(&["nope".into()]).is_err());
}

/// When the re-ranker cannot train (here: the training part spans 20 days,
/// less than its 30-day label window), its row scores TIFU-KNN + ALS, as a
/// fitted model would serve, instead of failing the whole evaluation.
#[test]
fn ranker_falls_back_to_tifu_als_when_it_cannot_train() {
    let mut log = PurchaseLog::default();
    let start = 1_672_531_200;
    for c in 0..30 {
        for j in 0..3 {
            let t = start + (j * 9 + c % 3) * DAY;
            let order = format!("o{c}_{j}");
            let customer = format!("c{c}");
            log.push(&order, &customer, &format!("i{}", c % 7), t, 1.0, 1.0);
            log.push(
                &order,
                &customer,
                &format!("i{}", (c + j) % 11),
                t,
                1.0,
                1.0,
            );
        }
    }
    let meta = vec![ItemMeta::default(); log.items.len()];
    let mut config = EngineConfig::default();
    config.als.factors = 4;
    config.als.iterations = 2;
    let split = Split::Time {
        cutoff: start + 18 * DAY,
        end: None,
    };
    let registry = Registry::standard()
        .only(&["ranker".into(), "tifu_als".into()])
        .unwrap();
    let run = |config: &EngineConfig| {
        evaluate_split(
            &log,
            &meta,
            config,
            &DataSummary::default(),
            &split,
            &[5],
            &registry,
            None,
        )
    };
    let eval = run(&config).unwrap();
    let metrics = |name: &str| {
        eval.models
            .iter()
            .find(|m| m.model == name)
            .unwrap()
            .metrics
            .clone()
    };
    assert!(eval.split.customers_scored > 0);
    assert_eq!(metrics("ranker"), metrics("tifu_als"));
    // A bad setting is still an error, not a fallback.
    config.ranker.label_cuts = 0;
    assert!(run(&config).is_err());
}

/// The fit's holdout check scores the baselines and the "for you" model the
/// configuration serves, unless no repeat-aware lists are built.
#[test]
fn the_fit_scores_the_served_for_you_model() {
    use encore_model::pipeline::ForYouModel;
    let names = |config: &EngineConfig, customers: usize| -> Vec<String> {
        Registry::for_fit(config, customers)
            .unwrap()
            .names()
            .map(str::to_owned)
            .collect()
    };
    let mut config = EngineConfig::default();
    let mut want: Vec<String> = BASELINES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names(&config, 1_000),
        [want.clone(), vec!["ranker".into()]].concat()
    );
    config.for_you.model = ForYouModel::TifuAls;
    assert_eq!(
        names(&config, 1_000),
        [want.clone(), vec!["tifu_als".into()]].concat()
    );
    // No cap by default; a configured one is honoured.
    assert_eq!(config.for_you.max_customers, None);
    assert_eq!(names(&config, 10_000_000).len(), want.len() + 1);
    config.for_you.max_customers = Some(5_000);
    assert_eq!(names(&config, 5_000).len(), want.len() + 1);
    assert_eq!(names(&config, 5_001), want);
    config.for_you.max_customers = None;
    config.for_you.repeat_aware = false;
    want.truncate(BASELINES.len());
    assert_eq!(names(&config, 1_000), want);
}
