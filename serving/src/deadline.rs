//! The body deadline: a client has `body_timeout` seconds, from the moment
//! its request head is in, to send the whole body. A body still arriving
//! then fails with `408 request_timeout`, and the worker moves on.
//!
//! The head has its own deadline, actix-web's `client_request_timeout`
//! (`request_timeout`), set by `encore-serve`; neither covers the time a
//! client takes to read an answer.

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, web};
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The message of the I/O error a late body ends with
/// ([`is_late_body`](crate::error::is_late_body)).
const LATE_BODY: &str = "the body did not arrive within body_timeout";

/// A payload that fails once its deadline has passed.
struct Deadline<S> {
    inner: S,
    deadline: Pin<Box<actix_web::rt::time::Sleep>>,
    expired: bool,
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Stream for Deadline<S> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, LATE_BODY);
            return Poll::Ready(Some(Err(PayloadError::Io(late))));
        }
        Poll::Pending
    }
}

/// Middleware: puts the state's body deadline on every request that may
/// carry a body (any method but `GET` and `HEAD`).
pub(crate) async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.body_timeout());
    if let Some(limit) = limit
        && !matches!(
            *req.method(),
            actix_web::http::Method::GET | actix_web::http::Method::HEAD
        )
    {
        let inner = req.take_payload();
        let stream = Deadline {
            inner,
            deadline: Box::pin(actix_web::rt::time::sleep(limit)),
            expired: false,
        };
        let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
        req.set_payload(Payload::from(boxed));
    }
    next.call(req).await
}
