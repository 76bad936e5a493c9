//! `GET /v1/customers/{customer_id}/recommendations`.
//!
//! Personal scores cost one dot product per catalog item plus a top-k pass, so
//! they run on the blocking pool ([`AppState::score`]). A customer the model does
//! not know gets the popularity list, which is cheap and answered inline.
//!
//! Without `include_purchased`, items the customer bought since the model's
//! data end (logged with `POST /v1/events`) are left out like the items the
//! model saw them buy.

use super::{
    ScoredItem, check_category, check_id, check_ids, known_items, model_response, parse_k,
    scored_items, snapshot,
};
use crate::error::ApiError;
use crate::state::AppState;
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

/// The answer of the recommendations endpoint.
#[derive(Debug, Serialize)]
struct CustomerList<'a> {
    customer_id: &'a str,
    source: Source,
    items: Vec<ScoredItem<'a>>,
}

/// Recommendations for one customer, or the fallback list for an unknown one.
pub(crate) async fn recommendations(
    state: web::Data<AppState>,
    customer_id: web::Path<String>,
    query: web::Query<RecommendationQuery>,
) -> Result<HttpResponse, ApiError> {
    let customer_id = customer_id.into_inner();
    let query = query.into_inner();
    check_id(&customer_id)?;
    let k = parse_k(query.k.as_deref())?;
    let category = check_category(query.category)?;
    // Empty entries (`exclude=a,,b,`) are skipped; ids containing a comma cannot be excluded here.
    let exclude: Vec<&str> = query
        .exclude
        .as_deref()
        .map(|list| list.split(',').filter(|id| !id.is_empty()).collect())
        .unwrap_or_default();
    check_ids("exclude", exclude.iter().copied())?;

    let engine = snapshot(&state)?;
    let mut filter = ListFilter {
        exclude: known_items(&engine, exclude.into_iter()),
        category,
        include_purchased: query.include_purchased.unwrap_or(false),
    };
    if !filter.include_purchased {
        // Items bought since the model's data end (`POST /v1/events`) are
        // purchased too, for a known customer and an unknown one alike.
        let recent = state.recent_purchases().items_of(&engine, &customer_id);
        filter
            .exclude
            .extend(recent.into_iter().map(|(item, _)| item));
    }
    let result = match engine.customers().get(&customer_id) {
        None => Ok(engine.for_you(None, k, &filter)),
        Some(customer) => {
            let scoring = Arc::clone(&engine);
            state
                .score(move || scoring.for_you(Some(customer), k, &filter))
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
    });
    model_response(&engine, result)
}
