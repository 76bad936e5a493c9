//! Reading the purchase history and the optional catalog for a command, and
//! merging the purchases of an event log into it (`fit --events DIR`).
//!
//! # Merging events
//! [`merge_events`] streams the log with [`for_each_event`] (one event per id;
//! a torn last line is skipped and counted) and adds each purchase event as a
//! line of the history: its order, customer, item, time, quantity and price.
//! **An event whose `order_id` is an order of the input file is skipped**:
//! the file is the system of record, and an order exported to it after its
//! events were posted must not count twice. Orders are matched by id only,
//! so the rule assumes the event producer and the export use the same order
//! ids; without an `order_id` column the file's orders get synthetic ids and
//! nothing is skipped. Exposures and clicks are counted, not merged.

use anyhow::{Context, Result};
use encore_data::PurchaseLog;
use encore_data::catalog::{Catalog, read_catalog};
use encore_data::events::{EventKind, for_each_event};
use encore_data::ingest::{ColumnMap, IngestOptions, IngestReport};
use encore_data::input::read_purchases;
use encore_data::timestamp::format_timestamp;
use encore_model::engine::ItemMeta;
use encore_model::manifest::{DataSummary, EventInputSummary};
use std::collections::HashSet;
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
    /// What [`merge_events`] added, if it ran.
    pub events: Option<EventInputSummary>,
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
    input_with_catalog(log, report, args.catalog.as_deref())
}

/// The input of `log` (read with `report`), with the item metadata of the
/// catalog file `catalog` (none without one) and no events.
pub fn input_with_catalog(
    log: PurchaseLog,
    report: IngestReport,
    catalog: Option<&Path>,
) -> Result<Input> {
    let (item_meta, catalog_unmatched) = match catalog {
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
        events: None,
    })
}

/// Merges the purchase events of the log in `dir` into `input` (see the
/// [module docs](self) for the rule), extending the catalog metadata to new
/// items (`catalog`, if given, is consulted for them), and records the counts
/// in `input.events`.
pub fn merge_events(
    input: &mut Input,
    dir: &Path,
    catalog: Option<&Catalog>,
) -> Result<EventInputSummary> {
    let input_orders: HashSet<String> = input.log.orders.ids().map(str::to_owned).collect();
    let mut summary = EventInputSummary {
        dir: dir.display().to_string(),
        ..EventInputSummary::default()
    };
    let mut range: Option<(i64, i64)> = None;
    // Streamed: only the merged purchases are kept (in the log).
    let report = for_each_event(dir, |event| {
        let EventKind::Purchase {
            order_id,
            customer,
            item,
            quantity,
            price,
        } = &event.kind
        else {
            summary.other_events += 1;
            return;
        };
        if input_orders.contains(order_id) {
            summary.purchases_in_input += 1;
            return;
        }
        input.log.push(
            order_id,
            customer,
            item,
            event.time,
            *quantity as f32,
            price.map_or(f32::NAN, |p| p as f32),
        );
        summary.purchases_merged += 1;
        range = Some(range.map_or((event.time, event.time), |(lo, hi)| {
            (lo.min(event.time), hi.max(event.time))
        }));
    })
    .with_context(|| format!("cannot read the event log {}", dir.display()))?;
    summary.files = report.files.len();
    summary.torn_tails = report.torn_tails.len();
    summary.first_purchase = range.map(|(a, _)| format_timestamp(a));
    summary.last_purchase = range.map(|(_, b)| format_timestamp(b));
    // New items get their catalog entry, or the default metadata.
    let known = input.item_meta.len();
    input
        .item_meta
        .extend(input.log.items.ids().skip(known).map(
            |id| match catalog.and_then(|c| c.get(id)) {
                Some(e) => ItemMeta {
                    title: e.title.clone(),
                    category: e.category.clone(),
                    available: e.available,
                },
                None => ItemMeta::default(),
            },
        ));
    input.events = Some(summary.clone());
    Ok(summary)
}

/// One line for the fit output: what [`merge_events`] did.
pub fn events_line(s: &EventInputSummary) -> String {
    format!(
        "events: {} purchases merged from {} ({} files), {} skipped as already in the input, {} exposures and clicks not used, {} torn tails skipped",
        s.purchases_merged, s.dir, s.files, s.purchases_in_input, s.other_events, s.torn_tails
    )
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
        events: None,
    }
}

/// [`data_summary`] of an input, with its merged events.
pub fn input_summary(input: &Input) -> DataSummary {
    DataSummary {
        events: input.events.clone(),
        ..data_summary(&input.report, &input.log)
    }
}
