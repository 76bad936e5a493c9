//! Experiments end to end, in process: a 50/50 experiment between the `als`
//! and `for_you` lists on the recommendations route, with an event log.
//!
//! Every answer's variant is `Experiment::assign`'s and its list is what the
//! variant's strategy serves outside the experiment (asked of a second
//! server on the same model, without experiments); the exposures the server
//! logs land in the event log with the answer's fields; the admin API
//! replaces the configuration (assignments follow, the file is rewritten)
//! and refuses a bad one naming the key, leaving the old one running; and
//! the experiment report, run on the logged exposures and posted purchases,
//! counts the customers each variant exposed.

use crate::support;
use crate::support::{Reply, get, post_json, send};
use actix_web::http::StatusCode;
use actix_web::{test, web};
use encore_data::events::{EventKind, read_event_dir};
use encore_data::synth::{SynthParams, generate};
use encore_model::artifact;
use encore_model::engine::Engine;
use encore_model::experiment::report::{ReportOptions, experiment_report, report_from_dir};
use encore_model::experiment::{ExperimentSpec, ExperimentsConfig, ListName};
use encore_model::manifest::DataSummary;
use encore_model::pipeline::{EngineConfig, train_engine};
use encore_serving::{AppState, create_app};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

const HOME: &str = r#"
[[experiment]]
name = "home"
salt = "2026-12"
control = "control"
[[experiment.variant]]
name = "control"
share = 0.5
strategy = { list = "als", k = 8 }
[[experiment.variant]]
name = "repeat_aware"
share = 0.5
strategy = { list = "for_you", k = 8, include_purchased = true }
"#;

/// A synthetic shop with enough customers for 200 distinct ones, and repeat
/// purchases so that the repeat-aware list differs from ALS.
fn trained_engine() -> Engine {
    let log = generate(&SynthParams {
        customers: 240,
        items: 60,
        purchases: 6_000,
        categories: 4,
        seed: 7,
        ..SynthParams::default()
    });
    let mut config = EngineConfig::default();
    config.als.factors = 4;
    config.als.iterations = 2;
    train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap()
}

/// A server on a freshly trained model with an (empty) event log in `dir`
/// and the `HOME` experiment running.
fn logged_state(dir: &std::path::Path) -> web::Data<AppState> {
    let model_dir = dir.join("model");
    artifact::save(&trained_engine(), &model_dir).unwrap();
    let file = dir.join("experiments.toml");
    std::fs::write(&file, HOME).unwrap();
    web::Data::new(
        AppState::load(&model_dir)
            .unwrap()
            .with_event_log(&dir.join("events"), Default::default())
            .unwrap()
            .with_experiments_file(&file)
            .unwrap(),
    )
}

fn put(body: Value) -> actix_web::test::TestRequest {
    test::TestRequest::put()
        .uri("/v1/admin/experiments")
        .set_json(body)
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

/// The plain route's query for what `list` serves with `k` items.
fn plain_query(list: ListName, k: usize) -> String {
    match list {
        ListName::Als => format!("k={k}"),
        ListName::ForYou => format!("k={k}&include_purchased=true"),
        other => panic!("no plain query for {other}"),
    }
}

/// One answer under the experiment, as the test recorded it.
#[derive(Clone)]
struct Served {
    customer: String,
    variant: String,
    list: String,
    items: Vec<String>,
    request_id: String,
}

#[actix_web::test]
async fn experiments_assign_serve_log_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    artifact::save(&trained_engine(), &model_dir).unwrap();
    let file = dir.path().join("experiments.toml");
    std::fs::write(&file, HOME).unwrap();
    let events_dir = dir.path().join("events");

    let state = web::Data::new(
        AppState::load(&model_dir)
            .unwrap()
            .with_event_log(&events_dir, Default::default())
            .unwrap()
            .with_experiments_file(&file)
            .unwrap(),
    );
    let plain = web::Data::new(AppState::load(&model_dir).unwrap());
    let app = test::init_service(create_app(state.clone())).await;
    let plain_app = test::init_service(create_app(plain.clone())).await;
    let engine = state.engine().unwrap();
    let home_config = ExperimentsConfig::from_toml_str(HOME).unwrap();
    let home = home_config.get("home").unwrap().clone();

    // 200 customers the model knows and 20 it does not.
    let customers: Vec<String> = (0..200)
        .map(|c| engine.customers().id(c).to_string())
        .chain((0..20).map(|i| format!("new-customer-{i}")))
        .collect();
    let mut served = Vec::new();
    let mut lists_differ = 0;
    for (n, id) in customers.iter().enumerate() {
        let request_id = format!("req-{n}");
        let r = send(
            &app,
            get(&format!("/v1/customers/{id}/recommendations"))
                .insert_header(("x-request-id", request_id.as_str()))
                .to_request(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let variant = home.assign(id);
        assert_eq!(r.body["experiment"], "home", "{}", r.body);
        assert_eq!(r.body["variant"], variant.name.as_str(), "{id}");
        assert_eq!(header(&r, "x-encore-experiment"), Some("home"));
        assert_eq!(header(&r, "x-encore-variant"), Some(variant.name.as_str()));
        assert_eq!(header(&r, "x-request-id"), Some(request_id.as_str()));
        assert_eq!(r.body["request_id"], request_id.as_str());
        assert_eq!(r.body["customer_id"], id.as_str());

        // The same list as the strategy outside the experiment.
        let list = variant.strategy.list();
        let uri = |list| {
            format!(
                "/v1/customers/{id}/recommendations?{}",
                plain_query(list, variant.strategy.k())
            )
        };
        let p = send(&plain_app, get(&uri(list)).to_request()).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert_eq!(r.body["items"], p.body["items"], "{id} under {list}");
        assert_eq!(r.body["source"], p.body["source"], "{id}");
        assert_eq!(
            r.ids().len(),
            8,
            "the variant's k without a k in the request"
        );
        assert!(p.body.get("experiment").is_none() && p.body.get("variant").is_none());
        assert!(p.body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(header(&p, "x-encore-variant").is_none());
        // The other variant's list, to know the comparison can tell them apart.
        let other = match list {
            ListName::Als => ListName::ForYou,
            _ => ListName::Als,
        };
        let o = send(&plain_app, get(&uri(other)).to_request()).await;
        if o.body["items"] != r.body["items"] {
            lists_differ += 1;
        }
        served.push(Served {
            customer: id.clone(),
            variant: variant.name.clone(),
            list: list.to_string(),
            items: r.ids(),
            request_id,
        });
    }
    let per_variant = |name: &str| served.iter().filter(|s| s.variant == name).count();
    assert!(
        per_variant("control") > 60 && per_variant("repeat_aware") > 60,
        "{} / {}",
        per_variant("control"),
        per_variant("repeat_aware")
    );
    assert!(
        lists_differ > 50,
        "only {lists_differ} customers' lists differ"
    );

    // k: the request's k caps the variant's; a larger one does not extend it;
    // include_purchased of the request does not change the variant's list.
    let c = &customers[0];
    let v = home.assign(c);
    for (n, (query, want_k)) in [("k=3", 3), ("k=50", 8), ("include_purchased=false", 8)]
        .into_iter()
        .enumerate()
    {
        let request_id = format!("req-k-{n}");
        let r = send(
            &app,
            get(&format!("/v1/customers/{c}/recommendations?{query}"))
                .insert_header(("x-request-id", request_id.as_str()))
                .to_request(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let p = send(
            &plain_app,
            get(&format!(
                "/v1/customers/{c}/recommendations?{}",
                plain_query(v.strategy.list(), want_k)
            ))
            .to_request(),
        )
        .await;
        assert_eq!(r.body["items"], p.body["items"], "{query}");
        served.push(Served {
            customer: c.clone(),
            variant: v.name.clone(),
            list: v.strategy.list().to_string(),
            items: r.ids(),
            request_id,
        });
    }
    // A retry with the same request id is answered again but logged once.
    let retry = send(
        &app,
        get(&format!("/v1/customers/{c}/recommendations"))
            .insert_header(("x-request-id", "req-0"))
            .to_request(),
    )
    .await;
    assert_eq!(retry.ids(), served[0].items);
    // Without an X-Request-Id the server makes one and names it.
    let r = send(
        &app,
        get(&format!("/v1/customers/{c}/recommendations")).to_request(),
    )
    .await;
    let made = r.body["request_id"].as_str().unwrap().to_string();
    assert_eq!(header(&r, "x-request-id"), Some(made.as_str()));
    served.push(Served {
        customer: c.clone(),
        variant: v.name.clone(),
        list: v.strategy.list().to_string(),
        items: r.ids(),
        request_id: made,
    });
    // The same request id for another customer is another exposure: a
    // reused or guessed id cannot hide it.
    let other = served[1].clone();
    let r = send(
        &app,
        get(&format!("/v1/customers/{}/recommendations", other.customer))
            .insert_header(("x-request-id", "req-0"))
            .to_request(),
    )
    .await;
    assert_eq!(r.ids(), other.items);
    served.push(Served {
        request_id: "req-0".to_string(),
        ..other
    });

    // Every exposure is in the log, once, with the answer's fields.
    state.flush_events().unwrap();
    let (events, _) = read_event_dir(&events_dir).unwrap();
    let exposures: HashMap<(&str, &str), &encore_data::events::Event> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Exposure {
                customer,
                request_id: Some(r),
                ..
            } => Some(((r.as_str(), customer.as_str()), e)),
            _ => None,
        })
        .collect();
    assert_eq!(exposures.len(), served.len());
    for s in &served {
        let key = (s.request_id.as_str(), s.customer.as_str());
        let e = exposures
            .get(&key)
            .unwrap_or_else(|| panic!("no exposure for {key:?}"));
        assert!(
            e.id.starts_with(&format!("exposure:{}:", s.request_id)),
            "{}",
            e.id
        );
        assert!(e.received_at.is_some());
        let EventKind::Exposure {
            customer,
            list,
            items,
            experiment,
            variant,
            request_id,
        } = &e.kind
        else {
            unreachable!()
        };
        assert_eq!(customer, &s.customer);
        assert_eq!(list, &s.list);
        assert_eq!(items, &s.items);
        assert_eq!(experiment.as_deref(), Some("home"));
        assert_eq!(variant.as_deref(), Some(s.variant.as_str()));
        assert_eq!(request_id.as_deref(), Some(s.request_id.as_str()));
    }
    let r = test::call_service(&app, get("/metrics").to_request()).await;
    let text = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
    assert!(
        text.contains(&format!(
            "encore_exposures_total{{result=\"logged\"}} {}",
            served.len()
        )),
        "{text}"
    );
    assert!(
        text.contains("encore_exposures_total{result=\"dropped\"} 0"),
        "{text}"
    );

    // The admin API shows the running configuration ...
    let r = send(&app, get("/v1/admin/experiments").to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["experiments"],
        serde_json::to_value(vec![home.spec()]).unwrap()
    );
    assert_eq!(r.body["file"], file.display().to_string());

    // ... and replaces it: assignments follow the new one at once.
    let v2 = json!({"experiments": [{
    "name": "home-v2", "salt": "v2", "control": "a",
    "variants": [
        {"name": "a", "share": 0.3, "strategy": {"list": "popular", "k": 4}},
        {"name": "b", "share": 0.7, "strategy": {"list": "buy_again", "k": 5}}
    ]}]});
    let r = send(&app, put(v2.clone()).to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["saved"], true);
    assert_eq!(r.body["file"], file.display().to_string());
    let specs: Vec<ExperimentSpec> = serde_json::from_value(v2["experiments"].clone()).unwrap();
    let v2_config = ExperimentsConfig::from_specs(specs).unwrap();
    let v2_exp = v2_config.get("home-v2").unwrap();
    // Written back: a restart runs the new configuration.
    assert_eq!(ExperimentsConfig::from_path(&file).unwrap(), v2_config);
    let mut seen = HashSet::new();
    for id in customers.iter().take(60) {
        let r = send(
            &app,
            get(&format!("/v1/customers/{id}/recommendations")).to_request(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let want = v2_exp.assign(id);
        assert_eq!(r.body["experiment"], "home-v2");
        assert_eq!(r.body["variant"], want.name.as_str(), "{id}");
        assert_eq!(header(&r, "x-encore-variant"), Some(want.name.as_str()));
        seen.insert(want.name.clone());
        match want.name.as_str() {
            "a" => {
                // Popular, without the customer's purchases.
                assert_eq!(r.body["source"], "fallback");
                assert_eq!(r.ids().len(), 4);
                if let Some(c) = engine.customers().get(id) {
                    let (bought, _) = engine.history().row(c as usize);
                    for item in r.ids() {
                        let i = engine.items().get(&item).unwrap();
                        assert!(!bought.contains(&i), "{id} bought {item}");
                    }
                }
            }
            _ if engine.customers().get(id).is_some() => {
                let p = send(
                    &plain_app,
                    get(&format!("/v1/customers/{id}/buy-again?k=5")).to_request(),
                )
                .await;
                assert_eq!(r.ids(), p.ids(), "{id}: the buy-again list");
            }
            _ => assert_eq!(r.body["source"], "fallback"),
        }
    }
    assert_eq!(seen.len(), 2, "both variants served");

    // A bad configuration is refused naming the field; the old one runs on.
    let mut bad = v2.clone();
    bad["experiments"][0]["variants"][1]["strategy"]["k"] = json!(0);
    let r = send(&app, put(bad).to_request()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_experiments");
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.contains("\"b\"") && message.contains("strategy.k"),
        "{message}"
    );
    let mut two = v2.clone();
    let mut second = v2["experiments"][0].clone();
    second["name"] = json!("other");
    two["experiments"].as_array_mut().unwrap().push(second);
    let r = send(&app, put(two).to_request()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_experiments");
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.contains("placement") && message.contains("\"home-v2\""),
        "{message}"
    );
    let mut unknown = v2.clone();
    unknown["experiments"][0]["colour"] = json!("red");
    let r = send(&app, put(unknown).to_request()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_experiments");
    assert!(
        r.body["message"].as_str().unwrap().contains("colour"),
        "{}",
        r.body
    );
    let r = send(
        &app,
        put(json!({"experiments": [], "extra": 1})).to_request(),
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    let r = send(&app, get("/v1/admin/experiments").to_request()).await;
    assert_eq!(r.body["experiments"][0]["name"], "home-v2");
    assert_eq!(ExperimentsConfig::from_path(&file).unwrap(), v2_config);
    let r = send(
        &app,
        get(&format!("/v1/customers/{c}/recommendations")).to_request(),
    )
    .await;
    assert_eq!(r.body["variant"], v2_exp.assign(c).name.as_str());

    // The report on the exposures of "home" and purchases posted after them.
    let t0 = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Exposure { .. }))
        .map(|e| e.time)
        .max()
        .unwrap();
    let item = engine.items().id(0).to_string();
    let mut buyers: BTreeMap<String, String> = BTreeMap::new();
    let purchases: Vec<Value> = served
        .iter()
        .step_by(3)
        .filter(|s| {
            buyers
                .insert(s.customer.clone(), s.variant.clone())
                .is_none()
        })
        .enumerate()
        .map(|(n, s)| {
            json!({"id": format!("buy-{n}"), "type": "purchase", "time": t0 + 3_600,
                   "order_id": format!("o-{n}"), "customer": s.customer, "item": item,
                   "quantity": 1, "price": 4.5})
        })
        .collect();
    let r = send(
        &app,
        post_json("/v1/events", json!({ "events": purchases })).to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    state.flush_events().unwrap();
    let (events, _) = read_event_dir(&events_dir).unwrap();
    let report = experiment_report(
        &events,
        &ReportOptions {
            config: Some(home.clone()),
            ..ReportOptions::new("home")
        },
    )
    .unwrap();
    let mut exposed: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for s in &served {
        exposed
            .entry(s.variant.as_str())
            .or_default()
            .insert(s.customer.as_str());
    }
    assert_eq!(report.variants.len(), 2);
    for v in &report.variants {
        let want = exposed.get(v.name.as_str()).map_or(0, HashSet::len);
        assert_eq!(v.customers as usize, want, "{}", v.name);
        let converted = buyers.values().filter(|b| **b == v.name).count();
        assert_eq!(v.converted as usize, converted, "{}", v.name);
    }
    assert_eq!(report.data.assignment_mismatches, Some(0));
    assert_eq!(report.data.customers_in_several_variants, 0);

    // The server's report route reads the same log with the running
    // configuration (home again, after the replacements above): the same
    // report as the command's, as JSON.
    let r = send(
        &app,
        put(json!({"experiments": [home.spec()]})).to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (from_dir, _) = report_from_dir(
        &events_dir,
        &ReportOptions {
            config: Some(home.clone()),
            ..ReportOptions::new("home")
        },
    )
    .unwrap();
    let r = send(&app, get("/v1/admin/experiments/home/report").to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, serde_json::to_value(&from_dir).unwrap());
    assert_eq!(r.body["customers"], json!(report.customers));
    let r = send(
        &app,
        get("/v1/admin/experiments/home/report?window_days=1").to_request(),
    )
    .await;
    assert_eq!(r.body["window_days"], json!(1.0));
    for (uri, status, code) in [
        (
            "/v1/admin/experiments/nope/report",
            404,
            "experiment_not_found",
        ),
        (
            "/v1/admin/experiments/home/report?window_days=0",
            400,
            "invalid_query",
        ),
        (
            "/v1/admin/experiments/home/report?days=3",
            400,
            "invalid_query",
        ),
    ] {
        let r = send(&app, get(uri).to_request()).await;
        assert_eq!(
            (r.status.as_u16(), r.body["code"].as_str()),
            (status, Some(code)),
            "{uri}: {}",
            r.body
        );
    }
    // Without an event log there is nothing to report from.
    let r = send(
        &plain_app,
        get("/v1/admin/experiments/home/report").to_request(),
    )
    .await;
    assert_eq!(r.body["code"], "experiment_not_found", "{}", r.body);
}

#[actix_web::test]
async fn an_experiment_without_exposures_or_without_a_log_has_no_report() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    artifact::save(&trained_engine(), &model_dir).unwrap();
    let file = dir.path().join("experiments.toml");
    std::fs::write(&file, HOME).unwrap();
    let logged = web::Data::new(
        AppState::load(&model_dir)
            .unwrap()
            .with_event_log(&dir.path().join("events"), Default::default())
            .unwrap()
            .with_experiments_file(&file)
            .unwrap(),
    );
    let unlogged = web::Data::new(
        AppState::load(&model_dir)
            .unwrap()
            .with_experiments_file(&file)
            .unwrap(),
    );
    for (state, code) in [(logged, "no_exposures"), (unlogged, "events_disabled")] {
        let app = test::init_service(create_app(state)).await;
        let r = send(&app, get("/v1/admin/experiments/home/report").to_request()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert_eq!(r.body["code"], code, "{}", r.body);
    }
}

/// Exposures under the treatment variant only (the control arm logged
/// nothing): the report still answers, with the sample-ratio mismatch
/// flagged, not an internal error.
#[actix_web::test]
async fn a_report_whose_control_logged_nothing_flags_the_sample_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let state = logged_state(dir.path());
    let engine = state.engine().unwrap();
    let exposures: Vec<Value> = (0..60)
        .map(|c| {
            json!({"id": format!("x-{c}"), "type": "exposure", "time": 1_764_500_000 + c,
                   "customer": engine.customers().id(c as u32), "list": "for_you",
                   "items": [engine.items().id(0)], "experiment": "home",
                   "variant": "repeat_aware"})
        })
        .collect();
    let app = test::init_service(create_app(state.clone())).await;
    let r = send(
        &app,
        post_json("/v1/events", json!({ "events": exposures })).to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    state.flush_events().unwrap();
    let r = send(&app, get("/v1/admin/experiments/home/report").to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["sample_ratio"]["mismatch"], true, "{}", r.body);
    assert_eq!(r.body["variants"][0]["name"], "control", "{}", r.body);
    assert_eq!(r.body["variants"][0]["customers"], 0, "{}", r.body);
}

#[actix_web::test]
async fn a_log_the_report_cannot_read_answers_event_log_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let state = logged_state(dir.path());
    let app = test::init_service(create_app(state)).await;
    // Readable, but no exposure yet.
    let r = send(&app, get("/v1/admin/experiments/home/report").to_request()).await;
    assert_eq!(r.body["code"], "no_exposures", "{}", r.body);
    // A name of the log that cannot be read as a file (root reads any
    // file whatever its mode, so a directory stands for an unreadable one).
    let bad = events.join("events-00000000.jsonl");
    std::fs::create_dir(&bad).unwrap();
    let r = send(&app, get("/v1/admin/experiments/home/report").to_request()).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert_eq!(r.body["code"], "event_log_unreadable", "{}", r.body);
    assert_eq!(r.body["type"], "internal", "{}", r.body);
    let message = r.body["message"].as_str().unwrap();
    assert!(message.contains("events-00000000.jsonl"), "{message}");
    assert!(
        r.body["link"]
            .as_str()
            .unwrap()
            .ends_with("#event_log_unreadable"),
        "{}",
        r.body
    );
}

#[actix_web::test]
async fn a_bad_experiments_file_is_refused_at_start_naming_the_file_and_key() {
    let f = support::fixture();
    let path = f.model_dir.with_file_name("experiments.toml");
    std::fs::write(&path, HOME.replace("k = 8 }", "k = 0 }")).unwrap();
    let e = AppState::load(&f.model_dir)
        .unwrap()
        .with_experiments_file(&path)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("experiments.toml") && e.contains("\"control\"") && e.contains("strategy.k"),
        "{e}"
    );
    let e = AppState::load(&f.model_dir)
        .unwrap()
        .with_experiments_file(&path.with_file_name("missing.toml"))
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
}

fn hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[actix_web::test]
async fn the_admin_routes_need_an_admin_key_and_work_without_a_file_or_log() {
    let f = support::fixture();
    let keys = encore_serving::auth::ApiKeys::parse(
        &format!(
            "[[keys]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
             [[keys]]\nname = \"shop\"\nrole = \"read\"\nsha256 = \"{}\"\n",
            hex("admin-secret"),
            hex("read-secret")
        ),
        "keys.toml",
    )
    .unwrap();
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_api_keys(keys)
            .with_experiments(ExperimentsConfig::default(), None)
            .unwrap(),
    );
    let app = test::init_service(create_app(state.clone())).await;
    let body = json!({"experiments": [{
    "name": "x", "control": "a", "placement": "recommendations",
    "variant": [
        {"name": "a", "share": 0.5, "strategy": {"list": "als", "k": 3}},
        {"name": "b", "share": 0.5, "strategy": {"list": "popular", "k": 2, "category": support::TEA}}
    ]}]});
    for (key, code) in [(None, "unauthorized"), (Some("read-secret"), "forbidden")] {
        let mut g = get("/v1/admin/experiments");
        let mut p = put(body.clone());
        if let Some(k) = key {
            g = g.insert_header(("x-api-key", k));
            p = p.insert_header(("x-api-key", k));
        }
        let status = if key.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        send(&app, g.to_request()).await.assert_error(status, code);
        send(&app, p.to_request()).await.assert_error(status, code);
    }
    // Nothing runs: plain answers, with a request id (customer data: a
    // read key).
    let r = send(
        &app,
        get("/v1/customers/c0/recommendations?k=5")
            .insert_header(("x-api-key", "read-secret"))
            .to_request(),
    )
    .await;
    assert!(r.body.get("experiment").is_none(), "{}", r.body);
    assert!(r.body["request_id"].is_string());

    let admin = ("authorization", "Bearer admin-secret");
    let r = send(&app, put(body).insert_header(admin).to_request()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["saved"], false, "no file: held in memory only");
    assert_eq!(r.body["file"], Value::Null);
    let r = send(
        &app,
        get("/v1/admin/experiments")
            .insert_header(admin)
            .to_request(),
    )
    .await;
    assert_eq!(r.body["experiments"][0]["placement"], "recommendations");
    // Served without an event log (nothing to log exposures to); the
    // variant's category wins over the request's.
    let config = ExperimentsConfig::from_specs(
        serde_json::from_value(r.body["experiments"].clone()).unwrap(),
    )
    .unwrap();
    let x = config.get("x").unwrap();
    for n in 0..20 {
        let id = format!("c{n}");
        let r = send(
            &app,
            get(&format!(
                "/v1/customers/{id}/recommendations?category={}",
                support::KITCHEN
            ))
            .insert_header(admin)
            .to_request(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let want = x.assign(&id);
        assert_eq!(r.body["variant"], want.name.as_str());
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= want.strategy.k());
        let category = if want.name == "b" {
            support::TEA
        } else {
            support::KITCHEN
        };
        assert!(
            items.iter().all(|i| i["category"] == category),
            "{id}: {}",
            r.body
        );
    }
    state.flush_events().unwrap();
}

/// A `blend` variant serves the customer's most due buy-again items in its
/// first `buy_again_slots` places and new items from ALS after them.
#[actix_web::test]
async fn a_blend_variant_puts_due_items_first_then_new_items() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    artifact::save(&trained_engine(), &model_dir).unwrap();
    let blend = ExperimentsConfig::from_toml_str(
        r#"
[[experiment]]
name = "slots"
control = "b3"
[[experiment.variant]]
name = "b3"
share = 0.5
strategy = { list = "blend", k = 8, buy_again_slots = 3 }
[[experiment.variant]]
name = "b5"
share = 0.5
strategy = { list = "blend", k = 8, buy_again_slots = 5 }
"#,
    )
    .unwrap();
    let state = web::Data::new(
        AppState::load(&model_dir)
            .unwrap()
            .with_experiments(blend, None)
            .unwrap(),
    );
    let plain = web::Data::new(AppState::load(&model_dir).unwrap());
    let app = test::init_service(create_app(state.clone())).await;
    let plain_app = test::init_service(create_app(plain)).await;
    let engine = state.engine().unwrap();
    let mut checked = 0;
    for c in 0..60u32 {
        let id = engine.customers().id(c).to_string();
        let r = send(
            &app,
            get(&format!("/v1/customers/{id}/recommendations")).to_request(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let slots = match r.body["variant"].as_str() {
            Some("b3") => 3,
            Some("b5") => 5,
            other => panic!("variant {other:?}"),
        };
        let due = send(
            &plain_app,
            get(&format!("/v1/customers/{id}/buy-again?k={slots}")).to_request(),
        )
        .await
        .ids();
        let ids = r.ids();
        assert_eq!(ids.len(), 8, "{}", r.body);
        assert_eq!(ids[..due.len()], due[..], "{id}: {}", r.body);
        let fresh = send(
            &plain_app,
            get(&format!(
                "/v1/customers/{id}/recommendations?k={}",
                8 - due.len()
            ))
            .to_request(),
        )
        .await
        .ids();
        assert_eq!(ids[due.len()..], fresh[..], "{id}: {}", r.body);
        let scores = r.scores();
        assert!(scores.windows(2).all(|w| w[0] > w[1]), "{scores:?}");
        if due.len() == slots {
            checked += 1;
        }
    }
    assert!(checked > 10, "only {checked} customers with all slots due");
}
