//! The HTTP routes, one module per resource, and what they share: parameter
//! validation, the item list shape and the model-version header.

pub(crate) mod customers;
pub(crate) mod events;
pub(crate) mod experiments;
pub(crate) mod health;
pub(crate) mod items;
pub(crate) mod model;
pub(crate) mod outreach;
pub(crate) mod recommendations;

use crate::MODEL_VERSION_HEADER;
use crate::error::{ApiError, Code};
use crate::limits::{DEFAULT_K, MAX_ID_BYTES, MAX_K, MAX_LIST_IDS};
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, web};
use encore_model::engine::{Engine, Ranked};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/healthz", Method::GET, health::healthz))
        .service(endpoint("/readyz", Method::GET, health::readyz))
        .service(endpoint("/v1/model", Method::GET, model::manifest))
        .service(endpoint("/v1/model/history", Method::GET, model::history))
        .service(endpoint("/metrics", Method::GET, model::metrics))
        .service(endpoint("/openapi.json", Method::GET, model::openapi))
        .service(endpoint("/v1/admin/reload", Method::POST, model::reload))
        .service(resource(
            "/v1/admin/experiments",
            [
                (Method::GET, web::to(experiments::get_experiments)),
                (Method::PUT, web::to(experiments::put_experiments)),
            ],
        ))
        .service(endpoint(
            "/v1/admin/experiments/{name}/report",
            Method::GET,
            experiments::report,
        ))
        .service(endpoint(
            "/v1/items/{item_id}/similar",
            Method::GET,
            items::similar,
        ))
        .service(endpoint(
            "/v1/items/{item_id}/bought-together",
            Method::GET,
            items::bought_together,
        ))
        .service(endpoint(
            "/v1/customers/{customer_id}/recommendations",
            Method::GET,
            customers::recommendations,
        ))
        .service(endpoint(
            "/v1/customers/{customer_id}/profile",
            Method::GET,
            outreach::profile,
        ))
        .service(endpoint(
            "/v1/customers/{customer_id}/orders",
            Method::GET,
            outreach::orders,
        ))
        .service(endpoint(
            "/v1/customers/{customer_id}/next-purchase",
            Method::GET,
            outreach::next_purchase,
        ))
        .service(endpoint(
            "/v1/customers/{customer_id}/buy-again",
            Method::GET,
            outreach::buy_again,
        ))
        .service(endpoint("/v1/kpis", Method::GET, outreach::kpis))
        .service(endpoint(
            "/v1/audiences/reactivation",
            Method::GET,
            outreach::reactivation,
        ))
        .service(endpoint(
            "/v1/recommendations",
            Method::POST,
            recommendations::basket,
        ))
        .service(endpoint("/v1/events", Method::POST, events::post_events));
}

/// A resource answering `method` with `handler`, and any other method with
/// `405 method_not_allowed` in the error shape.
fn endpoint<F, Args>(path: &str, method: Method, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    resource(path, [(method, web::to(handler))])
}

/// A resource answering each method of `routes` with its route (made with
/// `web::to`), and any other method with `405 method_not_allowed` listing
/// them all in `Allow`.
fn resource<const N: usize>(path: &str, routes: [(Method, actix_web::Route); N]) -> Resource {
    let allowed = routes
        .iter()
        .map(|(m, _)| m.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(path);
    for (method, route) in routes {
        resource = resource.route(route.method(method));
    }
    resource.default_service(web::to(move |req: HttpRequest| {
        let err = ApiError::method_not_allowed(req.method().as_str(), &allowed);
        async move { Err::<HttpResponse, _>(err) }
    }))
}

/// The default service: `404 route_not_found`.
pub(crate) async fn route_not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::route_not_found(req.method().as_str(), req.path()))
}

/// The snapshot of the model this request will use throughout.
pub(crate) fn snapshot(state: &AppState) -> Result<Arc<Engine>, ApiError> {
    state.engine().ok_or_else(|| {
        ApiError::new(
            Code::ServiceUnavailable,
            "no model is loaded yet: the model store has no published version; \
                 the server loads the first one `encore-train fit --store` publishes",
        )
    })
}

/// The query of a route with an id in its path: deserialized by `web::Query`
/// (`invalid_query` for an unknown, repeated or badly typed parameter), then
/// checked by [`check`](Self::check) once the id is.
pub(crate) trait IdRouteQuery: DeserializeOwned + 'static {
    /// What the handler gets: the parameters checked, defaults applied.
    type Checked;

    /// Checks the parameters' values (`k`, `limit`, …).
    fn check(self) -> Result<Self::Checked, ApiError>;
}

/// The checked id and query of a route with one id in its path
/// (`…/{customer_id}/…`, `…/{item_id}/…`, `…/{name}/…`), taken as an
/// extractor so that every such route checks the same things in the same
/// order, and so answers the same error for the same mistakes: the path
/// (`invalid_id` where it does not decode), the query's shape
/// (`invalid_query`), the id ([`check_id`]), then the query's values
/// ([`IdRouteQuery::check`]). The model is taken after all of them.
///
/// Handlers take it apart like a `web::Path` tuple:
/// `IdQuery(customer_id, k): IdQuery<KQuery>`.
pub(crate) struct IdQuery<Q: IdRouteQuery>(pub String, pub Q::Checked);

impl<Q: IdRouteQuery> FromRequest for IdQuery<Q> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let path = web::Path::<String>::from_request(req, payload);
        let query = web::Query::<Q>::from_request(req, payload);
        Box::pin(async move {
            let id = path.await?.into_inner();
            let query = query.await?.into_inner();
            check_id(&id)?;
            let query = query.check()?;
            Ok(IdQuery(id, query))
        })
    }
}

/// No query parameter is accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoQuery {}

impl IdRouteQuery for NoQuery {
    type Checked = ();

    fn check(self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// `?k=` only: the length of a list ([`parse_k`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KQuery {
    /// Kept as text so that a bad value answers `invalid_k`, not `invalid_query`.
    k: Option<String>,
}

impl IdRouteQuery for KQuery {
    type Checked = usize;

    fn check(self) -> Result<usize, ApiError> {
        parse_k(self.k.as_deref())
    }
}

/// The `x-encore-model-version` header of `version`, if it is a valid header value.
fn version_header(version: &str) -> Option<(HeaderName, HeaderValue)> {
    let value = HeaderValue::from_str(version).ok()?;
    Some((HeaderName::from_static(MODEL_VERSION_HEADER), value))
}

/// Answers `body` as JSON, or the error, either way tagged with the version of
/// the model `engine` that produced it.
pub(crate) fn model_response<T: Serialize>(
    engine: &Engine,
    result: Result<T, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let version = &engine.manifest().model_version;
    match result {
        Ok(body) => Ok(json_with_version(version, &body)),
        Err(err) => Err(err.with_header(HeaderName::from_static(MODEL_VERSION_HEADER), version)),
    }
}

/// A `200 OK` JSON answer carrying the model-version header.
pub(crate) fn json_with_version<T: Serialize>(version: &str, body: &T) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    if let Some(header) = version_header(version) {
        res.insert_header(header);
    }
    res.json(body)
}

/// One recommended item as answered.
#[derive(Debug, Serialize)]
pub(crate) struct ScoredItem<'a> {
    pub item_id: &'a str,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'a str>,
}

/// A ranked list of item indices as the answered items, with catalog data.
pub(crate) fn scored_items<'a>(engine: &'a Engine, ranked: &Ranked) -> Vec<ScoredItem<'a>> {
    ranked
        .iter()
        .map(|&(item, score)| {
            let meta = engine.item_meta(item);
            ScoredItem {
                item_id: engine.items().id(item),
                score,
                title: meta.title.as_deref(),
                category: meta.category.as_deref(),
            }
        })
        .collect()
}

/// Parses the `k` query parameter: absent means [`DEFAULT_K`].
pub(crate) fn parse_k(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_K),
        Some(text) => check_k(text.parse::<u64>().ok(), text),
    }
}

/// Validates `k` of a JSON body: absent or `null` means [`DEFAULT_K`].
pub(crate) fn json_k(raw: Option<&serde_json::Value>) -> Result<usize, ApiError> {
    match raw {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_K),
        Some(value) => check_k(value.as_u64(), &value.to_string()),
    }
}

fn check_k(parsed: Option<u64>, shown: &str) -> Result<usize, ApiError> {
    let k = parsed.and_then(|k| usize::try_from(k).ok());
    check_count("k", Code::InvalidK, MAX_K, k, shown)
}

/// A count parameter (`k`, `limit`): `n` if it is 1 to `max`, else `code`
/// saying so, with the value as the client gave it (`shown`).
pub(crate) fn check_count(
    name: &str,
    code: Code,
    max: usize,
    n: Option<usize>,
    shown: impl std::fmt::Display,
) -> Result<usize, ApiError> {
    n.filter(|n| (1..=max).contains(n)).ok_or_else(|| {
        ApiError::new(
            code,
            format!("{name} must be an integer from 1 to {max}, not {shown}"),
        )
    })
}

/// Checks an item or customer id: 1 to [`MAX_ID_BYTES`] bytes.
pub(crate) fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::new(Code::InvalidId, "ids must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(ApiError::new(
            Code::InvalidId,
            format!(
                "ids are at most {MAX_ID_BYTES} bytes; this one has {}",
                id.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a list of ids given by the client (a basket or an exclusion list).
pub(crate) fn check_ids<'a>(
    what: &str,
    ids: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), ApiError> {
    if ids.len() > MAX_LIST_IDS {
        return Err(ApiError::new(
            Code::TooManyIds,
            format!(
                "{what} holds {} ids; the limit is {MAX_LIST_IDS}",
                ids.len()
            ),
        ));
    }
    for id in ids {
        check_id(id)?;
    }
    Ok(())
}

/// The item indices of `ids` that the model knows; unknown ids are ignored.
pub(crate) fn known_items<'a>(engine: &Engine, ids: impl Iterator<Item = &'a str>) -> HashSet<u32> {
    ids.filter_map(|id| engine.items().get(id)).collect()
}

/// A JSON body that must be an object. Serde's derived structs also accept
/// an array of their fields in order (`[["i0"], 5]` for a basket), which the
/// API does not document: such a body is `400 invalid_json` like any other
/// body of the wrong type.
#[derive(Debug)]
pub(crate) struct JsonObject<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectOnly(std::marker::PhantomData))
            .map(JsonObject)
    }
}

/// A `category` filter: absent is no filter, empty is a mistake.
pub(crate) fn check_category(category: Option<String>) -> Result<Option<String>, ApiError> {
    match category {
        Some(c) if c.is_empty() => Err(ApiError::new(
            Code::InvalidQuery,
            "category must not be empty; leave it out to get every category",
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn k_defaults_and_bounds() {
        assert_eq!(parse_k(None).unwrap(), DEFAULT_K);
        assert_eq!(parse_k(Some("1")).unwrap(), 1);
        assert_eq!(parse_k(Some("200")).unwrap(), 200);
        for bad in [
            "0",
            "201",
            "abc",
            "",
            "-1",
            "2.5",
            "99999999999999999999999",
        ] {
            assert_eq!(
                parse_k(Some(bad)).unwrap_err().code(),
                Code::InvalidK,
                "{bad}"
            );
        }
        assert_eq!(json_k(None).unwrap(), DEFAULT_K);
        assert_eq!(json_k(Some(&json!(null))).unwrap(), DEFAULT_K);
        assert_eq!(json_k(Some(&json!(7))).unwrap(), 7);
        for bad in [json!(0), json!(201), json!("5"), json!(2.5), json!(-3)] {
            assert_eq!(
                json_k(Some(&bad)).unwrap_err().code(),
                Code::InvalidK,
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_are_bounded() {
        assert!(check_id("a").is_ok());
        assert!(check_id(&"x".repeat(MAX_ID_BYTES)).is_ok());
        assert_eq!(
            check_id(&"x".repeat(MAX_ID_BYTES + 1)).unwrap_err().code(),
            Code::InvalidId
        );
        assert_eq!(check_id("").unwrap_err().code(), Code::InvalidId);
        let many = vec!["a"; MAX_LIST_IDS + 1];
        assert_eq!(
            check_ids("exclude", many.iter().copied())
                .unwrap_err()
                .code(),
            Code::TooManyIds
        );
    }

    #[test]
    fn empty_category_is_refused() {
        assert_eq!(check_category(None).unwrap(), None);
        assert_eq!(
            check_category(Some("tea".into())).unwrap().as_deref(),
            Some("tea")
        );
        assert_eq!(
            check_category(Some(String::new())).unwrap_err().code(),
            Code::InvalidQuery
        );
    }
}
