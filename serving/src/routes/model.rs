//! `GET /v1/model` (what is serving), `GET /v1/model/history` (the
//! store's promotions) and `POST /v1/admin/reload`.
//!
//! The reload endpoint needs an admin key once the server has keys (see
//! [`crate::auth`]); it re-reads the key file, then the model directory or
//! store (both fixed at start-up: a request cannot point it elsewhere).

use super::{json_with_version, model_response, snapshot};
use crate::error::ApiError;
use crate::limits::JSON_BODY_LIMIT;
use crate::state::AppState;
use crate::state::ModelSource;
use actix_web::error::JsonPayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, web};
use encore_model::artifact::read_manifest;
use encore_model::manifest::Manifest;
use futures_util::StreamExt as _;
use serde_json::json;

/// The manifest of the serving model, without its table of files, plus the
/// number of customers and items it knows.
pub(crate) async fn manifest(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    // Destructured in full so that a new manifest field is a compile error here
    // until someone decides whether to publish it.
    let Manifest {
        format_version,
        model_version,
        created_at,
        encore_version,
        data,
        config,
        als,
        metrics,
        for_you,
        files: _,
    } = engine.manifest();
    let body = json!({
        "format_version": format_version,
        "model_version": model_version,
        "created_at": created_at,
        "encore_version": encore_version,
        "for_you": for_you,
        "data": data,
        "config": config,
        "als": als,
        "metrics": metrics,
        "customers": engine.customers().len(),
        "items": engine.items().len(),
        "reloads": reload_stats(&state),
    });
    model_response(&engine, Ok(body))
}

/// `GET /v1/model/history`: every promotion of the model store, newest
/// first, each with the promotion gate's figures recorded in that version's
/// manifest (`null` for a version published without a gate, or whose
/// manifest cannot be read: `error` says why). A server reading one model
/// directory has no history: `source` is `directory` and the list is empty.
pub(crate) async fn history(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let serving = state.engine().map(|e| e.manifest().model_version.clone());
    let ModelSource::Store(store) = state.source().clone() else {
        return Ok(HttpResponse::Ok().json(json!({
            "source": "directory",
            "serving_version": serving,
            "current": null,
            "promotions": [],
        })));
    };
    let read = web::block(move || -> Result<serde_json::Value, String> {
        let current = store.current().map_err(|e| e.to_string())?;
        let promotions = store.promotions().map_err(|e| e.to_string())?;
        let mut manifests = std::collections::HashMap::new();
        let rows: Vec<serde_json::Value> = promotions
            .into_iter()
            .rev()
            .map(|(at, version)| {
                let manifest = manifests
                    .entry(version.clone())
                    .or_insert_with(|| read_manifest(&store.dir_of(&version)));
                let (gate, error) = match manifest {
                    Ok(m) => (m.metrics.get("gate").cloned(), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                json!({"at": at, "version": version, "gate": gate, "error": error})
            })
            .collect();
        Ok(json!({"current": current, "promotions": rows}))
    })
    .await?
    .map_err(|e| {
        ApiError::new(
            crate::error::Code::StoreUnreadable,
            format!("the model store's history cannot be read: {e}"),
        )
    })?;
    let mut body = read;
    body["source"] = "store".into();
    body["serving_version"] = serving.into();
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::document())
}

/// `GET /metrics` in the Prometheus text format (see [`crate::metrics`]).
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;
    let mut out = String::new();
    state.metrics().render_requests(&mut out);
    if let Some(engine) = state.engine() {
        let m = engine.manifest();
        let secs = |t: Option<&str>| t.and_then(encore_data::timestamp::parse_timestamp);
        out.push_str(
            "# HELP encore_model_info The serving model.\n# TYPE encore_model_info gauge\n",
        );
        let _ = writeln!(
            out,
            "encore_model_info{{version=\"{}\"}} 1",
            crate::metrics::escape(&m.model_version)
        );
        if let Some(t) = secs(Some(&m.created_at)) {
            out.push_str("# HELP encore_model_created_timestamp_seconds When the serving model was trained.\n# TYPE encore_model_created_timestamp_seconds gauge\n");
            let _ = writeln!(out, "encore_model_created_timestamp_seconds {t}");
        }
        if let Some(t) = secs(m.data.last_purchase.as_deref()) {
            out.push_str("# HELP encore_model_data_end_timestamp_seconds The last purchase the serving model saw.\n# TYPE encore_model_data_end_timestamp_seconds gauge\n");
            let _ = writeln!(out, "encore_model_data_end_timestamp_seconds {t}");
        }
    }
    let r = state.reloads();
    out.push_str("# HELP encore_model_reloads_total Model reloads by result.\n# TYPE encore_model_reloads_total counter\n");
    let _ = writeln!(
        out,
        "encore_model_reloads_total{{result=\"success\"}} {}",
        r.succeeded.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "encore_model_reloads_total{{result=\"failure\"}} {}",
        r.failed.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP encore_store_watch_errors_total Store watcher looks that failed, by kind.\n\
         # TYPE encore_store_watch_errors_total counter\n\
         encore_store_watch_errors_total{{kind=\"current_unreadable\"}} {}\n\
         encore_store_watch_errors_total{{kind=\"reload_panicked\"}} {}",
        r.current_unreadable.load(Ordering::Relaxed),
        r.panicked.load(Ordering::Relaxed)
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}

/// Reload successes and failures since start, and the last refusal.
fn reload_stats(state: &AppState) -> serde_json::Value {
    use std::sync::atomic::Ordering;
    let r = state.reloads();
    let last = r
        .last_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    json!({
        "succeeded": r.succeeded.load(Ordering::Relaxed),
        "failed": r.failed.load(Ordering::Relaxed),
        "last_error": last.map(|(at, error)| json!({ "at": at, "error": error })),
    })
}

/// Reads the API key file again (if the keys came from one), then reloads
/// the model directory; the old keys and model keep serving if either
/// fails, and a key file that does not parse stops before the model.
/// The body is not used, but one larger than [`JSON_BODY_LIMIT`] is refused
/// with `413 payload_too_large`, as on every other POST route.
pub(crate) async fn reload(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    discard_body(&req, body).await?;
    state.reload_api_keys().map_err(|e| {
        tracing::warn!(error = %e, "API key file refused; the old keys stay in use");
        ApiError::new(
            crate::error::Code::ApiKeysReloadFailed,
            format!("the API keys and the model were not reloaded: {e}"),
        )
    })?;
    let loader = state.clone();
    let reloaded = web::block(move || loader.reload())
        .await?
        .inspect_err(|e| {
            tracing::warn!(error = %e, "reload refused; the old model keeps serving");
        })?;
    let changed = reloaded.previous_version.as_ref() != Some(&reloaded.model_version);
    Ok(json_with_version(
        &reloaded.model_version,
        &json!({
            "model_version": reloaded.model_version,
            "previous_version": reloaded.previous_version,
            "changed": changed,
        }),
    ))
}

/// Reads and drops a body the route does not use, refusing one larger than
/// [`JSON_BODY_LIMIT`] (by its `Content-Length`, or while reading a body sent
/// without one) the way the JSON routes do.
async fn discard_body(req: &HttpRequest, mut body: web::Payload) -> Result<(), ApiError> {
    let length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(length) = length.filter(|&n| n > JSON_BODY_LIMIT) {
        return Err(ApiError::from_json(JsonPayloadError::OverflowKnownLength {
            length,
            limit: JSON_BODY_LIMIT,
        }));
    }
    let mut read = 0usize;
    while let Some(chunk) = body.next().await {
        read += chunk
            .map_err(|e| ApiError::from_json(JsonPayloadError::Payload(e)))?
            .len();
        if read > JSON_BODY_LIMIT {
            return Err(ApiError::from_json(JsonPayloadError::Overflow {
                limit: JSON_BODY_LIMIT,
            }));
        }
    }
    Ok(())
}
