//! The HTTP API in-process: `create_app` over a small model trained from a
//! hand-made purchase history, each test in its own temporary directory.

use crate::support::{KITCHEN, SLASHED, TEA, UNAVAILABLE, fixture, get, post_json, send, train};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{test, web};
use encore_model::artifact;
use encore_serving::{AppState, create_app};
use serde_json::json;
use std::path::Path;
use std::sync::mpsc;

#[actix_web::test]
async fn health_and_readiness() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let r = send(&app, get("/healthz").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = send(&app, get("/readyz").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["model_version"], "v1");
    assert_eq!(r.version(), Some("v1"));
}

#[actix_web::test]
async fn similar_items() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let r = send(&app, get("/v1/items/i0/similar?k=3").to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.version(), Some("v1"));
    assert_eq!(r.body["item_id"], "i0");
    let ids = r.ids();
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&"i0".to_string()));
    assert!(!ids.contains(&UNAVAILABLE.to_string()));
    let first = &r.body["items"][0];
    assert!(first["score"].is_number());
    assert!(first["category"].is_string());
    // Scores are best first.
    let scores = r.scores();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Default k is 10 (the catalog has 13 items, one unavailable).
    let r = send(&app, get("/v1/items/i0/similar").to_request()).await;
    assert_eq!(r.ids().len(), 10);
}

#[actix_web::test]
async fn title_is_left_out_when_the_catalog_has_none() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let r = send(&app, get("/v1/items/i0/similar?k=12").to_request()).await;
    let items = r.body["items"].as_array().unwrap();
    let i3 = items
        .iter()
        .find(|i| i["item_id"] == "i3")
        .expect("i3 listed");
    assert!(i3.get("title").is_none(), "{i3}");
    assert_eq!(i3["category"], TEA);
    let i1 = items
        .iter()
        .find(|i| i["item_id"] == "i1")
        .expect("i1 listed");
    assert_eq!(i1["title"], "Item i1");
}

#[actix_web::test]
async fn bought_together_items() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let r = send(&app, get("/v1/items/i0/bought-together?k=5").to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.version(), Some("v1"));
    assert_eq!(r.body["item_id"], "i0");
    let ids = r.ids();
    assert!(!ids.is_empty() && ids.len() <= 5, "{ids:?}");
    // i0 is only ever bought with i1 and i5 (orders of c0, c5, c6, ...).
    for id in &ids {
        assert!(id == "i1" || id == "i5", "{ids:?}");
    }
}

#[actix_web::test]
async fn ids_are_percent_decoded() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let r = send(&app, get("/v1/items/mug%2Flarge/similar?k=2").to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["item_id"], SLASHED);
}

#[actix_web::test]
async fn unknown_item_is_404_in_the_error_shape() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    // `%FF` is not UTF-8: actix decodes it to U+FFFD, an id no model holds.
    for uri in [
        "/v1/items/nope/similar",
        "/v1/items/nope/bought-together",
        "/v1/items/%FF/similar",
    ] {
        let r = send(&app, get(uri).to_request()).await;
        r.assert_error(StatusCode::NOT_FOUND, "item_not_found");
        assert_eq!(r.body["type"], "not_found");
        assert_eq!(r.version(), Some("v1"));
    }
}

#[actix_web::test]
async fn bad_k_is_invalid_k() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    for k in ["0", "201", "abc", "", "-1", "1.5"] {
        for path in [
            "/v1/items/i0/similar",
            "/v1/items/i0/bought-together",
            "/v1/customers/c0/recommendations",
        ] {
            let r = send(&app, get(&format!("{path}?k={k}")).to_request()).await;
            r.assert_error(StatusCode::BAD_REQUEST, "invalid_k");
            assert_eq!(r.body["type"], "invalid_request");
        }
    }
    for k in [json!(0), json!(201), json!("abc"), json!(2.5)] {
        let req = post_json("/v1/recommendations", json!({"items": ["i0"], "k": k}));
        send(&app, req.to_request())
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_k");
    }
    // The bounds themselves are fine.
    let r = send(&app, get("/v1/items/i0/similar?k=200").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, get("/v1/items/i0/similar?k=1").to_request()).await;
    assert_eq!(r.ids().len(), 1);
}

#[actix_web::test]
async fn bad_query_is_invalid_query() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    for uri in [
        "/v1/customers/c0/recommendations?include_purchased=maybe",
        "/v1/customers/c0/recommendations?colour=red",
        "/v1/customers/c0/recommendations?category=",
        "/v1/items/i0/similar?category=tea",
        "/v1/items/i0/similar?k=1&k=2",
    ] {
        let r = send(&app, get(uri).to_request()).await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    }
}

#[actix_web::test]
async fn long_or_bad_ids_are_invalid_id() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let long = "x".repeat(257);
    for uri in [
        format!("/v1/items/{long}/similar"),
        format!("/v1/customers/{long}/recommendations"),
        format!("/v1/customers/c0/recommendations?exclude=i1,{long}"),
    ] {
        send(&app, get(&uri).to_request())
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_id");
    }
    let req = post_json("/v1/recommendations", json!({"items": [long]}));
    send(&app, req.to_request())
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_id");
    let many: Vec<String> = (0..1001).map(|i| format!("x{i}")).collect();
    let req = post_json("/v1/recommendations", json!({"items": many}));
    send(&app, req.to_request())
        .await
        .assert_error(StatusCode::BAD_REQUEST, "too_many_ids");
}

#[actix_web::test]
async fn customer_recommendations() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let r = send(
        &app,
        get("/v1/customers/c0/recommendations?k=5").to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.version(), Some("v1"));
    assert_eq!(r.body["customer_id"], "c0");
    assert_eq!(r.body["source"], "model");
    assert_eq!(r.ids().len(), 5);
}

#[actix_web::test]
async fn unknown_customer_gets_the_fallback() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let r = send(
        &app,
        get("/v1/customers/stranger/recommendations?k=4").to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["customer_id"], "stranger");
    assert_eq!(r.body["source"], "fallback");
    assert_eq!(r.ids().len(), 4);
    assert_eq!(r.version(), Some("v1"));
}

#[actix_web::test]
async fn purchased_items_are_left_out_unless_asked_for() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    // c0 bought i0, i1 (tea), i6, i8 (kitchen) and mug/large.
    let bought = ["i0", "i1", "i6", "i8", SLASHED];
    let r = send(
        &app,
        get("/v1/customers/c0/recommendations?k=200").to_request(),
    )
    .await;
    let ids = r.ids();
    assert!(!ids.is_empty());
    for b in bought {
        assert!(!ids.iter().any(|i| i == b), "{b} in {ids:?}");
    }
    let r = send(
        &app,
        get("/v1/customers/c0/recommendations?k=200&include_purchased=true").to_request(),
    )
    .await;
    let ids = r.ids();
    for b in bought {
        assert!(ids.iter().any(|i| i == b), "{b} not in {ids:?}");
    }
    // Every available item, and never the unavailable one.
    assert_eq!(ids.len(), 12);
    assert!(!ids.iter().any(|i| i == UNAVAILABLE));
}

#[actix_web::test]
async fn exclude_removes_items_and_ignores_unknown_ids() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let uri = "/v1/customers/c0/recommendations?k=3";
    let before = send(&app, get(uri).to_request()).await.ids();
    assert_eq!(before.len(), 3);
    let exclude = format!("{},nope,,{}", before[0], before[1]);
    let r = send(&app, get(&format!("{uri}&exclude={exclude}")).to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = r.ids();
    assert_eq!(after.len(), 3);
    assert!(
        !after.contains(&before[0]) && !after.contains(&before[1]),
        "{after:?}"
    );
    assert_eq!(after[0], before[2]);

    // The fallback honours it too.
    let uri = "/v1/customers/stranger/recommendations?k=2";
    let before = send(&app, get(uri).to_request()).await.ids();
    let r = send(
        &app,
        get(&format!("{uri}&exclude={}", before[0])).to_request(),
    )
    .await;
    assert!(!r.ids().contains(&before[0]));
}

#[actix_web::test]
async fn category_filter() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    for (customer, category) in [("c0", TEA), ("c0", KITCHEN), ("stranger", TEA)] {
        let uri = format!(
            "/v1/customers/{customer}/recommendations?k=200&category={category}&include_purchased=true"
        );
        let r = send(&app, get(&uri).to_request()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(
            items.iter().all(|i| i["category"] == category),
            "{}",
            r.body
        );
    }
    let r = send(
        &app,
        get("/v1/customers/c0/recommendations?category=garden").to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.ids().is_empty());
}

#[actix_web::test]
async fn basket_recommendations() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let req = post_json(
        "/v1/recommendations",
        json!({"items": ["i0", "ghost", "i1", "ghost"], "k": 4, "exclude": ["i2", "nope"], "category": TEA}),
    );
    let r = send(&app, req.to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.version(), Some("v1"));
    assert_eq!(r.body["source"], "model");
    assert_eq!(r.body["unknown_items"], json!(["ghost"]));
    let ids = r.ids();
    assert!(!ids.is_empty() && ids.len() <= 4);
    for never in ["i0", "i1", "i2"] {
        assert!(!ids.iter().any(|i| i == never), "{ids:?}");
    }
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["category"] == TEA)
    );

    // Defaults: k = 10, no filter.
    let r = send(
        &app,
        post_json("/v1/recommendations", json!({"items": ["i6"]})).to_request(),
    )
    .await;
    assert_eq!(r.ids().len(), 10);
}

#[actix_web::test]
async fn basket_of_unknown_items_gets_the_fallback() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    for items in [json!(["ghost", "phantom"]), json!([])] {
        let req = post_json("/v1/recommendations", json!({"items": items, "k": 3}));
        let r = send(&app, req.to_request()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["source"], "fallback");
        assert_eq!(r.body["unknown_items"], items);
        assert_eq!(r.ids().len(), 3);
    }
}

#[actix_web::test]
async fn malformed_json_is_invalid_json() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    for body in [
        r#"{"items": ["i0""#,
        "not json",
        r#"{"items": "i0"}"#,
        r#"{"items": [1, 2]}"#,
        r#"{"k": 3}"#,
        r#"{"items": ["i0"], "colour": "red"}"#,
    ] {
        let req = test::TestRequest::post()
            .uri("/v1/recommendations")
            .insert_header(header::ContentType::json())
            .set_payload(body);
        let r = send(&app, req.to_request()).await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
}

#[actix_web::test]
async fn wrong_content_type_is_415() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let req = test::TestRequest::post()
        .uri("/v1/recommendations")
        .insert_header(header::ContentType::plaintext())
        .set_payload(r#"{"items": ["i0"]}"#);
    send(&app, req.to_request())
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let req = test::TestRequest::post()
        .uri("/v1/recommendations")
        .set_payload(r#"{"items": ["i0"]}"#);
    send(&app, req.to_request())
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

#[actix_web::test]
async fn huge_body_is_413() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let padding = "x".repeat(2 << 20);
    let body = format!(r#"{{"items": ["i0"], "category": "{padding}"}}"#);
    let req = test::TestRequest::post()
        .uri("/v1/recommendations")
        .insert_header(header::ContentType::json())
        .set_payload(body);
    send(&app, req.to_request())
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[actix_web::test]
async fn unknown_route_and_wrong_method() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    for uri in [
        "/ui/nothing-here.js",
        "/v2/model",
        "/v1/items/i0",
        "/v1/items/i0/similar/extra",
    ] {
        let r = send(&app, get(uri).to_request()).await;
        r.assert_error(StatusCode::NOT_FOUND, "route_not_found");
        assert_eq!(r.body["type"], "not_found");
    }
    let r = send(
        &app,
        test::TestRequest::delete().uri("/v1/model").to_request(),
    )
    .await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.headers.get(header::ALLOW).unwrap(), "GET");
    let r = send(&app, get("/v1/recommendations").to_request()).await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.headers.get(header::ALLOW).unwrap(), "POST");
}

#[actix_web::test]
async fn model_manifest() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let r = send(&app, get("/v1/model").to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.version(), Some("v1"));
    assert_eq!(r.body["model_version"], "v1");
    assert_eq!(
        r.body["format_version"],
        encore_model::manifest::FORMAT_VERSION
    );
    assert_eq!(r.body["data"]["fingerprint"], "sha256:0123456789abcdef");
    assert_eq!(r.body["config"]["als"]["factors"], 8);
    assert_eq!(r.body["items"], 13);
    assert_eq!(r.body["customers"], 20);
    assert!(r.body.get("files").is_none());
    assert!(r.body["created_at"].is_string());
}

fn truncate(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len / 2).unwrap();
}

#[actix_web::test]
async fn reload_swaps_the_model_and_refuses_a_damaged_one() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    artifact::save(&train("v2", 7), &f.model_dir).expect("saves v2");

    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/v1/admin/reload")
            .insert_header(("content-type", "application/json"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"model_version": "v2", "previous_version": "v1", "changed": true})
    );
    assert_eq!(r.version(), Some("v2"));
    let r = send(&app, get("/v1/model").to_request()).await;
    assert_eq!(r.body["model_version"], "v2");
    let r = send(&app, get("/v1/items/i0/similar").to_request()).await;
    assert_eq!(r.version(), Some("v2"));

    // A third model, damaged on disk: refused, v2 keeps serving.
    artifact::save(&train("v3", 9), &f.model_dir).expect("saves v3");
    truncate(&f.model_dir.join("als_items.f32"));
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/v1/admin/reload")
            .insert_header(("content-type", "application/json"))
            .to_request(),
    )
    .await;
    r.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "model_load_failed");
    assert_eq!(r.body["type"], "model");
    let r = send(&app, get("/v1/model").to_request()).await;
    assert_eq!(r.body["model_version"], "v2");
    let r = send(&app, get("/v1/customers/c1/recommendations").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.version(), Some("v2"));

    // A missing directory is refused the same way.
    std::fs::remove_dir_all(&f.model_dir).unwrap();
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/v1/admin/reload")
            .insert_header(("content-type", "application/json"))
            .to_request(),
    )
    .await;
    r.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "model_load_failed");
    assert_eq!(f.state.engine().unwrap().manifest().model_version, "v2");
}

#[actix_web::test]
async fn a_full_scoring_queue_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    artifact::save(&train("v1", 42), &model_dir).unwrap();
    let state = AppState::load(&model_dir)
        .unwrap()
        .with_max_pending_scoring(1);
    let state = web::Data::new(state);
    // Hold the only place in the queue with a job that waits for the test.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = state.clone();
    let held = actix_web::rt::spawn(async move {
        holder
            .score(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
            .await
    });
    web::block(move || started_rx.recv())
        .await
        .unwrap()
        .unwrap();

    let app = test::init_service(create_app(state.clone())).await;
    // Longer than the precomputed head of c0's new-item list (the 7 of the
    // 13 items c0 can be offered): ALS scores the catalog.
    let r = send(
        &app,
        get("/v1/customers/c0/recommendations?k=20").to_request(),
    )
    .await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert_eq!(r.body["type"], "unavailable");
    assert_eq!(r.headers.get(header::RETRY_AFTER).unwrap(), "1");
    let req = post_json("/v1/recommendations", json!({"items": ["i0"]}));
    send(&app, req.to_request())
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    // Longer than the similar-items list the model keeps per item (50):
    // the index is searched.
    send(&app, get("/v1/items/i1/similar?k=60").to_request())
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    // Lists that need no scoring are still answered: the fit kept every
    // item's similar list (the index is the exact scan at this size).
    let r = send(&app, get("/v1/items/i1/similar").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    // A short list is the head of c0's precomputed new-item list.
    let r = send(
        &app,
        get("/v1/customers/c0/recommendations?k=3").to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["source"], "model");
    let r = send(
        &app,
        get("/v1/customers/stranger/recommendations").to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, get("/v1/items/i0/bought-together").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    send(&app, get("/v1/items/nope/similar").to_request())
        .await
        .assert_error(StatusCode::NOT_FOUND, "item_not_found");

    release_tx.send(()).unwrap();
    held.await.unwrap().unwrap();
    let r = send(
        &app,
        get("/v1/customers/c0/recommendations?k=20").to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}
