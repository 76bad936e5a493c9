//! The served "for you" model (the learned re-ranker, default settings)
//! against the best baseline on the bundled Online Retail sample, time split
//! at 2011-10-01, exactly as `encore-train evaluate --holdout-from 2011-10-01`
//! scores it: the target is +10 % relative on Recall@10 and NDCG@10
//! over the best of the peers and baselines, and GP-TopFreq is the strongest
//! of them here (the peers are compared by `bench/compare_peers.sh`).
//!
//! The re-ranker trains only on an inner split of the training part, so the
//! test period chooses nothing. Run with `--nocapture` to see the figures.

use crate::support;
use encore_data::timestamp::parse_timestamp;
use encore_model::pipeline::EngineConfig;
use encore_training::evaluate::{Registry, Split, evaluate_split};
use encore_training::input::{data_summary, load_input};

#[test]
fn ranker_beats_the_best_baseline_by_ten_percent_on_online_retail() {
    let dir = tempfile::tempdir().unwrap();
    let input = load_input(&support::sample_args(dir.path())).unwrap();
    let data = data_summary(&input.report, &input.log);
    let config = EngineConfig::default();
    let split = Split::Time {
        cutoff: parse_timestamp("2011-10-01").unwrap(),
        end: None,
    };
    let names = ["ranker", "p_topfreq", "gp_topfreq", "popularity", "als"].map(String::from);
    let registry = Registry::standard().only(&names).unwrap();
    let eval = evaluate_split(
        &input.log,
        &input.item_meta,
        &config,
        &data,
        &split,
        &[10],
        &registry,
        None,
    )
    .unwrap();
    let get = |model: &str, metric: &str| {
        eval.models
            .iter()
            .find(|m| m.model == model)
            .and_then(|m| m.metrics.get(metric).copied())
            .unwrap()
    };
    println!("{} customers scored", eval.split.customers_scored);
    for metric in ["recall@10", "ndcg@10"] {
        let ranker = get("ranker", metric);
        let (best, score) = names[1..]
            .iter()
            .map(|m| (m.as_str(), get(m, metric)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let lift = ranker / score - 1.0;
        println!(
            "{metric}: ranker {ranker:.4}, best baseline {best} {score:.4}, {:+.1} %",
            100.0 * lift
        );
        assert!(lift >= 0.10, "{metric}: ranker {ranker} vs {best} {score}");
    }
}
