//! Purchase histories stored as Parquet: one file, or a directory of part files.
//!
//! The same [`ColumnMap`], reject reasons, rejects file and strict mode as
//! CSV (see [`crate::ingest`]): each row goes through the same checks, so the
//! same rows give the same [`PurchaseLog`] and [`IngestReport`] from either
//! format (apart from the report's fingerprint).
//!
//! # Layout
//! A directory is read as the part files Spark, DuckDB, Polars or pandas
//! write: its files named `*.parquet`, in byte order of their names. Names
//! starting with `.` or `_` (`_SUCCESS`, `_metadata`, `.part-0.parquet.crc`)
//! and names ending in `.crc` are skipped. Any other entry (a subdirectory,
//! as in a `key=value` partitioned layout, or a file of another kind) is an
//! error rather than data silently left out.
//!
//! # Types
//! Only the mapped columns are read, one row group at a time, in batches.
//! Columns are matched by their top-level name (trimmed, as CSV headers are).
//! - ids (`order_id`, `customer_id`, `item_id`): strings (`Utf8`,
//!   `LargeUtf8`, `Utf8View`), binary holding UTF-8, or any integer type,
//!   written as its decimal digits (integer `17850` is id `"17850"`, as in a
//!   CSV file);
//! - `timestamp`: `Timestamp` of any unit, with or without a time zone (the
//!   stored instant is UTC; sub-second parts are dropped, rounding down),
//!   `Date32`/`Date64` (midnight UTC), or strings parsed like CSV text;
//! - `quantity`, `price`: any integer or float type, `Decimal32/64/128/256`
//!   (converted from their decimal digits, exactly as CSV text is), or strings.
//!
//! Any of these may be dictionary-encoded. A null is an empty CSV field: a
//! null id or timestamp rejects the row (`missing_customer`, `missing_item`,
//! `bad_timestamp`), a null quantity is `bad_quantity`, a null price is no
//! price and a null order id a synthesized order.
//!
//! # Errors
//! A missing column, a column of a type that cannot hold its field, or a file
//! whose footer or pages cannot be decoded is an [`IngestError`] naming the
//! file (and the column and row group when they are known); a damaged page is
//! narrowed down to its column by reading the row group's columns one at a
//! time. Rejected rows are written to the rejects file with `<file> row group
//! <g> row <r>` (both from 0, the row counted within its row group) in the
//! `line` column and the mapped fields, in canonical order, as `raw`.
//!
//! # Fingerprint
//! A single file's fingerprint is the SHA-256 of its bytes, as for CSV. A
//! directory's ([`fingerprint_parts`]) is the SHA-256 of, for each part file
//! in reading order, its name, a newline, its length in bytes in decimal, a
//! newline and its bytes: renaming, adding, removing or changing a part
//! changes it. It is computed on a second thread while the rows are decoded.

use crate::ingest::{
    ColumnMap, Field, IngestError, IngestOptions, IngestReport, PARQUET_MAGIC, Reject,
    RejectReason, Row, RowLocation, RowSink, has_parquet_extension, push_csv_field, sha256_hex,
};
use crate::log::PurchaseLog;
use crate::timestamp::{format_date, format_timestamp, parse_timestamp};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Rows decoded at a time.
const BATCH_ROWS: usize = 8192;

/// True if `path` is Parquet input: a directory, a file named `*.parquet`,
/// or a file that starts with the Parquet magic bytes.
pub fn is_parquet_input(path: &Path) -> bool {
    if path.is_dir() || has_parquet_extension(path) {
        return true;
    }
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == PARQUET_MAGIC)
}

/// The part files of a Parquet directory, in reading order (see the module docs).
pub fn parquet_parts(dir: &Path) -> Result<Vec<PathBuf>, IngestError> {
    let io = |source| IngestError::Io {
        path: dir.to_path_buf(),
        cause: source,
    };
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text.starts_with('.') || name_text.starts_with('_') || name_text.ends_with(".crc") {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        // A symbolic link counts as what it points to.
        let is_dir = kind.is_dir() || (kind.is_symlink() && path.is_dir());
        if is_dir || !has_parquet_extension(&path) {
            return Err(IngestError::ParquetDirEntry {
                path: dir.to_path_buf(),
                entry: name_text.into_owned(),
                what: if is_dir {
                    "a subdirectory"
                } else {
                    "not named *.parquet"
                },
            });
        }
        parts.push(path);
    }
    if parts.is_empty() {
        return Err(IngestError::NoParquetParts {
            path: dir.to_path_buf(),
        });
    }
    parts.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(parts)
}

/// The fingerprint of Parquet input `path` made of `parts` (see the module
/// docs); stops early, with `None`, once `cancel` is set.
fn fingerprint_inner(
    path: &Path,
    parts: &[PathBuf],
    cancel: &AtomicBool,
) -> Result<Option<String>, IngestError> {
    let mut hasher = Sha256::new();
    let single = !path.is_dir();
    let mut buf = vec![0u8; 1 << 20];
    for part in parts {
        let io = |source| IngestError::Io {
            path: part.clone(),
            cause: source,
        };
        let mut file = File::open(part).map_err(io)?;
        if !single {
            let len = file.metadata().map_err(io)?.len();
            let name = part.file_name().unwrap_or_default().to_string_lossy();
            hasher.update(format!("{name}\n{len}\n").as_bytes());
        }
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            hasher.update(&buf[..n]);
        }
    }
    Ok(Some(sha256_hex(hasher)))
}

/// `sha256:<hex>` fingerprint of a Parquet file or directory (see the module docs).
pub fn fingerprint_parts(path: &Path) -> Result<String, IngestError> {
    let parts = if path.is_dir() {
        parquet_parts(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let never = AtomicBool::new(false);
    Ok(fingerprint_inner(path, &parts, &never)?.unwrap_or_default())
}

/// Reads a Parquet file, or a directory of part files, into a purchase log.
pub fn read_parquet(
    path: &Path,
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError> {
    let parts = if path.is_dir() {
        parquet_parts(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let cancel = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| fingerprint_inner(path, &parts, &cancel));
        let read = read_parts(path, &parts, opts);
        if read.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        let fingerprint = hashing.join().unwrap_or_else(|_| {
            Err(IngestError::Io {
                path: path.to_path_buf(),
                cause: std::io::Error::other("the fingerprint thread failed"),
            })
        });
        let (log, mut report) = read?;
        report.fingerprint = fingerprint?.unwrap_or_default();
        Ok((log, report))
    })
}

fn read_parts(
    path: &Path,
    parts: &[PathBuf],
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError> {
    let mut sink = RowSink::new(path, opts);
    for part in parts {
        read_file(part, opts, &mut sink)?;
    }
    sink.finish()
}

/// What a field's column must be able to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Time,
    Number,
}

impl Kind {
    fn of(field: Field) -> Kind {
        match field {
            Field::OrderId | Field::CustomerId | Field::ItemId => Kind::Id,
            Field::Timestamp => Kind::Time,
            Field::Quantity | Field::Price => Kind::Number,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Id => "a string or integer column",
            Kind::Time => "a timestamp, date or string column",
            Kind::Number => "an integer, float, decimal or string column",
        }
    }

    /// Whether a column of type `t` can hold this kind of field.
    fn accepts(self, t: &DataType) -> bool {
        use DataType as D;
        let text = matches!(
            t,
            D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Binary | D::LargeBinary | D::BinaryView
        );
        let int = t.is_integer();
        match t {
            D::Dictionary(_, values) => self.accepts(values),
            _ => match self {
                Kind::Id => text || int,
                Kind::Time => text || matches!(t, D::Timestamp(..) | D::Date32 | D::Date64),
                Kind::Number => {
                    text || int
                        || matches!(
                            t,
                            D::Float16
                                | D::Float32
                                | D::Float64
                                | D::Decimal32(..)
                                | D::Decimal64(..)
                                | D::Decimal128(..)
                                | D::Decimal256(..)
                        )
                }
            },
        }
    }
}

/// The fields found in one file: position of each in the projected batch.
struct Layout {
    /// For each field in [`Field::ALL`] order, its column in the batch.
    batch_col: [Option<usize>; 6],
    /// Root column indices read, ascending.
    roots: Vec<usize>,
}

fn resolve(
    file: &Path,
    schema: &arrow_schema::Schema,
    map: &ColumnMap,
) -> Result<Layout, IngestError> {
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().trim().to_string())
        .collect();
    let mut found: [Option<usize>; 6] = [None; 6];
    for (k, field) in Field::ALL.into_iter().enumerate() {
        let source = map.source(field);
        match names.iter().position(|n| n == source) {
            Some(i) => {
                let t = schema.field(i).data_type();
                let kind = Kind::of(field);
                if !kind.accepts(t) {
                    return Err(IngestError::ParquetColumnType {
                        path: file.to_path_buf(),
                        field: field.name(),
                        column: source.to_string(),
                        data_type: t.to_string(),
                        expected: kind.expected(),
                    });
                }
                found[k] = Some(i);
            }
            None if field.required() || map.is_mapped(field) => {
                return Err(IngestError::MissingColumn {
                    path: file.to_path_buf(),
                    field: field.name(),
                    column: source.to_string(),
                    found: names,
                });
            }
            None => {}
        }
    }
    let mut roots: Vec<usize> = found.iter().flatten().copied().collect();
    roots.sort_unstable();
    roots.dedup();
    let batch_col = found.map(|f| f.and_then(|i| roots.iter().position(|&r| r == i)));
    Ok(Layout { batch_col, roots })
}

/// Runs `f`, turning a panic of the Parquet decoder into an error: damaged
/// data must give an error naming the file, never bring the process down.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        Err(format!("the decoder failed on damaged data ({what})"))
    })
}

fn reader(
    file: &File,
    meta: &ArrowReaderMetadata,
    roots: &[usize],
    row_group: usize,
) -> Result<ParquetRecordBatchReader, String> {
    let input = file.try_clone().map_err(|e| e.to_string())?;
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots.iter().copied());
    ParquetRecordBatchReaderBuilder::new_with_metadata(input, meta.clone())
        .with_projection(mask)
        .with_row_groups(vec![row_group])
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| e.to_string())
}

/// The column of `roots` whose data in `row_group` does not decode, if a
/// single one can be blamed.
fn damaged_column(
    file: &File,
    meta: &ArrowReaderMetadata,
    roots: &[usize],
    row_group: usize,
) -> Option<String> {
    roots.iter().find_map(|&root| {
        let failed = guarded(|| {
            let mut r = reader(file, meta, &[root], row_group)?;
            r.try_for_each(|b| b.map(drop)).map_err(|e| e.to_string())
        })
        .is_err();
        failed.then(|| meta.schema().field(root).name().clone())
    })
}

/// Feeds every row of `batch` (already projected to `layout`'s columns) to
/// `sink`; a rejected row is located as row `row0 + i` of `row_group` of
/// `path`.
#[allow(clippy::too_many_arguments)]
fn accept_batch(
    batch: &RecordBatch,
    layout: &Layout,
    opts: &IngestOptions,
    path: &Path,
    row_group: usize,
    row0: usize,
    sink: &mut RowSink<'_>,
    bufs: &mut Buffers,
) -> Result<(), IngestError> {
    let cols =
        BatchColumns::new(batch, layout).map_err(|(field, t)| IngestError::ParquetColumnType {
            path: path.to_path_buf(),
            field: field.name(),
            column: opts.columns.source(field).to_string(),
            data_type: t.to_string(),
            expected: Kind::of(field).expected(),
        })?;
    for i in 0..batch.num_rows() {
        sink.rows_read += 1;
        match cols.row(i, bufs) {
            Ok(row) => sink.accept(&row),
            Err(reject) => {
                let location = RowLocation::Parquet {
                    file: path,
                    row_group,
                    row: row0 + i,
                };
                sink.reject(reject, location, |out| cols.raw(i, out))?;
            }
        }
    }
    Ok(())
}

fn read_file(path: &Path, opts: &IngestOptions, sink: &mut RowSink<'_>) -> Result<(), IngestError> {
    let file = File::open(path).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let damaged = |row_group, column, message| IngestError::Parquet {
        path: path.to_path_buf(),
        row_group,
        column,
        message,
    };
    let meta = guarded(|| {
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| e.to_string())
    })
    .map_err(|m| damaged(None, None, m))?;
    let layout = resolve(path, meta.schema(), &opts.columns)?;
    let mut bufs = Buffers::default();
    for row_group in 0..meta.metadata().num_row_groups() {
        let mut batches = guarded(|| reader(&file, &meta, &layout.roots, row_group))
            .map_err(|m| damaged(Some(row_group), None, m))?;
        let mut row0 = 0;
        loop {
            let next = guarded(|| batches.next().transpose().map_err(|e| e.to_string()));
            let batch = match next {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(message) => {
                    let column = damaged_column(&file, &meta, &layout.roots, row_group);
                    return Err(damaged(Some(row_group), column, message));
                }
            };
            accept_batch(
                &batch, &layout, opts, path, row_group, row0, sink, &mut bufs,
            )?;
            row0 += batch.num_rows();
        }
    }
    Ok(())
}

/// Reads purchases from Arrow record batches already in memory (a DataFrame
/// handed over through the Arrow C data interface by the Python package):
/// the same column map, types, checks, rejects file and strict mode as a
/// Parquet file. `source` names the input in errors and in the report. The
/// whole input counts as row group 0: a rejected row is located as `<source>
/// row group 0 row <r>`, `r` counted from 0 over all the batches. A batch
/// the producer fails to deliver is an [`IngestError::Parquet`] with its
/// message. With no file bytes to hash, the report's fingerprint is the
/// SHA-256 of the accepted rows (order, customer and item ids, time,
/// quantity and price, one line each, in order): the same rows give the
/// same fingerprint, a changed row another. As a file's bytes are, the rows
/// are hashed on a second thread while they are read: each batch is handed
/// to it, and it takes the rows the checks accept.
pub fn read_record_batches<I>(
    source: &Path,
    schema: &arrow_schema::Schema,
    batches: I,
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError>
where
    I: IntoIterator<Item = Result<RecordBatch, String>>,
{
    let layout = resolve(source, schema, &opts.columns)?;
    let (to_hash, hash_queue) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| hash_accepted_rows(hash_queue, &layout));
        // Dropping the sender when reading ends (or fails) ends the hashing.
        let read = read_batches(source, batches, &layout, opts, to_hash);
        let fingerprint = hashing.join().map_err(|_| IngestError::Io {
            path: source.to_path_buf(),
            cause: std::io::Error::other("the fingerprint thread failed"),
        });
        let (log, mut report) = read?;
        report.fingerprint = fingerprint?;
        Ok((log, report))
    })
}

/// The reading half of [`read_record_batches`]: every batch goes through
/// the row checks into the log, and to `to_hash`.
fn read_batches<I>(
    source: &Path,
    batches: I,
    layout: &Layout,
    opts: &IngestOptions,
    to_hash: std::sync::mpsc::Sender<RecordBatch>,
) -> Result<(PurchaseLog, IngestReport), IngestError>
where
    I: IntoIterator<Item = Result<RecordBatch, String>>,
{
    let mut sink = RowSink::new(source, opts);
    let mut bufs = Buffers::default();
    let mut row0 = 0;
    for batch in batches {
        let batch = batch.map_err(|message| IngestError::Parquet {
            path: source.to_path_buf(),
            row_group: None,
            column: None,
            message,
        })?;
        let batch = batch
            .project(&layout.roots)
            .map_err(|e| IngestError::Parquet {
                path: source.to_path_buf(),
                row_group: None,
                column: None,
                message: e.to_string(),
            })?;
        accept_batch(&batch, layout, opts, source, 0, row0, &mut sink, &mut bufs)?;
        row0 += batch.num_rows();
        // A failed send means the hashing thread is gone; joining it says so.
        let _ = to_hash.send(batch);
    }
    sink.finish()
}

/// The fingerprint of the in-memory input (see [`read_record_batches`]):
/// the SHA-256 of one record per accepted row of the batches received, in
/// order, with the values the log stores: the order, customer and item ids
/// each as its length (`u64`) and bytes, then the time (`i64`), quantity and
/// price (`f32` bits), all little-endian. Binary rather than text: writing
/// the floats out in decimal cost as much as reading the rows. A batch whose
/// columns cannot be read ends it (the reading side reports that error).
fn hash_accepted_rows(batches: std::sync::mpsc::Receiver<RecordBatch>, layout: &Layout) -> String {
    let mut hasher = Sha256::new();
    let mut bufs = Buffers::default();
    let mut record = Vec::new();
    let mut order = String::new();
    for batch in batches {
        let Ok(cols) = BatchColumns::new(&batch, layout) else {
            break;
        };
        for i in 0..batch.num_rows() {
            let Ok(row) = cols.row(i, &mut bufs) else {
                continue;
            };
            record.clear();
            for id in [row.order_id(&mut order), row.customer, row.item] {
                record.extend_from_slice(&(id.len() as u64).to_le_bytes());
                record.extend_from_slice(id.as_bytes());
            }
            record.extend_from_slice(&row.time.to_le_bytes());
            record.extend_from_slice(&row.quantity.to_bits().to_le_bytes());
            record.extend_from_slice(&row.price.to_bits().to_le_bytes());
            hasher.update(&record);
        }
    }
    sha256_hex(hasher)
}

/// Scratch text for ids written from integers and decimals converted via text.
#[derive(Default)]
struct Buffers {
    order: String,
    customer: String,
    item: String,
    number: String,
}

/// One value as stored.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Null,
    Text(&'a str),
    /// Binary data, which should hold UTF-8 text.
    Bytes(&'a [u8]),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Decimal(i128, i8),
    Decimal256(arrow_buffer::i256, i8),
    /// Seconds since the epoch, from a timestamp.
    Secs(i64),
    /// Seconds since the epoch of a midnight, from a date.
    Day(i64),
}

/// Typed access to one column of a batch.
enum Col<'a> {
    Utf8(&'a arrow_array::StringArray),
    LargeUtf8(&'a arrow_array::LargeStringArray),
    Utf8View(&'a arrow_array::StringViewArray),
    Binary(&'a arrow_array::BinaryArray),
    LargeBinary(&'a arrow_array::LargeBinaryArray),
    BinaryView(&'a arrow_array::BinaryViewArray),
    /// Any integer type that fits an `i64`.
    Int(Box<dyn Fn(usize) -> i64 + 'a>),
    UInt64(&'a arrow_array::UInt64Array),
    F32(Box<dyn Fn(usize) -> f32 + 'a>),
    F64(&'a arrow_array::Float64Array),
    Decimal(Box<dyn Fn(usize) -> i128 + 'a>, i8),
    Decimal256(&'a arrow_array::Decimal256Array, i8),
    Secs(Box<dyn Fn(usize) -> i64 + 'a>),
    Day(Box<dyn Fn(usize) -> i64 + 'a>),
    /// Dictionary-encoded: the key of each row, and the dictionary.
    Dict(Vec<usize>, Box<Column<'a>>),
}

/// A column of a batch with its validity.
struct Column<'a> {
    nulls: Option<&'a NullBuffer>,
    col: Col<'a>,
}

fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

impl<'a> Column<'a> {
    /// `None` if the array's type is not one this module reads.
    fn new(array: &'a ArrayRef) -> Option<Column<'a>> {
        use DataType as D;
        let a = array;
        let col = match a.data_type() {
            D::Utf8 => Col::Utf8(a.as_string::<i32>()),
            D::LargeUtf8 => Col::LargeUtf8(a.as_string::<i64>()),
            D::Utf8View => Col::Utf8View(a.as_string_view()),
            D::Binary => Col::Binary(a.as_binary::<i32>()),
            D::LargeBinary => Col::LargeBinary(a.as_binary::<i64>()),
            D::BinaryView => Col::BinaryView(a.as_binary_view()),
            D::Int8 => {
                let v = a.as_primitive::<Int8Type>();
                Col::Int(Box::new(move |i| i64::from(v.value(i))))
            }
            D::Int16 => {
                let v = a.as_primitive::<Int16Type>();
                Col::Int(Box::new(move |i| i64::from(v.value(i))))
            }
            D::Int32 => {
                let v = a.as_primitive::<Int32Type>();
                Col::Int(Box::new(move |i| i64::from(v.value(i))))
            }
            D::Int64 => {
                let v = a.as_primitive::<Int64Type>();
                Col::Int(Box::new(move |i| v.value(i)))
            }
            D::UInt8 => {
                let v = a.as_primitive::<UInt8Type>();
                Col::Int(Box::new(move |i| i64::from(v.value(i))))
            }
            D::UInt16 => {
                let v = a.as_primitive::<UInt16Type>();
                Col::Int(Box::new(move |i| i64::from(v.value(i))))
            }
            D::UInt32 => {
                let v = a.as_primitive::<UInt32Type>();
                Col::Int(Box::new(move |i| i64::from(v.value(i))))
            }
            D::UInt64 => Col::UInt64(a.as_primitive::<UInt64Type>()),
            D::Float16 => {
                let v = a.as_primitive::<Float16Type>();
                Col::F32(Box::new(move |i| v.value(i).to_f32()))
            }
            D::Float32 => {
                let v = a.as_primitive::<Float32Type>();
                Col::F32(Box::new(move |i| v.value(i)))
            }
            D::Float64 => Col::F64(a.as_primitive::<Float64Type>()),
            D::Decimal32(_, s) => {
                let v = a.as_primitive::<Decimal32Type>();
                Col::Decimal(Box::new(move |i| i128::from(v.value(i))), *s)
            }
            D::Decimal64(_, s) => {
                let v = a.as_primitive::<Decimal64Type>();
                Col::Decimal(Box::new(move |i| i128::from(v.value(i))), *s)
            }
            D::Decimal128(_, s) => {
                let v = a.as_primitive::<Decimal128Type>();
                Col::Decimal(Box::new(move |i| v.value(i)), *s)
            }
            D::Decimal256(_, s) => Col::Decimal256(a.as_primitive::<Decimal256Type>(), *s),
            D::Timestamp(unit, _) => {
                let d = per_second(*unit);
                let raw: Box<dyn Fn(usize) -> i64 + 'a> = match unit {
                    TimeUnit::Second => {
                        let v = a.as_primitive::<TimestampSecondType>();
                        Box::new(move |i| v.value(i))
                    }
                    TimeUnit::Millisecond => {
                        let v = a.as_primitive::<TimestampMillisecondType>();
                        Box::new(move |i| v.value(i))
                    }
                    TimeUnit::Microsecond => {
                        let v = a.as_primitive::<TimestampMicrosecondType>();
                        Box::new(move |i| v.value(i))
                    }
                    TimeUnit::Nanosecond => {
                        let v = a.as_primitive::<TimestampNanosecondType>();
                        Box::new(move |i| v.value(i))
                    }
                };
                Col::Secs(Box::new(move |i| raw(i).div_euclid(d)))
            }
            D::Date32 => {
                let v = a.as_primitive::<Date32Type>();
                Col::Day(Box::new(move |i| i64::from(v.value(i)) * 86_400))
            }
            D::Date64 => {
                let v = a.as_primitive::<Date64Type>();
                Col::Day(Box::new(move |i| v.value(i).div_euclid(1_000)))
            }
            D::Dictionary(..) => {
                let dict = a.as_any_dictionary();
                let values = Column::new(dict.values())?;
                Col::Dict(dict.normalized_keys(), Box::new(values))
            }
            _ => return None,
        };
        Some(Column {
            nulls: a.nulls(),
            col,
        })
    }

    fn get(&self, i: usize) -> Val<'_> {
        if self.nulls.is_some_and(|n| n.is_null(i)) {
            return Val::Null;
        }
        match &self.col {
            Col::Utf8(a) => Val::Text(a.value(i)),
            Col::LargeUtf8(a) => Val::Text(a.value(i)),
            Col::Utf8View(a) => Val::Text(a.value(i)),
            Col::Binary(a) => Val::Bytes(a.value(i)),
            Col::LargeBinary(a) => Val::Bytes(a.value(i)),
            Col::BinaryView(a) => Val::Bytes(a.value(i)),
            Col::Int(f) => Val::Int(f(i)),
            Col::UInt64(a) => Val::UInt(a.value(i)),
            Col::F32(f) => Val::F32(f(i)),
            Col::F64(a) => Val::F64(a.value(i)),
            Col::Decimal(f, s) => Val::Decimal(f(i), *s),
            Col::Decimal256(a, s) => Val::Decimal256(a.value(i), *s),
            Col::Secs(f) => Val::Secs(f(i)),
            Col::Day(f) => Val::Day(f(i)),
            Col::Dict(keys, values) => match keys.get(i) {
                Some(&k) => values.get(k),
                None => Val::Null,
            },
        }
    }
}

/// Writes `digits` (an integer's decimal digits, maybe with a `-`) scaled by
/// `10^-scale` as decimal text.
fn write_scaled(out: &mut String, digits: &str, scale: i8) {
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    if neg {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(digits);
        for _ in 0..scale.unsigned_abs() {
            out.push('0');
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if digits.len() <= scale {
        out.push_str("0.");
        for _ in digits.len()..scale {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

/// Appends a value as text (for the rejects file and error messages).
fn render(v: Val<'_>, out: &mut String) {
    match v {
        Val::Null => {}
        Val::Text(s) => out.push_str(s),
        Val::Bytes(b) => out.push_str(&String::from_utf8_lossy(b)),
        Val::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Val::UInt(n) => {
            let _ = write!(out, "{n}");
        }
        Val::F32(x) => {
            let _ = write!(out, "{x}");
        }
        Val::F64(x) => {
            let _ = write!(out, "{x}");
        }
        Val::Decimal(n, s) => write_scaled(out, &n.to_string(), s),
        Val::Decimal256(n, s) => write_scaled(out, &n.to_string(), s),
        Val::Secs(t) => out.push_str(&format_timestamp(t)),
        Val::Day(t) => out.push_str(&format_date(t)),
    }
}

fn rendered(v: Val<'_>) -> String {
    let mut s = String::new();
    render(v, &mut s);
    s
}

/// Text of a string or binary value (trimmed, as CSV fields are); an
/// integer's decimal digits, written to `buf`. `Ok(None)` for a null.
fn text<'s>(v: Val<'s>, field: Field, buf: &'s mut String) -> Result<Option<&'s str>, Reject> {
    match v {
        Val::Null => Ok(None),
        Val::Text(s) => Ok(Some(s.trim())),
        Val::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Ok(Some(s.trim())),
            Err(_) => Err(Reject {
                reason: RejectReason::InvalidUtf8,
                field: Some(field),
                value: Some(String::from_utf8_lossy(b).into_owned()),
            }),
        },
        other => {
            buf.clear();
            render(other, buf);
            Ok(Some(buf.as_str()))
        }
    }
}

/// A number as `f32`, converted as CSV text would be: `Ok(None)` for a null
/// or empty text, `Err(text)` when it does not parse.
fn number(v: Val<'_>, field: Field, buf: &mut String) -> Result<Option<f32>, Reject> {
    let parse = |s: &str| {
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse::<f32>().map(Some).map_err(|_| s.to_string())
        }
    };
    let bad = |text: String| Reject {
        reason: if field == Field::Price {
            RejectReason::BadPrice
        } else {
            RejectReason::BadQuantity
        },
        field: Some(field),
        value: Some(text),
    };
    match v {
        Val::Null => Ok(None),
        Val::Int(n) => Ok(Some(n as f32)),
        Val::UInt(n) => Ok(Some(n as f32)),
        Val::F32(x) => Ok(Some(x)),
        Val::F64(x) => Ok(Some(x as f32)),
        // Decimals and text go through the same parse as CSV text.
        Val::Decimal(..) | Val::Decimal256(..) => {
            buf.clear();
            render(v, buf);
            parse(buf).map_err(bad)
        }
        Val::Text(_) | Val::Bytes(_) => {
            let s = text(v, field, buf)?.unwrap_or_default();
            parse(s).map_err(bad)
        }
        Val::Secs(_) | Val::Day(_) => Err(bad(rendered(v))),
    }
}

/// The columns of the fields in one batch.
struct BatchColumns<'a> {
    order: Option<Column<'a>>,
    customer: Column<'a>,
    item: Column<'a>,
    time: Column<'a>,
    quantity: Option<Column<'a>>,
    price: Option<Column<'a>>,
}

impl<'a> BatchColumns<'a> {
    fn new(batch: &'a RecordBatch, layout: &Layout) -> Result<Self, (Field, DataType)> {
        let column = |field: Field| -> Result<Option<Column<'a>>, (Field, DataType)> {
            let k = Field::ALL
                .iter()
                .position(|&f| f == field)
                .unwrap_or_default();
            let Some(c) = layout.batch_col[k] else {
                return Ok(None);
            };
            let array = batch.column(c);
            Column::new(array)
                .map(Some)
                .ok_or_else(|| (field, array.data_type().clone()))
        };
        // `resolve` made sure the required fields have a column.
        let required = |field: Field| column(field)?.ok_or((field, DataType::Null));
        Ok(BatchColumns {
            order: column(Field::OrderId)?,
            customer: required(Field::CustomerId)?,
            item: required(Field::ItemId)?,
            time: required(Field::Timestamp)?,
            quantity: column(Field::Quantity)?,
            price: column(Field::Price)?,
        })
    }

    /// Row `i` as CSV would have it, or why it is rejected (the same checks
    /// in the same order as a CSV row).
    fn row<'s>(&'s self, i: usize, bufs: &'s mut Buffers) -> Result<Row<'s>, Reject> {
        let customer = text(self.customer.get(i), Field::CustomerId, &mut bufs.customer)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Reject::new(RejectReason::MissingCustomer, Field::CustomerId, ""))?;
        let item = text(self.item.get(i), Field::ItemId, &mut bufs.item)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Reject::new(RejectReason::MissingItem, Field::ItemId, ""))?;
        let time = match self.time.get(i) {
            Val::Secs(t) | Val::Day(t) => t,
            Val::Null => return Err(Reject::null(RejectReason::BadTimestamp, Field::Timestamp)),
            v => {
                let s = text(v, Field::Timestamp, &mut bufs.number)?.unwrap_or_default();
                parse_timestamp(s)
                    .ok_or_else(|| Reject::new(RejectReason::BadTimestamp, Field::Timestamp, s))?
            }
        };
        let quantity = match &self.quantity {
            None => 1.0,
            Some(c) => {
                let v = c.get(i);
                let q = number(v, Field::Quantity, &mut bufs.number)?
                    .filter(|q| q.is_finite())
                    .ok_or_else(|| match v {
                        Val::Null => Reject::null(RejectReason::BadQuantity, Field::Quantity),
                        v => Reject::new(RejectReason::BadQuantity, Field::Quantity, &rendered(v)),
                    })?;
                if q == 0.0 {
                    return Err(Reject::new(
                        RejectReason::ZeroQuantity,
                        Field::Quantity,
                        &rendered(v),
                    ));
                }
                q
            }
        };
        let price = match &self.price {
            None => f32::NAN,
            Some(c) => {
                let v = c.get(i);
                match number(v, Field::Price, &mut bufs.number)? {
                    None => f32::NAN,
                    Some(p) if p.is_finite() && p >= 0.0 => p,
                    Some(_) => {
                        return Err(Reject::new(
                            RejectReason::BadPrice,
                            Field::Price,
                            &rendered(v),
                        ));
                    }
                }
            }
        };
        let order = match &self.order {
            None => None,
            Some(c) => text(c.get(i), Field::OrderId, &mut bufs.order)?.filter(|o| !o.is_empty()),
        };
        Ok(Row {
            order,
            customer,
            item,
            time,
            quantity,
            price,
        })
    }

    /// The mapped fields of row `i`, in canonical order, as CSV text (null: empty).
    fn raw(&self, i: usize, out: &mut String) {
        let cols = [
            self.order.as_ref(),
            Some(&self.customer),
            Some(&self.item),
            Some(&self.time),
            self.quantity.as_ref(),
            self.price.as_ref(),
        ];
        let mut value = String::new();
        for (k, c) in cols.into_iter().flatten().enumerate() {
            if k > 0 {
                out.push(',');
            }
            value.clear();
            render(c.get(i), &mut value);
            push_csv_field(out, &value);
        }
    }
}
