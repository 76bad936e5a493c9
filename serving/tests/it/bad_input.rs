//! Bad input never breaks the API: property tests over every route of the
//! OpenAPI document (which a unit test keeps equal to the route table, so a
//! new route is covered here as soon as it is documented).
//!
//! Path ids (overlong, invalid UTF-8 escapes such as `%FF%FE`, NUL and
//! control characters, emoji, `..`, empty), query parameters (chosen by their
//! documented schema: huge, negative, NaN or `1e309` numbers, unknown enum
//! values and stage names, unknown or repeated parameters), JSON bodies
//! (random values, wrong types, deep nesting, huge arrays, invalid UTF-8, not
//! JSON, wrong content types), other methods, and 10 MB bodies with and
//! without a `Content-Length`. Whatever arrives:
//!
//! - nothing panics and nothing answers 500 (503 only with a documented code);
//! - every failure has the error shape `{"message", "code", "type", "link"}`
//!   with a code from the error table of docs/api.md, and the status and type
//!   that table gives the code;
//! - where the right answer is known (a bad `k` is `invalid_k`, an overlong id
//!   `invalid_id`, a body that is not a JSON object `invalid_json`, ...), it
//!   is that answer.

use crate::support;
use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, Service, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::rt::System;
use actix_web::test::{self, TestRequest};
use actix_web::web::{self, Bytes};
use encore_data::timestamp::parse_timestamp;
use encore_model::artifact;
use encore_serving::error::ERROR_LINK_BASE;
use encore_serving::{AppState, Code, create_app};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::OnceLock;
use tempfile::TempDir;

// ---------------------------------------------------------------- the routes

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
struct Route {
    template: String,
    method: Method,
    path_params: Vec<String>,
    /// Name and schema of each query parameter.
    query: Vec<(String, Value)>,
    /// Whether the operation documents a JSON request body.
    json_body: bool,
}

impl Route {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The path with each parameter replaced by its (encoded) value.
    fn path(&self, values: &HashMap<String, String>) -> String {
        let mut path = self.template.clone();
        for name in &self.path_params {
            path = path.replace(&format!("{{{name}}}"), &values[name]);
        }
        path
    }

    /// The path with ids the model knows.
    fn known_path(&self) -> String {
        let values = self
            .path_params
            .iter()
            .map(|name| (name.clone(), encode(known_id(name).as_bytes())))
            .collect();
        self.path(&values)
    }
}

fn routes() -> Vec<Route> {
    let doc = encore_serving::openapi::document();
    let mut routes = Vec::new();
    for (template, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let named = |location: &str| {
                params
                    .iter()
                    .filter(|p| p["in"] == location)
                    .map(|p| (p["name"].as_str().unwrap().to_string(), p["schema"].clone()))
                    .collect::<Vec<_>>()
            };
            let path_params: Vec<String> = named("path").into_iter().map(|(n, _)| n).collect();
            let in_template: Vec<String> = template
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_string)
                .collect();
            assert_eq!(
                in_template, path_params,
                "{template}: documented path parameters"
            );
            routes.push(Route {
                template: template.clone(),
                method: Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path_params,
                query: named("query"),
                json_body: op.get("requestBody").is_some(),
            });
        }
    }
    assert!(routes.len() >= 15, "{routes:?}");
    routes
}

/// An id of the test model for a path parameter. A route with a new kind of
/// path parameter fails here until this test knows a value for it.
fn known_id(param: &str) -> &'static str {
    match param {
        "item_id" => "i0",
        "customer_id" => "c1",
        // The experiment of `app_state`, with one exposure in its log.
        "name" => "home",
        other => panic!("no known value for the path parameter '{other}': extend bad_input.rs"),
    }
}

/// Whether the model knows `id` as a value of the path parameter `param`.
fn is_known(param: &str, id: &str) -> bool {
    let engine = app_state().engine().unwrap();
    match param {
        "item_id" => engine.items().get(id).is_some(),
        "customer_id" => engine.customers().get(id).is_some(),
        "name" => id == "home",
        other => panic!("unknown path parameter '{other}'"),
    }
}

/// The model of `support` with an event log, so that `POST /v1/events`
/// validates what it gets, and an experiment `home` with one exposure in
/// the log, so that its report exists; one for every test (the directory
/// lives as long as the process).
fn app_state() -> &'static web::Data<AppState> {
    static STATE: OnceLock<(TempDir, web::Data<AppState>)> = OnceLock::new();
    &STATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let model_dir = dir.path().join("model");
            artifact::save(&support::train("v1", 42), &model_dir).expect("saves");
            let events = dir.path().join("events");
            let exposure = encore_data::events::event_from_value(serde_json::json!({
                "id": "exposure-1", "type": "exposure", "time": 1_700_000_000,
                "customer": "c1", "list": "als", "items": ["i0"],
                "experiment": "home", "variant": "a"}))
            .unwrap();
            encore_data::event_log::EventLog::open(&events, Default::default())
                .and_then(|mut log| log.append(vec![exposure], 1_700_000_000))
                .expect("seeds the event log");
            let experiments = encore_model::experiment::ExperimentsConfig::from_toml_str(
                "[[experiment]]\nname = \"home\"\ncontrol = \"a\"\n\
                 [[experiment.variant]]\nname = \"a\"\nshare = 0.5\nstrategy = { list = \"als\", k = 5 }\n\
                 [[experiment.variant]]\nname = \"b\"\nshare = 0.5\nstrategy = { list = \"popular\", k = 5 }\n",
            )
            .expect("an experiment");
            let state = AppState::load(&model_dir)
                .expect("loads")
                .with_event_log(&events, Default::default())
                .expect("opens the event log")
                .with_experiments(experiments, None)
                .expect("runs the experiment");
            (dir, web::Data::new(state))
        })
        .1
}

// ---------------------------------------------------------------- the error table

/// `code -> (status, type)` from the error table of docs/api.md.
fn documented_codes() -> HashMap<String, (u16, String)> {
    let doc = include_str!("../../../docs/api.md");
    let start = doc.find("\n## Errors\n").expect("an Errors section") + 1;
    let section = &doc[start..];
    let end = section[1..].find("\n#").map_or(section.len(), |i| i + 1);
    section[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
            (
                cells[0].to_string(),
                (cells[1].parse().expect("a status"), cells[2].to_string()),
            )
        })
        .collect()
}

#[test]
fn api_md_error_table_matches_the_code() {
    let documented = documented_codes();
    for code in Code::ALL {
        assert_eq!(
            documented.get(code.code()),
            Some(&(code.status().as_u16(), code.kind().as_str().to_string())),
            "docs/api.md row of {}",
            code.code()
        );
    }
    assert_eq!(documented.len(), Code::ALL.len(), "{documented:?}");
}

// ---------------------------------------------------------------- answers

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code, if the answer is in the error shape.
    fn code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v["code"].as_str().map(str::to_string)
    }
}

/// Sends `req` as the server would: an error the service returns becomes its
/// response.
async fn call<S, R, B>(app: &S, req: R) -> Answer
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    match app.call(req).await {
        Ok(res) => {
            let status = res.status();
            let headers = res.headers().clone();
            let body = test::read_body(res).await;
            Answer {
                status,
                headers,
                body,
            }
        }
        Err(e) => {
            let res = e.error_response();
            let status = res.status();
            let headers = res.headers().clone();
            let body = actix_web::body::to_bytes(res.into_body())
                .await
                .unwrap_or_default();
            Answer {
                status,
                headers,
                body,
            }
        }
    }
}

/// What every answer must satisfy: no 500, a documented 503 at most, the
/// error shape on every failure, JSON where JSON is announced.
fn check_answer(what: &str, a: &Answer) -> Result<(), TestCaseError> {
    let codes = documented_codes();
    let ctype = a
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if a.status.is_success() {
        if ctype.starts_with("application/json") {
            prop_assert!(
                serde_json::from_slice::<Value>(&a.body).is_ok(),
                "{}: {} with a body that is not JSON: {}",
                what,
                a.status,
                a.text()
            );
        }
        return Ok(());
    }
    prop_assert!(
        ctype.starts_with("application/json"),
        "{}: {} answered as {:?}: {}",
        what,
        a.status,
        ctype,
        a.text()
    );
    let body: Value = serde_json::from_slice(&a.body).map_err(|e| {
        TestCaseError::fail(format!(
            "{what}: {} body not JSON ({e}): {}",
            a.status,
            a.text()
        ))
    })?;
    let obj = body
        .as_object()
        .ok_or_else(|| TestCaseError::fail(format!("{what}: not an object: {body}")))?;
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    prop_assert_eq!(
        keys,
        BTreeSet::from(["code", "link", "message", "type"]),
        "{}: {}",
        what,
        body
    );
    prop_assert!(obj.values().all(Value::is_string), "{}: {}", what, body);
    let code = body["code"].as_str().unwrap();
    let (status, kind) = codes
        .get(code)
        .ok_or_else(|| TestCaseError::fail(format!("{what}: undocumented code in {body}")))?;
    prop_assert_eq!(a.status.as_u16(), *status, "{}: {}", what, body);
    prop_assert_eq!(
        body["type"].as_str().unwrap(),
        kind.as_str(),
        "{}: {}",
        what,
        body
    );
    prop_assert_eq!(
        body["link"].as_str().unwrap(),
        format!("{ERROR_LINK_BASE}{code}"),
        "{}",
        what
    );
    prop_assert!(!body["message"].as_str().unwrap().is_empty(), "{}", what);
    prop_assert!(
        !a.status.is_server_error()
            || (a.status == StatusCode::SERVICE_UNAVAILABLE
                && ["service_unavailable", "overloaded"].contains(&code)),
        "{}: server error {}",
        what,
        body
    );
    Ok(())
}

/// Asserts that the answer is a failure with one of `codes`, or, when
/// `codes` is empty, a success.
fn expect(what: &str, a: &Answer, codes: &[&str]) -> Result<(), TestCaseError> {
    check_answer(what, a)?;
    if codes.is_empty() {
        prop_assert!(
            a.status.is_success(),
            "{}: expected success, got {} {}",
            what,
            a.status,
            a.text()
        );
    } else {
        let code = a.code().unwrap_or_default();
        prop_assert!(
            codes.contains(&code.as_str()),
            "{}: expected one of {:?}, got {} {}",
            what,
            codes,
            a.status,
            a.text()
        );
    }
    Ok(())
}

/// Runs `test` on `cases` values of `strategy` against one app.
fn run<S, F>(name: &str, cases: u32, strategy: S, test: F)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(&dyn Fn(TestRequest) -> Answer, S::Value) -> Result<(), TestCaseError>,
{
    let system = System::new();
    let app = system.block_on(test::init_service(create_app(app_state().clone())));
    let send = |req: TestRequest| system.block_on(call(&app, req.to_request()));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, |value| test(&send, value)) {
        panic!("{name}: {e}");
    }
}

// ---------------------------------------------------------------- encodings

/// Percent-encodes every byte but the unreserved ones.
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query_string(pairs: &[(String, Vec<u8>)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k.as_bytes()), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

// ---------------------------------------------------------------- strategies

/// Raw bytes of a path id.
fn id_bytes() -> impl Strategy<Value = Vec<u8>> {
    let specials: Vec<&'static [u8]> = vec![
        b"",
        b".",
        b"..",
        b"\xff\xfe",
        b"\0",
        b"\x01\x1f\x7f",
        b"a/b",
        b"mug/large",
        b"../../etc/passwd",
        b"a+b",
        b"%",
        b"%25FF",
        b"a b",
        b"?k=1",
        b"#",
        b"\xe2\x80\xae",
        b"\xef\xbb\xbf",
        b"\xed\xa0\x80",
        b"i0",
        b"c1",
        b"c0",
    ];
    prop_oneof![
        3 => proptest::sample::select(specials).prop_map(<[u8]>::to_vec),
        2 => "[a-z0-9]{1,12}".prop_map(String::into_bytes),
        3 => proptest::collection::vec(any::<u8>(), 0..40),
        2 => (250usize..600).prop_map(|n| vec![b'x'; n]),
        2 => (60usize..70).prop_map(|n| "\u{1F600}".repeat(n).into_bytes()),
        1 => (80usize..90).prop_map(|n| vec![0xff; n]),
        1 => "\\PC{1,30}".prop_map(String::into_bytes),
    ]
}

/// A query value by the documented schema: valid values and every kind of bad one.
fn value_for(name: &str, schema: &Value) -> BoxedStrategy<Vec<u8>> {
    let bad_numbers: Vec<&'static str> = vec![
        "",
        "0",
        "-1",
        "-0",
        "201",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "infinity",
        "1e309",
        "-1e309",
        "1e2",
        "2.5",
        "abc",
        "+5",
        " 5",
        "5 ",
        "0x10",
        "18446744073709551616",
        "99999999999999999999999999",
        "\u{0661}\u{0662}",
        "0.5",
        "1",
        "5",
        "200",
        "-0.5",
        "1.0000001",
        "true",
    ];
    let numbers = prop_oneof![
        3 => proptest::sample::select(bad_numbers).prop_map(str::to_string),
        2 => (1u32..=250).prop_map(|k| k.to_string()),
        1 => any::<i64>().prop_map(|k| k.to_string()),
        1 => any::<f64>().prop_map(|x| x.to_string()),
        1 => "\\PC{0,12}",
    ]
    .prop_map(String::into_bytes);
    let stages = proptest::sample::select(vec![
        "new",
        "active",
        "dormant",
        "sleeping",
        "at_risk",
        "lost",
        "",
        " ",
        "Lost",
        "gone",
        "at risk",
        "\u{1F600}",
    ]);
    let texts = prop_oneof![
        Just(Vec::new()),
        "\\PC{0,20}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..20),
    ];
    // RFM segments of the default map, misspelt ones and empty entries.
    let segments = proptest::sample::select(vec![
        "champions",
        "at_risk",
        "lost",
        "other",
        "",
        "Champions",
        "at-risk",
        "CSV",
        "\u{1F600}",
    ]);
    match (name, schema["type"].as_str()) {
        ("stage", _) => proptest::collection::vec(stages, 0..4)
            .prop_map(|s| s.join(",").into_bytes())
            .boxed(),
        ("segment", _) => prop_oneof![
            proptest::collection::vec(segments, 0..4).prop_map(|s| s.join(",").into_bytes()),
            texts,
        ]
        .boxed(),
        ("exclude", _) => prop_oneof![
            proptest::collection::vec(id_bytes(), 0..6).prop_map(|ids| ids.join(&b","[..])),
            (990usize..1010).prop_map(|n| (0..n)
                .map(|i| format!("x{i}"))
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes()),
        ]
        .boxed(),
        (_, Some("integer" | "number")) => numbers.boxed(),
        (_, Some("boolean")) => prop_oneof![
            proptest::sample::select(vec!["true", "false", "", "1", "0", "yes", "TRUE", "null"])
                .prop_map(|s| s.as_bytes().to_vec()),
            texts,
        ]
        .boxed(),
        (_, Some("string")) if schema.get("format") == Some(&json!("date")) => prop_oneof![
            proptest::sample::select(vec![
                "2011-12-09",
                "20111209",
                "2011-13-01",
                "2011-02-30",
                "0000-01-01",
                "9999-12-31",
                "yesterday",
                "",
                "2011-12-09T12:50:00Z",
                "-2011-01-01",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            texts,
        ]
        .boxed(),
        (_, Some("string")) => {
            let enums: Vec<Vec<u8>> = schema["enum"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|v| v.as_str().unwrap().as_bytes().to_vec())
                        .collect()
                })
                .unwrap_or_default();
            let mut fixed = enums;
            fixed.extend(["xml", "", "CSV", "json"].map(|s| s.as_bytes().to_vec()));
            prop_oneof![proptest::sample::select(fixed), texts].boxed()
        }
        (other, t) => {
            panic!("no strategy for query parameter '{other}' of type {t:?}: extend bad_input.rs")
        }
    }
}

/// The codes a query value may answer with; empty when it is valid.
fn codes_for(name: &str, schema: &Value, raw: &[u8]) -> Vec<&'static str> {
    let v = String::from_utf8_lossy(raw);
    let v = v.as_ref();
    let bad = |ok: bool, code| if ok { vec![] } else { vec![code] };
    match (name, schema["type"].as_str()) {
        ("k", _) => bad(
            v.parse::<i128>().is_ok_and(|k| (1..=200).contains(&k)),
            "invalid_k",
        ),
        ("stage", _) => {
            let names: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let known = ["new", "active", "dormant", "sleeping", "at_risk", "lost"];
            bad(
                !names.is_empty() && names.iter().all(|n| known.contains(n)),
                "invalid_query",
            )
        }
        ("exclude", _) => {
            let ids: Vec<&str> = v.split(',').filter(|s| !s.is_empty()).collect();
            if ids.len() > 1000 {
                vec!["too_many_ids"]
            } else {
                bad(ids.iter().all(|id| id.len() <= 256), "invalid_id")
            }
        }
        ("segment", _) => {
            // Entries are trimmed and empty ones skipped; every other one
            // must be a segment of the model's (default) RFM map.
            let known = encore_model::customer::rfm::RfmParams::default().segment_names();
            bad(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .all(|s| known.iter().any(|k| k == s)),
                "invalid_query",
            )
        }
        ("category", _) => bad(!v.is_empty(), "invalid_query"),
        // Positive, up to 100 years (the report's own check).
        ("window_days", _) => bad(
            v.parse::<f64>()
                .is_ok_and(|x| x > 0.0 && x <= encore_model::experiment::report::MAX_WINDOW_DAYS),
            "invalid_query",
        ),
        (_, Some("integer")) => {
            let min = schema["minimum"].as_i64().map_or(i128::MIN, i128::from);
            let max = schema["maximum"]
                .as_u64()
                .map_or(u64::MAX as i128, i128::from);
            bad(
                v.parse::<i128>().is_ok_and(|x| x >= min && x <= max),
                "invalid_query",
            )
        }
        (_, Some("number")) => {
            let min = schema["minimum"].as_f64().unwrap_or(f64::NEG_INFINITY);
            let max = schema["maximum"].as_f64().unwrap_or(f64::INFINITY);
            bad(
                v.parse::<f64>()
                    .is_ok_and(|x| x.is_finite() && x >= min && x <= max),
                "invalid_query",
            )
        }
        (_, Some("boolean")) => bad(v == "true" || v == "false", "invalid_query"),
        (_, Some("string")) if schema.get("format") == Some(&json!("date")) => {
            bad(parse_timestamp(v).is_some(), "invalid_query")
        }
        (_, Some("string")) => match schema["enum"].as_array() {
            Some(e) => bad(e.iter().any(|x| x == v), "invalid_query"),
            None => vec![],
        },
        _ => vec!["invalid_query"],
    }
}

/// A query parameter: its name and raw value.
type Pair = (String, Vec<u8>);

/// A query: some documented parameters with generated values, maybe an
/// unknown or a repeated parameter.
#[derive(Debug, Clone)]
struct Query {
    pairs: Vec<(String, Vec<u8>)>,
    /// The codes the query may answer with; empty when it is valid.
    codes: Vec<&'static str>,
}

fn query_for(route: &Route) -> BoxedStrategy<Query> {
    let params: Vec<BoxedStrategy<Option<Pair>>> = route
        .query
        .iter()
        .map(|(name, schema)| {
            let name = name.clone();
            proptest::option::weighted(0.5, value_for(&name, schema))
                .prop_map(move |v| v.map(|v| (name.clone(), v)))
                .boxed()
        })
        .collect();
    let route = route.clone();
    (
        params,
        proptest::option::weighted(0.15, "[a-z_]{1,10}"),
        proptest::option::weighted(0.1, any::<proptest::sample::Index>()),
    )
        .prop_map(move |(chosen, unknown, repeat)| {
            let mut pairs: Vec<(String, Vec<u8>)> = chosen.into_iter().flatten().collect();
            let mut codes: Vec<&'static str> = pairs
                .iter()
                .flat_map(|(name, v)| {
                    let schema = &route.query.iter().find(|(n, _)| n == name).unwrap().1;
                    codes_for(name, schema, v)
                })
                .collect();
            if let Some(name) = unknown.filter(|n| !route.query.iter().any(|(q, _)| q == n)) {
                pairs.push((name, b"1".to_vec()));
                codes.push("invalid_query");
            }
            if let Some(i) = repeat.filter(|_| !pairs.is_empty()) {
                let again = pairs[i.index(pairs.len())].clone();
                pairs.push(again);
                codes.push("invalid_query");
            }
            Query { pairs, codes }
        })
        .boxed()
}

fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        proptest::sample::select(vec![
            "items",
            "k",
            "exclude",
            "category",
            "events",
            "id",
            "type",
            "time",
            "customer",
            "item",
            "quantity",
            "price",
            "list",
            "received_at",
        ])
        .prop_map(str::to_string),
        "\\PC{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        proptest::sample::select(vec!["i0", "c1", "purchase", "2011-12-09", ""])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies for a JSON route: JSON values, basket-like objects with wrong
/// types, deep nesting, huge arrays, invalid UTF-8, text that is not JSON.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    let ids = proptest::collection::vec(
        prop_oneof![
            "[a-z0-9]{0,6}".prop_map(Value::from),
            Just(Value::from("x".repeat(300))),
            any::<i32>().prop_map(Value::from),
            Just(Value::Null),
        ],
        0..6,
    );
    let k = prop_oneof![
        (0i64..=250).prop_map(Value::from),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!(2.5)),
        Just(json!("5")),
        Just(json!(u64::MAX)),
        Just(json!(null)),
        Just(json!([5])),
    ];
    let basket = (
        ids.clone(),
        proptest::option::of(k),
        proptest::option::of(ids),
        any::<u8>(),
    )
        .prop_map(|(items, k, exclude, extra)| {
            let mut b = json!({ "items": items });
            if let Some(k) = k {
                b["k"] = k;
            }
            if let Some(e) = exclude {
                b["exclude"] = Value::Array(e);
            }
            match extra % 4 {
                0 => b["category"] = json!(""),
                1 => b["colour"] = json!("red"),
                _ => {}
            }
            serde_json::to_vec(&b).unwrap()
        });
    prop_oneof![
        4 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        3 => basket,
        1 => (100usize..30_000, any::<bool>()).prop_map(|(n, close)| {
            let mut s = "[".repeat(n);
            if close {
                s.push_str(&"]".repeat(n));
            }
            s.into_bytes()
        }),
        1 => (100usize..5_000).prop_map(|n| format!("{}1{}", r#"{"items":"#.repeat(n), "}".repeat(n)).into_bytes()),
        1 => (1_001usize..5_000).prop_map(|n| serde_json::to_vec(&json!({ "items": vec!["i0"; n] })).unwrap()),
        1 => (1_001usize..5_000).prop_map(|n| serde_json::to_vec(&json!({ "events": vec![json!({}); n] })).unwrap()),
        1 => Just(b"{\"items\": [\"\xff\xfe\"]}".to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => "\\PC{0,40}".prop_map(String::into_bytes),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        6 => Just(Some("application/json")),
        1 => Just(Some("application/json; charset=utf-8")),
        1 => Just(Some("text/plain")),
        1 => Just(None),
        1 => Just(Some("application/x-www-form-urlencoded")),
        1 => Just(Some("application/jsonx")),
        1 => Just(Some("not a mime type")),
    ]
}

fn is_json_type(ctype: Option<&str>) -> bool {
    matches!(
        ctype,
        Some("application/json" | "application/json; charset=utf-8")
    )
}

// ---------------------------------------------------------------- properties

const CASES: u32 = 64;

/// Every route with a path id: ids of every shape, with no query.
#[test]
fn path_ids() {
    for route in routes().into_iter().filter(|r| !r.path_params.is_empty()) {
        let params = route.path_params.clone();
        let strategy = proptest::collection::vec(id_bytes(), params.len()..=params.len());
        run(&route.label(), CASES, strategy, |send, ids| {
            let values = params
                .iter()
                .zip(&ids)
                .map(|(p, id)| (p.clone(), encode(id)))
                .collect();
            let uri = route.path(&values);
            let mut req = TestRequest::default()
                .method(route.method.clone())
                .uri(&uri);
            if route.json_body {
                req = req.set_json(json!({}));
            }
            let a = send(req);
            check_answer(&uri, &a)?;
            let decoded: Vec<String> = ids
                .iter()
                .map(|id| String::from_utf8_lossy(id).into_owned())
                .collect();
            if route.json_body {
                return Ok(());
            }
            if decoded.iter().any(String::is_empty) {
                return expect(&uri, &a, &["route_not_found"]);
            }
            if decoded.iter().any(|id| id.len() > 256) {
                return expect(&uri, &a, &["invalid_id"]);
            }
            let code = a.code();
            prop_assert_ne!(code.as_deref(), Some("invalid_id"), "{}", uri);
            for (param, id) in params.iter().zip(&decoded) {
                if is_known(param, id) {
                    continue;
                }
                // An unknown item is 404; an unknown customer is 404 or the fallback list.
                let allowed: &[&str] = match param.as_str() {
                    "item_id" => &["item_not_found"],
                    "name" => &["experiment_not_found"],
                    _ => &["customer_not_found"],
                };
                if a.status.is_success() {
                    prop_assert_eq!(param.as_str(), "customer_id", "{}: {}", uri, a.text());
                } else {
                    return expect(&uri, &a, allowed);
                }
            }
            if a.status.is_success() {
                return Ok(());
            }
            // Every id is known: the answer is a success.
            expect(&uri, &a, &[])
        });
    }
}

/// Every route with query parameters: generated values by schema, known ids.
#[test]
fn query_parameters() {
    for route in routes().into_iter().filter(|r| !r.query.is_empty()) {
        let path = route.known_path();
        run(&route.label(), CASES * 2, query_for(&route), |send, q| {
            let uri = format!("{path}?{}", query_string(&q.pairs));
            let a = send(
                TestRequest::default()
                    .method(route.method.clone())
                    .uri(&uri),
            );
            expect(&uri, &a, &q.codes)
        });
    }
}

/// Each documented query parameter alone (so that no other error hides its
/// own), on every route, with the ids the model knows.
#[test]
fn each_query_parameter_alone() {
    for route in routes() {
        let path = route.known_path();
        for (name, schema) in &route.query {
            let label = format!("{} ?{name}=", route.label());
            run(&label, CASES, value_for(name, schema), |send, v| {
                let uri = format!("{path}?{name}={}", encode(&v));
                let a = send(
                    TestRequest::default()
                        .method(route.method.clone())
                        .uri(&uri),
                );
                expect(&uri, &a, &codes_for(name, schema, &v))
            });
        }
    }
}

/// Every route that takes a JSON body: generated bodies and content types.
#[test]
fn json_bodies() {
    for route in routes().into_iter().filter(|r| r.json_body) {
        let path = route.known_path();
        let strategy = (body_bytes(), content_type());
        run(
            &route.label(),
            CASES * 3,
            strategy,
            |send, (body, ctype)| {
                let mut req = TestRequest::default()
                    .method(route.method.clone())
                    .uri(&path)
                    .set_payload(body.clone());
                if let Some(t) = ctype {
                    req = req.insert_header((header::CONTENT_TYPE, t));
                }
                let a = send(req);
                let what = format!(
                    "{path} {ctype:?} {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                );
                check_answer(&what, &a)?;
                if !is_json_type(ctype) {
                    return expect(&what, &a, &["unsupported_media_type"]);
                }
                match serde_json::from_slice::<Value>(&body) {
                    Ok(v) if v.is_object() => Ok(()),
                    _ => expect(&what, &a, &["invalid_json"]),
                }
            },
        );
    }
}

/// Every route, everything random at once: the answer is well formed.
#[test]
fn anything_at_all() {
    for route in routes() {
        let params = route.path_params.clone();
        let strategy = (
            proptest::collection::vec(id_bytes(), params.len()..=params.len()),
            query_for(&route),
            proptest::option::of((body_bytes(), content_type())),
        );
        let cases = if route.template.contains("reload") {
            8
        } else {
            CASES
        };
        run(&route.label(), cases, strategy, |send, (ids, q, body)| {
            let values = params
                .iter()
                .zip(&ids)
                .map(|(p, id)| (p.clone(), encode(id)))
                .collect();
            let uri = format!("{}?{}", route.path(&values), query_string(&q.pairs));
            let mut req = TestRequest::default()
                .method(route.method.clone())
                .uri(&uri);
            if let Some((body, ctype)) = body {
                req = req.set_payload(body);
                if let Some(t) = ctype {
                    req = req.insert_header((header::CONTENT_TYPE, t));
                }
            }
            check_answer(&uri, &send(req))
        });
    }
}

/// Every other method on every route: `405 method_not_allowed` with `Allow`.
#[test]
fn other_methods() {
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::from_bytes(b"BREW").unwrap(),
    ];
    let all = routes();
    for route in &all {
        for method in methods.iter().filter(|m| {
            !all.iter()
                .any(|r| r.template == route.template && r.method == **m)
        }) {
            run(&route.label(), 1, Just(()), |send, ()| {
                let req = TestRequest::default()
                    .method(method.clone())
                    .uri(&route.known_path())
                    .set_payload("{}")
                    .insert_header(header::ContentType::json());
                let a = send(req);
                let what = format!("{method} {}", route.template);
                expect(&what, &a, &["method_not_allowed"])?;
                // `Allow` lists every method of the path.
                let allowed: BTreeSet<String> = all
                    .iter()
                    .filter(|r| r.template == route.template)
                    .map(|r| r.method.to_string())
                    .collect();
                let listed: Option<BTreeSet<String>> = a.headers.get(header::ALLOW).map(|v| {
                    v.to_str()
                        .unwrap()
                        .split(", ")
                        .map(str::to_string)
                        .collect()
                });
                prop_assert_eq!(listed, Some(allowed), "{}", what);
                Ok(())
            });
        }
    }
}

/// Unknown paths near the real ones: `404 route_not_found`.
#[test]
fn unknown_paths() {
    let strategy = prop_oneof![
        proptest::collection::vec(id_bytes(), 1..6).prop_map(|segments| {
            let encoded: Vec<String> = segments.iter().map(|s| encode(s)).collect();
            format!("/{}", encoded.join("/"))
        }),
        proptest::sample::select(
            routes()
                .into_iter()
                .map(|r| r.known_path())
                .collect::<Vec<_>>()
        )
        .prop_flat_map(|p| {
            proptest::sample::select(vec!["/", "/x", "//", "/%FF", "/.."])
                .prop_map(move |suffix| format!("{p}{suffix}"))
        }),
    ];
    run("unknown paths", CASES * 2, strategy, |send, uri| {
        let a = send(TestRequest::get().uri(&uri));
        check_answer(&uri, &a)?;
        let documented = routes().iter().any(|r| {
            let parts: Vec<&str> = r.template.split('/').collect();
            let asked: Vec<&str> = uri.split('/').collect();
            parts.len() == asked.len()
                && parts
                    .iter()
                    .zip(&asked)
                    .all(|(p, a)| p == a || (p.starts_with('{') && !a.is_empty()))
        });
        // The dashboard's page is at `/`; its assets under `/ui/` answer
        // `route_not_found` for any name they do not hold, so only `/` is
        // outside the API's table.
        let dashboard = uri == "/";
        if !documented && !dashboard {
            expect(&uri, &a, &["route_not_found"])?;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------- 10 MB bodies

const TEN_MB: usize = 10 << 20;

/// A body of `TEN_MB` bytes: one JSON object with a long string.
fn ten_mb_json() -> Vec<u8> {
    let mut body = br#"{"items": ["i0"], "category": ""#.to_vec();
    body.resize(TEN_MB - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// Every POST route refuses a 10 MB body with `413 payload_too_large`, with
/// a `Content-Length` and in chunks without one.
#[test]
fn ten_megabyte_bodies_are_413() {
    let body = Bytes::from(ten_mb_json());
    for route in routes().into_iter().filter(|r| r.method == Method::POST) {
        let path = route.known_path();
        // With a Content-Length.
        run(&route.label(), 1, Just(()), |send, ()| {
            let req = TestRequest::post()
                .uri(&path)
                .insert_header(header::ContentType::json())
                .set_payload(body.clone());
            expect(
                &format!("{path} (Content-Length)"),
                &send(req),
                &["payload_too_large"],
            )
        });
        // Chunked: no Content-Length, the size is only known by reading.
        let system = System::new();
        let app = system.block_on(test::init_service(create_app(app_state().clone())));
        let req = TestRequest::post()
            .uri(&path)
            .insert_header(header::ContentType::json())
            .insert_header((header::TRANSFER_ENCODING, "chunked"))
            .to_request();
        assert!(!req.headers().contains_key(header::CONTENT_LENGTH));
        let chunks: Vec<Result<Bytes, PayloadError>> = body
            .chunks(64 << 10)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream: Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(futures_util::stream::iter(chunks));
        let (req, _) = req.replace_payload(Payload::from(stream));
        let a = system.block_on(call(&app, req));
        if let Err(e) = expect(&format!("{path} (chunked)"), &a, &["payload_too_large"]) {
            panic!("{e}");
        }
    }
}
