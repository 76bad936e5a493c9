//! The artifact store: versioned artifacts beside an atomically replaced
//! `CURRENT` pointer, for nightly retraining and rollback.
//!
//! ```text
//! store/
//!   CURRENT              the serving version's name and its manifest's SHA-256, one line:
//!                        `<version> sha256:<hex>`
//!   HISTORY              one line per change of CURRENT: `<RFC 3339 time> <version> sha256:<hex>`
//!   LOCK                 empty; locked while the store is changed
//!   versions/
//!     20261130T020000Z-3fa2c1d0/   an artifact (see the parent module)
//!     20261201T020000Z-77b0e412/
//! ```
//!
//! [`Store::publish`] writes an artifact under `versions/` through the same
//! staging-and-rename as [`super::save`]; it does not touch `CURRENT`.
//! [`Store::set_current`] checks that the version loads whole, then writes
//! `CURRENT.tmp`, fsyncs it and renames it over `CURRENT`, so a reader (the
//! server's watcher) sees the old name or the new one, never a torn write.
//! A training run killed at any point leaves `CURRENT` as it was: at worst a
//! hidden staging directory (`versions/.NAME.tmp-PID-N`) or a version that
//! is not current remains. `versions` and `prune` ignore staging directories;
//! the next [`Store::publish`] removes those left by a process that is gone
//! (see [`Store::sweep_staging`]).
//!
//! A version's directory name and its manifest's `model_version` are the
//! same ([`Store::publish`] makes them so): the server compares `CURRENT`
//! with the serving model's version to know when to reload, and every answer
//! names that version. [`Store::set_current`] refuses a version whose
//! manifest names another (a directory copied or renamed by hand).
//!
//! # The manifest's digest
//! A manifest covers every other file of its artifact (size and CRC-32),
//! but nothing covered the manifest itself. [`Store::set_current`] records
//! the SHA-256 of the version's `manifest.json` in `CURRENT` and `HISTORY`;
//! [`Store::current_entry`] returns it, and loading the current version
//! ([`super::load_expecting`], as the server does) refuses a manifest whose
//! bytes no longer match, with an error naming the file. A rollback checks
//! the digest `HISTORY` recorded for its target. Stores written before the
//! digest (`CURRENT` holding only a name, `HISTORY` lines of two fields)
//! stay readable: their versions load unchecked until the next promotion
//! writes a digest.
//!
//! [`Store::rollback`] makes the version that was current before the present
//! one current again (walking back through `HISTORY` past versions that no
//! longer exist). [`Store::prune`] keeps the newest `keep` versions plus the
//! current one and the one a rollback would return to.
//!
//! Every change ([`Store::publish`], [`Store::set_current`],
//! [`Store::rollback`], [`Store::prune`]) holds an exclusive lock on `LOCK`
//! (an advisory file lock, released by the system when the process ends,
//! however it ends), so two runs on one store take turns: two publishes of
//! the same model version get two names instead of one replacing the other,
//! and a rollback reads `HISTORY` and moves `CURRENT` without another change
//! in between. Readers (the server's watcher, `versions`) take no lock.

use super::{ArtifactError, read_manifest};
use crate::engine::Engine;
use crate::manifest::Manifest;
use encore_data::durable::{ReplaceError, replace_file};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CURRENT: &str = "CURRENT";
const HISTORY: &str = "HISTORY";
const LOCK: &str = "LOCK";
const VERSIONS: &str = "versions";
/// A staging directory untouched for this long, whose writer is not a live
/// process of this machine, is left over from a killed run.
pub const STALE_STAGING: Duration = Duration::from_secs(10 * 60);

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{store}: no version '{version}' in the store")]
    UnknownVersion { store: PathBuf, version: String },
    #[error(
        "{store}: CURRENT is now {}, not {} as when this run was gated against it \
         (another run promoted meanwhile); not promoted",
        found.as_deref().unwrap_or("unset"),
        expected.as_deref().unwrap_or("unset")
    )]
    CurrentMoved {
        store: PathBuf,
        expected: Option<String>,
        found: Option<String>,
    },
    #[error("{store}: nothing to roll back to (no earlier current version is still in the store)")]
    NothingToRollBack { store: PathBuf },
    #[error("{path}: not an Encore model store (no versions/ directory)")]
    NotAStore { path: PathBuf },
    #[error(
        "{path}: not an Encore model store (no versions/ directory) and not empty; \
         a new store needs an empty or new directory"
    )]
    NotEmpty { path: PathBuf },
    #[error("{path}: '{name}' is not a valid version name")]
    BadName { path: PathBuf, name: String },
    #[error(
        "{path}: the manifest's model_version is '{model_version}', not the version's name '{version}' \
         (a copied or renamed directory?); publish it with encore-train, or set model_version to its name"
    )]
    NameMismatch {
        path: PathBuf,
        version: String,
        model_version: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}

/// One artifact of the store.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version: String,
    pub dir: PathBuf,
    /// `None` if the manifest cannot be read (the error says why).
    pub manifest: Option<Manifest>,
    pub error: Option<String>,
    pub current: bool,
}

/// What `CURRENT` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentEntry {
    pub version: String,
    /// SHA-256 (hex) of the version's manifest when it was made current;
    /// `None` in a `CURRENT` written before digests were recorded.
    pub manifest_sha256: Option<String>,
}

/// Parses `sha256:<64 hex digits>`.
fn parse_digest(field: &str) -> Option<String> {
    let hex = field.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// A directory of versioned artifacts with a `CURRENT` pointer.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// For a staging directory name (`.NAME.tmp-PID-NANOS`, or the same with
/// `.old` for an artifact set aside), `Some` with the writer's process id if
/// it parses; `None` for any other name.
fn staging_pid(name: &str) -> Option<Option<u32>> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, tail) = name.rsplit_once(".tmp-")?;
    Some(tail.split('-').next().and_then(|p| p.parse().ok()))
}

/// Whether process `pid` is running on this machine; `false` where that
/// cannot be told (no `/proc`), so that age alone decides.
fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

/// When anything in a staging directory last changed: the latest
/// modification time of the directory and the files in it (writing into a
/// file does not touch the directory's own time, so a long write of one big
/// file would otherwise look idle).
fn newest_modification(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = fs::metadata(dir).and_then(|m| m.modified()).ok()?;
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

/// A version name must be a plain directory name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Store {
    /// Opens the store at `root`, creating it (and `versions/`) if needed:
    /// in a new or empty directory only ([`StoreError::NotEmpty`] otherwise).
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        let versions = root.join(VERSIONS);
        // A directory holding something else is never turned into a store.
        if !versions.is_dir()
            && root.is_dir()
            && fs::read_dir(&root).map_err(io(&root))?.next().is_some()
        {
            return Err(StoreError::NotEmpty { path: root });
        }
        fs::create_dir_all(&versions).map_err(io(&versions))?;
        Ok(Store { root })
    }

    /// Opens an existing store without creating anything.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        let versions = root.join(VERSIONS);
        if !versions.is_dir() {
            return Err(StoreError::NotAStore { path: root });
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Waits for, and holds until the returned file is dropped, the store's
    /// exclusive lock (module docs).
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.root.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }

    /// The directory of `version` (which may not exist).
    pub fn dir_of(&self, version: &str) -> PathBuf {
        self.root.join(VERSIONS).join(version)
    }

    /// The current version's name, if any.
    pub fn current(&self) -> Result<Option<String>, StoreError> {
        Ok(self.current_entry()?.map(|c| c.version))
    }

    /// The current version's name and its manifest's recorded SHA-256.
    pub fn current_entry(&self) -> Result<Option<CurrentEntry>, StoreError> {
        let path = self.root.join(CURRENT);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mut fields = text.split_whitespace();
                let name = fields.next().unwrap_or_default().to_string();
                if !valid_name(&name) {
                    return Err(StoreError::BadName { path, name });
                }
                let manifest_sha256 = match fields.next() {
                    None => None,
                    Some(field) => Some(parse_digest(field).ok_or_else(|| {
                        StoreError::Artifact(ArtifactError::Corrupt {
                            path: path.clone(),
                            reason: format!(
                                "'{field}' is not a manifest digest (sha256: and 64 hex digits)"
                            ),
                        })
                    })?),
                };
                Ok(Some(CurrentEntry {
                    version: name,
                    manifest_sha256,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Loads the current version, its manifest checked against the digest
    /// `CURRENT` recorded (module docs); `None` when no version is current.
    pub fn load_current(&self) -> Result<Option<(String, Engine)>, StoreError> {
        let Some(entry) = self.current_entry()? else {
            return Ok(None);
        };
        let engine = super::load_expecting(
            &self.dir_of(&entry.version),
            entry.manifest_sha256.as_deref(),
        )?;
        Ok(Some((entry.version, engine)))
    }

    /// The current version's directory, if any.
    pub fn current_dir(&self) -> Result<Option<PathBuf>, StoreError> {
        Ok(self.current()?.map(|v| self.dir_of(&v)))
    }

    /// Every version directory, oldest first (version names sort by time).
    pub fn versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        let current = self.current()?;
        let dir = self.root.join(VERSIONS);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) || !entry.path().is_dir() {
                continue; // staging directories and strays
            }
            let (manifest, error) = match read_manifest(&entry.path()) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(VersionInfo {
                current: current.as_deref() == Some(name.as_str()),
                version: name,
                dir: entry.path(),
                manifest,
                error,
            });
        }
        out.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(out)
    }

    /// Writes `engine` as a new version named by its model version (with a
    /// `-2`, `-3`, ... suffix if that name is taken: an existing version is
    /// never replaced); `CURRENT` is not touched.
    pub fn publish(&self, engine: &mut Engine) -> Result<(String, Manifest), StoreError> {
        let base = engine.manifest().model_version.clone();
        if !valid_name(&base) {
            return Err(StoreError::BadName {
                path: self.root.clone(),
                name: base,
            });
        }
        let _lock = self.lock()?;
        // Best effort: a publish is not refused because a leftover could not go.
        let _ = self.sweep_staging(STALE_STAGING);
        let mut version = base.clone();
        let mut n = 1;
        while self.dir_of(&version).exists() {
            n += 1;
            version = format!("{base}-{n}");
        }
        engine.manifest_mut().model_version = version.clone();
        let manifest = super::save(engine, &self.dir_of(&version))?;
        Ok((version, manifest))
    }

    /// Makes `version` current after checking that it loads whole.
    pub fn set_current(&self, version: &str) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        self.set_current_locked(version)
    }

    /// Makes `version` current only if `CURRENT` still names `expected`
    /// (`None`: no version is current), checked and moved under the store's
    /// lock: a run gated against one version never replaces another that a
    /// concurrent run promoted meanwhile ([`StoreError::CurrentMoved`]).
    pub fn set_current_if(&self, version: &str, expected: Option<&str>) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let found = self.current()?;
        if found.as_deref() != expected {
            return Err(StoreError::CurrentMoved {
                store: self.root.clone(),
                expected: expected.map(str::to_string),
                found,
            });
        }
        self.set_current_locked(version)
    }

    /// [`Store::set_current`] for a caller holding the lock.
    fn set_current_locked(&self, version: &str) -> Result<(), StoreError> {
        let dir = self.dir_of(version);
        if !valid_name(version) || !dir.is_dir() {
            return Err(StoreError::UnknownVersion {
                store: self.root.clone(),
                version: version.to_string(),
            });
        }
        // The digest of the bytes checked now: read first, then the whole
        // version is loaded expecting them.
        let digest = super::manifest_sha256(&dir)?;
        let engine = super::load_expecting(&dir, Some(&digest))?;
        let model_version = &engine.manifest().model_version;
        if model_version != version {
            return Err(StoreError::NameMismatch {
                path: dir.join("manifest.json"),
                version: version.to_string(),
                model_version: model_version.clone(),
            });
        }
        drop(engine);
        self.write_current(version, &digest)
    }

    /// Staging directories under `versions/` (written by [`super::save`] and
    /// renamed into place when complete), with the id of the process that
    /// created each.
    pub fn staging_dirs(&self) -> Result<Vec<(PathBuf, Option<u32>)>, StoreError> {
        let dir = self.root.join(VERSIONS);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = staging_pid(&name) {
                out.push((entry.path(), pid));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the staging directories left by killed runs: those not
    /// modified for `older_than` whose creating process is not running on
    /// this machine (on systems without `/proc`, age alone decides). A
    /// directory a live writer may still use is kept: the age also covers a
    /// writer on another machine sharing the store. Returns the removed ones.
    pub fn sweep_staging(&self, older_than: Duration) -> Result<Vec<PathBuf>, StoreError> {
        let mut removed = Vec::new();
        for (path, pid) in self.staging_dirs()? {
            let age = newest_modification(&path).and_then(|t| t.elapsed().ok());
            if age.is_none_or(|a| a < older_than) || pid.is_some_and(process_alive) {
                continue;
            }
            fs::remove_dir_all(&path).map_err(io(&path))?;
            removed.push(path);
        }
        Ok(removed)
    }

    fn write_current(&self, version: &str, digest: &str) -> Result<(), StoreError> {
        let path = self.root.join(CURRENT);
        match replace_file(&path, format!("{version} sha256:{digest}\n").as_bytes()) {
            Ok(()) => {}
            Err(ReplaceError::NotReplaced { path, error }) => {
                return Err(StoreError::Io { path, cause: error });
            }
            // CURRENT names the new version: the change is made, and HISTORY
            // must record it; only its durability across a power loss is weak.
            Err(e @ ReplaceError::NotDurable { .. }) => {
                tracing::warn!(error = %e, "CURRENT replaced, but not yet durable");
            }
        }
        let history = self.root.join(HISTORY);
        let mut h = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .map_err(io(&history))?;
        let now = encore_data::timestamp::format_timestamp(encore_data::timestamp::now_secs());
        writeln!(h, "{now} {version} sha256:{digest}").map_err(io(&history))?;
        h.sync_all().map_err(io(&history))?;
        Ok(())
    }

    /// Every time a version was made current, oldest first: `(time, version)`
    /// as `HISTORY` records them (RFC 3339 time). A missing `HISTORY` is no
    /// promotion yet; lines that do not hold two fields are skipped.
    pub fn promotions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let path = self.root.join(HISTORY);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| {
                    let mut fields = l.split_whitespace();
                    Some((fields.next()?.to_string(), fields.next()?.to_string()))
                })
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The versions that were current, oldest first (from `HISTORY`), with
    /// the manifest digest recorded then (`None` on lines written before digests).
    fn history(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let path = self.root.join(HISTORY);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| {
                    let mut fields = l.split_whitespace().skip(1);
                    let version = fields.next()?.to_string();
                    Some((version, fields.next().and_then(parse_digest)))
                })
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The version a rollback would make current.
    pub fn rollback_target(&self) -> Result<Option<String>, StoreError> {
        let current = self.current()?;
        let history = self.history()?;
        // Walk back from the last time the present version became current.
        let last = match &current {
            Some(c) => history.iter().rposition(|(v, _)| v == c),
            None => None,
        };
        let before = &history[..last.unwrap_or(history.len())];
        Ok(before
            .iter()
            .rev()
            .map(|(v, _)| v)
            .find(|v| Some(*v) != current.as_ref() && self.dir_of(v).is_dir())
            .cloned())
    }

    /// Makes the previously current version current again; returns its name.
    pub fn rollback(&self) -> Result<String, StoreError> {
        let _lock = self.lock()?;
        let target = self
            .rollback_target()?
            .ok_or_else(|| StoreError::NothingToRollBack {
                store: self.root.clone(),
            })?;
        // The manifest must still be the one that was current then.
        let recorded = self
            .history()?
            .into_iter()
            .rev()
            .find(|(v, _)| *v == target)
            .and_then(|(_, d)| d);
        if let Some(digest) = recorded {
            super::read_manifest_expecting(&self.dir_of(&target), Some(&digest))?;
        }
        self.set_current_locked(&target)?;
        Ok(target)
    }

    /// Removes all but the newest `keep` versions, never the current one nor
    /// the rollback target; returns the removed names.
    pub fn prune(&self, keep: usize) -> Result<Vec<String>, StoreError> {
        let _lock = self.lock()?;
        let versions = self.versions()?;
        let protect: Vec<String> = [self.current()?, self.rollback_target()?]
            .into_iter()
            .flatten()
            .collect();
        let mut removed = Vec::new();
        let excess = versions.len().saturating_sub(keep);
        for v in versions.iter().take(excess) {
            if protect.contains(&v.version) {
                continue;
            }
            fs::remove_dir_all(&v.dir).map_err(io(&v.dir))?;
            removed.push(v.version.clone());
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::DataSummary;
    use crate::pipeline::{EngineConfig, train_engine};
    use encore_data::PurchaseLog;

    fn engine(version: &str) -> Engine {
        let mut log = PurchaseLog::default();
        for c in 0..12 {
            for d in 0..3 {
                let day = (c * 3 + d) as i64 * 86_400;
                log.push(
                    &format!("o{c}{d}"),
                    &format!("c{c}"),
                    &format!("i{}", (c + d) % 5),
                    day,
                    1.0,
                    2.0,
                );
                log.push(
                    &format!("o{c}{d}"),
                    &format!("c{c}"),
                    &format!("i{}", (c + 2 * d) % 7),
                    day,
                    1.0,
                    3.0,
                );
            }
        }
        let mut config = EngineConfig::default();
        config.als.factors = 4;
        config.als.iterations = 2;
        let mut e =
            train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap();
        e.manifest_mut().model_version = version.to_string();
        e
    }

    #[test]
    fn a_directory_holding_something_else_is_not_made_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        let err = Store::open(&other).unwrap_err();
        assert!(matches!(err, StoreError::NotEmpty { .. }), "{err}");
        assert!(!other.join(VERSIONS).exists());
        // New and empty directories become stores; a store opens again.
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        for root in [dir.path().join("new"), empty] {
            Store::open(&root).unwrap();
            Store::open(&root).unwrap();
            assert!(root.join(VERSIONS).is_dir());
        }
    }

    /// Promotion is a compare-and-swap: a run gated against v1 does not
    /// replace v2, which another run made current meanwhile.
    #[test]
    fn promotion_needs_current_to_be_the_gated_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let (v1, _) = store.publish(&mut engine("v1")).unwrap();
        store.set_current_if(&v1, None).unwrap();
        let (v2, _) = store.publish(&mut engine("v2")).unwrap();
        let (v3, _) = store.publish(&mut engine("v3")).unwrap();
        // Both were gated against v1; v2 finishes first.
        store.set_current_if(&v2, Some(&v1)).unwrap();
        let err = store.set_current_if(&v3, Some(&v1)).unwrap_err();
        assert!(matches!(err, StoreError::CurrentMoved { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("CURRENT is now v2, not v1"), "{text}");
        assert_eq!(store.current().unwrap().as_deref(), Some(v2.as_str()));
        // A first run expects no CURRENT.
        let err = store.set_current_if(&v3, None).unwrap_err();
        assert!(err.to_string().contains("not unset"), "{err}");
    }

    /// `CURRENT` and `HISTORY` record the manifest's SHA-256; a manifest
    /// edited after its promotion is refused on load and on rollback, naming
    /// the file; a store written before digests still loads.
    #[test]
    fn the_manifest_digest_is_recorded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        for v in ["v1", "v2"] {
            store.publish(&mut engine(v)).unwrap();
            store.set_current(v).unwrap();
        }
        let entry = store.current_entry().unwrap().unwrap();
        let digest = super::super::manifest_sha256(&store.dir_of("v2")).unwrap();
        assert_eq!(entry.manifest_sha256.as_deref(), Some(digest.as_str()));
        let current = std::fs::read_to_string(store.root().join(CURRENT)).unwrap();
        assert_eq!(current, format!("v2 sha256:{digest}\n"));
        let history = std::fs::read_to_string(store.root().join(HISTORY)).unwrap();
        assert!(
            history.lines().all(|l| l.split(' ').count() == 3),
            "{history}"
        );
        assert_eq!(store.load_current().unwrap().unwrap().0, "v2");

        // One byte of v2's manifest changed (still valid JSON, same length).
        let manifest = store.dir_of("v2").join("manifest.json");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let edited = text.replacen("\"v2\"", "\"v2\" ", 1).replacen("  ", " ", 1);
        assert_ne!(edited, text);
        std::fs::write(&manifest, &edited).unwrap();
        let Err(err) = store.load_current() else {
            panic!("an edited manifest loaded");
        };
        let err = err.to_string();
        assert!(
            err.contains("manifest.json") && err.contains("SHA-256"),
            "{err}"
        );

        // Rollback checks the digest HISTORY recorded for its target.
        let v1_manifest = store.dir_of("v1").join("manifest.json");
        let v1_text = std::fs::read_to_string(&v1_manifest).unwrap();
        std::fs::write(&v1_manifest, v1_text.replacen("  ", " ", 1)).unwrap();
        let err = store.rollback().unwrap_err().to_string();
        assert!(err.contains("v1") && err.contains("manifest.json"), "{err}");
        std::fs::write(&v1_manifest, &v1_text).unwrap();
        assert_eq!(store.rollback().unwrap(), "v1");

        // A store written before digests: a bare name in CURRENT, two fields
        // a HISTORY line. It loads, unchecked, and rolls back.
        std::fs::write(store.root().join(CURRENT), "v1\n").unwrap();
        std::fs::write(
            store.root().join(HISTORY),
            "2026-01-01T00:00:00Z v2\n2026-01-02T00:00:00Z v1\n",
        )
        .unwrap();
        std::fs::write(&manifest, &text).unwrap();
        let entry = store.current_entry().unwrap().unwrap();
        assert_eq!(
            (entry.version.as_str(), entry.manifest_sha256),
            ("v1", None)
        );
        assert_eq!(store.load_current().unwrap().unwrap().0, "v1");
        assert_eq!(store.rollback().unwrap(), "v2");
        // A digest that is not one is an error naming CURRENT.
        std::fs::write(store.root().join(CURRENT), "v2 md5:abc\n").unwrap();
        let err = store.current_entry().unwrap_err().to_string();
        assert!(err.contains("CURRENT") && err.contains("md5:abc"), "{err}");
    }

    #[test]
    fn concurrent_publishes_of_one_version_get_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let engines: Vec<Engine> = (0..4).map(|_| engine("same")).collect();
        let barrier = std::sync::Barrier::new(engines.len());
        let mut names: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = engines
                .into_iter()
                .map(|mut e| {
                    let (store, barrier) = (&store, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        store.publish(&mut e).unwrap().0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        names.sort();
        assert_eq!(names, ["same", "same-2", "same-3", "same-4"]);
        for name in &names {
            store.set_current(name).unwrap();
        }
        assert_eq!(store.versions().unwrap().len(), 4);
    }

    #[test]
    fn publish_promote_rollback_prune() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        assert_eq!(store.current().unwrap(), None);
        for v in ["v1", "v2", "v3", "v4"] {
            store.publish(&mut engine(v)).unwrap();
            store.set_current(v).unwrap();
        }
        assert_eq!(store.current().unwrap().as_deref(), Some("v4"));
        assert_eq!(store.rollback().unwrap(), "v3");
        assert_eq!(store.current().unwrap().as_deref(), Some("v3"));
        let promoted: Vec<String> = store
            .promotions()
            .unwrap()
            .into_iter()
            .map(|(at, v)| {
                assert!(at.ends_with('Z') && at.contains('T'), "{at}");
                v
            })
            .collect();
        assert_eq!(promoted, ["v1", "v2", "v3", "v4", "v3"]);
        // "The version current before this one" is now v4: a second rollback
        // undoes the first.
        assert_eq!(store.rollback_target().unwrap().as_deref(), Some("v4"));
        let removed = store.prune(2).unwrap();
        assert_eq!(removed, vec!["v1".to_string(), "v2".to_string()]);
        let names: Vec<String> = store
            .versions()
            .unwrap()
            .into_iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(names, ["v3", "v4"]);
        assert!(
            store
                .versions()
                .unwrap()
                .iter()
                .any(|v| v.current && v.version == "v3")
        );
    }

    #[test]
    fn unknown_or_damaged_versions_are_not_made_current() {
        let dir = tempfile::tempdir().unwrap();
        let e = Store::open_existing(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::NotAStore { .. }), "{e}");
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store.set_current("nope"),
            Err(StoreError::UnknownVersion { .. })
        ));
        assert!(matches!(
            store.set_current("../etc"),
            Err(StoreError::UnknownVersion { .. })
        ));
        store.publish(&mut engine("good")).unwrap();
        // The same name again is a new version, never a replacement.
        let (again, _) = store.publish(&mut engine("good")).unwrap();
        assert_eq!(again, "good-2");
        store.set_current("good").unwrap();
        store.publish(&mut engine("bad")).unwrap();
        let f = store.dir_of("bad").join("als_items.f32");
        let bytes = fs::read(&f).unwrap();
        fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            store.set_current("bad"),
            Err(StoreError::Artifact(_))
        ));
        assert_eq!(store.current().unwrap().as_deref(), Some("good"));
        assert!(matches!(
            store.rollback(),
            Err(StoreError::NothingToRollBack { .. })
        ));
    }

    #[test]
    fn a_copied_version_whose_manifest_names_another_is_not_made_current() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.publish(&mut engine("v1")).unwrap();
        store.set_current("v1").unwrap();
        // `cp -r versions/v1 versions/copy`: whole and valid, but it calls itself v1.
        fs::create_dir(store.dir_of("copy")).unwrap();
        for f in fs::read_dir(store.dir_of("v1")).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), store.dir_of("copy").join(f.file_name())).unwrap();
        }
        let err = store.set_current("copy").unwrap_err();
        assert!(
            matches!(&err, StoreError::NameMismatch { version, model_version, .. }
                if version == "copy" && model_version == "v1"),
            "{err}"
        );
        assert!(err.to_string().contains("manifest.json"), "{err}");
        assert_eq!(store.current().unwrap().as_deref(), Some("v1"));
    }

    /// Sets the modification time of a directory and its files `ago` in the past.
    fn age(path: &Path, ago: Duration) {
        let then = std::time::SystemTime::now() - ago;
        for f in fs::read_dir(path).unwrap() {
            let f = f.unwrap().path();
            File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
        File::open(path).unwrap().set_modified(then).unwrap();
    }

    #[test]
    fn staging_left_by_a_killed_run_is_swept_by_the_next_publish() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let versions = dir.path().join(VERSIONS);
        // No process has this id (Linux's pid_max is at most 2^22).
        let dead = 4_000_000_000u32;
        let me = std::process::id();
        let killed = versions.join(format!(".v0.tmp-{dead}-123"));
        let killed_aside = versions.join(format!(".v0.tmp-{dead}-124.old"));
        let fresh = versions.join(format!(".v0.tmp-{dead}-125"));
        let live = versions.join(format!(".v0.tmp-{me}-126"));
        // A writer elsewhere (its pid means nothing here) still writing one
        // big file: the directory's own time is old, the file's is not.
        let writing = versions.join(format!(".v0.tmp-{dead}-127"));
        for d in [&killed, &killed_aside, &fresh, &live, &writing] {
            fs::create_dir(d).unwrap();
            fs::write(d.join("customers.json"), b"[\"c1\"]").unwrap();
        }
        let hour = Duration::from_secs(3600);
        for d in [&killed, &killed_aside, &live, &writing] {
            age(d, hour);
        }
        fs::write(writing.join("customers.json"), b"[\"c1\", \"c2\"]").unwrap();
        let staged: Vec<_> = store.staging_dirs().unwrap();
        assert_eq!(staged.len(), 5);
        assert!(staged.contains(&(killed.clone(), Some(dead))));
        assert!(staged.contains(&(live.clone(), Some(me))));
        // Neither listed as versions nor pruned.
        assert!(store.versions().unwrap().is_empty());

        store.publish(&mut engine("v1")).unwrap();
        assert!(!killed.exists() && !killed_aside.exists());
        // Recent (its writer may be on another machine), still written to, or
        // its writer alive: kept.
        assert!(fresh.exists() && live.exists() && writing.exists());
        fs::remove_dir_all(&writing).unwrap();
        let names: Vec<String> = store
            .versions()
            .unwrap()
            .into_iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(names, ["v1"]);
        age(&fresh, hour);
        assert_eq!(store.sweep_staging(STALE_STAGING).unwrap(), vec![fresh]);
        assert!(live.exists());
        assert_eq!(store.staging_dirs().unwrap().len(), 1);
    }
}
