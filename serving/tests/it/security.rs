//! Who can reach what (docs/security.md names these tests): customer data
//! behind a read key, state changes refused from other origins and without a
//! JSON content type, CORS closed unless allow-listed, keys read again
//! without a restart, a bounded metrics label set, bounded list parameters
//! and a deadline on request bodies.

use crate::support;
use crate::support::{fixture, get, send};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpServer, test, web};
use encore_serving::{AppState, create_app};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

macro_rules! metrics_text {
    ($app:expr) => {{
        let res = test::call_service($app, get("/metrics").to_request()).await;
        String::from_utf8(test::read_body(res).await.to_vec()).unwrap()
    }};
}

fn hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A key file with an admin, a write and a read key (`<role>-secret`), and
/// `extra` lines at its top.
fn key_file(extra: &str) -> String {
    format!(
        "{extra}\n\
         [[keys]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
         [[keys]]\nname = \"feed\"\nrole = \"write\"\nsha256 = \"{}\"\n\
         [[keys]]\nname = \"shop\"\nrole = \"read\"\nsha256 = \"{}\"\n",
        hex("admin-secret"),
        hex("write-secret"),
        hex("read-secret")
    )
}

fn keyed_state(model_dir: &Path, extra: &str) -> web::Data<AppState> {
    let keys = encore_serving::auth::ApiKeys::parse(&key_file(extra), "keys.toml").unwrap();
    web::Data::new(AppState::load(model_dir).unwrap().with_api_keys(keys))
}

/// Every route that answers customer data.
const CUSTOMER_DATA: [&str; 7] = [
    "/v1/customers/c1/profile",
    "/v1/customers/c1/orders",
    "/v1/customers/c1/next-purchase",
    "/v1/customers/c1/buy-again",
    "/v1/customers/c1/recommendations",
    "/v1/audiences/reactivation",
    "/v1/kpis",
];

/// With keys and nothing said about reads, the routes that answer customer
/// data need a key (any role); catalog reads and probes stay open.
#[actix_web::test]
async fn with_keys_customer_data_needs_a_read_key_by_default() {
    let f = fixture();
    let app = test::init_service(create_app(keyed_state(&f.model_dir, ""))).await;
    for path in CUSTOMER_DATA {
        let r = send(&app, get(path).to_request()).await;
        r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        for key in ["read-secret", "write-secret", "admin-secret"] {
            let res = test::call_service(
                &app,
                get(path)
                    .insert_header(("authorization", format!("bearer {key}")))
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::OK, "{path} {key}");
        }
    }
    for path in [
        "/v1/items/i1/similar",
        "/v1/items/i1/bought-together",
        "/v1/model",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        let res = test::call_service(&app, get(path).to_request()).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // "all": catalog reads too; "none": customer data open (a gateway checks).
    let app = test::init_service(create_app(keyed_state(
        &f.model_dir,
        "keys_for_reads = \"all\"",
    )))
    .await;
    let r = send(&app, get("/v1/items/i1/similar").to_request()).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let app = test::init_service(create_app(keyed_state(
        &f.model_dir,
        "keys_for_reads = \"none\"",
    )))
    .await;
    let res = test::call_service(&app, get("/v1/kpis").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Keys or not, the routes that change state take only JSON and refuse web
/// pages of other origins: a browser cannot send them a "simple" request.
#[actix_web::test]
async fn state_changes_refuse_other_origins_and_other_content_types() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_event_log(&dir.path().join("events"), Default::default())
            .unwrap(),
    );
    let app = test::init_service(create_app(state.clone())).await;
    let event = json!({"events": [{"id": "e1", "type": "purchase", "order_id": "o1",
        "customer": "c1", "item": "i1", "time": "2023-11-20T10:00:00Z", "quantity": 1,
        "price": 3.0}]});
    let routes = [
        ("POST", "/v1/admin/reload", String::new()),
        (
            "PUT",
            "/v1/admin/experiments",
            json!({"experiments": []}).to_string(),
        ),
        ("POST", "/v1/events", event.to_string()),
    ];
    for (method, path, body) in &routes {
        let req = |ctype: Option<&str>, origin: Option<&str>| {
            let mut req = test::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(path)
                .set_payload(body.clone());
            if let Some(t) = ctype {
                req = req.insert_header((header::CONTENT_TYPE, t));
            }
            if let Some(o) = origin {
                req = req.insert_header((header::ORIGIN, o));
            }
            req.to_request()
        };
        for ctype in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let r = send(&app, req(ctype, None)).await;
            r.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
        }
        let r = send(
            &app,
            req(Some("application/json"), Some("https://evil.example")),
        )
        .await;
        r.assert_error(StatusCode::FORBIDDEN, "cross_origin");
        assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let r = send(&app, req(Some("application/json"), None)).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {path}: {}", r.body);
    }
    // The event refused above was never written: one accepted, no duplicate.
    state.flush_events().unwrap();
    let text = metrics_text!(&app);
    assert!(
        text.contains("encore_events_total{result=\"accepted\"} 1"),
        "{text}"
    );
}

/// No allow-list: no CORS header ever, preflights refused. With one, its
/// origins (and only they) get the CORS headers and may change state.
#[actix_web::test]
async fn cors_is_closed_unless_an_origin_is_allowed() {
    let f = fixture();
    let preflight = |origin: &str| {
        test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/v1/admin/reload")
            .insert_header((header::ORIGIN, origin.to_string()))
            .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
            .to_request()
    };
    let closed = test::init_service(create_app(f.state.clone())).await;
    let res = test::call_service(&closed, preflight("https://shop.example")).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        res.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
    let res = test::call_service(
        &closed,
        get("/v1/items/i1/similar")
            .insert_header((header::ORIGIN, "https://shop.example"))
            .to_request(),
    )
    .await;
    assert!(
        res.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_cors_origins(vec!["https://shop.example".into()]),
    );
    let open = test::init_service(create_app(state)).await;
    let res = test::call_service(&open, preflight("https://shop.example")).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        res.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .unwrap(),
        "https://shop.example"
    );
    let res = test::call_service(&open, preflight("https://evil.example")).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = send(
        &open,
        test::TestRequest::post()
            .uri("/v1/admin/reload")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::ORIGIN, "https://shop.example"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
        "https://shop.example"
    );
}

fn reload_with(key: &str) -> actix_web::test::TestRequest {
    test::TestRequest::post()
        .uri("/v1/admin/reload")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(("authorization", format!("Bearer {key}")))
}

/// `POST /v1/admin/reload` reads the key file again: a rotated key works at
/// once, the old one stops working, and a broken file changes nothing.
#[actix_web::test]
async fn the_reload_route_reads_the_key_file_again() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.toml");
    std::fs::write(&file, key_file("")).unwrap();
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_api_keys_file(&file)
            .unwrap(),
    );
    let app = test::init_service(create_app(state.clone())).await;
    let rotated = format!(
        "[[keys]]\nname = \"ops2\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        hex("rotated-secret")
    );
    std::fs::write(&file, rotated).unwrap();
    let res = test::call_service(&app, reload_with("admin-secret").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let r = send(&app, reload_with("admin-secret").to_request()).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let res = test::call_service(&app, reload_with("rotated-secret").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);

    std::fs::write(&file, "[[keys]]\nname = \"broken\"\n").unwrap();
    let r = send(&app, reload_with("rotated-secret").to_request()).await;
    r.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "api_keys_reload_failed");
    assert!(
        r.body["message"].as_str().unwrap().contains("keys.toml"),
        "{}",
        r.body
    );
    let res = test::call_service(&app, reload_with("rotated-secret").to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The keys in use did not change: the rotated key still passes the check.
    let res = test::call_service(
        &app,
        get("/v1/kpis")
            .insert_header(("x-api-key", "rotated-secret"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Made-up methods are counted under one `other` label: they cannot grow
/// the number of series.
#[actix_web::test]
async fn made_up_methods_are_counted_as_other() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    for n in 0..50 {
        let method = format!("MAAAA{n}");
        let req = test::TestRequest::default()
            .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap())
            .uri("/v1/kpis")
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = metrics_text!(&app);
    assert!(!text.contains("MAAAA"), "{text}");
    assert!(
        text.contains(
            "encore_http_requests_total{route=\"/v1/kpis\",method=\"other\",status=\"405\"} 50"
        ),
        "{text}"
    );
}

/// `stage=` and `segment=` drop repeats and refuse more than 64 different
/// values with a 400 that says so.
#[actix_web::test]
async fn list_parameters_are_deduplicated_and_bounded() {
    let f = fixture();
    let app = test::init_service(create_app(f.state.clone())).await;
    let repeated = vec!["dormant"; 500].join(",");
    let res = test::call_service(
        &app,
        get(&format!("/v1/audiences/reactivation?stage={repeated}")).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let many: Vec<String> = (0..65).map(|n| format!("s{n}")).collect();
    for param in ["segment", "stage"] {
        let r = send(
            &app,
            get(&format!(
                "/v1/audiences/reactivation?{param}={}",
                many.join(",")
            ))
            .to_request(),
        )
        .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
        let message = r.body["message"].as_str().unwrap();
        assert!(
            message.contains(param) && message.contains("64"),
            "{message}"
        );
    }
}

/// A body still arriving `body_timeout` after its head answers
/// `408 request_timeout` (a real server on a loopback port, in process).
#[actix_web::test]
async fn a_slow_body_times_out() {
    let f = fixture();
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_body_timeout(Duration::from_millis(500)),
    );
    let server = HttpServer::new(move || create_app(state.clone()))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let exchange = |complete: bool| {
        move || -> String {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let body = r#"{"items": ["i1"], "k": 3}"#;
            let sent = if complete { body } else { &body[..5] };
            write!(
                s,
                "POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{sent}",
                body.len()
            )
            .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        }
    };
    let slow = web::block(exchange(false)).await.unwrap();
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    let body: Value = serde_json::from_str(slow.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "request_timeout");
    let quick = web::block(exchange(true)).await.unwrap();
    assert!(quick.starts_with("HTTP/1.1 200"), "{quick}");
    handle.stop(false).await;
}

/// Audience streams are capped: one open stream holds its place until its
/// body is dropped, and finding the members goes through the scoring queue.
#[actix_web::test]
async fn audience_streams_are_capped_and_queued() {
    let f = fixture();
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_max_audience_streams(1)
            .with_max_pending_scoring(1),
    );
    let app = test::init_service(create_app(state.clone())).await;
    let audience = "/v1/audiences/reactivation?stage=dormant,at_risk,lost,active,new";
    let open = test::call_service(&app, get(audience).to_request()).await;
    assert_eq!(open.status(), StatusCode::OK);
    let r = send(&app, get(audience).to_request()).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert_eq!(r.headers.get(header::RETRY_AFTER).unwrap(), "1");
    drop(open);
    let res = test::call_service(&app, get(audience).to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);

    // Hold the only place in the scoring queue: the audience waits its turn
    // like every other scoring job.
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
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
    let r = send(&app, get(audience).to_request()).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    release_tx.send(()).unwrap();
    held.await.unwrap().unwrap();
    let res = test::call_service(&app, get(audience).to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A batch of more than 1000 events is refused with the count, all or
/// nothing (the route counts the list as it reads it; see
/// `an_oversized_batch_is_counted_not_kept` in `routes/events.rs`).
#[actix_web::test]
async fn an_oversized_event_batch_is_refused_with_its_count() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_event_log(&dir.path().join("events"), Default::default())
            .unwrap(),
    );
    let app = test::init_service(create_app(state.clone())).await;
    let events: Vec<Value> = (0..3000)
        .map(|n| {
            json!({"id": format!("e{n}"), "type": "click", "time": "2023-11-20T10:00:00Z",
                   "customer": "c1", "item": "i1"})
        })
        .collect();
    let r = send(
        &app,
        support::post_json("/v1/events", json!({ "events": events })).to_request(),
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "too_many_events");
    assert!(
        r.body["message"].as_str().unwrap().contains("3000 events"),
        "{}",
        r.body
    );
    state.flush_events().unwrap();
    let text = metrics_text!(&app);
    assert!(
        text.contains("encore_events_total{result=\"accepted\"} 0"),
        "{text}"
    );
}

/// A client that stops reading an audience stream does not keep it, nor the
/// model it started on: after `write_timeout` the stream is dropped (its
/// model freed once a reload replaced it, its stream slot free again) and
/// the answer ends with an error instead of its last chunk.
#[actix_web::test]
async fn a_stream_whose_client_stops_reading_lets_its_model_go() {
    use actix_web::body::MessageBody;
    let f = fixture();
    let state = web::Data::new(
        AppState::load(&f.model_dir)
            .unwrap()
            .with_max_audience_streams(1)
            .with_write_timeout(Duration::from_secs(1)),
    );
    let app = test::init_service(create_app(state.clone())).await;
    let audience = "/v1/audiences/reactivation?stage=dormant,at_risk,lost,active,new&k=5";
    let old_model = std::sync::Arc::downgrade(&state.engine().unwrap());
    let res = test::call_service(&app, get(audience).to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = Box::pin(res.into_body());
    // The client reads the first part, then nothing more.
    type Part = Option<Result<actix_web::web::Bytes, Box<dyn std::error::Error>>>;
    let mut next_part = async || -> Part {
        futures_util::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .map(|r| r.map_err(Into::into))
    };
    let first = next_part().await;
    assert!(
        matches!(first, Some(Ok(ref b)) if !b.is_empty()),
        "{first:?}"
    );
    // A new model is swapped in: only the stalled stream holds the old one.
    state.reload().unwrap();
    assert!(old_model.upgrade().is_some(), "the stream holds its model");
    let r = send(&app, get(audience).to_request()).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");

    // Waits (up to 30 s, for a busy machine) for the watchdog.
    for _ in 0..300 {
        if old_model.upgrade().is_none() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        old_model.upgrade().is_none(),
        "the stalled stream still holds the old model"
    );
    // Its slot is free again, and the stalled answer ends with an error.
    let res = test::call_service(&app, get(audience).to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    // (An error, not the end: the client never sees a cut answer as whole.)
    let next = next_part().await;
    assert!(matches!(next, Some(Err(_))), "{next:?}");

    // A client that keeps reading gets the whole answer, however long it
    // takes in total (here: the rest of the fresh stream, read at once).
    let whole = actix_web::body::to_bytes(res.into_body()).await;
    let whole = whole.map_err(|e| Into::<Box<dyn std::error::Error>>::into(e).to_string());
    assert!(whole.as_ref().is_ok_and(|b| !b.is_empty()), "{whole:?}");
}
