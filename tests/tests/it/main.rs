//! The cross-crate tests (training, then serving the trained model), in one
//! binary. `cargo test -p encore-tests --test it NAME` runs one file's
//! tests, e.g. `end_to_end`.

mod support;

mod docs;
mod end_to_end;
mod for_you_quality;
mod old_artifact;
mod similar_quality;
