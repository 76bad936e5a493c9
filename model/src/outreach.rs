//! What a campaign tool asks of an engine: a customer's buy-again list, the
//! items of a next-purchase message, and reactivation audiences.
//!
//! Shared by `encore-serve` (the `/v1/customers/{id}/buy-again`,
//! `/next-purchase` and `/v1/audiences/reactivation` routes) and
//! `encore-train audience`, so that both answer the same rows.
//!
//! # Audiences
//! [`Engine::audience_members`] picks the customers whose profile passes the
//! [`AudienceQuery`] (lifecycle stages, RFM segments, minimum P(alive),
//! minimum CLV), highest CLV first (customers without a CLV last, then by
//! customer index), up to `limit`. [`Engine::audience_rows`] turns a chunk of
//! them into [`AudienceRow`]s, in parallel, so callers stream an audience
//! chunk by chunk and never hold all rows at once.
//!
//! Each row's items are the customer's due replenishments first (buy-again
//! items whose due date is at most `due_within_days` after `as_of`, best due
//! score first), then personal recommendations of items they have not bought
//! (ALS), up to `k`; unavailable items never appear. The suggested send date
//! is `lead_days` before the earliest due date among all the customer's
//! items due in that window (shown or not: the date does not change with
//! `k`), but never before `as_of`; without a due item it is `as_of`.
//! `as_of` defaults to the model's reference time (the end of its training
//! data), the time every profile figure refers to.

use crate::customer::book::CustomerProfile;
use crate::customer::lifecycle::Stage;
use crate::customer::replenishment::DueItem;
use crate::engine::{Engine, ListFilter};
use encore_data::timestamp::format_date;
use rayon::prelude::*;
use serde::Serialize;

const DAY_SECS: i64 = 86_400;

/// Why an item is suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The customer bought it before and is due to buy it again.
    Replenishment,
    /// A personal recommendation of an item the customer has not bought.
    Recommendation,
}

/// One suggested item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub item: u32,
    pub reason: Reason,
    /// The due score for a replenishment, the ALS score for a recommendation.
    pub score: f32,
    /// When a replenishment is due (seconds since the epoch).
    pub due_date: Option<i64>,
}

impl Suggestion {
    fn due(d: &DueItem) -> Self {
        Suggestion {
            item: d.item,
            reason: Reason::Replenishment,
            score: d.due_score,
            due_date: Some(d.due_date),
        }
    }
}

/// Who belongs in an audience, and what each row carries.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceQuery {
    /// Lifecycle stages to include (default dormant and at risk).
    pub stages: Vec<Stage>,
    /// RFM segments to include; empty for all.
    pub segments: Vec<String>,
    /// Customers whose P(alive) is at least this; refused by
    /// [`Engine::audience_setting_problem`] when the model reports no P(alive).
    pub min_p_alive: Option<f64>,
    /// Customers whose churn risk (profile `churn_risk`) is at most this.
    pub max_churn_risk: Option<f64>,
    pub min_clv: Option<f64>,
    /// Items per row, 1 to [`MAX_AUDIENCE_K`].
    pub k: usize,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// The date the campaign runs from (seconds since the epoch); `None` is
    /// the model's reference time.
    pub as_of: Option<i64>,
    /// Send this many days before the first due replenishment.
    pub lead_days: f64,
    /// A buy-again item counts as due if due at most this many days after `as_of`.
    pub due_within_days: f64,
}

/// The most items an audience row carries.
pub const MAX_AUDIENCE_K: usize = 200;

/// A setting of an [`AudienceQuery`] outside what it accepts
/// ([`AudienceQuery::setting_problem`]) or what the model can filter by
/// ([`Engine::audience_setting_problem`]); each interface names the setting
/// its own way (`--min-p-alive`, `min_p_alive`).
#[derive(Debug, Clone, PartialEq)]
pub struct SettingProblem {
    /// The field: `stages`, `segments`, `min_p_alive`, `max_churn_risk`,
    /// `min_clv`, `k`, `limit` or `as_of`.
    pub setting: &'static str,
    /// What is wrong, to follow the setting's name: "must be at least 1".
    pub problem: String,
}

impl AudienceQuery {
    /// The first setting out of its range, if any: no stage, a P(alive) or
    /// churn-risk bound outside [0, 1], a CLV bound that is not a finite
    /// number, a `k` outside 1 to [`MAX_AUDIENCE_K`], a limit of 0.
    pub fn setting_problem(&self) -> Option<SettingProblem> {
        let found = |setting, problem| Some(SettingProblem { setting, problem });
        if self.stages.is_empty() {
            return found("stages", "must name at least one stage".to_owned());
        }
        for (setting, bound) in [
            ("min_p_alive", self.min_p_alive),
            ("max_churn_risk", self.max_churn_risk),
        ] {
            if let Some(p) = bound
                && !(0.0..=1.0).contains(&p)
            {
                return found(setting, format!("must be within [0, 1], not {p}"));
            }
        }
        if let Some(v) = self.min_clv
            && !v.is_finite()
        {
            return found("min_clv", format!("must be a finite number, not {v}"));
        }
        if !(1..=MAX_AUDIENCE_K).contains(&self.k) {
            return found(
                "k",
                format!("must be between 1 and {MAX_AUDIENCE_K}, got {}", self.k),
            );
        }
        if self.limit == Some(0) {
            return found("limit", "must be at least 1".to_owned());
        }
        None
    }
}

impl Default for AudienceQuery {
    fn default() -> Self {
        AudienceQuery {
            stages: vec![Stage::Dormant, Stage::AtRisk],
            segments: Vec::new(),
            min_p_alive: None,
            max_churn_risk: None,
            min_clv: None,
            k: 5,
            limit: None,
            as_of: None,
            lead_days: 3.0,
            due_within_days: 30.0,
        }
    }
}

/// One customer of an audience.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceRow {
    pub customer: u32,
    pub send_date: i64,
    pub items: Vec<Suggestion>,
}

impl Engine {
    /// The names in `segments` that are no RFM segment of this model, in
    /// their order; empty when every one is (or when the model predates the
    /// stored segment names and cannot tell).
    pub fn unknown_segments<'a>(&self, segments: &'a [String]) -> Vec<&'a str> {
        let known = &self.customer_book().models().segment_names;
        if known.is_empty() {
            return Vec::new();
        }
        segments
            .iter()
            .filter(|s| !known.contains(s))
            .map(String::as_str)
            .collect()
    }

    /// Why an audience cannot be asked for `segments`: the message naming
    /// the first names that are no RFM segment of this model, and the known
    /// ones; `None` when all are known ([`Engine::unknown_segments`]).
    pub fn unknown_segments_message(&self, segments: &[String]) -> Option<String> {
        let unknown = self.unknown_segments(segments);
        (!unknown.is_empty()).then(|| {
            format!(
                "'{}' is not an RFM segment of this model (known: {})",
                unknown.join(","),
                self.customer_book().models().segment_names.join(", ")
            )
        })
    }

    /// The customer's previously bought items, most due first; empty for a
    /// customer index without purchases.
    pub fn buy_again(&self, customer: u32, k: usize, filter: &ListFilter) -> Vec<DueItem> {
        self.replenishment()
            .due(customer, k, |i| !self.allowed(i, filter))
    }

    /// Personal recommendations of items the customer has not bought (ALS).
    fn new_items(&self, customer: u32, k: usize, filter: &ListFilter) -> Vec<(u32, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let filter = ListFilter {
            include_purchased: false,
            ..filter.clone()
        };
        self.recommend(Some(customer), k, &filter).1
    }

    /// The items of a next-purchase message: up to `ceil(k/2)` buy-again items
    /// (most due first), then recommendations of new items, each part filling
    /// in when the other runs short.
    pub fn next_purchase_items(
        &self,
        customer: u32,
        k: usize,
        filter: &ListFilter,
    ) -> Vec<Suggestion> {
        let again = self.buy_again(customer, k, filter);
        let fresh = self.new_items(customer, k, filter);
        let want_again = k.div_ceil(2).max(k.saturating_sub(fresh.len()));
        let mut out: Vec<Suggestion> = again.iter().take(want_again).map(Suggestion::due).collect();
        let room = k - out.len();
        out.extend(
            fresh
                .into_iter()
                .take(room)
                .map(|(item, score)| Suggestion {
                    item,
                    reason: Reason::Recommendation,
                    score,
                    due_date: None,
                }),
        );
        out
    }

    /// What of `query` this model cannot filter by: `segments` naming one
    /// that is not in its RFM map ([`Engine::unknown_segments_message`]),
    /// then `min_p_alive` when it reports no P(alive)
    /// ([`crate::customer::book::CustomerBook::p_alive_unavailable`]).
    pub fn audience_setting_problem(&self, query: &AudienceQuery) -> Option<SettingProblem> {
        if let Some(problem) = self.unknown_segments_message(&query.segments) {
            return Some(SettingProblem {
                setting: "segments",
                problem,
            });
        }
        query.min_p_alive?;
        let why = self.customer_book().p_alive_unavailable()?;
        Some(SettingProblem {
            setting: "min_p_alive",
            problem: format!("cannot filter: {why} (max_churn_risk filters by it)"),
        })
    }

    /// The customers of an audience, in row order (module docs).
    pub fn audience_members(&self, query: &AudienceQuery) -> Vec<u32> {
        let book = self.customer_book();
        let passes = |p: &CustomerProfile| {
            query.stages.contains(&p.stage)
                && (query.segments.is_empty() || query.segments.contains(&p.segment))
                && query
                    .min_p_alive
                    .is_none_or(|min| p.p_alive.is_some_and(|v| v >= min))
                && query
                    .max_churn_risk
                    .is_none_or(|max| p.churn_risk.is_some_and(|v| v <= max))
                && query
                    .min_clv
                    .is_none_or(|min| p.clv.is_some_and(|v| v >= min))
        };
        let mut members: Vec<(u32, Option<f64>)> = book
            .profiles()
            .enumerate()
            .filter_map(|(c, p)| {
                let p = p.as_ref()?;
                passes(p).then_some((c as u32, p.clv))
            })
            .collect();
        members.sort_by(|a, b| match (a.1, b.1) {
            (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.cmp(&b.0)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.0.cmp(&b.0),
        });
        if let Some(limit) = query.limit {
            members.truncate(limit);
        }
        members.into_iter().map(|(c, _)| c).collect()
    }

    /// The rows of `members` (a chunk of [`Engine::audience_members`]), in order.
    pub fn audience_rows(&self, members: &[u32], query: &AudienceQuery) -> Vec<AudienceRow> {
        let as_of = query
            .as_of
            .unwrap_or_else(|| self.customer_book().models().reference);
        let due_by = as_of + (query.due_within_days * DAY_SECS as f64) as i64;
        let lead = (query.lead_days * DAY_SECS as f64) as i64;
        let filter = ListFilter::default();
        members
            .par_iter()
            .map(|&c| {
                // Every bought item due in the window, most due first: the
                // window is applied before the cut to k, so an item due in it
                // is never crowded out by a higher-scored one that is not.
                let due: Vec<DueItem> = self
                    .buy_again(c, usize::MAX, &filter)
                    .into_iter()
                    .filter(|d| d.due_date <= due_by)
                    .collect();
                let send_date = due
                    .iter()
                    .map(|d| d.due_date)
                    .min()
                    .map_or(as_of, |first| (first - lead).max(as_of));
                let mut items: Vec<Suggestion> =
                    due.iter().take(query.k).map(Suggestion::due).collect();
                let room = query.k - items.len();
                items.extend(
                    self.new_items(c, room, &filter)
                        .into_iter()
                        .map(|(item, score)| Suggestion {
                            item,
                            reason: Reason::Recommendation,
                            score,
                            due_date: None,
                        }),
                );
                AudienceRow {
                    customer: c,
                    send_date,
                    items,
                }
            })
            .collect()
    }

    /// The CSV header of [`Engine::write_audience_csv`] for rows of `k` items.
    pub fn audience_csv_header(k: usize) -> Vec<u8> {
        let mut header = String::from(
            "customer_id,stage,segment,p_alive,churn_risk,clv,buy_within_30d_probability,last_purchase,send_date",
        );
        for i in 1..=k {
            header.push_str(&format!(",item_{i}"));
        }
        header.push('\n');
        header.into_bytes()
    }

    /// Appends `row` as one CSV line (fields quoted where needed).
    pub fn write_audience_csv(&self, row: &AudienceRow, k: usize, out: &mut Vec<u8>) {
        let p = self.customer_book().profile(row.customer);
        let p = p.as_ref();
        let num = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        let mut fields: Vec<String> = vec![
            self.customers().id(row.customer).to_string(),
            p.map(|p| p.stage.as_str().to_string()).unwrap_or_default(),
            p.map(|p| p.segment.clone()).unwrap_or_default(),
            num(p.and_then(|p| p.p_alive)),
            num(p.and_then(|p| p.churn_risk)),
            num(p.and_then(|p| p.clv)),
            num(p.and_then(|p| p.buy_within_30d_probability)),
            p.map(|p| format_date(p.last_purchase)).unwrap_or_default(),
            format_date(row.send_date),
        ];
        for i in 0..k {
            fields.push(
                row.items
                    .get(i)
                    .map(|s| self.items().id(s.item).to_string())
                    .unwrap_or_default(),
            );
        }
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        w.write_record(&fields).expect("writing to memory");
        out.extend_from_slice(&w.into_inner().expect("writing to memory"));
    }

    /// Appends `row` as one JSON line.
    pub fn write_audience_ndjson(&self, row: &AudienceRow, out: &mut Vec<u8>) {
        let line = self.audience_json(row);
        serde_json::to_writer(&mut *out, &line).expect("JSON serialises");
        out.push(b'\n');
    }

    /// `row` as the JSON object of an NDJSON audience line.
    pub fn audience_json(&self, row: &AudienceRow) -> serde_json::Value {
        let p = self.customer_book().profile(row.customer);
        let p = p.as_ref();
        serde_json::json!({
            "customer_id": self.customers().id(row.customer),
            "stage": p.map(|p| p.stage),
            "segment": p.map(|p| p.segment.as_str()),
            "behaviour_segment": p.and_then(|p| p.behaviour_segment.as_deref()),
            "p_alive": p.and_then(|p| p.p_alive),
            "churn_risk": p.and_then(|p| p.churn_risk),
            "clv": p.and_then(|p| p.clv),
            "buy_within_30d_probability": p.and_then(|p| p.buy_within_30d_probability),
            "last_purchase": p.map(|p| format_date(p.last_purchase)),
            "send_date": format_date(row.send_date),
            "items": self.suggestions_json(&row.items),
        })
    }

    /// Suggestions as JSON objects with ids and catalog data.
    pub fn suggestions_json(&self, items: &[Suggestion]) -> Vec<serde_json::Value> {
        items
            .iter()
            .map(|s| {
                let meta = self.item_meta(s.item);
                let mut v = serde_json::json!({
                    "item_id": self.items().id(s.item),
                    "reason": s.reason,
                    "score": s.score,
                });
                if let Some(due) = s.due_date {
                    v["due_date"] = format_date(due).into();
                }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ItemMeta;
    use crate::manifest::DataSummary;
    use crate::pipeline::{EngineConfig, train_engine};
    use encore_data::PurchaseLog;

    const DAY: i64 = 86_400;

    /// 40 customers buying tea every ~14 days and sometimes a mug or a pot;
    /// half of them stopped buying 90 days before the end.
    fn engine() -> Engine {
        let mut log = PurchaseLog::default();
        let mut order = 0;
        for c in 0..40 {
            let stop = if c % 2 == 0 { 300 } else { 210 };
            let mut day = c % 5;
            while day < stop {
                order += 1;
                let o = format!("o{order}");
                log.push(&o, &format!("c{c}"), "tea", day * DAY, 1.0, 4.0);
                if (day / 14 + c) % 3 == 0 {
                    log.push(
                        &o,
                        &format!("c{c}"),
                        &format!("mug{}", c % 4),
                        day * DAY,
                        1.0,
                        9.0,
                    );
                }
                if c % 7 == 0 {
                    log.push(&o, &format!("c{c}"), "postage", day * DAY, 1.0, 1.0);
                }
                day += 14;
            }
        }
        let mut meta = vec![ItemMeta::default(); log.items.len()];
        meta[log.items.get("postage").unwrap() as usize].available = false;
        let mut config = EngineConfig::default();
        config.als.factors = 4;
        config.als.iterations = 3;
        train_engine(&log, meta, &config, DataSummary::default(), &mut |_| {}).unwrap()
    }

    #[test]
    fn audience_rows_follow_the_query() {
        let engine = engine();
        let query = AudienceQuery {
            stages: vec![Stage::Dormant, Stage::AtRisk, Stage::Lost],
            k: 3,
            ..Default::default()
        };
        let members = engine.audience_members(&query);
        assert!(!members.is_empty());
        // Only lapsed customers (odd ones) are in.
        for &c in &members {
            let id = engine.customers().id(c);
            let n: u32 = id[1..].parse().unwrap();
            assert_eq!(n % 2, 1, "{id} is still buying");
        }
        // CLV descending.
        let clv: Vec<f64> = members
            .iter()
            .map(|&c| engine.customer_book().profile(c).unwrap().clv.unwrap())
            .collect();
        assert!(clv.windows(2).all(|w| w[0] >= w[1]));
        let rows = engine.audience_rows(&members, &query);
        assert_eq!(rows.len(), members.len());
        let postage = engine.items().get("postage").unwrap();
        let reference = engine.customer_book().models().reference;
        for row in &rows {
            assert!(row.items.len() <= 3);
            assert!(row.items.iter().all(|s| s.item != postage));
            assert!(row.send_date >= reference);
            // Replenishments come first.
            let first_rec = row
                .items
                .iter()
                .position(|s| s.reason == Reason::Recommendation)
                .unwrap_or(row.items.len());
            assert!(
                row.items[first_rec..]
                    .iter()
                    .all(|s| s.reason == Reason::Recommendation)
            );
        }
        let limited = engine.audience_members(&AudienceQuery {
            limit: Some(2),
            ..query.clone()
        });
        assert_eq!(limited, members[..2]);
        let none = engine.audience_members(&AudienceQuery {
            min_p_alive: Some(1.01),
            ..query
        });
        assert!(none.is_empty());
    }

    #[test]
    fn due_items_are_chosen_before_the_cut_to_k() {
        let engine = engine();
        let reference = engine.customer_book().models().reference;
        let filter = ListFilter::default();
        let all_stages = vec![
            Stage::New,
            Stage::Active,
            Stage::Dormant,
            Stage::AtRisk,
            Stage::Lost,
        ];
        // Cases where the k best-scored bought items leave out an item due in
        // the window that a lower score puts after them: the old rule (cut to
        // k, then keep the due ones) lost those items and moved the send date.
        let mut crowded_out = 0;
        for as_of_days in [-20, 0, 10] {
            for window in [2.0, 5.0, 10.0] {
                let query = AudienceQuery {
                    stages: all_stages.clone(),
                    as_of: Some(reference + as_of_days * DAY),
                    due_within_days: window,
                    ..Default::default()
                };
                let due_by = reference + as_of_days * DAY + (window * DAY as f64) as i64;
                let members = engine.audience_members(&query);
                let mut dates = Vec::new();
                for k in 1..=4 {
                    let query = AudienceQuery { k, ..query.clone() };
                    let rows = engine.audience_rows(&members, &query);
                    for (row, &c) in rows.iter().zip(&members) {
                        let ranked = engine.buy_again(c, usize::MAX, &filter);
                        let due: Vec<u32> = ranked
                            .iter()
                            .filter(|d| d.due_date <= due_by)
                            .map(|d| d.item)
                            .collect();
                        let shown: Vec<u32> = row
                            .items
                            .iter()
                            .filter(|s| s.reason == Reason::Replenishment)
                            .map(|s| s.item)
                            .collect();
                        assert_eq!(shown, due[..due.len().min(k)], "customer {c}, k {k}");
                        let old_rule = ranked
                            .iter()
                            .take(k)
                            .filter(|d| d.due_date <= due_by)
                            .count();
                        crowded_out += usize::from(old_rule < due.len().min(k));
                    }
                    dates.push(rows.iter().map(|r| r.send_date).collect::<Vec<_>>());
                }
                assert!(
                    dates.windows(2).all(|w| w[0] == w[1]),
                    "send dates moved with k"
                );
            }
        }
        assert!(crowded_out > 0, "no case tells the rules apart");
    }

    #[test]
    fn csv_and_ndjson_lines_carry_the_row() {
        let engine = engine();
        let query = AudienceQuery {
            stages: vec![Stage::Dormant, Stage::AtRisk, Stage::Lost],
            k: 2,
            ..Default::default()
        };
        let members = engine.audience_members(&query);
        let rows = engine.audience_rows(&members[..1], &query);
        let mut csv = Engine::audience_csv_header(2);
        engine.write_audience_csv(&rows[0], 2, &mut csv);
        let text = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0].split(',').count(),
            lines[1].split(',').count(),
            "{text}"
        );
        assert!(lines[1].starts_with(engine.customers().id(members[0])));
        let mut nd = Vec::new();
        engine.write_audience_ndjson(&rows[0], &mut nd);
        let v: serde_json::Value = serde_json::from_slice(&nd).unwrap();
        assert_eq!(v["customer_id"], engine.customers().id(members[0]));
        assert_eq!(v["items"].as_array().unwrap().len(), rows[0].items.len());
    }

    #[test]
    fn next_purchase_items_mix_buy_again_and_new() {
        let engine = engine();
        let c = engine.customers().get("c3").unwrap();
        let items = engine.next_purchase_items(c, 4, &ListFilter::default());
        assert!(!items.is_empty() && items.len() <= 4);
        assert_eq!(items[0].reason, Reason::Replenishment);
        let mut ids: Vec<u32> = items.iter().map(|s| s.item).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), items.len(), "no item twice");
        let again = engine.buy_again(c, 10, &ListFilter::default());
        let tea = engine.items().get("tea").unwrap();
        assert!(again.iter().any(|d| d.item == tea));
    }

    #[test]
    fn for_you_serves_the_repeat_aware_list_when_purchases_are_allowed() {
        let engine = engine();
        let lists = engine.for_you_lists().expect("small data: lists built");
        let c = engine.customers().get("c3").unwrap();
        let with = ListFilter {
            include_purchased: true,
            ..ListFilter::default()
        };
        let (source, list) = engine.for_you(Some(c), 3, &with);
        assert_eq!(source, crate::engine::Source::Model);
        let (items, scores) = lists.row(c as usize);
        let mut stored: Vec<(u32, f32)> =
            items.iter().copied().zip(scores.iter().copied()).collect();
        stored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(list, stored[..3.min(stored.len())].to_vec());
        let tea = engine.items().get("tea").unwrap();
        assert_eq!(list[0].0, tea, "the weekly item comes first");
        // Without purchased items it is the ALS list.
        let without = ListFilter::default();
        assert_eq!(
            engine.for_you(Some(c), 3, &without),
            engine.recommend(Some(c), 3, &without)
        );
        // A long list is filled from ALS, never with an unavailable item or twice.
        let n = engine.items().len() - 1;
        let (_, long) = engine.for_you(Some(c), n, &with);
        let postage = engine.items().get("postage").unwrap();
        let mut ids: Vec<u32> = long.iter().map(|e| e.0).collect();
        assert!(!ids.contains(&postage));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), long.len());
        assert_eq!(long.len(), n);
        assert!(long.windows(2).all(|w| w[0].1 >= w[1].1), "{long:?}");
    }

    #[test]
    fn settings_the_model_cannot_filter_by_are_named() {
        let engine = engine();
        let all_known = AudienceQuery {
            segments: engine.customer_book().models().segment_names.clone(),
            ..AudienceQuery::default()
        };
        assert_eq!(engine.audience_setting_problem(&all_known), None);
        let misspelt = AudienceQuery {
            segments: vec!["at-risk".into()],
            ..AudienceQuery::default()
        };
        let found = engine
            .audience_setting_problem(&misspelt)
            .expect("a problem");
        assert_eq!(found.setting, "segments");
        assert!(
            found.problem.starts_with("'at-risk' is not an RFM segment"),
            "{}",
            found.problem
        );
    }

    #[test]
    fn out_of_range_settings_are_named() {
        assert_eq!(AudienceQuery::default().setting_problem(), None);
        let cases = [
            (
                AudienceQuery {
                    stages: Vec::new(),
                    ..AudienceQuery::default()
                },
                "stages",
                "must name at least one stage",
            ),
            (
                AudienceQuery {
                    min_p_alive: Some(1.5),
                    ..AudienceQuery::default()
                },
                "min_p_alive",
                "must be within [0, 1], not 1.5",
            ),
            (
                AudienceQuery {
                    max_churn_risk: Some(f64::NAN),
                    ..AudienceQuery::default()
                },
                "max_churn_risk",
                "must be within [0, 1], not NaN",
            ),
            (
                AudienceQuery {
                    min_clv: Some(f64::INFINITY),
                    ..AudienceQuery::default()
                },
                "min_clv",
                "must be a finite number, not inf",
            ),
            (
                AudienceQuery {
                    k: 0,
                    ..AudienceQuery::default()
                },
                "k",
                "must be between 1 and 200, got 0",
            ),
            (
                AudienceQuery {
                    limit: Some(0),
                    ..AudienceQuery::default()
                },
                "limit",
                "must be at least 1",
            ),
        ];
        for (query, setting, problem) in cases {
            let found = query.setting_problem().expect("a problem");
            assert_eq!((found.setting, found.problem.as_str()), (setting, problem));
        }
        let bounds_kept = AudienceQuery {
            k: MAX_AUDIENCE_K,
            min_p_alive: Some(0.0),
            max_churn_risk: Some(1.0),
            min_clv: Some(-5.0),
            limit: Some(1),
            ..AudienceQuery::default()
        };
        assert_eq!(bounds_kept.setting_problem(), None);
    }
}
