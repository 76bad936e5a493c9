//! The live purchase overlay: the purchases logged since the serving model's
//! data ended, and how they change a buy-again list.

use encore_data::events::{Event, EventKind};
use encore_model::customer::replenishment::DueItem;
use encore_model::engine::{Engine, ListFilter};
use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock};

const DAY_SECS: f64 = 86_400.0;

/// A purchase seen since the serving model's data ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Recent {
    /// When (the event's time), seconds since the epoch.
    pub time: i64,
    /// Units bought at that time.
    pub quantity: f64,
}

#[derive(Debug, Default)]
struct RecentInner {
    /// Purchases at or before this time are the model's business.
    data_end: i64,
    /// customer id -> item id -> the latest purchase.
    by_customer: HashMap<String, HashMap<String, Recent>>,
}

impl RecentInner {
    fn record<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        let data_end = self.data_end;
        for e in events {
            let EventKind::Purchase {
                customer,
                item,
                quantity,
                ..
            } = &e.kind
            else {
                continue;
            };
            if !is_recent_purchase(e, data_end) {
                continue;
            }
            let slot = self
                .by_customer
                .entry(customer.clone())
                .or_default()
                .entry(item.clone())
                .or_insert(Recent {
                    time: e.time,
                    quantity: 0.0,
                });
            if e.time > slot.time {
                *slot = Recent {
                    time: e.time,
                    quantity: *quantity,
                };
            } else if e.time == slot.time {
                slot.quantity += quantity;
            }
        }
    }
}

/// Whether the overlay of a model whose data ends at `data_end` keeps `e`:
/// a purchase later than that end. Readers of the whole log keep only
/// these, so their memory is the overlay's, not the log's.
pub(crate) fn is_recent_purchase(e: &Event, data_end: i64) -> bool {
    matches!(e.kind, EventKind::Purchase { .. }) && e.time > data_end
}

/// The live overlay: per customer, the items bought after the serving
/// model's training data ended, each with its latest time and quantity.
///
/// Its size is bounded by the purchases logged since the model's data end:
/// a model swap forgets everything the new model trained on.
#[derive(Debug, Default)]
pub(crate) struct RecentPurchases {
    inner: RwLock<RecentInner>,
}

impl RecentPurchases {
    /// An empty overlay for a model whose data ends at `data_end`.
    pub(crate) fn new(data_end: i64) -> Self {
        RecentPurchases {
            inner: RwLock::new(RecentInner {
                data_end,
                by_customer: HashMap::new(),
            }),
        }
    }

    /// Records the purchases among `events` later than the data end.
    pub(crate) fn record<'a>(&self, events: impl IntoIterator<Item = &'a Event>) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.record(events);
    }

    /// After a model swap: forgets purchases at or before the new model's data end.
    pub(crate) fn forget_until(&self, data_end: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.data_end = data_end;
        inner.by_customer.retain(|_, items| {
            items.retain(|_, r| r.time > data_end);
            !items.is_empty()
        });
    }

    /// The data end the overlay is relative to.
    pub(crate) fn data_end(&self) -> i64 {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .data_end
    }

    /// Replaces everything with the purchases among `events` later than
    /// `data_end` (a swap to a model whose data end is earlier).
    pub(crate) fn reset(&self, data_end: i64, events: &[Event]) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.data_end = data_end;
        inner.by_customer.clear();
        inner.record(events);
    }

    /// Customers with at least one recorded purchase.
    pub(crate) fn len(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.by_customer.len()
    }

    /// The customer's purchases after `engine`'s data end, as `(item index,
    /// purchase)` for the items the model knows, by item index.
    pub(crate) fn items_of(&self, engine: &Engine, customer: &str) -> Vec<(u32, Recent)> {
        let data_end = data_end(engine);
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<(u32, Recent)> = inner
            .by_customer
            .get(customer)
            .into_iter()
            .flatten()
            .filter(|(_, r)| r.time > data_end)
            .filter_map(|(item, r)| Some((engine.items().get(item)?, *r)))
            .collect();
        out.sort_unstable_by_key(|e| e.0);
        out
    }

    /// The customers (as `engine`'s indices) who bought since its data end.
    pub(crate) fn customers_of(&self, engine: &Engine) -> HashSet<u32> {
        let data_end = data_end(engine);
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .by_customer
            .iter()
            .filter(|(_, items)| items.values().any(|r| r.time > data_end))
            .filter_map(|(c, _)| engine.customers().get(c))
            .collect()
    }
}

/// The end of `engine`'s training data (its last purchase), seconds since
/// the epoch: the manifest's `data.last_purchase`, else the customer
/// models' reference time.
pub(crate) fn data_end(engine: &Engine) -> i64 {
    engine
        .manifest()
        .data
        .last_purchase
        .as_deref()
        .and_then(encore_data::timestamp::parse_timestamp)
        .unwrap_or_else(|| engine.replenishment().reference())
}

/// Customer `c`'s buy-again list of `k` items under `filter`, with her
/// purchases since the model's data end (`recent`) applied: the list is
/// fetched with `k + recent.len()` entries, and an item bought since is not
/// due, so it goes after every other item, with score 0 and its clock
/// restarted: `last_purchase` is the event's time, the interval is the
/// item's cycle for the quantity bought (`days_per_unit · quantity^e_q`,
/// clamped like the model's), `due_date` follows from them, and `purchases`
/// counts one more. Truncated to `k`.
pub(crate) fn due_with_recent(
    engine: &Engine,
    c: u32,
    k: usize,
    filter: &ListFilter,
    recent: &[(u32, Recent)],
) -> Vec<DueItem> {
    let due = engine.buy_again(c, k + recent.len(), filter);
    if recent.is_empty() {
        let mut due = due;
        due.truncate(k);
        return due;
    }
    let find = |item: u32| {
        recent
            .binary_search_by_key(&item, |e| e.0)
            .ok()
            .map(|i| recent[i].1)
    };
    let params = engine.replenishment().params();
    let (mut kept, bought): (Vec<DueItem>, Vec<DueItem>) =
        due.into_iter().partition(|d| find(d.item).is_none());
    for mut d in bought {
        let r = find(d.item).expect("partitioned on it");
        let per_unit = engine
            .replenishment()
            .item_cycle(d.item)
            .map_or(params.default_days_per_unit, |c| c.days_per_unit);
        let interval = (per_unit
            * r.quantity
                .max(f64::MIN_POSITIVE)
                .powf(params.quantity_elasticity))
        .clamp(params.min_interval_days, params.max_interval_days);
        d.last_purchase = r.time;
        d.interval_days = interval as f32;
        d.due_date = r.time.saturating_add((interval * DAY_SECS).round() as i64);
        d.due_score = 0.0;
        d.purchases += 1;
        kept.push(d);
    }
    kept.truncate(k);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(id: &str, customer: &str, item: &str, time: i64, quantity: f64) -> Event {
        Event {
            id: id.into(),
            time,
            received_at: None,
            kind: EventKind::Purchase {
                order_id: "o".into(),
                customer: customer.into(),
                item: item.into(),
                quantity,
                price: None,
            },
        }
    }

    #[test]
    fn the_overlay_keeps_the_latest_purchase_after_the_data_end() {
        let recent = RecentPurchases::new(100);
        recent.record(&[
            purchase("1", "c1", "tea", 90, 1.0),
            purchase("2", "c1", "tea", 150, 2.0),
            purchase("3", "c1", "tea", 150, 1.0),
            purchase("4", "c1", "tea", 120, 5.0),
            purchase("5", "c2", "mug", 300, 1.0),
        ]);
        let inner = recent.inner.read().unwrap();
        assert_eq!(
            inner.by_customer["c1"]["tea"],
            Recent {
                time: 150,
                quantity: 3.0
            }
        );
        drop(inner);
        assert_eq!(recent.len(), 2);
        recent.forget_until(200);
        assert_eq!(recent.len(), 1);
        // Purchases the model trained on are not recorded again.
        recent.record(&[purchase("6", "c3", "tea", 180, 1.0)]);
        assert_eq!(recent.len(), 1);
    }
}
