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
//! # Crash recovery: the torn tail is truncated
//! A crash in the middle of a write can leave the current file ending in a
//! partial line (no newline). That batch was never acknowledged. On
//! [`EventLog::open`] the last file is **truncated** to its last complete line
//! (and fsynced), so the next append cannot glue onto the fragment; the
//! number of bytes cut is in [`EventLog::recovered_torn_bytes`]. Complete
//! lines of an unacknowledged batch stay in the log: when the client retries
//! the batch, their ids are duplicates and only the rest is written, so
//! every event is logged exactly once either way. An invalid *complete* line
//! is not a torn write but damage, and `open` refuses the directory, naming
//! the file and line.
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
//! `n`. Opening reads every file once.

use crate::events::{
    Event, EventLogError, EventReadReport, event_to_line, fingerprint, is_event_file,
    scan_event_dir,
};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Default size at which a new file is started: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;

/// Default idempotency window: 7 days.
pub const DEFAULT_DEDUP_WINDOW_SECS: i64 = 7 * 86_400;

/// Settings of an [`EventLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLogOptions {
    /// Start a new file once the current one would exceed this many bytes.
    pub max_file_bytes: u64,
    /// An event whose id was received less than this many seconds ago is a
    /// duplicate (module docs); must be positive.
    pub dedup_window_secs: i64,
}

impl Default for EventLogOptions {
    fn default() -> Self {
        EventLogOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            dedup_window_secs: DEFAULT_DEDUP_WINDOW_SECS,
        }
    }
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

/// An open event log directory; see the [module docs](self).
#[derive(Debug)]
pub struct EventLog {
    dir: PathBuf,
    options: EventLogOptions,
    /// The file appends go to, its sequence number and size.
    file: File,
    path: PathBuf,
    seq: u64,
    bytes: u64,
    /// Fingerprint of each id of the window and when it was received.
    ids: HashMap<[u64; 2], i64>,
    /// Clock of the last pruning of `ids`.
    pruned_at: i64,
    /// Set when a write or fsync failed: the file's state is unknown, so
    /// nothing more is written until the log is opened again.
    failed: bool,
    recovered_torn_bytes: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EventLogError + '_ {
    move |source| EventLogError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

/// `fsync` of a directory, so that a file created in it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), EventLogError> {
    crate::durable::sync_dir(dir).map_err(io_err(dir))
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

impl EventLog {
    /// Opens (creating it if needed) the log in `dir`; see
    /// [`open_each`](Self::open_each).
    pub fn open(dir: &Path, options: EventLogOptions) -> Result<EventLog, EventLogError> {
        Self::open_each(dir, options, |_| {}).map(|(log, _)| log)
    }

    /// Opens (creating it if needed) the log in `dir`: truncates a torn tail
    /// of the last file, reads every file once to rebuild the idempotency
    /// set, handing the first event of each id to `f` as it goes (as
    /// [`for_each_event`](crate::events::for_each_event) does), and returns
    /// the reader's report.
    pub fn open_each(
        dir: &Path,
        options: EventLogOptions,
        mut f: impl FnMut(Event),
    ) -> Result<(EventLog, EventReadReport), EventLogError> {
        if options.dedup_window_secs <= 0 {
            return Err(EventLogError::Io {
                path: dir.to_path_buf(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "the idempotency window must be positive, not {} seconds",
                        options.dedup_window_secs
                    ),
                ),
            });
        }
        let created = !dir.exists();
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        if created && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        // The last file (highest sequence number), whose torn tail is cut
        // before anything reads it.
        let mut last: Option<(u64, PathBuf)> = None;
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| is_event_file(n)) else {
                continue;
            };
            if let Some(seq) = seq_of(name)
                && last.as_ref().is_none_or(|(s, _)| seq > *s)
            {
                last = Some((seq, entry.path()));
            }
        }
        let recovered_torn_bytes = match &last {
            Some((_, path)) => truncate_torn_tail(path)?,
            None => 0,
        };
        // Each id with the latest time it was received (an id written again
        // after the window restarts it); pruned to the window by the first
        // append, whose clock is known.
        let mut ids: HashMap<[u64; 2], i64> = HashMap::new();
        let report = scan_event_dir(dir, |e, first| {
            let received = e.received_at.unwrap_or(e.time);
            let t = ids.entry(fingerprint(&e.id)).or_insert(received);
            *t = (*t).max(received);
            if first {
                f(e);
            }
        })?;
        let (seq, path, file, bytes) = match last {
            Some((seq, path)) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                // A crash between a write and its fsync leaves lines that a
                // reader sees (page cache) but that may not be on disk, and a
                // retry of their batch would be answered "duplicate" from them:
                // make them durable before anything is acknowledged.
                file.sync_all().map_err(io_err(&path))?;
                sync_dir(dir)?;
                let bytes = file.metadata().map_err(io_err(&path))?.len();
                (seq, path, file, bytes)
            }
            None => {
                let (path, file) = create_file(dir, 1)?;
                (1, path, file, 0)
            }
        };
        let log = EventLog {
            dir: dir.to_path_buf(),
            options,
            file,
            path,
            seq,
            bytes,
            ids,
            pruned_at: i64::MIN,
            failed: false,
            recovered_torn_bytes,
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

    /// Bytes of a torn tail cut from the last file when the log was opened.
    pub fn recovered_torn_bytes(&self) -> u64 {
        self.recovered_torn_bytes
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
    /// on disk; on error nothing of these batches may be acknowledged, and
    /// the log refuses further appends until it is opened again.
    pub fn append_batches(
        &mut self,
        batches: Vec<Vec<Event>>,
        received_at: i64,
    ) -> Result<Vec<Appended>, EventLogError> {
        if self.failed {
            return Err(EventLogError::Io {
                path: self.path.clone(),
                cause: std::io::Error::other(
                    "an earlier write to the event log failed; reopen the log (restart the server)",
                ),
            });
        }
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
                buf.extend_from_slice(event_to_line(&event).as_bytes());
                buf.push(b'\n');
                appended.outcome.accepted += 1;
                appended.events.push(event);
            }
            out.push(appended);
        }
        if buf.is_empty() {
            return Ok(out);
        }
        let len = buf.len() as u64;
        if self.bytes > 0 && self.bytes.saturating_add(len) > self.options.max_file_bytes {
            // A half-done rotation (file made, directory not synced) leaves the
            // next name taken: refuse further writes like a failed append.
            self.rotate().inspect_err(|_| self.failed = true)?;
        }
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            self.failed = true;
            // Best effort: cut what may have been written, so that a reader
            // never sees a fragment; the log stays refused either way.
            let _ = self.file.set_len(self.bytes);
            return Err(EventLogError::Io {
                path: self.path.clone(),
                cause: e,
            });
        }
        self.bytes += len;
        self.ids
            .extend(fresh.into_iter().map(|fp| (fp, received_at)));
        Ok(out)
    }

    /// Starts the next file.
    fn rotate(&mut self) -> Result<(), EventLogError> {
        let seq = self.seq + 1;
        let (path, file) = create_file(&self.dir, seq)?;
        self.seq = seq;
        self.path = path;
        self.file = file;
        self.bytes = 0;
        Ok(())
    }
}

/// Creates `events-{seq}.jsonl` (which must not exist) and fsyncs the directory.
fn create_file(dir: &Path, seq: u64) -> Result<(PathBuf, File), EventLogError> {
    let path = dir.join(file_name(seq));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok((path, file))
}

/// Cuts `path` after its last newline (the whole file if it has none) and
/// fsyncs it; returns the bytes cut.
fn truncate_torn_tail(path: &Path) -> Result<u64, EventLogError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    // Read backwards in blocks until a newline is found.
    let mut end = len;
    let mut keep = 0;
    let mut block = vec![0u8; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
        file.read_exact(chunk).map_err(io_err(path))?;
        if let Some(pos) = chunk.iter().rposition(|&b| b == b'\n') {
            keep = start + pos as u64 + 1;
            break;
        }
        end = start;
    }
    if keep == len {
        return Ok(0);
    }
    file.set_len(keep).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(len - keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, parse_event, read_event_dir};

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
        for f in files {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                ids.push(parse_event(line.as_bytes()).unwrap().id);
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
        let line_len = event_to_line(&{
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
        let torn = format!("{}\n{}", event_to_line(&c), &event_to_line(&d)[..25]);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(torn.as_bytes())
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

    #[test]
    fn a_damaged_complete_line_refuses_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events-00000001.jsonl"), "{\"id\": 1}\n").unwrap();
        let e = EventLog::open(dir.path(), EventLogOptions::default()).unwrap_err();
        assert!(e.to_string().contains("events-00000001.jsonl:1"), "{e}");
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
}
