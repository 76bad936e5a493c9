//! Parquet input (`parquet.rs`): the fixtures are written here with the
//! parquet crate's Arrow writer.
//!
//! - the same rows as CSV and as Parquet give the same log and report;
//! - every accepted column type reads to the value its CSV text would;
//! - nulls are rejected (or defaulted) as empty CSV fields are, with the
//!   file, row group and row in the rejects file and the strict error;
//! - a directory of part files (several row groups, every codec) reads as
//!   the one file holding the same rows; its layout rules and fingerprint;
//! - bad input (missing or mistyped column, truncated file, damaged page)
//!   is an error naming the file, column and row group, never a panic.

#![cfg(feature = "parquet")]

use arrow_array::builder::{Decimal128Builder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal256Array, Float32Array,
    Float64Array, Int8Array, Int32Array, Int64Array, LargeStringArray, ListArray, RecordBatch,
    StringArray, StringViewArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use arrow_buffer::i256;
use encore_data::input::fingerprint_file;
use encore_data::parquet::{fingerprint_parts, is_parquet_input, read_parquet};
use encore_data::{
    IngestError, IngestOptions, IngestReport, PurchaseLog, RejectReason, parse_timestamp,
    read_purchases, read_purchases_from_reader,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

// ---------------------------------------------------------------- helpers

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("a valid batch")
}

fn props(compression: Compression, row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(row_group_rows))
        .build()
}

fn write_with(path: &Path, batches: &[RecordBatch], props: WriterProperties) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

fn write(path: &Path, batch: &RecordBatch) {
    write_with(
        path,
        std::slice::from_ref(batch),
        props(Compression::SNAPPY, 1 << 20),
    );
}

fn strs(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn opts() -> IngestOptions {
    IngestOptions::default()
}

fn with_rejects(path: &Path) -> IngestOptions {
    IngestOptions {
        rejects_path: Some(path.to_path_buf()),
        ..IngestOptions::default()
    }
}

/// Ids of customers, items and orders, and every purchase (floats by bits).
type LogKey = (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<(u32, u32, u32, i64, u32, u32)>,
);

/// Everything the log holds, NaN prices compared by bits.
fn log_key(log: &PurchaseLog) -> LogKey {
    let ids = |m: &encore_data::IdMap| m.ids().map(str::to_owned).collect::<Vec<_>>();
    (
        ids(&log.customers),
        ids(&log.items),
        ids(&log.orders),
        log.purchases
            .iter()
            .map(|p| {
                (
                    p.order.0,
                    p.customer.0,
                    p.item.0,
                    p.time,
                    p.quantity.to_bits(),
                    p.price.to_bits(),
                )
            })
            .collect(),
    )
}

/// The report without what names the input (path, fingerprint, rejects path).
fn report_key(r: &IngestReport) -> String {
    let mut v = serde_json::to_value(r).unwrap();
    for k in ["path", "fingerprint", "rejects_path"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v.to_string()
}

fn t(s: &str) -> i64 {
    parse_timestamp(s).unwrap()
}

// ---------------------------------------------------------------- CSV = Parquet

/// Rows with every kind of reject, as CSV text and as typed Parquet columns.
#[test]
fn csv_and_parquet_give_the_same_log_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "order_id,customer_id,item_id,timestamp,quantity,price\n\
               o1,17850,A1,2011-01-01T10:00:00Z,2,1.25\n\
               o1,17850,B2,2011-01-01T10:00:00Z,1,0.85\n\
               ,13047,A1,2011-01-02T09:30:00Z,3,2.55\n\
               ,13047,C3,2011-01-02T09:30:00Z,1,\n\
               o3,,A1,2011-01-03T00:00:00Z,1,1\n\
               o4,12583,,2011-01-03T00:00:00Z,1,1\n\
               o5,12583,A1,2011-01-04T12:00:00Z,0,1\n\
               o6,12583,B2,2011-01-04T12:00:00Z,1,-1.5\n\
               C7,17850,A1,2011-01-05T08:00:00Z,-2,1.25\n\
               o8,99,D4,2011-01-06T23:59:59Z,12,1000.10\n";
    let csv_path = dir.path().join("h.csv");
    std::fs::write(&csv_path, csv).unwrap();

    let none_if = |s: &'static str| (!s.is_empty()).then_some(s);
    let order = ["o1", "o1", "", "", "o3", "o4", "o5", "o6", "C7", "o8"];
    let customer = [
        Some(17850i64),
        Some(17850),
        Some(13047),
        Some(13047),
        None,
        Some(12583),
        Some(12583),
        Some(12583),
        Some(17850),
        Some(99),
    ];
    let item = [
        Some("A1"),
        Some("B2"),
        Some("A1"),
        Some("C3"),
        Some("A1"),
        None,
        Some("A1"),
        Some("B2"),
        Some("A1"),
        Some("D4"),
    ];
    let time = [
        "2011-01-01T10:00:00Z",
        "2011-01-01T10:00:00Z",
        "2011-01-02T09:30:00Z",
        "2011-01-02T09:30:00Z",
        "2011-01-03T00:00:00Z",
        "2011-01-03T00:00:00Z",
        "2011-01-04T12:00:00Z",
        "2011-01-04T12:00:00Z",
        "2011-01-05T08:00:00Z",
        "2011-01-06T23:59:59Z",
    ];
    let quantity = [2, 1, 3, 1, 1, 1, 0, 1, -2, 12];
    let price = [
        Some(125i128),
        Some(85),
        Some(255),
        None,
        Some(100),
        Some(100),
        Some(100),
        Some(-150),
        Some(125),
        Some(100010),
    ];
    let mut prices = Decimal128Builder::new()
        .with_precision_and_scale(10, 2)
        .unwrap();
    for p in price {
        prices.append_option(p);
    }
    let b = batch(vec![
        ("order_id", strs(&order.map(none_if))),
        (
            "customer_id",
            Arc::new(Int64Array::from(customer.to_vec())) as ArrayRef,
        ),
        ("item_id", strs(&item)),
        (
            "timestamp",
            Arc::new(
                TimestampMillisecondArray::from(time.map(|s| t(s) * 1000).to_vec())
                    .with_timezone("UTC"),
            ),
        ),
        ("quantity", Arc::new(Int32Array::from(quantity.to_vec()))),
        ("price", Arc::new(prices.finish())),
    ]);
    let pq_path = dir.path().join("h.parquet");
    write(&pq_path, &b);

    let (csv_log, csv_report) =
        read_purchases(&csv_path, &with_rejects(&dir.path().join("c.rejects.csv"))).unwrap();
    let (pq_log, pq_report) =
        read_purchases(&pq_path, &with_rejects(&dir.path().join("p.rejects.csv"))).unwrap();
    assert_eq!(csv_report.rows_accepted, 6);
    assert_eq!(csv_report.rejected_total(), 4);
    assert_eq!(log_key(&pq_log), log_key(&csv_log));
    assert_eq!(report_key(&pq_report), report_key(&csv_report));
    assert_eq!(pq_report.fingerprint, fingerprint_file(&pq_path).unwrap());
    assert_ne!(pq_report.fingerprint, csv_report.fingerprint);

    // The rejects files agree on reason, field and values; the place differs.
    let rows = |p: &Path| {
        let mut r = csv::Reader::from_path(p).unwrap();
        r.records()
            .map(|r| {
                let r = r.unwrap();
                (
                    r[0].to_string(),
                    r[1].to_string(),
                    r[2].to_string(),
                    r[3].to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let c = rows(&dir.path().join("c.rejects.csv"));
    let p = rows(&dir.path().join("p.rejects.csv"));
    assert_eq!(c.len(), 4);
    assert_eq!(
        c.iter().map(|r| (&r.1, &r.2)).collect::<Vec<_>>(),
        p.iter().map(|r| (&r.1, &r.2)).collect::<Vec<_>>()
    );
    assert_eq!(c[0].0, "6");
    assert_eq!(p[0].0, format!("{} row group 0 row 4", pq_path.display()));
    assert_eq!(p[0].3, "o3,,A1,2011-01-03T00:00:00Z,1,1.00");
    assert_eq!(p[3].1, "bad_price");
    assert_eq!(p[3].3, "o6,12583,B2,2011-01-04T12:00:00Z,1,-1.50");
}

// ---------------------------------------------------------------- coercions

#[test]
fn every_accepted_type_reads_as_its_csv_text_would() {
    let dir = tempfile::tempdir().unwrap();
    let day = t("2011-12-09T00:00:00Z");
    let noon = t("2011-12-09T12:50:07Z");
    let n = 4;
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for s in ["7", " 7 ", "8", "7"] {
        dict.append_value(s);
    }
    let cases: Vec<(&str, ArrayRef)> = vec![
        (
            "c_utf8",
            strs(&[Some("a"), Some(" a "), Some("b"), Some("a")]),
        ),
        (
            "c_large",
            Arc::new(LargeStringArray::from(vec!["a", "a", "b", "a"])),
        ),
        (
            "c_view",
            Arc::new(StringViewArray::from(vec!["a", "a", "b", "a"])),
        ),
        (
            "c_bin",
            Arc::new(BinaryArray::from_vec(vec![b"a", b"a", b"b", b"a"])),
        ),
        ("c_dict", Arc::new(dict.finish())),
        ("c_i8", Arc::new(Int8Array::from(vec![7, 7, 8, 7]))),
        (
            "c_u64",
            Arc::new(UInt64Array::from(vec![u64::MAX, u64::MAX, 8, u64::MAX])),
        ),
        ("item_id", strs(&[Some("x"); 4])),
        ("ts_s", Arc::new(TimestampSecondArray::from(vec![noon; n]))),
        (
            "ts_ms",
            Arc::new(
                TimestampMillisecondArray::from(vec![noon * 1000 + 999; n]).with_timezone("+01:00"),
            ),
        ),
        (
            "ts_us",
            Arc::new(TimestampMicrosecondArray::from(vec![
                noon * 1_000_000 + 1;
                n
            ])),
        ),
        (
            "ts_ns",
            Arc::new(
                TimestampNanosecondArray::from(vec![noon * 1_000_000_000 + 5; n])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "d32",
            Arc::new(Date32Array::from(vec![(day / 86_400) as i32; n])),
        ),
        ("d64", Arc::new(Date64Array::from(vec![day * 1000; n]))),
        ("ts_text", strs(&[Some("2011-12-09 12:50:07"); 4])),
        ("q_f32", Arc::new(Float32Array::from(vec![1.5f32; n]))),
        ("q_f64", Arc::new(Float64Array::from(vec![2.55f64; n]))),
        ("q_text", strs(&[Some(" 2.55 "); 4])),
        (
            "p_d256",
            Arc::new(
                Decimal256Array::from(vec![i256::from_i128(-2_550_000); n])
                    .with_precision_and_scale(40, 2)
                    .unwrap(),
            ),
        ),
        (
            "p_d128",
            Arc::new({
                let mut b = Decimal128Builder::new()
                    .with_precision_and_scale(12, 3)
                    .unwrap();
                for _ in 0..n {
                    b.append_value(5);
                }
                b.finish()
            }),
        ),
    ];
    let path = dir.path().join("types.parquet");
    write(&path, &batch(cases));
    let read = |columns: &str| {
        let o = IngestOptions {
            columns: columns.parse().unwrap(),
            ..IngestOptions::default()
        };
        read_parquet(&path, &o).map_err(|e| e.to_string())
    };
    // Ids: text trimmed as CSV fields are; integers as their digits.
    for (col, expect) in [
        ("c_utf8", vec!["a", "b"]),
        ("c_large", vec!["a", "b"]),
        ("c_view", vec!["a", "b"]),
        ("c_bin", vec!["a", "b"]),
        ("c_dict", vec!["7", "8"]),
        ("c_i8", vec!["7", "8"]),
        ("c_u64", vec!["18446744073709551615", "8"]),
    ] {
        let (log, _) = read(&format!("customer_id={col},timestamp=ts_s")).unwrap();
        assert_eq!(log.customers.ids().collect::<Vec<_>>(), expect, "{col}");
    }
    // Times: any unit, any zone (the instant is UTC), dates, text.
    for (col, expect) in [
        ("ts_s", noon),
        ("ts_ms", noon),
        ("ts_us", noon),
        ("ts_ns", noon),
        ("d32", day),
        ("d64", day),
        ("ts_text", noon),
    ] {
        let (log, _) = read(&format!("customer_id=c_utf8,timestamp={col}")).unwrap();
        assert!(log.purchases.iter().all(|p| p.time == expect), "{col}");
    }
    // Numbers convert as their CSV text would.
    for (col, expect) in [
        ("q_f32", 1.5f32),
        ("q_f64", "2.55".parse::<f32>().unwrap()),
        ("q_text", "2.55".parse::<f32>().unwrap()),
        ("c_i8", 7.0),
        ("p_d128", "0.005".parse::<f32>().unwrap()),
    ] {
        let (log, _) = read(&format!(
            "customer_id=c_utf8,timestamp=ts_s,quantity={col},price={col}"
        ))
        .unwrap();
        assert_eq!(log.purchases[0].quantity, expect, "{col}");
        assert_eq!(log.purchases[0].price, expect, "{col}");
    }
    // A negative decimal (-25500.00) is a return, and a bad price.
    let err = read("customer_id=c_utf8,timestamp=ts_s,price=p_d256").unwrap_err();
    assert!(err.contains("no usable purchase"), "{err}");
    let (log, _) = read("customer_id=c_utf8,timestamp=ts_s,quantity=p_d256").unwrap();
    assert_eq!(log.purchases[0].quantity, -25500.0);
}

// ---------------------------------------------------------------- nulls

#[test]
fn nulls_are_empty_fields_with_their_place_in_rejects_and_strict_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        (
            "order_id",
            strs(&[None, None, Some("o2"), Some("o3"), Some("o4"), Some("o5")]),
        ),
        (
            "cust",
            strs(&[Some("c"), Some("c"), None, Some("c"), Some("c"), Some("c")]),
        ),
        (
            "item_id",
            strs(&[Some("i"), Some("j"), Some("i"), None, Some("i"), Some("i")]),
        ),
        (
            "timestamp",
            Arc::new(TimestampSecondArray::from(vec![
                Some(100),
                Some(100),
                Some(100),
                Some(100),
                None,
                Some(100),
            ])),
        ),
        (
            "quantity",
            Arc::new(Float64Array::from(vec![
                Some(1.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
                None,
            ])),
        ),
        (
            "price",
            Arc::new(Float64Array::from(vec![
                None,
                Some(2.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
            ])),
        ),
    ]);
    let path = dir.path().join("nulls.parquet");
    // Two rows per row group: the rejects name row groups 1 and 2.
    write_with(&path, &[b], props(Compression::UNCOMPRESSED, 2));
    let rejects = dir.path().join("r.csv");
    let o = IngestOptions {
        columns: "customer_id=cust".parse().unwrap(),
        rejects_path: Some(rejects.clone()),
        ..IngestOptions::default()
    };
    let (log, report) = read_purchases(&path, &o).unwrap();
    assert_eq!(report.rows_read, 6);
    assert_eq!(
        report.rejected,
        BTreeMap::from([
            (RejectReason::MissingCustomer, 1),
            (RejectReason::MissingItem, 1),
            (RejectReason::BadTimestamp, 1),
            (RejectReason::BadQuantity, 1),
        ])
    );
    // A null price is no price; a null order id groups by customer and time.
    assert!(log.purchases[0].price.is_nan());
    assert_eq!(log.purchases[1].price, 2.0);
    assert_eq!(log.orders.ids().collect::<Vec<_>>(), ["c@100"]);
    let text = std::fs::read_to_string(&rejects).unwrap();
    let p = path.display();
    assert_eq!(
        text,
        format!(
            "line,reason,field,raw\n\
             {p} row group 1 row 0,missing_customer,customer_id,\"o2,,i,1970-01-01T00:01:40Z,1,1\"\n\
             {p} row group 1 row 1,missing_item,item_id,\"o3,c,,1970-01-01T00:01:40Z,1,1\"\n\
             {p} row group 2 row 0,bad_timestamp,timestamp,\"o4,c,i,,1,1\"\n\
             {p} row group 2 row 1,bad_quantity,quantity,\"o5,c,i,1970-01-01T00:01:40Z,,1\"\n"
        )
    );
    let strict = IngestOptions {
        strict: true,
        ..o.clone()
    };
    let err = read_purchases(&path, &strict).unwrap_err();
    assert!(
        matches!(
            &err,
            IngestError::BadParquetRow {
                row_group: 1,
                row: 0,
                field: "customer_id",
                reason: RejectReason::MissingCustomer,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{p}: row group 1, row 0: field 'customer_id' (column 'cust'): empty, a customer id is required"
        )
    );
    // A null timestamp is named as a null.
    let b = batch(vec![
        ("customer_id", strs(&[Some("c")])),
        ("item_id", strs(&[Some("i")])),
        (
            "timestamp",
            Arc::new(TimestampSecondArray::from(vec![None::<i64>])),
        ),
    ]);
    write(&path, &b);
    let strict = IngestOptions {
        strict: true,
        ..IngestOptions::default()
    };
    let err = read_purchases(&path, &strict).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{p}: row group 0, row 0: field 'timestamp': null, a value is required")
    );
}

// ---------------------------------------------------------------- directories

fn sample_rows(from: usize, to: usize) -> RecordBatch {
    let ids: Vec<String> = (from..to).map(|i| format!("c{}", i % 7)).collect();
    let items: Vec<i32> = (from..to).map(|i| (i * 13 % 11) as i32).collect();
    let times: Vec<i64> = (from..to)
        .map(|i| 1_300_000_000 + i as i64 * 3600)
        .collect();
    let prices: Vec<f64> = (from..to).map(|i| (i % 5) as f64 * 0.25).collect();
    batch(vec![
        ("customer_id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("item_id", Arc::new(Int32Array::from(items))),
        (
            "timestamp",
            Arc::new(TimestampMicrosecondArray::from(
                times.iter().map(|t| t * 1_000_000).collect::<Vec<_>>(),
            )),
        ),
        ("price", Arc::new(Float64Array::from(prices))),
    ])
}

#[test]
fn a_directory_of_parts_reads_as_one_file_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("all.parquet");
    write(&one, &sample_rows(0, 1000));
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let codecs = [
        ("snappy", Compression::SNAPPY),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ("gzip", Compression::GZIP(GzipLevel::default())),
        ("lz4", Compression::LZ4_RAW),
        ("uncompressed", Compression::UNCOMPRESSED),
    ];
    // Written out of name order, with small row groups; Spark's markers around them.
    for (k, (codec_name, codec)) in codecs.into_iter().enumerate().rev() {
        let name = format!("part-{k:05}-x.{codec_name}.parquet");
        write_with(
            &parts.join(&name),
            &[sample_rows(k * 200, (k + 1) * 200)],
            props(codec, 64),
        );
        std::fs::write(parts.join(format!(".{name}.crc")), b"crc").unwrap();
    }
    std::fs::write(parts.join("_SUCCESS"), b"").unwrap();
    assert!(is_parquet_input(&parts) && is_parquet_input(&one));
    let (log1, rep1) = read_purchases(&one, &opts()).unwrap();
    let (log2, rep2) = read_purchases(&parts, &opts()).unwrap();
    assert_eq!(rep2.rows_read, 1000);
    assert_eq!(log_key(&log2), log_key(&log1));
    assert_eq!(report_key(&rep2), report_key(&rep1));
    assert_eq!(rep2.path, parts);

    // The fingerprint covers every part, its name and its bytes.
    let fp = fingerprint_parts(&parts).unwrap();
    assert_eq!(rep2.fingerprint, fp);
    assert_eq!(fingerprint_file(&parts).unwrap(), fp);
    std::fs::rename(
        parts.join("part-00004-x.uncompressed.parquet"),
        parts.join("part-00004-y.parquet"),
    )
    .unwrap();
    assert_ne!(fingerprint_parts(&parts).unwrap(), fp);
    assert_eq!(
        read_purchases(&parts, &opts()).unwrap().0.purchases.len(),
        1000
    );

    // Anything else in the directory is refused, not skipped.
    std::fs::write(parts.join("notes.txt"), b"x").unwrap();
    let err = read_purchases(&parts, &opts()).unwrap_err();
    assert!(
        matches!(&err, IngestError::ParquetDirEntry { entry, .. } if entry == "notes.txt"),
        "{err}"
    );
    std::fs::remove_file(parts.join("notes.txt")).unwrap();
    std::fs::create_dir(parts.join("year=2011")).unwrap();
    let err = read_purchases(&parts, &opts()).unwrap_err();
    assert!(
        err.to_string().contains("'year=2011' is a subdirectory"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("_SUCCESS"), b"").unwrap();
    assert!(matches!(
        read_purchases(&empty, &opts()),
        Err(IngestError::NoParquetParts { .. })
    ));
}

// ---------------------------------------------------------------- bad input

#[test]
fn missing_and_mistyped_columns_name_the_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.parquet");
    let p = path.display();
    write(
        &path,
        &batch(vec![
            ("customer", strs(&[Some("c")])),
            ("item_id", strs(&[Some("i")])),
            ("timestamp", Arc::new(TimestampSecondArray::from(vec![1]))),
            ("price", Arc::new(BooleanArray::from(vec![true]))),
            (
                "tags",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                    Some(vec![Some(1)]),
                ])),
            ),
            ("score", Arc::new(Float64Array::from(vec![1.0]))),
        ]),
    );
    let err = read_purchases(&path, &opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{p}: no column 'customer_id' for field customer_id (columns found: customer, item_id, timestamp, price, tags, score)"
        )
    );
    let with = |columns: &str| IngestOptions {
        columns: columns.parse().unwrap(),
        ..IngestOptions::default()
    };
    let err = read_purchases(&path, &with("customer_id=customer")).unwrap_err();
    assert!(
        matches!(&err, IngestError::ParquetColumnType { field: "price", .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{p}: column 'price' (field price) has type Boolean, expected an integer, float, decimal or string column"
        )
    );
    let err = read_purchases(&path, &with("customer_id=tags,price=score")).unwrap_err();
    assert!(
        err.to_string()
            .contains("column 'tags' (field customer_id) has type List("),
        "{err}"
    );
    // Float ids are refused: 17850.0 is not the id 17850 of a CSV file.
    let err = read_purchases(&path, &with("customer_id=score,price=score")).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected a string or integer column"),
        "{err}"
    );
    let err = read_purchases(
        &path,
        &with("customer_id=customer,price=score,timestamp=score"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected a timestamp, date or string column"),
        "{err}"
    );
    // A mapped optional column must exist, as in CSV.
    let err = read_purchases(
        &path,
        &with("customer_id=customer,price=score,quantity=Qty"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("no column 'Qty' for field quantity"),
        "{err}"
    );
    assert!(read_purchases(&path, &with("customer_id=customer,price=score")).is_ok());
}

#[test]
fn truncated_and_damaged_files_are_errors_naming_file_and_row_group() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_with(
        &good,
        &[sample_rows(0, 3000)],
        props(Compression::UNCOMPRESSED, 1000),
    );
    let bytes = std::fs::read(&good).unwrap();

    // A truncated file (its footer gone) and a file that is not Parquet.
    for (name, content) in [
        ("cut.parquet", &bytes[..bytes.len() / 2]),
        ("cut-footer.parquet", &bytes[..bytes.len() - 3]),
        ("text.parquet", b"customer_id,item_id\n".as_slice()),
        ("tiny.parquet", b"PAR1".as_slice()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = read_purchases(&path, &opts()).unwrap_err();
        assert!(
            matches!(
                &err,
                IngestError::Parquet {
                    row_group: None,
                    ..
                }
            ),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{err}"
        );
    }

    // A damaged page header: its row group and column are named.
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&std::fs::File::open(&good).unwrap())
        .unwrap();
    let chunk = meta.row_group(1).column(2);
    let mut damaged = bytes.clone();
    let at = chunk.data_page_offset() as usize;
    for b in &mut damaged[at..at + 12] {
        *b = 0xff;
    }
    let path = dir.path().join("page.parquet");
    std::fs::write(&path, &damaged).unwrap();
    let err = read_purchases(&path, &opts()).unwrap_err();
    assert!(
        matches!(&err, IngestError::Parquet { row_group: Some(1), column: Some(c), .. } if c == "timestamp"),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "{}: row group 1, column 'timestamp': cannot read Parquet data",
            path.display()
        )),
        "{err}"
    );

    // Flipped bytes anywhere in the data never panic: an error or rows.
    let data_end = bytes.len()
        - 8
        - u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap()) as usize;
    for k in 0..64 {
        let mut flipped = bytes.clone();
        let at = 4 + (k * 7919) % (data_end - 4);
        for b in &mut flipped[at..(at + 4).min(data_end)] {
            *b ^= 0x5a;
        }
        std::fs::write(&path, &flipped).unwrap();
        if let Err(e) = read_purchases(&path, &opts()) {
            assert!(
                e.to_string().starts_with(&path.display().to_string()),
                "{e}"
            );
        }
    }
}

#[test]
fn csv_reader_untouched_by_parquet_dispatch() {
    // A CSV file that happens to be called *.csv still reads as CSV, and
    // text from a reader is never taken for Parquet.
    let text = "customer_id,item_id,timestamp\nc,i,2011-01-01\n";
    let (log, _) =
        read_purchases_from_reader(text.as_bytes(), Path::new("x.parquet"), &opts()).unwrap();
    assert_eq!(log.purchases.len(), 1);
}

// ---------------------------------------------------------------- interop

/// Files written by pandas (`to_parquet` defaults: large strings, a
/// categorical, nullable Int64 ids, microsecond timestamps, float64 prices)
/// and the way Spark writes a directory (INT96 timestamps, DECIMAL(10,2)
/// prices, INT32 ids, `_SUCCESS` and `.crc` files); see
/// `fixtures/parquet/make_fixtures.py`. Both read as the same rows in CSV.
#[test]
fn files_written_by_pandas_and_spark_read_as_their_csv() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parquet");
    let o = IngestOptions {
        columns: "order_id=InvoiceNo,customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
            .parse()
            .unwrap(),
        ..IngestOptions::default()
    };
    let (csv_log, csv_report) = read_purchases(&dir.join("same_rows.csv"), &o).unwrap();
    assert_eq!(csv_report.rows_accepted, 5);
    assert_eq!(
        csv_report.rejected,
        BTreeMap::from([
            (RejectReason::MissingCustomer, 1),
            (RejectReason::ZeroQuantity, 1)
        ])
    );
    for input in ["pandas.parquet", "spark"] {
        let (log, report) = read_purchases(&dir.join(input), &o).unwrap();
        assert_eq!(log_key(&log), log_key(&csv_log), "{input}");
        assert_eq!(report_key(&report), report_key(&csv_report), "{input}");
    }
}

// ---------------------------------------------------------------- record batches in memory

/// Batches handed over in memory (the Python package's DataFrames) read as
/// the Parquet file holding them: the same log and report; rejected rows are
/// located by their row over all batches; the fingerprint hashes the rows.
#[test]
fn record_batches_read_as_the_parquet_file_holding_them() {
    use encore_data::parquet::read_record_batches;
    let dir = tempfile::tempdir().unwrap();
    // Every column nullable, and one row with a null customer in the second
    // batch (row 45 overall).
    let nullable = |b: &RecordBatch, customers: Option<ArrayRef>| {
        let schema = b.schema();
        let columns: Vec<(String, ArrayRef, bool)> = schema
            .fields()
            .iter()
            .zip(b.columns())
            .enumerate()
            .map(|(i, (f, c))| match (i, &customers) {
                (0, Some(ids)) => (f.name().clone(), ids.clone(), true),
                _ => (f.name().clone(), c.clone(), true),
            })
            .collect();
        RecordBatch::try_from_iter_with_nullable(columns).unwrap()
    };
    let mut ids: Vec<Option<String>> = (40..90).map(|i| Some(format!("c{}", i % 7))).collect();
    ids[5] = None;
    let batches = vec![
        nullable(&sample_rows(0, 40), None),
        nullable(&sample_rows(40, 90), Some(Arc::new(StringArray::from(ids)))),
    ];
    let file = dir.path().join("p.parquet");
    write_with(&file, &batches, props(Compression::SNAPPY, 1 << 20));
    let (from_file, file_report) = read_parquet(&file, &opts()).unwrap();
    let schema = batches[0].schema();
    let rejects = dir.path().join("rejects.csv");
    let read = |batches: Vec<RecordBatch>| {
        read_record_batches(
            Path::new("DataFrame"),
            &schema,
            batches.into_iter().map(Ok),
            &with_rejects(&rejects),
        )
        .unwrap()
    };
    let (from_memory, memory_report) = read(batches.clone());
    assert_eq!(log_key(&from_memory), log_key(&from_file));
    assert_eq!(report_key(&memory_report), report_key(&file_report));
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    assert!(
        rejected.contains("DataFrame row group 0 row 45"),
        "{rejected}"
    );
    // The fingerprint is the rows': the same rows give the same one, another row another.
    assert!(memory_report.fingerprint.starts_with("sha256:"));
    let (_, again) = read(batches.clone());
    assert_eq!(again.fingerprint, memory_report.fingerprint);
    let (_, fewer) = read(vec![batches[0].clone()]);
    assert_ne!(fewer.fingerprint, memory_report.fingerprint);
    // A batch the producer cannot deliver is an error naming the input.
    let err = read_record_batches(
        Path::new("DataFrame"),
        &schema,
        [Ok(batches[0].clone()), Err("stream broke".to_string())],
        &opts(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("DataFrame") && err.contains("stream broke"),
        "{err}"
    );
}
