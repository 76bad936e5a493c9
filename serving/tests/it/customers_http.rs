//! The customer-intelligence routes in-process: profile, orders, next-purchase,
//! buy-again, KPIs and the streamed reactivation audience, over a model
//! trained on a seeded synthetic history with repeat customers.

use actix_web::http::StatusCode;
use actix_web::{test, web};
use encore_data::synth::{SynthParams, generate};
use encore_data::timestamp::format_timestamp;
use encore_model::artifact;
use encore_model::engine::Engine;
use encore_model::manifest::DataSummary;
use encore_model::pipeline::{EngineConfig, train_engine};
use encore_serving::{AppState, MODEL_VERSION_HEADER, create_app};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::OnceLock;
use tempfile::TempDir;

struct Fixture {
    _dir: TempDir,
    state: web::Data<AppState>,
}

/// One model for every test (training takes a moment).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let log = generate(&SynthParams {
            customers: 300,
            items: 120,
            purchases: 6_000,
            categories: 6,
            ..SynthParams::default()
        });
        let mut config = EngineConfig::default();
        config.als.factors = 8;
        config.als.iterations = 4;
        let engine: Engine =
            train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        artifact::save(&engine, &model).unwrap();
        Fixture {
            state: web::Data::new(AppState::load(&model).unwrap()),
            _dir: dir,
        }
    })
}

/// Status, content type and body text of a GET.
async fn get(uri: &str) -> (StatusCode, String, String) {
    let app = test::init_service(create_app(fixture().state.clone())).await;
    let res = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
    let status = res.status();
    assert!(
        res.headers().contains_key(MODEL_VERSION_HEADER)
            || !status.is_success()
            || uri == "/metrics"
            || uri == "/openapi.json",
        "{uri}: no model version header"
    );
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = test::read_body(res).await;
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

async fn get_json(uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = get(uri).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {body}")),
    )
}

fn engine() -> std::sync::Arc<Engine> {
    fixture().state.engine().unwrap()
}

/// A customer with at least `min_orders` orders.
fn customer_with(min_orders: u32) -> String {
    let e = engine();
    let (c, _) = e
        .customer_book()
        .profiles()
        .enumerate()
        .find(|(_, p)| p.as_ref().is_some_and(|p| p.orders >= min_orders))
        .expect("a repeat customer");
    e.customers().id(c as u32).to_string()
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let keys: HashSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, HashSet::from(["message", "code", "type", "link"]));
}

#[actix_web::test]
async fn profile_has_every_field() {
    let id = customer_with(3);
    let (status, body) = get_json(&format!("/v1/customers/{id}/profile")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customer_id"], id.as_str());
    for key in [
        "as_of",
        "segment",
        "lifecycle_stage",
        "orders",
        "first_purchase",
        "last_purchase",
        "total_spend",
        "average_order_value",
        "churn_risk",
        "clv",
    ] {
        assert!(!body[key].is_null(), "{key} missing in {body}");
    }
    for score in ["r", "f", "m"] {
        let v = body["rfm"][score].as_u64().unwrap();
        assert!((1..=5).contains(&v), "{body}");
    }
    assert!(body["orders"].as_u64().unwrap() >= 3);
    let risk = body["churn_risk"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&risk), "{body}");
    // On this synthetic history nobody visibly drops out, so every
    // repeat-buying model calls everyone alive: the profile says so by leaving
    // P(alive) out rather than claiming 1.
    assert!(body.as_object().unwrap().contains_key("p_alive"), "{body}");
    assert!(body["p_alive"].is_null(), "{body}");
}

/// Every order of every customer: as many as the profile counts, newest
/// first; `limit` keeps the newest and says the list is truncated.
#[actix_web::test]
async fn orders_are_the_profiles_orders_newest_first() {
    let engine = engine();
    let mut checked = 0;
    for c in 0..engine.customers().len() as u32 {
        let Some(profile) = engine.customer_book().profile(c) else {
            continue;
        };
        let id = engine.customers().id(c).to_string();
        let (status, body) = get_json(&format!("/v1/customers/{id}/orders?limit=1000")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let orders = body["orders"].as_array().unwrap();
        assert_eq!(body["total"], profile.orders, "{id}");
        assert_eq!(orders.len(), profile.orders as usize, "{id}");
        assert_eq!(body["truncated"], false);
        let times: Vec<&str> = orders.iter().map(|o| o["time"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{id}: {times:?}");
        let time = |o: &Value| o["time"].as_str().unwrap().to_string();
        assert_eq!(
            time(&orders[orders.len() - 1]),
            format_timestamp(profile.first_purchase)
        );
        assert_eq!(time(&orders[0]), format_timestamp(profile.last_purchase));
        let mut value = 0.0;
        for o in orders {
            assert!(o["lines"].as_u64().unwrap() >= 1, "{o}");
            assert!(o["units"].as_f64().unwrap() > 0.0, "{o}");
            value += o["value"].as_f64().unwrap();
            assert_eq!(
                &o["time"].as_str().unwrap()[..10],
                o["date"].as_str().unwrap()
            );
        }
        // Synthetic prices on every line, no returns: the values add up to the spend.
        assert!(
            (value - profile.total_spend).abs() <= 1e-3 * profile.total_spend.max(1.0),
            "{id}: {value} against {}",
            profile.total_spend
        );
        checked += 1;
    }
    assert!(checked > 250, "{checked}");

    let id = customer_with(5);
    let (_, all) = get_json(&format!("/v1/customers/{id}/orders")).await;
    let total = all["total"].as_u64().unwrap();
    let (status, some) = get_json(&format!("/v1/customers/{id}/orders?limit=2")).await;
    assert_eq!(status, StatusCode::OK, "{some}");
    assert_eq!(some["total"].as_u64().unwrap(), total);
    assert_eq!(some["truncated"], true);
    assert_eq!(
        some["orders"].as_array().unwrap()[..],
        all["orders"].as_array().unwrap()[..2]
    );
    let (_, exact) = get_json(&format!("/v1/customers/{id}/orders?limit={total}")).await;
    assert_eq!(exact["truncated"], false);
    assert_eq!(exact["orders"], all["orders"]);
    for bad in ["0", "1001", "-1", "abc", "2.5"] {
        let (status, body) = get_json(&format!("/v1/customers/{id}/orders?limit={bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    }
    let (status, body) = get_json(&format!("/v1/customers/{id}/orders?k=3")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
}

#[actix_web::test]
async fn unknown_customer_is_customer_not_found() {
    for route in ["profile", "orders", "next-purchase", "buy-again"] {
        let (status, body) = get_json(&format!("/v1/customers/nobody/{route}")).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "customer_not_found");
    }
}

#[actix_web::test]
async fn next_purchase_and_buy_again() {
    let id = customer_with(4);
    let (status, body) = get_json(&format!("/v1/customers/{id}/next-purchase?k=6")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for key in [
        "churn_risk",
        "expected_purchases_30d",
        "expected_purchases_90d",
        "lifecycle_stage",
        "segment",
        "clv",
    ] {
        assert!(!body[key].is_null(), "{key} missing in {body}");
    }
    let e30 = body["expected_purchases_30d"].as_f64().unwrap();
    let e90 = body["expected_purchases_90d"].as_f64().unwrap();
    assert!(0.0 <= e30 && e30 <= e90, "{body}");
    let p = &body["buy_within_30d_probability"];
    assert!(
        p.is_null() || (0.0..=1.0).contains(&p.as_f64().unwrap()),
        "{body}"
    );
    let due = body["replenishment"].as_array().unwrap();
    assert!(!due.is_empty() && due.len() <= 6, "{body}");
    for d in due {
        assert!(d["due_date"].as_str().unwrap().len() == 10, "{d}");
    }
    let items = body["recommended_items"].as_array().unwrap();
    assert!(!items.is_empty() && items.len() <= 6);
    let ids: HashSet<&str> = items
        .iter()
        .map(|i| i["item_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), items.len(), "an item twice: {body}");

    let (status, body) = get_json(&format!("/v1/customers/{id}/buy-again?k=3")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body["items"].as_array().unwrap();
    assert!(!list.is_empty() && list.len() <= 3);
    let scores: Vec<f64> = list.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{body}");
    // Only items the customer bought.
    let e = engine();
    let c = e.customers().get(&id).unwrap();
    let (bought, _) = e.history().row(c as usize);
    for i in list {
        let item = e.items().get(i["item_id"].as_str().unwrap()).unwrap();
        assert!(bought.contains(&item), "{i} was never bought by {id}");
    }
    let (status, body) = get_json(&format!("/v1/customers/{id}/buy-again?k=0")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_k");
}

#[actix_web::test]
async fn kpis_match_the_book() {
    let (status, body) = get_json("/v1/kpis").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let e = engine();
    let m = e.customer_book().models();
    let stages: u64 = body["stage_counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(stages as usize, m.customers);
    assert_eq!(
        body["overall"]["buyers"].as_u64().unwrap(),
        u64::from(m.kpis.overall.buyers)
    );
    assert!(!body["monthly"].as_array().unwrap().is_empty());
    assert!(body["models"]["bgnbd"]["r"].as_f64().unwrap() > 0.0);
}

#[actix_web::test]
async fn audience_streams_ndjson_and_csv() {
    let stages = "dormant,at_risk,lost,active";
    let (status, ctype, body) =
        get(&format!("/v1/audiences/reactivation?stage={stages}&k=3")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(ctype.starts_with("application/x-ndjson"), "{ctype}");
    let rows: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let e = engine();
    let want = e
        .customer_book()
        .profiles()
        .flatten()
        .filter(|p| p.stage.as_str() != "new")
        .count();
    assert_eq!(rows.len(), want, "one line per matching customer");
    let mut seen = HashSet::new();
    for r in &rows {
        assert!(seen.insert(r["customer_id"].as_str().unwrap().to_string()));
        assert_ne!(r["stage"], "new");
        assert!(r["items"].as_array().unwrap().len() <= 3);
        assert_eq!(r["send_date"].as_str().unwrap().len(), 10);
    }
    let clv: Vec<f64> = rows.iter().filter_map(|r| r["clv"].as_f64()).collect();
    assert!(clv.windows(2).all(|w| w[0] >= w[1]), "highest CLV first");

    let (status, ctype, csv) = get(&format!(
        "/v1/audiences/reactivation?stage={stages}&k=3&format=csv&limit=5&max_churn_risk=1"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 5.min(rows.len()), "{csv}");
    assert!(lines[0].starts_with("customer_id,stage,segment,p_alive,churn_risk,clv"));
    assert!(lines[0].ends_with("item_1,item_2,item_3"));
    let first_id = rows[0]["customer_id"].as_str().unwrap();
    assert!(lines[1].starts_with(first_id), "same order in CSV: {csv}");

    let (status, _, body) = get("/v1/audiences/reactivation?min_p_alive=1.01").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A P(alive) filter on a model that reports none is refused, naming the
    // filter that works.
    let (status, body) = get_json("/v1/audiences/reactivation?min_p_alive=0.5").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("max_churn_risk"), "{body}");
    for bad in [
        "stage=zombie",
        "format=xml",
        "min_p_alive=NaN",
        "max_churn_risk=1.5",
        "limit=0",
        "k=500",
        "as_of=yesterday",
        "colour=red",
    ] {
        let (status, body) = get_json(&format!("/v1/audiences/reactivation?{bad}")).await;
        let code = if bad.starts_with("k=") {
            "invalid_k"
        } else {
            "invalid_query"
        };
        assert_error(status, &body, StatusCode::BAD_REQUEST, code);
    }

    // A misspelt segment is refused, naming it; a segment of the model's map
    // that no customer of the query is in is an empty audience, not an error.
    let (status, body) = get_json("/v1/audiences/reactivation?segment=champions,championz").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("'championz'"), "{message}");
    assert!(message.contains("champions, loyal"), "{message}");
    let (status, _, text) = get("/v1/audiences/reactivation?stage=new&segment=lost").await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[actix_web::test]
async fn metrics_count_routes_by_pattern() {
    let id = customer_with(3);
    let (status, _) = get_json(&format!("/v1/customers/{id}/profile")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_json(&format!("/v1/customers/{id}/recommendations?k=3")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_json("/v1/customers/nobody/profile").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ctype, text) = get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let route = "route=\"/v1/customers/{customer_id}/profile\"";
    assert!(
        value(&format!(
            "encore_http_requests_total{{{route},method=\"GET\",status=\"200\"}}"
        )) >= 1.0
    );
    assert!(
        value(&format!(
            "encore_http_requests_total{{{route},method=\"GET\",status=\"404\"}}"
        )) >= 1.0
    );
    let count = value(&format!(
        "encore_http_request_duration_seconds_count{{{route}}}"
    ));
    assert_eq!(
        value(&format!(
            "encore_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}}"
        )),
        count
    );
    assert!(count >= 2.0);
    assert!(value("encore_recommendations_total{source=\"model\"}") >= 1.0);
    assert!(text.contains("encore_model_info{version="), "{text}");
    assert!(value("encore_model_reloads_total{result=\"failure\"}") >= 0.0);
    // No raw ids in any label.
    assert!(!text.contains(&format!("/v1/customers/{id}/")), "{text}");
}

#[actix_web::test]
async fn openapi_document_is_served() {
    let (status, ctype, body) = get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/v1/audiences/reactivation"]["get"].is_object());
}
