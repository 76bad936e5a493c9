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
//! The routes are registered in one place (`routes/mod.rs`); the route
//! table, the parameters they share, the error codes and the metrics are
//! written once, in `docs/api.md`, and tests compare that page with the code.
//! [`openapi::document`] describes the same routes for `GET /openapi.json`.
//!
//! Every answer produced from a model carries the header
//! [`x-encore-model-version`](MODEL_VERSION_HEADER); each request reads one
//! snapshot of the model, so a reload never mixes two models in one answer.
//! Every failure has one JSON shape and a code of [`Code`] (the table is in
//! `docs/api.md`).
//!
//! Similar items, personal and basket recommendations and the members of an
//! audience run on the blocking thread pool behind a bounded queue
//! ([`AppState::score`]; when it is full they answer `503 overloaded` with
//! `Retry-After`), unless the answer is already
//! at hand: an item's kept similar list, a customer's precomputed lists
//! ([`Engine::for_you_cached`](encore_model::engine::Engine::for_you_cached)).
//! Everything else answers inline on the async workers. `bench/load.sh`
//! measures the server under load (figures in `docs/benchmarks.md`).
//!
//! Experiments (`encore-serve --experiments FILE`, or the admin API) run on
//! the personal recommendations list: each customer is assigned a variant by
//! a salted hash of their id and served its list, and with an event log the
//! exposure is logged without waiting for the disk (at most once).
//!
//! With `encore-serve --api-keys FILE`, the admin routes need an admin
//! key, events a write key and customer data a read key (see [`auth`]).
//! Without it nothing is authenticated, and `encore-serve` listens on
//! loopback only unless told `--insecure-no-auth`. Whatever the keys, the
//! admin and event routes refuse requests from web pages of other origins.
//! docs/security.md says who can reach what, with the tests that show it.
//!
//! [`dashboard`] serves a dashboard for marketers at `/`: static files
//! compiled into the binary that read the same JSON API.

mod access;
pub mod auth;
pub mod config;
pub mod curl;
pub mod dashboard;
mod deadline;
pub mod error;
mod events;
mod experiments;
pub mod limits;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod state;
mod trace;
mod write_deadline;

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
        .configure(dashboard::configure)
        .default_service(web::to(routes::route_not_found))
        .wrap(from_fn(access::require_keys))
        .wrap(from_fn(deadline::body_deadline))
        .wrap(Compress::default())
        .wrap(from_fn(trace::trace_request))
}
