//! The append-only event log: durable, idempotent batches of [`Event`]s in
//! rotating JSON-lines files.
//!
//! ```
//! use encore_data::event_log::{EventLog, EventLogOptions};
//! use encore_data::events::parse_event;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut log = EventLog::open(dir.path(), EventLogOptions::default()).unwrap();
//! let e = parse_event(br#"{"id":"e1","type":"click","time":"2026-11-30T10:00:00Z",
//!                          "customer":"c1","item":"tea"}"#).unwrap();
//! let first = log.append(vec![e.clone()], 1_764_496_800).unwrap();
//! assert_eq!((first.accepted, first.duplicates), (1, 0));
//! // A retried batch is not logged twice, not even after a restart.
//! drop(log);
//! let mut log = EventLog::open(dir.path(), EventLogOptions::default()).unwrap();
//! let again = log.append(vec![e], 1_764_496_900).unwrap();
//! assert_eq!((again.accepted, again.duplicates), (0, 1));
//! ```
//!
//! # Guarantees
//! - **Durable before acknowledged.** [`EventLog::append`] writes the batch's
//!   lines with one `write`, then `fdatasync`s the file, and returns only then;
//!   a caller acknowledges the batch after that. Creating a file also fsyncs
//!   the directory, so the new name survives a crash too.
//! - **Idempotent.** An event whose `id` is already in the log (or earlier in
//!   the same batch) is dropped and counted in [`AppendOutcome::duplicates`];
//!   the first event of an id wins, even if a later one differs.
//! - **Ordered files.** Files are `events-{seq:08}.jsonl`, so name order is
//!   creation order. A new file is started when the current one holds
//!   [`EventLogOptions::max_file_bytes`] or more, or would exceed it with the
//!   batch (a batch is never split across files; one larger than the limit
//!   gets a file of its own).
//!
//! Each line is a record framed with its length and CRC-32C
//! ([`encode_record`], described in [`crate::events`]).
//!
//! # Crash recovery: the torn tail is truncated
//! A crash in the middle of a write can leave the current file ending in a
//! partial line, or in bytes that never became a valid record. That batch
//! was never acknowledged. On [`EventLog::open`] the last file is
//! **truncated** after its last valid record (and fsynced), so the next
//! append cannot glue onto the fragment; what was cut is in
//! [`EventLog::recovered_tail`]. Valid records of an unacknowledged batch
//! stay in the log: when the client retries the batch, their ids are
//! duplicates and only the rest is written, so every event is logged
//! exactly once either way. A damaged record *before* the last valid one
//! (in any file) is not a torn write but damage: it is skipped, and counted
//! and located in the report `open_each` returns
//! ([`EventReadReport::damaged`]); the log opens.
//! [`repair_dir`] moves such records out of the files.
//!
//! # Failed writes: cut back, refuse, probe, resume
//! When a write or an fsync fails (a full disk, an I/O error), none of the
//! batches of that commit is acknowledged ([`EventLogError::WriteFailed`]),
//! and the log cuts the file back to its last durable offset (through a new
//! descriptor, then fsynced), so no reader ever sees a fragment. Every
//! append after that first *probes* the disk: it cuts the file back if that
//! had failed too, then writes as many bytes as its batch needs (at least
//! 4 KiB) to a scratch file `DIR/.probe`, fsyncs and removes it. While the
//! probe fails, the append fails the same way and touches nothing else;
//! once it succeeds, the log writes again, with no reopening and no restart.
//!
//! # One process at a time
//! `open` takes an exclusive lock on `DIR/.lock` (released when the log is
//! dropped or the process dies), so a second server, or [`repair_dir`], on
//! the same directory fails with [`EventLogError::Locked`] instead of
//! interleaving writes.
//!
//! # Testing faults
//! Every file operation of the writing path goes through a [`FileLayer`]
//! ([`OsFiles`] by default). With the `fault-injection` feature,
//! `faults::FaultyFiles` fails chosen writes and fsyncs with `ENOSPC` or
//! `EIO` (after writing part of the buffer, as a real full disk does), so
//! tests can check that no acknowledged event is ever lost.
//!
//! # Memory: fingerprints of the ids of a window
//! The idempotency set holds a 128-bit fingerprint (SHA-256, truncated) of
//! the id of every event received in the last
//! [`EventLogOptions::dedup_window_secs`] (default 7 days), not the ids
//! themselves: a 24-byte entry (with the time it was received) and a control
//! byte, so about 30 bytes per id at the hash table's usual load and up to
//! about 60 just after it grows, whatever the ids' length (a million events
//! a day for a week: 200 to 400 MB). Older fingerprints are
//! dropped as the clock of the appends moves on (at most an eighth of the
//! window late), so an event retried after the window is written again.
//! Readers keep the first event of each id
//! ([`for_each_event`](crate::events::for_each_event), which streams the
//! log and keeps only the fingerprints), so training and the server's start
//! never count it twice. Two different ids share a
//! fingerprint with probability about `n² / 2¹²⁹`, negligible for any real
//! `n`. Opening reads every file once, or, on a compacted log, the
//! checkpoint and the files after it.
//!
//! # Retention: compaction and the checkpoint
//! With [`EventLogOptions::retention_secs`], [`EventLog::compact`] turns the
//! files before the current one whose events were all received before the
//! retention into one file of their purchases, `events-{seq}-compacted.jsonl`
//! (exposures and clicks are dropped; purchases are training input, and only
//! the operator knows when the history has them), and writes the ids of
//! their events still in the idempotency window to the checkpoint
//! ([`CHECKPOINT_FILE`], a [`Checkpoint`] with a CRC-32C), then removes the
//! files. Each of the three steps is durable before the next (write, fsync,
//! rename, fsync the directory; [`crate::durable::replace_file`]):
//! - a crash before the checkpoint leaves the old files and the old
//!   checkpoint, so the compacted file only repeats purchases that readers
//!   see once (they keep the first event of each id); the next compaction
//!   writes the same file again;
//! - a crash after it leaves files the checkpoint covers; [`EventLog::open`]
//!   removes them.
//!
//! [`EventLog::open`] reads the checkpoint and the files after the last one it
//! covers, not the compacted files ([`EventLog::latest_compacted_purchase`]
//! says when a reader of recent purchases needs them). A damaged or missing
//! checkpoint beside compacted files makes it read every file instead
//! ([`EventLog::checkpoint_problem`]), and the next compaction writes every
//! id of the window to the new one.

use crate::events::{
    DamagedRecord, Event, EventKind, EventLogError, EventReadReport, encode_record, fingerprint,
    scan_event_dir, scan_paths,
};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(any(test, feature = "fault-injection"))]
pub mod faults;

/// Default size at which a new file is started: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;

/// Default idempotency window: 7 days.
pub const DEFAULT_DEDUP_WINDOW_SECS: i64 = 7 * 86_400;

/// The smallest probe write after a failure (module docs).
pub const MIN_PROBE_BYTES: usize = 4096;

/// Name of the lock file in the log directory.
pub const LOCK_FILE: &str = ".lock";

/// Name of the probe's scratch file in the log directory.
pub const PROBE_FILE: &str = ".probe";

/// Name of the checkpoint of the idempotency set in the log directory
/// (see [Retention](self#retention-compaction-and-the-checkpoint)).
pub const CHECKPOINT_FILE: &str = "checkpoint";

/// First bytes of a checkpoint file.
const CHECKPOINT_MAGIC: &[u8] = b"encore-event-checkpoint 1\n";

/// A file the log appends to, as a [`FileLayer`] opens it.
pub trait LogFile: fmt::Debug + Send {
    /// Writes all of `buf` at the end of the file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes and fsyncs it.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// The file's size.
    fn size(&self) -> io::Result<u64>;
}

/// The file operations of the log's writing path (module docs).
pub trait FileLayer: fmt::Debug + Send + Sync {
    /// Opens `path` for appending; with `create`, creates it if missing.
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn LogFile>>;
    /// Fsyncs the directory `dir`.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Writes `len` bytes to `dir/.probe`, fsyncs and removes it.
    fn probe(&self, dir: &Path, len: usize) -> io::Result<()>;
    /// Replaces `path` with `bytes` atomically and durably
    /// ([`crate::durable::replace_file`]): compaction and the checkpoint.
    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        crate::durable::replace_file(path, bytes).map_err(|e| io::Error::other(e.to_string()))
    }
    /// Removes the file `path` (the caller fsyncs the directory).
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFiles;

#[derive(Debug)]
struct OsFile(File);

impl LogFile for OsFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.sync_all()
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl FileLayer for OsFiles {
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn LogFile>> {
        let file = OpenOptions::new().append(true).create(create).open(path)?;
        Ok(Box::new(OsFile(file)))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        crate::durable::sync_dir(dir)
    }
    fn probe(&self, dir: &Path, len: usize) -> io::Result<()> {
        let path = dir.join(PROBE_FILE);
        let written = (|| {
            let mut f = File::create(&path)?;
            f.write_all(&vec![0u8; len])?;
            f.sync_data()
        })();
        let removed = std::fs::remove_file(&path);
        written?;
        removed
    }
}

/// Settings of an [`EventLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLogOptions {
    /// Start a new file once the current one would exceed this many bytes.
    pub max_file_bytes: u64,
    /// An event whose id was received less than this many seconds ago is a
    /// duplicate (module docs); must be positive.
    pub dedup_window_secs: i64,
    /// Files whose every event was received more than this many seconds ago
    /// are compacted ([`EventLog::compact`]); `None`: never (the default).
    pub retention_secs: Option<i64>,
}

impl Default for EventLogOptions {
    fn default() -> Self {
        EventLogOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            dedup_window_secs: DEFAULT_DEDUP_WINDOW_SECS,
            retention_secs: None,
        }
    }
}

/// The checkpoint of a compacted log (module docs): which files are
/// compacted, and the ids of their events still in the idempotency window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every `events-{seq}.jsonl` up to this sequence number is compacted:
    /// its purchases are in the compacted files, its ids of the window here.
    pub compacted_through: u64,
    /// The latest event time of a purchase in the compacted files
    /// (`i64::MIN` when they hold none).
    pub latest_purchase: i64,
    /// The clock of the compaction that wrote it.
    pub written_at: i64,
    /// Fingerprint of each id and when it was received.
    pub ids: Vec<([u64; 2], i64)>,
}

impl Checkpoint {
    /// The file's bytes: a magic line, the fields and the ids in little
    /// endian, and the CRC-32C of all that.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECKPOINT_MAGIC.len() + 36 + 24 * self.ids.len());
        out.extend_from_slice(CHECKPOINT_MAGIC);
        out.extend_from_slice(&self.compacted_through.to_le_bytes());
        out.extend_from_slice(&self.latest_purchase.to_le_bytes());
        out.extend_from_slice(&self.written_at.to_le_bytes());
        out.extend_from_slice(&(self.ids.len() as u64).to_le_bytes());
        for ([a, b], t) in &self.ids {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&t.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads [`encode`](Self::encode)'s bytes, or says why they are damaged.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
        let body = bytes
            .strip_prefix(CHECKPOINT_MAGIC)
            .ok_or("not an event log checkpoint (its first line is wrong)")?;
        let head = 32;
        if body.len() < head + 4 {
            return Err(format!("{} bytes: too short", bytes.len()));
        }
        let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        let n = u64_at(24);
        let want = n
            .checked_mul(24)
            .and_then(|b| b.checked_add(head as u64 + 4))
            .filter(|&w| w == body.len() as u64)
            .ok_or_else(|| format!("{} bytes, not what {n} ids take", bytes.len()))?;
        let crc_at = bytes.len() - 4;
        let crc = u32::from_le_bytes(bytes[crc_at..].try_into().expect("4 bytes"));
        let actual = crc32c::crc32c(&bytes[..crc_at]);
        if crc != actual {
            return Err(format!(
                "checksum mismatch: the file says {crc:08x}, the bytes give {actual:08x}"
            ));
        }
        let ids = (0..(want as usize - head - 4) / 24)
            .map(|i| {
                let at = head + 24 * i;
                ([u64_at(at), u64_at(at + 8)], u64_at(at + 16) as i64)
            })
            .collect();
        Ok(Checkpoint {
            compacted_through: u64_at(0),
            latest_purchase: u64_at(8) as i64,
            written_at: u64_at(16) as i64,
            ids,
        })
    }
}

/// Reads the checkpoint of the log in `dir`: `Ok(None)` if there is none,
/// `Err` with the reason if it is damaged.
pub fn read_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, EventLogError> {
    let path = dir.join(CHECKPOINT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Checkpoint::decode(&bytes)
            .map(Some)
            .map_err(|reason| EventLogError::DamagedCheckpoint { path, reason }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// What one [`EventLog::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// The files compacted (and removed).
    pub files: Vec<PathBuf>,
    /// The file their purchases went to (`None` when they held none).
    pub compacted: Option<PathBuf>,
    /// Purchases kept, in `compacted`.
    pub purchases: usize,
    /// Exposures and clicks dropped, and repeats of an id.
    pub dropped: usize,
    /// Damaged records of the files, kept in `FILE.damaged` beside `compacted`.
    pub damaged: usize,
    /// Ids in the new checkpoint.
    pub checkpoint_ids: usize,
    /// Bytes the log's directory holds less after the compaction: the files
    /// removed, less what the compacted file and the damaged records set
    /// aside grew by (0 if they grew more).
    pub bytes_reclaimed: u64,
}

/// What one batch did to the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Events written now.
    pub accepted: usize,
    /// Events dropped because their id was already logged (or repeated in the batch).
    pub duplicates: usize,
}

/// One batch of [`EventLog::append_batches`]: its counts and the events it
/// wrote (with `received_at` set), in batch order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appended {
    pub outcome: AppendOutcome,
    pub events: Vec<Event>,
}

/// What [`EventLog::open`] cut from the end of the last file: a write a
/// crash cut short, never acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredTail {
    /// The file (empty when nothing was cut).
    pub path: PathBuf,
    /// Bytes cut.
    pub bytes: u64,
    /// Complete but invalid lines among them (the rest is a partial line).
    pub damaged_lines: usize,
}

/// The state of the file after a failed write (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    /// The file still has to be cut back to the durable offset.
    NotCut,
    /// The file is cut back; the disk has to pass a probe.
    Cut,
}

/// An open event log directory; see the [module docs](self).
pub struct EventLog {
    dir: PathBuf,
    options: EventLogOptions,
    layer: Arc<dyn FileLayer>,
    /// Held for the lifetime of the log: its lock keeps other processes out.
    _lock: File,
    /// The file appends go to, its sequence number and durable size.
    file: Box<dyn LogFile>,
    path: PathBuf,
    seq: u64,
    bytes: u64,
    /// Fingerprint of each id of the window and when it was received.
    ids: HashMap<[u64; 2], i64>,
    /// Clock of the last pruning of `ids`.
    pruned_at: i64,
    /// Set after a failed write until a probe succeeds.
    broken: Option<Broken>,
    recovered_tail: RecoveredTail,
    /// The latest time an event of the current file was received.
    current_received: i64,
    /// The files before the current one not compacted yet: sequence number,
    /// path and the latest time one of their events was received.
    closed: Vec<(u64, PathBuf, i64)>,
    /// What the checkpoint says (module docs); `compacted_through` 0 when
    /// nothing is compacted.
    compacted_through: u64,
    latest_compacted_purchase: i64,
    /// Fingerprints the checkpoint holds (those still in the window are
    /// carried into the next one).
    checkpointed: HashSet<[u64; 2]>,
    /// The checkpoint was damaged when the log was opened: the next one
    /// holds every id of the window.
    checkpoint_lost: Option<String>,
    /// Whether the compacted files were read when the log was opened (no
    /// valid checkpoint).
    compacted_read: bool,
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("dir", &self.dir)
            .field("path", &self.path)
            .field("bytes", &self.bytes)
            .field("ids", &self.ids.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> EventLogError + '_ {
    move |source| EventLogError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> EventLogError + '_ {
    move |source| EventLogError::WriteFailed {
        path: path.to_path_buf(),
        cause: source,
    }
}

/// The sequence number of a compacted file name, `events-{seq}-compacted.jsonl`.
pub fn compacted_seq(name: &str) -> Option<u64> {
    name.strip_prefix("events-")?
        .strip_suffix("-compacted.jsonl")?
        .parse()
        .ok()
}

fn compacted_name(seq: u64) -> String {
    format!("events-{seq:08}-compacted.jsonl")
}

/// The sequence number of an event file name, `events-{seq}.jsonl` (not a
/// compacted one).
pub fn original_seq(name: &str) -> Option<u64> {
    seq_of(name)
}

/// The sequence number of an event file name, `events-{seq}.jsonl`.
fn seq_of(name: &str) -> Option<u64> {
    name.strip_prefix("events-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

fn file_name(seq: u64) -> String {
    format!("events-{seq:08}.jsonl")
}

/// Creates `dir` if needed and takes its lock.
fn lock_dir(dir: &Path) -> Result<File, EventLogError> {
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    if created && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::durable::sync_dir(parent).map_err(io_err(parent))?;
    }
    let path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(EventLogError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// The files of a log directory, each in sequence order.
#[derive(Debug, Default)]
struct DirFiles {
    /// `events-{seq}.jsonl`.
    originals: Vec<(u64, PathBuf)>,
    /// `events-{seq}-compacted.jsonl`.
    compacted: Vec<(u64, PathBuf)>,
}

/// Lists the event files of `dir`, and removes the temporary files a crash
/// left behind in the middle of a [`crate::durable::replace_file`].
fn list_dir(dir: &Path) -> Result<DirFiles, EventLogError> {
    let mut out = DirFiles::default();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') && name.contains(".tmp-") {
            let _ = std::fs::remove_file(entry.path());
        } else if let Some(seq) = seq_of(name) {
            out.originals.push((seq, entry.path()));
        } else if let Some(seq) = compacted_seq(name) {
            out.compacted.push((seq, entry.path()));
        }
    }
    out.originals.sort();
    out.compacted.sort();
    Ok(out)
}

impl EventLog {
    /// Opens (creating it if needed) the log in `dir`; see
    /// [`open_each`](Self::open_each).
    pub fn open(dir: &Path, options: EventLogOptions) -> Result<EventLog, EventLogError> {
        Self::open_each(dir, options, |_| {}).map(|(log, _)| log)
    }

    /// Opens (creating it if needed) the log in `dir`: reads every file once
    /// to rebuild the idempotency set, handing the first event of each id to
    /// `f` as it goes (as [`for_each_event`](crate::events::for_each_event)
    /// does), cuts the last file after its last valid record, and returns
    /// the reader's report (damaged records of the cut tail are in
    /// [`recovered_tail`](Self::recovered_tail), not in the report).
    pub fn open_each(
        dir: &Path,
        options: EventLogOptions,
        f: impl FnMut(Event),
    ) -> Result<(EventLog, EventReadReport), EventLogError> {
        Self::open_with(dir, options, Arc::new(OsFiles), f)
    }

    /// [`open_each`](Self::open_each) writing through `layer`.
    pub fn open_with(
        dir: &Path,
        options: EventLogOptions,
        layer: Arc<dyn FileLayer>,
        mut f: impl FnMut(Event),
    ) -> Result<(EventLog, EventReadReport), EventLogError> {
        if options.dedup_window_secs <= 0 {
            return Err(EventLogError::Io {
                path: dir.to_path_buf(),
                cause: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the idempotency window must be positive, not {} seconds",
                        options.dedup_window_secs
                    ),
                ),
            });
        }
        let lock = lock_dir(dir)?;
        let listed = list_dir(dir)?;
        let (checkpoint, checkpoint_lost) = match read_checkpoint(dir) {
            Ok(None) if !listed.compacted.is_empty() => (
                None,
                Some("missing, but compacted files exist (a crash before the first checkpoint, or removed)".to_string()),
            ),
            Ok(c) => (c, None),
            Err(EventLogError::DamagedCheckpoint { reason, .. }) => (None, Some(reason)),
            Err(e) => return Err(e),
        };
        let through = checkpoint.as_ref().map_or(0, |c| c.compacted_through);
        // With a valid checkpoint the compacted files and the originals it
        // covers (left by a crash before their removal) are not read: their
        // ids of the window are in it. Without one, every file is read.
        let compacted_read = checkpoint.is_none() && !listed.compacted.is_empty();
        let mut files: Vec<PathBuf> = Vec::new();
        if compacted_read {
            files.extend(listed.compacted.iter().map(|(_, p)| p.clone()));
        }
        let originals: Vec<(u64, PathBuf)> = listed
            .originals
            .iter()
            .filter(|(seq, _)| *seq > through)
            .cloned()
            .collect();
        files.extend(originals.iter().map(|(_, p)| p.clone()));
        files.sort();
        // Each id with the latest time it was received (an id written again
        // after the window restarts it); pruned to the window by the first
        // append, whose clock is known.
        let mut ids: HashMap<[u64; 2], i64> = HashMap::new();
        let mut checkpointed = HashSet::new();
        let mut latest_compacted_purchase = i64::MIN;
        if let Some(c) = &checkpoint {
            latest_compacted_purchase = c.latest_purchase;
            for &(fp, t) in &c.ids {
                ids.insert(fp, t);
                checkpointed.insert(fp);
            }
        }
        let mut received_by_file = vec![i64::MIN; files.len()];
        let mut report = scan_paths(&files, |i, e, first| {
            let received = e.received_at.unwrap_or(e.time);
            received_by_file[i] = received_by_file[i].max(received);
            let t = ids.entry(fingerprint(&e.id)).or_insert(received);
            *t = (*t).max(received);
            if first {
                f(e);
            }
        })?;
        // Finish a compaction a crash cut short: the originals the checkpoint
        // covers go, and so does a compacted file after it (written by a
        // compaction that did not reach its checkpoint: the originals it
        // came from are all still there).
        let leftovers: Vec<&PathBuf> = listed
            .originals
            .iter()
            .filter(|(seq, _)| *seq <= through)
            .chain(
                listed
                    .compacted
                    .iter()
                    .filter(|(seq, _)| checkpoint.is_some() && *seq > through),
            )
            .map(|(_, p)| p)
            .collect();
        for p in &leftovers {
            layer.remove(p).map_err(io_err(p))?;
        }
        if !leftovers.is_empty() {
            layer.sync_dir(dir).map_err(io_err(dir))?;
        }
        let received_of = |path: &Path| {
            files
                .iter()
                .position(|p| p == path)
                .map_or(i64::MIN, |i| received_by_file[i])
        };
        let last = originals.last().cloned();
        let mut closed: Vec<(u64, PathBuf, i64)> = originals
            .iter()
            .map(|(seq, p)| (*seq, p.clone(), received_of(p)))
            .collect();
        closed.pop();
        let current_received = last.as_ref().map_or(i64::MIN, |(_, p)| received_of(p));
        let mut recovered_tail = RecoveredTail::default();
        let (seq, path, file, bytes) = match last {
            Some((seq, path)) => {
                let mut file = layer.open_append(&path, false).map_err(io_err(&path))?;
                let len = file.size().map_err(io_err(&path))?;
                let keep = report
                    .files
                    .iter()
                    .position(|p| *p == path)
                    .map_or(len, |i| report.valid_end[i]);
                if keep < len {
                    file.truncate(keep).map_err(io_err(&path))?;
                    let (tail, kept): (Vec<DamagedRecord>, _) = std::mem::take(&mut report.damaged)
                        .into_iter()
                        .partition(|d| d.path == path && d.offset >= keep);
                    report.damaged = kept;
                    report.torn_tails.retain(|p| *p != path);
                    recovered_tail = RecoveredTail {
                        path: path.clone(),
                        bytes: len - keep,
                        damaged_lines: tail.len(),
                    };
                }
                // A crash between a write and its fsync leaves lines that a
                // reader sees (page cache) but that may not be on disk, and a
                // retry of their batch would be answered "duplicate" from them:
                // make them durable before anything is acknowledged.
                file.sync_data().map_err(io_err(&path))?;
                layer.sync_dir(dir).map_err(io_err(dir))?;
                (seq, path, file, keep)
            }
            None => {
                // Never below a compacted file's number, so names keep their order.
                let seq = listed
                    .compacted
                    .iter()
                    .map(|(s, _)| *s)
                    .chain([through])
                    .max()
                    .unwrap_or(0)
                    + 1;
                let (path, file) = create_file(layer.as_ref(), dir, seq).map_err(io_err(dir))?;
                (seq, path, file, 0)
            }
        };
        let log = EventLog {
            dir: dir.to_path_buf(),
            options,
            layer,
            _lock: lock,
            file,
            path,
            seq,
            bytes,
            ids,
            pruned_at: i64::MIN,
            broken: None,
            recovered_tail,
            current_received,
            closed,
            compacted_through: through,
            latest_compacted_purchase,
            checkpointed,
            checkpoint_lost,
            compacted_read,
        };
        Ok((log, report))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file appends go to now.
    pub fn current_file(&self) -> &Path {
        &self.path
    }

    /// Ids remembered for idempotency: those of the window (module docs),
    /// and until the first append those of every file.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// True if an event with this id is remembered: appending it now would
    /// count it as a duplicate.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(&fingerprint(id))
    }

    /// False from a failed write until a probe succeeds (module docs).
    pub fn is_writable(&self) -> bool {
        self.broken.is_none()
    }

    /// Forgets the ids received before `now - window`, at most once an
    /// eighth of the window (so an id is remembered for at least the window
    /// and at most an eighth longer).
    fn prune(&mut self, now: i64) {
        let window = self.options.dedup_window_secs;
        if now.saturating_sub(self.pruned_at) < (window / 8).max(1) {
            return;
        }
        let from = now.saturating_sub(window);
        self.ids.retain(|_, &mut received| received >= from);
        self.pruned_at = now;
    }

    /// What was cut from the end of the last file when the log was opened.
    pub fn recovered_tail(&self) -> &RecoveredTail {
        &self.recovered_tail
    }

    /// Bytes cut from the end of the last file when the log was opened.
    pub fn recovered_torn_bytes(&self) -> u64 {
        self.recovered_tail.bytes
    }

    /// Appends one batch durably; see [`append_batches`](Self::append_batches).
    pub fn append(
        &mut self,
        events: Vec<Event>,
        received_at: i64,
    ) -> Result<AppendOutcome, EventLogError> {
        let mut out = self.append_batches(vec![events], received_at)?;
        Ok(out.pop().map(|a| a.outcome).unwrap_or_default())
    }

    /// Appends several batches with one write and one `fdatasync` (group
    /// commit), stamping each written event with `received_at`. Events whose
    /// id is already logged, or appears earlier in these batches, are dropped
    /// and counted as duplicates of their batch. Returns when the lines are
    /// on disk. On error nothing of these batches may be acknowledged; the
    /// file is cut back to its last durable offset, and the next append
    /// probes the disk first (module docs).
    pub fn append_batches(
        &mut self,
        batches: Vec<Vec<Event>>,
        received_at: i64,
    ) -> Result<Vec<Appended>, EventLogError> {
        self.prune(received_at);
        let mut fresh: HashSet<[u64; 2]> = HashSet::new();
        let mut buf = Vec::new();
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let mut appended = Appended::default();
            for mut event in batch {
                let fp = fingerprint(&event.id);
                if self.ids.contains_key(&fp) || !fresh.insert(fp) {
                    appended.outcome.duplicates += 1;
                    continue;
                }
                event.received_at = Some(received_at);
                buf.extend_from_slice(&encode_record(&event));
                buf.push(b'\n');
                appended.outcome.accepted += 1;
                appended.events.push(event);
            }
            out.push(appended);
        }
        if buf.is_empty() {
            return Ok(out);
        }
        if self.broken.is_some() {
            self.recover(buf.len())?;
        }
        let len = buf.len() as u64;
        if self.bytes > 0 && self.bytes.saturating_add(len) > self.options.max_file_bytes {
            // Nothing written yet: the old file is whole, and a next file
            // left empty by a failed rotation is taken up by the next one.
            self.rotate().map_err(|e| {
                self.broken = Some(Broken::Cut);
                write_err(&self.dir)(e)
            })?;
        }
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            // Cut what may have been written, so that a reader never sees a
            // fragment and the next record starts at a record boundary.
            self.broken = Some(Broken::NotCut);
            let _ = self.cut_back();
            return Err(write_err(&self.path)(e));
        }
        self.bytes += len;
        self.current_received = self.current_received.max(received_at);
        self.ids
            .extend(fresh.into_iter().map(|fp| (fp, received_at)));
        Ok(out)
    }

    /// After a failed write: cuts the file back to its durable offset, then
    /// probes the disk with `len` bytes (at least [`MIN_PROBE_BYTES`]).
    fn recover(&mut self, len: usize) -> Result<(), EventLogError> {
        if self.broken == Some(Broken::NotCut) {
            self.cut_back().map_err(write_err(&self.path))?;
        }
        self.layer
            .probe(&self.dir, len.max(MIN_PROBE_BYTES))
            .map_err(write_err(&self.dir))?;
        self.broken = None;
        Ok(())
    }

    /// Cuts the current file back to its durable offset through a new
    /// descriptor (the old one may keep reporting the old error) and fsyncs it.
    fn cut_back(&mut self) -> io::Result<()> {
        let mut file = self.layer.open_append(&self.path, false)?;
        file.truncate(self.bytes)?;
        self.file = file;
        self.broken = Some(Broken::Cut);
        Ok(())
    }

    /// Starts the next file.
    fn rotate(&mut self) -> io::Result<()> {
        let seq = self.seq + 1;
        let (path, file) = create_file(self.layer.as_ref(), &self.dir, seq)?;
        let old = std::mem::replace(&mut self.path, path);
        self.closed.push((self.seq, old, self.current_received));
        self.current_received = i64::MIN;
        self.seq = seq;
        self.file = file;
        self.bytes = 0;
        Ok(())
    }

    /// True if [`compact`](Self::compact) at `now` has a file to compact: a
    /// file before the current one whose events were all received before
    /// `now` minus the retention. Cheap (no file is read).
    pub fn compaction_due(&self, now: i64) -> bool {
        let Some(retention) = self.options.retention_secs else {
            return false;
        };
        let horizon = now.saturating_sub(retention);
        self.closed.first().is_some_and(|(_, _, t)| *t < horizon)
    }

    /// Compacts the files past the retention (module docs): the files
    /// before the current one whose events were all received before `now`
    /// minus [`EventLogOptions::retention_secs`], from the first on, keep
    /// their purchases (first of each id) in `events-{seq}-compacted.jsonl`,
    /// where `seq` is the last of them; their damaged records go to
    /// `events-{seq}-compacted.damaged`; their ids still in the idempotency
    /// window go to the checkpoint, with those of the previous one; then
    /// they are removed. Each file is written whole and durably
    /// ([`FileLayer::replace`]) before the next step, so a crash at any
    /// point leaves a log that opens with every purchase and every id of the
    /// window (module docs). `Ok(None)` when nothing is due.
    pub fn compact(&mut self, now: i64) -> Result<Option<CompactReport>, EventLogError> {
        if !self.compaction_due(now) {
            return Ok(None);
        }
        let horizon = now.saturating_sub(self.options.retention_secs.unwrap_or(i64::MAX));
        let due = self
            .closed
            .iter()
            .take_while(|(_, _, t)| *t < horizon)
            .count();
        let files: Vec<PathBuf> = self.closed[..due].iter().map(|c| c.1.clone()).collect();
        let through = self.closed[due - 1].0;
        let window_start = now.saturating_sub(self.options.dedup_window_secs);
        let mut kept = Vec::new();
        let mut out = CompactReport::default();
        let mut latest = self.latest_compacted_purchase;
        let mut seen = HashSet::new();
        let mut kept_ids = HashSet::new();
        let report = scan_paths(&files, |_, e, first| {
            if e.received_at.unwrap_or(e.time) >= window_start {
                seen.insert(fingerprint(&e.id));
            }
            if first && matches!(e.kind, EventKind::Purchase { .. }) {
                latest = latest.max(e.time);
                kept_ids.insert(fingerprint(&e.id));
                kept.extend_from_slice(&encode_record(&e));
                kept.push(b'\n');
                out.purchases += 1;
            } else {
                out.dropped += 1;
            }
        })?;
        let target = self.dir.join(compacted_name(through));
        let aside_path = target.with_extension("damaged");
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        // Bytes before: the files to remove and what the compaction rewrites.
        let before_bytes: u64 =
            files.iter().map(|p| size(p)).sum::<u64>() + size(&target) + size(&aside_path);
        if target.exists() {
            // A compaction to the same file was cut short, or ran from a
            // log whose checkpoint was lost: keep what it holds that these
            // files do not, first.
            let mut before = Vec::new();
            scan_paths(std::slice::from_ref(&target), |_, e, first| {
                if first && !kept_ids.contains(&fingerprint(&e.id)) {
                    latest = latest.max(e.time);
                    before.extend_from_slice(&encode_record(&e));
                    before.push(b'\n');
                }
            })?;
            before.append(&mut kept);
            kept = before;
        }
        if !report.damaged.is_empty() {
            let mut aside = Vec::new();
            for d in &report.damaged {
                let bytes = std::fs::read(&d.path).map_err(io_err(&d.path))?;
                let (a, b) = (d.offset as usize, (d.offset + d.len) as usize);
                aside.extend_from_slice(&bytes[a.min(bytes.len())..b.min(bytes.len())]);
            }
            let path = &aside_path;
            self.layer.replace(path, &aside).map_err(io_err(path))?;
            out.damaged = report.damaged.len();
        }
        if !kept.is_empty() {
            self.layer
                .replace(&target, &kept)
                .map_err(io_err(&target))?;
            out.compacted = Some(target.clone());
        }
        // The new checkpoint: the ids of the window of these files and of
        // the previous checkpoint (every id of the window if that one was
        // lost), each with its latest time.
        let mut ids: Vec<([u64; 2], i64)> = if self.checkpoint_lost.is_some() {
            self.ids
                .iter()
                .filter(|(_, t)| **t >= window_start)
                .map(|(fp, t)| (*fp, *t))
                .collect()
        } else {
            seen.iter()
                .chain(&self.checkpointed)
                .filter_map(|fp| self.ids.get(fp).map(|t| (*fp, *t)))
                .filter(|(_, t)| *t >= window_start)
                .collect()
        };
        ids.sort_unstable();
        ids.dedup();
        let checkpoint = Checkpoint {
            compacted_through: through,
            latest_purchase: latest,
            written_at: now,
            ids,
        };
        let path = self.dir.join(CHECKPOINT_FILE);
        self.layer
            .replace(&path, &checkpoint.encode())
            .map_err(io_err(&path))?;
        out.checkpoint_ids = checkpoint.ids.len();
        self.checkpointed = checkpoint.ids.iter().map(|(fp, _)| *fp).collect();
        self.checkpoint_lost = None;
        self.compacted_through = through;
        self.latest_compacted_purchase = latest;
        self.closed = self.closed.split_off(due);
        // From here the files are redundant: a crash before they are all
        // removed leaves them for the next open to remove.
        for p in &files {
            self.layer.remove(p).map_err(io_err(p))?;
        }
        self.layer.sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        out.bytes_reclaimed = before_bytes.saturating_sub(size(&target) + size(&aside_path));
        out.files = files;
        Ok(Some(out))
    }

    /// The compacted files (`events-{seq}-compacted.jsonl`), in order.
    pub fn compacted_files(&self) -> Result<Vec<PathBuf>, EventLogError> {
        Ok(list_dir(&self.dir)?
            .compacted
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// The latest event time of a purchase in the compacted files, when
    /// [`open`](Self::open) did not read them (a valid checkpoint) and they
    /// hold one: a reader that needs purchases after some time reads them
    /// if that time is earlier.
    pub fn latest_compacted_purchase(&self) -> Option<i64> {
        (!self.compacted_read && self.latest_compacted_purchase != i64::MIN)
            .then_some(self.latest_compacted_purchase)
    }

    /// Why the checkpoint could not be read when the log was opened (every
    /// file was read instead), if it could not.
    pub fn checkpoint_problem(&self) -> Option<&str> {
        self.checkpoint_lost.as_deref()
    }

    /// The last sequence number compacted (0: none).
    pub fn compacted_through(&self) -> u64 {
        self.compacted_through
    }
}

/// Creates `events-{seq}.jsonl` and fsyncs the directory. An empty file of
/// that name (a rotation that failed after creating it) is taken up; one
/// with records is an error.
fn create_file(
    layer: &dyn FileLayer,
    dir: &Path,
    seq: u64,
) -> io::Result<(PathBuf, Box<dyn LogFile>)> {
    let path = dir.join(file_name(seq));
    let file = layer.open_append(&path, true)?;
    if file.size()? > 0 {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists already and is not empty", path.display()),
        ));
    }
    layer.sync_dir(dir)?;
    Ok((path, file))
}

/// What [`repair_dir`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The damaged records moved out of the files, and where they went.
    pub moved: Vec<(DamagedRecord, PathBuf)>,
    /// Torn tails cut: the file and the bytes cut.
    pub torn_cut: Vec<(PathBuf, u64)>,
    /// A damaged checkpoint moved aside: why it was damaged, and where it
    /// went (`checkpoint.damaged`). The log then reads every file when it
    /// opens, and writes a whole new checkpoint at its next compaction.
    pub checkpoint_moved: Option<(String, PathBuf)>,
}

/// Repairs the log in `dir`, which no server may have open (the lock is
/// taken; [`EventLogError::Locked`] otherwise): every damaged record is
/// moved out of its file into `FILE.damaged` beside it (appended, fsynced),
/// then the file is rewritten without it (atomically), and a torn last line
/// is cut. Valid records are kept byte for byte, in order.
pub fn repair_dir(dir: &Path) -> Result<RepairReport, EventLogError> {
    let _lock = lock_dir(dir)?;
    let report = scan_event_dir(dir, |_, _| {})?;
    let mut out = RepairReport::default();
    if let Err(EventLogError::DamagedCheckpoint { path, reason }) = read_checkpoint(dir) {
        let aside = path.with_extension("damaged");
        std::fs::rename(&path, &aside)
            .and_then(|()| crate::durable::sync_dir(dir))
            .map_err(io_err(&path))?;
        out.checkpoint_moved = Some((reason, aside));
    }
    for (i, path) in report.files.iter().enumerate() {
        let damaged: Vec<&DamagedRecord> =
            report.damaged.iter().filter(|d| d.path == *path).collect();
        let torn = report.torn_tails.contains(path);
        if damaged.is_empty() && !torn {
            continue;
        }
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let end = report.bytes[i] as usize;
        let mut kept = Vec::with_capacity(end);
        let mut removed = Vec::new();
        let mut at = 0usize;
        for d in &damaged {
            let (start, stop) = (d.offset as usize, (d.offset + d.len) as usize);
            kept.extend_from_slice(&bytes[at..start]);
            removed.extend_from_slice(&bytes[start..stop]);
            at = stop;
        }
        kept.extend_from_slice(&bytes[at..end]);
        let mut aside = path.clone().into_os_string();
        aside.push(".damaged");
        let aside = PathBuf::from(aside);
        if !removed.is_empty() {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&aside)
                .map_err(io_err(&aside))?;
            f.write_all(&removed)
                .and_then(|()| f.sync_all())
                .map_err(io_err(&aside))?;
        }
        crate::durable::replace_file(path, &kept).map_err(|e| EventLogError::Io {
            path: path.clone(),
            cause: io::Error::other(e.to_string()),
        })?;
        out.moved
            .extend(damaged.into_iter().map(|d| (d.clone(), aside.clone())));
        if torn {
            out.torn_cut
                .push((path.clone(), (bytes.len() - end) as u64));
        }
    }
    Ok(out)
}

/// One compacted file [`prune_compacted`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedFile {
    /// Where it was.
    pub path: PathBuf,
    /// Where it went (`None`: removed).
    pub archived: Option<PathBuf>,
    /// Its records (purchases).
    pub events: usize,
    /// The latest event time among them (`None`: it held none).
    pub latest: Option<i64>,
    pub bytes: u64,
}

/// What [`prune_compacted`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The compacted files removed (or moved), in order.
    pub removed: Vec<PrunedFile>,
    /// The compacted files kept, each with the reason.
    pub kept: Vec<(PathBuf, String)>,
}

/// Removes from the log in `dir` the compacted files
/// (`events-{seq}-compacted.jsonl`) whose every event is dated at or before
/// `through` (seconds since the epoch): their purchases are in the training
/// history by then, the caller says. With `archive`, each is copied there
/// first (written whole and fsynced, [`crate::durable::replace_file`]), then
/// removed. Takes the log's lock, so it fails with [`EventLogError::Locked`]
/// while a server has the log open.
///
/// The checkpoint is not touched: it holds the ids of the compacted events
/// still in the idempotency window, so they stay duplicates. That is why
/// the log must have a valid checkpoint (else the server rebuilds those ids
/// from the compacted files, and removing them would lose them:
/// [`EventLogError::DamagedCheckpoint`] or [`EventLogError::Refused`]).
/// Kept, each with its reason: a file with an event after `through`, one
/// with damaged records or a torn tail (their dates are unknown; `events
/// repair` first), a file after the checkpoint's last compacted one (a
/// compaction cut short, which the server finishes), and one whose name in
/// `archive` holds other bytes. A crash midway leaves each file either in
/// `dir` (perhaps also in `archive`) or removed: run it again.
pub fn prune_compacted(
    dir: &Path,
    through: i64,
    archive: Option<&Path>,
) -> Result<PruneReport, EventLogError> {
    if !dir.is_dir() {
        return Err(EventLogError::Refused {
            path: dir.to_path_buf(),
            reason: "not a directory (no event log here)".into(),
        });
    }
    let _lock = lock_dir(dir)?;
    let listed = list_dir(dir)?;
    let mut out = PruneReport::default();
    if listed.compacted.is_empty() {
        return Ok(out);
    }
    let Some(checkpoint) = read_checkpoint(dir)? else {
        return Err(EventLogError::Refused {
            path: dir.join(CHECKPOINT_FILE),
            reason: "missing beside compacted files: the server rebuilds the ids of the \
                     idempotency window from the compacted files, so none is removed (the \
                     server writes a whole checkpoint at its next compaction)"
                .into(),
        });
    };
    if let Some(archive) = archive {
        std::fs::create_dir_all(archive).map_err(io_err(archive))?;
    }
    for (seq, path) in &listed.compacted {
        if *seq > checkpoint.compacted_through {
            out.kept.push((
                path.clone(),
                format!(
                    "after the checkpoint's last compacted file ({}): a compaction cut short, \
                     which the server finishes when it opens the log",
                    checkpoint.compacted_through
                ),
            ));
            continue;
        }
        let (mut events, mut latest) = (0usize, None::<i64>);
        let report = scan_paths(std::slice::from_ref(path), |_, e, _| {
            events += 1;
            latest = Some(latest.map_or(e.time, |t| t.max(e.time)));
        })?;
        if !report.damaged.is_empty() || !report.torn_tails.is_empty() {
            out.kept.push((
                path.clone(),
                format!(
                    "{} damaged records{}: their dates are unknown (`encore-train events repair` \
                     moves them aside)",
                    report.damaged.len(),
                    if report.torn_tails.is_empty() {
                        ""
                    } else {
                        " and a torn tail"
                    }
                ),
            ));
            continue;
        }
        if let Some(t) = latest.filter(|&t| t > through) {
            out.kept.push((
                path.clone(),
                format!(
                    "holds an event of {}, after {}",
                    crate::timestamp::format_timestamp(t),
                    crate::timestamp::format_timestamp(through)
                ),
            ));
            continue;
        }
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let mut archived = None;
        if let Some(archive) = archive {
            let target = archive.join(path.file_name().expect("a file name"));
            match std::fs::read(&target) {
                Ok(old) if old != bytes => {
                    out.kept.push((
                        path.clone(),
                        format!(
                            "{} exists and holds other bytes; nothing is overwritten",
                            target.display()
                        ),
                    ));
                    continue;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    crate::durable::replace_file(&target, &bytes).map_err(|e| {
                        EventLogError::Io {
                            path: target.clone(),
                            cause: io::Error::other(e.to_string()),
                        }
                    })?;
                }
                Err(e) => return Err(io_err(&target)(e)),
            }
            archived = Some(target);
        }
        std::fs::remove_file(path).map_err(io_err(path))?;
        out.removed.push(PrunedFile {
            path: path.clone(),
            archived,
            events,
            latest,
            bytes: bytes.len() as u64,
        });
    }
    if !out.removed.is_empty() {
        crate::durable::sync_dir(dir).map_err(io_err(dir))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{
        EventKind, decode_record, event_to_line, is_event_file, parse_event, read_event_dir,
    };
    use faults::{EIO, ENOSPC, FaultyFiles};

    fn purchase(id: &str) -> Event {
        Event {
            id: id.to_string(),
            time: 1_764_496_800,
            received_at: None,
            kind: EventKind::Purchase {
                order_id: format!("o-{id}"),
                customer: "c1".into(),
                item: "tea".into(),
                quantity: 2.0,
                price: Some(3.5),
            },
        }
    }

    fn batch(ids: &[&str]) -> Vec<Event> {
        ids.iter().map(|id| purchase(id)).collect()
    }

    fn raw_ids(dir: &Path) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut ids = Vec::new();
        for f in files
            .iter()
            .filter(|f| is_event_file(f.file_name().unwrap().to_str().unwrap()))
        {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                let payload = decode_record(line.as_bytes()).unwrap().payload();
                ids.push(parse_event(payload).unwrap().id);
            }
        }
        ids
    }

    #[test]
    fn duplicates_are_dropped_within_and_across_batches_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), EventLogOptions::default()).unwrap();
        let o = log.append(batch(&["a", "b", "a"]), 100).unwrap();
        assert_eq!(
            o,
            AppendOutcome {
                accepted: 2,
                duplicates: 1
            }
        );
        let o = log.append(batch(&["b", "c"]), 101).unwrap();
        assert_eq!(
            o,
            AppendOutcome {
                accepted: 1,
                duplicates: 1
            }
        );
        assert!(log.contains("c") && !log.contains("d"));
        drop(log);

        let mut log = EventLog::open(dir.path(), EventLogOptions::default()).unwrap();
        assert_eq!(log.len(), 3);
        let o = log.append(batch(&["a", "c", "d"]), 102).unwrap();
        assert_eq!(
            o,
            AppendOutcome {
                accepted: 1,
                duplicates: 2
            }
        );
        // Group commit: duplicates across the batches of one call too.
        let out = log
            .append_batches(vec![batch(&["e", "f"]), batch(&["f", "a", "g"])], 103)
            .unwrap();
        let counts: Vec<_> = out.iter().map(|a| a.outcome).collect();
        assert_eq!(
            counts,
            [
                AppendOutcome {
                    accepted: 2,
                    duplicates: 0
                },
                AppendOutcome {
                    accepted: 1,
                    duplicates: 2
                }
            ]
        );
        assert_eq!(out[1].events[0].id, "g");
        assert_eq!(out[1].events[0].received_at, Some(103));
        assert_eq!(raw_ids(dir.path()), ["a", "b", "c", "d", "e", "f", "g"]);
    }

    #[test]
    fn an_append_is_seen_whole_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut log =
            EventLog::open(&dir.path().join("new/events"), EventLogOptions::default()).unwrap();
        let events = batch(&["x", "y", "z"]);
        log.append(events.clone(), 1_764_500_000).unwrap();
        drop(log);
        let mut read = Vec::new();
        let (log, report) = EventLog::open_each(
            &dir.path().join("new/events"),
            EventLogOptions::default(),
            |e| read.push(e),
        )
        .unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(report.torn_tails.len(), 0);
        let expected: Vec<Event> = events
            .into_iter()
            .map(|mut e| {
                e.received_at = Some(1_764_500_000);
                e
            })
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn files_rotate_at_the_size_limit_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let line_len = encode_record(&{
            let mut e = purchase("id-00");
            e.received_at = Some(7);
            e
        })
        .len() as u64
            + 1;
        let options = EventLogOptions {
            max_file_bytes: 3 * line_len,
            ..EventLogOptions::default()
        };
        let mut log = EventLog::open(dir.path(), options.clone()).unwrap();
        for n in 0..10 {
            // Two events a batch: a file holds one batch (4 lines would exceed 3).
            let ids = [format!("id-{:02}", 2 * n), format!("id-{:02}", 2 * n + 1)];
            log.append(batch(&[&ids[0], &ids[1]]), 7).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| is_event_file(n))
            .collect();
        names.sort();
        assert_eq!(names.len(), 10, "{names:?}");
        assert_eq!(names[0], "events-00000001.jsonl");
        assert_eq!(names[9], "events-00000010.jsonl");
        let expected: Vec<String> = (0..20).map(|n| format!("id-{n:02}")).collect();
        assert_eq!(raw_ids(dir.path()), expected);
        // A batch larger than the limit still goes in one (new) file.
        let big: Vec<String> = (20..30).map(|n| format!("id-{n:02}")).collect();
        let big: Vec<&str> = big.iter().map(String::as_str).collect();
        log.append(batch(&big), 7).unwrap();
        assert!(log.current_file().ends_with("events-00000011.jsonl"));
        drop(log);
        // Reopening continues in the last file, then rotates again.
        let mut log = EventLog::open(dir.path(), options).unwrap();
        assert!(log.current_file().ends_with("events-00000011.jsonl"));
        log.append(batch(&["id-30"]), 7).unwrap();
        assert!(log.current_file().ends_with("events-00000012.jsonl"));
        assert_eq!(raw_ids(dir.path()).len(), 31);
    }

    #[test]
    fn a_torn_tail_is_cut_on_open_and_never_glued_to_the_next_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), EventLogOptions::default()).unwrap();
        log.append(batch(&["a", "b"]), 1).unwrap();
        let path = log.current_file().to_path_buf();
        drop(log);
        // A crash mid-write: one complete line of the batch, then a fragment.
        let mut c = purchase("c");
        c.received_at = Some(2);
        let mut d = purchase("d");
        d.received_at = Some(2);
        let mut torn = encode_record(&c);
        torn.push(b'\n');
        torn.extend_from_slice(&encode_record(&d)[..25]);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&torn)
            .unwrap();
        assert_eq!(read_event_dir(dir.path()).unwrap().1.torn_tails.len(), 1);

        let mut log = EventLog::open(dir.path(), EventLogOptions::default()).unwrap();
        assert_eq!(log.recovered_torn_bytes(), 25);
        // The retried batch: c is already there, d is written once.
        let o = log.append(batch(&["c", "d"]), 3).unwrap();
        assert_eq!(
            o,
            AppendOutcome {
                accepted: 1,
                duplicates: 1
            }
        );
        drop(log);
        let (events, report) = read_event_dir(dir.path()).unwrap();
        assert!(report.torn_tails.is_empty());
        assert_eq!(report.duplicates, 0);
        let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(raw_ids(dir.path()), ["a", "b", "c", "d"]);

        // A file that is nothing but a fragment is emptied.
        std::fs::write(&path, "{\"id\":").unwrap();
        let log = EventLog::open(dir.path(), EventLogOptions::default()).unwrap();
        assert_eq!(log.recovered_torn_bytes(), 6);
        assert!(log.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    /// A line of a log written before frames.
    fn unframed(id: &str) -> String {
        let mut e = purchase(id);
        e.received_at = Some(1);
        event_to_line(&e) + "\n"
    }

    fn framed(id: &str) -> String {
        let mut e = purchase(id);
        e.received_at = Some(1);
        String::from_utf8(encode_record(&e)).unwrap() + "\n"
    }

    /// Damage in an older file, or before the last valid record, is skipped,
    /// counted and located, and the log opens; a damaged tail of the active
    /// file is cut and reported. Unframed lines of old logs still read.
    #[test]
    fn damaged_records_are_skipped_and_a_damaged_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let flip = |line: String| {
            // One bit flipped in the payload: the CRC no longer matches.
            let mut b = line.into_bytes();
            let at = b.len() - 10;
            b[at] ^= 0x04;
            String::from_utf8(b).unwrap()
        };
        let older = dir.path().join("events-00000001.jsonl");
        let active = dir.path().join("events-00000002.jsonl");
        std::fs::write(
            &older,
            [
                unframed("a"),
                flip(framed("b")),
                framed("c"),
                "{\"id\": 1}\n".into(),
            ]
            .concat(),
        )
        .unwrap();
        let tail = [flip(framed("f")), "\0\0\0\0\n".to_string(), "{\"fra".into()].concat();
        std::fs::write(
            &active,
            [framed("d"), flip(framed("e")), framed("g"), tail.clone()].concat(),
        )
        .unwrap();
        let mut seen = Vec::new();
        let (mut log, report) =
            EventLog::open_each(dir.path(), EventLogOptions::default(), |e| seen.push(e.id))
                .unwrap();
        assert_eq!(seen, ["a", "c", "d", "g"]);
        let at: Vec<(String, u64)> = report
            .damaged
            .iter()
            .map(|d| (d.path.file_name().unwrap().to_str().unwrap().into(), d.line))
            .collect();
        assert_eq!(
            at,
            [
                ("events-00000001.jsonl".into(), 2),
                ("events-00000001.jsonl".into(), 4),
                ("events-00000002.jsonl".into(), 2)
            ]
        );
        assert!(
            report.damaged[0].reason.contains("checksum"),
            "{:?}",
            report.damaged[0]
        );
        assert!(
            report.damaged[1].reason.contains("type"),
            "{:?}",
            report.damaged[1]
        );
        assert!(report.torn_tails.is_empty());
        let cut = log.recovered_tail();
        assert_eq!((cut.bytes, cut.damaged_lines), (tail.len() as u64, 2));
        assert_eq!(cut.path, active);
        // Appends go on after the last valid record.
        log.append(batch(&["h"]), 5).unwrap();
        drop(log);
        let (events, report) = read_event_dir(dir.path()).unwrap();
        let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "c", "d", "g", "h"]);
        assert_eq!(report.damaged.len(), 3);
        assert!(report.torn_tails.is_empty());
    }

    /// `repair_dir` moves damaged records aside and cuts a torn tail; the
    /// valid records stay byte for byte, and the lock keeps it off an open log.
    #[test]
    fn repair_moves_damaged_records_aside_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events-00000001.jsonl");
        let bad = "garbage that is no record\n";
        std::fs::write(
            &path,
            [framed("a"), bad.into(), framed("b"), "{\"id".into()].concat(),
        )
        .unwrap();
        let log = EventLog::open(dir.path(), EventLogOptions::default()).unwrap();
        assert!(matches!(
            repair_dir(dir.path()),
            Err(EventLogError::Locked { .. })
        ));
        assert!(matches!(
            EventLog::open(dir.path(), EventLogOptions::default()),
            Err(EventLogError::Locked { .. })
        ));
        drop(log);
        // The open cut the torn tail already; damage it again by hand.
        std::fs::write(
            &path,
            [framed("a"), bad.into(), framed("b"), "{\"id".into()].concat(),
        )
        .unwrap();
        let report = repair_dir(dir.path()).unwrap();
        assert_eq!(report.moved.len(), 1);
        assert_eq!(report.torn_cut, [(path.clone(), 4)]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            [framed("a"), framed("b")].concat()
        );
        assert_eq!(std::fs::read_to_string(&report.moved[0].1).unwrap(), bad);
        let (_, after) = read_event_dir(dir.path()).unwrap();
        assert!(after.damaged.is_empty() && after.torn_tails.is_empty());
        assert_eq!(repair_dir(dir.path()).unwrap(), RepairReport::default());
    }

    /// The events a log holds, read back from the files.
    fn logged(dir: &Path) -> Vec<String> {
        let (events, report) = read_event_dir(dir).unwrap();
        assert!(report.damaged.is_empty(), "{:?}", report.damaged);
        assert!(report.torn_tails.is_empty(), "{:?}", report.torn_tails);
        events.into_iter().map(|e| e.id).collect()
    }

    /// Each kind of failure of a commit: the batch is refused, the file is
    /// cut back (no fragment for a reader), the log refuses while the disk
    /// still fails and writes again by itself once a probe succeeds.
    #[test]
    fn a_failed_write_or_fsync_is_cut_back_refused_then_resumed() {
        type Fault = fn(&FaultyFiles);
        let faults: [(&str, Fault); 6] = [
            ("write ENOSPC", |d| d.fail_writes(1, ENOSPC)),
            ("write EIO", |d| d.fail_writes(1, EIO)),
            ("fsync EIO", |d| d.fail_syncs(1, EIO)),
            ("fsync ENOSPC", |d| d.fail_syncs(1, ENOSPC)),
            ("disk full mid-write", |d| d.fill_disk(100)),
            ("write EIO, then the cut-back fails", |d| {
                d.fail_writes(1, EIO);
                d.fail_truncates(2, EIO);
            }),
        ];
        for (name, fault) in faults {
            let dir = tempfile::tempdir().unwrap();
            let disk = FaultyFiles::default();
            let (mut log, _) = EventLog::open_with(
                dir.path(),
                EventLogOptions::default(),
                Arc::new(disk.clone()),
                |_| {},
            )
            .unwrap();
            log.append(batch(&["a", "b"]), 1).unwrap();
            let durable = std::fs::metadata(log.current_file()).unwrap().len();
            fault(&disk);
            let e = log.append(batch(&["c", "d"]), 2).unwrap_err();
            assert!(
                matches!(e, EventLogError::WriteFailed { .. }),
                "{name}: {e}"
            );
            assert!(!log.is_writable(), "{name}");
            if name.contains("cut-back fails") {
                // The file could not be cut yet: the next append cuts it first,
                // and fails while that fails.
                assert!(log.append(batch(&["c"]), 3).is_err(), "{name}");
                assert!(log.append(batch(&["c"]), 3).is_ok(), "{name}");
            } else {
                assert_eq!(
                    std::fs::metadata(log.current_file()).unwrap().len(),
                    durable,
                    "{name}"
                );
                assert_eq!(logged(dir.path()), ["a", "b"], "{name}");
                if name.contains("full") {
                    // Still full: the probe fails, nothing is written.
                    let writes = disk.writes();
                    assert!(log.append(batch(&["c"]), 3).is_err(), "{name}");
                    assert_eq!(disk.writes(), writes, "{name}: wrote while full");
                    disk.free_disk();
                }
                let o = log.append(batch(&["c", "d"]), 3).unwrap();
                assert_eq!(o.accepted, 2, "{name}");
            }
            assert!(log.is_writable(), "{name}");
            assert!(disk.probes() >= 1, "{name}");
            log.append(batch(&["d", "e"]), 4).unwrap();
            drop(log);
            let want = ["a", "b", "c", "d", "e"];
            assert_eq!(logged(dir.path()), want, "{name}");
            assert_eq!(raw_ids(dir.path()), want, "{name}");
        }
    }

    /// A seeded run of many commits with faults at random points (writes
    /// and fsyncs failing with ENOSPC or EIO, the disk filling up and
    /// freed, small files so that rotations fail too, reopening now and
    /// then): every acknowledged event is in the log exactly once, and a
    /// refused batch retried later is logged once.
    #[test]
    fn no_acknowledged_event_is_lost_under_random_faults() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(21);
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyFiles::default();
        let options = EventLogOptions {
            max_file_bytes: 2_000,
            ..EventLogOptions::default()
        };
        let open = || {
            EventLog::open_with(dir.path(), options.clone(), Arc::new(disk.clone()), |_| {})
                .unwrap()
                .0
        };
        let mut log = open();
        let mut acknowledged: Vec<String> = Vec::new();
        let mut refused: Vec<Vec<String>> = Vec::new();
        let (mut failures, mut next) = (0, 0);
        for step in 0..400 {
            match rng.gen_range(0..12) {
                0 => disk.fail_writes(rng.gen_range(1..3), if rng.r#gen() { ENOSPC } else { EIO }),
                1 => disk.fail_syncs(rng.gen_range(1..3), if rng.r#gen() { ENOSPC } else { EIO }),
                2 => disk.fill_disk(rng.gen_range(0..600)),
                3 => disk.free_disk(),
                4 => {
                    disk.heal();
                    drop(log);
                    log = open();
                }
                _ => {}
            }
            // Retry a refused batch now and then, as a client would.
            let ids: Vec<String> = if !refused.is_empty() && rng.gen_bool(0.5) {
                refused.swap_remove(0)
            } else {
                let n = rng.gen_range(1..6);
                next += n;
                (next - n..next).map(|i| format!("e{i}")).collect()
            };
            let events = ids.iter().map(|id| purchase(id)).collect();
            match log.append(events, 1_000 + step) {
                Ok(_) => acknowledged.extend(ids),
                Err(EventLogError::WriteFailed { .. }) => {
                    failures += 1;
                    refused.push(ids);
                }
                Err(e) => panic!("step {step}: {e}"),
            }
        }
        disk.heal();
        for ids in refused.drain(..) {
            let events = ids.iter().map(|id| purchase(id)).collect();
            log.append(events, 2_000).unwrap();
            acknowledged.extend(ids);
        }
        drop(log);
        assert!(
            failures > 20,
            "only {failures} failures: the test tests little"
        );
        let mut got = raw_ids(dir.path());
        let mut files = std::fs::read_dir(dir.path()).unwrap().count();
        files -= 1; // .lock
        assert!(files > 5, "{files} files: no rotation tested");
        got.sort();
        acknowledged.sort();
        acknowledged.dedup();
        assert_eq!(got, acknowledged);
        assert_eq!(logged(dir.path()).len(), got.len());
    }

    #[test]
    fn ids_are_remembered_for_the_window_then_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let options = EventLogOptions {
            dedup_window_secs: 800,
            ..EventLogOptions::default()
        };
        let mut log = EventLog::open(dir.path(), options.clone()).unwrap();
        let t0 = 1_764_496_800;
        assert_eq!(log.append(batch(&["a"]), t0).unwrap().accepted, 1);
        assert_eq!(log.append(batch(&["b"]), t0 + 500).unwrap().accepted, 1);
        // Inside the window: duplicates.
        let again = log.append(batch(&["a", "b"]), t0 + 799).unwrap();
        assert_eq!((again.accepted, again.duplicates), (0, 2));
        assert_eq!(log.len(), 2);
        // "a" is 900 s old, past the window; "b" 400 s, inside it.
        let later = log.append(batch(&["a", "b"]), t0 + 900).unwrap();
        assert_eq!((later.accepted, later.duplicates), (1, 1));
        assert!(log.contains("a") && log.contains("b"));
        assert_eq!(raw_ids(dir.path()), ["a", "b", "a"]);
        // Readers still keep the first event of each id.
        let (events, report) = read_event_dir(dir.path()).unwrap();
        let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!((ids, report.duplicates), (vec!["a", "b"], 1));
        assert_eq!(events[0].received_at, Some(t0));

        // Reopened, the window is applied from the first append's clock:
        // "b" (received at t0 + 500) is forgotten at t0 + 1400, the second
        // "a" (t0 + 900) is not.
        drop(log);
        let mut log = EventLog::open(dir.path(), options).unwrap();
        let reopened = log.append(batch(&["a", "b"]), t0 + 1400).unwrap();
        assert_eq!((reopened.accepted, reopened.duplicates), (1, 1));
        assert_eq!(raw_ids(dir.path()), ["a", "b", "a", "b"]);
    }

    #[test]
    fn a_window_that_is_not_positive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = EventLogOptions {
            dedup_window_secs: 0,
            ..EventLogOptions::default()
        };
        let err = EventLog::open(dir.path(), options).unwrap_err().to_string();
        assert!(err.contains("idempotency window must be positive"), "{err}");
    }

    fn click(id: &str) -> Event {
        Event {
            id: id.to_string(),
            time: 1_764_496_800,
            received_at: None,
            kind: EventKind::Click {
                customer: "c1".into(),
                item: "mug".into(),
                list: None,
                request_id: None,
            },
        }
    }

    const DAY: i64 = 86_400;

    /// Options of the retention tests: one batch a file, ids remembered 7
    /// days, files compacted after 2 (shorter than the window, so the
    /// checkpoint has to carry ids).
    fn retention_options() -> EventLogOptions {
        EventLogOptions {
            max_file_bytes: 200,
            dedup_window_secs: 7 * DAY,
            retention_secs: Some(2 * DAY),
        }
    }

    /// Day `d` of the retention tests' clock.
    fn day(d: i64) -> i64 {
        1_764_496_800 + d * DAY
    }

    /// A log with a purchase and a click received on each of days 0 to 9
    /// (`p{d}` and `k{d}`), one file a day; returns the directory.
    fn ten_days(dir: &Path) {
        let mut log = EventLog::open(dir, retention_options()).unwrap();
        for d in 0..10 {
            let events = vec![purchase(&format!("p{d}")), click(&format!("k{d}"))];
            log.append(events, day(d)).unwrap();
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// Compaction at day 10 with a 2-day retention: the files of days 0 to
    /// 7 become one file of their purchases and a checkpoint; a reopened
    /// log reads only the files of days 8 and 9 (and the checkpoint), still
    /// knows every id of the 7-day window (days 3 to 9, clicks included) as
    /// a duplicate, and readers still see every purchase.
    #[test]
    fn compaction_keeps_purchases_and_the_ids_of_the_window() {
        let dir = tempfile::tempdir().unwrap();
        ten_days(dir.path());
        let mut log = EventLog::open(dir.path(), retention_options()).unwrap();
        assert!(!log.compaction_due(day(2)), "day 0's file is 2 days old");
        assert!(log.compaction_due(day(2) + 1));
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        let originals: u64 = (1..=8)
            .map(|seq| size(&dir.path().join(file_name(seq))))
            .sum();
        let r = log.compact(day(10)).unwrap().unwrap();
        assert_eq!(r.files.len(), 8, "{r:?}");
        let compacted = size(&dir.path().join(compacted_name(8)));
        assert!(compacted > 0 && compacted < originals);
        assert_eq!(r.bytes_reclaimed, originals - compacted, "{r:?}");
        assert_eq!((r.purchases, r.dropped, r.damaged), (8, 8, 0));
        // p3..p7 and k3..k7 are in the window at day 10; the checkpoint
        // needs no id of the files kept.
        assert_eq!(r.checkpoint_ids, 10);
        assert_eq!(log.compact(day(10)).unwrap(), None, "nothing left to do");
        drop(log);
        assert_eq!(
            names(dir.path()),
            [
                "checkpoint",
                "events-00000008-compacted.jsonl",
                "events-00000009.jsonl",
                "events-00000010.jsonl"
            ]
        );
        let mut read = Vec::new();
        let (mut log, _) =
            EventLog::open_each(dir.path(), retention_options(), |e| read.push(e.id)).unwrap();
        assert_eq!(
            read,
            ["p8", "k8", "p9", "k9"],
            "start-up reads the retention window"
        );
        assert_eq!(log.latest_compacted_purchase(), Some(1_764_496_800));
        assert_eq!(log.compacted_through(), 8);
        let retried: Vec<Event> = (0..10)
            .flat_map(|d| [purchase(&format!("p{d}")), click(&format!("k{d}"))])
            .collect();
        // At day 10: ids of days 3..9 are duplicates; days 0..2 are past the window.
        let o = log.append(retried, day(10)).unwrap();
        assert_eq!((o.accepted, o.duplicates), (6, 14));
        drop(log);
        let (events, _) = read_event_dir(dir.path()).unwrap();
        let purchases = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Purchase { .. }))
            .count();
        assert_eq!(purchases, 10, "every purchase is still read (once)");
        // The next compaction carries the checkpoint's ids still in the window.
        let mut options = retention_options();
        options.max_file_bytes = 1;
        let mut log = EventLog::open(dir.path(), options).unwrap();
        log.append(batch(&["late"]), day(11)).unwrap();
        let r = log.compact(day(11)).unwrap().unwrap();
        // Only day 8's file is past the retention at day 11; the window
        // starts at day 4: days 4..7 of the old checkpoint and day 8.
        assert_eq!(r.files.len(), 1, "{r:?}");
        assert_eq!(r.checkpoint_ids, 5 * 2, "{r:?}");
        drop(log);
        let log = EventLog::open(dir.path(), retention_options()).unwrap();
        assert!(log.contains("k4") && log.contains("p9") && log.contains("k0"));
        assert!(!log.contains("k3"), "past the window at day 11");
    }

    /// Pruning: a compacted file whose purchases are all at or before the
    /// cut-off goes (or moves to the archive), one with a purchase after it
    /// stays; the ids of the window stay duplicates (the checkpoint is not
    /// touched); a server holding the lock, a missing or damaged checkpoint
    /// and damaged records make it refuse or keep.
    #[test]
    fn prune_removes_only_compacted_files_dated_before_the_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), retention_options()).unwrap();
        for d in 0..6 {
            let mut p = purchase(&format!("p{d}"));
            p.time = day(d);
            log.append(vec![p, click(&format!("k{d}"))], day(d))
                .unwrap();
        }
        log.compact(day(4)).unwrap().unwrap();
        log.compact(day(6)).unwrap().unwrap();
        let (a, b) = (compacted_name(2), compacted_name(4));
        assert!(dir.path().join(&a).exists() && dir.path().join(&b).exists());
        let cut = day(2) + 3600;
        let err = prune_compacted(dir.path(), cut, None).unwrap_err();
        assert!(matches!(err, EventLogError::Locked { .. }), "{err}");
        drop(log);
        let checkpoint = std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap();

        let r = prune_compacted(dir.path(), cut, None).unwrap();
        assert_eq!(r.removed.len(), 1, "{r:?}");
        assert_eq!(r.removed[0].path, dir.path().join(&a));
        assert_eq!(
            (r.removed[0].events, r.removed[0].latest),
            (2, Some(day(1)))
        );
        assert_eq!(r.kept.len(), 1, "{r:?}");
        assert_eq!(r.kept[0].0, dir.path().join(&b), "p3 is after the cut-off");
        assert!(r.kept[0].1.contains("after"), "{}", r.kept[0].1);
        assert!(!dir.path().join(&a).exists() && dir.path().join(&b).exists());
        assert_eq!(
            std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap(),
            checkpoint,
            "the checkpoint is not touched"
        );
        // Every id of the window is still a duplicate, the pruned ones too.
        let mut log = EventLog::open(dir.path(), retention_options()).unwrap();
        let retried: Vec<Event> = (0..4)
            .flat_map(|d| [purchase(&format!("p{d}")), click(&format!("k{d}"))])
            .collect();
        let o = log.append(retried, day(6)).unwrap();
        assert_eq!((o.accepted, o.duplicates), (0, 8));
        drop(log);
        let (events, _) = read_event_dir(dir.path()).unwrap();
        let purchases: Vec<&str> = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Purchase { .. }))
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(purchases, ["p2", "p3", "p4", "p5"]);

        // To an archive: copied whole, then removed; a second run finds nothing.
        let archive = dir.path().join("archive");
        let bytes = std::fs::read(dir.path().join(&b)).unwrap();
        let r = prune_compacted(dir.path(), day(3), Some(&archive)).unwrap();
        assert_eq!(r.removed.len(), 1, "{r:?}");
        assert_eq!(r.removed[0].archived, Some(archive.join(&b)));
        assert_eq!(std::fs::read(archive.join(&b)).unwrap(), bytes);
        assert!(!dir.path().join(&b).exists());
        assert_eq!(
            prune_compacted(dir.path(), day(3), Some(&archive)).unwrap(),
            PruneReport::default()
        );
    }

    #[test]
    fn prune_refuses_without_a_valid_checkpoint_and_keeps_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        ten_days(dir.path());
        let mut log = EventLog::open(dir.path(), retention_options()).unwrap();
        log.compact(day(10)).unwrap().unwrap();
        drop(log);
        let compacted = dir.path().join(compacted_name(8));
        let path = dir.path().join(CHECKPOINT_FILE);
        let checkpoint = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let err = prune_compacted(dir.path(), day(20), None).unwrap_err();
        assert!(matches!(err, EventLogError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::write(&path, b"garbage").unwrap();
        let err = prune_compacted(dir.path(), day(20), None).unwrap_err();
        assert!(
            matches!(err, EventLogError::DamagedCheckpoint { .. }),
            "{err}"
        );
        assert!(compacted.exists());
        std::fs::write(&path, &checkpoint).unwrap();
        // A flipped bit in a record: its date is unknown, the file stays.
        let mut bytes = std::fs::read(&compacted).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&compacted, &bytes).unwrap();
        let r = prune_compacted(dir.path(), day(20), None).unwrap();
        assert!(r.removed.is_empty(), "{r:?}");
        assert!(r.kept[0].1.contains("damaged"), "{r:?}");
        assert!(compacted.exists());
        let err = prune_compacted(&dir.path().join("nope"), day(20), None).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(!dir.path().join("nope").exists(), "nothing created");
    }

    /// A crash at every step of a compaction (the file layer fails every
    /// replacement, removal and directory fsync from a chosen one on, as a
    /// dead process would not do them): the log reopens with every
    /// purchase, every id of the window, and finishes the job.
    #[test]
    fn a_crash_at_any_step_of_a_compaction_loses_nothing() {
        for k in 0.. {
            let dir = tempfile::tempdir().unwrap();
            ten_days(dir.path());
            let disk = FaultyFiles::default();
            let (mut log, _) = EventLog::open_with(
                dir.path(),
                retention_options(),
                Arc::new(disk.clone()),
                |_| {},
            )
            .unwrap();
            disk.crash_after(k);
            let done = log.compact(day(10));
            drop(log);
            if done.is_ok() {
                // Every step before this one was a crash point.
                assert!(k >= 4, "only {k} crash points");
                break;
            }
            let check = |when: &str| {
                let (events, report) = read_event_dir(dir.path()).unwrap();
                assert!(
                    report.damaged.is_empty(),
                    "{when} {k}: {:?}",
                    report.damaged
                );
                let mut ids: Vec<String> = events
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Purchase { .. }))
                    .map(|e| e.id.clone())
                    .collect();
                ids.sort();
                let want: Vec<String> = (0..10).map(|d| format!("p{d}")).collect();
                assert_eq!(ids, want, "{when} crash point {k}");
                let log = EventLog::open(dir.path(), retention_options()).unwrap();
                for d in 3..10 {
                    for id in [format!("p{d}"), format!("k{d}")] {
                        assert!(log.contains(&id), "{when} crash point {k}: {id} forgotten");
                    }
                }
                log
            };
            let mut log = check("after the crash");
            // The next run finishes the compaction.
            log.compact(day(10)).unwrap();
            drop(log);
            drop(check("after the next compaction"));
            assert_eq!(
                names(dir.path()),
                [
                    "checkpoint",
                    "events-00000008-compacted.jsonl",
                    "events-00000009.jsonl",
                    "events-00000010.jsonl"
                ],
                "crash point {k}"
            );
            let mut raw = raw_ids(dir.path());
            raw.sort();
            let mut want: Vec<String> = (0..10).map(|d| format!("p{d}")).collect();
            want.extend(["k8".to_string(), "k9".to_string()]);
            want.sort();
            assert_eq!(raw, want, "crash point {k}: each record once");
        }
    }

    /// A damaged checkpoint does not stop the log: it reads every file
    /// (compacted ones too), says why, and its next checkpoint holds every
    /// id of the window. `events repair` moves a damaged one aside.
    #[test]
    fn a_damaged_checkpoint_makes_the_log_read_everything() {
        let dir = tempfile::tempdir().unwrap();
        ten_days(dir.path());
        let mut log = EventLog::open(dir.path(), retention_options()).unwrap();
        log.compact(day(10)).unwrap().unwrap();
        drop(log);
        let path = dir.path().join(CHECKPOINT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 9;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_checkpoint(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        let mut read = 0;
        let (mut log, _) =
            EventLog::open_each(dir.path(), retention_options(), |_| read += 1).unwrap();
        assert!(log.checkpoint_problem().unwrap().contains("checksum"));
        assert_eq!(read, 8 + 4, "the compacted purchases and days 8 and 9");
        assert!(log.contains("p5") && !log.contains("k5"));
        assert_eq!(log.latest_compacted_purchase(), None, "read already");
        log.append(batch(&["x"]), day(11)).unwrap();
        let mut options = retention_options();
        options.max_file_bytes = 1;
        drop(log);
        let mut log = EventLog::open(dir.path(), options).unwrap();
        log.append(batch(&["y"]), day(12)).unwrap();
        let r = log.compact(day(12)).unwrap().unwrap();
        assert!(log.checkpoint_problem().is_none());
        drop(log);
        let c = read_checkpoint(dir.path()).unwrap().unwrap();
        assert_eq!(c.ids.len(), r.checkpoint_ids);
        let log = EventLog::open(dir.path(), retention_options()).unwrap();
        assert!(log.contains("p5") && log.contains("p8") && log.contains("x"));
        drop(log);

        std::fs::write(&path, b"garbage").unwrap();
        let report = repair_dir(dir.path()).unwrap();
        assert!(report.checkpoint_moved.is_some(), "{report:?}");
        assert!(!path.exists());
        assert!(read_checkpoint(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_checkpoint_round_trips_and_any_damage_is_seen() {
        let c = Checkpoint {
            compacted_through: 12,
            latest_purchase: -5,
            written_at: 99,
            ids: vec![([1, 2], 3), ([u64::MAX, 0], i64::MIN)],
        };
        let bytes = c.encode();
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), c);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Checkpoint::decode(&b).is_err(), "byte {i}");
        }
        for len in 0..bytes.len() {
            assert!(Checkpoint::decode(&bytes[..len]).is_err(), "{len} bytes");
        }
    }
}
