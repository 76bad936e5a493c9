//! The integration tests of encore-model, in one binary (one link of the
//! whole tree instead of one per file). `cargo test -p encore-model --test it
//! NAME` runs one file's tests, e.g. `customer_golden`.

#[path = "support/histories.rs"]
mod histories;
#[path = "support/buy_again.rs"]
mod support;

mod customer_golden;
mod customer_holdout;
mod customer_selection;
mod date_errors;
mod propensity_holdout;
mod ranker;
mod repeat_aware_holdout;
mod replenishment_holdout;
