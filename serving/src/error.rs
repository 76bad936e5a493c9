//! The one error type of the HTTP API, and the one table of its codes.
//!
//! Every failure, whether raised by a handler, by an extractor (malformed query
//! string, path or JSON body) or by routing (unknown route, wrong method),
//! answers with the same JSON body:
//!
//! ```json
//! {
//!   "message": "item 'X-42' is not in the model",
//!   "code": "item_not_found",
//!   "type": "not_found",
//!   "link": "https://encore.invalid/docs/errors#item_not_found"
//! }
//! ```
//!
//! `code` is stable and meant for programs; `message` is for people and may
//! change. `link` is [`ERROR_LINK_BASE`] followed by the code.
//!
//! # Codes
//! The table of codes, with the HTTP status, type and meaning of each, is
//! written once, in `docs/api.md` ("Errors"); [`Code::ALL`] lists them in
//! the same order.
//!
//! # Implementation notes
//! A unit test checks the table of `docs/api.md` against [`Code`], so the
//! two cannot drift apart. [`ArtifactError`] is mapped by an exhaustive `match`; actix's
//! extractor errors are `#[non_exhaustive]`, so their mappings need a final arm,
//! which falls back to the extractor's generic code.

use actix_web::error::{BlockingError, JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use encore_model::artifact::ArtifactError;
use serde::Serialize;

/// Where the documentation of each error code lives; the code is appended.
pub const ERROR_LINK_BASE: &str = "https://encore.invalid/docs/errors#";

/// The broad class of an error, the `type` field of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// The request is wrong; repeating it unchanged will fail again.
    InvalidRequest,
    /// The route or the item does not exist.
    NotFound,
    /// The server cannot answer right now; retrying later may work.
    Unavailable,
    /// A model could not be loaded (admin endpoints only).
    Model,
    /// A missing, unknown or insufficient API key.
    Auth,
    /// A bug in the server.
    Internal,
}

impl ErrorType {
    /// The name used in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::NotFound => "not_found",
            ErrorType::Unavailable => "unavailable",
            ErrorType::Model => "model",
            ErrorType::Auth => "auth",
            ErrorType::Internal => "internal",
        }
    }
}

/// Every error code the API answers with; the table is in `docs/api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    InvalidId,
    InvalidK,
    InvalidQuery,
    InvalidJson,
    TooManyIds,
    InvalidEvent,
    TooManyEvents,
    InvalidExperiments,
    Unauthorized,
    Forbidden,
    CrossOrigin,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ItemNotFound,
    CustomerNotFound,
    RouteNotFound,
    ExperimentNotFound,
    NoExposures,
    EventsDisabled,
    ServiceUnavailable,
    Overloaded,
    EventLogUnavailable,
    ModelLoadFailed,
    ModelIncompatible,
    EventLogFailed,
    EventLogUnreadable,
    ExperimentsSaveFailed,
    ApiKeysReloadFailed,
    StoreUnreadable,
    Internal,
}

impl Code {
    /// Every code, in the order of the table.
    pub const ALL: [Code; 32] = [
        Code::InvalidId,
        Code::InvalidK,
        Code::InvalidQuery,
        Code::InvalidJson,
        Code::TooManyIds,
        Code::InvalidEvent,
        Code::TooManyEvents,
        Code::InvalidExperiments,
        Code::Unauthorized,
        Code::Forbidden,
        Code::CrossOrigin,
        Code::MethodNotAllowed,
        Code::PayloadTooLarge,
        Code::RequestTimeout,
        Code::UnsupportedMediaType,
        Code::ItemNotFound,
        Code::CustomerNotFound,
        Code::RouteNotFound,
        Code::ExperimentNotFound,
        Code::NoExposures,
        Code::EventsDisabled,
        Code::ServiceUnavailable,
        Code::Overloaded,
        Code::EventLogUnavailable,
        Code::ModelLoadFailed,
        Code::ModelIncompatible,
        Code::EventLogFailed,
        Code::EventLogUnreadable,
        Code::ExperimentsSaveFailed,
        Code::ApiKeysReloadFailed,
        Code::StoreUnreadable,
        Code::Internal,
    ];

    /// The table: code name, HTTP status and type of every code, in one place.
    fn entry(self) -> (&'static str, StatusCode, ErrorType) {
        use ErrorType::*;
        match self {
            Code::InvalidId => ("invalid_id", StatusCode::BAD_REQUEST, InvalidRequest),
            Code::InvalidK => ("invalid_k", StatusCode::BAD_REQUEST, InvalidRequest),
            Code::InvalidQuery => ("invalid_query", StatusCode::BAD_REQUEST, InvalidRequest),
            Code::InvalidJson => ("invalid_json", StatusCode::BAD_REQUEST, InvalidRequest),
            Code::TooManyIds => ("too_many_ids", StatusCode::BAD_REQUEST, InvalidRequest),
            Code::InvalidEvent => ("invalid_event", StatusCode::BAD_REQUEST, InvalidRequest),
            Code::TooManyEvents => ("too_many_events", StatusCode::BAD_REQUEST, InvalidRequest),
            Code::InvalidExperiments => (
                "invalid_experiments",
                StatusCode::BAD_REQUEST,
                InvalidRequest,
            ),
            Code::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED, Auth),
            Code::Forbidden => ("forbidden", StatusCode::FORBIDDEN, Auth),
            Code::CrossOrigin => ("cross_origin", StatusCode::FORBIDDEN, Auth),
            Code::MethodNotAllowed => (
                "method_not_allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                InvalidRequest,
            ),
            Code::PayloadTooLarge => (
                "payload_too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                InvalidRequest,
            ),
            Code::RequestTimeout => (
                "request_timeout",
                StatusCode::REQUEST_TIMEOUT,
                InvalidRequest,
            ),
            Code::UnsupportedMediaType => (
                "unsupported_media_type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                InvalidRequest,
            ),
            Code::ItemNotFound => ("item_not_found", StatusCode::NOT_FOUND, NotFound),
            Code::CustomerNotFound => ("customer_not_found", StatusCode::NOT_FOUND, NotFound),
            Code::RouteNotFound => ("route_not_found", StatusCode::NOT_FOUND, NotFound),
            Code::ExperimentNotFound => ("experiment_not_found", StatusCode::NOT_FOUND, NotFound),
            Code::NoExposures => ("no_exposures", StatusCode::NOT_FOUND, NotFound),
            Code::EventsDisabled => ("events_disabled", StatusCode::NOT_FOUND, NotFound),
            Code::ServiceUnavailable => (
                "service_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                Unavailable,
            ),
            Code::Overloaded => ("overloaded", StatusCode::SERVICE_UNAVAILABLE, Unavailable),
            Code::EventLogUnavailable => (
                "event_log_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                Unavailable,
            ),
            Code::ModelLoadFailed => (
                "model_load_failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                Model,
            ),
            Code::ModelIncompatible => (
                "model_incompatible",
                StatusCode::INTERNAL_SERVER_ERROR,
                Model,
            ),
            Code::EventLogFailed => (
                "event_log_failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                Internal,
            ),
            Code::EventLogUnreadable => (
                "event_log_unreadable",
                StatusCode::INTERNAL_SERVER_ERROR,
                Internal,
            ),
            Code::ExperimentsSaveFailed => (
                "experiments_save_failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                Internal,
            ),
            Code::ApiKeysReloadFailed => (
                "api_keys_reload_failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                Internal,
            ),
            Code::StoreUnreadable => ("store_unreadable", StatusCode::INTERNAL_SERVER_ERROR, Model),
            Code::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR, Internal),
        }
    }

    /// The stable name of the code, e.g. `item_not_found`.
    pub fn code(self) -> &'static str {
        self.entry().0
    }

    /// The HTTP status the code answers with.
    pub fn status(self) -> StatusCode {
        self.entry().1
    }

    /// The broad class of the code.
    pub fn kind(self) -> ErrorType {
        self.entry().2
    }

    /// The documentation link of the code.
    pub fn link(self) -> String {
        format!("{ERROR_LINK_BASE}{}", self.code())
    }
}

/// An API failure: a [`Code`], a human-readable message and any headers the
/// answer needs (`Allow`, `Retry-After`, the model version).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {}", .code.code(), .message)]
pub struct ApiError {
    code: Code,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The JSON body of every error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    code: &'static str,
    #[serde(rename = "type")]
    kind: ErrorType,
    link: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The error's code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds a header to the error response. Values that are not valid header
    /// values are dropped (the body still says what went wrong).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// `item_not_found` for `id`.
    pub fn item_not_found(id: &str) -> Self {
        ApiError::new(
            Code::ItemNotFound,
            format!("item '{id}' is not in the model"),
        )
    }

    /// `route_not_found` for a request path.
    pub fn route_not_found(method: &str, path: &str) -> Self {
        ApiError::new(Code::RouteNotFound, format!("no route for {method} {path}"))
    }

    /// `method_not_allowed`, with the `Allow` header listing `allowed`.
    pub fn method_not_allowed(method: &str, allowed: &str) -> Self {
        ApiError::new(
            Code::MethodNotAllowed,
            format!("method {method} is not allowed here; use {allowed}"),
        )
        .with_header(header::ALLOW, allowed)
    }

    /// `overloaded`, asking the client to retry after `seconds`.
    pub fn overloaded(seconds: u32) -> Self {
        ApiError::new(
            Code::Overloaded,
            "too many scoring requests are waiting; retry later",
        )
        .with_header(header::RETRY_AFTER, &seconds.to_string())
    }

    /// `internal`, logging the details (which are not sent to the client).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            Code::Internal,
            "internal error; the details are in the server log",
        )
    }

    /// Maps a failing `Json` extractor.
    pub fn from_json(err: JsonPayloadError) -> Self {
        let too_large = |limit: usize| {
            ApiError::new(
                Code::PayloadTooLarge,
                format!("the body is larger than the limit of {limit} bytes"),
            )
        };
        match err {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => too_large(limit),
            JsonPayloadError::ContentType => ApiError::new(
                Code::UnsupportedMediaType,
                "the body must be sent with Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(e) => {
                ApiError::new(Code::InvalidJson, format!("invalid JSON body: {e}"))
            }
            JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
                too_large(crate::limits::JSON_BODY_LIMIT)
            }
            JsonPayloadError::Payload(e) if is_late_body(&e) => ApiError::new(
                Code::RequestTimeout,
                "the body did not arrive within body_timeout",
            ),
            JsonPayloadError::Payload(e) => {
                ApiError::new(Code::InvalidJson, format!("cannot read the body: {e}"))
            }
            JsonPayloadError::Serialize(e) => ApiError::internal(e),
            // `JsonPayloadError` is `#[non_exhaustive]`.
            other => ApiError::new(Code::InvalidJson, other.to_string()),
        }
    }

    /// Maps a failing `Query` extractor.
    pub fn from_query(err: QueryPayloadError) -> Self {
        match err {
            QueryPayloadError::Deserialize(e) => {
                ApiError::new(Code::InvalidQuery, format!("invalid query string: {e}"))
            }
            // `QueryPayloadError` is `#[non_exhaustive]`.
            other => ApiError::new(Code::InvalidQuery, other.to_string()),
        }
    }

    /// Maps a failing `Path` extractor. Every path parameter of this API is an id.
    pub fn from_path(err: PathError) -> Self {
        match err {
            PathError::Deserialize(e) => {
                ApiError::new(Code::InvalidId, format!("invalid id in the path: {e}"))
            }
            // `PathError` is `#[non_exhaustive]`.
            other => ApiError::new(Code::InvalidId, other.to_string()),
        }
    }
}

impl From<ArtifactError> for ApiError {
    fn from(err: ArtifactError) -> Self {
        let code = match &err {
            ArtifactError::IncompatibleVersion { .. } => Code::ModelIncompatible,
            ArtifactError::Io { .. }
            | ArtifactError::NotAnArtifact { .. }
            | ArtifactError::Corrupt { .. }
            | ArtifactError::InvalidTarget { .. } => Code::ModelLoadFailed,
        };
        ApiError::new(code, format!("the model was not reloaded: {err}"))
    }
}

impl From<BlockingError> for ApiError {
    fn from(err: BlockingError) -> Self {
        ApiError::internal(format!("scoring task failed: {err}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        for (name, value) in &self.headers {
            res.insert_header((name.clone(), value.clone()));
        }
        res.json(ErrorBody {
            message: &self.message,
            code: self.code.code(),
            kind: self.code.kind(),
            link: self.code.link(),
        })
    }
}

/// Whether `err` is the error of a body that missed its deadline (the
/// timed-out I/O error `deadline.rs` ends a late body with).
pub(crate) fn is_late_body(err: &actix_web::error::PayloadError) -> bool {
    matches!(err, actix_web::error::PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let names: HashSet<_> = Code::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(names.len(), Code::ALL.len());
        for code in Code::ALL {
            let name = code.code();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert_eq!(code.link(), format!("{ERROR_LINK_BASE}{name}"));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    /// The error table of docs/api.md lists every code once, in the order
    /// of [`Code::ALL`], with its status and type.
    #[test]
    fn api_md_error_table_matches_the_enum() {
        let doc = include_str!("../../docs/api.md");
        let section = &doc[doc.find("\n## Errors\n").expect("an Errors section") + 1..];
        let section = &section[..section[1..].find("\n#").map_or(section.len(), |i| i + 1)];
        let rows: Vec<Vec<String>> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|row| {
                row.split('|')
                    .map(|cell| cell.trim().trim_matches('`').to_string())
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), Code::ALL.len(), "one table row per code");
        for (code, row) in Code::ALL.iter().zip(&rows) {
            assert_eq!(row[1], code.code());
            assert_eq!(
                row[2],
                code.status().as_u16().to_string(),
                "{}",
                code.code()
            );
            assert_eq!(row[3], code.kind().as_str(), "{}", code.code());
        }
    }

    #[test]
    fn type_serialises_like_as_str() {
        for code in Code::ALL {
            let json = serde_json::to_value(code.kind()).unwrap();
            assert_eq!(json, code.kind().as_str());
        }
    }

    #[test]
    fn artifact_errors_map_to_model_codes() {
        let err = ArtifactError::IncompatibleVersion {
            path: "m".into(),
            found: 9,
            expected: 1,
        };
        assert_eq!(ApiError::from(err).code(), Code::ModelIncompatible);
        let err = ArtifactError::Corrupt {
            path: "m".into(),
            reason: "short".into(),
        };
        let api = ApiError::from(err);
        assert_eq!(api.code(), Code::ModelLoadFailed);
        assert!(api.message().contains("short"));
    }

    #[test]
    fn response_has_the_error_shape_and_headers() {
        let res = ApiError::overloaded(2).error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "2");
        let res = ApiError::method_not_allowed("PUT", "GET").error_response();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers().get(header::ALLOW).unwrap(), "GET");
    }
}
