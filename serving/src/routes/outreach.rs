//! Customer intelligence: `GET /v1/customers/{id}/profile`, `/orders`,
//! `/next-purchase`, `/buy-again`, `GET /v1/kpis` and the streamed
//! `GET /v1/audiences/reactivation`.
//!
//! Every figure is as of the model's reference time (the last purchase of its
//! training data), which each answer states as `as_of`.
//!
//! Purchases logged since then (`POST /v1/events`) apply at once: in
//! buy-again and next-purchase's `replenishment`, an item bought since goes
//! to the end of the list with score 0 and its clock restarted at the
//! purchase ([`crate::events::due_with_recent`]); next-purchase's
//! `recommended_items` leave such items out; and the reactivation audience
//! skips customers who bought since (they are no longer lapsing). Profiles,
//! stages and the other figures wait for the next training run.

use super::{
    IdQuery, IdRouteQuery, KQuery, NoQuery, check_count, model_response, parse_k, snapshot,
};
use crate::MODEL_VERSION_HEADER;
use crate::error::{ApiError, Code};
use crate::events::due_with_recent;
use crate::limits::{DEFAULT_ORDERS, MAX_K, MAX_LIST_VALUES, MAX_ORDERS};
use crate::state::AppState;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use encore_data::timestamp::{format_date, format_timestamp, parse_timestamp};
use encore_model::customer::book::CustomerProfile;
use encore_model::customer::lifecycle::parse_stages;
use encore_model::engine::{Engine, ListFilter};
use encore_model::outreach::{AudienceQuery, SettingProblem};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// Customers an audience stream computes per step (in parallel).
const AUDIENCE_CHUNK: usize = 256;

/// The customer's index and profile, or `404 customer_not_found`.
fn profile_of(engine: &Engine, id: &str) -> Result<(u32, CustomerProfile), ApiError> {
    let not_found =
        |why: &str| ApiError::new(Code::CustomerNotFound, format!("customer '{id}' {why}"));
    let c = engine
        .customers()
        .get(id)
        .ok_or_else(|| not_found("is not in the model"))?;
    let p = engine
        .customer_book()
        .profile(c)
        .ok_or_else(|| not_found("has no purchase in the training data (returns only)"))?;
    Ok((c, p))
}

fn as_of(engine: &Engine) -> String {
    format_date(engine.customer_book().models().reference)
}

fn profile_json(engine: &Engine, id: &str, p: &CustomerProfile) -> Value {
    json!({
        "customer_id": id,
        "as_of": as_of(engine),
        "rfm": {
            "r": p.r, "f": p.f, "m": p.m,
            "score": format!("{}{}{}", p.r, p.f, p.m),
            "recency_days": p.recency_days,
        },
        "segment": p.segment,
        "behaviour_segment": p.behaviour_segment,
        "lifecycle_stage": p.stage,
        "typical_gap_days": p.typical_gap_days,
        "orders": p.orders,
        "first_purchase": format_date(p.first_purchase),
        "last_purchase": format_date(p.last_purchase),
        "total_spend": p.total_spend,
        "average_order_value": p.average_order_value,
        "spend_complete": p.spend_complete,
        "p_alive": p.p_alive,
        "churn_risk": p.churn_risk,
        "clv": p.clv,
    })
}

/// `GET /v1/customers/{id}/profile`.
pub(crate) async fn profile(
    state: web::Data<AppState>,
    IdQuery(id, ()): IdQuery<NoQuery>,
) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let result = profile_of(&engine, &id).map(|(_, p)| profile_json(&engine, &id, &p));
    model_response(&engine, result)
}

/// `?limit=` only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrdersQuery {
    limit: Option<usize>,
}

impl IdRouteQuery for OrdersQuery {
    /// The limit, [`DEFAULT_ORDERS`] when absent.
    type Checked = usize;

    fn check(self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_ORDERS),
            Some(n) => check_count("limit", Code::InvalidQuery, MAX_ORDERS, Some(n), n),
        }
    }
}

/// `GET /v1/customers/{id}/orders?limit=100`: the customer's orders of the
/// training data, newest first, at most `limit` of them; `total` counts them
/// all (the profile's `orders`), `truncated` says whether some were left out.
pub(crate) async fn orders(
    state: web::Data<AppState>,
    IdQuery(id, limit): IdQuery<OrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let result = profile_of(&engine, &id).map(|(c, _)| {
        let table = engine.customer_orders();
        let total = table.count(c);
        let orders: Vec<OrderJson> = table
            .orders(c)
            .rev()
            .take(limit)
            .map(|o| OrderJson {
                date: format_date(o.time),
                time: format_timestamp(o.time),
                lines: o.lines,
                units: o.units,
                value: o.value,
            })
            .collect();
        OrdersJson {
            truncated: orders.len() < total,
            customer_id: &id,
            as_of: as_of(&engine),
            total,
            orders,
        }
    });
    model_response(&engine, result)
}

/// The answer of `/orders`: a struct rather than `json!`, so that the `f32`
/// figures are written as the shortest decimals that read back as them.
#[derive(Serialize)]
struct OrdersJson<'a> {
    customer_id: &'a str,
    as_of: String,
    total: usize,
    truncated: bool,
    orders: Vec<OrderJson>,
}

#[derive(Serialize)]
struct OrderJson {
    date: String,
    time: String,
    lines: u32,
    units: f32,
    value: Option<f32>,
}

/// `GET /v1/customers/{id}/next-purchase?k=10`.
pub(crate) async fn next_purchase(
    state: web::Data<AppState>,
    IdQuery(id, k): IdQuery<KQuery>,
) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let c = match profile_of(&engine, &id) {
        Ok((c, _)) => c,
        Err(e) => return model_response::<Value>(&engine, Err(e)),
    };
    let scoring = Arc::clone(&engine);
    let recent = state.recent_purchases().items_of(&engine, &id);
    let result = state
        .score(move || {
            let due = due_with_recent(&scoring, c, k, &ListFilter::default(), &recent);
            let filter = ListFilter {
                exclude: recent.iter().map(|(item, _)| *item).collect(),
                ..ListFilter::default()
            };
            let items = scoring.next_purchase_items(c, k, &filter);
            (due, items)
        })
        .await
        .and_then(|(due, items)| {
            let (_, p) = profile_of(&engine, &id)?;
            Ok(json!({
                "customer_id": id,
                "as_of": as_of(&engine),
                "p_alive": p.p_alive,
                "churn_risk": p.churn_risk,
                "expected_purchases_30d": p.expected_purchases_30d,
                "expected_purchases_90d": p.expected_purchases_90d,
                "predicted_next_purchase_date": p.predicted_next_purchase.map(format_date),
                "buy_within_30d_probability": p.buy_within_30d_probability,
                "lifecycle_stage": p.stage,
                "segment": p.segment,
                "clv": p.clv,
                "replenishment": due_json(&engine, &due),
                "recommended_items": engine.suggestions_json(&items),
            }))
        });
    model_response(&engine, result)
}

fn due_json(engine: &Engine, due: &[encore_model::customer::replenishment::DueItem]) -> Vec<Value> {
    due.iter()
        .map(|d| {
            let meta = engine.item_meta(d.item);
            let mut v = json!({
                "item_id": engine.items().id(d.item),
                "score": d.due_score,
                "due_date": format_date(d.due_date),
                "last_purchase": format_date(d.last_purchase),
                "interval_days": d.interval_days,
                "repeat_probability": d.repeat_probability,
                "purchases": d.purchases,
            });
            if let Some(t) = &meta.title {
                v["title"] = t.as_str().into();
            }
            if let Some(c) = &meta.category {
                v["category"] = c.as_str().into();
            }
            v
        })
        .collect()
}

/// `GET /v1/customers/{id}/buy-again?k=10`.
pub(crate) async fn buy_again(
    state: web::Data<AppState>,
    IdQuery(id, k): IdQuery<KQuery>,
) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let recent = state.recent_purchases().items_of(&engine, &id);
    let result = profile_of(&engine, &id).map(|(c, _)| {
        let due = due_with_recent(&engine, c, k, &ListFilter::default(), &recent);
        json!({
            "customer_id": id,
            "as_of": as_of(&engine),
            "items": due_json(&engine, &due),
        })
    });
    model_response(&engine, result)
}

/// `GET /v1/kpis`: repurchase KPIs, stage and segment counts, model fits.
pub(crate) async fn kpis(
    state: web::Data<AppState>,
    _query: web::Query<NoQuery>,
) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let mut body = engine.customer_book().models().kpis_json();
    body["segment_spend"] = segment_spend(&engine).into();
    body["clv_distribution"] = clv_distribution(&engine);
    model_response(&engine, Ok(body))
}

/// Customers and net spend of every RFM segment, in the model's segment
/// order (then any other segment by name).
fn segment_spend(engine: &Engine) -> Vec<Value> {
    let mut by_segment: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
    for p in engine.customer_book().profiles().flatten() {
        let entry = by_segment.entry(p.segment).or_default();
        entry.0 += 1;
        entry.1 += p.total_spend;
    }
    let names = &engine.customer_book().models().segment_names;
    let mut order: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| by_segment.contains_key(*n))
        .collect();
    order.extend(
        by_segment
            .keys()
            .map(String::as_str)
            .filter(|n| !names.iter().any(|m| m == *n)),
    );
    order
        .into_iter()
        .map(|name| {
            let (customers, spend) = by_segment[name];
            json!({
                "segment": name,
                "customers": customers,
                "total_spend": spend,
                "average_spend": spend / customers as f64,
            })
        })
        .collect()
}

/// The smallest of 1, 2 and 5 times a power of ten that is at least `x`
/// (`x > 0`).
fn nice_step(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= x)
        .unwrap_or(10.0 * power)
}

/// Bins of the CLV histogram below the open-ended last one.
const CLV_BINS: usize = 10;

/// The CLV histogram: about [`CLV_BINS`] bins of one round width from the
/// lowest CLV up to the 99th percentile, then one open-ended bin (`"to":
/// null`) for the rest, so that a few very large values do not squeeze
/// every other customer into the first bin.
fn clv_distribution(engine: &Engine) -> Value {
    let mut profiled = 0;
    let mut values: Vec<f64> = engine
        .customer_book()
        .profiles()
        .flatten()
        .inspect(|_| profiled += 1)
        .filter_map(|p| p.clv)
        .filter(|v| v.is_finite())
        .collect();
    let without = profiled - values.len();
    if values.is_empty() {
        return json!({"customers": 0, "without_clv": without, "bins": []});
    }
    let n = values.len();
    let p99_at = ((n - 1) as f64 * 0.99).round() as usize;
    let (_, p99, _) = values.select_nth_unstable_by(p99_at, f64::total_cmp);
    let p99 = *p99;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let total: f64 = values.iter().sum();
    let step = if p99 > min {
        nice_step((p99 - min) / CLV_BINS as f64)
    } else {
        1.0
    };
    let start = (min / step).floor() * step;
    let mut edges = vec![start];
    // At most CLV_BINS + 2 edges, even where the step is lost in rounding.
    while *edges.last().expect("one edge") <= p99 && edges.len() < CLV_BINS + 2 {
        let next = start + step * edges.len() as f64;
        edges.push(next);
    }
    let mut counts = vec![0u64; edges.len()];
    for v in &values {
        let bin = (((v - start) / step).floor().max(0.0) as usize).min(edges.len() - 1);
        counts[bin] += 1;
    }
    let last = edges.len() - 1;
    let bins: Vec<Value> = edges
        .iter()
        .zip(&counts)
        .enumerate()
        .filter(|&(i, (_, &c))| i < last || c > 0)
        .map(|(i, (&from, &customers))| {
            let to = (i < last).then(|| edges[i + 1]);
            json!({"from": from, "to": to, "customers": customers})
        })
        .collect();
    json!({
        "customers": n,
        "without_clv": without,
        "mean": total / n as f64,
        "p99": p99,
        "bins": bins,
    })
}

/// Query of the reactivation audience.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AudienceParams {
    /// Comma-separated lifecycle stages (default `dormant,at_risk`).
    stage: Option<String>,
    /// Comma-separated RFM segments (default all).
    segment: Option<String>,
    min_p_alive: Option<f64>,
    max_churn_risk: Option<f64>,
    min_clv: Option<f64>,
    k: Option<String>,
    limit: Option<usize>,
    /// `ndjson` (default) or `csv`.
    format: Option<String>,
    /// `YYYY-MM-DD` (or any accepted timestamp): the campaign's first day.
    as_of: Option<String>,
}

/// The entries of a comma-separated list parameter, trimmed, without empty
/// entries or repeats (first one kept), at most [`MAX_LIST_VALUES`] of them.
fn list_param<'a>(name: &str, raw: &'a str) -> Result<Vec<&'a str>, ApiError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if seen.insert(entry) {
            out.push(entry);
            if out.len() > MAX_LIST_VALUES {
                return Err(ApiError::new(
                    Code::InvalidQuery,
                    format!("{name} names more than {MAX_LIST_VALUES} different values"),
                ));
            }
        }
    }
    Ok(out)
}

/// A [`SettingProblem`] of an audience as the API reports it (`invalid_query`),
/// the setting named by its query parameter (`stage`, `segment`, `k`, ...).
fn param_problem(SettingProblem { setting, problem }: SettingProblem) -> ApiError {
    let name = match setting {
        "stages" => "stage",
        "segments" => "segment",
        other => other,
    };
    ApiError::new(Code::InvalidQuery, format!("{name} {problem}"))
}

fn audience_query(p: AudienceParams) -> Result<(AudienceQuery, bool), ApiError> {
    let bad = |m: String| ApiError::new(Code::InvalidQuery, m);
    let mut q = AudienceQuery::default();
    if let Some(raw) = &p.stage {
        q.stages = parse_stages(&list_param("stage", raw)?.join(",")).map_err(bad)?;
    }
    if let Some(raw) = &p.segment {
        q.segments = list_param("segment", raw)?
            .into_iter()
            .map(str::to_owned)
            .collect();
    }
    q.min_p_alive = p.min_p_alive;
    q.max_churn_risk = p.max_churn_risk;
    q.min_clv = p.min_clv;
    q.k = match p.k.as_deref() {
        None => q.k,
        some => parse_k(some)?,
    };
    debug_assert!(q.k <= MAX_K);
    q.limit = p.limit;
    if let Some(raw) = &p.as_of {
        q.as_of = Some(
            parse_timestamp(raw)
                .ok_or_else(|| bad(format!("as_of '{raw}' is not a date (YYYY-MM-DD)")))?,
        );
    }
    if let Some(problem) = q.setting_problem() {
        return Err(param_problem(problem));
    }
    let csv = match p.format.as_deref() {
        None | Some("ndjson") => false,
        Some("csv") => true,
        Some(other) => return Err(bad(format!("format '{other}' is not ndjson or csv"))),
    };
    Ok((q, csv))
}

/// `GET /v1/audiences/reactivation`: one customer a line, streamed.
pub(crate) async fn reactivation(
    state: web::Data<AppState>,
    query: web::Query<AudienceParams>,
) -> Result<HttpResponse, ApiError> {
    let engine = snapshot(&state)?;
    let (query, csv) = match audience_query(query.into_inner()) {
        Ok(v) => v,
        Err(e) => return model_response::<Value>(&engine, Err(e)),
    };
    if let Some(problem) = engine.audience_setting_problem(&query) {
        return model_response::<Value>(&engine, Err(param_problem(problem)));
    }
    // The stream holds its place (and the model it started on) until it is
    // dropped; finding the members is scoring work, behind the queue.
    let permit = match state.enter_audience_stream() {
        Ok(permit) => permit,
        Err(e) => return model_response::<Value>(&engine, Err(e)),
    };
    let members = {
        let (engine, query) = (Arc::clone(&engine), query.clone());
        let bought_since = state.recent_purchases().customers_of(&engine);
        state
            .score(move || {
                if bought_since.is_empty() {
                    return engine.audience_members(&query);
                }
                // Customers who bought since the model's data end are not lapsing.
                let mut members = engine.audience_members(&AudienceQuery {
                    limit: None,
                    ..query.clone()
                });
                members.retain(|c| !bought_since.contains(c));
                if let Some(limit) = query.limit {
                    members.truncate(limit);
                }
                members
            })
            .await
    };
    let members = match members {
        Ok(members) => members,
        Err(e) => return model_response::<Value>(&engine, Err(e)),
    };
    let total = members.len();
    let header = csv.then(|| Bytes::from(Engine::audience_csv_header(query.k)));
    let shared = Arc::new((Arc::clone(&engine), query, members, permit));
    let chunks = futures_util::stream::unfold(0usize, move |start| {
        let shared = Arc::clone(&shared);
        async move {
            let (_, _, members, _) = &*shared;
            if start >= members.len() {
                return None;
            }
            let end = (start + AUDIENCE_CHUNK).min(members.len());
            let job = Arc::clone(&shared);
            let bytes = web::block(move || {
                let (engine, query, members, _) = &*job;
                let rows = engine.audience_rows(&members[start..end], query);
                let mut out = Vec::with_capacity(rows.len() * 256);
                for row in &rows {
                    if csv {
                        engine.write_audience_csv(row, query.k, &mut out);
                    } else {
                        engine.write_audience_ndjson(row, &mut out);
                    }
                }
                Bytes::from(out)
            })
            .await;
            // The pool only fails when shutting down: end the stream there.
            bytes.ok().map(|b| (Ok::<_, actix_web::Error>(b), end))
        }
    });
    let head = futures_util::stream::iter(header.map(Ok::<_, actix_web::Error>));
    let mut res = HttpResponse::Ok();
    res.content_type(if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    });
    if let Ok(v) = HeaderValue::from_str(&engine.manifest().model_version) {
        res.insert_header((HeaderName::from_static(MODEL_VERSION_HEADER), v));
    }
    res.insert_header((
        HeaderName::from_static("x-encore-audience-size"),
        HeaderValue::from(total),
    ));
    let body = futures_util::StreamExt::chain(head, chunks);
    Ok(res.streaming(crate::write_deadline::guard(
        Box::pin(body),
        state.write_timeout(),
    )))
}
