//! Binary array files of the artifact and the atomic directory write.
//!
//! # Implementation notes
//! Every array file starts with an 8-byte magic naming its element type and a
//! little-endian header of its shape; the payload follows, little-endian. The
//! manifest records each file's size and CRC-32, and [`verify_file`] checks
//! both before a file is parsed, so a truncated or bit-flipped artifact is
//! refused before any model code sees it.
//!
//! The per-customer files are not read into memory: [`map_verified`] streams
//! the file through a small buffer to check its size and CRC-32 (never
//! through the mapping), then maps it, and [`map_csr`] validates a mapped
//! CSR's header against the file's length and its structure once, then reads
//! its arrays in place. The CSR layout puts the `u64` row pointers at byte 32
//! and the `u32` columns and `f32` values right after them, so every array is
//! aligned for its type in a page-aligned mapping.

use super::ArtifactError;
use crate::le::{Crc32Writer, put_le};
use crate::manifest::FileEntry;
use encore_data::Csr;
use encore_data::mapped::{Buf, Mapping};
use ndarray::Array2;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC_F32: &[u8; 8] = b"ENCF32\0\x01";
const MAGIC_CSR: &[u8; 8] = b"ENCCSR\0\x01";

/// The bytes of `path`, or `None` if there is no such file.
pub(crate) fn read_existing(path: &Path) -> Result<Option<Vec<u8>>, ArtifactError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ArtifactError::io(path, e)),
    }
}

/// Writes `bytes` to `dir/name`, fsyncs it and returns its manifest entry.
pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<FileEntry, ArtifactError> {
    write_with(dir, name, |w| w.write_all(bytes))
}

/// Writes `dir/name` by streaming `write` into it (through a buffer, never
/// the whole file in memory), fsyncs it and returns its manifest entry.
pub(crate) fn write_with(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut BufWriter<Crc32Writer<File>>) -> std::io::Result<()>,
) -> Result<FileEntry, ArtifactError> {
    let path = dir.join(name);
    let io_err = |e| ArtifactError::io(&path, e);
    let file = File::create(&path).map_err(io_err)?;
    let mut w = BufWriter::with_capacity(1 << 20, Crc32Writer::new(file));
    write(&mut w).map_err(io_err)?;
    let checked = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    checked.out.sync_all().map_err(io_err)?;
    Ok(FileEntry {
        bytes: checked.bytes,
        crc32: checked.crc.finalize(),
    })
}

/// The files written into one directory and their manifest entries, by name.
pub(crate) struct FileTable<'a> {
    dir: &'a Path,
    pub(crate) files: BTreeMap<String, FileEntry>,
}

impl<'a> FileTable<'a> {
    pub(crate) fn new(dir: &'a Path) -> Self {
        FileTable {
            dir,
            files: BTreeMap::new(),
        }
    }

    /// [`write_with`] `name`, its entry recorded.
    pub(crate) fn write(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut BufWriter<Crc32Writer<File>>) -> std::io::Result<()>,
    ) -> Result<(), ArtifactError> {
        let entry = write_with(self.dir, name, write)?;
        self.files.insert(name.to_string(), entry);
        Ok(())
    }

    /// `m` as the CSR file `name` ([`write_csr`]).
    pub(crate) fn csr(&mut self, name: &str, m: &Csr) -> Result<(), ArtifactError> {
        self.write(name, |w| write_csr(w, m))
    }

    /// `value` streamed as JSON into `name`.
    pub(crate) fn json<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<(), ArtifactError> {
        self.write(name, |w| {
            serde_json::to_writer(w, value).map_err(std::io::Error::other)
        })
    }
}

/// Computes the entry of a file written by someone else (e.g. the HNSW dump), fsyncing it.
pub(crate) fn entry_of(path: &Path) -> Result<FileEntry, ArtifactError> {
    let bytes = fs::read(path).map_err(|e| ArtifactError::io(path, e))?;
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArtifactError::io(path, e))?;
    Ok(FileEntry {
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(&bytes),
    })
}

/// Opens `dir/name` and checks its size on disk against its manifest entry
/// before anything is read or allocated from it: a damaged or hostile
/// manifest cannot ask for more memory than the file holds.
fn open_sized(dir: &Path, name: &str, entry: &FileEntry) -> Result<(PathBuf, File), ArtifactError> {
    let path = dir.join(name);
    let file = File::open(&path).map_err(|e| ArtifactError::io(&path, e))?;
    let on_disk = file
        .metadata()
        .map_err(|e| ArtifactError::io(&path, e))?
        .len();
    if on_disk != entry.bytes {
        return Err(size_mismatch(path, on_disk, entry));
    }
    Ok((path, file))
}

/// The error of a file of `size` bytes whose manifest entry says otherwise.
fn size_mismatch(path: PathBuf, size: u64, entry: &FileEntry) -> ArtifactError {
    ArtifactError::Corrupt {
        path,
        reason: format!("size is {size} bytes, the manifest says {}", entry.bytes),
    }
}

/// Checks a file's CRC-32 `crc` against its manifest entry.
fn check_crc(path: PathBuf, crc: u32, entry: &FileEntry) -> Result<(), ArtifactError> {
    if crc != entry.crc32 {
        return Err(ArtifactError::Corrupt {
            path,
            reason: format!(
                "checksum {crc:08x} does not match the manifest's {:08x}",
                entry.crc32
            ),
        });
    }
    Ok(())
}

/// Reads `dir/name` and checks it against its manifest entry.
pub(crate) fn verify_file(
    dir: &Path,
    name: &str,
    entry: &FileEntry,
) -> Result<Vec<u8>, ArtifactError> {
    let (path, mut file) = open_sized(dir, name, entry)?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.bytes).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| ArtifactError::io(&path, e))?;
    if bytes.len() as u64 != entry.bytes {
        return Err(size_mismatch(path, bytes.len() as u64, entry));
    }
    check_crc(path, crc32fast::hash(&bytes), entry)?;
    Ok(bytes)
}

/// What [`verify_streaming`] saw besides the file's checksum: the CRC-32 of
/// every byte but the last four, and those four (a file that ends in its
/// own checksum, like `replenishment.bin`, checks it with them).
pub(crate) struct Streamed {
    pub(crate) body_crc: u32,
    pub(crate) tail: [u8; 4],
}

/// Checks `dir/name` against its manifest entry by reading it through a
/// small buffer: the file is never held in memory, and never read through a
/// mapping (a damaged file is refused before anything views it).
pub(crate) fn verify_streaming(
    dir: &Path,
    name: &str,
    entry: &FileEntry,
) -> Result<Streamed, ArtifactError> {
    let (path, mut file) = open_sized(dir, name, entry)?;
    let mut whole = crc32fast::Hasher::new();
    let mut body = crc32fast::Hasher::new();
    // The last four bytes seen, held back from `body` until more arrive.
    let mut tail: Vec<u8> = Vec::with_capacity(4);
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArtifactError::io(&path, e)),
        };
        let chunk = &buf[..n];
        read += n as u64;
        whole.update(chunk);
        if n >= 4 {
            body.update(&tail);
            body.update(&chunk[..n - 4]);
            tail.clear();
            tail.extend_from_slice(&chunk[n - 4..]);
        } else {
            tail.extend_from_slice(chunk);
            let spill = tail.len().saturating_sub(4);
            body.update(&tail[..spill]);
            tail.drain(..spill);
        }
    }
    if read != entry.bytes {
        return Err(size_mismatch(path, read, entry));
    }
    check_crc(path, whole.finalize(), entry)?;
    let mut last = [0u8; 4];
    last[4 - tail.len()..].copy_from_slice(&tail);
    Ok(Streamed {
        body_crc: body.finalize(),
        tail: last,
    })
}

/// [`verify_streaming`], then maps the file read-only; its length is checked
/// again on the mapping.
pub(crate) fn map_verified(
    dir: &Path,
    name: &str,
    entry: &FileEntry,
) -> Result<(Arc<Mapping>, Streamed), ArtifactError> {
    let streamed = verify_streaming(dir, name, entry)?;
    let path = dir.join(name);
    let map = Mapping::open(&path).map_err(|e| ArtifactError::io(&path, e))?;
    if map.len() as u64 != entry.bytes {
        return Err(corrupt(
            &path,
            format!("changed while loading: {} bytes now", map.len()),
        ));
    }
    Ok((map, streamed))
}

/// A CSR matrix read in place from `map` (written by [`write_csr`]): the
/// header's shape is checked against the file's length before any array is
/// viewed, and the structure once ([`Csr::from_parts`]: row pointers from 0
/// to nnz, never decreasing; columns in range and strictly increasing).
pub(crate) fn map_csr(map: &Arc<Mapping>, path: &Path) -> Result<Csr, ArtifactError> {
    let bytes = map.bytes();
    let mut cur = Cursor { bytes, path };
    cur.magic(MAGIC_CSR)?;
    let rows = cur.u64()?;
    let cols = cur.u64()?;
    let nnz = cur.u64()?;
    // 32 header bytes, 8 per row pointer, 4 + 4 per entry.
    let need = u128::from(rows) * 8 + 8 + u128::from(nnz) * 8;
    let have = (bytes.len() - 32) as u128;
    if need != have {
        return Err(corrupt(
            path,
            format!(
                "{rows} rows and {nnz} entries need {need} bytes after the header, the file has {have}"
            ),
        ));
    }
    // Within the file's length, so within usize.
    let (rows, nnz) = (rows as usize, nnz as usize);
    let cols = usize::try_from(cols).map_err(|_| corrupt(path, "shape overflow"))?;
    let at_indices = 32 + (rows + 1) * 8;
    let at_values = at_indices + nnz * 4;
    let view = || corrupt(path, "array out of the file");
    let indptr: Buf<usize> = Buf::view(map, 32, rows + 1).ok_or_else(view)?;
    let indices: Buf<u32> = Buf::view(map, at_indices, nnz).ok_or_else(view)?;
    let values: Buf<f32> = Buf::view(map, at_values, nnz).ok_or_else(view)?;
    Csr::from_parts(rows, cols, indptr, indices, values).map_err(|reason| corrupt(path, reason))
}

/// [`write_f32`] into memory.
#[cfg(test)]
pub(crate) fn encode_f32(a: &Array2<f32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + a.len() * 4);
    write_f32(&mut out, a).expect("writing to memory");
    out
}

/// Writes a dense `f32` matrix into `w`: magic, rows and columns (`u64`),
/// then the values row by row (little-endian), as [`decode_f32`] reads it.
pub(crate) fn write_f32(w: &mut impl Write, a: &Array2<f32>) -> std::io::Result<()> {
    w.write_all(MAGIC_F32)?;
    w.write_all(&(a.nrows() as u64).to_le_bytes())?;
    w.write_all(&(a.ncols() as u64).to_le_bytes())?;
    match a.as_slice() {
        Some(row_major) => put_le(w, row_major, f32::to_le_bytes),
        None => {
            let values: Vec<f32> = a.iter().copied().collect();
            put_le(w, &values, f32::to_le_bytes)
        }
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> ArtifactError {
    ArtifactError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ArtifactError> {
        if self.bytes.len() < n {
            return Err(corrupt(self.path, "file ends early"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, ArtifactError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn magic(&mut self, magic: &[u8; 8]) -> Result<(), ArtifactError> {
        if self.take(8)? != magic {
            return Err(corrupt(self.path, "wrong file type (bad magic bytes)"));
        }
        Ok(())
    }

    fn array<T>(&mut self, n: usize, parse: fn([u8; 4]) -> T) -> Result<Vec<T>, ArtifactError> {
        let raw = self.take(
            n.checked_mul(4)
                .ok_or_else(|| corrupt(self.path, "size overflow"))?,
        )?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| parse(c.try_into().expect("4 bytes")))
            .collect())
    }

    fn finish(&self) -> Result<(), ArtifactError> {
        if !self.bytes.is_empty() {
            return Err(corrupt(self.path, "trailing bytes after the data"));
        }
        Ok(())
    }
}

/// Parses a dense `f32` matrix written by [`write_f32`].
pub(crate) fn decode_f32(bytes: &[u8], path: &Path) -> Result<Array2<f32>, ArtifactError> {
    let mut cur = Cursor { bytes, path };
    cur.magic(MAGIC_F32)?;
    let rows = cur.u64()? as usize;
    let cols = cur.u64()? as usize;
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| corrupt(path, "shape overflow"))?;
    let data = cur.array(n, f32::from_le_bytes)?;
    cur.finish()?;
    Array2::from_shape_vec((rows, cols), data).map_err(|e| corrupt(path, e.to_string()))
}

/// [`write_csr`] into memory.
#[cfg(test)]
pub(crate) fn encode_csr(m: &Csr) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + m.indptr().len() * 8 + m.nnz() * 8);
    write_csr(&mut out, m).expect("writing to memory");
    out
}

/// Writes a CSR matrix into `w`: magic, rows, columns and non-zeros (`u64`),
/// then `indptr` (`u64`), `indices` (`u32`) and `values` (`f32`), little-endian.
pub(crate) fn write_csr(w: &mut impl Write, m: &Csr) -> std::io::Result<()> {
    w.write_all(MAGIC_CSR)?;
    w.write_all(&(m.n_rows() as u64).to_le_bytes())?;
    w.write_all(&(m.n_cols() as u64).to_le_bytes())?;
    w.write_all(&(m.nnz() as u64).to_le_bytes())?;
    put_le(w, m.indptr(), |p| (p as u64).to_le_bytes())?;
    put_le(w, m.indices(), u32::to_le_bytes)?;
    put_le(w, m.values(), f32::to_le_bytes)
}

/// Parses a CSR matrix written by [`write_csr`], checking its invariants.
pub(crate) fn decode_csr(bytes: &[u8], path: &Path) -> Result<Csr, ArtifactError> {
    let mut cur = Cursor { bytes, path };
    cur.magic(MAGIC_CSR)?;
    let rows = cur.u64()? as usize;
    let cols = cur.u64()? as usize;
    let nnz = cur.u64()? as usize;
    let ptr_bytes = rows
        .checked_add(1)
        .and_then(|n| n.checked_mul(8))
        .ok_or_else(|| corrupt(path, "shape overflow"))?;
    let indptr: Vec<usize> = cur
        .take(ptr_bytes)?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
        .collect();
    let indices = cur.array(nnz, u32::from_le_bytes)?;
    let values = cur.array(nnz, f32::from_le_bytes)?;
    cur.finish()?;
    Csr::from_parts(rows, cols, indptr, indices, values).map_err(|reason| corrupt(path, reason))
}

/// A directory being written; renamed into place by [`StagingDir::commit`].
/// Dropping it without committing removes the partial directory.
pub(crate) struct StagingDir {
    pub(crate) path: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagingDir {
    /// Creates a hidden staging directory next to `target`.
    ///
    /// Refuses a target that exists and is neither an empty directory nor an
    /// Encore artifact (a directory with a `manifest.json`), so that a mistyped
    /// `--out` never replaces unrelated files.
    pub(crate) fn new(target: &Path) -> Result<Self, ArtifactError> {
        Self::marked(target, "manifest.json", "an Encore model directory")
    }

    /// [`StagingDir::new`] for a directory of another `kind`, recognised by
    /// its file `marker` (written last, as the manifest is).
    pub(crate) fn marked(target: &Path, marker: &str, kind: &str) -> Result<Self, ArtifactError> {
        if target.exists() {
            let is_artifact = target.join(marker).is_file();
            let is_empty_dir = fs::read_dir(target).is_ok_and(|mut d| d.next().is_none());
            if !(is_artifact || is_empty_dir) {
                return Err(ArtifactError::InvalidTarget {
                    path: target.to_path_buf(),
                    reason: format!(
                        "it exists and is not {kind} (no {marker}); \
                         choose a new or empty directory"
                    ),
                });
            }
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| ArtifactError::io(&parent, e))?;
        let name = target
            .file_name()
            .ok_or_else(|| ArtifactError::InvalidTarget {
                path: target.to_path_buf(),
                reason: "the path has no directory name".into(),
            })?
            .to_string_lossy()
            .into_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).map_err(|e| ArtifactError::io(&path, e))?;
        Ok(StagingDir {
            path,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Fsyncs the staging directory and renames it onto the target.
    ///
    /// An existing artifact at the target is first renamed aside and removed
    /// after the new one is in place, so the target never holds a mix of two.
    pub(crate) fn commit(mut self) -> Result<(), ArtifactError> {
        sync_dir(&self.path)?;
        let mut old = None;
        if self.target.exists() {
            let aside = PathBuf::from(format!("{}.old", self.path.display()));
            fs::rename(&self.target, &aside).map_err(|e| ArtifactError::io(&self.target, e))?;
            old = Some(aside);
        }
        if let Err(e) = fs::rename(&self.path, &self.target) {
            // Put the previous artifact back rather than leave nothing at the target.
            if let Some(aside) = &old {
                let _ = fs::rename(aside, &self.target);
            }
            return Err(ArtifactError::io(&self.target, e));
        }
        self.committed = true;
        if let Some(parent) = self.target.parent() {
            // Makes the rename itself durable. The artifact is in place and
            // whole either way, so a failure is reported, not returned.
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            if let Err(e) = sync_dir(parent) {
                tracing::warn!(error = %e, "model written, but its directory could not be fsynced");
            }
        }
        if let Some(old) = old {
            fs::remove_dir_all(&old).map_err(|e| ArtifactError::io(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn sync_dir(path: &Path) -> Result<(), ArtifactError> {
    encore_data::durable::sync_dir(path).map_err(|e| ArtifactError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_roundtrip_and_truncation() {
        let a = Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        let bytes = encode_f32(&a);
        let p = Path::new("x.f32");
        assert_eq!(decode_f32(&bytes, p).unwrap(), a);
        assert!(decode_f32(&bytes[..bytes.len() - 1], p).is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_f32(&extra, p).is_err());
    }

    #[test]
    fn csr_roundtrip_and_bad_invariant() {
        let m = Csr::from_triplets(3, 4, [(0, 1, 1.0), (2, 3, 2.0), (2, 0, 0.5)]);
        let bytes = encode_csr(&m);
        let p = Path::new("x.csr");
        assert_eq!(decode_csr(&bytes, p).unwrap(), m);
        let mut bad = bytes.clone();
        // Point a column index out of range.
        let idx_at = 32 + 4 * 8;
        bad[idx_at..idx_at + 4].copy_from_slice(&9u32.to_le_bytes());
        assert!(decode_csr(&bad, p).is_err());
    }

    /// A CSR whose checksum is fine but whose contents are not is an error
    /// naming the file, never a panic or a huge allocation.
    #[test]
    fn malformed_csr_is_an_error_naming_the_file() {
        let m = Csr::from_triplets(3, 4, [(0, 1, 1.0), (2, 3, 2.0), (2, 0, 0.5)]);
        let bytes = encode_csr(&m);
        let p = Path::new("models/v1/copurchase.csr");
        let with = |offset: usize, value: u64| {
            let mut b = bytes.clone();
            b[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
            b
        };
        // indptr[1] past nnz (indptr starts at byte 32), then a decrease.
        for bad in [
            with(32 + 8, 5),
            with(32 + 16, 0),
            with(32 + 8, u64::MAX),
            // Shapes far beyond the file: rows, then nnz.
            with(8, 1 << 40),
            with(8, u64::MAX),
            with(24, 1 << 40),
        ] {
            let err = decode_csr(&bad, p).unwrap_err().to_string();
            assert!(err.contains("copurchase.csr"), "{err}");
        }
        let huge = {
            let mut b = encode_f32(&Array2::zeros((2, 2)));
            b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
            b
        };
        let err = decode_f32(&huge, Path::new("als_items.f32"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("als_items.f32"), "{err}");
    }

    /// A manifest that claims a huge size is refused by the file's size,
    /// before anything is allocated from it.
    #[test]
    fn a_manifest_size_beyond_the_file_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let entry = write_file(dir.path(), "a.bin", b"hello world").unwrap();
        for bytes in [1u64 << 50, u64::MAX] {
            let claimed = FileEntry {
                bytes,
                ..entry.clone()
            };
            let err = verify_file(dir.path(), "a.bin", &claimed)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("a.bin") && err.contains("size is 11 bytes"),
                "{err}"
            );
        }
    }

    #[test]
    fn verify_detects_bit_flip() {
        let dir = tempfile::tempdir().unwrap();
        let entry = write_file(dir.path(), "a.bin", b"hello world").unwrap();
        assert!(verify_file(dir.path(), "a.bin", &entry).is_ok());
        fs::write(dir.path().join("a.bin"), b"hellp world").unwrap();
        let err = verify_file(dir.path(), "a.bin", &entry).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn staging_replaces_target_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model");
        for round in 0..2 {
            let stage = StagingDir::new(&target).unwrap();
            fs::write(stage.path.join("f"), format!("{round}")).unwrap();
            fs::write(stage.path.join("manifest.json"), "{}").unwrap();
            stage.commit().unwrap();
            assert_eq!(
                fs::read_to_string(target.join("f")).unwrap(),
                format!("{round}")
            );
        }
        {
            let stage = StagingDir::new(&target).unwrap();
            fs::write(stage.path.join("f"), "abandoned").unwrap();
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("model")]);
    }
}
