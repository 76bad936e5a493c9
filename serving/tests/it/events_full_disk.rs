//! The event log on a real full disk: a 512 KiB tmpfs that the test mounts
//! (it needs root, as CI and the development machines run; anywhere else it
//! fails and says so, it is never skipped). `scripts/test.sh` runs it as a
//! step of its own. Batches are posted until the file system is full: every
//! batch answered `200` is in the log exactly once, every other one is
//! `503 event_log_unavailable`, nothing damaged or torn is left, and once
//! space is freed the next batch is written, with no restart.

use crate::support::{fixture, post_json, send};
use actix_web::http::StatusCode;
use actix_web::{test, web};
use encore_data::events::read_event_dir;
use encore_serving::{AppState, create_app};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("runs mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it up and needs root (or CAP_SYS_ADMIN); \
             run it as root, as CI does (scripts/test.sh): mount said {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn batch(prefix: &str, n: usize) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "type": "purchase", "time": "2025-06-01T00:00:00Z",
                   "order_id": format!("order-{id}"), "customer": "customer-17850",
                   "item": "item-85123A", "quantity": 2, "price": 2.55})
        })
        .collect();
    (ids, json!({ "events": events }))
}

#[actix_web::test]
async fn a_full_tmpfs_refuses_batches_loses_nothing_and_recovers() {
    let f = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let mount = scratch.path().join("disk");
    std::fs::create_dir(&mount).unwrap();
    let _disk = Tmpfs::mount(&mount, "512k");
    // Ballast to free later, so that the log itself is not what is deleted.
    let ballast = mount.join("ballast");
    std::fs::write(&ballast, vec![0u8; 128 << 10]).unwrap();
    let log_dir = mount.join("events");
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_event_log(&log_dir, Default::default())
            .unwrap(),
    );
    let app = test::init_service(create_app(state.clone())).await;

    let mut acknowledged: Vec<String> = Vec::new();
    let mut refused = 0;
    let mut n = 0;
    // About 300 bytes an event: the disk is full after about 1,300.
    while refused < 3 {
        assert!(n < 2_000, "the disk never filled up");
        let (ids, body) = batch(&format!("b{n:04}"), 20);
        n += 1;
        let r = send(&app, post_json("/v1/events", body).to_request()).await;
        match r.status {
            StatusCode::OK => {
                assert_eq!(r.body, json!({"accepted": 20, "duplicates": 0}));
                acknowledged.extend(ids);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "event_log_unavailable");
                refused += 1;
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    assert!(
        acknowledged.len() > 500,
        "{} acknowledged",
        acknowledged.len()
    );
    let check = |acknowledged: &[String]| {
        let (events, report) = read_event_dir(&log_dir).unwrap();
        assert!(report.damaged.is_empty(), "{:?}", report.damaged);
        assert!(report.torn_tails.is_empty(), "{:?}", report.torn_tails);
        let logged: Vec<String> = events.into_iter().map(|e| e.id).collect();
        assert_eq!(logged, acknowledged);
    };
    check(&acknowledged);

    // Space comes back: the next batch is written by the same server.
    std::fs::remove_file(&ballast).unwrap();
    let (ids, body) = batch("after", 20);
    let r = send(&app, post_json("/v1/events", body).to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    acknowledged.extend(ids);
    state.flush_events().unwrap();
    check(&acknowledged);
}
