//! The event log at run time: the writer thread that owns it
//! ([`EventSink`], in `writer.rs`) and the live purchase overlay its accepted
//! purchases feed ([`RecentPurchases`], in `overlay.rs`). The application
//! state owns both; `POST /v1/events` validates a batch and hands it to the
//! sink, the customer routes read the overlay, and the experiments hand
//! their exposures to the sink.
//!
//! # Implementation notes
//! One writer thread owns the [`EventLog`](encore_data::event_log::EventLog).
//! A request validates its batch on the async worker, then hands it to the
//! writer from the blocking pool (`web::block`) and waits there for the
//! outcome, so no async worker ever waits on a disk. The writer takes every
//! batch queued while it was busy and commits them with one write and one
//! `fdatasync` (group commit): under concurrent load many batches share one
//! fsync. `bench/events_load.sh` measures the throughput (figures in
//! `docs/benchmarks.md`).
//!
//! After the fsync, and before any batch of that commit is answered, the
//! accepted purchases later than the serving model's data end go into
//! [`RecentPurchases`], the overlay the customer routes read (see
//! [`due_with_recent`] and the route modules): a just-bought item leaves
//! the customer's "for you" list (where bought items are excluded) and drops
//! to the end of buy-again, with its clock restarted. The overlay lives in
//! the application state, not in the engine, so it survives model swaps; a
//! swap drops the entries the new model already trained on.
//!
//! The experiment exposures the server logs itself (see
//! [`crate::experiments`]) take another path to the same writer:
//! [`EventSink::submit_exposure`] queues the event and returns at once,
//! without waiting for the fsync, so a storefront request never waits on the
//! disk. Such events are at most once: while more than
//! [`writer::MAX_PENDING_EXPOSURES`] wait for the writer, or once the log has failed,
//! new ones are dropped, counted (`encore_exposures_total{result="dropped"}`)
//! and logged as a warning. Posted events keep their guarantee.

mod overlay;
mod writer;

pub(crate) use overlay::{RecentPurchases, data_end, due_with_recent, is_recent_purchase};
pub(crate) use writer::EventSink;
