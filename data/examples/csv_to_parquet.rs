//! Converts a purchase-history CSV (plain or gzip) to Parquet, typed the way
//! a data warehouse export would be, so that no other tool is needed to try
//! or benchmark Parquet input.
//!
//! ```text
//! cargo run --release -p encore-data --example csv_to_parquet -- IN.csv[.gz] OUT \
//!     [--columns MAP] [--compression snappy|zstd|gzip|lz4|none] [--parts N] [--row-group ROWS]
//! ```
//!
//! The mapped columns are written under their source names: ids (and order
//! ids) as strings, the timestamp as `Timestamp(µs, UTC)`, quantity and price
//! as `Float64`; other columns are dropped. Reading the result gives the same
//! log as reading the CSV file: an empty field becomes a null, a timestamp
//! that does not parse a null (rejected as `bad_timestamp` either way), and a
//! quantity or price that does not parse a `NaN` (rejected as `bad_quantity`
//! or `bad_price` either way). A row with the wrong number of columns cannot
//! be written and is left out, and counted on the output; invalid UTF-8 is
//! written with replacement characters.
//!
//! With `--parts N` (N > 1), OUT is a directory of N part files
//! `part-00000.parquet`, ... of consecutive rows, plus an empty `_SUCCESS`.

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field as ArrowField, Schema, TimeUnit};
use encore_data::ingest::{ColumnMap, Field, header_names};
use encore_data::parse_timestamp;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

mod common;

const USAGE: &str = "usage: csv_to_parquet IN.csv[.gz] OUT [--columns field=Header,...] \
                     [--compression snappy|zstd|gzip|lz4|none] [--parts N] [--row-group ROWS]";

/// Rows per written batch.
const BATCH: usize = 65_536;

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{USAGE}")]
    Usage,
    #[error("{0}")]
    Arg(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: no column '{column}' for field {field}")]
    MissingColumn {
        path: PathBuf,
        field: Field,
        column: String,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("{0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

struct Args {
    input: PathBuf,
    output: PathBuf,
    columns: ColumnMap,
    compression: Compression,
    parts: usize,
    row_group: usize,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = std::env::args().skip(1);
    let mut paths = Vec::new();
    let mut columns = ColumnMap::default();
    let mut compression = Compression::SNAPPY;
    let mut parts = 1;
    let mut row_group = 1 << 20;
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| Error::Arg(format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--columns" => {
                columns = value()?
                    .parse()
                    .map_err(|e| Error::Arg(format!("--columns: {e}")))?
            }
            "--compression" => {
                compression = match value()?.as_str() {
                    "snappy" => Compression::SNAPPY,
                    "zstd" => Compression::ZSTD(ZstdLevel::default()),
                    "gzip" => Compression::GZIP(GzipLevel::default()),
                    "lz4" => Compression::LZ4_RAW,
                    "none" => Compression::UNCOMPRESSED,
                    other => return Err(Error::Arg(format!("unknown compression '{other}'"))),
                }
            }
            "--parts" | "--row-group" => {
                let v = value()?;
                let n: usize =
                    v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        Error::Arg(format!("{arg}: '{v}' is not a positive number"))
                    })?;
                if arg == "--parts" {
                    parts = n;
                } else {
                    row_group = n;
                }
            }
            "-h" | "--help" => return Err(Error::Usage),
            a if a.starts_with('-') => return Err(Error::Arg(format!("unknown argument '{a}'"))),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [input, output] = <[PathBuf; 2]>::try_from(paths).map_err(|_| Error::Usage)?;
    Ok(Args {
        input,
        output,
        columns,
        compression,
        parts,
        row_group,
    })
}

/// Column buffers of one batch.
#[derive(Default)]
struct Batch {
    order: Vec<Option<String>>,
    customer: Vec<Option<String>>,
    item: Vec<Option<String>>,
    time: Vec<Option<i64>>,
    quantity: Vec<Option<f64>>,
    price: Vec<Option<f64>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.customer.len()
    }

    fn take(&mut self, schema: &Arc<Schema>, has: &[bool; 6]) -> Result<RecordBatch, Error> {
        let b = std::mem::take(self);
        let mut cols: Vec<ArrayRef> = Vec::new();
        if has[0] {
            cols.push(Arc::new(StringArray::from(b.order)));
        }
        cols.push(Arc::new(StringArray::from(b.customer)));
        cols.push(Arc::new(StringArray::from(b.item)));
        cols.push(Arc::new(
            TimestampMicrosecondArray::from(b.time).with_timezone("UTC"),
        ));
        if has[4] {
            cols.push(Arc::new(Float64Array::from(b.quantity)));
        }
        if has[5] {
            cols.push(Arc::new(Float64Array::from(b.price)));
        }
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}

fn open(path: &Path) -> Result<Box<dyn Read>, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let gzip = std::io::BufRead::fill_buf(&mut file)
        .map_err(io)?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

fn run() -> Result<(), Error> {
    let args = parse_args()?;
    let start = Instant::now();
    let csv_err = |source| Error::Csv {
        path: args.input.clone(),
        source,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(open(&args.input)?);
    let headers = header_names(rdr.byte_headers().map_err(csv_err)?);
    let mut pos = [None; 6];
    for (k, field) in Field::ALL.into_iter().enumerate() {
        let source = args.columns.source(field);
        pos[k] = headers.iter().position(|h| h == source);
        if pos[k].is_none() && (field.required() || args.columns.is_mapped(field)) {
            return Err(Error::MissingColumn {
                path: args.input.clone(),
                field,
                column: source.to_string(),
            });
        }
    }
    let has = pos.map(|p| p.is_some());
    let name = |f: Field| args.columns.source(f).to_string();
    let mut fields = Vec::new();
    if has[0] {
        fields.push(ArrowField::new(name(Field::OrderId), DataType::Utf8, true));
    }
    fields.push(ArrowField::new(
        name(Field::CustomerId),
        DataType::Utf8,
        true,
    ));
    fields.push(ArrowField::new(name(Field::ItemId), DataType::Utf8, true));
    fields.push(ArrowField::new(
        name(Field::Timestamp),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    if has[4] {
        fields.push(ArrowField::new(
            name(Field::Quantity),
            DataType::Float64,
            true,
        ));
    }
    if has[5] {
        fields.push(ArrowField::new(name(Field::Price), DataType::Float64, true));
    }
    let schema = Arc::new(Schema::new(fields));

    // With parts, the rows are counted first so each part gets its share.
    let total_rows = if args.parts > 1 {
        let mut n = 0u64;
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(open(&args.input)?);
        let mut rec = csv::ByteRecord::new();
        while r.read_byte_record(&mut rec).map_err(csv_err)? {
            n += 1;
        }
        std::fs::create_dir_all(&args.output).map_err(|source| Error::Io {
            path: args.output.clone(),
            source,
        })?;
        n
    } else {
        0
    };
    let per_part = total_rows.div_ceil(args.parts as u64).max(1);
    let props = WriterProperties::builder()
        .set_compression(args.compression)
        .set_max_row_group_row_count(Some(args.row_group))
        .build();
    let part_path = |k: usize| {
        if args.parts > 1 {
            args.output.join(format!("part-{k:05}.parquet"))
        } else {
            args.output.clone()
        }
    };
    let new_writer = |k: usize| -> Result<ArrowWriter<File>, Error> {
        let path = part_path(k);
        let file = File::create(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))
            .map_err(|source| Error::Parquet { path, source })
    };
    let pq_err = |k: usize| {
        let path = part_path(k);
        move |source| Error::Parquet { path, source }
    };

    let mut part = 0;
    let mut writer = new_writer(part)?;
    let mut in_part = 0u64;
    let (mut rows, mut skipped) = (0u64, 0u64);
    let mut batch = Batch::default();
    let mut raw = csv::ByteRecord::new();
    let text = |rec: &csv::ByteRecord, p: Option<usize>| {
        p.and_then(|i| rec.get(i))
            .map(String::from_utf8_lossy)
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.into_owned())
    };
    while rdr.read_byte_record(&mut raw).map_err(csv_err)? {
        let rec = &raw;
        if rec.len() != headers.len() {
            skipped += 1;
            continue;
        }
        let number =
            |p: Option<usize>| text(rec, p).map(|s| s.trim().parse::<f64>().unwrap_or(f64::NAN));
        batch.order.push(text(rec, pos[0]));
        batch.customer.push(text(rec, pos[1]));
        batch.item.push(text(rec, pos[2]));
        batch.time.push(
            text(rec, pos[3])
                .and_then(|s| parse_timestamp(&s))
                .map(|t| t * 1_000_000),
        );
        batch.quantity.push(number(pos[4]));
        batch.price.push(number(pos[5]));
        rows += 1;
        in_part += 1;
        if batch.len() == BATCH || (args.parts > 1 && in_part == per_part) {
            writer
                .write(&batch.take(&schema, &has)?)
                .map_err(pq_err(part))?;
        }
        if args.parts > 1 && in_part == per_part && part + 1 < args.parts {
            writer.close().map_err(pq_err(part))?;
            part += 1;
            in_part = 0;
            writer = new_writer(part)?;
        }
    }
    if batch.len() > 0 {
        writer
            .write(&batch.take(&schema, &has)?)
            .map_err(pq_err(part))?;
    }
    writer.close().map_err(pq_err(part))?;
    if args.parts > 1 {
        let done = args.output.join("_SUCCESS");
        File::create(&done).map_err(|source| Error::Io { path: done, source })?;
    }
    println!(
        "{rows} rows written to {} ({} part{}) in {:.2} s; {skipped} rows left out (wrong column count)",
        args.output.display(),
        part + 1,
        if part == 0 { "" } else { "s" },
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    common::exit_code(run())
}
