//! The dashboard's files (`/`, `/ui/...`) and the routes added for it:
//! `GET /v1/model/history`, and the segment spend and CLV histogram of
//! `GET /v1/kpis`. The pages themselves are tested in a browser
//! (tests/browser/test_dashboard.py).

use crate::support::{fixture, synth_engine};
use actix_web::{test, web};
use encore_model::artifact::store::Store;
use encore_serving::state::ModelSource;
use encore_serving::{AppState, create_app};
use serde_json::{Value, json};

async fn fetch(state: web::Data<AppState>, uri: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let app = test::init_service(create_app(state)).await;
    let res = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, headers, test::read_body(res).await.to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[actix_web::test]
async fn the_files_are_served_with_their_types_and_a_strict_policy() {
    let f = fixture();
    for (uri, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = fetch(f.state.clone(), uri).await;
        assert_eq!(status, 200, "{uri}");
        assert!(header(&headers, "content-type").unwrap().starts_with(kind));
        let csp = header(&headers, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        assert!(!body.is_empty());
    }
    let (status, _, body) = fetch(f.state.clone(), "/ui/secrets.txt").await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "route_not_found");
}

#[actix_web::test]
async fn the_files_need_no_key_but_the_data_does() {
    use encore_serving::auth::ApiKeys;
    use sha2::{Digest, Sha256};
    let f = fixture();
    let digest: String = Sha256::digest(b"reader")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keys = ApiKeys::parse(
        &format!(
            "keys_for_reads = \"all\"\n[[keys]]\nname = \"m\"\nrole = \"read\"\nsha256 = \"{digest}\"\n"
        ),
        "keys.toml",
    )
    .unwrap();
    let state = web::Data::new(AppState::load(&f.model_dir).unwrap().with_api_keys(keys));
    assert_eq!(fetch(state.clone(), "/").await.0, 200);
    assert_eq!(fetch(state.clone(), "/ui/app.js").await.0, 200);
    assert_eq!(fetch(state.clone(), "/v1/kpis").await.0, 401);
    assert_eq!(fetch(state.clone(), "/v1/model/history").await.0, 401);
}

#[actix_web::test]
async fn kpis_hold_the_segment_spend_and_the_clv_histogram() {
    let f = fixture();
    let (status, _, body) = fetch(f.state.clone(), "/v1/kpis").await;
    assert_eq!(status, 200);
    let k: Value = serde_json::from_slice(&body).unwrap();
    let counts = k["segment_counts"].as_object().unwrap();
    let spend = k["segment_spend"].as_array().unwrap();
    assert_eq!(spend.len(), counts.len());
    for s in spend {
        let name = s["segment"].as_str().unwrap();
        assert_eq!(s["customers"], counts[name], "{name}");
        let (total, avg) = (
            s["total_spend"].as_f64().unwrap(),
            s["average_spend"].as_f64().unwrap(),
        );
        assert!((total / s["customers"].as_f64().unwrap() - avg).abs() < 1e-6);
    }
    let clv = &k["clv_distribution"];
    let bins = clv["bins"].as_array().unwrap();
    let in_bins: u64 = bins.iter().map(|b| b["customers"].as_u64().unwrap()).sum();
    assert_eq!(in_bins, clv["customers"].as_u64().unwrap());
    let profiled: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(in_bins + clv["without_clv"].as_u64().unwrap(), profiled);
    if !bins.is_empty() {
        assert!(bins.len() <= 12, "{clv}");
        for pair in bins.windows(2) {
            assert_eq!(pair[0]["to"], pair[1]["from"]);
        }
        assert!(bins[..bins.len() - 1].iter().all(|b| b["to"].is_number()));
    }
}

#[actix_web::test]
async fn history_lists_the_store_promotions_newest_first() {
    let f = fixture();
    let (status, _, body) = fetch(f.state.clone(), "/v1/model/history").await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["source"], "directory");
    assert_eq!(body["promotions"], json!([]));

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for v in ["v1", "v2"] {
        let mut engine = synth_engine(v);
        if v == "v2" {
            engine.manifest_mut().metrics = json!({"gate": {"previous_version": "v1", "promoted": true,
                "lists": [{"list": "new_items", "metric": "recall@10", "candidate": 0.2, "previous": 0.1}]}});
        }
        store.publish(&mut engine).unwrap();
        store.set_current(v).unwrap();
    }
    let state = web::Data::new(AppState::load_from(ModelSource::Store(store.clone())).unwrap());
    let (status, _, body) = fetch(state.clone(), "/v1/model/history").await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["source"], "store");
    assert_eq!(body["current"], "v2");
    assert_eq!(body["serving_version"], "v2");
    let rows = body["promotions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["version"], "v2");
    assert_eq!(rows[0]["gate"]["lists"][0]["candidate"], 0.2);
    assert_eq!(rows[1]["version"], "v1");
    assert_eq!(rows[1]["gate"], Value::Null);

    // An unreadable HISTORY is the store's error, in the error shape.
    let history = dir.path().join("HISTORY");
    std::fs::remove_file(&history).unwrap();
    std::fs::create_dir(&history).unwrap();
    let (status, _, body) = fetch(state, "/v1/model/history").await;
    assert_eq!(status, 500);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "store_unreadable");
}
