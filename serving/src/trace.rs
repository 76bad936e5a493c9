//! One `tracing` span per request, named by route pattern rather than raw path
//! (ids in paths would make every span unique, and customer ids do not belong
//! in logs).

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
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
    let started = Instant::now();
    let res = next.call(req).instrument(span.clone()).await;
    let elapsed_us = started.elapsed().as_micros() as u64;
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
