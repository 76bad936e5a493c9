//! Retention in the server: a start-up compaction is counted on `/metrics`;
//! pruning the compacted files (`prune_compacted`, what `encore-train events
//! prune` runs) is refused while the server holds the log, keeps a file with
//! a purchase after the cut-off, and the server started again on the pruned
//! log still answers every id of the idempotency window as a duplicate.

use crate::support::{fixture, get, post_json, send};
use actix_web::http::StatusCode;
use actix_web::{test, web};
use encore_data::event_log::{EventLog, EventLogOptions, prune_compacted};
use encore_data::events::{Event, EventKind, EventLogError, parse_event, read_event_dir};
use encore_serving::{AppState, create_app};
use serde_json::{Value, json};
use std::path::Path;

const DAY: i64 = 86_400;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn options() -> EventLogOptions {
    EventLogOptions {
        // One batch a file.
        max_file_bytes: 300,
        dedup_window_secs: 7 * DAY,
        retention_secs: Some(DAY),
    }
}

fn purchase(id: &str, time: i64) -> Value {
    json!({"id": id, "type": "purchase", "time": time, "order_id": format!("o-{id}"),
           "customer": "c1", "item": "i1"})
}

fn click(id: &str, time: i64) -> Value {
    json!({"id": id, "type": "click", "time": time, "customer": "c1", "item": "i1"})
}

fn event(v: &Value) -> Event {
    parse_event(v.to_string().as_bytes()).unwrap()
}

/// The server's state on the log in `dir`, once the last one let it go.
fn serve(model: &Path, dir: &Path) -> AppState {
    let mut tries = 0;
    loop {
        match AppState::load(model)
            .unwrap()
            .with_event_log(dir, options())
        {
            Err(EventLogError::Locked { .. }) if tries < 1000 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    }
}

/// The value of the series `name` (with its labels) in `/metrics`.
macro_rules! metric {
    ($app:expr, $name:expr) => {{
        let res = test::call_service($app, get("/metrics").to_request()).await;
        let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{} ", $name)))
            .unwrap_or_else(|| panic!("no {} in\n{text}", $name))
            .parse::<f64>()
            .unwrap()
    }};
}

#[actix_web::test]
async fn compactions_are_counted_and_a_pruned_log_still_deduplicates() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("events");
    let now = now();
    let received = now - 3 * DAY;
    // A purchase and a click a batch, each batch received 3 days ago (past
    // the 1-day retention, inside the 7-day window), one file each. The
    // first file is compacted here; "c0" is dated after the cut-off below.
    let batches = [
        [purchase("a0", now - 20 * DAY), click("ak0", now - 20 * DAY)],
        [purchase("b0", now - 20 * DAY), click("bk0", now - 20 * DAY)],
        [purchase("c0", now - 2 * DAY), click("ck0", now - 2 * DAY)],
        [purchase("d0", now - 2 * DAY), click("dk0", now - 2 * DAY)],
    ];
    let all: Vec<Value> = batches.iter().flatten().cloned().collect();
    {
        let mut log = EventLog::open(&log_dir, options()).unwrap();
        log.append(batches[0].iter().map(event).collect(), received)
            .unwrap();
        log.append(batches[1].iter().map(event).collect(), received)
            .unwrap();
        log.compact(now).unwrap().unwrap();
        for b in &batches[2..] {
            log.append(b.iter().map(event).collect(), received).unwrap();
        }
    }
    let first = log_dir.join("events-00000001-compacted.jsonl");
    assert!(first.exists());

    // The server compacts the files of "b" and "c" when it starts ("d"'s is
    // the current one), on its writer thread: wait for the count.
    let state = web::Data::new(serve(&f.model_dir, &log_dir));
    let app = test::init_service(create_app(state.clone())).await;
    let began = std::time::Instant::now();
    while metric!(
        &app,
        "encore_event_log_compactions_total{result=\"success\"}"
    ) < 1.0
    {
        assert!(began.elapsed().as_secs() < 30, "no compaction");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = log_dir.join("events-00000003-compacted.jsonl");
    assert!(second.exists());
    assert_eq!(
        metric!(
            &app,
            "encore_event_log_compactions_total{result=\"success\"}"
        ),
        1.0
    );
    assert_eq!(
        metric!(
            &app,
            "encore_event_log_compactions_total{result=\"failure\"}"
        ),
        0.0
    );
    assert_eq!(metric!(&app, "encore_event_log_compacted_files_total"), 2.0);
    assert_eq!(
        metric!(&app, "encore_event_log_compaction_dropped_events_total"),
        2.0,
        "the clicks of b and c"
    );
    let reclaimed = metric!(&app, "encore_event_log_compaction_reclaimed_bytes_total");
    assert!(reclaimed > 0.0, "{reclaimed}");
    assert!(metric!(&app, "encore_event_log_last_compaction_seconds") >= 0.0);

    // While the server holds the log, pruning is refused.
    let cut = now - 10 * DAY;
    let err = prune_compacted(&log_dir, cut, None).unwrap_err();
    assert!(matches!(err, EventLogError::Locked { .. }), "{err}");
    drop(app);
    drop(state);

    let pruned = {
        let mut tries = 0;
        loop {
            match prune_compacted(&log_dir, cut, None) {
                Err(EventLogError::Locked { .. }) if tries < 1000 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.unwrap(),
            }
        }
    };
    assert_eq!(pruned.removed.len(), 1, "{pruned:?}");
    assert_eq!(pruned.removed[0].path, first);
    assert_eq!(pruned.kept.len(), 1, "{pruned:?}");
    assert_eq!(pruned.kept[0].0, second, "c0 is after the cut-off");
    assert!(!first.exists() && second.exists());

    // The server starts on the pruned log; every old id is a duplicate,
    // those of the pruned file and the dropped clicks included.
    let state = web::Data::new(serve(&f.model_dir, &log_dir));
    let app = test::init_service(create_app(state.clone())).await;
    let r = send(
        &app,
        post_json("/v1/events", json!({ "events": all })).to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"accepted": 0, "duplicates": 8}));
    assert_eq!(
        metric!(
            &app,
            "encore_event_log_compactions_total{result=\"success\"}"
        ),
        0.0,
        "nothing left to compact"
    );
    drop(app);
    drop(state);
    let (events, _) = read_event_dir(&log_dir).unwrap();
    let purchases: Vec<&str> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Purchase { .. }))
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(purchases, ["b0", "c0", "d0"]);
}
