//! One `tracing` span per request, named by route pattern rather than raw path
//! (ids in paths would make every span unique, and customer ids do not belong
//! in logs).

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use std::time::Instant;
use tracing::Instrument;

/// Middleware: opens the request span and logs the outcome when the response is ready.
pub(crate) async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_string());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let elapsed_us = elapsed.as_micros() as u64;
    if let Some(state) = state {
        let status = match &res {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        state
            .metrics()
            .observe(&route, &method, status, elapsed.as_secs_f64());
    }
    span.in_scope(|| match &res {
        Ok(res) => {
            let status = res.status();
            tracing::Span::current().record("status", status.as_u16());
            if status.is_server_error() {
                let error = res.response().error().map(ToString::to_string);
                tracing::warn!(elapsed_us, error = error.as_deref(), "request failed");
            } else {
                tracing::info!(elapsed_us, "request");
            }
        }
        Err(e) => tracing::warn!(elapsed_us, error = %e, "request failed"),
    });
    res
}
