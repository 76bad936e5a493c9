//! Serving from a model store: the server follows `CURRENT`, refuses a damaged
//! version while the old model keeps serving, and reports reloads in `/v1/model`.

use crate::support::synth_engine;
use actix_web::{test, web};
use encore_model::artifact::store::Store;
use encore_serving::state::ModelSource;
use encore_serving::{AppState, create_app};
use serde_json::Value;

#[actix_web::test]
async fn follows_current_and_keeps_serving_through_a_damaged_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.publish(&mut synth_engine("v1")).unwrap();
    store.set_current("v1").unwrap();
    let state = web::Data::new(AppState::load_from(ModelSource::Store(store.clone())).unwrap());
    assert!(!state.store_moved());

    // A new version becomes current: the state sees it and swaps it in.
    store.publish(&mut synth_engine("v2")).unwrap();
    store.set_current("v2").unwrap();
    assert!(state.store_moved());
    let r = state.reload().unwrap();
    assert_eq!(
        (r.previous_version.as_deref(), r.model_version.as_str()),
        (Some("v1"), "v2")
    );
    assert!(!state.store_moved());

    // A damaged version named by CURRENT (written by hand, bypassing the
    // store's own check) is refused and v2 keeps serving.
    store.publish(&mut synth_engine("v3")).unwrap();
    let f = store.dir_of("v3").join("als_users.f32");
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&f, bytes).unwrap();
    std::fs::write(dir.path().join("CURRENT"), "v3\n").unwrap();
    assert!(state.store_moved());
    assert!(state.reload().is_err());
    assert_eq!(state.engine().unwrap().manifest().model_version, "v2");

    let app = test::init_service(create_app(state.clone())).await;
    let res =
        test::call_service(&app, test::TestRequest::get().uri("/v1/model").to_request()).await;
    assert!(res.status().is_success());
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["model_version"], "v2");
    assert_eq!(body["reloads"]["succeeded"], 1);
    assert_eq!(body["reloads"]["failed"], 1);
    let error = body["reloads"]["last_error"]["error"].as_str().unwrap();
    assert!(error.contains("als_users.f32"), "{error}");
}

#[actix_web::test]
async fn a_store_without_a_version_serves_503_until_its_first_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let state = web::Data::new(AppState::load_from(ModelSource::Store(store.clone())).unwrap());
    assert!(state.engine().is_none());
    assert!(!state.store_moved());
    let app = test::init_service(create_app(state.clone())).await;
    let get = |uri: &'static str| test::TestRequest::get().uri(uri).to_request();
    for uri in [
        "/readyz",
        "/v1/model",
        "/v1/kpis",
        "/v1/customers/c1/recommendations",
    ] {
        let res = test::call_service(&app, get(uri)).await;
        assert_eq!(res.status(), 503, "{uri}");
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["code"], "service_unavailable", "{uri}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("no model"), "{uri}: {message}");
    }
    // The process is up, and the dashboard's page loads to say so.
    assert_eq!(
        test::call_service(&app, get("/healthz")).await.status(),
        200
    );
    assert_eq!(test::call_service(&app, get("/")).await.status(), 200);

    // The first version arrives: the watcher's test sees it, the reload loads it.
    store.publish(&mut synth_engine("v1")).unwrap();
    store.set_current("v1").unwrap();
    assert!(state.store_moved());
    let r = state.reload().unwrap();
    assert_eq!((r.previous_version, r.model_version.as_str()), (None, "v1"));
    assert_eq!(test::call_service(&app, get("/readyz")).await.status(), 200);
    let res = test::call_service(&app, get("/v1/model")).await;
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["model_version"], "v1");
}

#[actix_web::test]
async fn a_model_directory_that_is_not_an_artifact_still_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    assert!(AppState::load(dir.path()).is_err());
}

#[actix_web::test]
async fn admin_routes_need_an_admin_key() {
    use encore_serving::auth::ApiKeys;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.publish(&mut synth_engine("v1")).unwrap();
    store.set_current("v1").unwrap();
    let hex = |key: &str| {
        use sha2::{Digest, Sha256};
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let keys = ApiKeys::parse(
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
        AppState::load_from(ModelSource::Store(store.clone()))
            .unwrap()
            .with_api_keys(keys),
    );
    let app = test::init_service(create_app(state)).await;
    let reload = |key: Option<&str>| {
        let mut req = test::TestRequest::post()
            .uri("/v1/admin/reload")
            .insert_header(("content-type", "application/json"));
        if let Some(k) = key {
            req = req.insert_header(("authorization", format!("Bearer {k}")));
        }
        req.to_request()
    };
    for (key, status, code) in [
        (None, 401, Some("unauthorized")),
        (Some("guess"), 401, Some("unauthorized")),
        (Some("read-secret"), 403, Some("forbidden")),
        (Some("admin-secret"), 200, None),
    ] {
        let res = test::call_service(&app, reload(key)).await;
        assert_eq!(res.status().as_u16(), status, "{key:?}");
        let body: Value = test::read_body_json(res).await;
        if let Some(code) = code {
            assert_eq!(body["code"], code, "{body}");
            assert_eq!(body["type"], "auth", "{body}");
        }
    }
    // Percent-encoded spellings of the same routes (the router decodes them)
    // need the same keys.
    for (method, uri, key, status) in [
        ("POST", "/v1/%61dmin/reload", Some("read-secret"), 403),
        ("POST", "/v1/%61dmin/reload", None, 401),
        ("PUT", "/v1/adm%69n/experiments", None, 401),
        ("GET", "/v1/%61dmin/experiments", Some("read-secret"), 403),
        ("POST", "/v1/%65vents", None, 401),
        ("POST", "/v1/%65vents", Some("read-secret"), 403),
    ] {
        let mut req = test::TestRequest::default()
            .method(method.parse().unwrap())
            .uri(uri);
        if let Some(k) = key {
            req = req.insert_header(("authorization", format!("Bearer {k}")));
        }
        let res = test::call_service(&app, req.to_request()).await;
        assert_eq!(res.status().as_u16(), status, "{method} {uri} {key:?}");
    }
    // Catalog reads stay open without keys_for_reads; customer data does not.
    let res =
        test::call_service(&app, test::TestRequest::get().uri("/v1/model").to_request()).await;
    assert_eq!(res.status().as_u16(), 200);
    let res = test::call_service(&app, test::TestRequest::get().uri("/v1/kpis").to_request()).await;
    assert_eq!(res.status().as_u16(), 401);
}
