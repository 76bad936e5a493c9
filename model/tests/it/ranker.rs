//! The learned "for you" re-ranker (`encore_model::cf::ranker`) on small
//! synthetic shops: what it learns, how it treats availability, that it is
//! deterministic, its errors, and that its inner split (the history handed
//! to `build` and the labels it counts) never reaches past the cut.

use encore_data::{Purchase, PurchaseLog};
use encore_model::cf::ranker::{
    BaseModels, FEATURE_NAMES, Learner, Ranker, RankerError, RankerParams, Signals,
};
use encore_model::learn::boosting::BoostingParams;
use encore_model::pipeline::{EngineConfig, ranker_base_models};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashSet};

const DAY: i64 = 86_400;
/// 2020-01-01: an arbitrary origin, so that no time is near zero.
const T0: i64 = 1_577_836_800;
const N_ONE_OFFS: usize = 20;

/// Small base models, quick in debug builds.
fn config() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.als.factors = 8;
    c.als.iterations = 4;
    c.repeat_aware.neighbours = 20;
    c
}

fn build(log: &PurchaseLog, scored: &[u32]) -> Result<BaseModels, String> {
    ranker_base_models(log, &config(), Some(scored)).map_err(|e| e.to_string())
}

fn next_order() -> RankerParams {
    RankerParams {
        label_days: 0.0,
        ..RankerParams::default()
    }
}

fn logistic(params: RankerParams) -> RankerParams {
    RankerParams {
        learner: Learner::Logistic,
        ..params
    }
}

fn all(_: u32) -> bool {
    true
}

fn item(log: &PurchaseLog, id: &str) -> u32 {
    log.items
        .get(id)
        .unwrap_or_else(|| panic!("item {id} in the log"))
}

/// Spacing of a customer's orders.
#[derive(Clone, Copy)]
enum Rhythm {
    /// Weekly orders, the last ones a few days apart at the end of the log.
    Weekly,
    /// Every 21 days over about half a year, the last order in the last 10
    /// days of the log (for the 30-day label window).
    Monthly,
}

/// Day of order `j` (of `n`) of customer `c`.
fn order_day(rhythm: Rhythm, c: usize, j: usize, n: usize) -> i64 {
    let back = (n - 1 - j) as i64;
    match rhythm {
        Rhythm::Weekly => 60 - (c % 5) as i64 - 7 * back,
        Rhythm::Monthly => 180 - (c % 10) as i64 - 21 * back,
    }
}

/// The staple shop: customer `c` buys its group's staple (`staple_a` for even
/// `c`, `staple_b` for odd `c`) in every order but one (order 1 of every
/// fifth customer), and one one-off item (`x00`..`x19`) per order, never the
/// same one-off twice. Customers have 4 to 7 orders.
fn staple_shop(n_customers: usize, rhythm: Rhythm) -> PurchaseLog {
    let mut log = PurchaseLog::default();
    // Fix the item indices: staples 0 and 1, one-offs 2..22.
    let mut first = true;
    for c in 0..n_customers {
        let n = 4 + c % 4;
        let staple = if c % 2 == 0 { "staple_a" } else { "staple_b" };
        for j in 0..n {
            let order = format!("o{c}_{j}");
            let customer = format!("c{c}");
            let t = T0 + order_day(rhythm, c, j, n) * DAY + (c as i64) * 60;
            if first {
                log.push("seed", "seed_customer", "staple_a", t, 1.0, 1.0);
                log.push("seed", "seed_customer", "staple_b", t, 1.0, 1.0);
                for x in 0..N_ONE_OFFS {
                    log.push("seed", "seed_customer", &format!("x{x:02}"), t, 1.0, 1.0);
                }
                first = false;
            }
            if !(c % 5 == 0 && j == 1) {
                log.push(&order, &customer, staple, t, 1.0, 2.0);
            }
            let one_off = (c * 7 + j * 3) % N_ONE_OFFS;
            log.push(
                &order,
                &customer,
                &format!("x{one_off:02}"),
                t + 5,
                1.0,
                3.0,
            );
        }
    }
    log
}

/// The novelty shop: nobody ever buys an item twice; customer `c` buys
/// `n` (3 to 6) different items, one per order, from 20.
fn novelty_shop(n_customers: usize) -> PurchaseLog {
    let mut log = PurchaseLog::default();
    for x in 0..N_ONE_OFFS {
        log.push("seed", "seed_customer", &format!("x{x:02}"), T0, 1.0, 1.0);
    }
    for c in 0..n_customers {
        let n = 3 + c % 4;
        for j in 0..n {
            let t = T0 + order_day(Rhythm::Weekly, c, j, n) * DAY + (c as i64) * 60;
            let x = (c * 7 + j * 3) % N_ONE_OFFS;
            log.push(
                &format!("o{c}_{j}"),
                &format!("c{c}"),
                &format!("x{x:02}"),
                t,
                1.0,
                1.0,
            );
        }
    }
    log
}

/// Base models fitted on the whole `log`, as the pipeline serves with.
fn full_models(log: &PurchaseLog) -> BaseModels {
    ranker_base_models(log, &config(), None).expect("base models")
}

fn signals<'a>(log: &'a PurchaseLog, base: &'a BaseModels, params: &RankerParams) -> Signals<'a> {
    let tifu = config().repeat_aware.fit(log).expect("tifu");
    Signals::new(log, tifu, &base.als, &base.copurchase, params)
}

/// Every customer's list, `k` items.
fn lists(
    ranker: &Ranker,
    signals: &Signals<'_>,
    n_customers: usize,
    k: usize,
    available: impl Fn(u32) -> bool + Copy,
) -> Vec<Vec<(u32, f32)>> {
    (0..n_customers as u32)
        .map(|c| ranker.recommend(signals, c, k, available))
        .collect()
}

/// At most `k` items, all available, no duplicates, probabilities in (0, 1),
/// best first.
fn check_list(list: &[(u32, f32)], k: usize, n_items: usize, available: impl Fn(u32) -> bool) {
    assert!(list.len() <= k, "{} items for k = {k}", list.len());
    let distinct: HashSet<u32> = list.iter().map(|&(i, _)| i).collect();
    assert_eq!(distinct.len(), list.len(), "duplicate item in {list:?}");
    for &(i, s) in list {
        assert!((i as usize) < n_items, "item {i} out of range");
        assert!(available(i), "unavailable item {i} listed");
        assert!(s > 0.0 && s < 1.0, "score {s} of item {i} outside (0, 1)");
    }
    for w in list.windows(2) {
        assert!(w[0].1 >= w[1].1, "not sorted: {list:?}");
    }
}

/// Items of each customer's orders, by order key (time of the earliest
/// positive line, order index), oldest first.
fn orders_by_customer(log: &PurchaseLog) -> Vec<Vec<BTreeSet<u32>>> {
    let mut orders: Vec<BTreeMap<(i64, u32), BTreeSet<u32>>> =
        vec![BTreeMap::new(); log.customers.len()];
    let mut order_time: BTreeMap<u32, i64> = BTreeMap::new();
    for p in log.purchases.iter().filter(|p| p.quantity > 0.0) {
        let t = order_time.entry(p.order.0).or_insert(p.time);
        *t = (*t).min(p.time);
    }
    for p in log.purchases.iter().filter(|p| p.quantity > 0.0) {
        orders[p.customer.idx()]
            .entry((order_time[&p.order.0], p.order.0))
            .or_default()
            .insert(p.item.0);
    }
    orders
        .into_iter()
        .map(|o| o.into_values().collect())
        .collect()
}

/// `(labelled customers, label items)` summed over the `cuts` inner splits,
/// computed independently of the ranker from the module docs.
fn expected_labels(log: &PurchaseLog, label_days: f64, cuts: usize) -> (usize, usize) {
    let (mut customers, mut items) = (0, 0);
    if label_days == 0.0 {
        for orders in orders_by_customer(log) {
            for skip in 0..cuts {
                if orders.len() >= skip + 2 {
                    customers += 1;
                    items += orders[orders.len() - 1 - skip].len();
                }
            }
        }
    } else {
        let end = log.time_range().unwrap().1;
        let window = (label_days * DAY as f64) as i64;
        for skip in 0..cuts as i64 {
            let label_end = end - window * skip;
            let cut = label_end - window;
            let mut history = vec![false; log.customers.len()];
            let mut labels = vec![BTreeSet::new(); log.customers.len()];
            for p in log.purchases.iter().filter(|p| p.quantity > 0.0) {
                if p.time <= cut {
                    history[p.customer.idx()] = true;
                } else if p.time <= label_end {
                    labels[p.customer.idx()].insert(p.item.0);
                }
            }
            for (h, l) in history.iter().zip(&labels) {
                if *h && !l.is_empty() {
                    customers += 1;
                    items += l.len();
                }
            }
        }
    }
    (customers, items)
}

/// The history logs `fit` hands to `build`, in call order.
fn fit_recording(
    params: &RankerParams,
    log: &PurchaseLog,
) -> (Result<Ranker, RankerError>, Vec<PurchaseLog>) {
    let seen = RefCell::new(Vec::new());
    let fitted = params.fit(log, all, |history, scored| {
        seen.borrow_mut().push(history.clone());
        build(history, scored)
    });
    (fitted, seen.into_inner())
}

type Line = (u32, u32, u32, i64);

fn line(p: &Purchase) -> Line {
    (p.order.0, p.customer.0, p.item.0, p.time)
}

// ---------------------------------------------------------------------------
// 1. Learning a hidden pattern
// ---------------------------------------------------------------------------

/// Fits on the staple shop and checks every customer's list: the own staple
/// first, ahead of the one-offs the customer bought once.
fn staple_first(rhythm: Rhythm, params: RankerParams) {
    let n_customers = 80;
    let log = staple_shop(n_customers, rhythm);
    let n_items = log.items.len();
    assert_eq!(n_items, 2 + N_ONE_OFFS);
    let ranker = params.fit(&log, all, build).expect("fit");

    // Every item of the small catalog is a candidate of every labelled
    // customer (candidate budgets exceed the catalog), so the rows and the
    // positives are known exactly.
    let (customers, positives) = expected_labels(&log, params.label_days, params.label_cuts);
    assert_eq!(ranker.training_customers, customers);
    assert_eq!(ranker.training_rows, customers * n_items);
    assert_eq!(ranker.training_positives, positives);
    assert!(ranker.importance().iter().all(|w| w.1.is_finite()));
    match params.learner {
        Learner::Logistic => {
            assert_eq!(ranker.learner(), "logistic");
            assert!(ranker.intercept().is_some_and(f64::is_finite));
        }
        Learner::BoostedTrees => {
            assert_eq!(ranker.learner(), "boosted_trees");
            assert_eq!(ranker.intercept(), None);
        }
    }

    let base = full_models(&log);
    let signals = signals(&log, &base, &params);
    let (staple_a, staple_b) = (item(&log, "staple_a"), item(&log, "staple_b"));
    for c in 0..n_customers {
        let ci = log.customers.get(&format!("c{c}")).unwrap();
        let list = ranker.recommend(&signals, ci, 5, all);
        check_list(&list, 5, n_items, all);
        assert_eq!(list.len(), 5, "customer c{c}: {list:?}");
        let staple = if c % 2 == 0 { staple_a } else { staple_b };
        assert_eq!(
            list[0].0,
            staple,
            "customer c{c} ({}): the staple must come first: {list:?}",
            rhythm_name(rhythm)
        );
        // Strictly ahead of every one-off the customer bought once.
        let bought_once: HashSet<u32> = log
            .purchases
            .iter()
            .filter(|p| p.customer.0 == ci && p.item.0 != staple)
            .map(|p| p.item.0)
            .collect();
        let full = ranker.recommend(&signals, ci, n_items, all);
        check_list(&full, n_items, n_items, all);
        let staple_score = full.iter().find(|e| e.0 == staple).unwrap().1;
        for &(i, s) in &full {
            if bought_once.contains(&i) {
                assert!(
                    s < staple_score,
                    "c{c}: one-off {i} {s} >= staple {staple_score}"
                );
            }
        }
        assert!(
            staple_score > 0.5,
            "c{c}: staple probability {staple_score}"
        );
    }
}

fn rhythm_name(r: Rhythm) -> &'static str {
    match r {
        Rhythm::Weekly => "weekly",
        Rhythm::Monthly => "monthly",
    }
}

#[test]
fn learns_the_staple_next_order_mode() {
    staple_first(Rhythm::Weekly, next_order());
}

#[test]
fn learns_the_staple_next_order_mode_logistic() {
    staple_first(Rhythm::Weekly, logistic(next_order()));
}

#[test]
fn learns_the_staple_next_order_mode_one_cut() {
    let one = RankerParams {
        label_cuts: 1,
        ..next_order()
    };
    staple_first(Rhythm::Weekly, one.clone());
    staple_first(Rhythm::Weekly, logistic(one));
}

#[test]
fn learns_the_staple_30_day_window_mode() {
    let params = RankerParams::default();
    assert_eq!(params.label_days, 30.0);
    assert_eq!(params.label_cuts, 2);
    assert_eq!(params.learner, Learner::BoostedTrees);
    staple_first(Rhythm::Monthly, params);
}

#[test]
fn learns_the_staple_30_day_window_mode_logistic() {
    staple_first(Rhythm::Monthly, logistic(RankerParams::default()));
}

/// In a shop where nobody buys anything twice the ranker must learn the
/// opposite of the staple shop: what the customer already bought comes last,
/// although TIFU-KNN (the first candidate source) ranks it first.
#[test]
fn learns_that_nothing_is_bought_twice() {
    novelty(next_order());
}

#[test]
fn learns_that_nothing_is_bought_twice_logistic() {
    let ranker = novelty(logistic(next_order()));
    // The "bought before" family of features pushes down.
    let w: BTreeMap<&str, f64> = ranker.importance().into_iter().collect();
    assert!(
        w["bought_before"] + w["ln_orders_with_item"] + w["share_of_orders_with_item"] < 0.0,
        "{w:?}"
    );
}

fn novelty(params: RankerParams) -> Ranker {
    let n_customers = 80;
    let log = novelty_shop(n_customers);
    let ranker = params.fit(&log, all, build).expect("fit");
    let (customers, positives) = expected_labels(&log, 0.0, params.label_cuts);
    assert_eq!(ranker.training_customers, customers);
    assert_eq!(ranker.training_positives, positives);

    let base = full_models(&log);
    let signals = signals(&log, &base, &params);
    let n_items = log.items.len();
    // Sum and count of probabilities of (never bought, bought) items.
    let (mut sums, mut counts) = ([0f64; 2], [0usize; 2]);
    let mut bought_first = 0;
    for c in 0..n_customers {
        let ci = log.customers.get(&format!("c{c}")).unwrap();
        let bought: HashSet<u32> = log
            .purchases
            .iter()
            .filter(|p| p.customer.0 == ci)
            .map(|p| p.item.0)
            .collect();
        let full = ranker.recommend(&signals, ci, n_items, all);
        check_list(&full, n_items, n_items, all);
        assert_eq!(full.len(), n_items, "every item is a candidate");
        let first_bought = full.iter().position(|e| bought.contains(&e.0)).unwrap();
        // Neither learner is monotone in "bought before": trees split on the
        // neighbour, ALS and recent-buyer scores, whose values drift from the
        // inner history to the whole log, and the logistic regression also
        // weighs the TIFU rank features, which put a bought item with a
        // faded TIFU score among never-bought ones. Allow a few misses at
        // the head.
        bought_first += usize::from(first_bought == 0);
        for &(i, p) in &full {
            let k = usize::from(bought.contains(&i));
            sums[k] += f64::from(p);
            counts[k] += 1;
        }
    }
    assert!(
        bought_first * 10 <= n_customers,
        "{bought_first} of {n_customers} customers get a bought item first"
    );
    // And over all customers, bought items score lower on average.
    let (new, old) = (sums[0] / counts[0] as f64, sums[1] / counts[1] as f64);
    assert!(old < new, "mean probability: bought {old}, new {new}");
    ranker
}

#[test]
fn importance_covers_every_feature_largest_first() {
    let log = staple_shop(60, Rhythm::Weekly);
    for params in [next_order(), logistic(next_order())] {
        let ranker = params.fit(&log, all, build).expect("fit");
        let named = ranker.importance();
        assert_eq!(named.len(), FEATURE_NAMES.len());
        let names: BTreeSet<&str> = named.iter().map(|e| e.0).collect();
        assert_eq!(names, FEATURE_NAMES.iter().copied().collect());
        for w in named.windows(2) {
            assert!(w[0].1.abs() >= w[1].1.abs(), "{named:?}");
        }
        assert!(named[0].1 != 0.0, "{named:?}");
        if params.learner == Learner::BoostedTrees {
            // Shares of the splits.
            assert!(named.iter().all(|e| e.1 >= 0.0), "{named:?}");
            let total: f64 = named.iter().map(|e| e.1).sum();
            assert!((total - 1.0).abs() < 1e-9, "{total}");
        }
    }
}

#[test]
fn list_length_follows_k() {
    let log = staple_shop(60, Rhythm::Weekly);
    let params = next_order();
    let ranker = params.fit(&log, all, build).expect("fit");
    let base = full_models(&log);
    let signals = signals(&log, &base, &params);
    let n_items = log.items.len();
    let c = log.customers.get("c3").unwrap();
    assert!(ranker.recommend(&signals, c, 0, all).is_empty());
    for k in [1, 3, 10] {
        let list = ranker.recommend(&signals, c, k, all);
        assert_eq!(list.len(), k);
        check_list(&list, k, n_items, all);
    }
    // More than the catalog: every candidate once, the catalog here.
    let list = ranker.recommend(&signals, c, 1000, all);
    assert_eq!(list.len(), n_items);
    check_list(&list, 1000, n_items, all);
    // A shorter list is the head of a longer one.
    assert_eq!(ranker.recommend(&signals, c, 3, all)[..], list[..3]);
}

// ---------------------------------------------------------------------------
// 2. Availability
// ---------------------------------------------------------------------------

#[test]
fn unavailable_items_are_never_listed() {
    let n_customers = 60;
    let log = staple_shop(n_customers, Rhythm::Weekly);
    let staple_a = item(&log, "staple_a");
    let x05 = item(&log, "x05");
    let available = move |i: u32| i != staple_a && i != x05;
    for params in [next_order(), logistic(next_order())] {
        unavailable(&log, n_customers, available, &params);
    }
}

fn unavailable(
    log: &PurchaseLog,
    n_customers: usize,
    available: impl Fn(u32) -> bool + Copy + Sync,
    params: &RankerParams,
) {
    let n_items = log.items.len();
    let staple_a = item(log, "staple_a");

    // Unavailable in training: no row for those items.
    let ranker = params.fit(log, available, build).expect("fit");
    assert_eq!(
        ranker.training_rows,
        ranker.training_customers * (n_items - 2)
    );

    let base = full_models(log);
    let signals = signals(log, &base, params);
    for list in lists(&ranker, &signals, n_customers + 1, n_items, available) {
        check_list(&list, n_items, n_items, available);
    }
    // Customers of staple_a still get a full list, without their staple.
    let c0 = log.customers.get("c0").unwrap();
    let list = ranker.recommend(&signals, c0, 5, available);
    assert_eq!(list.len(), 5);
    assert!(list.iter().all(|e| e.0 != staple_a));

    // A ranker trained with everything available respects the filter given
    // at serving time, and drops exactly the filtered items.
    let open = params.fit(log, all, build).expect("fit");
    for c in 0..n_customers as u32 {
        let filtered = open.recommend(&signals, c, n_items, available);
        check_list(&filtered, n_items, n_items, available);
        let unfiltered: Vec<(u32, f32)> = open
            .recommend(&signals, c, n_items, all)
            .into_iter()
            .filter(|e| available(e.0))
            .collect();
        assert_eq!(filtered, unfiltered, "customer {c}");
    }
    // Nothing available: nothing listed.
    assert!(open.recommend(&signals, c0, 10, |_| false).is_empty());
}

// ---------------------------------------------------------------------------
// 3. Determinism
// ---------------------------------------------------------------------------

#[test]
fn fitting_twice_gives_the_same_ranker_and_lists() {
    for (rhythm, params) in [
        (Rhythm::Weekly, next_order()),
        (Rhythm::Monthly, RankerParams::default()),
        (Rhythm::Weekly, logistic(next_order())),
        (Rhythm::Monthly, logistic(RankerParams::default())),
    ] {
        let n_customers = 60;
        let log = staple_shop(n_customers, rhythm);
        let a = params.fit(&log, all, build).expect("fit");
        let b = params.fit(&log, all, build).expect("fit");
        assert_eq!(a, b);
        assert_eq!(a.params, params);
        let bits =
            |r: &Ranker| -> Vec<u64> { r.importance().iter().map(|e| e.1.to_bits()).collect() };
        assert_eq!(bits(&a), bits(&b));
        let (base_a, base_b) = (full_models(&log), full_models(&log));
        let (sa, sb) = (
            signals(&log, &base_a, &params),
            signals(&log, &base_b, &params),
        );
        let la = lists(&a, &sa, n_customers, 10, all);
        let lb = lists(&b, &sb, n_customers, 10, all);
        assert_eq!(la, lb);
        assert!(la.iter().all(|l| l.len() == 10));
    }
}

// ---------------------------------------------------------------------------
// 4. Errors
// ---------------------------------------------------------------------------

#[test]
fn invalid_params_are_named_and_nothing_is_built() {
    let log = staple_shop(20, Rhythm::Weekly);
    let d = RankerParams::default;
    let b = BoostingParams::default;
    let boosting = |boosting| RankerParams { boosting, ..d() };
    let cases: Vec<(RankerParams, &str)> = vec![
        (RankerParams { l2: 0.0, ..d() }, "l2"),
        (RankerParams { l2: -1.0, ..d() }, "l2"),
        (
            RankerParams {
                l2: f64::NAN,
                ..d()
            },
            "l2",
        ),
        (
            RankerParams {
                l2: f64::INFINITY,
                ..d()
            },
            "l2",
        ),
        (
            RankerParams {
                label_cuts: 0,
                ..d()
            },
            "label_cuts",
        ),
        (
            RankerParams {
                label_days: -1.0,
                ..d()
            },
            "label_days",
        ),
        (
            RankerParams {
                label_days: f64::NAN,
                ..d()
            },
            "label_days",
        ),
        (
            RankerParams {
                label_days: f64::INFINITY,
                ..d()
            },
            "label_days",
        ),
        (
            RankerParams {
                recent_days: 0.0,
                ..d()
            },
            "recent_days",
        ),
        (
            RankerParams {
                recent_days: f64::NAN,
                ..d()
            },
            "recent_days",
        ),
        (
            RankerParams {
                max_iterations: 0,
                ..d()
            },
            "max_iterations",
        ),
        (
            RankerParams {
                max_training_customers: 0,
                ..d()
            },
            "max_training_customers",
        ),
        (
            RankerParams {
                candidates_repeat: 0,
                candidates_new: 0,
                candidates_popular: 0,
                ..d()
            },
            "candidates_repeat",
        ),
        // The boosted trees' own settings.
        (
            boosting(BoostingParams { trees: 0, ..b() }),
            "boosting.trees",
        ),
        (
            boosting(BoostingParams { depth: 0, ..b() }),
            "boosting.depth",
        ),
        (
            boosting(BoostingParams { depth: 13, ..b() }),
            "boosting.depth",
        ),
        (
            boosting(BoostingParams {
                learning_rate: 0.0,
                ..b()
            }),
            "boosting.learning_rate",
        ),
        (
            boosting(BoostingParams {
                learning_rate: 1.5,
                ..b()
            }),
            "boosting.learning_rate",
        ),
        (
            boosting(BoostingParams {
                learning_rate: f64::NAN,
                ..b()
            }),
            "boosting.learning_rate",
        ),
        (boosting(BoostingParams { bins: 1, ..b() }), "boosting.bins"),
        (
            boosting(BoostingParams { bins: 257, ..b() }),
            "boosting.bins",
        ),
        (
            boosting(BoostingParams {
                min_leaf_hessian: -1.0,
                ..b()
            }),
            "boosting.min_leaf_hessian",
        ),
        (
            boosting(BoostingParams {
                l2: f64::NAN,
                ..b()
            }),
            "boosting.l2",
        ),
        (
            boosting(BoostingParams {
                l2: 0.0,
                min_leaf_hessian: 0.0,
                ..b()
            }),
            "boosting.l2",
        ),
    ];
    for (params, field) in cases {
        assert!(params.check().is_err(), "{field}");
        let calls = Cell::new(0);
        let result = params.fit(&log, all, |h, scored| {
            calls.set(calls.get() + 1);
            build(h, scored)
        });
        match result {
            Err(e @ RankerError::InvalidParam { name, .. }) => {
                assert_eq!(name, field, "{e}");
                assert!(e.to_string().contains(field), "{e}");
            }
            other => panic!("{field}: expected InvalidParam, got {other:?}"),
        }
        assert_eq!(
            calls.get(),
            0,
            "{field}: base models built for invalid params"
        );
    }
    // The edges that are valid.
    for params in [
        RankerParams {
            label_days: 0.0,
            ..d()
        },
        RankerParams {
            candidates_new: 0,
            candidates_popular: 0,
            ..d()
        },
        boosting(BoostingParams {
            depth: 12,
            learning_rate: 1.0,
            bins: 256,
            l2: 0.0,
            min_leaf_hessian: 0.1,
            ..b()
        }),
        boosting(BoostingParams {
            l2: 0.1,
            min_leaf_hessian: 0.0,
            ..b()
        }),
        boosting(BoostingParams {
            depth: 1,
            bins: 2,
            ..b()
        }),
        RankerParams::default(),
    ] {
        params.check().expect("valid");
    }
}

/// Every customer has exactly one order: next-order mode has nothing to
/// label, and no base model is built.
#[test]
fn one_order_per_customer_gives_no_labels_in_next_order_mode() {
    let mut log = PurchaseLog::default();
    for c in 0..50 {
        let t = T0 + (c as i64) * DAY;
        log.push(&format!("o{c}"), &format!("c{c}"), "staple", t, 1.0, 1.0);
        log.push(
            &format!("o{c}"),
            &format!("c{c}"),
            &format!("x{}", c % 10),
            t,
            1.0,
            1.0,
        );
        // A return in a later order does not make a second order.
        if c % 3 == 0 {
            log.push(
                &format!("r{c}"),
                &format!("c{c}"),
                "staple",
                t + DAY,
                -1.0,
                1.0,
            );
        }
    }
    for cuts in [1, 2] {
        let params = RankerParams {
            label_cuts: cuts,
            ..next_order()
        };
        let (result, built) = fit_recording(&params, &log);
        match result {
            Err(e @ RankerError::NoLabels(_)) => {
                assert!(e.to_string().contains("two orders"), "{e}");
            }
            other => panic!("expected NoLabels, got {other:?}"),
        }
        assert!(built.is_empty());
    }
    // The same log in window mode: customers in the last 30 days have their
    // only order there, so no history either.
    let (result, _) = fit_recording(&RankerParams::default(), &log);
    assert!(
        matches!(result, Err(RankerError::NoLabels(_))),
        "{result:?}"
    );
}

/// Window mode (30 days): nobody who buys inside the label window has any
/// purchase before it.
#[test]
fn no_history_before_the_window_gives_no_labels() {
    // (a) The whole log spans less than the window.
    let mut log = PurchaseLog::default();
    for c in 0..40 {
        for j in 0..3 {
            let t = T0 + (c % 7 + 7 * j) as i64 * DAY;
            log.push(
                &format!("o{c}_{j}"),
                &format!("c{c}"),
                "staple",
                t,
                1.0,
                1.0,
            );
            log.push(
                &format!("o{c}_{j}"),
                &format!("c{c}"),
                &format!("x{}", (c + j) % 10),
                t,
                1.0,
                1.0,
            );
        }
    }
    let (result, _) = fit_recording(&RankerParams::default(), &log);
    match result {
        Err(e @ RankerError::NoLabels(_)) => assert!(e.to_string().contains("30 days"), "{e}"),
        other => panic!("expected NoLabels, got {other:?}"),
    }
    // ... while next-order mode learns from the same log.
    next_order().fit(&log, all, build).expect("next-order fit");

    // (b) Old customers bought only long ago, new ones only in the window.
    let mut log = PurchaseLog::default();
    for c in 0..40 {
        let (who, day) = if c % 2 == 0 {
            ("old", c % 5)
        } else {
            ("new", 200 + c % 5)
        };
        for j in 0..3 {
            let t = T0 + (day + j) as i64 * DAY;
            let customer = format!("{who}{c}");
            log.push(&format!("o{c}_{j}"), &customer, "staple", t, 1.0, 1.0);
            log.push(
                &format!("o{c}_{j}"),
                &customer,
                &format!("x{}", (c + j) % 10),
                t,
                1.0,
                1.0,
            );
        }
    }
    for cuts in [1, 2, 3] {
        let params = RankerParams {
            label_cuts: cuts,
            ..RankerParams::default()
        };
        let (result, _) = fit_recording(&params, &log);
        assert!(
            matches!(result, Err(RankerError::NoLabels(_))),
            "{cuts}: {result:?}"
        );
    }

    // (c) Returns in the window are no labels.
    let mut log = staple_shop(20, Rhythm::Weekly);
    let end = log.time_range().unwrap().1;
    log.purchases.retain(|p| p.time <= end - 40 * DAY);
    let late = end + 100 * DAY;
    for c in 0..20 {
        log.push(
            &format!("r{c}"),
            &format!("c{c}"),
            "staple_a",
            late,
            -1.0,
            1.0,
        );
    }
    let (result, built) = fit_recording(
        &RankerParams {
            label_cuts: 1,
            ..RankerParams::default()
        },
        &log,
    );
    assert!(
        matches!(result, Err(RankerError::NoLabels(_))),
        "{result:?}"
    );
    assert!(built.is_empty());
}

/// Every label is an item nobody may be offered: all rows are negative.
#[test]
fn labels_only_of_unavailable_items_give_one_class() {
    let mut log = PurchaseLog::default();
    for c in 0..30 {
        for j in 0..3 {
            let t = T0 + (c + 10 * j) as i64 * DAY;
            log.push(&format!("o{c}_{j}"), &format!("c{c}"), "gone", t, 1.0, 1.0);
        }
        // One-order customers of other items: candidates, never labels.
        log.push(
            &format!("p{c}"),
            &format!("d{c}"),
            &format!("x{}", c % 8),
            T0 + 50 * DAY,
            1.0,
            1.0,
        );
    }
    let gone = item(&log, "gone");
    for params in [next_order(), logistic(next_order())] {
        let result = params.fit(&log, move |i| i != gone, build);
        assert!(
            matches!(result, Err(RankerError::OneClass("negative"))),
            "{result:?}"
        );
        // With the item available the same log trains.
        params.fit(&log, all, build).expect("fit");
    }
}

#[test]
fn a_failing_build_is_reported() {
    let log = staple_shop(20, Rhythm::Weekly);
    let result = next_order().fit(&log, all, |_, _| Err("boom".to_string()));
    match result {
        Err(RankerError::Base(m)) => assert_eq!(m, "boom"),
        other => panic!("expected Base, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 5. The inner split
// ---------------------------------------------------------------------------

/// Window mode: cut `k` hands `build` exactly the purchases up to
/// `end - (k + 1) * label_days`, nothing later and nothing invented.
#[test]
fn window_mode_history_stops_at_each_cut() {
    let log = staple_shop(60, Rhythm::Monthly);
    let end = log.time_range().unwrap().1;
    let params = RankerParams {
        label_cuts: 3,
        ..RankerParams::default()
    };
    let (result, built) = fit_recording(&params, &log);
    let ranker = result.expect("fit");
    assert_eq!(built.len(), 3);
    let all_lines: HashSet<Line> = log.purchases.iter().map(line).collect();
    for (k, history) in built.iter().enumerate() {
        let cut = end - 30 * DAY * (k as i64 + 1);
        assert_eq!(history.items, log.items, "cut {k}: item indices");
        assert_eq!(
            history.customers, log.customers,
            "cut {k}: customer indices"
        );
        let expected: Vec<Line> = log
            .purchases
            .iter()
            .filter(|p| p.time <= cut)
            .map(line)
            .collect();
        let got: Vec<Line> = history.purchases.iter().map(line).collect();
        assert!(!got.is_empty());
        assert!(
            got.iter().all(|l| all_lines.contains(l)),
            "cut {k}: invented line"
        );
        assert_eq!(got, expected, "cut {k}");
    }
    let (customers, positives) = expected_labels(&log, 30.0, 3);
    assert_eq!(ranker.training_customers, customers);
    assert_eq!(ranker.training_positives, positives);
}

/// Next-order mode: the first cut's history holds every line except each
/// multi-order customer's last order, the second also drops the order
/// before it for customers with three or more orders.
#[test]
fn next_order_mode_history_drops_the_label_orders() {
    let log = staple_shop(60, Rhythm::Weekly);
    let (result, built) = fit_recording(&next_order(), &log);
    result.expect("fit");
    assert_eq!(built.len(), 2);
    let orders = orders_by_customer(&log);
    // Order index -> its rank from the customer's newest (0).
    let mut rank: BTreeMap<u32, usize> = BTreeMap::new();
    let mut n_orders: BTreeMap<u32, usize> = BTreeMap::new();
    {
        let mut keys: BTreeMap<u32, Vec<(i64, u32)>> = BTreeMap::new();
        for p in &log.purchases {
            keys.entry(p.customer.0)
                .or_default()
                .push((p.time, p.order.0));
        }
        for (c, mut k) in keys {
            k.sort_unstable();
            let mut distinct: Vec<u32> = Vec::new();
            for (_, o) in k {
                if !distinct.contains(&o) {
                    distinct.push(o);
                }
            }
            for (r, o) in distinct.iter().rev().enumerate() {
                rank.insert(*o, r);
            }
            assert_eq!(distinct.len(), orders[c as usize].len());
            n_orders.insert(c, distinct.len());
        }
    }
    for (skip, history) in built.iter().enumerate() {
        let expected: Vec<Line> = log
            .purchases
            .iter()
            .filter(|p| {
                let n = n_orders[&p.customer.0];
                // Labelled customers lose the label order and anything newer.
                !(n >= skip + 2 && rank[&p.order.0] <= skip)
            })
            .map(line)
            .collect();
        let got: Vec<Line> = history.purchases.iter().map(line).collect();
        assert_eq!(got, expected, "cut {skip}");
    }
}

/// Customers with exactly two orders label only the first cut: the second
/// finds nobody, builds nothing, and adds no row.
#[test]
fn two_orders_each_label_only_the_first_cut() {
    let n_customers = 50;
    let mut log = PurchaseLog::default();
    for c in 0..n_customers {
        for j in 0..2 {
            let t = T0 + (c % 5 + 7 * j) as i64 * DAY;
            let order = format!("o{c}_{j}");
            let customer = format!("c{c}");
            log.push(
                &order,
                &customer,
                if c % 2 == 0 { "staple_a" } else { "staple_b" },
                t,
                1.0,
                1.0,
            );
            log.push(
                &order,
                &customer,
                &format!("x{:02}", (c * 7 + j * 3) % 12),
                t,
                1.0,
                1.0,
            );
        }
    }
    let two = next_order();
    assert_eq!(two.label_cuts, 2);
    let (result, built) = fit_recording(&two, &log);
    let two_cuts = result.expect("fit");
    assert_eq!(built.len(), 1, "the second cut has nobody to label");
    assert_eq!(two_cuts.training_customers, n_customers);

    let one = RankerParams {
        label_cuts: 1,
        ..next_order()
    };
    let one_cut = one.fit(&log, all, build).expect("fit");
    // Same rows, same model: same lists (the fields of the model are private).
    assert_eq!(one_cut.training_rows, two_cuts.training_rows);
    assert_eq!(one_cut.training_positives, two_cuts.training_positives);
    assert_eq!(one_cut.training_customers, two_cuts.training_customers);
    assert_eq!(one_cut.importance(), two_cuts.importance());
    let base = full_models(&log);
    let signals = signals(&log, &base, &one);
    assert_eq!(
        lists(&one_cut, &signals, n_customers, 14, all),
        lists(&two_cuts, &signals, n_customers, 14, all),
        "two cuts over two-order customers train like one"
    );

    // A third order for everybody: now both cuts label every customer.
    let mut log3 = log.clone();
    for c in 0..n_customers {
        let t = T0 + (c % 5 + 14) as i64 * DAY;
        log3.push(
            &format!("o{c}_2"),
            &format!("c{c}"),
            "staple_a",
            t,
            1.0,
            1.0,
        );
    }
    let (result, built) = fit_recording(&two, &log3);
    assert_eq!(built.len(), 2);
    assert_eq!(result.expect("fit").training_customers, 2 * n_customers);

    // max_training_customers thins the labelled customers (every n-th).
    let thin = RankerParams {
        max_training_customers: 10,
        ..one
    };
    assert_eq!(
        thin.fit(&log, all, build).expect("fit").training_customers,
        10
    );
    let thin = RankerParams {
        max_training_customers: 7,
        ..thin
    };
    // 50 labelled, stride ceil(50 / 7) = 8: customers 0, 8, ..., 48.
    assert_eq!(
        thin.fit(&log, all, build).expect("fit").training_customers,
        7
    );
}

/// Extending a log by later data shifts its cuts by one: the second cut of
/// the extended log sees exactly what the first cut of the original saw.
#[test]
fn later_data_only_moves_the_cuts() {
    // Next-order mode: one more order per customer, of an item never seen.
    let log = staple_shop(60, Rhythm::Weekly);
    let end = log.time_range().unwrap().1;
    let mut longer = log.clone();
    for c in 0..60 {
        longer.push(
            &format!("late{c}"),
            &format!("c{c}"),
            "new_item",
            end + (c as i64 + 1) * 3600,
            1.0,
            1.0,
        );
    }
    let one = RankerParams {
        label_cuts: 1,
        ..next_order()
    };
    let (short_fit, short_built) = fit_recording(&one, &log);
    let (long_fit, long_built) = fit_recording(&next_order(), &longer);
    let (short_fit, long_fit) = (short_fit.expect("fit"), long_fit.expect("fit"));
    assert_eq!(short_built.len(), 1);
    assert_eq!(long_built.len(), 2);
    assert_eq!(long_built[1].purchases, short_built[0].purchases);
    assert_eq!(
        long_fit.training_customers,
        short_fit.training_customers + 60
    );
    // Cut back to the original purchases, the extended log trains on the
    // same customers and labels; only its catalog is one item longer.
    let (cut_back, after) = longer.split_at(end + 1);
    assert_eq!(after.purchases.len(), 60);
    let refit = one.fit(&cut_back, all, build).expect("fit");
    assert_eq!(refit.training_customers, short_fit.training_customers);
    assert_eq!(refit.training_positives, short_fit.training_positives);
    // One more item in the catalog, one more candidate per row.
    assert_eq!(
        refit.training_rows,
        short_fit.training_rows + short_fit.training_customers
    );

    // Window mode: 30 more days of data, ending exactly 30 days later.
    let log = staple_shop(60, Rhythm::Monthly);
    let end = log.time_range().unwrap().1;
    let mut longer = log.clone();
    for c in 0..60 {
        let t = end + 30 * DAY - (c as i64) * 3600;
        longer.push(
            &format!("late{c}"),
            &format!("c{c}"),
            "new_item",
            t,
            1.0,
            1.0,
        );
    }
    let one = RankerParams {
        label_cuts: 1,
        ..RankerParams::default()
    };
    let (short_fit, short_built) = fit_recording(&one, &log);
    let (long_fit, long_built) = fit_recording(&RankerParams::default(), &longer);
    let (short_fit, long_fit) = (short_fit.expect("fit"), long_fit.expect("fit"));
    assert_eq!(long_built.len(), 2);
    assert_eq!(long_built[1].purchases, short_built[0].purchases);
    // The first cut of the extended log holds the whole original log.
    assert_eq!(long_built[0].purchases, log.purchases);
    // Its window labels all 60 customers (new_item), the second cut the
    // original log's window.
    assert_eq!(
        long_fit.training_customers,
        short_fit.training_customers + 60
    );
    assert_eq!(
        long_fit.training_customers,
        expected_labels(&longer, 30.0, 2).0
    );
}

// ---------------------------------------------------------------------------
// 6. Out-of-range customers
// ---------------------------------------------------------------------------

#[test]
fn unknown_customer_gets_an_empty_list() {
    let log = staple_shop(40, Rhythm::Weekly);
    let params = next_order();
    let ranker = params.fit(&log, all, build).expect("fit");
    let base = full_models(&log);
    let signals = signals(&log, &base, &params);
    let n = log.customers.len() as u32;
    assert!(!ranker.recommend(&signals, n - 1, 10, all).is_empty());
    for c in [n, n + 1, u32::MAX] {
        assert!(
            ranker.recommend(&signals, c, 10, all).is_empty(),
            "customer {c}"
        );
    }
}

/// Order ids need only be unique per customer: numbering each customer's
/// orders 0, 1, 2... (so that "0" is shared by every customer) cuts the same
/// history lines as globally unique ids, in both split modes, and trains.
#[test]
fn order_ids_shared_across_customers_split_the_same() {
    let unique = staple_shop(40, Rhythm::Weekly);
    let mut shared = PurchaseLog::default();
    for p in &unique.purchases {
        let order = unique.orders.id(p.order.0);
        let per_customer = order.rsplit('_').next().unwrap_or(order);
        shared.push(
            per_customer,
            unique.customers.id(p.customer.0),
            unique.items.id(p.item.0),
            p.time,
            p.quantity,
            p.price,
        );
    }
    assert!(shared.orders.len() < unique.orders.len() / 4);
    // Lines without the order index, which differs between the two logs.
    let lines = |logs: &[PurchaseLog]| -> Vec<Vec<(u32, u32, i64)>> {
        logs.iter()
            .map(|l| {
                l.purchases
                    .iter()
                    .map(|p| (p.customer.0, p.item.0, p.time))
                    .collect()
            })
            .collect()
    };
    for params in [next_order(), RankerParams::default()] {
        let (a, seen_a) = fit_recording(&params, &unique);
        let (b, seen_b) = fit_recording(&params, &shared);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            lines(&seen_a),
            lines(&seen_b),
            "label_days {}",
            params.label_days
        );
        assert_eq!(
            (a.training_rows, a.training_positives, a.training_customers),
            (b.training_rows, b.training_positives, b.training_customers),
            "label_days {}",
            params.label_days
        );
    }
}
