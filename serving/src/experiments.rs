//! Experiments at run time: the running configuration, which experiment
//! runs on which placement, a customer's assignment, and replacing the set
//! (the admin API's `PUT`), saved to the experiments file.
//!
//! The configuration and the assignment rule are
//! [`encore_model::experiment`]'s. The server adds:
//!
//! * **Placement.** An experiment runs on a placement, a list of the API;
//!   the only one is `recommendations`, the personal "for you" list of
//!   `GET /v1/customers/{id}/recommendations`. At most one experiment runs
//!   per placement: a configuration with two is refused (at start, naming
//!   the file, and by the admin API), so a customer never sees two
//!   experiments on one list and no precedence rule is needed.
//! * **Saving.** With an experiments file, a new set is first written to it
//!   (a temporary file in the same directory, fsynced, renamed over it, the
//!   directory fsynced) so that a restart keeps it; if that fails the old
//!   set keeps running (`500 experiments_save_failed`). The file is
//!   rewritten whole, so its comments are lost.
//!
//! What a variant serves, the exposures and the admin routes are in
//! `routes/experiments.rs`.
//!
//! # Implementation notes
//! The configuration sits in an [`ArcSwap`], like the model: a request to
//! the recommendations route does one `load` and, when no experiment runs
//! there, nothing else (no allocation, no reference count). A request under
//! an experiment keeps one snapshot for its whole life, so a `PUT` landing
//! mid-request never mixes two configurations in one answer.

use crate::error::{ApiError, Code};
use arc_swap::ArcSwap;
use encore_data::durable::{ReplaceError, replace_file};
use encore_model::experiment::{
    DEFAULT_PLACEMENT, Experiment, ExperimentConfigError, ExperimentSpec, ExperimentsConfig,
    Variant,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Where an experiment can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// `GET /v1/customers/{id}/recommendations`.
    Recommendations,
}

/// A validated configuration and the experiment of each placement.
#[derive(Debug, Default)]
pub(crate) struct Running {
    config: ExperimentsConfig,
    /// The experiment (index) on the recommendations placement.
    recommendations: Option<usize>,
}

impl Running {
    /// Checks that at most one experiment runs per placement.
    pub(crate) fn new(config: ExperimentsConfig) -> Result<Running, ExperimentConfigError> {
        let mut recommendations: Option<usize> = None;
        for (i, e) in config.experiments().iter().enumerate() {
            // The model crate checks the name; every placement it knows is here.
            let slot = match e.placement() {
                DEFAULT_PLACEMENT => &mut recommendations,
                other => {
                    return Err(ExperimentConfigError::Invalid {
                        experiment: Some(e.name().to_string()),
                        variant: None,
                        key: "placement".into(),
                        message: format!("this server has no placement {other:?}"),
                    });
                }
            };
            if let Some(first) = *slot {
                return Err(ExperimentConfigError::Invalid {
                    experiment: Some(e.name().to_string()),
                    variant: None,
                    key: "placement".into(),
                    message: format!(
                        "experiment {:?} already runs on placement {:?}; at most one \
                         experiment runs per placement (remove or move one of them)",
                        config.experiments()[first].name(),
                        e.placement()
                    ),
                });
            }
            *slot = Some(i);
        }
        Ok(Running {
            config,
            recommendations,
        })
    }

    pub(crate) fn specs(&self) -> Vec<ExperimentSpec> {
        self.config
            .experiments()
            .iter()
            .map(Experiment::spec)
            .collect()
    }

    /// The running experiment called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Experiment> {
        self.config.get(name)
    }
}

/// The running experiments and where admin changes are saved.
#[derive(Debug, Default)]
pub(crate) struct Experiments {
    running: ArcSwap<Running>,
    /// The experiments file, rewritten by `PUT /v1/admin/experiments`.
    file: Option<PathBuf>,
    /// Serialises replacements (file write and swap).
    replace_lock: Mutex<()>,
}

impl Experiments {
    /// Runs `config` (at most one experiment per placement).
    pub(crate) fn new(
        config: ExperimentsConfig,
        file: Option<PathBuf>,
    ) -> Result<Experiments, ExperimentConfigError> {
        Ok(Experiments {
            running: ArcSwap::from_pointee(Running::new(config)?),
            file,
            replace_lock: Mutex::new(()),
        })
    }

    /// Reads and runs the experiments file at `path`; errors name the file.
    pub(crate) fn load(path: &Path) -> Result<Experiments, ExperimentConfigError> {
        let config = ExperimentsConfig::from_path(path)?;
        let names: Vec<String> = config
            .experiments()
            .iter()
            .map(|e| e.name().to_string())
            .collect();
        let experiments = Self::new(config, Some(path.to_path_buf())).map_err(|e| {
            ExperimentConfigError::InFile {
                path: path.to_path_buf(),
                cause: Box::new(e),
            }
        })?;
        tracing::info!(file = %path.display(), experiments = ?names, "experiments loaded");
        Ok(experiments)
    }

    /// The running configuration, as specs.
    pub(crate) fn specs(&self) -> Vec<ExperimentSpec> {
        self.running.load().specs()
    }

    /// The running experiment called `name` (a copy: the set may be
    /// replaced meanwhile).
    pub(crate) fn get(&self, name: &str) -> Option<Experiment> {
        self.running.load().get(name).cloned()
    }

    /// The experiments file that replacements are saved to, if any.
    pub(crate) fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The experiment running on `placement`, and the variant of
    /// `customer_id` in it; `None` (after one atomic load) when none runs.
    pub(crate) fn assign(&self, placement: Placement, customer_id: &str) -> Option<Assigned> {
        let running = self.running.load();
        let experiment = match placement {
            Placement::Recommendations => running.recommendations?,
        };
        let variant = running.config.experiments()[experiment].assign_index(customer_id);
        Some(Assigned {
            running: arc_swap::Guard::into_inner(running),
            experiment,
            variant,
        })
    }

    /// Writes `running` to the experiments file (if any), then swaps it in.
    /// On a write error the old configuration keeps running.
    pub(crate) fn replace(&self, running: Running) -> Result<Option<PathBuf>, ApiError> {
        let _one_at_a_time = self
            .replace_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(path) = &self.file {
            let text = to_toml(&running)?;
            match replace_file(path, text.as_bytes()) {
                Ok(()) => {}
                Err(ReplaceError::NotReplaced { error: e, .. }) => {
                    tracing::error!(file = %path.display(), error = %e, "experiments file not written");
                    return Err(ApiError::new(
                        Code::ExperimentsSaveFailed,
                        format!(
                            "the experiments file {} could not be written ({e}); the running \
                             experiments are unchanged",
                            path.display()
                        ),
                    ));
                }
                // The rename has replaced the file: from here on the new text
                // is what a restart reads, so the new set must run too. Only
                // its durability across a power loss is weak.
                Err(e @ ReplaceError::NotDurable { .. }) => {
                    tracing::warn!(error = %e, "experiments file saved, but not yet durable");
                }
            }
        }
        let names: Vec<&str> = running
            .config
            .experiments()
            .iter()
            .map(Experiment::name)
            .collect();
        tracing::info!(experiments = ?names, saved = self.file.is_some(), "experiments replaced");
        self.running.store(Arc::new(running));
        Ok(self.file.clone())
    }
}

/// A customer's variant in the experiment of a placement, with the
/// configuration snapshot it came from.
pub(crate) struct Assigned {
    running: Arc<Running>,
    experiment: usize,
    variant: usize,
}

impl Assigned {
    pub(crate) fn experiment(&self) -> &Experiment {
        &self.running.config.experiments()[self.experiment]
    }

    pub(crate) fn variant(&self) -> &Variant {
        &self.experiment().variants()[self.variant]
    }
}

/// The experiments file's text for `running`, checked to read back equal.
fn to_toml(running: &Running) -> Result<String, ApiError> {
    #[derive(Serialize)]
    struct File {
        experiment: Vec<ExperimentSpec>,
    }
    let text = toml::to_string(&File {
        experiment: running.specs(),
    })
    .map_err(ApiError::internal)?;
    let text = format!(
        "# The experiments of encore-serve, last written by PUT /v1/admin/experiments.\n\
         # Hand edits take effect at the next start; the next PUT rewrites the whole file (comments are not kept).\n\n{text}"
    );
    match ExperimentsConfig::from_toml_str(&text) {
        Ok(back) if back == running.config => Ok(text),
        Ok(_) => Err(ApiError::internal(
            "the experiments file would not read back as the configuration",
        )),
        Err(e) => Err(ApiError::internal(format!(
            "the experiments file would not read back: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
[[experiment]]
name = "a"
control = "x"
[[experiment.variant]]
name = "x"
share = 0.5
strategy = { list = "als", k = 10 }
[[experiment.variant]]
name = "y"
share = 0.5
strategy = { list = "popular", k = 5, category = "tea" }

[[experiment]]
name = "b"
placement = "recommendations"
control = "x"
[[experiment.variant]]
name = "x"
share = 0.3
strategy = { list = "buy_again", k = 3 }
[[experiment.variant]]
name = "y"
share = 0.7
strategy = { list = "for_you", k = 7 }
"#;

    #[test]
    fn two_experiments_on_one_placement_are_refused_naming_both() {
        let config = ExperimentsConfig::from_toml_str(TWO).unwrap();
        let e = Running::new(config).unwrap_err().to_string();
        assert!(
            e.contains("\"b\"") && e.contains("\"a\"") && e.contains("placement"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiments.toml");
        std::fs::write(&path, TWO).unwrap();
        let e = Experiments::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("experiments.toml") && e.contains("placement"),
            "{e}"
        );
    }

    #[test]
    fn assignment_follows_the_running_experiment() {
        let one = TWO.split("[[experiment]]\nname = \"b\"").next().unwrap();
        let config = ExperimentsConfig::from_toml_str(one).unwrap();
        let want = config.experiments()[0].clone();
        let experiments = Experiments::new(config, None).unwrap();
        for id in ["c1", "c2", "stranger", "17850"] {
            let a = experiments.assign(Placement::Recommendations, id).unwrap();
            assert_eq!(a.experiment().name(), "a");
            assert_eq!(a.variant(), want.assign(id));
        }
        assert!(
            Experiments::default()
                .assign(Placement::Recommendations, "c1")
                .is_none()
        );
    }

    #[test]
    fn the_file_is_replaced_whole_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiments.toml");
        std::fs::write(&path, "").unwrap();
        let experiments = Experiments::load(&path).unwrap();
        let b = TWO.split("[[experiment]]\nname = \"b\"").nth(1).unwrap();
        let config =
            ExperimentsConfig::from_toml_str(&format!("[[experiment]]\nname = \"b\"{b}")).unwrap();
        let saved = experiments
            .replace(Running::new(config.clone()).unwrap())
            .unwrap();
        assert_eq!(saved.as_deref(), Some(path.as_path()));
        assert_eq!(ExperimentsConfig::from_path(&path).unwrap(), config);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["experiments.toml"]);
        // A file that cannot be written leaves the old configuration running.
        let gone = Experiments::new(
            ExperimentsConfig::default(),
            Some(dir.path().join("missing-dir").join("x.toml")),
        )
        .unwrap();
        let err = gone.replace(Running::new(config).unwrap()).unwrap_err();
        assert_eq!(err.code(), Code::ExperimentsSaveFailed);
        assert!(gone.assign(Placement::Recommendations, "c1").is_none());
    }
}
