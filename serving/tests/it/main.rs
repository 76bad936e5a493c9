//! The integration tests of encore-serving, in one binary (one link of the
//! whole tree instead of one per file). `cargo test -p encore-serving --test
//! it NAME` runs one file's tests, e.g. `security`.

mod support;

mod api_doc;
mod bad_input;
mod customers_http;
mod dashboard;
mod events_durability;
mod events_faults;
mod events_full_disk;
mod events_retention;
mod experiments_http;
mod http;
mod security;
mod serve_binary;
mod store_faults;
mod store_reload;
