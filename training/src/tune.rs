//! `encore-train tune`: random search of the repeat-aware "for you" model's
//! settings within a time budget, on the validation split only.
//!
//! # Protocol
//! The validation split ([`Split::validation`]) ends where the test split's
//! targets begin, so the test period never chooses a parameter. Trial 0 is
//! the current configuration; every further trial draws each setting of
//! `[repeat_aware]` (and ALS's `alpha` and `regularization`, which feed the
//! blend), and with the re-ranker as the "for you" model its `label_days`,
//! `label_cuts`, learner and the learner's main settings, from a fixed grid with a seeded generator, trains
//! the engine on the validation training part and scores the configured "for
//! you" model (`ranker` or `tifu_als`) by `Recall@K + NDCG@K`.
//! Trials stop when the next one would likely overrun the budget (the mean
//! trial time so far is the estimate) or, with `--trials N`, after N trials;
//! a search that ends on its trial count is the same on any machine. The best configuration is written as a
//! complete training config whose `[tuning]` table records the objective,
//! the validation scores, the split and the trial count, so `encore-train fit
//! --config` carries them into the artifact manifest.

use crate::evaluate::{Registry, Split, evaluate_split};
use crate::input::{Input, data_summary};
use anyhow::{Result, bail};
use encore_model::cf::ranker::Learner;
use encore_model::pipeline::{EngineConfig, ForYouModel, TuningRecord};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::{Duration, Instant};

/// One scored configuration.
#[derive(Debug, Clone)]
pub struct Trial {
    pub config: EngineConfig,
    pub recall: f64,
    pub ndcg: f64,
    pub seconds: f64,
}

impl Trial {
    pub fn objective(&self) -> f64 {
        self.recall + self.ndcg
    }
}

/// The search and its winner.
pub struct Tuning {
    pub trials: Vec<Trial>,
    pub best: usize,
    pub split: String,
}

/// A random configuration around `base` (module docs).
fn draw(base: &EngineConfig, rng: &mut Xoshiro256PlusPlus) -> EngineConfig {
    fn pick<T: Copy>(rng: &mut Xoshiro256PlusPlus, values: &[T]) -> T {
        values[rng.gen_range(0..values.len())]
    }
    let mut c = base.clone();
    let t = &mut c.repeat_aware;
    t.group_size = pick(rng, &[3, 5, 10, 20, 40]);
    t.within_decay = pick(rng, &[0.6, 0.8, 0.9, 0.95, 1.0]);
    t.group_decay = pick(rng, &[0.1, 0.3, 0.5, 0.7, 0.9]);
    t.neighbours = pick(rng, &[50, 100, 300, 600]);
    t.alpha = pick(rng, &[0.2, 0.4, 0.6, 0.8, 0.9]);
    t.beta = pick(rng, &[0.0, 0.01, 0.05, 0.2]);
    c.als.alpha = pick(rng, &[1.0, 5.0, 10.0, 40.0]);
    c.als.regularization = pick(rng, &[0.01, 0.1, 1.0]);
    if c.for_you.model == ForYouModel::Ranker {
        let r = &mut c.ranker;
        r.label_days = pick(rng, &[0.0, 14.0, 30.0, 60.0]);
        r.label_cuts = pick(rng, &[1, 2, 3]);
        r.learner = pick(rng, &[Learner::Logistic, Learner::BoostedTrees]);
        match r.learner {
            Learner::Logistic => r.l2 = pick(rng, &[0.1, 1.0, 10.0]),
            Learner::BoostedTrees => {
                let b = &mut r.boosting;
                b.trees = pick(rng, &[50, 100, 200]);
                b.depth = pick(rng, &[2, 3, 4, 5]);
                b.learning_rate = pick(rng, &[0.05, 0.1, 0.2]);
                b.min_leaf_hessian = pick(rng, &[1.0, 5.0, 20.0]);
            }
        }
    }
    c
}

/// Settings of a search.
#[derive(Debug, Clone, Copy)]
pub struct TuneOptions {
    /// Length of the validation window of a time split, in days.
    pub validation_days: f64,
    /// Cut-off of the objective.
    pub k: usize,
    pub budget: Duration,
    /// Stop after this many trials (trial 0 included) even if budget is
    /// left: with it, a search gives the same result on a faster machine.
    pub max_trials: Option<usize>,
    pub seed: u64,
}

/// Runs the search (module docs) on the validation split of `test_split`.
pub fn tune(
    input: &Input,
    base: &EngineConfig,
    test_split: &Split,
    options: &TuneOptions,
    on_trial: &mut dyn FnMut(usize, &Trial),
) -> Result<Tuning> {
    let TuneOptions {
        validation_days,
        k,
        budget,
        max_trials,
        seed,
    } = *options;
    if k == 0 {
        bail!("--k must be at least 1");
    }
    let split = test_split.validation(validation_days);
    let data = data_summary(&input.report, &input.log);
    let model = base.for_you.model.evaluation_name();
    let registry = Registry::standard().only(&[model.to_string()])?;
    let started = Instant::now();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut trials: Vec<Trial> = Vec::new();
    let mut description = String::new();
    loop {
        let config = if trials.is_empty() {
            base.clone()
        } else {
            let spent = started.elapsed().as_secs_f64();
            let mean = spent / trials.len() as f64;
            if spent + mean > budget.as_secs_f64() || max_trials.is_some_and(|m| trials.len() >= m)
            {
                break;
            }
            draw(base, &mut rng)
        };
        config.validate()?;
        let t0 = Instant::now();
        let eval = evaluate_split(
            &input.log,
            &input.item_meta,
            &config,
            &data,
            &split,
            &[k],
            &registry,
            None,
        )?;
        description = format!("{}: {}", eval.split.kind, eval.split.description);
        let get = |name: &str| {
            eval.models
                .iter()
                .find(|m| m.model == model)
                .and_then(|m| m.metrics.get(&format!("{name}@{k}")).copied())
                .unwrap_or(0.0)
        };
        let trial = Trial {
            recall: get("recall"),
            ndcg: get("ndcg"),
            seconds: t0.elapsed().as_secs_f64(),
            config,
        };
        on_trial(trials.len(), &trial);
        trials.push(trial);
    }
    let best = (0..trials.len())
        .max_by(|&a, &b| {
            trials[a]
                .objective()
                .total_cmp(&trials[b].objective())
                // Ties: the earlier trial (the base configuration first).
                .then(b.cmp(&a))
        })
        .expect("at least the base trial");
    Ok(Tuning {
        trials,
        best,
        split: description,
    })
}

impl Tuning {
    /// The winning configuration with its `[tuning]` record.
    pub fn best_config(&self, k: usize, budget: Duration) -> EngineConfig {
        let t = &self.trials[self.best];
        let mut config = t.config.clone();
        config.tuning = Some(TuningRecord {
            objective: format!(
                "recall@{k} + ndcg@{k} of {}",
                t.config.for_you.model.evaluation_name()
            ),
            validation_recall: t.recall,
            validation_ndcg: t.ndcg,
            base_recall: self.trials[0].recall,
            base_ndcg: self.trials[0].ndcg,
            trials: self.trials.len(),
            budget_seconds: budget.as_secs_f64(),
            split: self.split.clone(),
        });
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_seeded_and_valid() {
        let base = EngineConfig::default();
        let a: Vec<EngineConfig> = {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
            (0..20).map(|_| draw(&base, &mut rng)).collect()
        };
        let b: Vec<EngineConfig> = {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
            (0..20).map(|_| draw(&base, &mut rng)).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().all(|c| c.validate().is_ok()));
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }

    /// The written configuration reads back as the same configuration,
    /// tuning record included, so `fit --config` carries it into the manifest.
    #[test]
    fn the_tuned_config_round_trips_through_toml() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let config = draw(&EngineConfig::default(), &mut rng);
        let trial = |config: EngineConfig, recall| Trial {
            config,
            recall,
            ndcg: 0.3,
            seconds: 1.0,
        };
        let tuning = Tuning {
            trials: vec![trial(EngineConfig::default(), 0.1), trial(config, 0.2)],
            best: 1,
            split: "time: validation".into(),
        };
        let best = tuning.best_config(10, Duration::from_secs(60));
        let text = toml::to_string_pretty(&best).unwrap();
        let back = crate::config::parse_config(&text).unwrap();
        assert_eq!(back, best);
        let record = back.tuning.unwrap();
        assert_eq!((record.validation_recall, record.base_recall), (0.2, 0.1));
        assert_eq!(record.trials, 2);
    }
}
