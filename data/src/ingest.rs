//! Streaming ingestion of purchase histories from CSV, plain or gzip: the
//! row checks, rejects file and report that [`crate::parquet`] shares.
//! [`crate::input`] picks the reader for a path.
//!
//! The canonical header is `order_id,customer_id,item_id,timestamp,quantity,price`,
//! columns in any order, extra columns ignored; `order_id`, `quantity` (default 1)
//! and `price` (default `NaN`) may be absent. Header names match exactly after
//! trimming spaces (and a UTF-8 byte-order mark). Other schemas are read through
//! a [`ColumnMap`]; a field mapped explicitly must exist, even an optional one.
//!
//! Without an `order_id` column (or with an empty order id) the rows of one
//! customer at one timestamp form one order, keyed `{customer}@{unix seconds}`.
//!
//! # Compression
//! A file is decompressed when it starts with the gzip magic bytes, whatever
//! its name. A file named `*.gz` that does not start with them is refused
//! ([`IngestError::NotGzip`]): it is truncated or mislabelled, and reading it
//! as text would only turn it into a wall of rejects.
//!
//! # Bad rows
//! Nothing is dropped silently. A row that cannot be used (no customer or
//! item, a timestamp or number that does not parse, a negative or non-finite
//! price, the wrong number of columns, invalid UTF-8, a zero quantity) is
//! skipped, counted by [`RejectReason`], and written with its 1-based line
//! number (of the row's first byte; lines end with `\r\n`, `\n` or a lone
//! `\r`, inside quotes too), reason, field and raw text to the rejects file
//! ([`IngestOptions::rejects_path`], CSV `line,reason,field,raw`; created
//! at the first rejected row; a run without one removes a rejects file an
//! earlier run left there). With
//! [`IngestOptions::strict`] the first such row is an [`IngestError::BadRow`]
//! naming the file, line and field. A file with no usable row at all is an
//! error ([`IngestError::NoRows`]).
//!
//! # Returns
//! Negative quantities (returns and cancellations) are kept in the log as
//! negative quantities and counted in [`IngestReport::returns`] (rows).
//! [`crate::matrix::InteractionMatrix`] nets them against the purchases of the
//! same (customer, item), so a returned item never becomes a preference.
//!
//! # Implementation notes
//! The file is read record by record with `csv::ByteRecord`; nothing holds
//! the file as text. Known ids are looked up before they are allocated. The
//! [`IngestReport::fingerprint`] is hashed from the bytes as they stream past
//! (the compressed bytes for a gzip file), then from whatever follows the last
//! record, so it is the SHA-256 of the whole file without a second read.

use crate::log::PurchaseLog;
use crate::timestamp::{format_timestamp, parse_timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The canonical fields of a purchase row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    OrderId,
    CustomerId,
    ItemId,
    Timestamp,
    Quantity,
    Price,
}

impl Field {
    /// Every field, in canonical column order.
    pub const ALL: [Field; 6] = [
        Field::OrderId,
        Field::CustomerId,
        Field::ItemId,
        Field::Timestamp,
        Field::Quantity,
        Field::Price,
    ];

    /// The canonical column name.
    pub fn name(self) -> &'static str {
        match self {
            Field::OrderId => "order_id",
            Field::CustomerId => "customer_id",
            Field::ItemId => "item_id",
            Field::Timestamp => "timestamp",
            Field::Quantity => "quantity",
            Field::Price => "price",
        }
    }

    /// The field whose canonical name is `name`.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether every input must have this column.
    pub fn required(self) -> bool {
        matches!(self, Field::CustomerId | Field::ItemId | Field::Timestamp)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which source column holds each canonical field; unmapped fields use their canonical name.
///
/// Parsed from `field=Header,field=Header,...`, for example
/// `order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    map: BTreeMap<Field, String>,
}

impl ColumnMap {
    /// The source header name for `field`.
    pub fn source(&self, field: Field) -> &str {
        self.map.get(&field).map_or(field.name(), String::as_str)
    }

    /// True if `field` was mapped explicitly.
    pub fn is_mapped(&self, field: Field) -> bool {
        self.map.contains_key(&field)
    }

    /// Maps `field` to the source column `header`, replacing any previous mapping.
    pub fn set(&mut self, field: Field, header: impl Into<String>) {
        self.map.insert(field, header.into());
    }
}

/// A column map that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnMapError {
    #[error("'{part}' is not of the form field=Header")]
    MissingEquals { part: String },
    #[error(
        "unknown field '{field}' (fields: order_id, customer_id, item_id, timestamp, quantity, price)"
    )]
    UnknownField { field: String },
    #[error("field '{field}' is mapped twice")]
    Duplicate { field: String },
    #[error("field '{field}' has an empty header name")]
    EmptyHeader { field: String },
}

impl FromStr for ColumnMap {
    type Err = ColumnMapError;

    /// Parses `field=Header,field=Header,...`; spaces around names are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, header) =
                part.split_once('=')
                    .ok_or_else(|| ColumnMapError::MissingEquals {
                        part: part.to_string(),
                    })?;
            let (field, header) = (field.trim(), header.trim());
            let f = Field::from_name(field).ok_or_else(|| ColumnMapError::UnknownField {
                field: field.to_string(),
            })?;
            if header.is_empty() {
                return Err(ColumnMapError::EmptyHeader {
                    field: field.to_string(),
                });
            }
            if map.insert(f, header.to_string()).is_some() {
                return Err(ColumnMapError::Duplicate {
                    field: field.to_string(),
                });
            }
        }
        Ok(ColumnMap { map })
    }
}

/// How to read a purchase history.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Fail on the first bad row instead of skipping it.
    pub strict: bool,
    /// Where skipped rows are written (`line,reason,field,raw`); `None` writes none.
    pub rejects_path: Option<PathBuf>,
    /// Source column of each field.
    pub columns: ColumnMap,
}

/// Why a row was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The customer id is empty.
    MissingCustomer,
    /// The item id is empty.
    MissingItem,
    /// The timestamp does not parse (see [`crate::timestamp::parse_timestamp`]).
    BadTimestamp,
    /// The quantity is not a finite number.
    BadQuantity,
    /// The quantity is zero: neither a purchase nor a return.
    ZeroQuantity,
    /// The price is not a finite, non-negative number (an empty price is `NaN`, not an error).
    BadPrice,
    /// The row has a different number of columns than the header.
    WrongColumnCount,
    /// A field the row needs is not valid UTF-8.
    InvalidUtf8,
}

impl RejectReason {
    /// Every reason.
    pub const ALL: [RejectReason; 8] = [
        RejectReason::MissingCustomer,
        RejectReason::MissingItem,
        RejectReason::BadTimestamp,
        RejectReason::BadQuantity,
        RejectReason::ZeroQuantity,
        RejectReason::BadPrice,
        RejectReason::WrongColumnCount,
        RejectReason::InvalidUtf8,
    ];

    /// The snake_case name used in reports and the rejects file.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MissingCustomer => "missing_customer",
            RejectReason::MissingItem => "missing_item",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::BadQuantity => "bad_quantity",
            RejectReason::ZeroQuantity => "zero_quantity",
            RejectReason::BadPrice => "bad_price",
            RejectReason::WrongColumnCount => "wrong_column_count",
            RejectReason::InvalidUtf8 => "invalid_utf8",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of a [`IngestError::BadRow`] message after `file:line: `.
fn describe_bad_row(
    field: &str,
    column: Option<&str>,
    value: &str,
    reason: RejectReason,
) -> String {
    let what = match reason {
        RejectReason::MissingCustomer => "empty, a customer id is required".to_string(),
        RejectReason::MissingItem => "empty, an item id is required".to_string(),
        RejectReason::BadTimestamp => format!("cannot parse {value:?} as a timestamp"),
        RejectReason::BadQuantity => format!("cannot parse {value:?} as a finite number"),
        RejectReason::ZeroQuantity => format!("quantity {value:?} is zero"),
        RejectReason::BadPrice => {
            format!("cannot parse {value:?} as a finite, non-negative price")
        }
        RejectReason::WrongColumnCount => return value.to_string(),
        RejectReason::InvalidUtf8 => format!("{value:?} is not valid UTF-8"),
    };
    match column {
        Some(c) => format!("field '{field}' (column '{c}'): {what}"),
        None => format!("field '{field}': {what}"),
    }
}

/// The part of a [`IngestError::BadParquetRow`] message after the row's place.
fn describe_bad_parquet_row(
    field: &str,
    column: Option<&str>,
    value: Option<&str>,
    reason: RejectReason,
) -> String {
    match value {
        Some(v) => describe_bad_row(field, column, v, reason),
        None => match column {
            Some(c) => format!("field '{field}' (column '{c}'): null, a value is required"),
            None => format!("field '{field}': null, a value is required"),
        },
    }
}

/// ` row group N` and/or ` column 'C'`, when known.
fn parquet_place(row_group: &Option<usize>, column: &Option<String>) -> String {
    let mut s = String::new();
    if let Some(g) = row_group {
        let _ = write!(s, ": row group {g}");
    }
    if let Some(c) = column {
        let _ = write!(
            s,
            "{} column '{c}'",
            if row_group.is_some() { "," } else { ":" }
        );
    }
    s
}

/// Why a history (or catalog) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file could not be opened or read (a corrupt gzip stream included).
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A `*.gz` file without the gzip magic bytes.
    #[error("{}: named .gz but does not start with the gzip magic bytes", path.display())]
    NotGzip { path: PathBuf },
    /// Not even a header line.
    #[error("{}: empty file, expected a header line", path.display())]
    EmptyFile { path: PathBuf },
    /// The CSV reader itself failed (not a row that parsed to bad values).
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// The header has no column for a required (or explicitly mapped) field.
    #[error("{}: no column '{column}' for field {field} (columns found: {})", path.display(), found.join(", "))]
    MissingColumn {
        path: PathBuf,
        field: &'static str,
        column: String,
        found: Vec<String>,
    },
    /// An unusable row, in strict mode (and any bad catalog row).
    #[error("{}:{line}: {}", path.display(), describe_bad_row(field, column.as_deref(), value, *reason))]
    BadRow {
        path: PathBuf,
        /// 1-based line number where the row starts.
        line: u64,
        /// Canonical field name, or `row` for a row-level problem.
        field: &'static str,
        /// The source column, when a [`ColumnMap`] renamed the field.
        column: Option<String>,
        value: String,
        reason: RejectReason,
    },
    /// A catalog value outside its allowed set (e.g. `available`).
    #[error("{}:{line}: field '{field}': {value:?} is not {expected}", path.display())]
    InvalidValue {
        path: PathBuf,
        line: u64,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A catalog lists an item twice.
    #[error("{}:{line}: item_id {item_id:?} already appears on line {first_line}", path.display())]
    DuplicateItem {
        path: PathBuf,
        line: u64,
        item_id: String,
        first_line: u64,
    },
    /// The rejects file could not be created or written.
    #[error("rejects file {}: {cause}", path.display())]
    RejectsFile {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// An unusable row of a Parquet file, in strict mode. `row_group` and
    /// `row` (within the row group) count from 0.
    #[error("{}: row group {row_group}, row {row}: {}", path.display(), describe_bad_parquet_row(field, column.as_deref(), value.as_deref(), *reason))]
    BadParquetRow {
        /// The Parquet file (a part file, for a directory input).
        path: PathBuf,
        row_group: usize,
        row: usize,
        /// Canonical field name.
        field: &'static str,
        /// The source column, when a [`ColumnMap`] renamed the field.
        column: Option<String>,
        /// The offending value as text; `None` for a null.
        value: Option<String>,
        reason: RejectReason,
    },
    /// A Parquet file that cannot be decoded: not Parquet at all, a damaged
    /// footer (no `row_group`), or a damaged page in a row group.
    #[error("{}{}: cannot read Parquet data: {message}", path.display(), parquet_place(row_group, column))]
    Parquet {
        path: PathBuf,
        row_group: Option<usize>,
        /// The column whose data is damaged, when it could be narrowed down.
        column: Option<String>,
        message: String,
    },
    /// A Parquet column whose type cannot hold the field it is mapped to.
    #[error("{}: column '{column}' (field {field}) has type {data_type}, expected {expected}", path.display())]
    ParquetColumnType {
        path: PathBuf,
        field: &'static str,
        column: String,
        data_type: String,
        expected: &'static str,
    },
    /// A directory given as input that holds no Parquet part file.
    #[error("{}: a directory without Parquet part files (*.parquet)", path.display())]
    NoParquetParts { path: PathBuf },
    /// An entry of a Parquet input directory that is not a part file.
    #[error("{}: '{entry}' is {what}; a Parquet input directory holds part files (*.parquet), and files whose names start with '.' or '_' or end in .crc, which are skipped", path.display())]
    ParquetDirEntry {
        path: PathBuf,
        entry: String,
        what: &'static str,
    },
    /// Parquet input to a build without Parquet support.
    #[error("{}: Parquet input, but this build of encore-data has no Parquet support (feature `parquet`)", path.display())]
    ParquetUnsupported { path: PathBuf },
    /// The file has a header but not one usable row.
    #[error("{}: no usable purchase ({rejected} rows rejected)", path.display())]
    NoRows { path: PathBuf, rejected: u64 },
}

impl IngestError {
    /// Maps a `csv` error: I/O errors (including corrupt gzip) become [`IngestError::Io`].
    pub(crate) fn from_csv(path: &Path, e: csv::Error) -> IngestError {
        let line = e.position().map_or(0, |p| p.line());
        let message = e.to_string();
        match e.into_kind() {
            csv::ErrorKind::Io(source) => IngestError::Io {
                path: path.to_path_buf(),
                cause: source,
            },
            _ => IngestError::Csv {
                path: path.to_path_buf(),
                line,
                message,
            },
        }
    }
}

/// What ingestion read, kept and skipped.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub path: PathBuf,
    /// Data rows read (the header excluded).
    pub rows_read: u64,
    pub rows_accepted: u64,
    /// Skipped rows by reason; reasons that never occurred are absent.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Accepted rows with a negative quantity (returns, cancellations).
    pub returns: u64,
    pub customers: usize,
    pub items: usize,
    pub orders: usize,
    /// Earliest purchase, RFC 3339.
    pub first_time: Option<String>,
    /// Latest purchase, RFC 3339.
    pub last_time: Option<String>,
    /// `sha256:<hex>` of the bytes as stored (compressed for a gzip file; for
    /// a directory of Parquet parts, see [`crate::parquet::fingerprint_parts`]).
    pub fingerprint: String,
    /// Where rejected rows were written; `None` when no row was rejected or
    /// no rejects file was asked for.
    pub rejects_path: Option<PathBuf>,
}

impl IngestReport {
    /// Total rows skipped.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// A human-readable multi-line summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "read {}: {} rows, {} accepted, {} rejected",
            self.path.display(),
            self.rows_read,
            self.rows_accepted,
            self.rejected_total()
        );
        for (reason, n) in &self.rejected {
            let _ = writeln!(s, "  rejected {:<20} {n:>9}", reason.as_str());
        }
        if self.rejected_total() > 0 {
            match &self.rejects_path {
                Some(p) => {
                    let _ = writeln!(s, "  rejected rows written to {}", p.display());
                }
                None => s.push_str("  rejected rows not written (no rejects file asked for)\n"),
            }
        }
        let _ = writeln!(
            s,
            "  {} returns/cancellations kept as negative quantities (netted against purchases)",
            self.returns
        );
        let _ = writeln!(
            s,
            "  {} customers, {} items, {} orders, {} .. {}",
            self.customers,
            self.items,
            self.orders,
            self.first_time.as_deref().unwrap_or("-"),
            self.last_time.as_deref().unwrap_or("-")
        );
        s.push_str("  ");
        s.push_str(&self.fingerprint);
        s
    }
}

/// A reader that hashes every byte read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Hashes the rest of the input and returns `sha256:<hex>`.
    pub(crate) fn finish(mut self) -> std::io::Result<String> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok(sha256_hex(self.hasher))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `sha256:<hex>` of what `hasher` has seen.
pub(crate) fn sha256_hex(hasher: Sha256) -> String {
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in hasher.finalize() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A reader that notes where the line breaks are, for line numbers.
///
/// `csv` places a record where the previous one ended, which is before the
/// `\n` of a `\r\n` and before any blank lines, and counts `\n` bytes only: a
/// Windows file would report every row one line early and a file with bare
/// `\r` line ends would report line 1 throughout. This reader notes every
/// line break (`\r\n`, `\n` or a lone `\r`, quoted or not) as the bytes stream
/// past, so that [`LineBreaks::line_at`] can name the line a record's first
/// byte is on. It keeps only the breaks the CSV reader has read ahead.
pub(crate) struct LineBreaks<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// The last byte read was a `\r`, whose break may still grow into a `\r\n`.
    pending_cr: bool,
    /// `(start, end)` offsets of the breaks past the last record asked about.
    breaks: VecDeque<(u64, u64)>,
    /// Breaks that end before the last record asked about.
    passed: u64,
}

impl<R: Read> LineBreaks<R> {
    pub(crate) fn new(inner: R) -> Self {
        LineBreaks {
            inner,
            offset: 0,
            pending_cr: false,
            breaks: VecDeque::new(),
            passed: 0,
        }
    }

    /// The 1-based line of the record `csv` positions at byte `pos`: the
    /// breaks before `pos`, and those that follow it without a byte between
    /// (the rest of a `\r\n`, blank lines), come before the record's first byte.
    /// `pos` must not decrease from one call to the next.
    pub(crate) fn line_at(&mut self, pos: u64) -> u64 {
        while let Some(&(_, end)) = self.breaks.front() {
            if end > pos {
                break;
            }
            self.passed += 1;
            self.breaks.pop_front();
        }
        let (mut line, mut cursor) = (1 + self.passed, pos);
        for &(start, end) in &self.breaks {
            if start > cursor {
                break;
            }
            line += 1;
            cursor = end;
        }
        line
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for LineBreaks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.pending_cr {
            self.breaks.push_back((self.offset - 1, self.offset));
            self.pending_cr = false;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            let at = self.offset + i as u64;
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.breaks.push_back((at - 1, at + 1));
                    continue;
                }
                self.breaks.push_back((at - 1, at));
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.breaks.push_back((at, at + 1)),
                _ => {}
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// True if `path`'s extension is `parquet` (any case).
pub(crate) fn has_parquet_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// The first bytes of every Parquet file.
pub(crate) const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// Reads a purchase history from any reader of CSV text; `source` names it in
/// errors and the report. The fingerprint is that of the bytes the reader yields.
pub fn read_purchases_from_reader<R: Read>(
    reader: R,
    source: &Path,
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError> {
    let (log, mut report, hashing) = ingest(HashingReader::new(reader), source, opts)?;
    report.fingerprint = hashing.finish().map_err(|source_err| IngestError::Io {
        path: source.to_path_buf(),
        cause: source_err,
    })?;
    Ok((log, report))
}

/// The rejects file, when one was asked for.
struct Rejects {
    path: PathBuf,
    out: csv::Writer<BufWriter<File>>,
    raw: String,
}

/// First line of a rejects file.
const REJECTS_HEADER: [&str; 4] = ["line", "reason", "field", "raw"];

impl Rejects {
    /// Removes the rejects file an earlier run left at `path`, so that a run
    /// that rejected nothing does not leave one that says otherwise. Only a
    /// file that starts with the rejects header is removed: anything else at
    /// that path is not ours to delete.
    fn remove_stale(path: &Path) -> Result<(), IngestError> {
        let Ok(file) = File::open(path) else {
            return Ok(());
        };
        let mut first = String::new();
        let ours = std::io::BufRead::read_line(&mut std::io::BufReader::new(file), &mut first)
            .is_ok_and(|_| first.trim_end() == REJECTS_HEADER.join(","));
        if ours {
            std::fs::remove_file(path).map_err(|source| IngestError::RejectsFile {
                path: path.to_path_buf(),
                cause: source,
            })?;
        }
        Ok(())
    }

    fn create(path: &Path) -> Result<Self, IngestError> {
        let err = |source| IngestError::RejectsFile {
            path: path.to_path_buf(),
            cause: source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = File::create(path).map_err(err)?;
        let mut out = csv::Writer::from_writer(BufWriter::new(file));
        out.write_record(REJECTS_HEADER)
            .map_err(|e| err(e.into()))?;
        Ok(Rejects {
            path: path.to_path_buf(),
            out,
            raw: String::new(),
        })
    }

    fn err(&self, source: std::io::Error) -> IngestError {
        IngestError::RejectsFile {
            path: self.path.clone(),
            cause: source,
        }
    }

    /// Writes one rejected row: where it is (a line number, or a Parquet
    /// file, row group and row), why, which field, and its raw text.
    fn write(
        &mut self,
        location: &str,
        reason: RejectReason,
        field: &str,
        raw: impl FnOnce(&mut String),
    ) -> Result<(), IngestError> {
        self.raw.clear();
        raw(&mut self.raw);
        self.out
            .write_record([
                location.as_bytes(),
                reason.as_str().as_bytes(),
                field.as_bytes(),
                self.raw.as_bytes(),
            ])
            .map_err(|e| self.err(e.into()))
    }

    fn finish(mut self) -> Result<(), IngestError> {
        self.out.flush().map_err(|e| self.err(e))
    }
}

/// Appends `field` to `out` as one CSV field, quoted when it must be.
pub(crate) fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// A record re-quoted into one line of CSV text.
fn record_text(record: &csv::ByteRecord, out: &mut String) {
    for (k, f) in record.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        push_csv_field(out, &String::from_utf8_lossy(f));
    }
}

/// Where a rejected row is, for the rejects file and strict errors.
pub(crate) enum RowLocation<'p> {
    /// 1-based line of a CSV file where the row starts.
    Line(u64),
    /// A row of a Parquet file: 0-based row group, and 0-based row within it.
    #[cfg_attr(not(feature = "parquet"), allow(dead_code))]
    Parquet {
        file: &'p Path,
        row_group: usize,
        row: usize,
    },
}

/// Turns the rows of any source (CSV records, Parquet batches) into the
/// purchase log and report: one row is either pushed or rejected here, so
/// every source counts, records and refuses rows the same way.
pub(crate) struct RowSink<'o> {
    opts: &'o IngestOptions,
    source: &'o Path,
    log: PurchaseLog,
    rejected: BTreeMap<RejectReason, u64>,
    /// Rows seen, accepted or not; the source counts them.
    pub(crate) rows_read: u64,
    returns: u64,
    order_key: String,
    location: String,
    /// Created at the first rejected row: a clean file leaves no rejects file behind.
    rejects: Option<Rejects>,
}

impl<'o> RowSink<'o> {
    pub(crate) fn new(source: &'o Path, opts: &'o IngestOptions) -> Self {
        RowSink {
            opts,
            source,
            log: PurchaseLog::default(),
            rejected: BTreeMap::new(),
            rows_read: 0,
            returns: 0,
            order_key: String::new(),
            location: String::new(),
            rejects: None,
        }
    }

    /// Adds a usable row to the log.
    pub(crate) fn accept(&mut self, row: &Row<'_>) {
        let log = &mut self.log;
        // `IdMap::get_or_insert` looks the id up first: known ids allocate nothing.
        let customer = log.customers.get_or_insert(row.customer);
        let item = log.items.get_or_insert(row.item);
        let order = log.orders.get_or_insert(row.order_id(&mut self.order_key));
        if row.quantity < 0.0 {
            self.returns += 1;
        }
        log.purchases.push(crate::log::Purchase {
            order: crate::ids::OrderIdx(order),
            customer: crate::ids::CustomerIdx(customer),
            item: crate::ids::ItemIdx(item),
            time: row.time,
            quantity: row.quantity,
            price: row.price,
        });
    }

    /// Counts and records an unusable row; in strict mode, the error to stop with.
    /// `raw` writes the row's text for the rejects file.
    pub(crate) fn reject(
        &mut self,
        reject: Reject,
        location: RowLocation<'_>,
        raw: impl FnOnce(&mut String),
    ) -> Result<(), IngestError> {
        let Reject {
            reason,
            field,
            value,
        } = reject;
        let field_name = field.map_or("row", Field::name);
        if self.opts.strict {
            let column = field
                .filter(|&f| self.opts.columns.source(f) != f.name())
                .map(|f| self.opts.columns.source(f).to_string());
            return Err(match location {
                RowLocation::Line(line) => IngestError::BadRow {
                    path: self.source.to_path_buf(),
                    line,
                    field: field_name,
                    column,
                    value: value.unwrap_or_default(),
                    reason,
                },
                RowLocation::Parquet {
                    file,
                    row_group,
                    row,
                } => IngestError::BadParquetRow {
                    path: file.to_path_buf(),
                    row_group,
                    row,
                    field: field_name,
                    column,
                    value,
                    reason,
                },
            });
        }
        *self.rejected.entry(reason).or_default() += 1;
        if let Some(path) = &self.opts.rejects_path {
            if self.rejects.is_none() {
                self.rejects = Some(Rejects::create(path)?);
            }
            self.location.clear();
            match location {
                RowLocation::Line(line) => {
                    let _ = write!(self.location, "{line}");
                }
                RowLocation::Parquet {
                    file,
                    row_group,
                    row,
                } => {
                    let _ = write!(
                        self.location,
                        "{} row group {row_group} row {row}",
                        file.display()
                    );
                }
            }
            if let Some(r) = self.rejects.as_mut() {
                r.write(&self.location, reason, field_name, raw)?;
            }
        }
        Ok(())
    }

    /// The log and its report (without a fingerprint, which the source adds).
    pub(crate) fn finish(self) -> Result<(PurchaseLog, IngestReport), IngestError> {
        let rejects_path = match self.rejects {
            Some(r) => {
                r.finish()?;
                self.opts.rejects_path.clone()
            }
            None => {
                if let Some(path) = &self.opts.rejects_path {
                    Rejects::remove_stale(path)?;
                }
                None
            }
        };
        let log = self.log;
        let rejected_total: u64 = self.rejected.values().sum();
        if log.purchases.is_empty() {
            return Err(IngestError::NoRows {
                path: self.source.to_path_buf(),
                rejected: rejected_total,
            });
        }
        let range = log.time_range();
        let report = IngestReport {
            path: self.source.to_path_buf(),
            rows_read: self.rows_read,
            rows_accepted: log.purchases.len() as u64,
            rejected: self.rejected,
            returns: self.returns,
            customers: log.customers.len(),
            items: log.items.len(),
            orders: log.orders.len(),
            first_time: range.map(|r| format_timestamp(r.0)),
            last_time: range.map(|r| format_timestamp(r.1)),
            fingerprint: String::new(),
            rejects_path,
        };
        Ok((log, report))
    }
}

/// Column positions of the fields in one file.
#[derive(Debug, Clone, Copy)]
struct Columns {
    n: usize,
    order: Option<usize>,
    customer: usize,
    item: usize,
    time: usize,
    quantity: Option<usize>,
    price: Option<usize>,
}

fn resolve_columns(
    headers: &[String],
    map: &ColumnMap,
    source: &Path,
) -> Result<Columns, IngestError> {
    let missing = |field: Field| IngestError::MissingColumn {
        path: source.to_path_buf(),
        field: field.name(),
        column: map.source(field).to_string(),
        found: headers.to_vec(),
    };
    let position = |field: Field| headers.iter().position(|h| h == map.source(field));
    let required = |field: Field| position(field).ok_or_else(|| missing(field));
    // An optional field may be absent, unless the map names its column explicitly.
    let find = |field: Field| match position(field) {
        None if map.is_mapped(field) => Err(missing(field)),
        found => Ok(found),
    };
    Ok(Columns {
        n: headers.len(),
        customer: required(Field::CustomerId)?,
        item: required(Field::ItemId)?,
        time: required(Field::Timestamp)?,
        order: find(Field::OrderId)?,
        quantity: find(Field::Quantity)?,
        price: find(Field::Price)?,
    })
}

/// The column names of a CSV header line: each field as text (invalid UTF-8
/// replaced), without a byte-order mark and surrounding white space.
pub fn header_names<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    fields
        .into_iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_string()
        })
        .collect()
}

/// The ingestion loop; gives the reader back so the caller can finish hashing it.
pub(crate) fn ingest<R: Read>(
    reader: R,
    source: &Path,
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport, R), IngestError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(LineBreaks::new(reader));
    let csv_err = |e: csv::Error| IngestError::from_csv(source, e);
    let header_record = rdr.byte_headers().map_err(csv_err)?;
    if header_record.is_empty() {
        return Err(IngestError::EmptyFile {
            path: source.to_path_buf(),
        });
    }
    let headers = header_names(header_record);
    let cols = resolve_columns(&headers, &opts.columns, source)?;

    let mut sink = RowSink::new(source, opts);
    let mut record = csv::ByteRecord::new();
    while rdr.read_byte_record(&mut record).map_err(csv_err)? {
        sink.rows_read += 1;
        match parse_row(&record, &cols) {
            Ok(row) => sink.accept(&row),
            Err(reject) => {
                let line = match record.position() {
                    Some(p) => rdr.get_mut().line_at(p.byte()),
                    None => 0,
                };
                sink.reject(reject, RowLocation::Line(line), |out| {
                    record_text(&record, out)
                })?;
            }
        }
    }
    let (log, report) = sink.finish()?;
    Ok((log, report, rdr.into_inner().into_inner()))
}

/// The usable content of one row, borrowed from the source.
pub(crate) struct Row<'a> {
    /// `None` (or an empty id, which the source turns into `None`): synthesized.
    pub(crate) order: Option<&'a str>,
    pub(crate) customer: &'a str,
    pub(crate) item: &'a str,
    pub(crate) time: i64,
    pub(crate) quantity: f32,
    pub(crate) price: f32,
}

impl Row<'_> {
    /// The order id, or the one synthesized for a row without one
    /// (`customer@time`, written to `scratch`).
    pub(crate) fn order_id<'s>(&'s self, scratch: &'s mut String) -> &'s str {
        match self.order {
            Some(o) => o,
            None => {
                scratch.clear();
                let _ = write!(scratch, "{}@{}", self.customer, self.time);
                scratch
            }
        }
    }
}

/// Why one row is unusable, with the field (`None`: the whole row) and
/// offending value (`None`: a null, which only typed sources have).
pub(crate) struct Reject {
    pub(crate) reason: RejectReason,
    pub(crate) field: Option<Field>,
    pub(crate) value: Option<String>,
}

impl Reject {
    pub(crate) fn new(reason: RejectReason, field: Field, value: &str) -> Self {
        Reject {
            reason,
            field: Some(field),
            value: Some(value.to_string()),
        }
    }

    /// A null where the field needs a value.
    #[cfg_attr(not(feature = "parquet"), allow(dead_code))]
    pub(crate) fn null(reason: RejectReason, field: Field) -> Self {
        Reject {
            reason,
            field: Some(field),
            value: None,
        }
    }
}

fn field_str(record: &csv::ByteRecord, col: usize, field: Field) -> Result<&str, Reject> {
    let raw = record.get(col).unwrap_or_default();
    std::str::from_utf8(raw).map(str::trim).map_err(|_| Reject {
        reason: RejectReason::InvalidUtf8,
        field: Some(field),
        value: Some(String::from_utf8_lossy(raw).into_owned()),
    })
}

fn parse_row<'a>(record: &'a csv::ByteRecord, cols: &Columns) -> Result<Row<'a>, Reject> {
    if record.len() != cols.n {
        return Err(Reject {
            reason: RejectReason::WrongColumnCount,
            field: None,
            value: Some(format!(
                "row has {} columns, the header has {}",
                record.len(),
                cols.n
            )),
        });
    }
    let customer = field_str(record, cols.customer, Field::CustomerId)?;
    if customer.is_empty() {
        return Err(Reject::new(
            RejectReason::MissingCustomer,
            Field::CustomerId,
            "",
        ));
    }
    let item = field_str(record, cols.item, Field::ItemId)?;
    if item.is_empty() {
        return Err(Reject::new(RejectReason::MissingItem, Field::ItemId, ""));
    }
    let ts = field_str(record, cols.time, Field::Timestamp)?;
    let time = parse_timestamp(ts)
        .ok_or_else(|| Reject::new(RejectReason::BadTimestamp, Field::Timestamp, ts))?;
    let quantity = match cols.quantity {
        None => 1.0,
        Some(c) => {
            let s = field_str(record, c, Field::Quantity)?;
            let q = s
                .parse::<f32>()
                .ok()
                .filter(|q| q.is_finite())
                .ok_or_else(|| Reject::new(RejectReason::BadQuantity, Field::Quantity, s))?;
            if q == 0.0 {
                return Err(Reject::new(RejectReason::ZeroQuantity, Field::Quantity, s));
            }
            q
        }
    };
    let price = match cols.price {
        None => f32::NAN,
        Some(c) => {
            let s = field_str(record, c, Field::Price)?;
            if s.is_empty() {
                f32::NAN
            } else {
                s.parse::<f32>()
                    .ok()
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| Reject::new(RejectReason::BadPrice, Field::Price, s))?
            }
        }
    };
    let order = match cols.order {
        None => None,
        Some(c) => Some(field_str(record, c, Field::OrderId)?).filter(|o| !o.is_empty()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{fingerprint_file, read_purchases};
    use std::io::Write;

    fn read(text: &str, strict: bool) -> Result<(PurchaseLog, IngestReport), IngestError> {
        let opts = IngestOptions {
            strict,
            ..Default::default()
        };
        read_purchases_from_reader(text.as_bytes(), Path::new("t.csv"), &opts)
    }

    fn sha256(bytes: &[u8]) -> String {
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256:{hex}")
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use flate2::{Compression, write::GzEncoder};
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn canonical_with_every_reject_reason() {
        let mut text = b"customer_id,item_id,timestamp,quantity,price\n\
                    c1,i1,2011-01-01,2,1.5\n\
                    ,i1,2011-01-01,1,1\n\
                    c1,,2011-01-01,1,1\n\
                    c1,i1,2011-13-01,1,1\n\
                    c1,i1,2011-01-01,x,1\n\
                    c1,i1,2011-01-01,NaN,1\n\
                    c1,i1,2011-01-01,inf,1\n\
                    c1,i1,2011-01-01,0,1\n\
                    c1,i1,2011-01-01,1,-3\n\
                    c1,i1,2011-01-01,1,NaN\n\
                    c1,i1,2011-01-01\n\
                    c2,i2,20110102,-1,\n"
            .to_vec();
        text.extend_from_slice(b"c3,i\xff,2011-01-01,1,1\n");
        let (log, report) =
            read_purchases_from_reader(&text[..], Path::new("t.csv"), &IngestOptions::default())
                .unwrap();
        assert_eq!(report.rows_read, 13);
        assert_eq!(report.rows_accepted, 2);
        assert_eq!(report.returns, 1);
        let expected = [
            (RejectReason::MissingCustomer, 1),
            (RejectReason::MissingItem, 1),
            (RejectReason::BadTimestamp, 1),
            (RejectReason::BadQuantity, 3),
            (RejectReason::ZeroQuantity, 1),
            (RejectReason::BadPrice, 2),
            (RejectReason::WrongColumnCount, 1),
            (RejectReason::InvalidUtf8, 1),
        ];
        assert_eq!(report.rejected, BTreeMap::from(expected));
        assert_eq!(report.rejected_total(), 11);
        assert_eq!(log.purchases[0].quantity, 2.0);
        assert_eq!(log.purchases[0].price, 1.5);
        assert_eq!(log.purchases[1].quantity, -1.0);
        assert!(log.purchases[1].price.is_nan());
        assert_eq!(report.fingerprint, sha256(&text));
        assert_eq!(report.rejects_path, None);
    }

    #[test]
    fn defaults_any_order_extra_columns_and_synthesized_orders() {
        let text = " extra ,timestamp,item_id, customer_id\n\
                    x,2011-01-01 10:00,a,alice\n\
                    x,2011-01-01 10:00,b,alice\n\
                    x,2011-01-01 10:00,a,bob\n\
                    x,2011-01-01 11:00,a,alice\n";
        let (log, report) = read(text, false).unwrap();
        assert_eq!(report.rows_accepted, 4);
        assert!(log.purchases.iter().all(|p| p.quantity == 1.0));
        assert!(log.purchases.iter().all(|p| p.price.is_nan()));
        assert_eq!(log.customers.len(), 2);
        assert_eq!(log.items.len(), 2);
        let t = parse_timestamp("2011-01-01 10:00").unwrap();
        let ids: Vec<&str> = log.orders.ids().collect();
        assert_eq!(
            ids,
            [
                format!("alice@{t}"),
                format!("bob@{t}"),
                format!("alice@{}", t + 3600)
            ]
        );
        assert_eq!(log.purchases[0].order, log.purchases[1].order);
        // An empty order id falls back to the same synthesized key.
        let text = "order_id,customer_id,item_id,timestamp\n\
                    o1,c,a,2011-01-01\n,c,b,2011-01-01\n,c,d,2011-01-01\n";
        let (log, _) = read(text, false).unwrap();
        assert_eq!(log.orders.len(), 2);
        assert_eq!(log.purchases[1].order, log.purchases[2].order);
    }

    #[test]
    fn strict_names_file_line_and_field() {
        let text = "customer_id,item_id,timestamp\nc1,i1,2011-01-01\nc1,i1,2011-13-45\n";
        let err = read(text, true).unwrap_err();
        assert!(matches!(
            &err,
            IngestError::BadRow {
                line: 3,
                field: "timestamp",
                column: None,
                reason: RejectReason::BadTimestamp,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "t.csv:3: field 'timestamp': cannot parse \"2011-13-45\" as a timestamp"
        );
        let err = read("customer_id,item_id,timestamp\nc,i\n", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv:2: row has 2 columns, the header has 3"
        );
        let err = read(
            "customer_id,item_id,timestamp,price\nc,i,2011-01-01,-1\n",
            true,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv:2: field 'price': cannot parse \"-1\" as a finite, non-negative price"
        );
        // A quoted field spanning lines: the line is where the row starts.
        let text = "customer_id,item_id,timestamp\n\"c\nc\",i,2011-01-01\n,i,2011-01-01\n";
        let err = read(text, true).unwrap_err();
        assert!(matches!(err, IngestError::BadRow { line: 4, .. }), "{err}");
    }

    #[test]
    fn strict_error_names_the_mapped_column() {
        let opts = IngestOptions {
            strict: true,
            columns: "timestamp=When".parse().unwrap(),
            ..Default::default()
        };
        let text = "customer_id,item_id,When\nc,i,bad\n";
        let err = read_purchases_from_reader(text.as_bytes(), Path::new("t.csv"), &opts)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "t.csv:2: field 'timestamp' (column 'When'): cannot parse \"bad\" as a timestamp"
        );
    }

    #[test]
    fn rejects_keep_fields_with_commas_and_are_created_lazily() {
        let dir = tempfile::tempdir().unwrap();
        let rejects = dir.path().join("sub/rejects.csv");
        let opts = IngestOptions {
            rejects_path: Some(rejects.clone()),
            ..Default::default()
        };
        let good = "customer_id,item_id,timestamp,title\nc,i,2011-01-01,\"A, B\"\n";
        let (_, report) =
            read_purchases_from_reader(good.as_bytes(), Path::new("t.csv"), &opts).unwrap();
        assert!(!rejects.exists(), "no rejected row, no rejects file");
        assert_eq!(report.rejects_path, None);
        let bad = "customer_id,item_id,timestamp,title\nc,i,2011-01-01,x\n,i,2011-01-01,\"A, B\"\n";
        let (_, report) =
            read_purchases_from_reader(bad.as_bytes(), Path::new("t.csv"), &opts).unwrap();
        assert_eq!(report.rejects_path.as_deref(), Some(rejects.as_path()));
        let mut r = csv::Reader::from_path(&rejects).unwrap();
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "3");
        assert_eq!(&row[1], "missing_customer");
        assert_eq!(&row[2], "customer_id");
        let mut inner = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(row[3].as_bytes());
        let raw = inner.records().next().unwrap().unwrap();
        assert_eq!(
            raw.iter().collect::<Vec<_>>(),
            ["", "i", "2011-01-01", "A, B"]
        );

        // A later run that rejects nothing removes the file the earlier one
        // left, so it cannot be read as this run's rejects; a file at that
        // path that is not a rejects file is left alone.
        drop(r);
        read_purchases_from_reader(good.as_bytes(), Path::new("t.csv"), &opts).unwrap();
        assert!(!rejects.exists(), "the stale rejects file is still there");
        std::fs::write(&rejects, "my own notes\n").unwrap();
        read_purchases_from_reader(good.as_bytes(), Path::new("t.csv"), &opts).unwrap();
        assert_eq!(std::fs::read_to_string(&rejects).unwrap(), "my own notes\n");
    }

    #[test]
    fn missing_column_lists_headers() {
        let err = read("customer,item_id,timestamp\n", false).unwrap_err();
        assert!(matches!(
            &err,
            IngestError::MissingColumn {
                field: "customer_id",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "t.csv: no column 'customer_id' for field customer_id \
             (columns found: customer, item_id, timestamp)"
        );
        // An optional field mapped explicitly must exist.
        let opts = IngestOptions {
            columns: "price=UnitPrice".parse().unwrap(),
            ..Default::default()
        };
        let text = "customer_id,item_id,timestamp\nc,i,2011-01-01\n";
        let err = read_purchases_from_reader(text.as_bytes(), Path::new("t.csv"), &opts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no column 'UnitPrice' for field price"),
            "{err}"
        );
        // Header names are trimmed, and a byte-order mark is ignored.
        let text = "\u{feff}customer_id , item_id,timestamp\nc,i,2011-01-01\n";
        assert!(read(text, false).is_ok());
    }

    #[test]
    fn empty_inputs() {
        assert!(matches!(
            read("", false),
            Err(IngestError::EmptyFile { .. })
        ));
        assert!(matches!(
            read("customer_id,item_id,timestamp\n", false),
            Err(IngestError::NoRows { rejected: 0, .. })
        ));
        let err = read("customer_id,item_id,timestamp\n,i,2011-01-01\n", false).unwrap_err();
        assert!(
            matches!(err, IngestError::NoRows { rejected: 1, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "t.csv: no usable purchase (1 rows rejected)"
        );
    }

    #[test]
    fn column_map_parses_and_rejects() {
        let m: ColumnMap = " customer_id = CustomerID, item_id=StockCode,"
            .parse()
            .unwrap();
        assert_eq!(m.source(Field::CustomerId), "CustomerID");
        assert_eq!(m.source(Field::ItemId), "StockCode");
        assert_eq!(m.source(Field::Timestamp), "timestamp");
        assert!(m.is_mapped(Field::ItemId) && !m.is_mapped(Field::Price));
        assert_eq!("".parse::<ColumnMap>(), Ok(ColumnMap::default()));
        let err = "cust=X".parse::<ColumnMap>().unwrap_err();
        assert_eq!(
            err,
            ColumnMapError::UnknownField {
                field: "cust".into()
            }
        );
        assert!(err.to_string().contains("unknown field 'cust'"));
        assert_eq!(
            "item_id".parse::<ColumnMap>(),
            Err(ColumnMapError::MissingEquals {
                part: "item_id".into()
            })
        );
        assert_eq!(
            "item_id=A,item_id=B".parse::<ColumnMap>(),
            Err(ColumnMapError::Duplicate {
                field: "item_id".into()
            })
        );
        assert_eq!(
            "price=".parse::<ColumnMap>(),
            Err(ColumnMapError::EmptyHeader {
                field: "price".into()
            })
        );
    }

    #[test]
    fn gzip_and_rejects_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv.gz");
        let compressed = gzip(
            b"order_id,customer_id,item_id,timestamp\no1,c1,i1,2011-01-01T10:00:00Z\no2,,i1,2011-01-01\n",
        );
        std::fs::write(&path, &compressed).unwrap();
        let rejects = dir.path().join("rejects.csv");
        let opts = IngestOptions {
            rejects_path: Some(rejects.clone()),
            ..Default::default()
        };
        let (log, report) = read_purchases(&path, &opts).unwrap();
        assert_eq!(log.purchases.len(), 1);
        assert_eq!(report.fingerprint, sha256(&compressed));
        assert_eq!(fingerprint_file(&path).unwrap(), report.fingerprint);
        let text = std::fs::read_to_string(rejects).unwrap();
        assert_eq!(
            text,
            "line,reason,field,raw\n3,missing_customer,customer_id,\"o2,,i1,2011-01-01\"\n"
        );
        let summary = report.summary();
        assert!(summary.contains("missing_customer"), "{summary}");
        assert!(summary.contains("rejects.csv"), "{summary}");
        assert!(summary.contains("sha256:"), "{summary}");
    }

    #[test]
    fn gzip_is_detected_by_content_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"customer_id,item_id,timestamp\nc,i,2011-01-01\n";
        // Compressed content under a plain name is still decompressed.
        let disguised = dir.path().join("h.csv");
        std::fs::write(&disguised, gzip(text)).unwrap();
        let (log, _) = read_purchases(&disguised, &IngestOptions::default()).unwrap();
        assert_eq!(log.purchases.len(), 1);
        // Plain text under a .gz name is refused.
        let mislabelled = dir.path().join("h.csv.GZ");
        std::fs::write(&mislabelled, text).unwrap();
        let err = read_purchases(&mislabelled, &IngestOptions::default()).unwrap_err();
        assert!(matches!(err, IngestError::NotGzip { .. }), "{err}");
        // A truncated gzip stream is an I/O error naming the file.
        let truncated = dir.path().join("t.csv.gz");
        let gz = gzip(&text.repeat(100));
        std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
        let err = read_purchases(&truncated, &IngestOptions::default()).unwrap_err();
        assert!(matches!(err, IngestError::Io { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&truncated.display().to_string())
        );
        // A plain file's fingerprint is that of its bytes.
        let plain = dir.path().join("p.csv");
        std::fs::write(&plain, text).unwrap();
        let (_, report) = read_purchases(&plain, &IngestOptions::default()).unwrap();
        assert_eq!(report.fingerprint, sha256(text));
        let missing = dir.path().join("nope.csv");
        assert!(matches!(
            read_purchases(&missing, &IngestOptions::default()),
            Err(IngestError::Io { .. })
        ));
    }

    #[test]
    fn report_serializes() {
        let text = "customer_id,item_id,timestamp\nc,i,2011-01-01\n,i,2011-01-01\n";
        let (_, report) = read(text, false).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rejected"]["missing_customer"], 1);
        assert_eq!(json["first_time"], "2011-01-01T00:00:00Z");
        assert_eq!(json["rows_read"], 2);
    }

    #[test]
    fn online_retail_sample() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/online_retail.csv.gz");
        let opts = IngestOptions {
            columns: "order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
                .parse()
                .unwrap(),
            ..Default::default()
        };
        let (log, report) = read_purchases(&path, &opts).unwrap();
        assert_eq!(report.rows_read, 541_909);
        assert_eq!(
            report.rejected,
            BTreeMap::from([(RejectReason::MissingCustomer, 135_080)])
        );
        assert_eq!(report.rows_accepted, 541_909 - 135_080);
        assert_eq!(report.customers, 4_372);
        // 9,288 cancellation lines, 8,905 of them with a customer id; the
        // 1,336 other negative-quantity lines (stock adjustments) have none.
        assert_eq!(report.returns, 8_905);
        assert_eq!(report.first_time.as_deref(), Some("2010-12-01T08:26:00Z"));
        assert_eq!(report.last_time.as_deref(), Some("2011-12-09T12:50:00Z"));
        assert_eq!(log.purchases.len() as u64, report.rows_accepted);
        assert_eq!(report.fingerprint, fingerprint_file(&path).unwrap());
    }
}
