//! Generates a synthetic purchase history and writes it as canonical CSV.
//!
//! ```text
//! cargo run --release -p encore-data --example synth -- OUT.csv[.gz] [--customers N] [--items N] [--purchases N] [--seed N]
//! ```
//!
//! Defaults are the benchmark size of [`SynthParams::default`].

use encore_data::{IngestError, SynthParams, synth};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

mod common;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(
        "usage: synth OUT.csv[.gz] [--customers N] [--items N] [--purchases N] [--seed N] [--zipf X]"
    )]
    Usage,
    #[error("{flag} needs a value")]
    MissingValue { flag: String },
    #[error("{flag}: cannot parse '{value}' as a number")]
    BadNumber { flag: String, value: String },
    #[error("unknown argument '{arg}'")]
    UnknownArgument { arg: String },
    #[error("sizes must be positive")]
    ZeroSize,
    #[error(transparent)]
    Write(#[from] IngestError),
}

fn run() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut p = SynthParams::default();
    while let Some(arg) = args.next() {
        if !arg.starts_with("--") {
            if out.is_some() {
                return Err(Error::UnknownArgument { arg });
            }
            out = Some(arg.into());
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| Error::MissingValue { flag: arg.clone() })?;
        let bad = || Error::BadNumber {
            flag: arg.clone(),
            value: value.clone(),
        };
        match arg.as_str() {
            "--customers" => p.customers = value.parse().map_err(|_| bad())?,
            "--items" => p.items = value.parse().map_err(|_| bad())?,
            "--purchases" => p.purchases = value.parse().map_err(|_| bad())?,
            "--seed" => p.seed = value.parse().map_err(|_| bad())?,
            "--zipf" => p.zipf_exponent = value.parse().map_err(|_| bad())?,
            _ => return Err(Error::UnknownArgument { arg }),
        }
    }
    let out = out.ok_or(Error::Usage)?;
    if p.customers == 0 || p.items == 0 || p.categories == 0 {
        return Err(Error::ZeroSize);
    }
    let start = Instant::now();
    let log = synth::generate(&p);
    let generated = start.elapsed();
    synth::write_csv(&log, &out)?;
    println!(
        "{} purchases, {} customers, {} items, {} orders: generated in {:.2} s, written to {} in {:.2} s",
        log.purchases.len(),
        log.customers.len(),
        log.items.len(),
        log.orders.len(),
        generated.as_secs_f64(),
        out.display(),
        (start.elapsed() - generated).as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    common::exit_code(run())
}
