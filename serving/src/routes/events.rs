//! `POST /v1/events`: feedback events, logged durably, and their live effect.
//!
//! The body is `{"events": [...]}`, at most [`MAX_EVENTS_PER_BATCH`] events of
//! the schema in [`encore_data::events`]. Validation is all or nothing: the
//! first bad event refuses the whole batch with `400 invalid_event`, naming
//! it (`events[3].quantity: must be positive, not -1`), and nothing is
//! written. `received_at` is the server's to set and is refused in a request.
//! An accepted batch answers `200 {"accepted": n, "duplicates": m}` once its
//! lines are fsynced; events whose `id` was logged in the idempotency window
//! (`event_dedup_days`, default 7) are counted as duplicates and not written
//! again, so a client retries a batch whose answer it did not get, unchanged.
//!
//! # Implementation notes
//! One writer thread owns the [`EventLog`]. A request validates its batch on
//! the async worker, then hands it to the writer from the blocking pool
//! (`web::block`) and waits there for the outcome, so no async worker ever
//! waits on a disk. The writer takes every batch queued while it was busy
//! and commits them with one write and one `fdatasync` (group commit): under
//! concurrent load many batches share one fsync. `bench/events_load.sh`
//! measures the throughput (figures in `docs/benchmarks.md`).
//!
//! After the fsync, and before any batch of that commit is answered, the
//! accepted purchases later than the serving model's data end go into
//! [`RecentPurchases`], the overlay the customer routes read (see
//! [`apply_recent_to_due`] and the route modules): a just-bought item leaves
//! the customer's "for you" list (where bought items are excluded) and drops
//! to the end of buy-again, with its clock restarted. The overlay lives in
//! [`AppState`], not in the engine, so it survives model swaps; a swap drops
//! the entries the new model already trained on.
//!
//! The experiment exposures the server logs itself (see
//! [`super::experiments`]) take another path to the same writer:
//! [`EventSink::submit_exposure`] queues the event and returns at once,
//! without waiting for the fsync, so a storefront request never waits on the
//! disk. Such events are at most once: while more than
//! [`MAX_PENDING_EXPOSURES`] wait for the writer, or once the log has failed,
//! new ones are dropped, counted (`encore_exposures_total{result="dropped"}`)
//! and logged as a warning. Posted events keep their guarantee.

use crate::error::{ApiError, Code};
use crate::metrics::EventCounters;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use encore_data::event_log::{AppendOutcome, EventLog};
use encore_data::events::{Event, EventKind, event_from_value};
use encore_model::customer::replenishment::DueItem;
use encore_model::engine::Engine;
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, PoisonError, RwLock};

/// The most events one request may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 1000;

/// The most server-made exposures that may wait for the writer; beyond
/// this they are dropped.
pub const MAX_PENDING_EXPOSURES: usize = 10_000;

/// The most events the writer commits with one fsync.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

const DAY_SECS: f64 = 86_400.0;

/// The body of `POST /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBatch {
    /// Kept as JSON values so that each event is validated, and named, by
    /// [`event_from_value`].
    events: BoundedEvents,
}

/// The events of a batch, kept only up to [`MAX_EVENTS_PER_BATCH`]: the
/// elements of a longer list are counted as they are read and skipped, so an
/// oversized batch is refused without being built in memory.
#[derive(Debug)]
pub(crate) enum BoundedEvents {
    Within(Vec<serde_json::Value>),
    /// More than the limit: how many.
    Over(usize),
}

impl<'de> Deserialize<'de> for BoundedEvents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BoundedEvents;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of events")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BoundedEvents, A::Error> {
                let mut kept = Vec::new();
                while kept.len() < MAX_EVENTS_PER_BATCH {
                    match seq.next_element::<serde_json::Value>()? {
                        Some(v) => kept.push(v),
                        None => return Ok(BoundedEvents::Within(kept)),
                    }
                }
                if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                    return Ok(BoundedEvents::Within(kept));
                }
                drop(kept);
                let mut n = MAX_EVENTS_PER_BATCH + 1;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(BoundedEvents::Over(n))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

/// `POST /v1/events`.
pub(crate) async fn post_events(
    state: web::Data<AppState>,
    body: web::Json<super::JsonObject<EventBatch>>,
) -> Result<HttpResponse, ApiError> {
    let Some(sink) = state.event_sink().cloned() else {
        return Err(ApiError::new(
            Code::EventsDisabled,
            "this server keeps no event log; start it with --events DIR",
        ));
    };
    let events = match body.into_inner().0.events {
        BoundedEvents::Within(values) => validate(values, now_secs())?,
        BoundedEvents::Over(n) => return Err(too_many_events(n)),
    };
    let outcome = web::block(move || sink.append(events)).await??;
    Ok(HttpResponse::Ok().json(json!({
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
    })))
}

fn too_many_events(n: usize) -> ApiError {
    ApiError::new(
        Code::TooManyEvents,
        format!("the batch holds {n} events; the limit is {MAX_EVENTS_PER_BATCH}"),
    )
}

/// How far ahead of the server's clock an event's time may be (clock skew):
/// an event dated far in the future would become the data end of the next
/// training run and hide every real purchase from the live overlay.
const MAX_FUTURE_SECS: i64 = 86_400;

/// Validates a whole batch at server time `now`, or names its first bad
/// event and field.
fn validate(values: Vec<serde_json::Value>, now: i64) -> Result<Vec<Event>, ApiError> {
    if values.len() > MAX_EVENTS_PER_BATCH {
        return Err(too_many_events(values.len()));
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let bad = |field: &str, message: &str| {
                let at = if field.is_empty() {
                    format!("events[{i}]")
                } else {
                    format!("events[{i}].{field}")
                };
                ApiError::new(Code::InvalidEvent, format!("{at}: {message}"))
            };
            if value.get("received_at").is_some() {
                return Err(bad("received_at", "is set by the server; leave it out"));
            }
            let event = event_from_value(value).map_err(|e| bad(&e.field, &e.message))?;
            if event.time > now.saturating_add(MAX_FUTURE_SECS) {
                return Err(bad(
                    "time",
                    &format!(
                        "{} is more than a day ahead of the server's clock ({})",
                        encore_data::timestamp::format_timestamp(event.time),
                        encore_data::timestamp::format_timestamp(now)
                    ),
                ));
            }
            Ok(event)
        })
        .collect()
}

/// One request for the writer thread: a batch and where to send its outcome
/// (`None`: a server-made exposure nobody waits for).
struct WriteRequest {
    events: Vec<Event>,
    reply: Option<mpsc::SyncSender<Result<AppendOutcome, String>>>,
}

/// What the request path and the writer share about queued exposures.
struct ExposureQueue {
    /// Exposures submitted and not yet committed or refused.
    pending: AtomicUsize,
    /// Most exposures that may be pending.
    capacity: usize,
    /// Set once a write failed: the log refuses everything after.
    failed: AtomicBool,
    counters: Arc<EventCounters>,
}

/// The handle to the writer thread that owns the event log.
#[derive(Clone)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<WriteRequest>,
    exposures: Arc<ExposureQueue>,
}

impl EventSink {
    /// Starts the writer thread over `log`; accepted purchases go to `recent`,
    /// and the fate of submitted exposures to `counters`.
    pub(crate) fn spawn(
        log: EventLog,
        recent: Arc<RecentPurchases>,
        counters: Arc<EventCounters>,
    ) -> std::io::Result<EventSink> {
        Self::spawn_with_capacity(log, recent, counters, MAX_PENDING_EXPOSURES)
    }

    /// [`spawn`](Self::spawn) with at most `capacity` pending exposures.
    pub(crate) fn spawn_with_capacity(
        mut log: EventLog,
        recent: Arc<RecentPurchases>,
        counters: Arc<EventCounters>,
        capacity: usize,
    ) -> std::io::Result<EventSink> {
        let exposures = Arc::new(ExposureQueue {
            pending: AtomicUsize::new(0),
            capacity,
            failed: AtomicBool::new(false),
            counters,
        });
        let queue = Arc::clone(&exposures);
        queue.counters.enabled.store(true, Ordering::Relaxed);
        queue
            .counters
            .remembered_ids
            .store(log.len() as u64, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<WriteRequest>();
        std::thread::Builder::new()
            .name("encore-event-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut queued = first.events.len();
                    let mut requests = vec![first];
                    while queued < MAX_EVENTS_PER_COMMIT {
                        match rx.try_recv() {
                            Ok(r) => {
                                queued += r.events.len();
                                requests.push(r);
                            }
                            Err(_) => break,
                        }
                    }
                    let (batches, replies): (Vec<_>, Vec<_>) =
                        requests.into_iter().map(|r| (r.events, r.reply)).unzip();
                    // Server-made exposures in this commit (one event each).
                    let submitted = replies.iter().filter(|r| r.is_none()).count();
                    let started = std::time::Instant::now();
                    let result = log.append_batches(batches, now_secs());
                    let c = &queue.counters;
                    // A commit is a write (tried): not a flush or a batch of
                    // duplicates only, which touch no file.
                    let wrote = result
                        .as_ref()
                        .map_or(true, |a| a.iter().any(|a| a.outcome.accepted > 0));
                    if wrote {
                        c.commits.fetch_add(1, Ordering::Relaxed);
                        c.commit_micros
                            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                    c.remembered_ids.store(log.len() as u64, Ordering::Relaxed);
                    c.failed.store(result.is_err(), Ordering::Relaxed);
                    // Before any reply: a flush that returns sees them settled.
                    queue.pending.fetch_sub(submitted, Ordering::AcqRel);
                    match result {
                        Ok(appended) => {
                            recent.record(appended.iter().flat_map(|a| &a.events));
                            for (a, reply) in appended.into_iter().zip(replies) {
                                match reply {
                                    Some(reply) => {
                                        // Counted before the answer, so that
                                        // /metrics read after it includes them.
                                        c.posted_accepted.fetch_add(
                                            a.outcome.accepted as u64,
                                            Ordering::Relaxed,
                                        );
                                        c.posted_duplicates.fetch_add(
                                            a.outcome.duplicates as u64,
                                            Ordering::Relaxed,
                                        );
                                        let _ = reply.send(Ok(a.outcome));
                                    }
                                    None => {
                                        c.exposures_logged.fetch_add(
                                            a.outcome.accepted as u64,
                                            Ordering::Relaxed,
                                        );
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "event log write failed; batches refused");
                            queue.failed.store(true, Ordering::Relaxed);
                            if submitted > 0 {
                                queue
                                    .counters
                                    .exposures_dropped
                                    .fetch_add(submitted as u64, Ordering::Relaxed);
                                tracing::warn!(
                                    dropped = submitted,
                                    "experiment exposures dropped: the event log failed"
                                );
                            }
                            for reply in replies.into_iter().flatten() {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                }
            })?;
        Ok(EventSink { tx, exposures })
    }

    /// Logs a batch and waits until it is on disk. Blocks: call it from the
    /// blocking pool.
    pub(crate) fn append(&self, events: Vec<Event>) -> Result<AppendOutcome, ApiError> {
        let (reply, outcome) = mpsc::sync_channel(1);
        let failed = |detail: String| {
            tracing::error!(error = %detail, "event batch not stored");
            ApiError::new(
                Code::EventLogFailed,
                "the batch was not stored (nothing of it is acknowledged); the server log has the details",
            )
        };
        self.tx
            .send(WriteRequest {
                events,
                reply: Some(reply),
            })
            .map_err(|_| failed("the event writer has stopped".into()))?;
        outcome
            .recv()
            .map_err(|_| failed("the event writer has stopped".into()))?
            .map_err(failed)
    }

    /// Hands one server-made exposure to the writer and returns at once,
    /// without waiting for the fsync. When more than the capacity are
    /// waiting, the log has failed or the writer has stopped, the exposure
    /// is dropped instead: counted and logged as a warning, never an error
    /// of the request. Returns whether it was queued.
    pub(crate) fn submit_exposure(&self, event: Event) -> bool {
        let q = &self.exposures;
        let reason = if q.failed.load(Ordering::Relaxed) {
            Some("the event log failed")
        } else if q
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < q.capacity).then_some(n + 1)
            })
            .is_err()
        {
            Some("the event writer's queue is full")
        } else if self
            .tx
            .send(WriteRequest {
                events: vec![event],
                reply: None,
            })
            .is_err()
        {
            q.pending.fetch_sub(1, Ordering::AcqRel);
            Some("the event writer has stopped")
        } else {
            None
        };
        match reason {
            None => true,
            Some(reason) => {
                q.counters.exposures_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reason, "experiment exposure dropped");
                false
            }
        }
    }

    /// Waits until everything handed to the writer before this call (posted
    /// batches and submitted exposures) is on disk, or refused. Blocks: call
    /// it from the blocking pool or outside the async workers.
    pub(crate) fn flush(&self) -> Result<(), ApiError> {
        self.append(Vec::new()).map(|_| ())
    }
}

/// The server's clock, seconds since the epoch (`received_at`).
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A purchase seen since the serving model's data ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Recent {
    /// When (the event's time), seconds since the epoch.
    pub time: i64,
    /// Units bought at that time.
    pub quantity: f64,
}

#[derive(Debug, Default)]
struct RecentInner {
    /// Purchases at or before this time are the model's business.
    data_end: i64,
    /// customer id -> item id -> the latest purchase.
    by_customer: HashMap<String, HashMap<String, Recent>>,
}

impl RecentInner {
    fn record<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        let data_end = self.data_end;
        for e in events {
            let EventKind::Purchase {
                customer,
                item,
                quantity,
                ..
            } = &e.kind
            else {
                continue;
            };
            if !is_recent_purchase(e, data_end) {
                continue;
            }
            let slot = self
                .by_customer
                .entry(customer.clone())
                .or_default()
                .entry(item.clone())
                .or_insert(Recent {
                    time: e.time,
                    quantity: 0.0,
                });
            if e.time > slot.time {
                *slot = Recent {
                    time: e.time,
                    quantity: *quantity,
                };
            } else if e.time == slot.time {
                slot.quantity += quantity;
            }
        }
    }
}

/// Whether the overlay of a model whose data ends at `data_end` keeps `e`:
/// a purchase later than that end. Readers of the whole log keep only
/// these, so their memory is the overlay's, not the log's.
pub(crate) fn is_recent_purchase(e: &Event, data_end: i64) -> bool {
    matches!(e.kind, EventKind::Purchase { .. }) && e.time > data_end
}

/// The live overlay: per customer, the items bought after the serving
/// model's training data ended, each with its latest time and quantity.
///
/// Its size is bounded by the purchases logged since the model's data end:
/// a model swap forgets everything the new model trained on.
#[derive(Debug, Default)]
pub(crate) struct RecentPurchases {
    inner: RwLock<RecentInner>,
}

impl RecentPurchases {
    /// An empty overlay for a model whose data ends at `data_end`.
    pub(crate) fn new(data_end: i64) -> Self {
        RecentPurchases {
            inner: RwLock::new(RecentInner {
                data_end,
                by_customer: HashMap::new(),
            }),
        }
    }

    /// Records the purchases among `events` later than the data end.
    pub(crate) fn record<'a>(&self, events: impl IntoIterator<Item = &'a Event>) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.record(events);
    }

    /// After a model swap: forgets purchases at or before the new model's data end.
    pub(crate) fn forget_until(&self, data_end: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.data_end = data_end;
        inner.by_customer.retain(|_, items| {
            items.retain(|_, r| r.time > data_end);
            !items.is_empty()
        });
    }

    /// The data end the overlay is relative to.
    pub(crate) fn data_end(&self) -> i64 {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .data_end
    }

    /// Replaces everything with the purchases among `events` later than
    /// `data_end` (a swap to a model whose data end is earlier).
    pub(crate) fn reset(&self, data_end: i64, events: &[Event]) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.data_end = data_end;
        inner.by_customer.clear();
        inner.record(events);
    }

    /// Customers with at least one recorded purchase.
    pub(crate) fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.by_customer.len()
    }

    /// The customer's purchases after `engine`'s data end, as `(item index,
    /// purchase)` for the items the model knows, by item index.
    pub(crate) fn items_of(&self, engine: &Engine, customer: &str) -> Vec<(u32, Recent)> {
        let data_end = data_end(engine);
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<(u32, Recent)> = inner
            .by_customer
            .get(customer)
            .into_iter()
            .flatten()
            .filter(|(_, r)| r.time > data_end)
            .filter_map(|(item, r)| Some((engine.items().get(item)?, *r)))
            .collect();
        out.sort_unstable_by_key(|e| e.0);
        out
    }

    /// The customers (as `engine`'s indices) who bought since its data end.
    pub(crate) fn customers_of(&self, engine: &Engine) -> HashSet<u32> {
        let data_end = data_end(engine);
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .by_customer
            .iter()
            .filter(|(_, items)| items.values().any(|r| r.time > data_end))
            .filter_map(|(c, _)| engine.customers().get(c))
            .collect()
    }
}

/// The end of `engine`'s training data (its last purchase), seconds since
/// the epoch: the manifest's `data.last_purchase`, else the customer
/// models' reference time.
pub(crate) fn data_end(engine: &Engine) -> i64 {
    engine
        .manifest()
        .data
        .last_purchase
        .as_deref()
        .and_then(encore_data::timestamp::parse_timestamp)
        .unwrap_or_else(|| engine.replenishment().reference())
}

/// Applies the customer's purchases since the model's data end to a
/// buy-again list fetched with at least `k + recent.len()` entries: an item
/// bought since is not due, so it goes after every other item, with score 0
/// and its clock restarted: `last_purchase` is the event's time, the
/// interval is the item's cycle for the quantity bought (`days_per_unit ·
/// quantity^e_q`, clamped like the model's), `due_date` follows from them,
/// and `purchases` counts one more. Truncated to `k`.
pub(crate) fn apply_recent_to_due(
    engine: &Engine,
    due: Vec<DueItem>,
    recent: &[(u32, Recent)],
    k: usize,
) -> Vec<DueItem> {
    if recent.is_empty() {
        let mut due = due;
        due.truncate(k);
        return due;
    }
    let find = |item: u32| {
        recent
            .binary_search_by_key(&item, |e| e.0)
            .ok()
            .map(|i| recent[i].1)
    };
    let params = engine.replenishment().params();
    let (mut kept, bought): (Vec<DueItem>, Vec<DueItem>) =
        due.into_iter().partition(|d| find(d.item).is_none());
    for mut d in bought {
        let r = find(d.item).expect("partitioned on it");
        let per_unit = engine
            .replenishment()
            .item_cycle(d.item)
            .map_or(params.default_days_per_unit, |c| c.days_per_unit);
        let interval = (per_unit
            * r.quantity
                .max(f64::MIN_POSITIVE)
                .powf(params.quantity_elasticity))
        .clamp(params.min_interval_days, params.max_interval_days);
        d.last_purchase = r.time;
        d.interval_days = interval as f32;
        d.due_date = r.time.saturating_add((interval * DAY_SECS).round() as i64);
        d.due_score = 0.0;
        d.purchases += 1;
        kept.push(d);
    }
    kept.truncate(k);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create_app;
    use actix_web::test as web_test;
    use encore_data::synth::{SynthParams, generate};
    use encore_model::artifact::DataSummary;
    use encore_model::engine::ListFilter;
    use encore_model::pipeline::{EngineConfig, train_engine};
    use serde_json::{Value, json};

    /// The `item_id`s of a JSON list of items, in order.
    fn item_ids(items: &Value) -> Vec<&str> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item_id"].as_str().unwrap())
            .collect()
    }

    fn purchase(id: &str, customer: &str, item: &str, time: i64, quantity: f64) -> Event {
        Event {
            id: id.into(),
            time,
            received_at: None,
            kind: EventKind::Purchase {
                order_id: "o".into(),
                customer: customer.into(),
                item: item.into(),
                quantity,
                price: None,
            },
        }
    }

    /// A batch over the limit is counted, not built: only the first
    /// `MAX_EVENTS_PER_BATCH` elements are ever kept.
    #[test]
    fn an_oversized_batch_is_counted_not_kept() {
        let body = |n: usize| format!("{{\"events\": [{}]}}", vec!["{\"id\": \"a\"}"; n].join(","));
        let parse = |n| serde_json::from_str::<EventBatch>(&body(n)).unwrap().events;
        assert!(matches!(parse(0), BoundedEvents::Within(v) if v.is_empty()));
        assert!(
            matches!(parse(MAX_EVENTS_PER_BATCH), BoundedEvents::Within(v) if v.len() == MAX_EVENTS_PER_BATCH)
        );
        assert!(matches!(
            parse(MAX_EVENTS_PER_BATCH + 1),
            BoundedEvents::Over(n) if n == MAX_EVENTS_PER_BATCH + 1
        ));
        assert!(matches!(parse(5000), BoundedEvents::Over(5000)));
        let e = serde_json::from_str::<EventBatch>("{\"events\": 7}").unwrap_err();
        assert!(e.to_string().contains("a list of events"), "{e}");
    }

    #[test]
    fn a_bad_event_refuses_the_batch_naming_it() {
        let ok = json!({"id": "a", "type": "click", "time": 0, "customer": "c", "item": "i"});
        let bad = json!({"id": "b", "type": "purchase", "time": 0, "order_id": "o",
                         "customer": "c", "item": "i", "quantity": -1});
        let e = validate(vec![ok.clone(), ok.clone(), ok.clone(), bad], NOW).unwrap_err();
        assert_eq!(e.code(), Code::InvalidEvent);
        assert!(
            e.message().starts_with("events[3].quantity: "),
            "{}",
            e.message()
        );
        let e = validate(vec![json!(7)], NOW).unwrap_err();
        assert!(e.message().starts_with("events[0]: "), "{}", e.message());
        let mut stamped = ok.clone();
        stamped["received_at"] = json!(5);
        let e = validate(vec![stamped], NOW).unwrap_err();
        assert!(
            e.message().starts_with("events[0].received_at"),
            "{}",
            e.message()
        );
        let e = validate(vec![ok.clone(); MAX_EVENTS_PER_BATCH + 1], NOW).unwrap_err();
        assert_eq!(e.code(), Code::TooManyEvents);
        let mut ahead = ok.clone();
        ahead["time"] = json!(NOW + MAX_FUTURE_SECS + 1);
        let e = validate(vec![ok.clone(), ahead], NOW).unwrap_err();
        assert!(
            e.message().starts_with("events[1].time: "),
            "{}",
            e.message()
        );
        let mut skewed = ok.clone();
        skewed["time"] = json!(NOW + 3600);
        assert!(validate(vec![skewed], NOW).is_ok());
        assert_eq!(validate(vec![ok; 3], NOW).unwrap().len(), 3);
    }

    /// 2026-11-30T00:00:00Z.
    const NOW: i64 = 1_764_460_800;

    #[test]
    fn the_overlay_keeps_the_latest_purchase_after_the_data_end() {
        let recent = RecentPurchases::new(100);
        recent.record(&[
            purchase("1", "c1", "tea", 90, 1.0),
            purchase("2", "c1", "tea", 150, 2.0),
            purchase("3", "c1", "tea", 150, 1.0),
            purchase("4", "c1", "tea", 120, 5.0),
            purchase("5", "c2", "mug", 300, 1.0),
        ]);
        let inner = recent.inner.read().unwrap();
        assert_eq!(
            inner.by_customer["c1"]["tea"],
            Recent {
                time: 150,
                quantity: 3.0
            }
        );
        drop(inner);
        assert_eq!(recent.len(), 2);
        recent.forget_until(200);
        assert_eq!(recent.len(), 1);
        // Purchases the model trained on are not recorded again.
        recent.record(&[purchase("6", "c3", "tea", 180, 1.0)]);
        assert_eq!(recent.len(), 1);
    }

    fn trained_engine() -> Engine {
        let log = generate(&SynthParams {
            customers: 150,
            items: 60,
            purchases: 4_000,
            categories: 4,
            ..SynthParams::default()
        });
        let mut config = EngineConfig::default();
        config.als.factors = 4;
        config.als.iterations = 2;
        train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap()
    }

    /// A customer with at least three buy-again items, and its id.
    fn repeat_customer(engine: &Engine) -> (u32, String) {
        (0..engine.customers().len() as u32)
            .find(|&c| engine.buy_again(c, 10, &ListFilter::default()).len() >= 3)
            .map(|c| (c, engine.customers().id(c).to_string()))
            .expect("a customer with three bought items")
    }

    fn purchase_json(id: &str, customer: &str, item: &str, time: i64) -> Value {
        json!({"id": id, "type": "purchase", "time": time, "order_id": format!("o-{id}"),
               "customer": customer, "item": item, "quantity": 2})
    }

    /// `(status, JSON body)` of a request.
    macro_rules! call {
        ($app:expr, $req:expr $(,)?) => {{
            let res = web_test::call_service($app, $req.to_request()).await;
            let status = res.status().as_u16();
            let body = web_test::read_body(res).await;
            (
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            )
        }};
    }

    fn post(events: Vec<Value>) -> web_test::TestRequest {
        web_test::TestRequest::post()
            .uri("/v1/events")
            .set_json(json!({ "events": events }))
    }

    fn exposure(id: &str) -> Event {
        Event {
            id: id.into(),
            time: 1_750_000_000,
            received_at: None,
            kind: EventKind::Exposure {
                customer: "c1".into(),
                list: "als".into(),
                items: vec!["i1".into()],
                experiment: Some("x".into()),
                variant: Some("a".into()),
                request_id: Some(id.into()),
            },
        }
    }

    #[test]
    fn exposures_are_queued_without_waiting_and_dropped_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let open = |sub: &str| EventLog::open(&dir.path().join(sub), Default::default()).unwrap();
        let counters = Arc::new(EventCounters::default());
        let recent = Arc::new(RecentPurchases::new(0));
        // No room: dropped and counted, never an error.
        let full = EventSink::spawn_with_capacity(
            open("full"),
            Arc::clone(&recent),
            Arc::clone(&counters),
            0,
        )
        .unwrap();
        assert!(!full.submit_exposure(exposure("e1")));
        assert_eq!(counters.exposures_dropped.load(Ordering::Relaxed), 1);
        full.flush().unwrap();
        let (events, _) = encore_data::events::read_event_dir(&dir.path().join("full")).unwrap();
        assert!(events.is_empty());

        let sink = EventSink::spawn_with_capacity(
            open("ok"),
            Arc::clone(&recent),
            Arc::clone(&counters),
            10,
        )
        .unwrap();
        assert!(sink.submit_exposure(exposure("e1")));
        assert!(sink.submit_exposure(exposure("e2")));
        // A retry of a logged exposure is a duplicate, not logged twice.
        assert!(sink.submit_exposure(exposure("e1")));
        sink.flush().unwrap();
        assert_eq!(counters.exposures_logged.load(Ordering::Relaxed), 2);
        assert_eq!(sink.exposures.pending.load(Ordering::Relaxed), 0);
        let (events, _) = encore_data::events::read_event_dir(&dir.path().join("ok")).unwrap();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"]);
        // Once the log has failed, exposures are dropped at once.
        sink.exposures.failed.store(true, Ordering::Relaxed);
        assert!(!sink.submit_exposure(exposure("e3")));
        assert_eq!(counters.exposures_dropped.load(Ordering::Relaxed), 2);
    }

    #[actix_web::test]
    async fn without_a_log_the_route_says_so() {
        let state = web::Data::new(AppState::new("unused", trained_engine()));
        let app = web_test::init_service(create_app(state)).await;
        let (status, body) = call!(&app, post(vec![]));
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("events_disabled"))
        );
        // No event log, no event log metrics.
        let metrics = web_test::call_and_read_body(
            &app,
            web_test::TestRequest::get().uri("/metrics").to_request(),
        )
        .await;
        let metrics = String::from_utf8(metrics.to_vec()).unwrap();
        assert!(metrics.contains("encore_exposures_total"), "{metrics}");
        assert!(!metrics.contains("encore_event_log_"), "{metrics}");
    }

    #[actix_web::test]
    async fn batches_are_logged_once_and_bad_ones_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::new("unused", trained_engine())
            .with_event_log(dir.path(), Default::default())
            .unwrap();
        let app = web_test::init_service(create_app(web::Data::new(state))).await;
        let batch = vec![
            purchase_json("e1", "c1", "i1", 1_750_000_000),
            json!({"id": "e2", "type": "click", "time": "2025-06-01T00:00:00Z",
                   "customer": "c1", "item": "i2"}),
        ];
        let (status, body) = call!(&app, post(batch.clone()));
        assert_eq!(
            (status, &body),
            (200, &json!({"accepted": 2, "duplicates": 0}))
        );
        let (status, body) = call!(&app, post(batch));
        assert_eq!(
            (status, &body),
            (200, &json!({"accepted": 0, "duplicates": 2}))
        );

        let mut bad = purchase_json("e4", "c1", "i1", 1_750_000_000);
        bad["quantity"] = json!(0);
        let batch = vec![purchase_json("e3", "c1", "i1", 1_750_000_000), bad];
        let (status, body) = call!(&app, post(batch));
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_event"))
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("events[1].quantity: "),
            "{body}"
        );
        let (status, body) = call!(
            &app,
            web_test::TestRequest::post()
                .uri("/v1/events")
                .set_json(json!({"events": [], "extra": 1})),
        );
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));

        let (events, report) = encore_data::events::read_event_dir(dir.path()).unwrap();
        let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"]);
        assert_eq!(report.duplicates, 0);
        assert!(events.iter().all(|e| e.received_at.is_some()));

        // The metrics count what the log did: one commit (the batch of
        // duplicates wrote nothing, the refused ones never reached the
        // writer), two ids remembered.
        let metrics = web_test::call_and_read_body(
            &app,
            web_test::TestRequest::get().uri("/metrics").to_request(),
        )
        .await;
        let metrics = String::from_utf8(metrics.to_vec()).unwrap();
        for line in [
            "encore_events_total{result=\"accepted\"} 2",
            "encore_events_total{result=\"duplicate\"} 2",
            "encore_event_log_commits_total 1",
            "encore_event_log_remembered_ids 2",
            "encore_event_log_failed 0",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
        }
    }

    #[actix_web::test]
    async fn a_purchase_applies_at_once_and_until_a_model_trained_on_it() {
        let engine = trained_engine();
        let (c, customer) = repeat_customer(&engine);
        let end = data_end(&engine);
        let due = engine.buy_again(c, 10, &ListFilter::default());
        let top_due = engine.items().id(due[0].item).to_string();
        let (_, fresh) = engine.for_you(Some(c), 5, &ListFilter::default());
        let top_new = engine.items().id(fresh[0].0).to_string();
        let second_due = engine.items().id(due[1].item).to_string();
        let model_dir = tempfile::tempdir().unwrap();
        // The next model: the same one, but its data reach past the events.
        let mut next = trained_engine();
        next.manifest_mut().data.last_purchase =
            Some(encore_data::timestamp::format_timestamp(end + 10 * 86_400));
        encore_model::artifact::save(&next, model_dir.path()).unwrap();

        let log_dir = tempfile::tempdir().unwrap();
        let state = web::Data::new(
            AppState::new(model_dir.path(), engine)
                .with_event_log(log_dir.path(), Default::default())
                .unwrap(),
        );
        let app = web_test::init_service(create_app(state.clone())).await;
        let when = end + 86_400;
        let (status, _) = call!(
            &app,
            post(vec![
                purchase_json("p1", &customer, &top_due, when),
                purchase_json("p2", &customer, &top_new, when),
                // Bought before the data end: the model's business, no effect.
                purchase_json("p3", &customer, &second_due, end - 1),
            ]),
        );
        assert_eq!(status, 200);

        let buy_again = format!("/v1/customers/{customer}/buy-again?k=10");
        let (status, body) = call!(&app, web_test::TestRequest::get().uri(&buy_again));
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), due.len().min(10));
        let last = items.last().unwrap();
        assert_eq!(last["item_id"], top_due.as_str(), "{body}");
        assert_eq!(last["score"], 0.0);
        assert_eq!(
            last["last_purchase"],
            encore_data::timestamp::format_date(when).as_str()
        );
        assert_eq!(last["purchases"], due[0].purchases + 1);
        assert_ne!(items[0]["item_id"], top_due.as_str());
        // k cuts it off when the list is longer than k.
        let short = format!("/v1/customers/{customer}/buy-again?k=2");
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&short));
        assert!(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["item_id"] != top_due.as_str())
        );

        let recs = format!("/v1/customers/{customer}/recommendations?k=5");
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&recs));
        let ids = item_ids(&body["items"]);
        assert_eq!(ids.len(), 5);
        assert!(!ids.contains(&top_new.as_str()), "{ids:?}");

        let next_purchase = format!("/v1/customers/{customer}/next-purchase?k=10");
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&next_purchase));
        let suggested = item_ids(&body["recommended_items"]);
        assert!(!suggested.contains(&top_due.as_str()) && !suggested.contains(&top_new.as_str()));

        // A model trained past the purchases takes over: the overlay forgets them.
        state.reload().unwrap();
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&recs));
        assert_eq!(body["items"][0]["item_id"], top_new.as_str(), "{body}");
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&buy_again));
        assert_eq!(body["items"][0]["item_id"], top_due.as_str(), "{body}");

        // A rollback to a model whose data end is earlier reads the log
        // again: the purchases the newer model had covered apply once more.
        std::fs::remove_dir_all(model_dir.path()).unwrap();
        encore_model::artifact::save(&trained_engine(), model_dir.path()).unwrap();
        state.reload().unwrap();
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&recs));
        let ids = item_ids(&body["items"]);
        assert!(!ids.contains(&top_new.as_str()), "{ids:?}");

        // A restart rebuilds the overlay from the log (with the first model).
        let state = AppState::new(model_dir.path(), trained_engine())
            .with_event_log(log_dir.path(), Default::default())
            .unwrap();
        let restarted = state
            .recent_purchases()
            .items_of(&state.engine().unwrap(), &customer);
        assert_eq!(restarted.len(), 2);
    }
}
