//! Purchase-history data for Encore: ingestion, id maps, interaction matrices.
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

pub mod catalog;
pub mod ids;
pub mod ingest;
pub mod log;
pub mod matrix;
pub mod synth;
pub mod timestamp;

pub use ids::{CustomerIdx, IdMap, ItemIdx, OrderIdx};
pub use log::{Purchase, PurchaseLog};
pub use matrix::{Csr, InteractionMatrix, Weighting};
