//! Nightly retraining through a model store: the first model is promoted,
//! a candidate as good as the serving model is promoted, one worse on either
//! list the gate scores (new items, and with bought items) is kept in the
//! store but not made current, and rollback restores the previous one.

use encore_data::synth::{SynthParams, generate, write_csv};
use encore_model::artifact::store::Store;
use encore_model::pipeline::EngineConfig;
use encore_training::fit::{FitEvaluation, Publish, Target, fit_and_publish, summary};
use encore_training::input::{Input, InputArgs, load_input};
use std::path::Path;

fn input(path: &Path) -> Input {
    let mut args = InputArgs::new(path);
    args.rejects = Some(path.with_extension("rejects.csv"));
    load_input(&args).unwrap()
}

fn config(factors: usize, iterations: usize) -> EngineConfig {
    let mut c = EngineConfig::default();
    c.als.factors = factors;
    c.als.iterations = iterations;
    c
}

#[test]
fn gate_promotes_equal_refuses_worse_and_rollback_restores() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = generate(&SynthParams {
        customers: 600,
        items: 200,
        purchases: 12_000,
        categories: 8,
        ..SynthParams::default()
    });
    // A history that grows by appending: rows in time order (the generator
    // groups them by customer).
    full.purchases.sort_by_key(|p| p.time);
    let (_, last) = full.time_range().unwrap();
    let (early, _) = full.split_at(last - 60 * 86_400);
    let early_csv = dir.path().join("early.csv");
    let full_csv = dir.path().join("full.csv");
    write_csv(&early, &early_csv).unwrap();
    write_csv(&full, &full_csv).unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let publish = |previous: Option<&Path>, margin: f64| Publish {
        target: Target::Store(store.clone()),
        previous: previous.map(Path::to_path_buf),
        margin,
        keep: 10,
    };
    let fit = |csv: &Path, config: &EngineConfig, p: &Publish| {
        fit_and_publish(&input(csv), config, FitEvaluation::Skip, &[10], p, false).unwrap()
    };

    // 1. No serving model yet: promoted without a gate.
    let good = config(16, 8);
    let first = fit(&early_csv, &good, &publish(None, 0.0));
    assert!(first.promoted && first.gate.is_none());
    let v1 = store.current().unwrap().unwrap();
    assert_eq!(first.location.as_deref(), Some(store.dir_of(&v1).as_path()));

    // 2. Same configuration, 60 more days of data appended: the candidate
    //    pipeline, trained up to the serving model's end on ids numbered as
    //    they were then, is the serving model: equal scores, promoted at
    //    margin 0.
    let second = fit(&full_csv, &good, &publish(None, 0.0));
    let gate = second.gate.clone().expect("gate ran");
    assert_eq!(gate.lists.len(), 2, "{gate:?}");
    for l in &gate.lists {
        assert!(l.customers_scored > 50, "{gate:?}");
        assert_eq!(l.candidate, l.previous, "{gate:?}");
        assert!(l.passed, "{gate:?}");
    }
    // Every customer with a new item also has an item to score with
    // bought items kept.
    let (new, all) = (
        gate.list("new_items").unwrap(),
        gate.list("with_purchased").unwrap(),
    );
    assert!(all.customers_scored >= new.customers_scored, "{gate:?}");
    assert!(second.promoted, "{gate:?}");
    let v2 = store.current().unwrap().unwrap();
    assert_ne!(v1, v2);
    let manifest = encore_model::artifact::read_manifest(&store.dir_of(&v2)).unwrap();
    assert_eq!(manifest.metrics["gate"]["promoted"], true);

    // 3. A much worse configuration against v1 (regularisation so strong that
    //    every factor is ~0 and the lists are arbitrary): refused, CURRENT
    //    unchanged, the candidate kept for inspection.
    let mut bad = config(16, 8);
    bad.als.regularization = 1e6;
    let third = fit(&full_csv, &bad, &publish(Some(&store.dir_of(&v1)), 0.0));
    let gate = third.gate.clone().expect("gate ran");
    assert!(!third.promoted, "{gate:?}");
    let new = gate.list("new_items").unwrap();
    assert!(new.candidate < new.previous && !new.passed, "{gate:?}");
    assert_eq!(store.current().unwrap().as_deref(), Some(v2.as_str()));
    assert_eq!(store.versions().unwrap().len(), 3);

    // 4. A candidate as good on new items but without the repeat-aware list
    //    (ALS then serves bought items too, and ranks them worse): the
    //    new-items list passes, the list with bought items does not, refused.
    let mut no_repeats = config(16, 8);
    no_repeats.for_you.repeat_aware = false;
    let fourth = fit(
        &full_csv,
        &no_repeats,
        &publish(Some(&store.dir_of(&v1)), 0.01),
    );
    let gate = fourth.gate.clone().expect("gate ran");
    assert!(gate.list("new_items").unwrap().passed, "{gate:?}");
    let all = gate.list("with_purchased").unwrap();
    assert!(
        all.candidate < all.previous - 0.01 && !all.passed,
        "{gate:?}"
    );
    assert!(!fourth.promoted, "{gate:?}");
    assert_eq!(store.current().unwrap().as_deref(), Some(v2.as_str()));
    assert_eq!(store.versions().unwrap().len(), 4);

    // 4b. The worse configuration again, to a directory: nothing written, and
    //     the summary still says which lists the refused candidate held.
    let out = dir.path().join("out");
    let refused = fit(
        &full_csv,
        &bad,
        &Publish {
            target: Target::Dir(out.clone()),
            previous: Some(store.dir_of(&v1)),
            margin: 0.0,
            keep: 10,
        },
    );
    assert!(!refused.promoted && !out.exists());
    let text = summary(&refused);
    assert!(text.contains("NOT written"), "{text}");
    assert!(text.contains("repeat-aware lists ("), "{text}");

    // 4c. Refused again with --keep 2: pruning follows a refused run too,
    //     never the current version (v2), the rollback target (v1) or the
    //     newest ones; the summary names what went.
    let v3 = third.manifest.model_version.clone();
    let fifth = fit(
        &full_csv,
        &bad,
        &Publish {
            keep: 2,
            ..publish(Some(&store.dir_of(&v1)), 0.0)
        },
    );
    assert!(!fifth.promoted);
    assert_eq!(fifth.pruned, std::slice::from_ref(&v3));
    let left: Vec<String> = store
        .versions()
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(!left.contains(&v3) && left.contains(&v1) && left.contains(&v2));
    assert!(left.contains(&fifth.manifest.model_version));
    assert!(summary(&fifth).contains(&format!("pruned from the store (--keep): {v3}")));

    // 5. Rollback: v1 is current again.
    assert_eq!(store.rollback().unwrap(), v1);
    assert_eq!(store.current().unwrap().as_deref(), Some(v1.as_str()));
}
