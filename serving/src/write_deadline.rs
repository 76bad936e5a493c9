//! The write deadline of streamed answers: a client that stops reading an
//! audience stream must not keep the stream, and the model it started on,
//! forever.
//!
//! actix-web has deadlines for reading a request's head
//! (`client_request_timeout`) and, with [`crate::deadline`], its body, but
//! none for writing an answer. A streamed answer is produced as its client
//! takes it: once the connection's buffers are full the server stops asking
//! the stream for more, and the stream (with its model snapshot, its member
//! list and its place among the open streams) would wait as long as the
//! client does. [`guard`] puts a watchdog beside the stream: when the client
//! has taken nothing for `write_timeout` while the next part was ready, the
//! watchdog drops the stream, which lets go of everything it holds, and the
//! answer ends with an error the next time the server asks for more, so the
//! connection is closed without the last chunk and the client sees the
//! answer incomplete (it never looks whole).
//!
//! # Implementation notes
//! The body and the watchdog share one `Rc<RefCell<..>>` (both run on the
//! worker thread of the connection); the watchdog holds a weak reference, so
//! a finished or dropped answer ends it. Time spent producing a part (on the
//! blocking pool) never counts: the deadline runs only while a part was
//! handed over and the server has not asked for the next.

use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::rt::time::Instant;

/// The message of the error a timed-out stream ends with.
pub(crate) const WRITE_TIMED_OUT: &str =
    "the client read nothing for write_timeout: the answer is cut short";

struct Shared<S> {
    /// The stream; `None` once it ended or the watchdog dropped it.
    inner: Option<S>,
    /// When the last part was handed over (or the answer started).
    handed_at: Instant,
    /// True while a part was handed over and the next was not asked for.
    waiting_for_client: bool,
    timed_out: bool,
    reported: bool,
}

/// A stream whose parts must be taken within a deadline; see the module docs.
pub(crate) struct Guarded<S> {
    shared: Rc<RefCell<Shared<S>>>,
}

/// Wraps `stream` so that it is dropped once its client has taken nothing
/// for `timeout` (module docs). Spawns the watchdog on the current worker.
pub(crate) fn guard<S>(stream: S, timeout: Duration) -> Guarded<S>
where
    S: Stream<Item = Result<Bytes, actix_web::Error>> + Unpin + 'static,
{
    let shared = Rc::new(RefCell::new(Shared {
        inner: Some(stream),
        handed_at: Instant::now(),
        waiting_for_client: true,
        timed_out: false,
        reported: false,
    }));
    actix_web::rt::spawn(watch(Rc::downgrade(&shared), timeout));
    Guarded { shared }
}

async fn watch<S>(shared: Weak<RefCell<Shared<S>>>, timeout: Duration) {
    loop {
        let deadline = match shared.upgrade() {
            Some(s) => {
                let s = s.borrow();
                if s.inner.is_none() {
                    return;
                }
                s.handed_at + timeout
            }
            None => return,
        };
        actix_web::rt::time::sleep_until(deadline).await;
        let Some(s) = shared.upgrade() else { return };
        let mut s = s.borrow_mut();
        if s.inner.is_some() && s.waiting_for_client && s.handed_at.elapsed() >= timeout {
            // Dropped here: the model snapshot, the members, the stream slot.
            s.inner = None;
            s.timed_out = true;
            tracing::warn!(
                timeout_secs = timeout.as_secs_f64(),
                "a streamed answer was cut short: its client read nothing for write_timeout"
            );
            return;
        }
    }
}

impl<S> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, actix_web::Error>> + Unpin,
{
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut s = self.shared.borrow_mut();
        if s.timed_out {
            if s.reported {
                return Poll::Ready(None);
            }
            s.reported = true;
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, WRITE_TIMED_OUT);
            return Poll::Ready(Some(Err(e.into())));
        }
        let Some(inner) = s.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.poll_next_unpin(cx) {
            Poll::Ready(Some(item)) => {
                s.handed_at = Instant::now();
                s.waiting_for_client = true;
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                s.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                s.waiting_for_client = false;
                Poll::Pending
            }
        }
    }
}
