//! Ingests a purchase history and prints the report and the elapsed time.
//!
//! ```text
//! cargo run --release -p encore-data --example ingest -- PATH [--columns MAP] [--rejects FILE] [--strict]
//! ```
//!
//! For the bundled UCI Online Retail sample:
//!
//! ```text
//! cargo run --release -p encore-data --example ingest -- data/sample/online_retail.csv.gz \
//!     --columns order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice
//! ```

use encore_data::{ColumnMapError, IngestError, IngestOptions, read_purchases};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

mod common;

/// What can go wrong before or during ingestion.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("usage: ingest PATH [--columns field=Header,...] [--rejects FILE] [--strict]")]
    Usage,
    #[error("{flag} needs a value")]
    MissingValue { flag: String },
    #[error("unknown argument '{arg}'")]
    UnknownArgument { arg: String },
    #[error("--columns: {0}")]
    Columns(#[from] ColumnMapError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

fn run() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mut path: Option<PathBuf> = None;
    let mut opts = IngestOptions::default();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next().ok_or_else(|| Error::MissingValue {
                flag: flag.to_string(),
            })
        };
        match arg.as_str() {
            "--columns" => opts.columns = value("--columns")?.parse()?,
            "--rejects" => opts.rejects_path = Some(value("--rejects")?.into()),
            "--strict" => opts.strict = true,
            "-h" | "--help" => return Err(Error::Usage),
            a if a.starts_with('-') || path.is_some() => {
                return Err(Error::UnknownArgument { arg });
            }
            _ => path = Some(arg.into()),
        }
    }
    let path = path.ok_or(Error::Usage)?;
    let start = Instant::now();
    let (log, report) = read_purchases(&path, &opts)?;
    let elapsed = start.elapsed();
    println!("{}", report.summary());
    println!(
        "{} purchases in {:.3} s ({:.2} M rows/s)",
        log.purchases.len(),
        elapsed.as_secs_f64(),
        report.rows_read as f64 / elapsed.as_secs_f64() / 1e6
    );
    Ok(())
}

fn main() -> ExitCode {
    common::exit_code(run())
}
