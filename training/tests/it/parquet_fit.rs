//! `encore-train fit --input` on Parquet: the same rows as CSV and as a
//! directory of Parquet part files give the same model, every file
//! byte for byte identical apart from the manifest's data source and
//! fingerprint (and its model version and creation time, which differ
//! between any two fits).

use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray, TimestampMillisecondArray};
use encore_data::PurchaseLog;
use encore_data::synth::{SynthParams, generate, write_csv};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn fit(input: &Path, out: &Path) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .arg("fit")
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)
        .output()
        .expect("runs encore-train");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

/// Purchases `range` of `log` as a batch: ids as text (items dictionary
/// encoded), times in milliseconds, quantities and prices as floats.
fn batch(log: &PurchaseLog, range: std::ops::Range<usize>) -> RecordBatch {
    let rows = &log.purchases[range];
    let mut items = StringDictionaryBuilder::<Int32Type>::new();
    for p in rows {
        items.append_value(log.items.id(p.item.0));
    }
    let text = |f: &dyn Fn(&encore_data::Purchase) -> String| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    RecordBatch::try_from_iter([
        ("order_id", text(&|p| log.orders.id(p.order.0).to_string())),
        (
            "customer_id",
            text(&|p| log.customers.id(p.customer.0).to_string()),
        ),
        ("item_id", Arc::new(items.finish()) as ArrayRef),
        (
            "timestamp",
            Arc::new(
                TimestampMillisecondArray::from(
                    rows.iter().map(|p| p.time * 1000).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ),
        (
            "quantity",
            Arc::new(Float32Array::from(
                rows.iter().map(|p| p.quantity).collect::<Vec<_>>(),
            )),
        ),
        (
            "price",
            Arc::new(Float32Array::from(
                rows.iter()
                    .map(|p| (!p.price.is_nan()).then_some(p.price))
                    .collect::<Vec<_>>(),
            )),
        ),
    ])
    .unwrap()
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn parquet_and_csv_fit_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let log = generate(&SynthParams {
        customers: 300,
        items: 80,
        purchases: 6_000,
        categories: 5,
        ..SynthParams::default()
    });
    let csv = dir.path().join("history.csv");
    write_csv(&log, &csv).unwrap();
    let parts = dir.path().join("history");
    std::fs::create_dir(&parts).unwrap();
    let n = log.purchases.len();
    let codecs = [
        Compression::SNAPPY,
        Compression::ZSTD(ZstdLevel::default()),
        Compression::SNAPPY,
    ];
    for (k, codec) in codecs.into_iter().enumerate() {
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(700))
            .build();
        let b = batch(&log, k * n / 3..(k + 1) * n / 3);
        let file = std::fs::File::create(parts.join(format!("part-{k:05}.parquet"))).unwrap();
        let mut w = ArrowWriter::try_new(file, b.schema(), Some(props)).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }
    std::fs::write(parts.join("_SUCCESS"), b"").unwrap();

    let (a, b) = (dir.path().join("from-csv"), dir.path().join("from-parquet"));
    let out_a = fit(&csv, &a);
    let out_b = fit(&parts, &b);
    // The summary printed is the same but for the input, the model version
    // (the time and the fingerprint) and the timings.
    let summary = |s: &str, input: &Path| {
        s.lines()
            .filter(|l| {
                !l.contains("sha256:")
                    && !l.trim_start().starts_with("time ")
                    && !l.starts_with("model ")
            })
            .map(|l| l.replace(&input.display().to_string(), "INPUT"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        summary(&out_a, &csv).replace(&a.display().to_string(), "OUT"),
        summary(&out_b, &parts).replace(&b.display().to_string(), "OUT")
    );

    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    assert!(fa.contains_key("manifest.json"));
    for (name, bytes) in &fa {
        if name == "manifest.json" {
            continue;
        }
        assert!(bytes == &fb[name], "{name} differs");
    }
    // The manifests differ only in what names the input, the time of the
    // fit (model version, creation time) and the timings.
    let ma: Value = serde_json::from_slice(&fa["manifest.json"]).unwrap();
    let mb: Value = serde_json::from_slice(&fb["manifest.json"]).unwrap();
    let mut differ = Vec::new();
    diff("", &ma, &mb, &mut differ);
    let allowed = |path: &String| {
        let key = path.rsplit('.').next().unwrap_or_default();
        [
            "source",
            "fingerprint",
            "data_fingerprint",
            "model_version",
            "created_at",
        ]
        .contains(&key)
            || key.ends_with("seconds")
    };
    let unexpected: Vec<&String> = differ.iter().filter(|p| !allowed(p)).collect();
    assert!(unexpected.is_empty(), "manifests differ at {unexpected:?}");
    assert!(differ.contains(&".data.source".to_string()), "{differ:?}");
    assert!(
        differ.contains(&".data.fingerprint".to_string()),
        "{differ:?}"
    );
    assert_eq!(ma["data"]["source"], csv.display().to_string());
    assert_eq!(mb["data"]["source"], parts.display().to_string());
    assert_eq!(
        mb["data"]["fingerprint"],
        encore_data::input::fingerprint_file(&parts).unwrap()
    );
}

/// The JSON paths at which `a` and `b` differ.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}
