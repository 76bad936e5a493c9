//! `encore-train`: the offline half of Encore.
//!
//! Reads a purchase history, trains every model, evaluates them on a
//! time-ordered holdout and publishes a versioned artifact that
//! `encore-serve` loads. The binary in `src/bin/encore-train.rs` is a thin
//! wrapper over the commands here, so tests drive exactly what users run.
//!
//! ```no_run
//! use encore_training::{config::load_config, input::{InputArgs, load_input}};
//! use std::path::Path;
//!
//! let config = load_config(None)?;
//! let input = load_input(&InputArgs::new(Path::new("data/sample/online_retail.csv.gz")))?;
//! println!("{} purchases", input.log.purchases.len());
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod batch;
pub mod config;
pub mod customers;
pub mod evaluate;
pub mod fit;
pub mod gate;
pub mod input;
pub mod progress;
pub mod report_html;
pub mod shard;
pub mod tune;
