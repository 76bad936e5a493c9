//! A [`FileLayer`] that fails chosen operations, for tests of the log's
//! fault handling (feature `fault-injection`).
//!
//! ```
//! use encore_data::event_log::faults::{FaultyFiles, ENOSPC};
//! use encore_data::event_log::{EventLog, EventLogOptions};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let disk = FaultyFiles::default();
//! let (mut log, _) =
//!     EventLog::open_with(dir.path(), EventLogOptions::default(), Arc::new(disk.clone()), |_| {})
//!         .unwrap();
//! disk.fail_writes(1, ENOSPC);
//! # let e = encore_data::events::parse_event(br#"{"id":"e1","type":"click","time":1,"customer":"c","item":"i"}"#).unwrap();
//! assert!(log.append(vec![e.clone()], 10).is_err());
//! assert_eq!(log.append(vec![e], 11).unwrap().accepted, 1);
//! ```

use super::{FileLayer, LogFile, OsFiles};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// `ENOSPC` (no space left on the device), as Linux numbers it.
pub const ENOSPC: i32 = 28;
/// `EIO` (an I/O error), as Linux numbers it.
pub const EIO: i32 = 5;

/// What fails, and what happened; shared by every file the layer opened.
#[derive(Debug, Default)]
struct Plan {
    /// Bytes that still fit on the "disk" (`None`: unlimited). A write that
    /// does not fit writes what does, then fails with `ENOSPC`; so does a
    /// probe.
    room: Option<u64>,
    /// The next this many writes write half their buffer, then fail with the errno.
    fail_writes: Option<(usize, i32)>,
    /// The next this many data fsyncs fail with the errno.
    fail_syncs: Option<(usize, i32)>,
    /// The next this many truncations fail with the errno.
    fail_truncates: Option<(usize, i32)>,
    /// After this many more file replacements, removals and directory
    /// fsyncs, every one fails with `EIO`: the process "dies" there.
    crash_after: Option<usize>,
    writes: usize,
    syncs: usize,
    probes: usize,
    /// Replacements, removals and directory fsyncs done so far.
    metadata_ops: usize,
}

/// Takes one failure of `slot`, if any is left.
fn take(slot: &mut Option<(usize, i32)>) -> Option<io::Error> {
    let (left, errno) = slot.as_mut()?;
    *left -= 1;
    let e = io::Error::from_raw_os_error(*errno);
    if *left == 0 {
        *slot = None;
    }
    Some(e)
}

/// The real file system with failures on demand; clones share one plan.
#[derive(Debug, Clone, Default)]
pub struct FaultyFiles {
    plan: Arc<Mutex<Plan>>,
}

impl FaultyFiles {
    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on at most `bytes` more fit: the disk fills up.
    pub fn fill_disk(&self, bytes: u64) {
        self.plan().room = Some(bytes);
    }

    /// The disk has room again.
    pub fn free_disk(&self) {
        self.plan().room = None;
    }

    /// No failure is planned any more, and the disk has room.
    pub fn heal(&self) {
        let mut plan = self.plan();
        plan.room = None;
        plan.fail_writes = None;
        plan.fail_syncs = None;
        plan.fail_truncates = None;
        plan.crash_after = None;
    }

    /// The next `n` file replacements, removals and directory fsyncs go
    /// through; every one after that fails with `EIO`, as if the process had
    /// died just before it (what it did so far stays on disk).
    pub fn crash_after(&self, n: usize) {
        self.plan().crash_after = Some(n);
    }

    /// File replacements, removals and directory fsyncs done so far.
    pub fn metadata_ops(&self) -> usize {
        self.plan().metadata_ops
    }

    /// Counts one metadata operation, or fails it after the crash point.
    fn metadata_op(&self) -> io::Result<()> {
        let mut plan = self.plan();
        match plan.crash_after.as_mut() {
            Some(0) => return Err(io::Error::from_raw_os_error(EIO)),
            Some(n) => *n -= 1,
            None => {}
        }
        plan.metadata_ops += 1;
        Ok(())
    }

    /// The next `n` writes write half their buffer, then fail with `errno`.
    pub fn fail_writes(&self, n: usize, errno: i32) {
        self.plan().fail_writes = (n > 0).then_some((n, errno));
    }

    /// The next `n` data fsyncs fail with `errno` (after the write went through).
    pub fn fail_syncs(&self, n: usize, errno: i32) {
        self.plan().fail_syncs = (n > 0).then_some((n, errno));
    }

    /// The next `n` truncations (cutting a file back) fail with `errno`.
    pub fn fail_truncates(&self, n: usize, errno: i32) {
        self.plan().fail_truncates = (n > 0).then_some((n, errno));
    }

    /// Writes tried so far (failed ones included), probes excluded.
    pub fn writes(&self) -> usize {
        self.plan().writes
    }

    /// Data fsyncs tried so far.
    pub fn syncs(&self) -> usize {
        self.plan().syncs
    }

    /// Probes tried so far.
    pub fn probes(&self) -> usize {
        self.plan().probes
    }
}

#[derive(Debug)]
struct FaultyFile {
    file: File,
    plan: Arc<Mutex<Plan>>,
}

impl LogFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        plan.writes += 1;
        if let Some(e) = take(&mut plan.fail_writes) {
            self.file.write_all(&buf[..buf.len() / 2])?;
            return Err(e);
        }
        if let Some(room) = plan.room {
            let fits = room.min(buf.len() as u64);
            self.file.write_all(&buf[..fits as usize])?;
            plan.room = Some(room - fits);
            if fits < buf.len() as u64 {
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            return Ok(());
        }
        self.file.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        plan.syncs += 1;
        match take(&mut plan.fail_syncs) {
            Some(e) => Err(e),
            None => self.file.sync_data(),
        }
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = take(&mut plan.fail_truncates) {
            return Err(e);
        }
        // Cutting gives the bytes back to the "disk".
        let before = self.file.metadata()?.len();
        if let Some(room) = plan.room.as_mut() {
            *room += before.saturating_sub(len);
        }
        self.file.set_len(len)?;
        self.file.sync_all()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl FileLayer for FaultyFiles {
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn LogFile>> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(create)
            .open(path)?;
        Ok(Box::new(FaultyFile {
            file,
            plan: Arc::clone(&self.plan),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.metadata_op()?;
        OsFiles.sync_dir(dir)
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.metadata_op()?;
        OsFiles.replace(path, bytes)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.metadata_op()?;
        OsFiles.remove(path)
    }

    fn probe(&self, dir: &Path, len: usize) -> io::Result<()> {
        {
            let mut plan = self.plan();
            plan.probes += 1;
            if plan.room.is_some_and(|room| room < len as u64) {
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
        }
        OsFiles.probe(dir, len)
    }
}
