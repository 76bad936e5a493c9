//! One `tracing` span per request, named by route pattern rather than raw path
//! (ids in paths would make every span unique, and customer ids do not belong
//! in logs), and carrying the request's id.
//!
//! The id is the client's `X-Request-Id` header when it is sane (1 to 64
//! characters of `A-Z a-z 0-9 . _ -`), else one made here; it is a field of
//! the request span, so every log line of the request shows it, is echoed in
//! the `X-Request-Id` header of every response, errors included, and is in
//! the request extensions as a [`RequestId`] for handlers.
//!
//! # Implementation notes
//!
//! A [`RequestId`] lives inline (64 bytes and a length), so taking or making
//! one allocates nothing; a sane incoming header value is echoed as is (a
//! reference count, not a copy). Made ids are a per-process random prefix and
//! a counter, `<12 hex digits>-<n>`: unique within a process and, with 48
//! random bits, across restarts in practice.

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::Instrument;

/// The request and response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one request, from its `X-Request-Id` header or made by the
/// server: 1 to [`RequestId::MAX_LEN`] characters of `A-Z a-z 0-9 . _ -`.
///
/// Handlers take it as an extractor (`id: RequestId`) or read it from the
/// request extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    len: u8,
    bytes: [u8; RequestId::MAX_LEN],
}

impl RequestId {
    /// The longest id taken from a client.
    pub const MAX_LEN: usize = 64;

    /// The id `s`, if it is 1 to [`MAX_LEN`](Self::MAX_LEN) characters of
    /// `A-Z a-z 0-9 . _ -`.
    pub fn parse(s: &[u8]) -> Option<RequestId> {
        let sane = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.iter().all(sane) {
            return None;
        }
        let mut bytes = [0; Self::MAX_LEN];
        bytes[..s.len()].copy_from_slice(s);
        Some(RequestId {
            len: s.len() as u8,
            bytes,
        })
    }

    /// A new id, unique within this process: `<random prefix>-<counter>`.
    pub fn generate() -> RequestId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut id = RequestId {
            len: 0,
            bytes: [0; Self::MAX_LEN],
        };
        use std::fmt::Write;
        write!(id, "{:012x}-{n}", process_prefix()).expect("fits in 64 bytes");
        id
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("ids are ASCII")
    }
}

/// Appends ASCII text (only [`RequestId::generate`] writes, with hex digits,
/// `-` and decimal digits).
impl fmt::Write for RequestId {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let end = start + s.len();
        if end > Self::MAX_LEN || !s.is_ascii() {
            return Err(fmt::Error);
        }
        self.bytes[start..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// The id the request middleware gave the request (a new one outside the app's
/// middleware, which never fails).
impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<RequestId, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req.extensions().get::<RequestId>().copied();
        std::future::ready(Ok(id.unwrap_or_else(RequestId::generate)))
    }
}

/// 48 random bits, drawn once per process from the standard library's
/// randomly keyed hasher (no random-number crate needed for this).
fn process_prefix() -> u64 {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        std::process::id().hash(&mut h);
        std::time::SystemTime::now().hash(&mut h);
        h.finish() & 0xffff_ffff_ffff
    })
}

/// An error returned by an inner service, answered with the request id header.
#[derive(Debug)]
struct WithRequestId {
    error: Error,
    id: HeaderValue,
}

impl fmt::Display for WithRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl ResponseError for WithRequestId {
    fn status_code(&self) -> StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = self.error.error_response();
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), self.id.clone());
        res
    }
}

/// Middleware: gives the request its id, opens the request span, and logs
/// the outcome when the response is ready.
pub(crate) async fn trace_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let given = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| Some((RequestId::parse(v.as_bytes())?, v.clone())));
    let (id, id_header) = match given {
        Some(given) => given,
        None => {
            let id = RequestId::generate();
            let header = HeaderValue::from_str(id.as_str()).expect("ids are header-safe");
            (id, header)
        }
    };
    req.extensions_mut().insert(id);
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = method_label(req.method());
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
            .observe(&route, method, status, elapsed.as_secs_f64());
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
        Err(e) => {
            let status = e.as_response_error().status_code();
            tracing::Span::current().record("status", status.as_u16());
            tracing::warn!(elapsed_us, error = %e, "request failed");
        }
    });
    match res {
        Ok(mut res) => {
            res.headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), id_header);
            Ok(res)
        }
        Err(error) => Err(WithRequestId {
            error,
            id: id_header,
        }
        .into()),
    }
}

/// The metrics label of a method: the nine of RFC 9110 and PATCH by name,
/// any other `other`, so that made-up methods cannot grow the label set.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        use actix_web::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["MAAAA", "BREW", "get"] {
            let m = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other", "{made_up}");
        }
    }

    #[test]
    fn sane_ids_are_taken_and_others_refused() {
        for ok in ["a", "req-1.2_3", &"x".repeat(64), "ABCxyz0189"] {
            assert_eq!(RequestId::parse(ok.as_bytes()).unwrap().as_str(), ok);
        }
        for bad in ["", &"x".repeat(65), "a b", "a/b", "é", "a\nb", "id;drop"] {
            assert!(RequestId::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_are_sane_and_distinct() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(RequestId::parse(id.as_str().as_bytes()), Some(id));
        }
        let parts = |id: RequestId| {
            let (prefix, n) = id.as_str().split_once('-').unwrap();
            (prefix.to_string(), n.parse::<u64>().unwrap())
        };
        let ((pa, na), (pb, nb)) = (parts(a), parts(b));
        assert_eq!((pa.len(), &pa), (12, &pb), "one prefix per process");
        assert!(nb > na, "the counter moves on: {a} then {b}");
    }
}
