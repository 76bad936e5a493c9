//! The integration tests of encore-data, in one binary (one link of the
//! whole tree instead of one per file). `cargo test -p encore-data --test it
//! NAME` runs one file's tests, e.g. `ingest_props`.

mod ingest_props;
mod parquet_input;
