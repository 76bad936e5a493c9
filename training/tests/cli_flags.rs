//! `encore-train fit` as a shell runs it: flags are checked before any work
//! or any directory is created, a directory holding something else is not
//! made a store, and a reader closing stdout early (`| head`) does not stop
//! or fail the fit.

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
