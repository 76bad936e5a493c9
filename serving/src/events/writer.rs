//! The writer thread that owns the event log, and its handle [`EventSink`]
//! (see the [module above](super) for the group commit and the exposures).

use super::overlay::RecentPurchases;
use crate::error::{ApiError, Code};
use crate::metrics::EventCounters;
use encore_data::event_log::{AppendOutcome, EventLog};
use encore_data::events::{Event, EventLogError};
use encore_data::timestamp::now_secs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// The most server-made exposures that may wait for the writer; beyond
/// this they are dropped.
pub const MAX_PENDING_EXPOSURES: usize = 10_000;

/// The most events the writer commits with one fsync.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

/// One request for the writer thread: a batch and where to send its outcome
/// (`None`: a server-made exposure nobody waits for).
struct WriteRequest {
    events: Vec<Event>,
    reply: Option<mpsc::SyncSender<Result<AppendOutcome, WriteError>>>,
}

/// Why a batch was not stored, as the writer tells its sender.
#[derive(Debug, Clone)]
struct WriteError {
    /// A write or fsync failed: the log probes the disk on the next batch.
    unavailable: bool,
    detail: String,
}

/// What the request path and the writer share about queued exposures.
struct ExposureQueue {
    /// Exposures submitted and not yet committed or refused.
    pending: AtomicUsize,
    /// Most exposures that may be pending.
    capacity: usize,
    /// Set while the log refuses writes (a failed commit, until a probe
    /// succeeds): exposures are dropped at once meanwhile.
    failed: AtomicBool,
    counters: Arc<EventCounters>,
}

/// Compacts the files of `log` past the retention, if any, counts it in
/// `counters` and logs what it did; a failure is logged (false), and tried
/// again after the first commit a minute later.
fn compact(log: &mut EventLog, counters: &EventCounters) -> bool {
    let started = std::time::Instant::now();
    let result = log.compact(now_secs());
    if !matches!(result, Ok(None)) {
        counters
            .last_compaction_micros
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
    match result {
        Ok(None) => true,
        Ok(Some(r)) => {
            counters
                .compacted_files
                .fetch_add(r.files.len() as u64, Ordering::Relaxed);
            counters
                .compaction_dropped
                .fetch_add(r.dropped as u64, Ordering::Relaxed);
            counters
                .compaction_reclaimed_bytes
                .fetch_add(r.bytes_reclaimed, Ordering::Relaxed);
            // Last, so that a reader who sees the count sees the rest.
            counters.compactions.fetch_add(1, Ordering::Release);
            tracing::info!(
                files = r.files.len(),
                compacted_through = log.compacted_through(),
                purchases_kept = r.purchases,
                events_dropped = r.dropped,
                damaged_records_set_aside = r.damaged,
                checkpoint_ids = r.checkpoint_ids,
                bytes_reclaimed = r.bytes_reclaimed,
                seconds = started.elapsed().as_secs_f64(),
                "event log: files past the retention compacted"
            );
            true
        }
        Err(e) => {
            counters.compaction_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %e,
                "event log: compaction failed; the files stay whole, it is tried again after the first write a minute later"
            );
            false
        }
    }
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
                // When a compaction may be tried again after a failure.
                let mut next_try = if compact(&mut log, &queue.counters) { i64::MIN } else { now_secs() + 60 };
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
                    c.failed.store(!log.is_writable(), Ordering::Relaxed);
                    queue.failed.store(!log.is_writable(), Ordering::Relaxed);
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
                            c.write_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(
                                error = %e,
                                "event log write failed; batches refused, the file cut back to its last durable record, the next batch probes the disk"
                            );
                            let error = WriteError {
                                unavailable: matches!(e, EventLogError::WriteFailed { .. }),
                                detail: e.to_string(),
                            };
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
                                let _ = reply.send(Err(error.clone()));
                            }
                        }
                    }
                    // After the answers: a compaction never delays them.
                    let now = now_secs();
                    if now >= next_try && log.compaction_due(now) && !compact(&mut log, &queue.counters) {
                        next_try = now + 60;
                    }
                }
            })?;
        Ok(EventSink { tx, exposures })
    }

    /// Logs a batch and waits until it is on disk. Blocks: call it from the
    /// blocking pool.
    pub(crate) fn append(&self, events: Vec<Event>) -> Result<AppendOutcome, ApiError> {
        let (reply, outcome) = mpsc::sync_channel(1);
        let failed = |e: WriteError| {
            tracing::error!(error = %e.detail, "event batch not stored");
            if e.unavailable {
                ApiError::new(
                    Code::EventLogUnavailable,
                    "the event log cannot write now (a full disk or an I/O error); nothing of the batch is stored, retry later",
                )
                .with_header(
                    actix_web::http::header::RETRY_AFTER,
                    &crate::limits::RETRY_AFTER_SECONDS.to_string(),
                )
            } else {
                ApiError::new(
                    Code::EventLogFailed,
                    "the batch was not stored (nothing of it is acknowledged); the server log has the details",
                )
            }
        };
        let stopped = || WriteError {
            unavailable: false,
            detail: "the event writer has stopped".into(),
        };
        self.tx
            .send(WriteRequest {
                events,
                reply: Some(reply),
            })
            .map_err(|_| failed(stopped()))?;
        outcome
            .recv()
            .map_err(|_| failed(stopped()))?
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

#[cfg(test)]
mod tests {
    use super::*;
    use encore_data::events::EventKind;

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
}
