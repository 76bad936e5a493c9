//! The access middleware: CORS for the allowed origins, then the API keys,
//! then the cross-site guard, as [`crate::auth`] describes them, with the
//! keys and the origins of the application state.

use crate::auth::check_cross_site;
use crate::state::AppState;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError, web};

/// The answer to a CORS preflight from an allowed origin.
fn preflight(origin: &HeaderValue) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
        .insert_header((header::VARY, "Origin"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, PUT"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, x-api-key, content-type, x-request-id",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish()
}

/// Middleware: CORS for the allowed origins, then the API keys, then the
/// cross-site guard. A refusal is a response in the error shape, not an
/// `Err`, so that every layer above sees a normal 401, 403 or 415.
pub(crate) async fn require_keys(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let allowed_origin = req
        .headers()
        .get(header::ORIGIN)
        .filter(|o| {
            let o = o.to_str().unwrap_or_default();
            state.cors_origins().iter().any(|a| a == o)
        })
        .cloned();
    if let Some(origin) = &allowed_origin
        && req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let res = preflight(origin);
        return Ok(req.into_response(res).map_into_right_body());
    }
    // The path as the router matches it (percent-encoded unreserved
    // characters decoded): `/v1/%61dmin/reload` is `/v1/admin/reload`.
    let path = req.match_info().as_str();
    let refused = match state.api_keys() {
        Some(keys) => keys.check(req.method(), path, req.headers()),
        None => Ok(()),
    }
    .and_then(|()| check_cross_site(req.method(), path, req.headers(), state.cors_origins()));
    let res = match refused {
        Err(refused) => req
            .into_response(refused.error_response())
            .map_into_right_body(),
        Ok(()) => next.call(req).await?.map_into_left_body(),
    };
    Ok(match allowed_origin {
        Some(origin) => {
            let mut res = res;
            let headers = res.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
            res
        }
        None => res,
    })
}
