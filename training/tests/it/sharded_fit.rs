//! A sharded fit (`fit --shared-only`, `shard` for each of N shards,
//! `assemble`) gives the artifact of a fit in one process: every file byte
//! for byte, the manifest apart from its model version and creation time,
//! for N = 1, 3 and 4 on the bundled sample. A missing, damaged, foreign or
//! miscounted shard makes `assemble` refuse, naming the shard and its
//! directory, and nothing is published.

use encore_data::synth::{SynthParams, generate, write_csv};
use encore_model::pipeline::EngineConfig;
use encore_training::fit::{FitEvaluation, Publish, Target, fit};
use encore_training::input::{InputArgs, load_input};
use encore_training::shard::{assemble_and_publish, fit_shared, run_shard};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/sample/online_retail.csv.gz"
);
const CATALOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/sample/online_retail_catalog.csv"
);
const COLUMNS: &str = "order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,\
                       timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice";

/// Every file of the artifact at `dir` but the manifest, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "manifest.json")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The manifest without what differs between any two fits.
fn manifest(dir: &Path) -> Value {
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let o = m.as_object_mut().unwrap();
    o.remove("model_version");
    o.remove("created_at");
    m
}

/// Asserts that the artifacts at `a` and `b` are the same model.
fn assert_same_model(a: &Path, b: &Path, what: &str) {
    let (fa, fb) = (files(a), files(b));
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fa), names(&fb), "{what}: file names");
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{what}: {name} differs");
    }
    assert_eq!(manifest(a), manifest(b), "{what}: manifest");
}

fn to_dir(out: &Path) -> Publish {
    Publish {
        target: Target::Dir(out.to_path_buf()),
        previous: None,
        margin: 0.0,
        keep: 5,
    }
}

/// Fits `input` once in one process and once sharded in `n` shards for
/// every `n` of `shard_counts`, and checks the artifacts are the same.
fn check_sharded_equals_single(
    input: &encore_training::input::Input,
    config: &EngineConfig,
    shard_counts: &[u32],
    must_have: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    fit(input, config, FitEvaluation::Skip, &[10], &single, false).unwrap();
    for name in must_have {
        assert!(single.join(name).is_file(), "{name} not built");
    }
    let shared = dir.path().join("shared");
    let made = fit_shared(input, config, FitEvaluation::Skip, &[10], &shared, false).unwrap();
    assert_eq!(made.customers, input.log.customers.len());
    for &n in shard_counts {
        let parts: Vec<PathBuf> = (0..n)
            .map(|i| dir.path().join(format!("n{n}/part-{i}")))
            .collect();
        let mut customers = 0;
        // The shards run in reverse order: no shard depends on another.
        for (i, part) in parts.iter().enumerate().rev() {
            let done = run_shard(input, &shared, i as u32, n, part, false).unwrap();
            customers += done.customers;
        }
        assert_eq!(customers, input.log.customers.len(), "{n} shards");
        let out = dir.path().join(format!("n{n}/model"));
        let outcome = assemble_and_publish(&shared, &parts, None, &to_dir(&out), false).unwrap();
        assert!(outcome.promoted);
        assert_same_model(&single, &out, &format!("{n} shards"));
        // The assembled artifact loads as any other.
        encore_model::artifact::load(&out).unwrap();
    }
}

#[test]
fn sharded_fit_of_the_sample_is_the_single_process_fit() {
    let mut args = InputArgs::new(Path::new(SAMPLE));
    args.columns = Some(COLUMNS.into());
    args.catalog = Some(CATALOG.into());
    let dir = tempfile::tempdir().unwrap();
    args.rejects = Some(dir.path().join("rejects.csv"));
    let input = load_input(&args).unwrap();
    let config = EngineConfig::default();
    check_sharded_equals_single(
        &input,
        &config,
        &[1, 3, 4],
        &[
            "for_you.csr",
            "new_items.csr",
            "customer_profiles.bin",
            "customer_orders.bin",
        ],
    );
}

/// A small synthetic history as CSV, and its input.
fn synthetic(dir: &Path, seed: u64) -> (PathBuf, encore_training::input::Input) {
    let log = generate(&SynthParams {
        customers: 300,
        items: 80,
        purchases: 4_000,
        categories: 4,
        seed,
        ..SynthParams::default()
    });
    let csv = dir.join(format!("history-{seed}.csv"));
    write_csv(&log, &csv).unwrap();
    let mut args = InputArgs::new(&csv);
    args.rejects = Some(dir.join("rejects.csv"));
    let input = load_input(&args).unwrap();
    (csv, input)
}

#[test]
fn sharded_fit_without_repeat_aware_lists_is_the_single_process_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (_, input) = synthetic(dir.path(), 7);
    let mut config = EngineConfig::default();
    config.for_you.repeat_aware = false;
    check_sharded_equals_single(&input, &config, &[2, 5], &["new_items.csr"]);
}

fn train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .args(args)
        .output()
        .expect("runs encore-train")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that `out` failed with status 1 and every one of `says` on stderr.
fn refused(out: &Output, says: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for s in says {
        assert!(stderr.contains(s), "expected '{s}' in: {stderr}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes the shared part of `csv` to `shared` and its `n` shards to
/// `parts/part-{i}` with the binary, as a shell or the Spark job runs them.
fn sharded(csv: &Path, shared: &Path, parts: &Path, n: u32) -> Vec<PathBuf> {
    ok(&train(&[
        "fit",
        "--input",
        s(csv),
        "--no-eval",
        "--shared-only",
        "--out",
        s(shared),
    ]));
    (0..n)
        .map(|i| {
            let part = parts.join(format!("part-{i}"));
            ok(&train(&[
                "shard",
                "--input",
                s(csv),
                "--shared",
                s(shared),
                "--shard",
                &i.to_string(),
                "--of",
                &n.to_string(),
                "--out",
                s(&part),
            ]));
            part
        })
        .collect()
}

fn assemble_to(shared: &Path, parts: &[PathBuf], target: &[&str]) -> Output {
    let mut args = vec!["assemble", "--shared", s(shared), "--parts"];
    args.extend(parts.iter().map(|p| s(p)));
    args.extend(target);
    train(&args)
}

#[test]
fn assembly_refuses_a_missing_damaged_foreign_or_miscounted_shard() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (csv, _) = synthetic(d, 11);
    let shared = d.join("shared");
    let parts = sharded(&csv, &shared, &d.join("three"), 3);
    let out = d.join("model");
    let to_out = ["--out", s(&out)];

    // A shard not given.
    let two = [parts[0].clone(), parts[2].clone()];
    refused(
        &assemble_to(&shared, &two, &to_out),
        &["shard 1 of 3 is missing", "nothing was published"],
    );
    // A shard directory given that the shard step never finished.
    let unfinished = d.join("three/part-unfinished");
    std::fs::create_dir_all(&unfinished).unwrap();
    let with_unfinished = [parts[0].clone(), unfinished.clone(), parts[2].clone()];
    refused(
        &assemble_to(&shared, &with_unfinished, &to_out),
        &[&format!("shard part {}: missing", unfinished.display())],
    );
    // The same shard twice.
    let twice = [parts[0].clone(), parts[1].clone(), parts[1].clone()];
    refused(
        &assemble_to(&shared, &twice, &to_out),
        &["shard 1 of 3 is given twice"],
    );
    // A shard of another shard count.
    ok(&train(&[
        "shard",
        "--input",
        s(&csv),
        "--shared",
        s(&shared),
        "--shard",
        "1",
        "--of",
        "2",
        "--out",
        s(&d.join("of-two")),
    ]));
    let mixed = [parts[0].clone(), d.join("of-two"), parts[2].clone()];
    refused(
        &assemble_to(&shared, &mixed, &to_out),
        &[&format!(
            "shard 1 ({}): one of 2 shards, but 3 shards are assembled",
            d.join("of-two").display()
        )],
    );
    // A shard built from another shared part (another fit of the same history).
    let foreign = sharded(&csv, &d.join("shared-again"), &d.join("again"), 3);
    let with_foreign = [parts[0].clone(), foreign[1].clone(), parts[2].clone()];
    refused(
        &assemble_to(&shared, &with_foreign, &to_out),
        &[
            &format!("shard 1 ({})", foreign[1].display()),
            "built from another shared part",
        ],
    );
    // A damaged list file.
    let damaged = d.join("damaged");
    copy_dir(&parts[2], &damaged);
    let lists = damaged.join("for_you.csr");
    let mut bytes = std::fs::read(&lists).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&lists, bytes).unwrap();
    let with_damaged = [parts[0].clone(), parts[1].clone(), damaged.clone()];
    refused(
        &assemble_to(&shared, &with_damaged, &to_out),
        &[
            &format!("shard 2 ({}): damaged", damaged.display()),
            "checksum",
        ],
    );
    // Nothing was written by any refused assembly.
    assert!(!out.exists());
    // Into a store: nothing published, no version, CURRENT untouched.
    let store = d.join("store");
    refused(
        &assemble_to(&shared, &two, &["--store", s(&store)]),
        &["shard 1 of 3 is missing"],
    );
    let versions = std::fs::read_dir(store.join("versions"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(versions, 0);
    assert!(!store.join("CURRENT").exists());
    // All three assemble, into the store too, where the first version is current.
    ok(&assemble_to(&shared, &parts, &to_out));
    encore_model::artifact::load(&out).unwrap();
    ok(&assemble_to(&shared, &parts, &["--store", s(&store)]));
    assert!(store.join("CURRENT").is_file());
    // A second assembly into the store is gated against the current
    // version, which needs the history.
    refused(
        &assemble_to(&shared, &parts, &["--store", s(&store)]),
        &["needs the purchase history", "--input"],
    );
}

#[test]
fn a_shard_refuses_another_history_and_bad_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (csv, _) = synthetic(d, 3);
    let (other, _) = synthetic(d, 4);
    let shared = d.join("shared");
    sharded(&csv, &shared, &d.join("parts"), 1);
    let shard = |input: &Path, i: &str, n: &str| {
        train(&[
            "shard",
            "--input",
            s(input),
            "--shared",
            s(&shared),
            "--shard",
            i,
            "--of",
            n,
            "--out",
            s(&d.join("p")),
        ])
    };
    refused(
        &shard(&other, "0", "2"),
        &["not the history of the shared part", "fingerprint"],
    );
    refused(&shard(&csv, "2", "2"), &["shard 2 of 2", "numbered from 0"]);
    refused(&shard(&csv, "0", "0"), &["at least 1"]);
    let not_shared = train(&[
        "shard",
        "--input",
        s(&csv),
        "--shared",
        s(d),
        "--shard",
        "0",
        "--of",
        "1",
        "--out",
        s(&d.join("q")),
    ]);
    refused(&not_shared, &["not a shared part"]);
    assert!(!d.join("q").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
