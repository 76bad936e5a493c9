//! Reading the purchase history and the optional catalog for a command.

use anyhow::{Context, Result};
use encore_data::PurchaseLog;
use encore_data::catalog::{Catalog, read_catalog};
use encore_data::ingest::{ColumnMap, IngestOptions, IngestReport, read_purchases};
use encore_data::timestamp::format_timestamp;
use encore_model::artifact::DataSummary;
use encore_model::engine::ItemMeta;
use std::path::{Path, PathBuf};

/// Where the input comes from and how to read it.
#[derive(Debug, Clone)]
pub struct InputArgs {
    pub input: PathBuf,
    /// `field=Header,...`; see [`ColumnMap`].
    pub columns: Option<String>,
    pub catalog: Option<PathBuf>,
    /// Fail on the first bad row instead of skipping it.
    pub strict: bool,
    /// Where skipped rows are written; `None` for `<input file name>.rejects.csv`
    /// in the current directory.
    pub rejects: Option<PathBuf>,
}

impl InputArgs {
    /// Defaults for reading `input` in the canonical format.
    pub fn new(input: &Path) -> Self {
        InputArgs {
            input: input.to_path_buf(),
            columns: None,
            catalog: None,
            strict: false,
            rejects: None,
        }
    }
}

/// A loaded purchase history with its catalog metadata.
pub struct Input {
    pub log: PurchaseLog,
    pub report: IngestReport,
    /// Indexed like `log.items`.
    pub item_meta: Vec<ItemMeta>,
    /// Catalog rows naming items that never appear in the history.
    pub catalog_unmatched: usize,
}

/// The default rejects file for an input: `<file name>.rejects.csv` in the current directory.
pub fn default_rejects_path(input: &Path) -> PathBuf {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    PathBuf::from(format!("{name}.rejects.csv"))
}

/// Reads the history (and catalog) named by `args`.
pub fn load_input(args: &InputArgs) -> Result<Input> {
    let columns: ColumnMap = match &args.columns {
        Some(spec) => spec
            .parse()
            .with_context(|| format!("--columns '{spec}'"))?,
        None => ColumnMap::default(),
    };
    let opts = IngestOptions {
        strict: args.strict,
        rejects_path: Some(
            args.rejects
                .clone()
                .unwrap_or_else(|| default_rejects_path(&args.input)),
        ),
        columns,
    };
    let (log, report) = read_purchases(&args.input, &opts)?;
    let (item_meta, catalog_unmatched) = match &args.catalog {
        Some(path) => {
            let catalog = read_catalog(path)?;
            item_meta_from_catalog(&log, &catalog)
        }
        None => (vec![ItemMeta::default(); log.items.len()], 0),
    };
    Ok(Input {
        log,
        report,
        item_meta,
        catalog_unmatched,
    })
}

/// Catalog metadata in item-index order, and how many catalog rows matched no item.
pub fn item_meta_from_catalog(log: &PurchaseLog, catalog: &Catalog) -> (Vec<ItemMeta>, usize) {
    let meta: Vec<ItemMeta> = log
        .items
        .ids()
        .map(|id| match catalog.get(id) {
            Some(e) => ItemMeta {
                title: e.title.clone(),
                category: e.category.clone(),
                available: e.available,
            },
            None => ItemMeta::default(),
        })
        .collect();
    let unmatched = catalog
        .entries
        .keys()
        .filter(|id| log.items.get(id).is_none())
        .count();
    (meta, unmatched)
}

/// The manifest's summary of an ingested history.
pub fn data_summary(report: &IngestReport, log: &PurchaseLog) -> DataSummary {
    let range = log.time_range();
    DataSummary {
        fingerprint: report.fingerprint.clone(),
        source: report.path.display().to_string(),
        rows_read: report.rows_read,
        rows_accepted: report.rows_accepted,
        rows_rejected: report.rejected.values().sum(),
        customers: log.customers.len(),
        items: log.items.len(),
        orders: log.orders.len(),
        interactions: 0,
        first_purchase: range.map(|(a, _)| format_timestamp(a)),
        last_purchase: range.map(|(_, b)| format_timestamp(b)),
    }
}
