//! The integration tests of encore-training, in one binary (one link of the
//! whole tree instead of one per file). `cargo test -p encore-training --test
//! it NAME` runs one file's tests, e.g. `sharded_fit`.

mod cli_flags;
mod evaluate_protocol;
mod events_cli;
mod experiment_report;
mod fit_events;
mod parquet_fit;
mod sharded_fit;
mod store_gate;
