//! The server's shared state: the serving model, the directory it came from,
//! and the queue in front of the scoring threads.
//!
//! # Implementation notes
//! The model sits in an [`ArcSwapOption`]. A handler takes one snapshot
//! ([`AppState::engine`]) when it starts and uses only that `Arc<Engine>`, so a
//! reload that lands mid-request never mixes two models in one answer; the old
//! engine is freed when the last request holding it finishes. A server
//! reading a model store may start before the store has a model: it answers
//! `503 service_unavailable` on every model route until the store watcher
//! loads the first version `CURRENT` names.
//!
//! [`AppState::reload`] loads the artifact with [`artifact::load`] (which checks
//! the format version, every file's size and checksum, and that the parts fit
//! together), runs a few smoke queries on it, and only then swaps it in. On any
//! failure the old model keeps serving. Reloads are serialised, so two
//! concurrent reloads cannot both be loading a full model at once.
//!
//! CPU-heavy scoring runs on the blocking thread pool through
//! [`AppState::score`], behind a counter of queued-or-running jobs: when it is
//! at capacity new jobs are refused at once with `503 overloaded` instead of
//! piling up behind each other.

use crate::error::ApiError;
use crate::limits::{
    DEFAULT_MAX_AUDIENCE_STREAMS, DEFAULT_MAX_PENDING_SCORING, RETRY_AFTER_SECONDS,
};
use actix_web::web;
use arc_swap::ArcSwapOption;
use encore_data::timestamp::now_secs;
use encore_model::artifact::store::{Store, StoreError};
use encore_model::artifact::{self, ArtifactError};
use encore_model::engine::{Engine, ListFilter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Where the serving model comes from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// One artifact directory, reloaded in place.
    Dir(PathBuf),
    /// A model store: the artifact its `CURRENT` names.
    Store(Store),
}

impl ModelSource {
    /// Loads, validates and warms the artifact [`resolve`](Self::resolve)
    /// names. From a store, the manifest's model version must be the
    /// version's name: the watcher compares `CURRENT` with the serving
    /// model's version, so a copied directory that calls itself something
    /// else would otherwise be reloaded at every look.
    ///
    /// From a store, the manifest must also have the SHA-256 that `CURRENT`
    /// recorded when the version was made current (when it recorded one).
    pub fn load(&self) -> Result<Engine, ArtifactError> {
        let (dir, digest) = self.resolve_with_digest()?;
        let engine = load_checked(&dir, digest.as_deref())?;
        if let ModelSource::Store(_) = self {
            let name = dir.file_name().map(|n| n.to_string_lossy());
            let model_version = &engine.manifest().model_version;
            if name.as_deref() != Some(model_version.as_str()) {
                return Err(ArtifactError::Corrupt {
                    path: dir.join("manifest.json"),
                    reason: format!(
                        "model_version is '{model_version}', not the version's name '{}' \
                         (a copied or renamed directory?)",
                        name.unwrap_or_default()
                    ),
                });
            }
        }
        Ok(engine)
    }

    /// The artifact directory to load now.
    pub fn resolve(&self) -> Result<PathBuf, ArtifactError> {
        self.resolve_with_digest().map(|(dir, _)| dir)
    }

    /// The artifact directory to load now and, from a store, the manifest
    /// digest `CURRENT` recorded for it.
    fn resolve_with_digest(&self) -> Result<(PathBuf, Option<String>), ArtifactError> {
        match self {
            ModelSource::Dir(dir) => Ok((dir.clone(), None)),
            ModelSource::Store(store) => match store.current_entry() {
                Ok(Some(entry)) => Ok((store.dir_of(&entry.version), entry.manifest_sha256)),
                Ok(None) => Err(ArtifactError::NotAnArtifact {
                    path: store.root().join("CURRENT"),
                }),
                Err(StoreError::Artifact(e)) => Err(e),
                Err(e) => Err(ArtifactError::Corrupt {
                    path: store.root().join("CURRENT"),
                    reason: e.to_string(),
                }),
            },
        }
    }
}

/// Reload bookkeeping, shown by `/v1/model`.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    /// The last refused reload: `(RFC 3339 time, error)`; cleared by a success.
    pub last_error: Mutex<Option<(String, String)>>,
    /// Looks of the store watcher at a `CURRENT` it could not read.
    pub current_unreadable: AtomicU64,
    /// Reloads of the store watcher that panicked (also in `failed`).
    pub panicked: AtomicU64,
}

/// What every request handler shares: the model and where it is reloaded from.
pub struct AppState {
    source: ModelSource,
    /// `None` until a store's first version is loaded.
    engine: ArcSwapOption<Engine>,
    reload_lock: Mutex<()>,
    scoring: ScoringQueue,
    /// Audience streams open now, up to a cap.
    audience_streams: ScoringQueue,
    reloads: ReloadStats,
    metrics: crate::metrics::Metrics,
    /// The API keys, swapped whole when their file is read again.
    api_keys: ArcSwapOption<crate::auth::ApiKeys>,
    /// The file the keys came from, read again by [`AppState::reload_api_keys`].
    api_keys_file: Option<PathBuf>,
    /// Origins whose web pages may call the API (CORS); empty: none.
    cors_origins: Vec<String>,
    /// How long a client may take to send a request body (`None`: forever).
    body_timeout: Option<std::time::Duration>,
    /// How long a streamed answer waits for its client to read on.
    write_timeout: std::time::Duration,
    /// The event log's writer (`POST /v1/events`), if the server keeps one.
    events: Option<crate::events::EventSink>,
    /// The event log's directory, read again when a swap moves the data end back.
    event_dir: Option<PathBuf>,
    /// Purchases since the serving model's data end (survives model swaps).
    recent: Arc<crate::events::RecentPurchases>,
    /// The running experiments (swapped whole by the admin API).
    experiments: crate::experiments::Experiments,
}

/// The outcome of a successful [`AppState::reload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Version of the model that served before the reload (`None`: the
    /// first model of a server that started without one).
    pub previous_version: Option<String>,
    /// Version of the model now serving.
    pub model_version: String,
}

impl AppState {
    /// Loads, validates and warms the model at `model_dir`.
    pub fn load(model_dir: impl Into<PathBuf>) -> Result<AppState, ArtifactError> {
        Self::load_from(ModelSource::Dir(model_dir.into()))
    }

    /// Loads, validates and warms the model `source` names now. A store
    /// whose `CURRENT` names no version yet gives a state without a model
    /// ([`engine`](Self::engine) is `None`), which the store watcher fills
    /// once a version is published; any other failure is an error.
    pub fn load_from(source: ModelSource) -> Result<AppState, ArtifactError> {
        tune_allocator();
        if let ModelSource::Store(store) = &source
            && matches!(store.current(), Ok(None))
        {
            return Ok(AppState::with_source(source, None));
        }
        let engine = source.load()?;
        Ok(AppState::with_source(source, Some(engine)))
    }

    fn with_source(source: ModelSource, engine: Option<Engine>) -> AppState {
        // Without a model nothing is newer than its data: the overlay keeps
        // nothing until the first model's swap reads the log again.
        let data_end = engine.as_ref().map_or(i64::MAX, crate::events::data_end);
        let recent = crate::events::RecentPurchases::new(data_end);
        AppState {
            source,
            engine: ArcSwapOption::new(engine.map(Arc::new)),
            reload_lock: Mutex::new(()),
            scoring: ScoringQueue::new(DEFAULT_MAX_PENDING_SCORING),
            audience_streams: ScoringQueue::new(DEFAULT_MAX_AUDIENCE_STREAMS),
            reloads: ReloadStats::default(),
            metrics: crate::metrics::Metrics::default(),
            api_keys: ArcSwapOption::empty(),
            api_keys_file: None,
            cors_origins: Vec::new(),
            body_timeout: None,
            write_timeout: std::time::Duration::from_secs(
                crate::config::DEFAULT_WRITE_TIMEOUT_SECS,
            ),
            events: None,
            event_dir: None,
            recent: Arc::new(recent),
            experiments: Default::default(),
        }
    }

    /// A state serving `engine`, which [`reload`](Self::reload) will replace with
    /// the artifact at `model_dir`.
    pub fn new(model_dir: impl Into<PathBuf>, engine: Engine) -> AppState {
        Self::with_source(ModelSource::Dir(model_dir.into()), Some(engine))
    }

    /// Requires API keys as `keys` says (see [`crate::auth`]).
    pub fn with_api_keys(self, keys: crate::auth::ApiKeys) -> AppState {
        self.api_keys.store(Some(Arc::new(keys)));
        self
    }

    /// Requires the API keys of the file at `path`, which
    /// [`reload_api_keys`](Self::reload_api_keys) reads again.
    pub fn with_api_keys_file(
        mut self,
        path: &Path,
    ) -> Result<AppState, crate::auth::KeyFileError> {
        let keys = crate::auth::ApiKeys::load(path)?;
        self.api_keys_file = Some(path.to_path_buf());
        Ok(self.with_api_keys(keys))
    }

    /// Reads the key file again and swaps its keys in; requests already
    /// checked are not affected. On error the keys in use stay. `Ok(None)`
    /// when the keys did not come from a file; else how many keys it holds.
    pub fn reload_api_keys(&self) -> Result<Option<usize>, crate::auth::KeyFileError> {
        let Some(path) = &self.api_keys_file else {
            return Ok(None);
        };
        let keys = crate::auth::ApiKeys::load(path)?;
        let n = keys.len();
        self.api_keys.store(Some(Arc::new(keys)));
        tracing::info!(file = %path.display(), keys = n, "API keys read again");
        Ok(Some(n))
    }

    /// Lets web pages of `origins` call the API from a browser (CORS), and
    /// use the admin and event routes (see [`crate::auth`]).
    pub fn with_cors_origins(mut self, origins: Vec<String>) -> AppState {
        self.cors_origins = origins;
        self
    }

    /// Fails a request body still arriving `limit` after its head
    /// (`408 request_timeout`; see the `deadline` module).
    pub fn with_body_timeout(mut self, limit: std::time::Duration) -> AppState {
        self.body_timeout = Some(limit);
        self
    }

    /// How long a client may take to send a request body.
    pub fn body_timeout(&self) -> Option<std::time::Duration> {
        self.body_timeout
    }

    /// Cuts a streamed answer short (and lets go of its model) once its
    /// client has read nothing for `timeout` (default 30 s; see
    /// `write_deadline`).
    pub fn with_write_timeout(mut self, timeout: std::time::Duration) -> AppState {
        self.write_timeout = timeout;
        self
    }

    /// How long a streamed answer waits for its client to read on.
    pub fn write_timeout(&self) -> std::time::Duration {
        self.write_timeout
    }

    /// The origins allowed to call the API from a browser.
    pub fn cors_origins(&self) -> &[String] {
        &self.cors_origins
    }

    /// Keeps an event log in `dir` (`POST /v1/events`; see
    /// [`encore_data::event_log`]): opens it (cutting a torn or damaged tail,
    /// skipping and logging damaged records), puts its purchases later than
    /// the serving model's data end into the live overlay, and starts the
    /// writer thread.
    pub fn with_event_log(
        self,
        dir: &Path,
        options: encore_data::event_log::EventLogOptions,
    ) -> Result<AppState, encore_data::events::EventLogError> {
        self.with_event_log_on(dir, options, Arc::new(encore_data::event_log::OsFiles))
    }

    /// [`with_event_log`](Self::with_event_log) writing through `layer`
    /// (tests inject faults this way).
    pub fn with_event_log_on(
        mut self,
        dir: &Path,
        options: encore_data::event_log::EventLogOptions,
        layer: Arc<dyn encore_data::event_log::FileLayer>,
    ) -> Result<AppState, encore_data::events::EventLogError> {
        let data_end = self.recent.data_end();
        let (mut events, mut recent) = (0usize, Vec::new());
        let (log, report) =
            encore_data::event_log::EventLog::open_with(dir, options, layer, |e| {
                events += 1;
                if crate::events::is_recent_purchase(&e, data_end) {
                    recent.push(e);
                }
            })?;
        // Compacted files are not read by the open (a checkpoint has their
        // ids); their purchases matter only if some are later than the data end.
        if let Some(latest) = log.latest_compacted_purchase()
            && latest > data_end
        {
            let files = log.compacted_files()?;
            encore_data::events::for_each_event_in(&files, |e| {
                if crate::events::is_recent_purchase(&e, data_end) {
                    recent.push(e);
                }
            })?;
        }
        if let Some(problem) = log.checkpoint_problem() {
            tracing::warn!(
                checkpoint = %dir.join(encore_data::event_log::CHECKPOINT_FILE).display(),
                problem,
                "event log checkpoint unusable: every file was read instead (compacted ones included); exposures and clicks compacted inside the idempotency window are no longer recognised as duplicates"
            );
        }
        self.recent.record(&recent);
        // Each damaged record once, with where it is, so that an operator can
        // look at it (`encore-train events verify` lists them too).
        for d in &report.damaged {
            tracing::warn!(record = %d, "damaged event log record skipped");
        }
        let tail = log.recovered_tail();
        if tail.bytes > 0 {
            tracing::warn!(
                file = %tail.path.display(),
                bytes = tail.bytes,
                damaged_lines = tail.damaged_lines,
                "event log: cut the end of the last file after its last valid record (a write a crash interrupted; never acknowledged)"
            );
        }
        tracing::info!(
            dir = %dir.display(),
            files = report.files.len(),
            events,
            damaged_records = report.damaged.len(),
            torn_bytes_cut = tail.bytes,
            customers_with_recent_purchases = self.recent.len(),
            "event log opened"
        );
        self.metrics.events.damaged_records.store(
            report.damaged.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let sink = crate::events::EventSink::spawn(
            log,
            Arc::clone(&self.recent),
            Arc::clone(&self.metrics.events),
        )
        .map_err(|source| encore_data::events::EventLogError::Io {
            path: dir.to_path_buf(),
            cause: source,
        })?;
        self.events = Some(sink);
        self.event_dir = Some(dir.to_path_buf());
        Ok(self)
    }

    /// Runs the experiments of `config` on the recommendations route (at
    /// most one per placement; see docs/experiments.md). With
    /// `file`, `PUT /v1/admin/experiments` writes changes back to it.
    pub fn with_experiments(
        mut self,
        config: encore_model::experiment::ExperimentsConfig,
        file: Option<PathBuf>,
    ) -> Result<AppState, encore_model::experiment::ExperimentConfigError> {
        self.experiments = crate::experiments::Experiments::new(config, file)?;
        Ok(self)
    }

    /// Reads, validates and runs the experiments file at `path`, which
    /// admin changes are then written back to. Errors name the file and key.
    pub fn with_experiments_file(
        mut self,
        path: &Path,
    ) -> Result<AppState, encore_model::experiment::ExperimentConfigError> {
        self.experiments = crate::experiments::Experiments::load(path)?;
        Ok(self)
    }

    /// The running experiments.
    pub(crate) fn experiments(&self) -> &crate::experiments::Experiments {
        &self.experiments
    }

    /// Waits until every event handed to the event log's writer so far
    /// (posted batches, and the exposures the server logs without waiting)
    /// is on disk. Blocks. `Ok` at once without an event log.
    pub fn flush_events(&self) -> Result<(), ApiError> {
        match &self.events {
            Some(sink) => sink.flush(),
            None => Ok(()),
        }
    }

    /// The event log's writer, if the server keeps one.
    pub(crate) fn event_sink(&self) -> Option<&crate::events::EventSink> {
        self.events.as_ref()
    }

    /// The event log's directory, if the server keeps one.
    pub(crate) fn event_dir(&self) -> Option<&Path> {
        self.event_dir.as_deref()
    }

    /// Purchases since the serving model's data end.
    pub(crate) fn recent_purchases(&self) -> &crate::events::RecentPurchases {
        &self.recent
    }

    /// The API keys in use, if the server checks any.
    pub fn api_keys(&self) -> Option<Arc<crate::auth::ApiKeys>> {
        self.api_keys.load_full()
    }

    /// Sets how many scoring jobs may be queued or running at once (at least 1).
    pub fn with_max_pending_scoring(mut self, max: usize) -> AppState {
        self.scoring = ScoringQueue::new(max.max(1));
        self
    }

    /// Sets how many audience streams may be open at once (at least 1).
    pub fn with_max_audience_streams(mut self, max: usize) -> AppState {
        self.audience_streams = ScoringQueue::new(max.max(1));
        self
    }

    /// A place among the open audience streams, held until the stream is
    /// dropped, or `503 overloaded` when they are all taken.
    pub(crate) fn enter_audience_stream(&self) -> Result<ScoringPermit, ApiError> {
        self.audience_streams
            .try_enter()
            .ok_or_else(|| ApiError::overloaded(RETRY_AFTER_SECONDS))
    }

    /// Where [`reload`](Self::reload) reads from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// Reload successes, failures and the last error.
    pub fn reloads(&self) -> &ReloadStats {
        &self.reloads
    }

    /// Request counters and latency histograms (`GET /metrics`).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// For a store source: true if its `CURRENT` names another version than
    /// the serving one (cheap: reads one small file).
    pub fn store_moved(&self) -> bool {
        match &self.source {
            ModelSource::Dir(_) => false,
            ModelSource::Store(store) => store
                .current()
                .ok()
                .flatten()
                .is_some_and(|v| Some(v) != self.serving_version()),
        }
    }

    /// A snapshot of the serving model, or `None` while no model is loaded
    /// (a store without a published version yet).
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.load_full()
    }

    /// The serving model's version, or `None` while no model is loaded.
    pub fn serving_version(&self) -> Option<String> {
        self.engine
            .load()
            .as_ref()
            .map(|e| e.manifest().model_version.clone())
    }

    /// Loads the artifact in the model directory, validates and warms it, then
    /// swaps it in atomically. On error the current model keeps serving.
    ///
    /// Blocks for as long as loading takes; call it off the async workers.
    pub fn reload(&self) -> Result<Reloaded, ArtifactError> {
        let _one_at_a_time = self
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let loaded = self.source.load();
        let engine = match loaded {
            Ok(engine) => engine,
            Err(e) => {
                self.reloads.failed.fetch_add(1, Ordering::Relaxed);
                let now = encore_data::timestamp::format_timestamp(now_secs());
                *self
                    .reloads
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some((now, e.to_string()));
                return Err(e);
            }
        };
        self.reloads.succeeded.fetch_add(1, Ordering::Relaxed);
        *self
            .reloads
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let model_version = engine.manifest().model_version.clone();
        let data_end = crate::events::data_end(&engine);
        let previous = self.engine.swap(Some(Arc::new(engine)));
        self.move_overlay_to(data_end);
        let previous_version = previous
            .as_ref()
            .map(|e| e.manifest().model_version.clone());
        // Requests that took the old model before the swap finish within
        // milliseconds (a streamed audience may take longer): wait for them,
        // a bounded time, so that the old model is freed here and its memory
        // trimmed, not freed later on a worker where nothing trims it.
        let deadline = std::time::Instant::now() + OLD_MODEL_GRACE;
        while previous.as_ref().is_some_and(|p| Arc::strong_count(p) > 1)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(previous);
        release_freed_memory();
        tracing::info!(previous_version = previous_version.as_deref().unwrap_or("none"), %model_version, "model reloaded");
        Ok(Reloaded {
            previous_version,
            model_version,
        })
    }

    /// After a swap to a model whose data ends at `data_end`: a later end
    /// forgets the purchases the new model trained on; an earlier one (a
    /// rollback) reads the log again for the purchases between the two ends,
    /// which the overlay had forgotten.
    fn move_overlay_to(&self, data_end: i64) {
        if data_end >= self.recent.data_end() {
            self.recent.forget_until(data_end);
            return;
        }
        let mut recent = Vec::new();
        let reread = self.event_dir.as_deref().map(|dir| {
            encore_data::events::for_each_event(dir, |e| {
                if crate::events::is_recent_purchase(&e, data_end) {
                    recent.push(e);
                }
            })
        });
        match reread {
            Some(Ok(_)) => self.recent.reset(data_end, &recent),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the event log again after a rollback: purchases between the two data ends are missing from the live overlay until a restart");
                self.recent.forget_until(data_end);
            }
            None => self.recent.forget_until(data_end),
        }
    }

    /// Runs CPU-heavy `job` on the blocking thread pool, or answers
    /// `503 overloaded` at once when the scoring queue is full.
    pub async fn score<R, F>(&self, job: F) -> Result<R, ApiError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .scoring
            .try_enter()
            .ok_or_else(|| ApiError::overloaded(RETRY_AFTER_SECONDS))?;
        // The permit moves into the job, so it counts until the job ends even if
        // the client goes away first.
        Ok(web::block(move || {
            let _permit = permit;
            job()
        })
        .await?)
    }
}

// glibc's malloc keeps freed heap memory in its arenas, and once a large
// block was freed it raises its mmap threshold (up to 32 MiB) and serves later
// large blocks from the heap too: without the threshold pinned and the trim
// below every reload left the server's resident size higher, until it
// settled near 3.5x the model's size (see docs/operations.md, "Memory").
// Elsewhere both are no-ops.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
}

/// Keeps a model's large arrays mapped on their own, so they are unmapped
/// when the model is freed ([`encore_data::alloc`]).
fn tune_allocator() {
    encore_data::alloc::keep_large_blocks_mapped();
}

/// How long a reload waits for requests still holding the old model before
/// it drops its own reference (see [`AppState::reload`]).
const OLD_MODEL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Gives the free memory of glibc's arenas (a dropped model's small
/// allocations) back to the system.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's own arenas to
    // the kernel; it takes the arenas' locks and has no preconditions.
    unsafe {
        malloc_trim(0);
    }
}

/// Watches a store source: every `interval`, if the store's `CURRENT` moved,
/// reloads (off the request path). A refused artifact, a reload that panics
/// and a `CURRENT` that cannot be read are logged and counted
/// ([`ReloadStats`], `/metrics`), the old model keeps serving and the watcher
/// keeps looking. Returns at once for a directory source.
pub fn spawn_store_watcher(state: Arc<AppState>, interval: std::time::Duration) {
    if matches!(state.source, ModelSource::Dir(_)) {
        return;
    }
    std::thread::Builder::new()
        .name("encore-store-watcher".into())
        .spawn(move || {
            let mut watch = StoreWatch::default();
            loop {
                std::thread::sleep(interval);
                watch.look(&state, || state.reload());
            }
        })
        .expect("spawning the store watcher");
}

/// What the store watcher remembers between two looks.
#[derive(Debug, Default)]
struct StoreWatch {
    /// The version last refused: retried only once `CURRENT` names another.
    refused: Option<String>,
    /// The last error reading `CURRENT`, logged once until it changes.
    unreadable: Option<String>,
}

impl StoreWatch {
    /// One look at the store: reloads with `reload` if `CURRENT` names a
    /// version that is neither serving nor already refused.
    fn look(&mut self, state: &AppState, reload: impl FnOnce() -> Result<Reloaded, ArtifactError>) {
        let ModelSource::Store(store) = &state.source else {
            return;
        };
        let wanted = match store.current() {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                state
                    .reloads
                    .current_unreadable
                    .fetch_add(1, Ordering::Relaxed);
                let text = e.to_string();
                if self.unreadable.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "store watcher: CURRENT cannot be read; the old model keeps serving");
                    self.unreadable = Some(text);
                }
                return;
            }
        };
        self.unreadable = None;
        if Some(&wanted) == state.serving_version().as_ref()
            || self.refused.as_deref() == Some(wanted.as_str())
        {
            return;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(reload)) {
            Ok(Ok(_)) => self.refused = None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "store watcher: new version refused; the old model keeps serving");
                self.refused = Some(wanted);
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                let r = &state.reloads;
                r.panicked.fetch_add(1, Ordering::Relaxed);
                r.failed.fetch_add(1, Ordering::Relaxed);
                let now = encore_data::timestamp::format_timestamp(now_secs());
                *r.last_error.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((now, format!("the reload panicked: {what}")));
                tracing::error!(version = %wanted, panic = %what, "store watcher: the reload panicked; the old model keeps serving");
                self.refused = Some(wanted);
            }
        }
    }
}

/// Loads and validates the artifact at `dir`, then runs one query of each kind
/// so that a model that cannot answer is refused before it serves, and its
/// pages are in memory before the first request.
fn load_checked(dir: &Path, manifest_sha256: Option<&str>) -> Result<Engine, ArtifactError> {
    let started = std::time::Instant::now();
    let engine = artifact::load_expecting(dir, manifest_sha256)?;
    let filter = ListFilter::default();
    if !engine.items().is_empty() {
        engine.similar(0, 1, &filter);
        engine.bought_together(0, 1, &filter);
    }
    let customer = (!engine.customers().is_empty()).then_some(0);
    engine.recommend(customer, 1, &filter);
    tracing::info!(
        model_version = %engine.manifest().model_version,
        items = engine.items().len(),
        customers = engine.customers().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        dir = %dir.display(),
        "model loaded"
    );
    Ok(engine)
}

/// Counts scoring jobs queued or running, up to a capacity.
struct ScoringQueue {
    pending: Arc<AtomicUsize>,
    capacity: usize,
}

/// One place in the [`ScoringQueue`], given back on drop.
pub(crate) struct ScoringPermit {
    pending: Arc<AtomicUsize>,
}

impl ScoringQueue {
    fn new(capacity: usize) -> Self {
        ScoringQueue {
            pending: Arc::new(AtomicUsize::new(0)),
            capacity,
        }
    }

    fn try_enter(&self) -> Option<ScoringPermit> {
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .ok()
            .map(|_| ScoringPermit {
                pending: Arc::clone(&self.pending),
            })
    }
}

impl Drop for ScoringPermit {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_refuses_beyond_capacity_and_frees_on_drop() {
        let queue = ScoringQueue::new(2);
        let a = queue.try_enter().expect("first");
        let _b = queue.try_enter().expect("second");
        assert!(queue.try_enter().is_none());
        drop(a);
        assert!(queue.try_enter().is_some());
    }

    fn tiny_engine(version: &str) -> Engine {
        use encore_data::synth::{SynthParams, generate};
        use encore_model::manifest::DataSummary;
        use encore_model::pipeline::{EngineConfig, train_engine};
        let log = generate(&SynthParams {
            customers: 60,
            items: 30,
            purchases: 600,
            categories: 2,
            ..SynthParams::default()
        });
        let mut config = EngineConfig::default();
        config.als.factors = 4;
        config.als.iterations = 2;
        let mut e =
            train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap();
        e.manifest_mut().model_version = version.to_string();
        e
    }

    /// The watcher survives an unreadable CURRENT and a panicking reload:
    /// both are counted, the old model keeps serving, and the next version
    /// is still picked up.
    #[test]
    fn the_store_watcher_counts_its_faults_and_keeps_going() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for v in ["v1", "v2", "v3"] {
            store.publish(&mut tiny_engine(v)).unwrap();
        }
        store.set_current("v1").unwrap();
        let state = AppState::load_from(ModelSource::Store(store.clone())).unwrap();
        let mut watch = StoreWatch::default();
        let serving = |s: &AppState| s.engine().unwrap().manifest().model_version.clone();

        std::fs::write(dir.path().join("CURRENT"), "../../etc\n").unwrap();
        watch.look(&state, || unreachable!("nothing to reload"));
        watch.look(&state, || unreachable!("nothing to reload"));
        assert_eq!(state.reloads.current_unreadable.load(Ordering::Relaxed), 2);

        store.set_current("v2").unwrap();
        watch.look(&state, || panic!("boom"));
        assert_eq!(state.reloads.panicked.load(Ordering::Relaxed), 1);
        assert_eq!(state.reloads.failed.load(Ordering::Relaxed), 1);
        let last = state.reloads.last_error.lock().unwrap().clone().unwrap();
        assert!(last.1.contains("boom"), "{last:?}");
        assert_eq!(serving(&state), "v1");
        // The panicked version is not retried; the next one is loaded.
        watch.look(&state, || unreachable!("v2 was refused"));
        store.set_current("v3").unwrap();
        watch.look(&state, || state.reload());
        assert_eq!(serving(&state), "v3");
    }

    #[test]
    fn loading_a_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let err = AppState::load(dir.path().join("nope"))
            .err()
            .expect("no model");
        assert!(matches!(err, ArtifactError::NotAnArtifact { .. }), "{err}");
    }
}
