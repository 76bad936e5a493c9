//! Online experiments in the routes: what a variant serves, the exposures
//! the server logs, and the admin API (`GET` and `PUT /v1/admin/experiments`,
//! `GET /v1/admin/experiments/{name}/report`).
//! The running configuration, the placements and the assignment are
//! [`crate::experiments`]'.
//!
//! * **Serving a variant.** The customer id is assigned with
//!   [`Experiment::assign`](encore_model::experiment::Experiment::assign)
//!   (unknown customers too: the hash needs only the id) and the variant's
//!   strategy is served as the plain route would serve its list: `als` is
//!   the ALS list ([`Engine::recommend`]; purchased items left out unless
//!   `include_purchased`), `for_you` the list of
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
//!   (`EventSink::submit_exposure`): exposures are at most
//!   once, dropped and counted when the writer's queue is full or the log
//!   failed, while posted events stay durable.
//! * **Admin API.** `GET` answers the running configuration as JSON specs;
//!   `PUT` replaces the whole set from `{"experiments": [spec, ...]}`,
//!   validated like the file (`400 invalid_experiments` naming the
//!   experiment, variant and key; the old set keeps running), and saves it
//!   to the experiments file when there is one (see [`crate::experiments`]).
//!   The report of a running experiment is [`report_from_dir`] over the
//!   server's event log with the running configuration (variants, shares,
//!   control), the JSON of `encore-train experiment-report --format json`;
//!   it streams the log twice, so it runs on the scoring queue.

use super::{IdQuery, IdRouteQuery, JsonObject, NoQuery};
use crate::error::{ApiError, Code};
use crate::events::due_with_recent;
use crate::experiments::{Assigned, Running};
use crate::state::AppState;
use crate::trace::RequestId;
use actix_web::{HttpResponse, web};
use encore_data::events::event_from_value;
use encore_data::timestamp::now_secs;
use encore_model::engine::{Engine, ListFilter, Ranked, Source};
use encore_model::experiment::report::{
    DEFAULT_WINDOW_DAYS, ReportError, ReportOptions, report_from_dir,
};
use encore_model::experiment::{ExperimentSpec, ExperimentsConfig, Strategy};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The response header naming the experiment a list was served under.
pub const EXPERIMENT_HEADER: &str = "x-encore-experiment";
/// The response header naming the variant a list was served under.
pub const VARIANT_HEADER: &str = "x-encore-variant";
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
                let due = due_with_recent(engine, c, k, &filter, &recent);
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
                let due = due_with_recent(engine, c, slots, &due_filter, &recent);
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
        "experiments": experiments.specs(),
        "file": experiments.file().map(|p| p.display().to_string()),
    }))
}

/// The query of `GET /v1/admin/experiments/{name}/report`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    /// The purchase window after a customer's first exposure, in days.
    window_days: Option<f64>,
}

impl IdRouteQuery for ReportQuery {
    /// The window, [`DEFAULT_WINDOW_DAYS`] when absent; the report checks it.
    type Checked = f64;

    fn check(self) -> Result<f64, ApiError> {
        Ok(self.window_days.unwrap_or(DEFAULT_WINDOW_DAYS))
    }
}

/// `GET /v1/admin/experiments/{name}/report`: the outcome so far of the
/// running experiment `name`, from the event log.
pub(crate) async fn report(
    state: web::Data<AppState>,
    IdQuery(name, window_days): IdQuery<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let experiment = state.experiments().get(&name).ok_or_else(|| {
        ApiError::new(
            Code::ExperimentNotFound,
            format!("no running experiment is called {name:?}"),
        )
    })?;
    let dir = state.event_dir().map(ToOwned::to_owned).ok_or_else(|| {
        ApiError::new(
            Code::EventsDisabled,
            "experiment reports read the event log; start the server with --events DIR",
        )
    })?;
    let options = ReportOptions {
        experiment: name,
        window_days,
        config: Some(experiment),
        control: None,
    };
    match state.score(move || report_from_dir(&dir, &options)).await? {
        Ok((report, _)) => Ok(HttpResponse::Ok().json(report)),
        Err(e @ ReportError::Window(_)) => Err(ApiError::new(
            Code::InvalidQuery,
            format!("window_days: {e}"),
        )),
        Err(e @ ReportError::NoExposures { .. }) => {
            Err(ApiError::new(Code::NoExposures, e.to_string()))
        }
        Err(ReportError::Log(e)) => Err(ApiError::new(
            Code::EventLogUnreadable,
            format!("the experiment report cannot read the event log: {e}"),
        )),
        Err(e) => Err(ApiError::new(
            Code::Internal,
            format!("the experiment report failed: {e}"),
        )),
    }
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
