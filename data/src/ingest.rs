//! Streaming ingestion of purchase histories (CSV, plain or gzip).
//!
//! The canonical header is `order_id,customer_id,item_id,timestamp,quantity,price`,
//! columns in any order, extra columns ignored; `order_id`, `quantity` (default 1)
//! and `price` may be absent. Other schemas are read through a [`ColumnMap`].
//!
//! # Bad rows
//! Nothing is dropped silently. A row that cannot be used (no customer or
//! item, a timestamp or number that does not parse, the wrong number of
//! columns, invalid UTF-8, a zero quantity) is skipped, counted by
//! [`RejectReason`], and written with its line number to the rejects file;
//! with [`IngestOptions::strict`] the first such row is an
//! [`IngestError::BadRow`] naming the file, line and field.
//!
//! # Returns
//! Negative quantities (returns and cancellations) are kept in the log as
//! negative quantities and counted in [`IngestReport::returns`].
//! [`crate::matrix::InteractionMatrix`] nets them against the purchases of the
//! same (customer, item), so a returned item never becomes a preference.
//!
//! # Implementation notes
//! The file is read record by record with `csv::ByteRecord`; nothing holds
//! the file as text. Known ids are looked up before they are allocated.

use crate::ids::{CustomerIdx, ItemIdx, OrderIdx};
use crate::log::{Purchase, PurchaseLog};
use crate::timestamp::{format_timestamp, parse_timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
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

    fn required(self) -> bool {
        matches!(self, Field::CustomerId | Field::ItemId | Field::Timestamp)
    }
}

/// Which source column holds each canonical field; unmapped fields use their canonical name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    map: BTreeMap<Field, String>,
}

impl ColumnMap {
    /// The source header name for `field`.
    pub fn source(&self, field: Field) -> &str {
        self.map.get(&field).map_or(field.name(), String::as_str)
    }
}

/// A column map that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnMapError {
    #[error("'{0}' is not of the form field=Header")]
    MissingEquals(String),
    #[error(
        "unknown field '{0}' (fields: order_id, customer_id, item_id, timestamp, quantity, price)"
    )]
    UnknownField(String),
    #[error("field '{0}' is mapped twice")]
    Duplicate(String),
    #[error("field '{0}' has an empty header name")]
    EmptyHeader(String),
}

impl FromStr for ColumnMap {
    type Err = ColumnMapError;

    /// Parses `field=Header,field=Header,...`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, header) = part
                .split_once('=')
                .ok_or_else(|| ColumnMapError::MissingEquals(part.to_string()))?;
            let (field, header) = (field.trim(), header.trim());
            let f = Field::ALL
                .into_iter()
                .find(|f| f.name() == field)
                .ok_or_else(|| ColumnMapError::UnknownField(field.to_string()))?;
            if header.is_empty() {
                return Err(ColumnMapError::EmptyHeader(field.to_string()));
            }
            if map.insert(f, header.to_string()).is_some() {
                return Err(ColumnMapError::Duplicate(field.to_string()));
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
    pub columns: ColumnMap,
}

/// Why a row was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    MissingCustomer,
    MissingItem,
    BadTimestamp,
    BadQuantity,
    ZeroQuantity,
    BadPrice,
    WrongColumnCount,
    InvalidUtf8,
}

impl RejectReason {
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

    fn describe(self) -> &'static str {
        match self {
            RejectReason::MissingCustomer => "is empty (no customer id)",
            RejectReason::MissingItem => "is empty (no item id)",
            RejectReason::BadTimestamp => "cannot be parsed as a timestamp",
            RejectReason::BadQuantity => "is not a finite number",
            RejectReason::ZeroQuantity => "is zero",
            RejectReason::BadPrice => "is not a finite, non-negative number",
            RejectReason::WrongColumnCount => "row has the wrong number of columns",
            RejectReason::InvalidUtf8 => "is not valid UTF-8",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{}: no column '{column}' for field {field} (columns found: {})", path.display(), found.join(", "))]
    MissingColumn {
        path: PathBuf,
        field: &'static str,
        column: String,
        found: Vec<String>,
    },
    #[error("{}:{line}: field '{field}' {}: {value:?}", path.display(), reason.describe())]
    BadRow {
        path: PathBuf,
        line: u64,
        field: &'static str,
        value: String,
        reason: RejectReason,
    },
    #[error("rejects file {}: {source}", path.display())]
    RejectsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no usable purchase ({rejected} rows rejected)", path.display())]
    NoRows { path: PathBuf, rejected: u64 },
}

/// What ingestion read, kept and skipped.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub path: PathBuf,
    /// Data rows read (the header excluded).
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Accepted rows with a negative quantity (returns, cancellations).
    pub returns: u64,
    pub customers: usize,
    pub items: usize,
    pub orders: usize,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// `sha256:` of the file's bytes as stored.
    pub fingerprint: String,
    pub rejects_path: Option<PathBuf>,
}

impl IngestReport {
    /// Total rows skipped.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// A human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "read {}: {} rows, {} accepted ({} returns netted against purchases), {} rejected\n",
            self.path.display(),
            self.rows_read,
            self.rows_accepted,
            self.returns,
            self.rejected_total()
        );
        for (reason, n) in &self.rejected {
            s.push_str(&format!("  rejected {reason:<20} {n}\n"));
        }
        if self.rejected_total() > 0
            && let Some(p) = &self.rejects_path
        {
            s.push_str(&format!("  rejected rows written to {}\n", p.display()));
        }
        s.push_str(&format!(
            "  {} customers, {} items, {} orders, {} .. {}",
            self.customers,
            self.items,
            self.orders,
            self.first_time.as_deref().unwrap_or("-"),
            self.last_time.as_deref().unwrap_or("-")
        ));
        s
    }
}

fn is_gzip(path: &Path) -> Result<bool, IngestError> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let n = f.read(&mut magic).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// `sha256:<hex>` of the file's bytes.
pub fn fingerprint_file(path: &Path) -> Result<String, IngestError> {
    let io = |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// Reads a purchase history file (gzip detected by its magic bytes).
pub fn read_purchases(
    path: &Path,
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError> {
    let file = File::open(path).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader: Box<dyn Read> = if is_gzip(path)? {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            file,
        )))
    } else {
        Box::new(file)
    };
    let (log, mut report) = read_purchases_from_reader(reader, path, opts)?;
    report.fingerprint = fingerprint_file(path)?;
    Ok((log, report))
}

struct Rejects {
    path: PathBuf,
    out: Option<csv::Writer<BufWriter<File>>>,
}

impl Rejects {
    fn write(
        &mut self,
        line: u64,
        reason: RejectReason,
        field: &str,
        raw: &csv::ByteRecord,
    ) -> Result<(), IngestError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let raw: Vec<String> = raw
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        out.write_record([
            line.to_string().as_str(),
            reason.as_str(),
            field,
            &raw.join(","),
        ])
        .map_err(|e| IngestError::RejectsFile {
            path: self.path.clone(),
            source: e.into(),
        })
    }
}

/// Reads a purchase history from any reader; `source` names it in errors.
pub fn read_purchases_from_reader<R: Read>(
    reader: R,
    source: &Path,
    opts: &IngestOptions,
) -> Result<(PurchaseLog, IngestReport), IngestError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let csv_err = |e: csv::Error| IngestError::Csv {
        path: source.to_path_buf(),
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    };
    let headers: Vec<String> = rdr
        .byte_headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    let mut cols: [Option<usize>; 6] = [None; 6];
    for (slot, field) in cols.iter_mut().zip(Field::ALL) {
        let name = opts.columns.source(field);
        *slot = headers.iter().position(|h| h == name);
        if slot.is_none() && (field.required() || opts.columns.map.contains_key(&field)) {
            return Err(IngestError::MissingColumn {
                path: source.to_path_buf(),
                field: field.name(),
                column: name.to_string(),
                found: headers.clone(),
            });
        }
    }
    let [c_order, c_customer, c_item, c_time, c_qty, c_price] = cols;
    let (c_customer, c_item, c_time) = (
        c_customer.expect("required"),
        c_item.expect("required"),
        c_time.expect("required"),
    );

    let mut rejects = Rejects {
        path: opts.rejects_path.clone().unwrap_or_default(),
        out: None,
    };
    if let Some(p) = &opts.rejects_path {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| IngestError::RejectsFile {
                path: p.clone(),
                source,
            })?;
        }
        let file = File::create(p).map_err(|source| IngestError::RejectsFile {
            path: p.clone(),
            source,
        })?;
        let mut w = csv::Writer::from_writer(BufWriter::new(file));
        w.write_record(["line", "reason", "field", "raw"])
            .map_err(|e| IngestError::RejectsFile {
                path: p.clone(),
                source: e.into(),
            })?;
        rejects.out = Some(w);
    }

    let mut log = PurchaseLog::default();
    let mut rejected: BTreeMap<RejectReason, u64> = BTreeMap::new();
    let (mut rows_read, mut returns) = (0u64, 0u64);
    let mut record = csv::ByteRecord::new();
    let mut order_key = String::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_err(e)),
        }
        rows_read += 1;
        let line = record.position().map_or(0, |p| p.line());
        let parsed = parse_row(
            &record,
            headers.len(),
            [c_order, c_price, c_qty],
            c_customer,
            c_item,
            c_time,
        );
        let row = match parsed {
            Ok(row) => row,
            Err((reason, field, value)) => {
                if opts.strict {
                    return Err(IngestError::BadRow {
                        path: source.to_path_buf(),
                        line,
                        field,
                        value,
                        reason,
                    });
                }
                *rejected.entry(reason).or_default() += 1;
                rejects.write(line, reason, field, &record)?;
                continue;
            }
        };
        let customer = match log.customers.get(row.customer) {
            Some(c) => c,
            None => log.customers.get_or_insert(row.customer),
        };
        let item = match log.items.get(row.item) {
            Some(i) => i,
            None => log.items.get_or_insert(row.item),
        };
        let order = match row.order {
            Some(o) => log.orders.get_or_insert(o),
            None => {
                order_key.clear();
                order_key.push_str(row.customer);
                order_key.push('@');
                order_key.push_str(&row.time.to_string());
                log.orders.get_or_insert(&order_key)
            }
        };
        if row.quantity < 0.0 {
            returns += 1;
        }
        log.purchases.push(Purchase {
            order: OrderIdx(order),
            customer: CustomerIdx(customer),
            item: ItemIdx(item),
            time: row.time,
            quantity: row.quantity,
            price: row.price,
        });
    }
    if let Some(mut w) = rejects.out.take() {
        w.flush().map_err(|source| IngestError::RejectsFile {
            path: rejects.path.clone(),
            source,
        })?;
    }
    let rejected_total: u64 = rejected.values().sum();
    if log.purchases.is_empty() {
        return Err(IngestError::NoRows {
            path: source.to_path_buf(),
            rejected: rejected_total,
        });
    }
    let range = log.time_range();
    let report = IngestReport {
        path: source.to_path_buf(),
        rows_read,
        rows_accepted: log.purchases.len() as u64,
        rejected,
        returns,
        customers: log.customers.len(),
        items: log.items.len(),
        orders: log.orders.len(),
        first_time: range.map(|r| format_timestamp(r.0)),
        last_time: range.map(|r| format_timestamp(r.1)),
        fingerprint: String::new(),
        rejects_path: opts.rejects_path.clone(),
    };
    Ok((log, report))
}

struct Row<'a> {
    order: Option<&'a str>,
    customer: &'a str,
    item: &'a str,
    time: i64,
    quantity: f32,
    price: f32,
}

type Reject = (RejectReason, &'static str, String);

fn field_str(record: &csv::ByteRecord, col: usize, field: Field) -> Result<&str, Reject> {
    let raw = record.get(col).unwrap_or_default();
    std::str::from_utf8(raw).map(str::trim).map_err(|_| {
        (
            RejectReason::InvalidUtf8,
            field.name(),
            String::from_utf8_lossy(raw).into_owned(),
        )
    })
}

fn parse_row<'a>(
    record: &'a csv::ByteRecord,
    n_columns: usize,
    [c_order, c_price, c_qty]: [Option<usize>; 3],
    c_customer: usize,
    c_item: usize,
    c_time: usize,
) -> Result<Row<'a>, Reject> {
    if record.len() != n_columns {
        return Err((
            RejectReason::WrongColumnCount,
            "row",
            format!("{} columns, the header has {n_columns}", record.len()),
        ));
    }
    let customer = field_str(record, c_customer, Field::CustomerId)?;
    if customer.is_empty() {
        return Err((RejectReason::MissingCustomer, "customer_id", String::new()));
    }
    let item = field_str(record, c_item, Field::ItemId)?;
    if item.is_empty() {
        return Err((RejectReason::MissingItem, "item_id", String::new()));
    }
    let ts = field_str(record, c_time, Field::Timestamp)?;
    let time =
        parse_timestamp(ts).ok_or((RejectReason::BadTimestamp, "timestamp", ts.to_string()))?;
    let quantity = match c_qty {
        None => 1.0,
        Some(c) => {
            let s = field_str(record, c, Field::Quantity)?;
            let q: f32 = s.parse().ok().filter(|q: &f32| q.is_finite()).ok_or((
                RejectReason::BadQuantity,
                "quantity",
                s.to_string(),
            ))?;
            if q == 0.0 {
                return Err((RejectReason::ZeroQuantity, "quantity", s.to_string()));
            }
            q
        }
    };
    let price = match c_price {
        None => f32::NAN,
        Some(c) => {
            let s = field_str(record, c, Field::Price)?;
            if s.is_empty() {
                f32::NAN
            } else {
                s.parse()
                    .ok()
                    .filter(|p: &f32| p.is_finite() && *p >= 0.0)
                    .ok_or((RejectReason::BadPrice, "price", s.to_string()))?
            }
        }
    };
    let order = match c_order {
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
    use std::io::Write;

    fn read(text: &str, strict: bool) -> Result<(PurchaseLog, IngestReport), IngestError> {
        let opts = IngestOptions {
            strict,
            ..Default::default()
        };
        read_purchases_from_reader(text.as_bytes(), Path::new("t.csv"), &opts)
    }

    #[test]
    fn canonical_with_every_reject_reason() {
        let text = "customer_id,item_id,timestamp,quantity,price\n\
                    c1,i1,2011-01-01,2,1.5\n\
                    ,i1,2011-01-01,1,1\n\
                    c1,,2011-01-01,1,1\n\
                    c1,i1,2011-13-01,1,1\n\
                    c1,i1,2011-01-01,x,1\n\
                    c1,i1,2011-01-01,0,1\n\
                    c1,i1,2011-01-01,1,-3\n\
                    c1,i1,2011-01-01\n\
                    c2,i2,20110102,-1,\n";
        let (log, report) = read(text, false).unwrap();
        assert_eq!(report.rows_read, 9);
        assert_eq!(report.rows_accepted, 2);
        assert_eq!(report.returns, 1);
        for reason in [
            RejectReason::MissingCustomer,
            RejectReason::MissingItem,
            RejectReason::BadTimestamp,
            RejectReason::BadQuantity,
            RejectReason::ZeroQuantity,
            RejectReason::BadPrice,
            RejectReason::WrongColumnCount,
        ] {
            assert_eq!(report.rejected.get(&reason), Some(&1), "{reason}");
        }
        assert!(log.purchases[1].price.is_nan());
        // No order column: one order per customer and timestamp.
        assert_eq!(log.orders.len(), 2);
    }

    #[test]
    fn strict_names_file_line_and_field() {
        let text = "customer_id,item_id,timestamp\nc1,i1,2011-01-01\nc1,i1,2011-13-45\n";
        let err = read(text, true).unwrap_err().to_string();
        assert_eq!(
            err,
            "t.csv:3: field 'timestamp' cannot be parsed as a timestamp: \"2011-13-45\""
        );
    }

    #[test]
    fn missing_column_lists_headers() {
        let err = read("customer,item_id,timestamp\n", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("customer_id") && err.contains("customer, item_id, timestamp"),
            "{err}"
        );
    }

    #[test]
    fn column_map_parses_and_rejects() {
        let m: ColumnMap = "customer_id=CustomerID, item_id=StockCode".parse().unwrap();
        assert_eq!(m.source(Field::CustomerId), "CustomerID");
        assert_eq!(m.source(Field::Timestamp), "timestamp");
        assert!(matches!(
            "cust=X".parse::<ColumnMap>(),
            Err(ColumnMapError::UnknownField(_))
        ));
        assert!(matches!(
            "item_id".parse::<ColumnMap>(),
            Err(ColumnMapError::MissingEquals(_))
        ));
        assert!(matches!(
            "item_id=A,item_id=B".parse::<ColumnMap>(),
            Err(ColumnMapError::Duplicate(_))
        ));
    }

    #[test]
    fn gzip_and_rejects_file() {
        use flate2::{Compression, write::GzEncoder};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv.gz");
        let mut gz = GzEncoder::new(File::create(&path).unwrap(), Compression::default());
        gz.write_all(b"order_id,customer_id,item_id,timestamp\no1,c1,i1,2011-01-01T10:00:00Z\no2,,i1,2011-01-01\n")
            .unwrap();
        gz.finish().unwrap();
        let rejects = dir.path().join("rejects.csv");
        let opts = IngestOptions {
            rejects_path: Some(rejects.clone()),
            ..Default::default()
        };
        let (log, report) = read_purchases(&path, &opts).unwrap();
        assert_eq!(log.purchases.len(), 1);
        assert!(report.fingerprint.starts_with("sha256:"));
        let text = std::fs::read_to_string(rejects).unwrap();
        assert_eq!(
            text,
            "line,reason,field,raw\n3,missing_customer,customer_id,\"o2,,i1,2011-01-01\"\n"
        );
        assert!(report.summary().contains("missing_customer"));
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
            report.rejected.get(&RejectReason::MissingCustomer),
            Some(&135_080)
        );
        assert_eq!(report.customers, 4_372);
        assert!(report.returns > 8_000, "{}", report.returns);
        assert_eq!(report.first_time.as_deref(), Some("2010-12-01T08:26:00Z"));
        assert_eq!(log.purchases.len() as u64, report.rows_accepted);
    }
}
