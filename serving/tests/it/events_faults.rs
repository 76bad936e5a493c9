//! `POST /v1/events` when the disk fails (docs/security.md names these
//! tests): a failed write or fsync answers `503 event_log_unavailable` with
//! `Retry-After` and acknowledges nothing; the server keeps refusing while
//! the disk still fails and writes again by itself once it works, with no
//! restart; no acknowledged event is lost or logged twice. The faults come
//! from a file layer that fails chosen writes and fsyncs
//! (`encore_data::event_log::faults`); `events_full_disk.rs` fills a real
//! file system.

use crate::support::{fixture, get, post_json, send};
use actix_web::http::{StatusCode, header};
use actix_web::{test, web};
use encore_data::event_log::faults::{EIO, ENOSPC, FaultyFiles};
use encore_data::events::read_event_dir;
use encore_serving::{AppState, create_app};
use serde_json::{Value, json};
use std::sync::Arc;

fn batch(ids: &[String]) -> Value {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "type": "click", "time": "2025-06-01T00:00:00Z",
                   "customer": "c1", "item": "i1"})
        })
        .collect();
    json!({ "events": events })
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

macro_rules! metric {
    ($app:expr, $name:expr) => {{
        let res = test::call_service($app, get("/metrics").to_request()).await;
        let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(concat!($name, " ")))
            .unwrap_or_else(|| panic!("no {} in\n{text}", $name))
            .to_string()
    }};
}

#[actix_web::test]
async fn a_failing_disk_answers_503_and_the_log_resumes_without_a_restart() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyFiles::default();
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_event_log_on(dir.path(), Default::default(), Arc::new(disk.clone()))
            .unwrap(),
    );
    let app = test::init_service(create_app(state.clone())).await;
    let mut acknowledged = Vec::new();
    let post = |ids: &[String]| post_json("/v1/events", batch(ids)).to_request();

    let first = ids("ok", 3);
    let r = send(&app, post(&first)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    acknowledged.extend(first);

    // Each fault: 503 with Retry-After, nothing acknowledged; then the next
    // batch (the disk works again) is written.
    type Fault = fn(&FaultyFiles);
    let faults: [(&str, Fault); 4] = [
        ("write ENOSPC", |d| d.fail_writes(1, ENOSPC)),
        ("write EIO", |d| d.fail_writes(1, EIO)),
        ("fsync EIO", |d| d.fail_syncs(1, EIO)),
        ("disk full", |d| d.fill_disk(50)),
    ];
    for (n, (name, fault)) in faults.into_iter().enumerate() {
        fault(&disk);
        let refused = ids(&format!("f{n}"), 4);
        let r = send(&app, post(&refused)).await;
        r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "event_log_unavailable");
        assert_eq!(r.headers.get(header::RETRY_AFTER).unwrap(), "1", "{name}");
        assert_eq!(metric!(&app, "encore_event_log_failed"), "1", "{name}");
        if name == "disk full" {
            // Still full: refused again, without a write to the log file.
            let writes = disk.writes();
            let r = send(&app, post(&refused)).await;
            r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "event_log_unavailable");
            assert_eq!(disk.writes(), writes, "wrote to a full disk");
            disk.free_disk();
        }
        // The client's retry goes through: no restart.
        let r = send(&app, post(&refused)).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.body);
        assert_eq!(r.body, json!({"accepted": 4, "duplicates": 0}), "{name}");
        acknowledged.extend(refused);
        assert_eq!(metric!(&app, "encore_event_log_failed"), "0", "{name}");
    }
    assert_eq!(metric!(&app, "encore_event_log_write_failures_total"), "5");

    state.flush_events().unwrap();
    let (events, report) = read_event_dir(dir.path()).unwrap();
    assert!(
        report.damaged.is_empty() && report.torn_tails.is_empty(),
        "{report:?}"
    );
    let logged: Vec<String> = events.into_iter().map(|e| e.id).collect();
    assert_eq!(logged, acknowledged);
    assert_eq!(report.duplicates, 0);
}

/// Damaged records do not stop the server: it starts, skips them, counts
/// them in `/metrics`, and serves the rest.
#[actix_web::test]
async fn a_damaged_record_is_skipped_and_counted_at_start() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    {
        let state = AppState::load(&f.model_dir)
            .unwrap()
            .with_event_log(dir.path(), Default::default())
            .unwrap();
        let app = test::init_service(create_app(web::Data::new(state))).await;
        for prefix in ["a", "b"] {
            let r = send(
                &app,
                post_json("/v1/events", batch(&ids(prefix, 2))).to_request(),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK);
        }
    }
    let path = dir.path().join("events-00000001.jsonl");
    let mut bytes = std::fs::read(&path).unwrap();
    // A bit flipped in the second record (of four).
    let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 60;
    bytes[second] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let mut tries = 0;
    let state = loop {
        // The first server's writer lets the log's lock go once it is dropped.
        match AppState::load(&f.model_dir)
            .unwrap()
            .with_event_log(dir.path(), Default::default())
        {
            Err(encore_data::events::EventLogError::Locked { .. }) if tries < 1000 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    };
    let app = test::init_service(create_app(web::Data::new(state))).await;
    assert_eq!(metric!(&app, "encore_event_log_damaged_records"), "1");
    // The damaged event's id is not remembered: its retry is written.
    let r = send(
        &app,
        post_json("/v1/events", batch(&ids("a", 2))).to_request(),
    )
    .await;
    assert_eq!(r.body, json!({"accepted": 1, "duplicates": 1}));
}
