//! `encore-train fit` as a shell runs it: flags are checked before any work
//! or any directory is created (and `audience`'s before the model is read),
//! a directory holding something else is not made a store, and a reader
//! closing stdout early (`| head`) does not stop or fail the fit.

use encore_data::synth::{SynthParams, generate, write_csv};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn history(dir: &Path) -> PathBuf {
    let log = generate(&SynthParams {
        customers: 200,
        items: 60,
        purchases: 3_000,
        categories: 4,
        ..SynthParams::default()
    });
    let csv = dir.join("history.csv");
    write_csv(&log, &csv).unwrap();
    csv
}

fn fit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .arg("fit")
        .args(args)
        .output()
        .expect("runs encore-train")
}

fn failed_with(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
}

#[test]
fn bad_flags_fail_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let csv = history(dir.path());
    let store = dir.path().join("store");
    let (csv, store_arg) = (csv.to_str().unwrap(), store.to_str().unwrap());
    for (flag, value, message) in [
        ("--keep", "0", "--keep must be at least 1"),
        (
            "--gate-margin",
            "NaN",
            "--gate-margin must be a non-negative number",
        ),
        (
            "--gate-margin",
            "-0.1",
            "--gate-margin must be a non-negative number",
        ),
    ] {
        let flag_value = format!("{flag}={value}");
        let out = fit(&[
            "--input",
            csv,
            "--store",
            store_arg,
            "--no-eval",
            &flag_value,
        ]);
        failed_with(&out, message);
        assert!(!store.exists(), "{flag} {value}: the store was created");
    }
}

#[test]
fn bad_audience_settings_are_named_as_flags() {
    let dir = tempfile::tempdir().unwrap();
    // Checked before the model is read: this one does not exist.
    let model = dir.path().join("no-model");
    for (flag, value, message) in [
        ("--stage", ",", "--stage must name at least one stage"),
        (
            "--min-p-alive",
            "1.5",
            "--min-p-alive must be within [0, 1], not 1.5",
        ),
        (
            "--max-churn-risk",
            "NaN",
            "--max-churn-risk must be within [0, 1], not NaN",
        ),
        (
            "--min-clv",
            "inf",
            "--min-clv must be a finite number, not inf",
        ),
        ("--limit", "0", "--limit must be at least 1"),
        ("--k", "0", "--k must be between 1 and 200, got 0"),
        (
            "--stage",
            "dormant,zombie",
            "--stage names an unknown stage 'zombie'",
        ),
        (
            "--as-of",
            "someday",
            "--as-of 'someday' is not a date (YYYY-MM-DD)",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_encore-train"))
            .args(["audience", "--model", model.to_str().unwrap()])
            .arg(format!("{flag}={value}"))
            .output()
            .expect("runs encore-train");
        failed_with(&out, message);
    }
}

#[test]
fn a_directory_holding_something_else_is_not_made_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let csv = history(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let out = fit(&[
        "--input",
        csv.to_str().unwrap(),
        "--store",
        other.to_str().unwrap(),
        "--no-eval",
    ]);
    failed_with(&out, "not an Encore model store");
    assert!(!other.join("versions").exists());
}

#[test]
fn a_closed_stdout_does_not_stop_the_fit() {
    let dir = tempfile::tempdir().unwrap();
    let csv = history(dir.path());
    let model = dir.path().join("model");
    let mut child = Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .args([
            "fit",
            "--input",
            csv.to_str().unwrap(),
            "--no-eval",
            "--out",
        ])
        .arg(&model)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the first line is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(model.join("manifest.json").is_file());
}

#[test]
fn an_error_and_its_cause_are_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    let out = fit(&[
        "--input",
        missing.to_str().unwrap(),
        "--out",
        dir.path().join("m").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    // The reason ends the first line ("Error: PATH: REASON"), in the OS's
    // words; it must not come again as a cause.
    let first_line = stderr.lines().next().unwrap();
    let reason = first_line.rsplit(": ").next().unwrap();
    assert_eq!(stderr.matches(reason).count(), 1, "{stderr}");
}

/// A small Parquet history: row 1 has no customer.
fn parquet_history(path: &Path) {
    use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampSecondArray};
    let batch = RecordBatch::try_from_iter([
        (
            "CustomerID",
            std::sync::Arc::new(StringArray::from(vec![Some("c1"), None, Some("c2")])) as ArrayRef,
        ),
        (
            "item_id",
            std::sync::Arc::new(StringArray::from(vec!["i1", "i2", "i1"])),
        ),
        (
            "timestamp",
            std::sync::Arc::new(TimestampSecondArray::from(vec![
                1_300_000_000,
                1_300_000_100,
                1_300_000_200,
            ])),
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_input_takes_the_same_flags_and_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("h.parquet");
    parquet_history(&input);
    let input_arg = input.to_str().unwrap();
    let model = dir.path().join("m");
    let model_arg = model.to_str().unwrap();

    // --strict names the file, row group, row, field and column.
    let out = fit(&[
        "--input",
        input_arg,
        "--columns",
        "customer_id=CustomerID",
        "--strict",
        "--no-eval",
        "--out",
        model_arg,
    ]);
    failed_with(
        &out,
        &format!(
            "{input_arg}: row group 0, row 1: field 'customer_id' (column 'CustomerID'): empty, a customer id is required"
        ),
    );
    // Without it the row is rejected and written to --rejects.
    let rejects = dir.path().join("r.csv");
    let out = fit(&[
        "--input",
        input_arg,
        "--columns",
        "customer_id=CustomerID",
        "--rejects",
        rejects.to_str().unwrap(),
        "--no-eval",
        "--out",
        model_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert!(
        text.contains(&format!(
            "{input_arg} row group 0 row 1,missing_customer,customer_id,"
        )),
        "{text}"
    );
    // Without the column map: the missing column is named.
    let out = fit(&["--input", input_arg, "--no-eval", "--out", model_arg]);
    failed_with(&out, "no column 'customer_id' for field customer_id");

    // A truncated file is an error naming it, not a panic.
    let bytes = std::fs::read(&input).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let out = fit(&[
        "--input",
        cut.to_str().unwrap(),
        "--no-eval",
        "--out",
        model_arg,
    ]);
    failed_with(
        &out,
        &format!("{}: cannot read Parquet data", cut.display()),
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
