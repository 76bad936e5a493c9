//! `GET /v1/items/{item_id}/similar` and `GET /v1/items/{item_id}/bought-together`.
//!
//! Similar items come from a search of the model's similar-items index (an
//! exact scan of the catalog, or an HNSW graph for a large one), which costs
//! as much as scoring the whole catalog for one customer or more. It
//! therefore runs on the
//! blocking pool ([`AppState::score`]) like personal recommendations, at
//! most once per item: a model searched exactly carries every item's list
//! (up to [`encore_model::engine::SIMILAR_CACHE_LEN`]) from its fit, a
//! graph-searched one keeps each item's list after its first request, and
//! requests for a kept list take a prefix of it inline.
//! Bought-together reads one precomputed row of at most `copurchase.neighbours`
//! entries (under a microsecond) and is answered inline.
//!
//! Only `k` is accepted: a category filter would make a graph search widen
//! towards the whole catalog for a rare category.

use super::{IdQuery, KQuery, ScoredItem, model_response, scored_items, snapshot};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use encore_model::engine::{Engine, ListFilter, Ranked};
use serde::Serialize;
use std::sync::Arc;

/// The answer of the item endpoints.
#[derive(Debug, Serialize)]
struct ItemList<'a> {
    item_id: &'a str,
    items: Vec<ScoredItem<'a>>,
}

/// Items closest to the item in the embedding space.
pub(crate) async fn similar(
    state: web::Data<AppState>,
    IdQuery(item_id, k): IdQuery<KQuery>,
) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let filter = ListFilter::default();
    let ranked = match find_item(&engine, &item_id) {
        Ok(item) => match engine.similar_cached(item, k, &filter) {
            Some(list) => Ok(list),
            None => {
                let scoring = Arc::clone(&engine);
                state.score(move || scoring.similar(item, k, &filter)).await
            }
        },
        Err(e) => Err(e),
    };
    answer(&engine, &item_id, ranked)
}

/// Items most often bought in the same orders as the item.
pub(crate) async fn bought_together(
    state: web::Data<AppState>,
    IdQuery(item_id, k): IdQuery<KQuery>,
) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let ranked = find_item(&engine, &item_id)
        .map(|item| engine.bought_together(item, k, &ListFilter::default()));
    answer(&engine, &item_id, ranked)
}

fn find_item(engine: &Engine, item_id: &str) -> Result<u32, ApiError> {
    engine
        .items()
        .get(item_id)
        .ok_or_else(|| ApiError::item_not_found(item_id))
}

fn answer(
    engine: &Engine,
    item_id: &str,
    ranked: Result<Ranked, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let list = ranked.map(|ranked| ItemList {
        item_id,
        items: scored_items(engine, &ranked),
    });
    model_response(engine, list)
}
