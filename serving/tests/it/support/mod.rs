//! What the in-process HTTP tests share: a small model trained from a
//! hand-made purchase history, saved in a fresh temporary directory, and
//! helpers to send requests and look at the answers.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{test, web};
use encore_data::PurchaseLog;
use encore_model::artifact;
use encore_model::engine::{Engine, ItemMeta};
use encore_model::manifest::DataSummary;
use encore_model::pipeline::{AlsConfig, EngineConfig, train_engine};
use encore_serving::error::ERROR_LINK_BASE;
use encore_serving::{AppState, MODEL_VERSION_HEADER};
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use tempfile::TempDir;

pub const TEA: &str = "tea";
pub const KITCHEN: &str = "kitchen";
/// An item id with a slash, reachable as `mug%2Flarge` in a path.
pub const SLASHED: &str = "mug/large";
/// Never recommended: the catalog marks it unavailable.
pub const UNAVAILABLE: &str = "i11";

/// 20 customers, each buying two tea items together in one order and two
/// kitchen items together in another, in a rotating pattern, so that every
/// model has something to learn.
pub fn purchase_log() -> PurchaseLog {
    let mut log = PurchaseLog::default();
    let t0 = 1_700_000_000;
    for c in 0..20i64 {
        let customer = format!("c{c}");
        let time = t0 + c * 86_400;
        let (a, b) = (c % 6, (c + 1) % 6);
        let (x, y) = (6 + c % 6, 6 + (c + 2) % 6);
        for item in [a, b] {
            log.push(
                &format!("o{c}a"),
                &customer,
                &format!("i{item}"),
                time,
                1.0,
                3.0,
            );
        }
        for item in [x, y] {
            log.push(
                &format!("o{c}b"),
                &customer,
                &format!("i{item}"),
                time + 60,
                1.0,
                9.0,
            );
        }
        if c % 4 == 0 {
            log.push(&format!("o{c}b"), &customer, SLASHED, time + 60, 1.0, 12.0);
        }
    }
    log
}

/// Catalog data, indexed like `log.items`: i0..i5 are tea, the rest kitchen;
/// i3 has no title.
pub fn catalog(log: &PurchaseLog) -> Vec<ItemMeta> {
    log.items
        .ids()
        .map(|id| {
            let n: Option<usize> = id.strip_prefix('i').and_then(|n| n.parse().ok());
            let category = match n {
                Some(n) if n < 6 => TEA,
                _ => KITCHEN,
            };
            ItemMeta {
                title: (id != "i3").then(|| format!("Item {id}")),
                category: Some(category.to_string()),
                available: id != UNAVAILABLE,
            }
        })
        .collect()
}

pub fn train(version: &str, seed: u64) -> Engine {
    let log = purchase_log();
    let meta = catalog(&log);
    let config = EngineConfig {
        als: AlsConfig {
            factors: 8,
            iterations: 5,
            seed,
            ..AlsConfig::default()
        },
        ..EngineConfig::default()
    };
    let data = DataSummary {
        fingerprint: "sha256:0123456789abcdef".into(),
        source: "tests/http.rs".into(),
        ..DataSummary::default()
    };
    let mut engine = train_engine(&log, meta, &config, data, &mut |_| {}).expect("trains");
    engine.manifest_mut().model_version = version.to_string();
    engine
}

/// A model saved in a fresh temporary directory, and the state serving it.
pub struct Fixture {
    pub _dir: TempDir,
    pub model_dir: PathBuf,
    pub state: web::Data<AppState>,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    artifact::save(&train("v1", 42), &model_dir).expect("saves");
    let state = web::Data::new(AppState::load(&model_dir).expect("loads"));
    Fixture {
        _dir: dir,
        model_dir,
        state,
    }
}

/// What a test looks at in a response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn ids(&self) -> Vec<String> {
        self.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items in {}", self.body))
            .iter()
            .map(|i| i["item_id"].as_str().unwrap().to_string())
            .collect()
    }

    /// The `score` of every item, in list order.
    pub fn scores(&self) -> Vec<f64> {
        self.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items in {}", self.body))
            .iter()
            .map(|i| i["score"].as_f64().unwrap())
            .collect()
    }

    pub fn version(&self) -> Option<&str> {
        self.headers
            .get(MODEL_VERSION_HEADER)
            .map(|v| v.to_str().unwrap())
    }

    /// Asserts the error shape with `code` and `status`.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        let obj = self.body.as_object().unwrap();
        let keys: HashSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["message", "code", "type", "link"]));
        assert!(!self.body["message"].as_str().unwrap().is_empty());
        assert_eq!(self.body["link"], format!("{ERROR_LINK_BASE}{code}"));
    }
}

pub async fn send<S, R, B>(app: &S, req: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(uri: &str) -> actix_web::test::TestRequest {
    test::TestRequest::get().uri(uri)
}

pub fn post_json(uri: &str, body: Value) -> actix_web::test::TestRequest {
    test::TestRequest::post().uri(uri).set_json(body)
}

/// A small model trained on a seeded synthetic history (200 customers, 80
/// items), named `version`: for tests of stores, reloads and the binary.
pub fn synth_engine(version: &str) -> Engine {
    use encore_data::synth::{SynthParams, generate};
    let log = generate(&SynthParams {
        customers: 200,
        items: 80,
        purchases: 3_000,
        categories: 4,
        ..SynthParams::default()
    });
    let mut config = EngineConfig::default();
    config.als.factors = 4;
    config.als.iterations = 2;
    let mut e = train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap();
    e.manifest_mut().model_version = version.to_string();
    e
}
