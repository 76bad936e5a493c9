//! docs/api.md is the one written copy of the API's tables; this test keeps
//! its metrics tables equal to what `GET /metrics` renders. (The route table
//! is checked in `serving/src/openapi.rs`, the error table in
//! `serving/src/error.rs` and `bad_input.rs`.)

use crate::support;
use actix_web::{test, web};
use encore_model::artifact;
use encore_serving::{AppState, create_app};
use std::collections::BTreeSet;

/// `(name, type)` of every row of the tables of the "Metrics" section of
/// docs/api.md: `` | `name` | type | labels | ``, the type's first word.
fn documented_metrics() -> Vec<(String, String)> {
    let doc = include_str!("../../../docs/api.md");
    let section = &doc[doc.find("\n## Metrics\n").expect("a Metrics section") + 1..];
    let section = &section[..section[1..].find("\n#").map_or(section.len(), |i| i + 1)];
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(|c| c.trim()).collect();
            let name = cells[0].trim_end_matches('`').to_string();
            let kind = cells[1].split_whitespace().next().unwrap_or("").to_string();
            (name, kind)
        })
        .collect()
}

/// `(name, type)` of every `# TYPE` line of `/metrics`.
fn rendered_metrics(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE name type");
            (name.to_string(), kind.to_string())
        })
        .collect()
}

#[actix_web::test]
async fn api_md_metrics_match_what_the_server_renders() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    let mut engine = support::train("v1", 42);
    // The data-end gauge shows only when the manifest records the last purchase.
    engine.manifest_mut().data.last_purchase = Some("2023-12-01T00:00:00Z".into());
    artifact::save(&engine, &model_dir).expect("saves");
    let state = AppState::load(&model_dir)
        .expect("loads")
        .with_event_log(&dir.path().join("events"), Default::default())
        .expect("opens the event log");
    let app = test::init_service(create_app(web::Data::new(state))).await;
    // One request first, so that the per-route families have a series.
    let _ = test::call_service(&app, support::get("/healthz").to_request()).await;
    let res = test::call_service(&app, support::get("/metrics").to_request()).await;
    assert!(res.status().is_success());
    let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();

    let documented = documented_metrics();
    let set: BTreeSet<_> = documented.iter().cloned().collect();
    assert_eq!(set.len(), documented.len(), "a metric twice in docs/api.md");
    assert_eq!(set, rendered_metrics(&text), "docs/api.md against\n{text}");
}
