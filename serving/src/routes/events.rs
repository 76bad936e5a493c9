//! `POST /v1/events`: feedback events, logged durably, and their live effect.
//!
//! The body is `{"events": [...]}`, at most [`MAX_EVENTS_PER_BATCH`] events of
//! the schema in [`encore_data::events`]. Validation is all or nothing: the
//! first bad event refuses the whole batch with `400 invalid_event`, naming
//! it (`events[3].quantity: must be positive, not -1`), and nothing is
//! written. `received_at` is the server's to set and is refused in a request.
//! An accepted batch answers `200 {"accepted": n, "duplicates": m}` once its
//! lines are fsynced; events whose `id` was logged in the idempotency window
//! (`event_dedup_days`, default 7) are counted as duplicates and not written
//! again, so a client retries a batch whose answer it did not get, unchanged.
//!
//! The writer thread and the live purchase overlay the accepted purchases
//! feed are [`crate::events`]'.

use crate::error::{ApiError, Code};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use encore_data::events::{Event, event_from_value};
use encore_data::timestamp::now_secs;
use serde::Deserialize;
use serde_json::json;

/// The most events one request may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 1000;

/// The body of `POST /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBatch {
    /// Kept as JSON values so that each event is validated, and named, by
    /// [`event_from_value`].
    events: BoundedEvents,
}

/// The events of a batch, kept only up to [`MAX_EVENTS_PER_BATCH`]: the
/// elements of a longer list are counted as they are read and skipped, so an
/// oversized batch is refused without being built in memory.
#[derive(Debug)]
pub(crate) enum BoundedEvents {
    Within(Vec<serde_json::Value>),
    /// More than the limit: how many.
    Over(usize),
}

impl<'de> Deserialize<'de> for BoundedEvents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BoundedEvents;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of events")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BoundedEvents, A::Error> {
                let mut kept = Vec::new();
                while kept.len() < MAX_EVENTS_PER_BATCH {
                    match seq.next_element::<serde_json::Value>()? {
                        Some(v) => kept.push(v),
                        None => return Ok(BoundedEvents::Within(kept)),
                    }
                }
                if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                    return Ok(BoundedEvents::Within(kept));
                }
                drop(kept);
                let mut n = MAX_EVENTS_PER_BATCH + 1;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(BoundedEvents::Over(n))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

/// `POST /v1/events`.
pub(crate) async fn post_events(
    state: web::Data<AppState>,
    body: web::Json<super::JsonObject<EventBatch>>,
) -> Result<HttpResponse, ApiError> {
    let Some(sink) = state.event_sink().cloned() else {
        return Err(ApiError::new(
            Code::EventsDisabled,
            "this server keeps no event log; start it with --events DIR",
        ));
    };
    let events = match body.into_inner().0.events {
        BoundedEvents::Within(values) => validate(values, now_secs())?,
        BoundedEvents::Over(n) => return Err(too_many_events(n)),
    };
    let outcome = web::block(move || sink.append(events)).await??;
    Ok(HttpResponse::Ok().json(json!({
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
    })))
}

fn too_many_events(n: usize) -> ApiError {
    ApiError::new(
        Code::TooManyEvents,
        format!("the batch holds {n} events; the limit is {MAX_EVENTS_PER_BATCH}"),
    )
}

/// How far ahead of the server's clock an event's time may be (clock skew):
/// an event dated far in the future would become the data end of the next
/// training run and hide every real purchase from the live overlay.
const MAX_FUTURE_SECS: i64 = 86_400;

/// Validates a whole batch at server time `now`, or names its first bad
/// event and field.
fn validate(values: Vec<serde_json::Value>, now: i64) -> Result<Vec<Event>, ApiError> {
    if values.len() > MAX_EVENTS_PER_BATCH {
        return Err(too_many_events(values.len()));
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let bad = |field: &str, message: &str| {
                let at = if field.is_empty() {
                    format!("events[{i}]")
                } else {
                    format!("events[{i}].{field}")
                };
                ApiError::new(Code::InvalidEvent, format!("{at}: {message}"))
            };
            if value.get("received_at").is_some() {
                return Err(bad("received_at", "is set by the server; leave it out"));
            }
            let event = event_from_value(value).map_err(|e| bad(&e.field, &e.message))?;
            if event.time > now.saturating_add(MAX_FUTURE_SECS) {
                return Err(bad(
                    "time",
                    &format!(
                        "{} is more than a day ahead of the server's clock ({})",
                        encore_data::timestamp::format_timestamp(event.time),
                        encore_data::timestamp::format_timestamp(now)
                    ),
                ));
            }
            Ok(event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create_app;
    use crate::events::data_end;
    use actix_web::test as web_test;
    use encore_data::synth::{SynthParams, generate};
    use encore_model::engine::{Engine, ListFilter};
    use encore_model::manifest::DataSummary;
    use encore_model::pipeline::{EngineConfig, train_engine};
    use serde_json::{Value, json};

    /// The `item_id`s of a JSON list of items, in order.
    fn item_ids(items: &Value) -> Vec<&str> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item_id"].as_str().unwrap())
            .collect()
    }

    /// A batch over the limit is counted, not built: only the first
    /// `MAX_EVENTS_PER_BATCH` elements are ever kept.
    #[test]
    fn an_oversized_batch_is_counted_not_kept() {
        let body = |n: usize| format!("{{\"events\": [{}]}}", vec!["{\"id\": \"a\"}"; n].join(","));
        let parse = |n| serde_json::from_str::<EventBatch>(&body(n)).unwrap().events;
        assert!(matches!(parse(0), BoundedEvents::Within(v) if v.is_empty()));
        assert!(
            matches!(parse(MAX_EVENTS_PER_BATCH), BoundedEvents::Within(v) if v.len() == MAX_EVENTS_PER_BATCH)
        );
        assert!(matches!(
            parse(MAX_EVENTS_PER_BATCH + 1),
            BoundedEvents::Over(n) if n == MAX_EVENTS_PER_BATCH + 1
        ));
        assert!(matches!(parse(5000), BoundedEvents::Over(5000)));
        let e = serde_json::from_str::<EventBatch>("{\"events\": 7}").unwrap_err();
        assert!(e.to_string().contains("a list of events"), "{e}");
    }

    #[test]
    fn a_bad_event_refuses_the_batch_naming_it() {
        let ok = json!({"id": "a", "type": "click", "time": 0, "customer": "c", "item": "i"});
        let bad = json!({"id": "b", "type": "purchase", "time": 0, "order_id": "o",
                         "customer": "c", "item": "i", "quantity": -1});
        let e = validate(vec![ok.clone(), ok.clone(), ok.clone(), bad], NOW).unwrap_err();
        assert_eq!(e.code(), Code::InvalidEvent);
        assert!(
            e.message().starts_with("events[3].quantity: "),
            "{}",
            e.message()
        );
        let e = validate(vec![json!(7)], NOW).unwrap_err();
        assert!(e.message().starts_with("events[0]: "), "{}", e.message());
        let mut stamped = ok.clone();
        stamped["received_at"] = json!(5);
        let e = validate(vec![stamped], NOW).unwrap_err();
        assert!(
            e.message().starts_with("events[0].received_at"),
            "{}",
            e.message()
        );
        let e = validate(vec![ok.clone(); MAX_EVENTS_PER_BATCH + 1], NOW).unwrap_err();
        assert_eq!(e.code(), Code::TooManyEvents);
        let mut ahead = ok.clone();
        ahead["time"] = json!(NOW + MAX_FUTURE_SECS + 1);
        let e = validate(vec![ok.clone(), ahead], NOW).unwrap_err();
        assert!(
            e.message().starts_with("events[1].time: "),
            "{}",
            e.message()
        );
        let mut skewed = ok.clone();
        skewed["time"] = json!(NOW + 3600);
        assert!(validate(vec![skewed], NOW).is_ok());
        assert_eq!(validate(vec![ok; 3], NOW).unwrap().len(), 3);
    }

    /// 2026-11-30T00:00:00Z.
    const NOW: i64 = 1_764_460_800;

    fn trained_engine() -> Engine {
        let log = generate(&SynthParams {
            customers: 150,
            items: 60,
            purchases: 4_000,
            categories: 4,
            ..SynthParams::default()
        });
        let mut config = EngineConfig::default();
        config.als.factors = 4;
        config.als.iterations = 2;
        train_engine(&log, vec![], &config, DataSummary::default(), &mut |_| {}).unwrap()
    }

    /// A customer with at least three buy-again items, and its id.
    fn repeat_customer(engine: &Engine) -> (u32, String) {
        (0..engine.customers().len() as u32)
            .find(|&c| engine.buy_again(c, 10, &ListFilter::default()).len() >= 3)
            .map(|c| (c, engine.customers().id(c).to_string()))
            .expect("a customer with three bought items")
    }

    fn purchase_json(id: &str, customer: &str, item: &str, time: i64) -> Value {
        json!({"id": id, "type": "purchase", "time": time, "order_id": format!("o-{id}"),
               "customer": customer, "item": item, "quantity": 2})
    }

    /// `(status, JSON body)` of a request.
    macro_rules! call {
        ($app:expr, $req:expr $(,)?) => {{
            let res = web_test::call_service($app, $req.to_request()).await;
            let status = res.status().as_u16();
            let body = web_test::read_body(res).await;
            (
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            )
        }};
    }

    fn post(events: Vec<Value>) -> web_test::TestRequest {
        web_test::TestRequest::post()
            .uri("/v1/events")
            .set_json(json!({ "events": events }))
    }

    #[actix_web::test]
    async fn without_a_log_the_route_says_so() {
        let state = web::Data::new(AppState::new("unused", trained_engine()));
        let app = web_test::init_service(create_app(state)).await;
        let (status, body) = call!(&app, post(vec![]));
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("events_disabled"))
        );
        // No event log, no event log metrics.
        let metrics = web_test::call_and_read_body(
            &app,
            web_test::TestRequest::get().uri("/metrics").to_request(),
        )
        .await;
        let metrics = String::from_utf8(metrics.to_vec()).unwrap();
        assert!(metrics.contains("encore_exposures_total"), "{metrics}");
        assert!(!metrics.contains("encore_event_log_"), "{metrics}");
    }

    #[actix_web::test]
    async fn batches_are_logged_once_and_bad_ones_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::new("unused", trained_engine())
            .with_event_log(dir.path(), Default::default())
            .unwrap();
        let app = web_test::init_service(create_app(web::Data::new(state))).await;
        let batch = vec![
            purchase_json("e1", "c1", "i1", 1_750_000_000),
            json!({"id": "e2", "type": "click", "time": "2025-06-01T00:00:00Z",
                   "customer": "c1", "item": "i2"}),
        ];
        let (status, body) = call!(&app, post(batch.clone()));
        assert_eq!(
            (status, &body),
            (200, &json!({"accepted": 2, "duplicates": 0}))
        );
        let (status, body) = call!(&app, post(batch));
        assert_eq!(
            (status, &body),
            (200, &json!({"accepted": 0, "duplicates": 2}))
        );

        let mut bad = purchase_json("e4", "c1", "i1", 1_750_000_000);
        bad["quantity"] = json!(0);
        let batch = vec![purchase_json("e3", "c1", "i1", 1_750_000_000), bad];
        let (status, body) = call!(&app, post(batch));
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_event"))
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("events[1].quantity: "),
            "{body}"
        );
        let (status, body) = call!(
            &app,
            web_test::TestRequest::post()
                .uri("/v1/events")
                .set_json(json!({"events": [], "extra": 1})),
        );
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));

        let (events, report) = encore_data::events::read_event_dir(dir.path()).unwrap();
        let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"]);
        assert_eq!(report.duplicates, 0);
        assert!(events.iter().all(|e| e.received_at.is_some()));

        // The metrics count what the log did: one commit (the batch of
        // duplicates wrote nothing, the refused ones never reached the
        // writer), two ids remembered.
        let metrics = web_test::call_and_read_body(
            &app,
            web_test::TestRequest::get().uri("/metrics").to_request(),
        )
        .await;
        let metrics = String::from_utf8(metrics.to_vec()).unwrap();
        for line in [
            "encore_events_total{result=\"accepted\"} 2",
            "encore_events_total{result=\"duplicate\"} 2",
            "encore_event_log_commits_total 1",
            "encore_event_log_remembered_ids 2",
            "encore_event_log_failed 0",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
        }
    }

    #[actix_web::test]
    async fn a_purchase_applies_at_once_and_until_a_model_trained_on_it() {
        let engine = trained_engine();
        let (c, customer) = repeat_customer(&engine);
        let end = data_end(&engine);
        let due = engine.buy_again(c, 10, &ListFilter::default());
        let top_due = engine.items().id(due[0].item).to_string();
        let (_, fresh) = engine.for_you(Some(c), 5, &ListFilter::default());
        let top_new = engine.items().id(fresh[0].0).to_string();
        let second_due = engine.items().id(due[1].item).to_string();
        let model_dir = tempfile::tempdir().unwrap();
        // The next model: the same one, but its data reach past the events.
        let mut next = trained_engine();
        next.manifest_mut().data.last_purchase =
            Some(encore_data::timestamp::format_timestamp(end + 10 * 86_400));
        encore_model::artifact::save(&next, model_dir.path()).unwrap();

        let log_dir = tempfile::tempdir().unwrap();
        let state = web::Data::new(
            AppState::new(model_dir.path(), engine)
                .with_event_log(log_dir.path(), Default::default())
                .unwrap(),
        );
        let app = web_test::init_service(create_app(state.clone())).await;
        let when = end + 86_400;
        let (status, _) = call!(
            &app,
            post(vec![
                purchase_json("p1", &customer, &top_due, when),
                purchase_json("p2", &customer, &top_new, when),
                // Bought before the data end: the model's business, no effect.
                purchase_json("p3", &customer, &second_due, end - 1),
            ]),
        );
        assert_eq!(status, 200);

        let buy_again = format!("/v1/customers/{customer}/buy-again?k=10");
        let (status, body) = call!(&app, web_test::TestRequest::get().uri(&buy_again));
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), due.len().min(10));
        let last = items.last().unwrap();
        assert_eq!(last["item_id"], top_due.as_str(), "{body}");
        assert_eq!(last["score"], 0.0);
        assert_eq!(
            last["last_purchase"],
            encore_data::timestamp::format_date(when).as_str()
        );
        assert_eq!(last["purchases"], due[0].purchases + 1);
        assert_ne!(items[0]["item_id"], top_due.as_str());
        // k cuts it off when the list is longer than k.
        let short = format!("/v1/customers/{customer}/buy-again?k=2");
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&short));
        assert!(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["item_id"] != top_due.as_str())
        );

        let recs = format!("/v1/customers/{customer}/recommendations?k=5");
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&recs));
        let ids = item_ids(&body["items"]);
        assert_eq!(ids.len(), 5);
        assert!(!ids.contains(&top_new.as_str()), "{ids:?}");

        let next_purchase = format!("/v1/customers/{customer}/next-purchase?k=10");
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&next_purchase));
        let suggested = item_ids(&body["recommended_items"]);
        assert!(!suggested.contains(&top_due.as_str()) && !suggested.contains(&top_new.as_str()));

        // A model trained past the purchases takes over: the overlay forgets them.
        state.reload().unwrap();
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&recs));
        assert_eq!(body["items"][0]["item_id"], top_new.as_str(), "{body}");
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&buy_again));
        assert_eq!(body["items"][0]["item_id"], top_due.as_str(), "{body}");

        // A rollback to a model whose data end is earlier reads the log
        // again: the purchases the newer model had covered apply once more.
        std::fs::remove_dir_all(model_dir.path()).unwrap();
        encore_model::artifact::save(&trained_engine(), model_dir.path()).unwrap();
        state.reload().unwrap();
        let (_, body) = call!(&app, web_test::TestRequest::get().uri(&recs));
        let ids = item_ids(&body["items"]);
        assert!(!ids.contains(&top_new.as_str()), "{ids:?}");

        // A restart rebuilds the overlay from the log (with the first model).
        // The old server's writer thread lets the log's lock go once the last
        // handle to it is dropped.
        drop(app);
        drop(state);
        let mut tries = 0;
        let state = loop {
            match AppState::new(model_dir.path(), trained_engine())
                .with_event_log(log_dir.path(), Default::default())
            {
                Err(encore_data::events::EventLogError::Locked { .. }) if tries < 1000 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.unwrap(),
            }
        };
        let restarted = state
            .recent_purchases()
            .items_of(&state.engine().unwrap(), &customer);
        assert_eq!(restarted.len(), 2);
    }
}
