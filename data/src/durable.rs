//! Durable file writes: replacing a file so that a crash leaves the old
//! contents or the new ones, whole, and fsyncing a directory. Every fsync
//! failure is returned to the caller, who decides what it means.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why [`replace_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// Nothing was replaced: the file holds its old contents, if it existed.
    #[error("{path}: {error}")]
    NotReplaced { path: PathBuf, error: io::Error },
    /// The file holds the new contents, but its directory could not be
    /// fsynced: after a power loss it may hold the old ones again.
    #[error("{dir}: the file was replaced, but the directory could not be fsynced: {error}")]
    NotDurable { dir: PathBuf, error: io::Error },
}

/// Replaces `path` with `bytes`: a temporary file in the same directory
/// (`.NAME.tmp-PID`), fsynced, renamed over `path`, then the directory
/// fsynced. A failure before the rename removes the temporary file.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), ReplaceError> {
    let not_replaced = |error| ReplaceError::NotReplaced {
        path: path.to_path_buf(),
        error,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        not_replaced(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(not_replaced(error));
    }
    sync_dir(dir).map_err(|error| ReplaceError::NotDurable {
        dir: dir.to_path_buf(),
        error,
    })
}

/// Fsyncs the directory `dir`, so that the files created, renamed or
/// removed in it stay so after a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("CURRENT");
        replace_file(&path, b"v1\n").unwrap();
        replace_file(&path, b"v2\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"v2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["CURRENT"]);
        let missing = dir.path().join("missing").join("x.toml");
        assert!(matches!(
            replace_file(&missing, b""),
            Err(ReplaceError::NotReplaced { .. })
        ));
    }
}
