//! The evaluation histories as purchase logs, shared by the holdout tests
//! and the evaluation examples (`propensity_eval`, `date_eval`): Online
//! Retail from the bundled sample, CDNOW and the grocery log from
//! `../shared/datasets` beside the checkout (`None` when absent).
//! A malformed line is a panic naming the file and line.

#![allow(dead_code)]

use encore_data::ingest::IngestOptions;
use encore_data::input::read_purchases;
use encore_data::timestamp::parse_timestamp;
use encore_data::{PurchaseLog, read_catalog};
use std::path::{Path, PathBuf};

/// `../shared/datasets/<path>` beside the checkout.
pub fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .join(path)
}

/// The bundled UCI Online Retail sample (lines with a customer id).
pub fn online_retail() -> PurchaseLog {
    online_retail_at(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample/online_retail.csv.gz"),
    )
}

/// A UCI Online Retail file at `path` (the sample or the whole history).
pub fn online_retail_at(path: &Path) -> PurchaseLog {
    let opts = IngestOptions {
        columns: "order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
            .parse()
            .unwrap(),
        ..Default::default()
    };
    read_purchases(path, &opts)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .0
}

/// The bundled Online Retail catalog by item index of `log`: each item's
/// category, and whether it is unavailable (fees, postage).
pub fn online_retail_catalog(log: &PurchaseLog) -> (Vec<Option<String>>, Vec<bool>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample/online_retail_catalog.csv");
    let catalog = read_catalog(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    log.items
        .ids()
        .map(|id| {
            let entry = catalog.get(id);
            (
                entry.and_then(|e| e.category.clone()),
                entry.is_some_and(|e| !e.available),
            )
        })
        .unzip()
}

/// A purchase CSV in the canonical columns (e.g. the Instacart sample after
/// `bench/instacart_to_csv.py`).
pub fn canonical_csv(path: &Path) -> PurchaseLog {
    read_purchases(path, &IngestOptions::default())
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .0
}

/// The lines of a shared text file after its header, numbered from 2.
fn lines(path: &str) -> Option<(PathBuf, Vec<(usize, String)>)> {
    let path = shared(path);
    let text = std::fs::read_to_string(&path).ok()?;
    let lines = text
        .lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect();
    Some((path, lines))
}

fn date(path: &Path, line: usize, s: &str) -> i64 {
    parse_timestamp(s).unwrap_or_else(|| panic!("{}:{line}: bad date {s:?}", path.display()))
}

/// CDNOW master file: one order per row, the row's dollar amount as the
/// price of one unit (unknown when 0).
pub fn cdnow() -> Option<PurchaseLog> {
    let (path, lines) = lines("cdnow/CDNOW_master.txt")?;
    let mut log = PurchaseLog::default();
    for (n, line) in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            f.len(),
            4,
            "{}:{n}: 4 fields expected: {line:?}",
            path.display()
        );
        let time = date(&path, n, f[1]);
        let dollars: f32 = f[3]
            .parse()
            .unwrap_or_else(|e| panic!("{}:{n}: dollar_value {:?}: {e}", path.display(), f[3]));
        let price = if dollars > 0.0 { dollars } else { f32::NAN };
        log.push(&format!("r{n}"), f[0], "cd", time, 1.0, price);
    }
    Some(log)
}

/// The grocery event log: one order per (customer, date) row, no item, no price.
pub fn grocery() -> Option<PurchaseLog> {
    let (path, lines) = lines("grocery_elog/groceryElog.csv")?;
    let mut log = PurchaseLog::default();
    for (n, line) in lines {
        let f: Vec<&str> = line.trim().split(',').collect();
        assert_eq!(
            f.len(),
            2,
            "{}:{n}: 2 fields expected: {line:?}",
            path.display()
        );
        let cust = f[0].trim_matches('"');
        let time = date(&path, n, f[1].trim_matches('"'));
        log.push(&format!("g{n}"), cust, "g", time, 1.0, f32::NAN);
    }
    Some(log)
}

/// [`online_retail`] as a [`Loader`].
fn some_online_retail() -> Option<PurchaseLog> {
    Some(online_retail())
}

/// Loads one history (`None`: its file is not beside the checkout).
pub type Loader = fn() -> Option<PurchaseLog>;

/// The customer-model evaluation histories: name, cutoff, loader. Online
/// Retail at 2011-10-01, CDNOW at the end of its 39-week calibration
/// period, the grocery log at 2007-07-01.
pub const EVALUATION_HISTORIES: [(&str, &str, Loader); 3] = [
    ("online_retail", "2011-10-01", some_online_retail),
    ("cdnow", "1997-10-01", cdnow),
    ("grocery", "2007-07-01", grocery),
];
