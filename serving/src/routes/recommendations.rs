//! `POST /v1/recommendations`: recommendations for an anonymous basket.
//!
//! The known basket items are folded into the ALS space (a small linear solve)
//! and every catalog item is scored, so this runs on the blocking pool
//! ([`AppState::score`]). A basket with no known item gets the popularity list,
//! answered inline.

use super::{
    JsonObject, ScoredItem, check_category, check_ids, json_k, known_items, model_response,
    scored_items, snapshot,
};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use encore_model::engine::{ListFilter, Source};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// The body of a basket request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BasketRequest {
    /// Item ids in the basket; unknown ones are reported, not refused.
    items: Vec<String>,
    /// Kept as any JSON value so that a bad value answers `invalid_k`.
    #[serde(default)]
    k: Option<serde_json::Value>,
    /// Item ids never to return; unknown ones are ignored.
    #[serde(default)]
    exclude: Vec<String>,
    /// Only items of this catalog category.
    #[serde(default)]
    category: Option<String>,
}

/// The answer of the basket endpoint.
#[derive(Debug, Serialize)]
struct BasketList<'a> {
    source: Source,
    items: Vec<ScoredItem<'a>>,
    /// Basket ids the model does not know, in request order, once each.
    unknown_items: Vec<String>,
}

/// Recommendations for the basket in the body.
pub(crate) async fn basket(
    state: web::Data<AppState>,
    body: web::Json<JsonObject<BasketRequest>>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner().0;
    let k = json_k(request.k.as_ref())?;
    check_ids("items", request.items.iter().map(String::as_str))?;
    check_ids("exclude", request.exclude.iter().map(String::as_str))?;
    let category = check_category(request.category)?;

    let engine = snapshot(&state)?;
    let mut basket = Vec::with_capacity(request.items.len());
    let mut unknown_items = Vec::new();
    let mut seen_unknown = HashSet::new();
    for id in request.items {
        match engine.items().get(&id) {
            Some(item) => basket.push(item),
            None if seen_unknown.insert(id.clone()) => unknown_items.push(id),
            None => {}
        }
    }
    let filter = ListFilter {
        exclude: known_items(&engine, request.exclude.iter().map(String::as_str)),
        category,
        include_purchased: false,
    };
    let result = if basket.is_empty() {
        // No scoring: the engine answers an empty basket with the popularity list.
        Ok(engine.recommend_basket(&[], k, &filter))
    } else {
        let scoring = Arc::clone(&engine);
        state
            .score(move || scoring.recommend_basket(&basket, k, &filter))
            .await
    };
    if let Ok((source, _)) = &result {
        state
            .metrics()
            .list_served(*source == encore_model::engine::Source::Fallback);
    }
    let result = result.map(|(source, ranked)| BasketList {
        source,
        items: scored_items(&engine, &ranked),
        unknown_items,
    });
    model_response(&engine, result)
}
