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
