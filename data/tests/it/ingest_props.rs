//! Property tests of the purchase-history reader (`ingest.rs`, `timestamp.rs`).
//!
//! - arbitrary bytes (invalid UTF-8, NULs, CR/LF mixes, stray quotes, BOMs,
//!   very long fields, gzip or not) never panic: the reader answers `Ok` with
//!   consistent counts or an error;
//! - generated valid files (ids with commas, quotes, line breaks and
//!   non-ASCII text; every accepted timestamp form; quantities and prices)
//!   are read back row for row, with the same values, none lost;
//! - one corrupted row in a valid file is rejected with the line it starts on
//!   and the field at fault, both in the rejects file and as the strict
//!   mode's error.
//!
//! Expected timestamps come from a naive day count written here, not from the
//! crate's own calendar code.

use encore_data::{
    IngestError, IngestOptions, IngestReport, PurchaseLog, RejectReason, read_purchases,
    read_purchases_from_reader,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::Path;

// ---------------------------------------------------------------- helpers

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn read(bytes: &[u8], opts: &IngestOptions) -> Result<(PurchaseLog, IngestReport), IngestError> {
    read_purchases_from_reader(bytes, Path::new("p.csv"), opts)
}

/// The rows of a rejects file: `(line, reason, field, raw)`.
fn rejects_rows(path: &Path) -> Vec<(u64, String, String, String)> {
    let mut r = csv::Reader::from_path(path).expect("the rejects file is CSV");
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["line", "reason", "field", "raw"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.expect("a rejects row");
            (
                rec[0].parse().expect("a line number"),
                rec[1].to_string(),
                rec[2].to_string(),
                rec[3].to_string(),
            )
        })
        .collect()
}

/// What holds for any successful read, whatever the input.
fn check_report(
    bytes_hashed: &[u8],
    log: &PurchaseLog,
    report: &IngestReport,
    strict: bool,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        report.rows_accepted + report.rejected_total(),
        report.rows_read
    );
    prop_assert_eq!(log.purchases.len() as u64, report.rows_accepted);
    prop_assert!(report.rows_accepted > 0, "Ok without a usable row");
    prop_assert!(report.rejected.values().all(|&n| n > 0));
    if strict {
        prop_assert_eq!(report.rejected_total(), 0);
    }
    prop_assert_eq!(&report.fingerprint, &sha256(bytes_hashed));
    prop_assert_eq!(report.customers, log.customers.len());
    prop_assert_eq!(report.items, log.items.len());
    for p in &log.purchases {
        prop_assert!(p.quantity.is_finite() && p.quantity != 0.0);
        prop_assert!(p.price.is_nan() || (p.price.is_finite() && p.price >= 0.0));
        prop_assert!(!log.customers.id(p.customer.0).is_empty());
        prop_assert!(!log.items.id(p.item.0).is_empty());
    }
    let _ = report.summary();
    Ok(())
}

/// Days since 1970-01-01, counted the slow way.
fn naive_days(y: i64, m: u32, d: u32) -> i64 {
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let year_len = |y: i64| if leap(y) { 366 } else { 365 };
    let mut days = 0i64;
    if y >= 1970 {
        for yy in 1970..y {
            days += year_len(yy);
        }
    } else {
        for yy in y..1970 {
            days -= year_len(yy);
        }
    }
    let month_len = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days += month_len[..(m - 1) as usize].iter().sum::<i64>();
    days + i64::from(d) - 1
}

fn days_in_month(y: i64, m: u32) -> u32 {
    (naive_days(
        if m == 12 { y + 1 } else { y },
        if m == 12 { 1 } else { m + 1 },
        1,
    ) - naive_days(y, m, 1)) as u32
}

// ---------------------------------------------------------------- (a) arbitrary bytes

/// Pieces that make CSV readers stumble.
fn nasty_piece() -> impl Strategy<Value = Vec<u8>> {
    let tokens: Vec<&'static [u8]> = vec![
        b"\r\n",
        b"\n",
        b"\r",
        b"\"",
        b"\"\"",
        b",",
        b"\0",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"\xc3",
        b"\xed\xa0\x80",
        b"order_id,customer_id,item_id,timestamp,quantity,price\n",
        b"customer_id,item_id,timestamp\n",
        b"\xef\xbb\xbfcustomer_id , item_id,timestamp,quantity\r\n",
        b"o1,c1,i1,2011-12-09T12:50:00Z,2,1.5\n",
        b"c1,i1,2011-12-09\n",
        b"c2,\"i,2\",20111209,-1,\n",
        b"c3,i3,2011-12-09 12:50,1e39,NaN\n",
        b"c4,i4,2011-02-29,0,-0\n",
        b"\x1f\x8b",
    ];
    prop_oneof![
        4 => proptest::sample::select(tokens).prop_map(<[u8]>::to_vec),
        3 => proptest::collection::vec(any::<u8>(), 0..48),
        2 => "[ -~]{0,40}".prop_map(String::into_bytes),
        1 => (any::<u8>(), 1_000usize..70_000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn nasty_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(nasty_piece(), 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Any bytes, lenient or strict, with or without a rejects file or a
    /// column map: an answer, never a panic, and a consistent report.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in nasty_bytes(),
        strict in any::<bool>(),
        rejects in any::<bool>(),
        mapped in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rejects_path = dir.path().join("rejects.csv");
        let opts = IngestOptions {
            strict,
            rejects_path: rejects.then(|| rejects_path.clone()),
            columns: if mapped {
                "customer_id=c,item_id=i,timestamp=t,quantity=q".parse().unwrap()
            } else {
                Default::default()
            },
        };
        match read(&bytes, &opts) {
            Ok((log, report)) => {
                check_report(&bytes, &log, &report, strict)?;
                if rejects && report.rejected_total() > 0 {
                    let rows = rejects_rows(&rejects_path);
                    prop_assert_eq!(rows.len() as u64, report.rejected_total());
                    prop_assert!(rows.iter().all(|r| r.0 >= 2), "a data row is on line 2 or later");
                } else {
                    prop_assert!(!rejects_path.exists());
                }
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.starts_with("p.csv") || message.starts_with("rejects file"), "{}", message);
                if let IngestError::BadRow { line, .. } = e {
                    prop_assert!(strict);
                    prop_assert!(line >= 2);
                }
            }
        }
    }

    /// The same through a file: gzip detection by content and by name,
    /// corrupt and truncated gzip streams included.
    #[test]
    fn arbitrary_files_never_panic(
        bytes in nasty_bytes(),
        compress in any::<bool>(),
        truncate_to in proptest::option::of(0.0f64..1.0),
        gz_name in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut stored = if compress { gzip(&bytes) } else { bytes.clone() };
        if let Some(f) = truncate_to {
            stored.truncate((stored.len() as f64 * f) as usize);
        }
        let path = dir.path().join(if gz_name { "h.csv.gz" } else { "h.csv" });
        std::fs::write(&path, &stored).unwrap();
        match read_purchases(&path, &IngestOptions::default()) {
            Ok((log, report)) => {
                check_report(&stored, &log, &report, false)?;
                if compress && truncate_to.is_none() {
                    let (plain_log, plain) = read(&bytes, &IngestOptions::default()).unwrap();
                    prop_assert_eq!(plain.rows_read, report.rows_read);
                    prop_assert_eq!(&plain.rejected, &report.rejected);
                    // Bitwise, so that the NaN of a missing price equals itself.
                    let bits = |l: &PurchaseLog| {
                        l.purchases
                            .iter()
                            .map(|p| (p.order, p.customer, p.item, p.time, p.quantity.to_bits(), p.price.to_bits()))
                            .collect::<Vec<_>>()
                    };
                    prop_assert_eq!(bits(&plain_log), bits(&log));
                }
            }
            Err(e) => {
                prop_assert!(e.to_string().starts_with(&path.display().to_string()), "{}", e);
                if gz_name && !stored.starts_with(&[0x1f, 0x8b]) {
                    prop_assert!(matches!(e, IngestError::NotGzip { .. }), "{}", e);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- (b) valid files

#[derive(Debug, Clone)]
struct Time {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    /// 0: RFC 3339 `Z`, 1: with an offset, 2: `T` and fractional seconds,
    /// 3: `YYYY-MM-DD HH:MM:SS`, 4: `YYYY-MM-DD HH:MM`, 5: `YYYY-MM-DD`, 6: `YYYYMMDD`.
    form: u8,
    /// Offset east of UTC in minutes (form 1).
    offset: i32,
    lowercase: bool,
    pad: bool,
}

impl Time {
    fn text(&self) -> String {
        let Time {
            y, mo, d, h, mi, s, ..
        } = *self;
        let (t, z) = if self.lowercase {
            ('t', 'z')
        } else {
            ('T', 'Z')
        };
        let sign = if self.offset < 0 { '-' } else { '+' };
        let off = self.offset.unsigned_abs();
        let text = match self.form {
            0 => format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{z}"),
            1 => format!(
                "{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{sign}{:02}:{:02}",
                off / 60,
                off % 60
            ),
            2 => format!(
                "{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}.{:03}{z}",
                s * 7
            ),
            3 => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
            4 => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}"),
            5 => format!("{y:04}-{mo:02}-{d:02}"),
            _ => format!("{y:04}{mo:02}{d:02}"),
        };
        if self.pad { format!("  {text} ") } else { text }
    }

    /// Seconds since the epoch the text stands for.
    fn expected(&self) -> i64 {
        let day = naive_days(self.y, self.mo, self.d) * 86_400;
        let clock = i64::from(self.h * 3600 + self.mi * 60 + self.s);
        match self.form {
            0 | 2 | 3 => day + clock,
            1 => day + clock - i64::from(self.offset) * 60,
            4 => day + clock - i64::from(self.s),
            _ => day,
        }
    }
}

fn time() -> impl Strategy<Value = Time> {
    (1900i64..=2100, 1u32..=12)
        .prop_flat_map(|(y, mo)| {
            (
                Just(y),
                Just(mo),
                1..=days_in_month(y, mo),
                (0u32..24, 0u32..60, 0u32..60),
                0u8..7,
                -(23 * 60 + 59)..=(23 * 60 + 59),
                any::<(bool, bool)>(),
            )
        })
        .prop_map(
            |(y, mo, d, (h, mi, s), form, offset, (lowercase, pad))| Time {
                y,
                mo,
                d,
                h,
                mi,
                s,
                form,
                offset,
                lowercase,
                pad,
            },
        )
}

/// An id as written: commas, quotes, line breaks, tabs, non-ASCII text and
/// surrounding blanks; the reader trims the blanks. Never blank.
fn id() -> impl Strategy<Value = String> {
    "[ \t]{0,2}[a-zA-Z0-9,\"'; \\n\\r\\t\u{e9}\u{4e2d}\u{1F600}\u{feff}\u{0}#-]{0,16}[a-zA-Z0-9\"\u{e9}\u{1F600}][ ]{0,2}"
}

fn quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        (1i32..1000, any::<bool>()).prop_map(|(q, neg)| (if neg { -q } else { q }).to_string()),
        any::<f32>()
            .prop_filter("finite and not zero", |q| q.is_finite() && *q != 0.0)
            .prop_map(|q| q.to_string()),
        (1.0e-30f32..1.0e30).prop_map(|q| format!("{q:e}")),
    ]
}

fn price() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (0u32..100_000).prop_map(|c| format!("{}.{:02}", c / 100, c % 100)),
        (0.0f32..1.0e9).prop_map(|p| p.to_string()),
    ]
}

#[derive(Debug, Clone)]
struct Row {
    order: String,
    customer: String,
    item: String,
    time: Time,
    quantity: String,
    price: String,
    note: String,
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop_oneof![1 => Just(String::new()), 3 => id()],
        id(),
        id(),
        time(),
        quantity(),
        price(),
        "[ -~\u{e9}\\n]{0,12}",
    )
        .prop_map(|(order, customer, item, time, quantity, price, note)| Row {
            order,
            customer,
            item,
            time,
            quantity,
            price,
            note,
        })
}

/// The columns of a generated file, in file order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Col {
    Order,
    Customer,
    Item,
    Time,
    Quantity,
    Price,
    Note,
}

impl Col {
    fn header(self) -> &'static str {
        match self {
            Col::Order => "order_id",
            Col::Customer => "customer_id",
            Col::Item => "item_id",
            Col::Time => "timestamp",
            Col::Quantity => "quantity",
            Col::Price => "price",
            Col::Note => "note",
        }
    }

    fn value(self, row: &Row) -> String {
        match self {
            Col::Order => row.order.clone(),
            Col::Customer => row.customer.clone(),
            Col::Item => row.item.clone(),
            Col::Time => row.time.text(),
            Col::Quantity => row.quantity.clone(),
            Col::Price => row.price.clone(),
            Col::Note => row.note.clone(),
        }
    }
}

fn columns() -> impl Strategy<Value = Vec<Col>> {
    (any::<[bool; 4]>()).prop_flat_map(|[order, quantity, price, note]| {
        let mut cols = vec![Col::Customer, Col::Item, Col::Time];
        for (on, col) in [
            (order, Col::Order),
            (quantity, Col::Quantity),
            (price, Col::Price),
            (note, Col::Note),
        ] {
            if on {
                cols.push(col);
            }
        }
        Just(cols).prop_shuffle()
    })
}

#[derive(Debug, Clone)]
struct File {
    cols: Vec<Col>,
    rows: Vec<Row>,
    crlf: bool,
    bom: bool,
    /// Quote every field, not only those that need it.
    quote_all: bool,
}

impl File {
    fn eol(&self) -> &'static str {
        if self.crlf { "\r\n" } else { "\n" }
    }

    fn field(&self, value: &str) -> String {
        let needs = value.contains([',', '"', '\n', '\r']) || value.is_empty();
        if self.quote_all || (needs && !value.is_empty()) {
            format!("\"{}\"", value.replace('"', "\"\""))
        } else {
            value.to_string()
        }
    }

    fn header(&self) -> String {
        let names: Vec<&str> = self.cols.iter().map(|c| c.header()).collect();
        let bom = if self.bom { "\u{feff}" } else { "" };
        format!("{bom}{}{}", names.join(","), self.eol())
    }

    fn line(&self, row: &Row) -> String {
        let fields: Vec<String> = self
            .cols
            .iter()
            .map(|c| self.field(&c.value(row)))
            .collect();
        format!("{}{}", fields.join(","), self.eol())
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.header();
        for row in &self.rows {
            out.push_str(&self.line(row));
        }
        out.into_bytes()
    }

    fn has(&self, col: Col) -> bool {
        self.cols.contains(&col)
    }
}

fn file() -> impl Strategy<Value = File> {
    (
        columns(),
        proptest::collection::vec(row(), 1..40),
        any::<(bool, bool, bool)>(),
    )
        .prop_map(|(cols, rows, (crlf, bom, quote_all))| File {
            cols,
            rows,
            crlf,
            bom,
            quote_all,
        })
}

/// The line each row starts on (the header is line 1): one more than the
/// line breaks before it (`\r\n`, `\n` or a lone `\r`).
fn start_lines(file: &File) -> Vec<u64> {
    let breaks =
        |s: &str| (s.matches('\n').count() + s.replace("\r\n", "\n").matches('\r').count()) as u64;
    let mut line = 1 + breaks(&file.header());
    file.rows
        .iter()
        .map(|row| {
            let start = line;
            line += breaks(&file.line(row));
            start
        })
        .collect()
}

fn check_roundtrip(
    file: &File,
    log: &PurchaseLog,
    report: &IngestReport,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(report.rows_read, file.rows.len() as u64);
    prop_assert_eq!(report.rejected_total(), 0, "{:?}", report.rejected);
    prop_assert_eq!(log.purchases.len(), file.rows.len());
    let mut returns = 0;
    for (row, p) in file.rows.iter().zip(&log.purchases) {
        let customer = row.customer.trim();
        prop_assert_eq!(log.customers.id(p.customer.0), customer);
        prop_assert_eq!(log.items.id(p.item.0), row.item.trim());
        prop_assert_eq!(
            p.time,
            row.time.expected(),
            "timestamp {:?}",
            row.time.text()
        );
        let order = if file.has(Col::Order) && !row.order.trim().is_empty() {
            row.order.trim().to_string()
        } else {
            format!("{customer}@{}", { p.time })
        };
        prop_assert_eq!(log.orders.id(p.order.0), order.as_str());
        let quantity: f32 = if file.has(Col::Quantity) {
            row.quantity.parse().unwrap()
        } else {
            1.0
        };
        prop_assert_eq!(p.quantity, quantity);
        if quantity < 0.0 {
            returns += 1;
        }
        if file.has(Col::Price) && !row.price.is_empty() {
            prop_assert_eq!(p.price, row.price.parse::<f32>().unwrap());
        } else {
            prop_assert!(p.price.is_nan());
        }
    }
    prop_assert_eq!(report.returns, returns);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every row of a valid file is read, in order, with the values written.
    #[test]
    fn valid_files_roundtrip(file in file(), strict in any::<bool>(), compress in any::<bool>()) {
        let bytes = file.bytes();
        let opts = IngestOptions { strict, ..Default::default() };
        let (log, report) = if compress {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.csv.gz");
            std::fs::write(&path, gzip(&bytes)).unwrap();
            read_purchases(&path, &opts).unwrap()
        } else {
            read(&bytes, &opts).unwrap()
        };
        check_roundtrip(&file, &log, &report)?;
        if !compress {
            prop_assert_eq!(&report.fingerprint, &sha256(&bytes));
        }
    }
}

// ---------------------------------------------------------------- (c) one bad row

/// How a row is damaged, and what the reader must say about it.
#[derive(Debug, Clone, Copy)]
enum Damage {
    NoCustomer,
    NoItem,
    BadTime(usize),
    BadQuantity(usize),
    ZeroQuantity(usize),
    BadPrice(usize),
    MissingColumn,
    ExtraColumn,
    InvalidUtf8Item,
}

const BAD_TIMES: [&str; 6] = [
    "2011-13-01",
    "2011-02-30",
    "yesterday",
    "2011-12-09T25:00:00Z",
    "12/09/2011",
    "2011-12-09T12:50:00+0100",
];
const BAD_QUANTITIES: [&str; 5] = ["x", "NaN", "inf", "1e39", "--1"];
const ZERO_QUANTITIES: [&str; 3] = ["0", "-0.0", "1e-50"];
const BAD_PRICES: [&str; 5] = ["-1", "NaN", "-inf", "abc", "1e39"];

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::NoCustomer),
        Just(Damage::NoItem),
        (0..BAD_TIMES.len()).prop_map(Damage::BadTime),
        (0..BAD_QUANTITIES.len()).prop_map(Damage::BadQuantity),
        (0..ZERO_QUANTITIES.len()).prop_map(Damage::ZeroQuantity),
        (0..BAD_PRICES.len()).prop_map(Damage::BadPrice),
        Just(Damage::MissingColumn),
        Just(Damage::ExtraColumn),
        Just(Damage::InvalidUtf8Item),
    ]
}

/// The file's bytes with row `at` damaged, and the expected reason and field.
fn damaged(file: &File, at: usize, damage: Damage) -> (Vec<u8>, RejectReason, &'static str) {
    let mut file = file.clone();
    let mut cols = file.cols.clone();
    let (reason, field) = {
        let row = &mut file.rows[at];
        match damage {
            Damage::NoCustomer => {
                row.customer = " ".into();
                (RejectReason::MissingCustomer, "customer_id")
            }
            Damage::NoItem => {
                row.item = String::new();
                (RejectReason::MissingItem, "item_id")
            }
            Damage::BadTime(_) => (RejectReason::BadTimestamp, "timestamp"),
            Damage::BadQuantity(_) => (RejectReason::BadQuantity, "quantity"),
            Damage::ZeroQuantity(_) => (RejectReason::ZeroQuantity, "quantity"),
            Damage::BadPrice(_) => (RejectReason::BadPrice, "price"),
            Damage::MissingColumn | Damage::ExtraColumn => (RejectReason::WrongColumnCount, "row"),
            Damage::InvalidUtf8Item => (RejectReason::InvalidUtf8, "item_id"),
        }
    };
    // Columns the damage needs are added to the whole file.
    let need = match damage {
        Damage::BadQuantity(_) | Damage::ZeroQuantity(_) => Some(Col::Quantity),
        Damage::BadPrice(_) => Some(Col::Price),
        _ => None,
    };
    if let Some(col) = need.filter(|c| !cols.contains(c)) {
        cols.push(col);
        if col == Col::Quantity {
            for r in &mut file.rows {
                r.quantity = "1".into();
            }
        }
    }
    file.cols = cols;
    let mut out = file.header().into_bytes();
    for (k, row) in file.rows.iter().enumerate() {
        if k != at {
            out.extend_from_slice(file.line(row).as_bytes());
            continue;
        }
        let mut fields: Vec<Vec<u8>> = file
            .cols
            .iter()
            .map(|&c| {
                let value = match (damage, c) {
                    (Damage::BadTime(i), Col::Time) => BAD_TIMES[i].to_string(),
                    (Damage::BadQuantity(i), Col::Quantity) => BAD_QUANTITIES[i].to_string(),
                    (Damage::ZeroQuantity(i), Col::Quantity) => ZERO_QUANTITIES[i].to_string(),
                    (Damage::BadPrice(i), Col::Price) => BAD_PRICES[i].to_string(),
                    _ => c.value(row),
                };
                let mut bytes = file.field(&value).into_bytes();
                if matches!((damage, c), (Damage::InvalidUtf8Item, Col::Item)) {
                    bytes = b"\"\xff\xfe".to_vec();
                    bytes.extend_from_slice(row.item.replace('"', "\"\"").as_bytes());
                    bytes.push(b'"');
                }
                bytes
            })
            .collect();
        match damage {
            Damage::MissingColumn => {
                fields.pop();
            }
            Damage::ExtraColumn => fields.push(b"extra".to_vec()),
            _ => {}
        }
        out.extend_from_slice(&fields.join(&b","[..]));
        out.extend_from_slice(file.eol().as_bytes());
    }
    (out, reason, field)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// A valid file with one damaged row: the lenient reader keeps every other
    /// row and writes the damaged one to the rejects file with its line,
    /// reason and field; the strict reader fails naming the same line and field.
    #[test]
    fn one_bad_row_is_reported_with_its_line_and_field(
        file in file(),
        at in any::<proptest::sample::Index>(),
        damage in damage(),
    ) {
        let at = at.index(file.rows.len());
        let (bytes, reason, field) = damaged(&file, at, damage);
        let line = start_lines(&file)[at];

        let dir = tempfile::tempdir().unwrap();
        let rejects = dir.path().join("rejects.csv");
        let opts = IngestOptions { rejects_path: Some(rejects.clone()), ..Default::default() };
        match read(&bytes, &opts) {
            Ok((log, report)) => {
                prop_assert_eq!(report.rows_read, file.rows.len() as u64);
                prop_assert_eq!(report.rows_accepted, file.rows.len() as u64 - 1);
                prop_assert_eq!(log.purchases.len(), file.rows.len() - 1);
                prop_assert_eq!(report.rejected.get(&reason).copied(), Some(1), "{:?}", report.rejected);
                prop_assert_eq!(report.rejected_total(), 1);
                let rows = rejects_rows(&rejects);
                prop_assert_eq!(rows.len(), 1);
                prop_assert_eq!(rows[0].0, line);
                prop_assert_eq!(rows[0].1.as_str(), reason.as_str());
                prop_assert_eq!(rows[0].2.as_str(), field);
                // The other rows are read as written.
                let mut rest = file.clone();
                rest.rows.remove(at);
                for (row, p) in rest.rows.iter().zip(&log.purchases) {
                    prop_assert_eq!(log.customers.id(p.customer.0), row.customer.trim());
                    prop_assert_eq!(log.items.id(p.item.0), row.item.trim());
                    prop_assert_eq!(p.time, row.time.expected());
                }
            }
            Err(e) => {
                // Only a one-row file may have nothing left.
                prop_assert_eq!(file.rows.len(), 1, "{}", e);
                prop_assert!(matches!(e, IngestError::NoRows { rejected: 1, .. }), "{}", e);
            }
        }

        let strict = IngestOptions { strict: true, ..Default::default() };
        let err = read(&bytes, &strict).unwrap_err();
        match &err {
            IngestError::BadRow { line: l, field: f, reason: r, .. } => {
                prop_assert_eq!(*l, line, "{}", err);
                prop_assert_eq!(*f, field);
                prop_assert_eq!(*r, reason);
            }
            other => prop_assert!(false, "not a BadRow: {}", other),
        }
        let prefix = format!("p.csv:{line}: ");
        prop_assert!(err.to_string().starts_with(&prefix), "{}", err);
    }
}
