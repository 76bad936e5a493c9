//! Train on the bundled Online Retail sample, serve the artifact in-process,
//! query every endpoint, and check that bad input answers in the error shape.

use crate::support;
use actix_web::http::StatusCode;
use actix_web::{test as atest, web};
use encore_model::engine::ListFilter;
use encore_model::pipeline::EngineConfig;
use encore_serving::{AppState, create_app};
use encore_training::batch::{ListKind, write_lists};
use encore_training::fit::{FitEvaluation, fit};
use encore_training::input::load_input;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Trains once per test binary on the full sample and returns the model directory.
fn trained_model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let input =
            load_input(&support::sample_args(dir.path())).expect("the bundled sample loads");
        assert_eq!(input.report.rows_read, 541_909);
        assert_eq!(input.log.customers.len(), 4_372);
        let rejects = std::fs::read_to_string(dir.path().join("rejects.csv")).unwrap();
        // One line per rejected row plus the header: nothing dropped silently.
        let rejected: u64 = input.report.rejected.values().sum();
        assert_eq!(rejects.lines().count() as u64, rejected + 1);

        let mut config = EngineConfig::default();
        config.als.factors = 32;
        config.als.iterations = 8;
        // The sample's catalog is below the default `min_items`: build the
        // graph anyway, so that its files are saved, damaged and checked here.
        config.hnsw.min_items = 0;
        let out = dir.path().join("model");
        let outcome = fit(
            &input,
            &config,
            FitEvaluation::Cutoff(encore_data::timestamp::parse_timestamp("2011-10-01").unwrap()),
            &[10],
            &out,
            false,
        )
        .expect("fit succeeds");
        let eval = outcome.evaluation.expect("evaluation ran");
        // The served "for you" model is scored beside the baselines.
        let names: Vec<&str> = eval.models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(
            names,
            [
                "popularity",
                "p_topfreq",
                "gp_topfreq",
                "item_knn",
                "als",
                "ranker"
            ]
        );
        let als = eval.get("als", "recall@10").unwrap();
        let pop = eval.get("popularity", "recall@10").unwrap();
        assert!(
            als > pop,
            "ALS recall@10 {als} should beat popularity {pop}"
        );
        (dir, out)
    });
    path
}

/// GETs `uri` and returns the status and the JSON body.
macro_rules! get {
    ($app:expr, $uri:expr) => {{
        let uri: &str = $uri;
        let resp = atest::call_service($app, atest::TestRequest::get().uri(uri).to_request()).await;
        let status = resp.status();
        let body = atest::read_body(resp).await;
        let json: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{uri}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, json)
    }};
}

fn assert_error(status: StatusCode, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    for field in ["message", "code", "type", "link"] {
        assert!(body[field].is_string(), "error body lacks {field}: {body}");
    }
}

#[actix_web::test]
async fn every_endpoint_on_the_sample() {
    let model = trained_model();
    let state = web::Data::new(AppState::load(model).expect("artifact loads"));
    let app = atest::init_service(create_app(state)).await;

    let (s, b) = get!(&app, "/healthz");
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = get!(&app, "/readyz");
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = get!(&app, "/v1/model");
    assert_eq!(s, StatusCode::OK);
    assert!(b["model_version"].is_string(), "{b}");
    assert!(b["metrics"]["models"].is_array(), "{b}");

    // White hanging heart t-light holder: the best seller of the sample.
    let (s, b) = get!(&app, "/v1/items/85123A/similar?k=5");
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["item_id"], "85123A");
    let items = b["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(
        items
            .iter()
            .all(|i| i["item_id"] != "85123A" && i["title"].is_string())
    );

    let (s, b) = get!(&app, "/v1/items/85123A/bought-together?k=5");
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(!b["items"].as_array().unwrap().is_empty());

    let (s, b) = get!(&app, "/v1/customers/17850/recommendations?k=10");
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["source"], "model");
    assert_eq!(b["items"].as_array().unwrap().len(), 10);
    // Fees and postage are unavailable in the catalog: never recommended.
    for item in b["items"].as_array().unwrap() {
        assert_ne!(item["item_id"], "POST");
    }

    let (s, b) = get!(&app, "/v1/customers/no-such-customer/recommendations?k=3");
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["source"], "fallback");
    assert_eq!(b["items"].as_array().unwrap().len(), 3);

    let (s, b) = get!(
        &app,
        "/v1/customers/17850/recommendations?k=5&category=kitchen"
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    for item in b["items"].as_array().unwrap() {
        assert_eq!(item["category"], "kitchen", "{b}");
    }

    let req = atest::TestRequest::post()
        .uri("/v1/recommendations")
        .set_json(serde_json::json!({"items": ["85123A", "71053", "nope"], "k": 4}))
        .to_request();
    let resp = atest::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let b: Value = atest::read_body_json(resp).await;
    assert_eq!(b["source"], "model");
    assert_eq!(b["items"].as_array().unwrap().len(), 4);
    assert_eq!(b["unknown_items"], serde_json::json!(["nope"]));

    // Bad input, always in the error shape.
    let (s, b) = get!(&app, "/v1/items/NOT-AN-ITEM/similar");
    assert_error(s, &b, 404, "item_not_found");
    let (s, b) = get!(&app, "/v1/items/85123A/similar?k=0");
    assert_error(s, &b, 400, "invalid_k");
    let (s, b) = get!(&app, "/v1/items/85123A/similar?k=201");
    assert_error(s, &b, 400, "invalid_k");
    let (s, b) = get!(&app, "/v1/customers/17850/recommendations?k=ten");
    assert_error(s, &b, 400, "invalid_k");
    let (s, b) = get!(&app, "/v1/no/such/route");
    assert_error(s, &b, 404, "route_not_found");
    let req = atest::TestRequest::post()
        .uri("/v1/recommendations")
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"items\": [")
        .to_request();
    let resp = atest::call_service(&app, req).await;
    let s = resp.status();
    let b: Value = atest::read_body_json(resp).await;
    assert_error(s, &b, 400, "invalid_json");
}

#[test]
fn batch_recommend_covers_every_customer() {
    let engine = encore_model::artifact::load(trained_model()).unwrap();
    let mut out = Vec::new();
    let ids = vec!["17850".to_string(), "unknown-customer".to_string()];
    let s = write_lists(
        &engine,
        ListKind::ForYou,
        Some(ids.clone()),
        5,
        false,
        &mut out,
    )
    .unwrap();
    assert_eq!(s.rows_in, 2);
    assert_eq!(s.unknown, 1);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "customer_id,rank,item_id,score");
    assert_eq!(lines.len(), 1 + 2 * 5, "{text}");
    assert!(lines[1].starts_with("17850,1,"));
    assert!(lines[6].starts_with("unknown-customer,1,"));

    // Each form is the list the API serves for it: new items by default,
    // the repeat-aware list with `include_purchased`.
    let c = engine.customers().get("17850");
    let items_of = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .filter(|l| l.starts_with("17850,"))
            .map(|l| l.split(',').nth(2).unwrap().to_string())
            .collect()
    };
    let served = |include_purchased: bool| -> Vec<String> {
        let filter = ListFilter {
            include_purchased,
            ..ListFilter::default()
        };
        let (_, list) = engine.for_you(c, 5, &filter);
        list.iter()
            .map(|&(i, _)| engine.items().id(i).to_string())
            .collect()
    };
    assert_eq!(items_of(&text), served(false));
    let mut out = Vec::new();
    write_lists(
        &engine,
        ListKind::ForYou,
        Some(ids.clone()),
        5,
        true,
        &mut out,
    )
    .unwrap();
    let with = String::from_utf8(out).unwrap();
    assert_eq!(items_of(&with), served(true));
    let bought: Vec<bool> = items_of(&with)
        .iter()
        .map(|id| {
            let i = engine.items().get(id).unwrap();
            engine.history().get(c.unwrap() as usize, i) > 0.0
        })
        .collect();
    assert!(
        bought.iter().any(|&b| b),
        "no bought item in the repeat-aware list"
    );
    assert!(
        write_lists(&engine, ListKind::Similar, None, 5, true, &mut Vec::new()).is_err(),
        "--include-purchased with a list of items"
    );
}

#[test]
fn hnsw_recall_against_the_exact_oracle_on_the_trained_model() {
    use encore_model::ann::{ExactIndex, recall_at_k};
    let engine = encore_model::artifact::load(trained_model()).unwrap();
    let vectors = engine.als().item_factors();
    let exact = ExactIndex::new(vectors);
    let recall = recall_at_k(&exact, engine.similar_index(), vectors, 10);
    assert!(
        recall >= 0.95,
        "HNSW recall@10 {recall:.3} < 0.95 against exact search"
    );
}

#[test]
fn damaged_or_incompatible_artifacts_are_refused() {
    use encore_model::artifact::{ArtifactError, load};
    let src = trained_model();
    let copy = |name: &str| {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join(name);
        std::fs::create_dir(&dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        (dir, dst)
    };
    // Truncated factor file.
    let (_d, m) = copy("truncated");
    let f = m.join("als_items.f32");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&m).err().expect("truncated artifact refused");
    assert!(matches!(err, ArtifactError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("als_items.f32"), "{err}");
    // One flipped bit in the HNSW graph.
    let (_d, m) = copy("bitflip");
    let f = m.join("similar.hnsw.graph");
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&f, &bytes).unwrap();
    assert!(matches!(load(&m), Err(ArtifactError::Corrupt { .. })));
    // One flipped bit in the replenishment model and in the customer profiles.
    for name in [
        "replenishment.bin",
        "customer_profiles.bin",
        "new_items.csr",
    ] {
        let (_d, m) = copy("bitflip2");
        let f = m.join(name);
        let mut bytes = std::fs::read(&f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&f, &bytes).unwrap();
        let err = load(&m).err().expect("damaged file refused");
        assert!(matches!(err, ArtifactError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    // A format version from the future.
    let (_d, m) = copy("version");
    let f = m.join("manifest.json");
    let text = std::fs::read_to_string(&f).unwrap();
    let current = format!(
        "\"format_version\": {}",
        encore_model::manifest::FORMAT_VERSION
    );
    assert!(text.contains(&current), "{text}");
    let text = text.replacen(&current, "\"format_version\": 99", 1);
    std::fs::write(&f, text).unwrap();
    let err = load(&m).err().expect("future version refused");
    assert!(
        matches!(err, ArtifactError::IncompatibleVersion { found: 99, .. }),
        "{err}"
    );
    // No manifest at all.
    let (_d, m) = copy("nomanifest");
    std::fs::remove_file(m.join("manifest.json")).unwrap();
    assert!(matches!(load(&m), Err(ArtifactError::NotAnArtifact { .. })));
}

#[test]
fn same_seed_same_model() {
    use encore_data::synth::{SynthParams, generate};
    use encore_model::manifest::DataSummary;
    use encore_model::pipeline::train_engine;
    let log = generate(&SynthParams {
        customers: 400,
        items: 150,
        purchases: 6_000,
        categories: 8,
        ..SynthParams::default()
    });
    let mut config = EngineConfig::default();
    config.als.factors = 8;
    config.als.iterations = 4;
    let train =
        || train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap();
    let (a, b) = (train(), train());
    assert_eq!(a.als().item_factors(), b.als().item_factors());
    assert_eq!(a.als().user_factors(), b.als().user_factors());
    assert_eq!(a.copurchase().as_csr(), b.copurchase().as_csr());
    assert_eq!(a.popularity().ranked(), b.popularity().ranked());
    assert_eq!(a.customer_book(), b.customer_book());
    assert_eq!(a.replenishment().encode(), b.replenishment().encode());
    assert_eq!(a.new_item_lists(), b.new_item_lists());
}

/// The saved heads of the new-item lists answer as the loaded factors do
/// when the catalog is scored.
#[test]
fn saved_new_item_lists_agree_with_the_saved_factors() {
    use encore_model::engine::ListFilter;
    let with = encore_model::artifact::load(trained_model()).unwrap();
    let lists = with.new_item_lists().expect("the artifact holds them");
    assert_eq!(lists.n_rows(), with.customers().len());
    let without = encore_model::artifact::load(trained_model())
        .unwrap()
        .with_new_item_lists(0);
    let filter = ListFilter::default();
    let mut compared = 0;
    for c in (0..with.customers().len() as u32).step_by(7) {
        if lists.row_nnz(c as usize) > 0 {
            assert_eq!(
                with.recommend(Some(c), 10, &filter),
                without.recommend(Some(c), 10, &filter),
                "customer {c}"
            );
            compared += 1;
        }
    }
    assert!(compared > 500, "{compared}");
}

/// `encore-train customers` and `audience` on the sample model: one row per
/// profiled customer; the audience holds exactly the dormant and at-risk
/// customers, with available items only.
#[test]
fn customers_and_audience_exports() {
    use encore_model::outreach::AudienceQuery;
    use encore_training::customers::{AudienceFormat, write_audience, write_customers};
    let engine = encore_model::artifact::load(trained_model()).unwrap();
    let book = engine.customer_book();
    assert!(
        book.models().bgnbd.is_some(),
        "{:?}",
        book.models().bgnbd_error
    );
    assert!(book.models().gamma_gamma.is_some());
    assert!(
        book.models().propensity.is_some(),
        "{:?}",
        book.models().propensity_error
    );

    let mut out = Vec::new();
    let n = write_customers(&engine, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(n, book.profiles().flatten().count());
    assert_eq!(text.lines().count(), n + 1);
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    for field in [
        "customer_id",
        "segment",
        "lifecycle_stage",
        "p_alive",
        "clv",
        "buy_within_30d_probability",
        "predicted_next_purchase_date",
    ] {
        assert!(header.contains(&field), "{field} missing");
    }

    let query = AudienceQuery::default();
    let mut out = Vec::new();
    let rows = write_audience(&engine, &query, AudienceFormat::Ndjson, &mut out).unwrap();
    let want = book
        .profiles()
        .flatten()
        .filter(|p| matches!(p.stage.as_str(), "dormant" | "at_risk"))
        .count();
    assert_eq!(rows, want);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), want);
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(
            matches!(v["stage"].as_str(), Some("dormant" | "at_risk")),
            "{v}"
        );
        let items = v["items"].as_array().unwrap();
        assert!(!items.is_empty() && items.len() <= query.k, "{v}");
        for item in items {
            let i = engine
                .items()
                .get(item["item_id"].as_str().unwrap())
                .unwrap();
            assert!(engine.item_meta(i).available, "{item}");
        }
    }
    let mut csv = Vec::new();
    let q = AudienceQuery {
        limit: Some(10),
        ..AudienceQuery::default()
    };
    let rows = write_audience(&engine, &q, AudienceFormat::Csv, &mut csv).unwrap();
    assert_eq!(rows, 10.min(want));
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), rows + 1);

    // A misspelt segment is an error naming it, not an empty audience.
    let q = AudienceQuery {
        segments: vec!["at_risk".into(), "at-risk".into()],
        ..AudienceQuery::default()
    };
    let err = write_audience(&engine, &q, AudienceFormat::Csv, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("'at-risk'"), "{err}");
    let q = AudienceQuery {
        segments: vec!["at_risk".into()],
        ..AudienceQuery::default()
    };
    write_audience(&engine, &q, AudienceFormat::Csv, &mut Vec::new()).unwrap();
}
