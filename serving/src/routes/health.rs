//! `GET /healthz` (the process is up) and `GET /readyz` (a model is loaded).

use super::{json_with_version, snapshot};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// Always `200 {"status":"ok"}` while the process answers at all.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `200` with the model version when a model is loaded, `503 service_unavailable` otherwise.
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let version = &engine.manifest().model_version;
    Ok(json_with_version(
        version,
        &json!({ "status": "ready", "model_version": version }),
    ))
}
