//! `encore-serving`: the HTTP API of Encore, answering recommendation queries
//! from a trained model directory written by `encore-train`.
//!
//! The crate is a library so that the `encore-serve` binary and the tests build
//! the very same application with [`create_app`].
//!
//! ```no_run
//! use actix_web::{HttpServer, web};
//! use encore_serving::{AppState, create_app};
//!
//! #[actix_web::main]
//! async fn main() -> anyhow::Result<()> {
//!     let state = web::Data::new(AppState::load("model")?);
//!     HttpServer::new(move || create_app(state.clone()))
//!         .bind("127.0.0.1:8080")?
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Routes
//!
//! | method | path                                         | answers |
//! |--------|----------------------------------------------|---------|
//! | GET    | `/v1/items/{item_id}/similar?k=`             | items closest in the ALS embedding space |
//! | GET    | `/v1/items/{item_id}/bought-together?k=`     | items most often bought in the same orders |
//! | GET    | `/v1/customers/{customer_id}/recommendations?k=&exclude=&category=&include_purchased=` | personal list, or the popularity list for an unknown customer; under a running experiment the list of the customer's variant, naming experiment and variant |
//! | GET    | `/v1/customers/{customer_id}/profile`        | RFM scores and segment, lifecycle stage, orders, spend, P(alive), CLV |
//! | GET    | `/v1/customers/{customer_id}/next-purchase?k=` | P(alive), expected purchases in 30 and 90 days, predicted next purchase date, 30-day buying probability, due replenishments, suggested items |
//! | GET    | `/v1/customers/{customer_id}/buy-again?k=`   | previously bought items, most due first |
//! | GET    | `/v1/audiences/reactivation?stage=&segment=&min_p_alive=&min_clv=&k=&limit=&as_of=&format=` | streamed NDJSON (or CSV) audience, one customer a line |
//! | GET    | `/v1/kpis`                                   | repurchase KPIs, stage and segment counts, customer model fits |
//! | POST   | `/v1/recommendations`                        | list for an anonymous basket `{"items":[..],"k":..,"exclude":[..],"category":..}` |
//! | GET    | `/v1/model`                                  | the serving model's manifest (without its file table) |
//! | POST   | `/v1/admin/reload`                           | reload the model directory; the old model stays on failure |
//! | GET    | `/v1/admin/experiments`                      | the running experiments as JSON specs |
//! | PUT    | `/v1/admin/experiments`                      | replace every experiment (validated; written to the experiments file, if any) |
//! | POST   | `/v1/events`                                 | log purchase, exposure and click events (durable, idempotent) |
//! | GET    | `/metrics`                                   | Prometheus text format: requests, latency histograms, lists by source, model version and age, reloads (see [`metrics`]) |
//! | GET    | `/openapi.json`                              | the OpenAPI 3.0 description of these routes |
//! | GET    | `/healthz`                                   | always `200 {"status":"ok"}` |
//! | GET    | `/readyz`                                    | `200` once a model is loaded, else `503 service_unavailable` |
//!
//! Lists are `{"item_id", "score", "title"?, "category"?}`, best first (greater
//! score is better); `title` and `category` are left out when the catalog has
//! none. Recommendation answers say `"source": "model"` or `"fallback"`.
//!
//! Parameters:
//! - `k` is the list length: default [`limits::DEFAULT_K`], from 1 to
//!   [`limits::MAX_K`]; anything else is `400 invalid_k`.
//! - Ids are opaque strings, percent-decoded from the path (`a%2Fb` is `a/b`;
//!   escapes that are not UTF-8 become U+FFFD, as actix decodes them),
//!   1 to [`limits::MAX_ID_BYTES`] bytes, else `400 invalid_id`. In the `exclude`
//!   query parameter they are comma-separated (form-decoded, so `+` is a space:
//!   send `%2B`); unknown excluded ids are ignored.
//! - Unknown query parameters and unknown body fields are refused
//!   (`invalid_query`, `invalid_json`), so that a typo is not silently ignored.
//!
//! Every answer produced from a model carries the header
//! [`x-encore-model-version`](MODEL_VERSION_HEADER); each request reads one
//! snapshot of the model, so a reload never mixes two models in one answer.
//! Every failure has one JSON shape and a code from the table in [`error`].
//!
//! Similar items, personal and basket recommendations run on the blocking
//! thread pool behind a bounded queue ([`AppState::score`]; when it is full they
//! answer `503 overloaded` with `Retry-After`), unless the answer is already
//! at hand: an item's kept similar list, a customer's precomputed lists
//! ([`Engine::for_you_cached`](encore_model::engine::Engine::for_you_cached)).
//! Everything else answers inline on the async workers. Measured per query
//! when scored, release build, 64 factors, HNSW `ef_search` 128, synthetic
//! purchases:
//!
//! | items | similar | bought-together | fallback | customer | basket of 3 |
//! |-------|---------|-----------------|----------|----------|-------------|
//! | 2k    | 236 µs  | < 1 µs          | < 1 µs   | 23 µs    | 95 µs       |
//! | 18k   | 864 µs  | < 1 µs          | < 1 µs   | 227 µs   | 247 µs      |
//! | 43k   | 1067 µs | < 1 µs          | < 1 µs   | 582 µs   | 590 µs      |
//!
//! Experiments (`encore-serve --experiments FILE`, or the admin API) run on
//! the personal recommendations list: each customer is assigned a variant by
//! a salted hash of their id and served its list, and with an event log the
//! exposure is logged without waiting for the disk (at most once).
//!
//! With `encore-serve --api-keys FILE`, the admin routes need an admin
//! key and, if the file says so, every read route a key too (see [`auth`]).
//! Without it nothing is authenticated; `encore-serve` binds to loopback by
//! default for that reason.

pub mod auth;
pub mod config;
pub mod curl;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod state;
mod trace;

pub use error::{ApiError, Code, ErrorType};
pub use state::{AppState, Reloaded};
pub use trace::{REQUEST_ID_HEADER, RequestId};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, web};

/// The response header naming the model version an answer came from.
pub const MODEL_VERSION_HEADER: &str = "x-encore-model-version";

/// The application: every route, the error handlers of the extractors, the
/// default service and the request tracing, over `state`.
pub fn create_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(limits::JSON_BODY_LIMIT)
                .error_handler(|err, _req| ApiError::from_json(err).into()),
        )
        .app_data(
            web::QueryConfig::default().error_handler(|err, _req| ApiError::from_query(err).into()),
        )
        .app_data(
            web::PathConfig::default().error_handler(|err, _req| ApiError::from_path(err).into()),
        )
        .configure(routes::configure)
        .default_service(web::to(routes::route_not_found))
        .wrap(from_fn(auth::require_keys))
        .wrap(Compress::default())
        .wrap(from_fn(trace::trace_request))
}
