//! Reading a purchase history whatever its format: a CSV file, plain or
//! gzip ([`crate::ingest`]), or Parquet, a file or a directory of part files
//! ([`crate::parquet`]), told apart by the path and the first bytes.

use crate::ingest::{
    HashingReader, IngestError, IngestOptions, IngestReport, PARQUET_MAGIC, has_parquet_extension,
    ingest,
};
use crate::log::PurchaseLog;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// `sha256:<hex>` of a file's bytes; for a directory of Parquet part files,
/// see [`crate::parquet::fingerprint_parts`]. The same as
/// [`IngestReport::fingerprint`] for the input at `path`.
pub fn fingerprint_file(path: &Path) -> Result<String, IngestError> {
    #[cfg(feature = "parquet")]
    if path.is_dir() {
        return crate::parquet::fingerprint_parts(path);
    }
    let io = |source| IngestError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    HashingReader::new(File::open(path).map_err(io)?)
        .finish()
        .map_err(io)
}

/// True if `path`'s extension is `gz` (any case).
fn has_gz_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Reads a purchase history: a CSV file, plain or gzip (see [`crate::ingest`]),
/// or Parquet: a file named `*.parquet` or starting with the Parquet magic
/// bytes, or a directory of part files (see [`crate::parquet`]).
///
/// The report's fingerprint is the SHA-256 of the file as stored (for a
/// directory, see [`crate::parquet::fingerprint_parts`]).
pub fn read_purchases(
    path: &Path,
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError> {
    let io = |source| IngestError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    if path.is_dir() {
        return read_parquet_input(path, opts);
    }
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    if (got == 4 && &magic == PARQUET_MAGIC) || has_parquet_extension(path) {
        drop(file);
        return read_parquet_input(path, opts);
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let gzip = got >= 2 && magic[..2] == [0x1f, 0x8b];
    if !gzip && has_gz_extension(path) {
        return Err(IngestError::NotGzip {
            path: path.to_path_buf(),
        });
    }
    let hashing = HashingReader::new(file);
    let (log, mut report, hashing) = if gzip {
        let (log, report, decoder) =
            ingest(flate2::read::MultiGzDecoder::new(hashing), path, opts)?;
        (log, report, decoder.into_inner())
    } else {
        ingest(hashing, path, opts)?
    };
    report.fingerprint = hashing.finish().map_err(io)?;
    Ok((log, report))
}

#[cfg(feature = "parquet")]
fn read_parquet_input(
    path: &Path,
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError> {
    crate::parquet::read_parquet(path, opts)
}

#[cfg(not(feature = "parquet"))]
fn read_parquet_input(
    path: &Path,
    _opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError> {
    Err(IngestError::ParquetUnsupported {
        path: path.to_path_buf(),
    })
}
