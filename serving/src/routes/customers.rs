//! `GET /v1/customers/{customer_id}/recommendations`.
//!
//! Personal scores cost one dot product per catalog item plus a top-k pass, so
//! they run on the blocking pool ([`AppState::score`]). A customer the model does
//! not know gets the popularity list, which is cheap and answered inline.
//!
//! Without `include_purchased`, items the customer bought since the model's
//! data end (logged with `POST /v1/events`) are left out like the items the
//! model saw them buy.
//!
//! When an experiment runs on this list, the customer's variant decides what
//! is served (see [`super::experiments`]); the answer then names the
//! experiment and the variant (in the body and the `x-encore-experiment` and
//! `x-encore-variant` headers), and the exposure is logged. Every answer
//! carries its `request_id` (the `X-Request-Id` header's value).

use super::experiments::{self, EXPERIMENT_HEADER, VARIANT_HEADER};
use super::{
    IdQuery, IdRouteQuery, ScoredItem, check_category, check_ids, known_items, model_response,
    parse_k, scored_items, snapshot,
};
use crate::error::ApiError;
use crate::experiments::Placement;
use crate::state::AppState;
use crate::trace::RequestId;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, web};
use encore_model::engine::{ListFilter, Source};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Query parameters of the recommendations endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecommendationQuery {
    /// Kept as text so that a bad value answers `invalid_k`, not `invalid_query`.
    k: Option<String>,
    /// Comma-separated item ids never to return; unknown ids are ignored.
    exclude: Option<String>,
    /// Only items of this catalog category.
    category: Option<String>,
    /// Also return items the customer already bought (default `false`).
    include_purchased: Option<bool>,
}

/// [`RecommendationQuery`] checked, defaults applied.
pub(crate) struct RecommendationParams {
    k: usize,
    /// `k` when the request gives one: it caps an experiment's list.
    requested_k: Option<usize>,
    exclude: Vec<String>,
    category: Option<String>,
    include_purchased: bool,
}

impl IdRouteQuery for RecommendationQuery {
    type Checked = RecommendationParams;

    /// Checks `k`, then `category`, then `exclude`.
    fn check(self) -> Result<RecommendationParams, ApiError> {
        let k = parse_k(self.k.as_deref())?;
        let category = check_category(self.category)?;
        // Empty entries (`exclude=a,,b,`) are skipped; ids containing a comma cannot be excluded here.
        let exclude: Vec<String> = self
            .exclude
            .as_deref()
            .map(|list| {
                list.split(',')
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        check_ids("exclude", exclude.iter().map(String::as_str))?;
        Ok(RecommendationParams {
            k,
            requested_k: self.k.is_some().then_some(k),
            exclude,
            category,
            include_purchased: self.include_purchased.unwrap_or(false),
        })
    }
}

/// The answer of the recommendations endpoint.
#[derive(Debug, Serialize)]
struct CustomerList<'a> {
    customer_id: &'a str,
    source: Source,
    items: Vec<ScoredItem<'a>>,
    /// The experiment and variant the list was served under, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    experiment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    request_id: &'a str,
}

/// Recommendations for one customer, or the fallback list for an unknown one.
pub(crate) async fn recommendations(
    state: web::Data<AppState>,
    IdQuery(customer_id, params): IdQuery<RecommendationQuery>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let RecommendationParams {
        k,
        requested_k,
        exclude,
        category,
        include_purchased,
    } = params;
    let engine = snapshot(&state)?;
    let exclude = known_items(&engine, exclude.iter().map(String::as_str));
    if let Some(assigned) = state
        .experiments()
        .assign(Placement::Recommendations, &customer_id)
    {
        let result = experiments::serve(
            &state,
            &engine,
            &assigned,
            &customer_id,
            requested_k,
            exclude,
            category,
        )
        .await;
        if let Ok((source, ranked)) = &result {
            state.metrics().list_served(*source == Source::Fallback);
            experiments::log_exposure(&state, &engine, &assigned, &customer_id, ranked, request_id);
        }
        let (experiment, variant) = (assigned.experiment().name(), &assigned.variant().name);
        let result = result.map(|(source, ranked)| CustomerList {
            customer_id: &customer_id,
            source,
            items: scored_items(&engine, &ranked),
            experiment: Some(experiment),
            variant: Some(variant),
            request_id: request_id.as_str(),
        });
        let mut res = model_response(&engine, result)?;
        for (name, value) in [(EXPERIMENT_HEADER, experiment), (VARIANT_HEADER, variant)] {
            if let Ok(value) = HeaderValue::from_str(value) {
                res.headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
        return Ok(res);
    }
    let mut filter = ListFilter {
        exclude,
        category,
        include_purchased,
    };
    if !filter.include_purchased {
        // Items bought since the model's data end (`POST /v1/events`) are
        // purchased too, for a known customer and an unknown one alike.
        let recent = state.recent_purchases().items_of(&engine, &customer_id);
        filter
            .exclude
            .extend(recent.into_iter().map(|(item, _)| item));
    }
    let customer = engine.customers().get(&customer_id);
    // Lists that need no scoring of the catalog are answered inline; the
    // rest go to the scoring pool.
    let result = match engine.for_you_cached(customer, k, &filter) {
        Some(answer) => Ok(answer),
        None => {
            let scoring = Arc::clone(&engine);
            state
                .score(move || scoring.for_you(customer, k, &filter))
                .await
        }
    };
    if let Ok((source, _)) = &result {
        state.metrics().list_served(*source == Source::Fallback);
    }
    let result = result.map(|(source, ranked)| CustomerList {
        customer_id: &customer_id,
        source,
        items: scored_items(&engine, &ranked),
        experiment: None,
        variant: None,
        request_id: request_id.as_str(),
    });
    model_response(&engine, result)
}
