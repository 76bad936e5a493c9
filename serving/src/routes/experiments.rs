//! Online experiments on the server: which experiment runs where, what a
//! variant serves, the exposures the server logs, and the admin API
//! (`GET` and `PUT /v1/admin/experiments`).
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
//! * **Serving a variant.** The customer id is assigned with
//!   [`Experiment::assign`] (unknown customers too: the hash needs only the
//!   id) and the variant's strategy is served as the plain route would serve
//!   its list: `als` is the ALS list ([`Engine::recommend`]; purchased items
//!   left out unless `include_purchased`), `for_you` the list of
//!   `include_purchased=true` ([`Engine::for_you`]), `popular` the
//!   popularity list without the customer's purchased items, `buy_again` the
//!   list of `GET /v1/customers/{id}/buy-again` (score: the due score),
//!   `blend` the first `buy_again_slots` due items of that list followed by
//!   the ALS list's new items (score: the rank, `k` down to 1).
//!   Customers the model does not know get the popularity list
//!   (`"source": "fallback"`) under every strategy. Purchases posted since
//!   the model's data end apply as on the plain routes (left out where
//!   purchased items are, moved to the end of buy-again).
//! * **Request parameters under an experiment.** The variant decides the
//!   list and whether purchased items are included (`include_purchased` of
//!   the request is ignored); its `k` is the list length, capped by the
//!   request's `k` when one is given (a page with 4 slots never gets 10
//!   items); its `category` wins over the request's, which applies when the
//!   variant names none; the request's `exclude` always applies.
//! * **Exposures.** With an event log, every list served under an
//!   experiment appends an exposure event: the customer, `list` (the
//!   strategy's list name), the items shown, experiment, variant and
//!   request id, with the id `exposure:{request_id}:{hash of experiment and
//!   customer}`, so a retry carrying the same `X-Request-Id` is logged once
//!   and a reused request id cannot hide another customer's exposure. The request does not wait for the fsync
//!   ([`super::events::EventSink::submit_exposure`]): exposures are at most
//!   once, dropped and counted when the writer's queue is full or the log
//!   failed, while posted events stay durable.
//! * **Admin API.** `GET` answers the running configuration as JSON specs;
//!   `PUT` replaces the whole set from `{"experiments": [spec, ...]}`,
//!   validated like the file (`400 invalid_experiments` naming the
//!   experiment, variant and key; the old set keeps running). With an
//!   experiments file, the new set is first written to it (a temporary file
//!   in the same directory, fsynced, renamed over it, the directory fsynced)
//!   so that a restart keeps it; if that fails the old set keeps running
//!   (`500 experiments_save_failed`). The file is rewritten whole, so its
//!   comments are lost.
//!
//! # Implementation notes
//! The configuration sits in an [`ArcSwap`], like the model: a request to
//! the recommendations route does one `load` and, when no experiment runs
//! there, nothing else (no allocation, no reference count). A request under
//! an experiment keeps one snapshot for its whole life, so a `PUT` landing
//! mid-request never mixes two configurations in one answer.

use super::JsonObject;
use super::events::apply_recent_to_due;
use super::outreach::NoQuery;
use crate::error::{ApiError, Code};
use crate::state::AppState;
use crate::trace::RequestId;
use actix_web::{HttpResponse, web};
use arc_swap::ArcSwap;
use encore_data::events::event_from_value;
use encore_model::engine::{Engine, ListFilter, Ranked, Source};
use encore_model::experiment::{
    DEFAULT_PLACEMENT, Experiment, ExperimentConfigError, ExperimentSpec, ExperimentsConfig,
    Strategy, Variant,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

/// The response header naming the experiment a list was served under.
pub const EXPERIMENT_HEADER: &str = "x-encore-experiment";
/// The response header naming the variant a list was served under.
pub const VARIANT_HEADER: &str = "x-encore-variant";

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
    fn new(config: ExperimentsConfig) -> Result<Running, ExperimentConfigError> {
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

    fn specs(&self) -> Vec<ExperimentSpec> {
        self.config
            .experiments()
            .iter()
            .map(Experiment::spec)
            .collect()
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
                source: Box::new(e),
            }
        })?;
        tracing::info!(file = %path.display(), experiments = ?names, "experiments loaded");
        Ok(experiments)
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
    fn replace(&self, running: Running) -> Result<Option<PathBuf>, ApiError> {
        let _one_at_a_time = self
            .replace_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(path) = &self.file {
            let text = to_toml(&running)?;
            write_atomically(path, &text).map_err(|e| {
                tracing::error!(file = %path.display(), error = %e, "experiments file not written");
                ApiError::new(
                    Code::ExperimentsSaveFailed,
                    format!(
                        "the experiments file {} could not be written ({e}); the running \
                         experiments are unchanged",
                        path.display()
                    ),
                )
            })?;
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

/// The list `assigned`'s variant serves to `customer_id` (see the module
/// docs for how the request's `k`, `category` and `exclude` combine with it).
pub(crate) async fn serve(
    state: &AppState,
    engine: &Arc<Engine>,
    assigned: &Assigned,
    customer_id: &str,
    requested_k: Option<usize>,
    exclude: HashSet<u32>,
    category: Option<String>,
) -> Result<(Source, Ranked), ApiError> {
    let strategy = &assigned.variant().strategy;
    let k = requested_k.map_or(strategy.k(), |k| k.min(strategy.k()));
    let category = strategy.category().map(str::to_string).or(category);
    let customer = engine.customers().get(customer_id);
    let recent = state.recent_purchases().items_of(engine, customer_id);
    let mut filter = ListFilter {
        exclude,
        category,
        include_purchased: strategy.include_purchased(),
    };
    if !filter.include_purchased {
        filter.exclude.extend(recent.iter().map(|(item, _)| *item));
    }
    match strategy {
        Strategy::Als { .. } => {
            personal(state, engine, customer, k, filter, Engine::recommend).await
        }
        Strategy::ForYou { .. } => {
            personal(state, engine, customer, k, filter, Engine::for_you).await
        }
        Strategy::Popular { .. } => {
            if let Some(c) = customer {
                let (bought, _) = engine.history().row(c as usize);
                filter.exclude.extend(bought.iter().copied());
            }
            Ok((Source::Fallback, engine.fallback(k, &filter)))
        }
        Strategy::BuyAgain { .. } => match customer {
            Some(c) => {
                let due = engine.buy_again(c, k + recent.len(), &filter);
                let due = apply_recent_to_due(engine, due, &recent, k);
                Ok((
                    Source::Model,
                    due.iter().map(|d| (d.item, d.due_score)).collect(),
                ))
            }
            None => {
                filter.include_purchased = false;
                filter.exclude.extend(recent.iter().map(|(item, _)| *item));
                Ok((Source::Fallback, engine.fallback(k, &filter)))
            }
        },
        Strategy::Blend {
            buy_again_slots, ..
        } => {
            // The due items first (the buy-again list, with the overlay's
            // restarted clocks), then new items from ALS; one list, scored by
            // rank (k for the first place down to 1) since the two parts'
            // scores are on different scales.
            let slots = (*buy_again_slots).min(k);
            let mut ranked: Vec<u32> = Vec::with_capacity(k);
            let mut source = Source::Fallback;
            if let Some(c) = customer {
                let due_filter = ListFilter {
                    include_purchased: true,
                    ..filter.clone()
                };
                let due = engine.buy_again(c, slots + recent.len(), &due_filter);
                let due = apply_recent_to_due(engine, due, &recent, slots);
                // A just-bought item moved to the end with score 0 is not due.
                ranked.extend(due.iter().filter(|d| d.due_score > 0.0).map(|d| d.item));
                if !ranked.is_empty() {
                    source = Source::Model;
                }
            }
            filter.exclude.extend(ranked.iter().copied());
            let (new_source, new_items) = personal(
                state,
                engine,
                customer,
                k - ranked.len(),
                filter,
                Engine::recommend,
            )
            .await?;
            if new_source == Source::Model {
                source = Source::Model;
            }
            ranked.extend(new_items.iter().map(|&(i, _)| i));
            let n = ranked.len();
            Ok((
                source,
                ranked
                    .into_iter()
                    .enumerate()
                    .map(|(r, i)| (i, (n - r) as f32))
                    .collect(),
            ))
        }
    }
}

/// A personal list: on the scoring pool for a known customer, inline (the
/// popularity list) for an unknown one, as the plain route does.
async fn personal(
    state: &AppState,
    engine: &Arc<Engine>,
    customer: Option<u32>,
    k: usize,
    filter: ListFilter,
    list: fn(&Engine, Option<u32>, usize, &ListFilter) -> (Source, Ranked),
) -> Result<(Source, Ranked), ApiError> {
    match customer {
        None => Ok(list(engine, None, k, &filter)),
        Some(c) => {
            let scoring = Arc::clone(engine);
            state
                .score(move || list(&scoring, Some(c), k, &filter))
                .await
        }
    }
}

/// The idempotency key of an exposure: a retry of the same request (same
/// request id, experiment and customer) is logged once, while a request id
/// reused for another customer or experiment (by a client, or guessed ahead
/// of the server's own counter) does not hide that exposure. The experiment
/// and customer enter as a hash so the id stays within the event id limit.
fn exposure_id(request_id: &str, experiment: &str, customer_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(experiment.as_bytes());
    h.update([0u8]);
    h.update(customer_id.as_bytes());
    let digest = h.finalize();
    let mut id = format!("exposure:{request_id}:");
    for b in &digest[..8] {
        use std::fmt::Write;
        write!(id, "{b:02x}").expect("writing to a String");
    }
    id
}

/// Hands the exposure of a served list to the event log, without waiting;
/// nothing happens without an event log. An exposure that is not a valid
/// event (a customer id with control characters) is dropped and counted.
pub(crate) fn log_exposure(
    state: &AppState,
    engine: &Engine,
    assigned: &Assigned,
    customer_id: &str,
    ranked: &Ranked,
    request_id: RequestId,
) {
    let Some(sink) = state.event_sink() else {
        return;
    };
    let items: Vec<&str> = ranked.iter().map(|&(i, _)| engine.items().id(i)).collect();
    let value = json!({
        "id": exposure_id(request_id.as_str(), assigned.experiment().name(), customer_id),
        "type": "exposure",
        "time": now_secs(),
        "customer": customer_id,
        "list": assigned.variant().strategy.list().to_string(),
        "items": items,
        "experiment": assigned.experiment().name(),
        "variant": assigned.variant().name,
        "request_id": request_id.as_str(),
    });
    match event_from_value(value) {
        Ok(event) => {
            sink.submit_exposure(event);
        }
        Err(e) => {
            state
                .metrics()
                .events
                .exposures_dropped
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(field = %e.field, error = %e.message, "experiment exposure dropped: not a valid event");
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The body of `PUT /v1/admin/experiments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExperimentsBody {
    /// Kept as JSON values so that an error names the experiment's position.
    experiments: Vec<serde_json::Value>,
}

/// `GET /v1/admin/experiments`: the running configuration as JSON specs,
/// and the file it is saved to (`null` without one).
pub(crate) async fn get_experiments(
    state: web::Data<AppState>,
    _query: web::Query<NoQuery>,
) -> HttpResponse {
    let experiments = state.experiments();
    HttpResponse::Ok().json(json!({
        "experiments": experiments.running.load().specs(),
        "file": experiments.file.as_ref().map(|p| p.display().to_string()),
    }))
}

/// `PUT /v1/admin/experiments`: replaces every experiment.
pub(crate) async fn put_experiments(
    state: web::Data<AppState>,
    _query: web::Query<NoQuery>,
    body: web::Json<JsonObject<ExperimentsBody>>,
) -> Result<HttpResponse, ApiError> {
    let invalid = |message: String| ApiError::new(Code::InvalidExperiments, message);
    let specs = body
        .into_inner()
        .0
        .experiments
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<ExperimentSpec>(v)
                .map_err(|e| invalid(format!("experiments[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let running = ExperimentsConfig::from_specs(specs)
        .and_then(Running::new)
        .map_err(|e| invalid(e.to_string()))?;
    let specs = running.specs();
    let writer = state.clone();
    let saved = web::block(move || writer.experiments().replace(running)).await??;
    Ok(HttpResponse::Ok().json(json!({
        "experiments": specs,
        "file": saved.as_ref().map(|p| p.display().to_string()),
        // Whether a restart keeps the change: only with an experiments file.
        "saved": saved.is_some(),
    })))
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

/// Replaces `path` with `text` so that a crash leaves the old or the new
/// file whole: a temporary file in the same directory, fsynced, renamed over
/// `path`, then the directory fsynced.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the experiments path names no file"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename has replaced the file: from here on the new text is what a
    // restart reads, so a failed directory fsync must not report the save as
    // failed (the caller would keep the old set running while the file holds
    // the new one). It only weakens durability across a power loss.
    #[cfg(unix)]
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "experiments file saved, but its directory could not be fsynced");
    }
    Ok(())
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
