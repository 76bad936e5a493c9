//! Purchase-history data for Encore: ingestion, id maps, interaction matrices.
//!
//! - [`ingest`] streams a purchase CSV (plain or gzip) into a [`PurchaseLog`],
//!   counting and recording the rows it cannot use;
//! - [`input`] reads a history whatever its format ([`read_purchases`]);
//! - [`parquet`] reads the same from a Parquet file or a directory of part
//!   files ([`read_purchases`] takes either format);
//! - [`alloc`] pins the allocator setting both binaries start with;
//! - [`catalog`] reads the optional item catalog (titles, categories, availability);
//! - [`timestamp`] parses and formats UTC timestamps without a date-time dependency;
//! - [`events`] validates and reads feedback events (purchases, exposures, clicks);
//! - [`event_log`] appends them durably and idempotently to rotating JSON-lines files;
//! - [`durable`] replaces a file atomically and fsyncs directories, reporting every failure;
//! - [`synth`] generates seeded synthetic histories for scale tests;
//! - [`matrix`] turns a log into the customer x item [`InteractionMatrix`].
//!
//! Errors, here and in every crate of the workspace, say their cause in their
//! message (`{path}: {cause}`) and return none from `source()`, so a chain
//! printed whole says each cause once.
//!
//! ```
//! use encore_data::{PurchaseLog, InteractionMatrix, Weighting};
//!
//! let mut log = PurchaseLog::default();
//! log.push("o1", "alice", "tea", 1_700_000_000, 2.0, 3.5);
//! log.push("o2", "alice", "mug", 1_700_100_000, 1.0, 8.0);
//! let m = InteractionMatrix::from_log(&log, &Weighting::default());
//! assert_eq!(m.matrix.nnz(), 2);
//! ```
//!
//! Reading a file:
//!
//! ```no_run
//! use encore_data::{IngestOptions, read_purchases};
//! use std::path::Path;
//!
//! let opts = IngestOptions {
//!     columns: "customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate"
//!         .parse()
//!         .expect("a valid column map"),
//!     ..IngestOptions::default()
//! };
//! let (log, report) = read_purchases(Path::new("history.csv.gz"), &opts)?;
//! println!("{}", report.summary());
//! # Ok::<(), encore_data::IngestError>(())
//! ```

pub mod alloc;
pub mod catalog;
pub mod durable;
pub mod event_log;
pub mod events;
pub mod ids;
pub mod ingest;
pub mod input;
pub mod log;
pub mod mapped;
pub mod matrix;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod synth;
pub mod timestamp;

pub use catalog::{Catalog, CatalogEntry, read_catalog};
pub use ids::{CustomerIdx, IdMap, ItemIdx, OrderIdx};
pub use ingest::{
    ColumnMap, ColumnMapError, Field, IngestError, IngestOptions, IngestReport, RejectReason,
    read_purchases_from_reader,
};
pub use input::read_purchases;
pub use log::{ByCustomer, Purchase, PurchaseLog};
pub use mapped::{Buf, Mapping};
pub use matrix::{Csr, CsrBuilder, InteractionMatrix, Weighting};
pub use synth::SynthParams;
pub use timestamp::{format_date, format_timestamp, parse_timestamp};
