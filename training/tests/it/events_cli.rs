//! `encore-train events verify` and `events repair` on a log with a damaged
//! record in an older file and a torn tail in the last one.

use encore_data::event_log::{EventLog, EventLogOptions};
use encore_data::events::{parse_event, read_event_dir};
use std::path::Path;
use std::process::{Command, Output};

fn train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_encore-train"))
        .args(args)
        .output()
        .expect("runs encore-train")
}

fn event(id: &str) -> encore_data::events::Event {
    parse_event(
        format!(
            r#"{{"id":"{id}","type":"click","time":"2026-11-30T10:00:00Z","customer":"c1","item":"tea"}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn log_with_damage(dir: &Path) {
    // Small files: each batch gets a file of its own.
    let options = EventLogOptions {
        max_file_bytes: 300,
        ..EventLogOptions::default()
    };
    let mut log = EventLog::open(dir, options).unwrap();
    for ids in [["a", "b"], ["c", "d"]] {
        log.append(ids.iter().map(|id| event(id)).collect(), 1_764_496_800)
            .unwrap();
    }
    drop(log);
    let first = dir.join("events-00000001.jsonl");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[40] ^= 0x10;
    std::fs::write(&first, bytes).unwrap();
    let mut last = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("events-00000002.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut last, b"{\"frame\":\"0000").unwrap();
}

#[test]
fn verify_lists_the_damage_and_repair_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    log_with_damage(&log);
    let log_arg = log.to_str().unwrap();

    let out = train(&["events", "verify", log_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("events-00000001.jsonl:1 (bytes 0.."),
        "{text}"
    );
    assert!(text.contains("checksum mismatch"), "{text}");
    assert!(text.contains("1 damaged, 1 torn tails"), "{text}");

    let out = train(&["events", "repair", log_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 damaged records moved aside, 1 torn tails cut"),
        "{text}"
    );
    assert!(log.join("events-00000001.jsonl.damaged").exists());

    let out = train(&["events", "verify", log_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (events, _) = read_event_dir(&log).unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "d"]);

    // A log a server has open is not repaired.
    let _open = EventLog::open(&log, EventLogOptions::default()).unwrap();
    let out = train(&["events", "repair", log_arg]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
}

/// A compacted log: `verify` reports the checkpoint, fails (exit 5) once it
/// is damaged, and `repair` moves it aside.
#[test]
fn verify_and_repair_understand_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let day = 86_400;
    let options = EventLogOptions {
        max_file_bytes: 300,
        dedup_window_secs: 7 * day,
        retention_secs: Some(day),
    };
    let mut open = EventLog::open(&log, options).unwrap();
    let t0 = 1_764_496_800;
    for (i, ids) in [["a", "b"], ["c", "d"], ["e", "f"]].iter().enumerate() {
        open.append(
            ids.iter().map(|id| event(id)).collect(),
            t0 + i as i64 * day,
        )
        .unwrap();
    }
    let compacted = open.compact(t0 + 3 * day).unwrap().unwrap();
    assert_eq!(compacted.files.len(), 2);
    drop(open);
    let log_arg = log.to_str().unwrap();
    let out = train(&["events", "verify", log_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("checkpoint: files up to 2 compacted, 4 ids of the idempotency window"),
        "{text}"
    );

    let path = log.join("checkpoint");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 30;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let out = train(&["events", "verify", log_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("checkpoint") && text.contains("is damaged"),
        "{text}"
    );

    let out = train(&["events", "repair", log_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("moved the damaged checkpoint"), "{text}");
    assert!(log.join("checkpoint.damaged").exists());
    let out = train(&["events", "verify", log_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The log opens without it.
    let open = EventLog::open(&log, EventLogOptions::default()).unwrap();
    assert!(open.contains("e") && open.compacted_through() == 0);
}

fn purchase_at(id: &str, time: i64) -> encore_data::events::Event {
    parse_event(
        format!(
            r#"{{"id":"{id}","type":"purchase","time":{time},"order_id":"o-{id}","customer":"c1","item":"tea"}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

/// A model directory holding only a manifest (all that `--through` reads),
/// made from the bundled fixture's: its data end, and the first purchase it
/// merged from an event log, if any.
fn model_with_data_end(dir: &Path, end: &str, first_merged: Option<&str>) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/artifact-format-2/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    m["format_version"] = encore_model::manifest::FORMAT_VERSION.into();
    m["data"]["last_purchase"] = end.into();
    if let Some(first) = first_merged {
        m["data"]["events"] = serde_json::json!({
            "dir": "events", "files": 3, "purchases_merged": 2, "purchases_in_input": 0,
            "other_events": 0, "torn_tails": 0, "first_purchase": first, "last_purchase": end
        });
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
}

#[test]
fn prune_removes_compacted_files_before_the_cut_off_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let day = 86_400;
    let t0 = 1_764_496_800; // 2025-11-30T10:00:00Z
    let options = EventLogOptions {
        max_file_bytes: 300,
        dedup_window_secs: 7 * day,
        retention_secs: Some(day),
    };
    // A purchase and a click a day, one file a day; two compactions.
    let mut open = EventLog::open(&log, options.clone()).unwrap();
    for d in 0..4 {
        let events = vec![
            purchase_at(&format!("p{d}"), t0 + d * day),
            event(&format!("k{d}")),
        ];
        open.append(events, t0 + d * day).unwrap();
    }
    assert_eq!(open.compact(t0 + 2 * day).unwrap().unwrap().files.len(), 1);
    assert_eq!(open.compact(t0 + 4 * day).unwrap().unwrap().files.len(), 2);
    let (first, second) = (
        log.join("events-00000001-compacted.jsonl"),
        log.join("events-00000003-compacted.jsonl"),
    );
    assert!(first.exists() && second.exists());
    let log_arg = log.to_str().unwrap();

    // A server holds the lock: refused, nothing removed.
    let out = train(&[
        "events",
        "prune",
        log_arg,
        "--through",
        "2025-12-01T22:00:00Z",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in use") && err.contains("stop the server"),
        "{err}"
    );
    assert!(first.exists());
    drop(open);

    // p1 (day 1) is before the cut-off but p2 (day 2) after: the second file stays.
    let out = train(&[
        "events",
        "prune",
        log_arg,
        "--through",
        "2025-12-01T22:00:00Z",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("removed ") && text.contains("events-00000001-compacted.jsonl (1 purchases"),
        "{text}"
    );
    assert!(
        text.contains("kept ") && text.contains("holds an event of 2025-12-02T10:00:00Z"),
        "{text}"
    );
    assert!(text.contains("1 compacted files removed"), "{text}");
    assert!(!first.exists() && second.exists());

    // A model that merged purchases from the log: the cut-off stays before
    // the first of them, so the second file is kept again.
    let model = dir.path().join("model");
    model_with_data_end(&model, "2025-12-02T11:00:00Z", Some("2025-12-01T10:00:00Z"));
    let model_arg = model.to_str().unwrap();
    let out = train(&["events", "prune", log_arg, "--through", model_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("cut-off: 2025-12-01T09:59:59Z") && text.contains("merged"),
        "{text}"
    );
    assert!(second.exists(), "{text}");
    // Its data end alone covers it: moved to the archive.
    model_with_data_end(&model, "2025-12-02T11:00:00Z", None);
    let archive = dir.path().join("archive");
    let bytes = std::fs::read(&second).unwrap();
    let out = train(&[
        "events",
        "prune",
        log_arg,
        "--through",
        model_arg,
        "--archive",
        archive.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("cut-off: 2025-12-02T11:00:00Z"), "{text}");
    assert!(
        text.contains("moved ") && text.contains("1 compacted files moved"),
        "{text}"
    );
    assert!(!second.exists());
    assert_eq!(
        std::fs::read(archive.join("events-00000003-compacted.jsonl")).unwrap(),
        bytes
    );

    // Not a time nor a model: refused before anything.
    let out = train(&["events", "prune", log_arg, "--through", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a time"));

    // The log opens with every id of the window still known, and the
    // purchases left are those of the files kept whole.
    let mut open = EventLog::open(&log, options).unwrap();
    let retried = (0..4).map(|d| event(&format!("k{d}"))).collect();
    let o = open.append(retried, t0 + 4 * day).unwrap();
    assert_eq!((o.accepted, o.duplicates), (0, 4));
    drop(open);
    let (events, _) = read_event_dir(&log).unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["p3", "k3"]);
}
