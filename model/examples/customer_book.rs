//! Fits the customer book on the bundled Online Retail sample (or on a
//! purchase CSV with Encore's canonical columns) up to a cutoff and prints
//! the fitted models and how long the fit took.
//!
//! ```text
//! cargo run --release -p encore-model --example customer_book -- [CUTOFF] [INPUT.csv]
//! ```
//!
//! `CUTOFF` is any accepted timestamp, or `end` (the default: the end of the
//! data).

use encore_data::timestamp::parse_timestamp;
use encore_data::{IngestOptions, read_purchases};
use encore_model::customer::book::CustomerConfig;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (path, opts) = match std::env::args().nth(2) {
        Some(input) => (PathBuf::from(input), IngestOptions::default()),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample/online_retail.csv.gz"),
            IngestOptions {
                columns: "order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
                    .parse()?,
                ..Default::default()
            },
        ),
    };
    let (log, _) = read_purchases(&path, &opts)?;
    let cutoff = match std::env::args().nth(1).filter(|s| s != "end") {
        Some(s) => parse_timestamp(&s).ok_or("CUTOFF is not a timestamp")?,
        None => log.time_range().map_or(0, |(_, last)| last + 1),
    };
    let (train, _) = log.split_at(cutoff);
    let reference = train.time_range().map_or(0, |(_, last)| last);
    let started = Instant::now();
    let book = CustomerConfig::default().build(&train, reference)?;
    let m = book.models();
    println!("built in {:.2}s", started.elapsed().as_secs_f64());
    println!("bg/nbd: {:?} {:?}", m.bgnbd, m.bgnbd_error);
    if let Some(sel) = &m.selection {
        println!("repeat model selected: {:?}", sel.selected);
        for line in sel.describe() {
            println!("  {line}");
        }
    }
    println!("gamma-gamma: {:?} {:?}", m.gamma_gamma, m.gamma_gamma_error);
    println!("stages: {:?}", m.stage_counts);
    println!("numeric failures: {}", m.numeric_failures);
    Ok(())
}
