//! `GET /openapi.json`: an OpenAPI 3.0 description of every route.
//!
//! A unit test reads the route registrations in `routes/mod.rs` and checks
//! that the document has exactly those paths and methods, so the two cannot
//! drift; another checks the route table of `docs/api.md` against the same
//! registrations.

use crate::limits::{DEFAULT_K, MAX_K};
use serde_json::{Value, json};

fn k_param(default: usize) -> Value {
    json!({"name": "k", "in": "query", "required": false,
           "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": default}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true,
           "schema": {"type": "string", "minLength": 1, "maxLength": 256}})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema,
           "description": description})
}

fn op(summary: &str, parameters: Vec<Value>, ok: Value) -> Value {
    json!({
        "summary": summary,
        "parameters": parameters,
        "responses": {
            "200": ok,
            "default": {"description": "any failure", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    })
}

fn json_ok(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}})
}

/// The document.
pub fn document() -> Value {
    let list = |summary: &str, extra: Vec<Value>| {
        let mut p = vec![path_param("item_id"), k_param(DEFAULT_K)];
        p.extend(extra);
        json!({"get": op(summary, p, json_ok("a ranked item list"))})
    };
    let customer = |summary: &str, extra: Vec<Value>| {
        let mut p = vec![path_param("customer_id")];
        p.extend(extra);
        json!({"get": op(summary, p, json_ok(summary))})
    };
    let ids = json!({"type": "string", "description": "comma-separated ids"});
    // Added after the literal, which is at serde_json's macro recursion limit.
    let experiment_report = json!({"get": op("the outcome so far of a running experiment, from the event log: per variant exposed customers, conversion, revenue per customer and repurchase rate with 95% intervals, differences to control with p-values, and the sample-ratio check (the JSON of encore-train experiment-report)", vec![
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
        query("window_days", json!({"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": encore_model::experiment::report::MAX_WINDOW_DAYS, "default": encore_model::experiment::report::DEFAULT_WINDOW_DAYS}), "the purchase window after a customer's first exposure, in days"),
    ], json_ok("experiment report"))});
    let orders = customer(
        "the customer's orders of the training data, newest first: date, time, lines, units and value (null when a line had no price); total counts every order (the profile's orders), truncated says whether some were left out",
        vec![query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": crate::limits::MAX_ORDERS, "default": crate::limits::DEFAULT_ORDERS}),
            "at most this many orders, newest first",
        )],
    );
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Encore", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Recommendations and next-purchase predictions from a trained Encore model."},
        "paths": {
            "/healthz": {"get": op("liveness", vec![], json_ok("ok"))},
            "/readyz": {"get": op("readiness: 200 once a model is loaded", vec![], json_ok("ready"))},
            "/metrics": {"get": op("Prometheus metrics", vec![], json!({"description": "text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}))},
            "/openapi.json": {"get": op("this document", vec![], json_ok("OpenAPI 3.0"))},
            "/v1/model": {"get": op("the serving model's manifest and reload statistics", vec![], json_ok("manifest"))},
            "/v1/model/history": {"get": op("the model store's promotions, newest first, with the promotion gate's scores of each version", vec![], json_ok("{\"source\", \"serving_version\", \"current\", \"promotions\": [{\"at\", \"version\", \"gate\", \"error\"}]}"))},
            "/v1/admin/reload": {"post": op("reload the model (directory or store CURRENT); the old model keeps serving on failure", vec![], json_ok("versions before and after"))},
            "/v1/admin/experiments": {
                "get": op("the running experiments as JSON specs, and the experiments file they are saved to", vec![], json_ok("{\"experiments\": [spec], \"file\"}")),
                "put": {
                    "summary": "replace every experiment (validated like the experiments file; at most one per placement); written to the experiments file, if any, before it runs",
                    "parameters": [],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["experiments"], "additionalProperties": false,
                        "properties": {"experiments": {"type": "array", "items": {"$ref": "#/components/schemas/Experiment"}}}}}}},
                    "responses": {"200": json_ok("{\"experiments\": [spec], \"file\", \"saved\"}"),
                                  "default": {"description": "any failure", "content": {"application/json": {
                                      "schema": {"$ref": "#/components/schemas/Error"}}}}}
                }
            },
            "/v1/items/{item_id}/similar": list("items closest in the ALS embedding space", vec![]),
            "/v1/items/{item_id}/bought-together": list("items most often bought in the same orders", vec![]),
            "/v1/customers/{customer_id}/recommendations": customer("personal recommendations, or the popularity list for an unknown customer; under a running experiment, the list of the customer's variant (the answer then names experiment and variant, also in the x-encore-experiment and x-encore-variant headers); every answer carries request_id", vec![
                k_param(DEFAULT_K),
                query("exclude", ids.clone(), "items never to return"),
                query("category", json!({"type": "string"}), "only items of this catalog category"),
                query("include_purchased", json!({"type": "boolean", "default": false}), "serve the repeat-aware list, bought items included"),
            ]),
            "/v1/customers/{customer_id}/profile": customer("RFM, segments, lifecycle stage, spend, P(alive), CLV", vec![]),
            "/v1/customers/{customer_id}/next-purchase": customer("P(alive), expected purchases, next purchase date, buying probability, replenishment and suggested items", vec![k_param(DEFAULT_K)]),
            "/v1/customers/{customer_id}/buy-again": customer("previously bought items, most due first", vec![k_param(DEFAULT_K)]),
            "/v1/kpis": {"get": op("repurchase KPIs, stage and segment counts, customer model fits", vec![], json_ok("KPIs"))},
            "/v1/audiences/reactivation": {"get": op("a reactivation audience, streamed one customer a line", vec![
                query("stage", json!({"type": "string", "default": "dormant,at_risk"}), "comma-separated lifecycle stages"),
                query("segment", json!({"type": "string"}), "comma-separated RFM segments"),
                query("min_p_alive", json!({"type": "number", "minimum": 0, "maximum": 1}), ""),
                query("max_churn_risk", json!({"type": "number", "minimum": 0, "maximum": 1}), ""),
                query("min_clv", json!({"type": "number"}), ""),
                k_param(5),
                query("limit", json!({"type": "integer", "minimum": 1}), "at most this many customers, highest CLV first"),
                query("as_of", json!({"type": "string", "format": "date"}), "first day of the campaign"),
                query("format", json!({"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"}), ""),
            ], json!({"description": "one customer a line", "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}}}}))},
            "/v1/events": {"post": {
                "summary": "log a batch of purchase, exposure and click events (all or nothing; fsynced before 200; idempotent on the event id)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["events"], "additionalProperties": false,
                    "properties": {"events": {"type": "array", "maxItems": crate::routes::events::MAX_EVENTS_PER_BATCH,
                                              "items": {"$ref": "#/components/schemas/Event"}}}}}}},
                "responses": {"200": {"description": "stored", "content": {"application/json": {"schema": {
                                  "type": "object", "properties": {
                                      "accepted": {"type": "integer"}, "duplicates": {"type": "integer"}}}}}},
                              "default": {"description": "any failure", "content": {"application/json": {
                                  "schema": {"$ref": "#/components/schemas/Error"}}}}}
            }},
            "/v1/recommendations": {"post": {
                "summary": "recommendations for an anonymous basket",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["items"], "additionalProperties": false,
                    "properties": {
                        "items": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
                        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                        "exclude": {"type": "array", "items": {"type": "string"}},
                        "category": {"type": "string"}}}}}},
                "responses": {"200": json_ok("a ranked item list"),
                              "default": {"description": "any failure", "content": {"application/json": {
                                  "schema": {"$ref": "#/components/schemas/Error"}}}}}
            }}
        },
        "components": {"schemas": {
            "Experiment": {
                "type": "object", "required": ["name", "control", "variant"], "additionalProperties": false,
                "description": "an experiment as in the experiments file (model/src/experiment.rs); `variants` is accepted for `variant`",
                "properties": {
                    "name": {"type": "string"}, "salt": {"type": "string"}, "control": {"type": "string"},
                    "placement": {"type": "string", "enum": encore_model::experiment::PLACEMENTS, "default": encore_model::experiment::DEFAULT_PLACEMENT},
                    "variant": {"type": "array", "minItems": 2, "items": {
                        "type": "object", "required": ["name", "share", "strategy"], "additionalProperties": false,
                        "properties": {
                            "name": {"type": "string"},
                            "share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                            "strategy": {"type": "object", "required": ["list", "k"], "additionalProperties": false,
                                "properties": {
                                    "list": {"type": "string", "enum": ["als", "for_you", "popular", "buy_again"]},
                                    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
                                    "include_purchased": {"type": "boolean"},
                                    "category": {"type": "string"}}}}}}}},
            "Event": {
            "type": "object", "required": ["id", "type", "time"],
            "description": "purchase: order_id, customer, item, quantity (> 0, default 1), price (>= 0); exposure: customer, list, items, experiment, variant, request_id; click: customer, item, list, request_id. Unknown fields are refused; received_at is set by the server.",
            "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": 256, "description": "idempotency key"},
                "type": {"type": "string", "enum": ["purchase", "exposure", "click"]},
                "time": {"description": "RFC 3339, YYYY-MM-DD HH:MM:SS, a date, or seconds since the epoch"},
                "order_id": {"type": "string"}, "customer": {"type": "string"}, "item": {"type": "string"},
                "quantity": {"type": "number", "exclusiveMinimum": 0}, "price": {"type": "number", "minimum": 0},
                "list": {"type": "string"}, "items": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
                "experiment": {"type": "string"}, "variant": {"type": "string"}, "request_id": {"type": "string"}}},
            "Error": {
            "type": "object", "required": ["message", "code", "type", "link"],
            "properties": {
                "message": {"type": "string"},
                "code": {"type": "string", "description": "stable; see the error table"},
                "type": {"type": "string"},
                "link": {"type": "string"}}}}}
    });
    doc["paths"]["/v1/admin/experiments/{name}/report"] = experiment_report;
    doc["paths"]["/v1/customers/{customer_id}/orders"] = orders;
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `(path, method)` of every `endpoint(path, Method::X, ..)` and
    /// `resource(path, [(Method::X, ..), ..])` in the route table.
    fn registered() -> BTreeSet<(String, String)> {
        let source = include_str!("routes/mod.rs");
        let table = &source[..source.find("fn endpoint").unwrap()];
        let flat: String = table.split_whitespace().collect::<Vec<_>>().join(" ");
        let flat = flat.replace("resource(", "endpoint(");
        flat.split("endpoint(")
            .skip(1)
            .flat_map(|call| {
                let path = call.split('"').nth(1).unwrap().to_string();
                let methods: Vec<String> = call
                    .split("Method::")
                    .skip(1)
                    .map(|m| m.split(',').next().unwrap().to_lowercase())
                    .collect();
                assert!(!methods.is_empty(), "no method for {path}");
                methods.into_iter().map(move |m| (path.clone(), m))
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect();
        let routes = registered();
        assert!(routes.len() >= 15, "{routes:?}");
        assert_eq!(documented, routes);
    }

    /// `(path, method)` of every row of the route table of docs/api.md: the
    /// first cell is `` `METHOD /path?query` ``.
    fn api_md_routes() -> BTreeSet<(String, String)> {
        let doc = include_str!("../../docs/api.md");
        let section = &doc[doc.find("\n## Routes\n").expect("a Routes section") + 1..];
        let section = &section[..section[1..].find("\n#").map_or(section.len(), |i| i + 1)];
        let rows: Vec<(String, String)> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|row| {
                let cell = &row[..row.find('`').expect("a closed code span")];
                let (method, target) = cell.split_once(' ').expect("METHOD /path");
                let path = target.split('?').next().unwrap();
                (path.to_string(), method.to_lowercase())
            })
            .collect();
        let set: BTreeSet<_> = rows.iter().cloned().collect();
        assert_eq!(set.len(), rows.len(), "a route twice in docs/api.md");
        set
    }

    #[test]
    fn api_md_route_table_matches_the_routes() {
        assert_eq!(api_md_routes(), registered());
    }
}
