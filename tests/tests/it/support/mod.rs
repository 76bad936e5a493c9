//! Shared by the end-to-end tests: where the repository and its bundled
//! Online Retail sample are, and how to read it.

use encore_training::input::InputArgs;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Reading the bundled sample with its column map and catalog, the rejected
/// rows written to `rejects_dir/rejects.csv`.
pub fn sample_args(rejects_dir: &Path) -> InputArgs {
    let mut args = InputArgs::new(&repo().join("data/sample/online_retail.csv.gz"));
    args.columns = Some(
        "order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
            .into(),
    );
    args.catalog = Some(repo().join("data/sample/online_retail_catalog.csv"));
    args.rejects = Some(rejects_dir.join("rejects.csv"));
    args
}
