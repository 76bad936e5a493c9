//! `encore-train fit --events DIR`: the purchases of an event log extend the
//! history (its range and counts), events of orders already in the input file
//! are not counted twice, and the counts reach the summary and the manifest.

use encore_data::event_log::{EventLog, EventLogOptions};
use encore_data::events::{Event, EventKind};
use encore_data::synth::{SynthParams, generate, write_csv};
use encore_data::timestamp::format_timestamp;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

fn fit(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .arg("fit")
        .args(args)
        .output()
        .expect("runs encore-train");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn fit_merges_event_purchases_once() {
    let dir = tempfile::tempdir().unwrap();
    let full = generate(&SynthParams {
        customers: 300,
        items: 80,
        purchases: 5_000,
        categories: 4,
        ..SynthParams::default()
    });
    let (_, last) = full.time_range().unwrap();
    let cutoff = last - 30 * 86_400;
    let (early, late) = full.split_at(cutoff);
    let csv = dir.path().join("early.csv");
    write_csv(&early, &csv).unwrap();

    // The later purchases arrive as events, plus: three lines of orders the
    // file already has (must be skipped), one exposure, and a torn last line.
    let purchase = |id: String, p: &encore_data::Purchase| Event {
        id,
        time: p.time,
        received_at: None,
        kind: EventKind::Purchase {
            order_id: full.orders.id(p.order.0).to_string(),
            customer: full.customers.id(p.customer.0).to_string(),
            item: full.items.id(p.item.0).to_string(),
            quantity: f64::from(p.quantity),
            price: Some(f64::from(p.price)),
        },
    };
    let mut events: Vec<Event> = late
        .purchases
        .iter()
        .enumerate()
        .map(|(n, p)| purchase(format!("late-{n}"), p))
        .collect();
    let merged = events.len() as u64;
    let late_orders: HashSet<u32> = late.purchases.iter().map(|p| p.order.0).collect();
    events.extend(
        early.purchases[..3]
            .iter()
            .enumerate()
            .map(|(n, p)| purchase(format!("early-{n}"), p)),
    );
    events.push(Event {
        id: "x1".into(),
        time: last,
        received_at: None,
        kind: EventKind::Exposure {
            customer: "c".into(),
            list: "for_you".into(),
            items: vec!["a".into()],
            experiment: None,
            variant: None,
            request_id: None,
        },
    });
    let log_dir = dir.path().join("events");
    let mut log = EventLog::open(&log_dir, EventLogOptions::default()).unwrap();
    let o = log.append(events, last + 60).unwrap();
    assert_eq!(o.duplicates, 0);
    let current = log.current_file().to_path_buf();
    drop(log);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&current)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"id\":\"torn"))
        .unwrap();

    let csv_arg = csv.to_str().unwrap();
    let without = dir.path().join("without");
    let with = dir.path().join("with");
    fit(&[
        "--input",
        csv_arg,
        "--no-eval",
        "--out",
        without.to_str().unwrap(),
    ]);
    let stdout = fit(&[
        "--input",
        csv_arg,
        "--no-eval",
        "--events",
        log_dir.to_str().unwrap(),
        "--out",
        with.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains(&format!(
            "events: {merged} purchases merged from {}",
            log_dir.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 skipped as already in the input, 1 exposures and clicks not used, 1 torn tails skipped"),
        "{stdout}"
    );

    let a = &manifest(&without)["data"];
    let b = &manifest(&with)["data"];
    let (_, early_last) = early.time_range().unwrap();
    assert_eq!(a["last_purchase"], format_timestamp(early_last).as_str());
    assert_eq!(b["last_purchase"], format_timestamp(last).as_str());
    assert_eq!(a["first_purchase"], b["first_purchase"]);
    assert!(a.get("events").is_none());
    assert_eq!(
        b["orders"].as_u64().unwrap(),
        a["orders"].as_u64().unwrap() + late_orders.len() as u64
    );
    let e = &b["events"];
    assert_eq!(e["purchases_merged"], merged);
    assert_eq!(e["purchases_in_input"], 3);
    assert_eq!(e["other_events"], 1);
    assert_eq!(e["torn_tails"], 1);
    assert_eq!(e["files"], 1);
    assert_eq!(e["last_purchase"], format_timestamp(last).as_str());
}
