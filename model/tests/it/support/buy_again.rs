//! Shared by the buy-again holdout test and the tuning example: loading
//! Online Retail, the evaluation protocol (see `replenishment_holdout.rs`).

use crate::histories::{online_retail, online_retail_catalog};
use encore_data::PurchaseLog;
use encore_data::timestamp::parse_timestamp;
use encore_model::customer::replenishment::{Replenishment, ReplenishmentParams};
use encore_model::metrics::{ndcg_at_k, recall_at_k, recall_at_k_capped};
use std::collections::{BTreeMap, HashSet};

pub const K: usize = 10;

pub struct Data {
    pub log: PurchaseLog,
    pub categories: Vec<Option<String>>,
    pub unavailable: Vec<bool>,
}

pub fn load() -> Data {
    let log = online_retail();
    let (categories, unavailable) = online_retail_catalog(&log);
    // Eleven catalog codes are fees and postage; not all of them appear in
    // lines with a customer id.
    let n_unavailable = unavailable.iter().filter(|&&u| u).count();
    assert!(
        (5..=11).contains(&n_unavailable),
        "{n_unavailable} unavailable items"
    );
    Data {
        log,
        categories,
        unavailable,
    }
}

#[derive(Default)]
pub struct PairStats {
    pub net: f64,
    pub orders: HashSet<u32>,
    pub quantity: f64,
}

/// Mean metrics of one ranking over the scored customers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Figures {
    pub recall: f64,
    pub recall_capped: f64,
    pub ndcg: f64,
}

pub struct Evaluation {
    pub customers: usize,
    /// Mean Recall@10 against every item bought after the cutoff (new items
    /// included), model and baseline, over the same customers.
    pub recall_all_after: (f64, f64),
    pub model: Figures,
    pub baseline: Figures,
}

/// Per customer: item -> stats over `[from, to)`.
pub fn pair_stats(
    log: &PurchaseLog,
    from: i64,
    to: i64,
) -> BTreeMap<u32, BTreeMap<u32, PairStats>> {
    let mut out: BTreeMap<u32, BTreeMap<u32, PairStats>> = BTreeMap::new();
    for p in &log.purchases {
        if p.time < from || p.time >= to || !p.quantity.is_finite() {
            continue;
        }
        let s = out
            .entry(p.customer.0)
            .or_default()
            .entry(p.item.0)
            .or_default();
        s.net += f64::from(p.quantity);
        if p.quantity > 0.0 {
            s.orders.insert(p.order.0);
            s.quantity += f64::from(p.quantity);
        }
    }
    out
}

/// Evaluates `params` with the model fitted before `cutoff` against the
/// purchases in `[cutoff, end)`.
pub fn evaluate(data: &Data, params: &ReplenishmentParams, cutoff: i64, end: i64) -> Evaluation {
    let model: Replenishment = params.fit(&data.log, &data.categories, cutoff - 1).unwrap();
    let before = pair_stats(&data.log, i64::MIN, cutoff);
    let after = pair_stats(&data.log, cutoff, end);
    let mut sum_model = Figures::default();
    let mut sum_base = Figures::default();
    let mut customers = 0usize;
    let mut recall_all_after = (0.0, 0.0);
    for (customer, items_after) in &after {
        let Some(items_before) = before.get(customer) else {
            continue;
        };
        let bought: Vec<(u32, &PairStats)> = items_before
            .iter()
            .filter(|(i, s)| s.net > 0.0 && !data.unavailable[**i as usize])
            .map(|(i, s)| (*i, s))
            .collect();
        let bought_set: HashSet<u32> = bought.iter().map(|b| b.0).collect();
        let relevant: HashSet<u32> = items_after
            .iter()
            .filter(|(i, s)| s.net > 0.0 && bought_set.contains(i))
            .map(|(i, _)| *i)
            .collect();
        if relevant.is_empty() {
            continue;
        }
        customers += 1;
        let mut baseline = bought.clone();
        baseline.sort_by(|a, b| {
            b.1.orders
                .len()
                .cmp(&a.1.orders.len())
                .then(b.1.quantity.total_cmp(&a.1.quantity))
                .then(a.0.cmp(&b.0))
        });
        let baseline: Vec<u32> = baseline.iter().take(K).map(|b| b.0).collect();
        let list: Vec<u32> = model
            .due(*customer, K, |i| data.unavailable[i as usize])
            .iter()
            .map(|d| d.item)
            .collect();
        let all_after: HashSet<u32> = items_after
            .iter()
            .filter(|(i, s)| s.net > 0.0 && !data.unavailable[**i as usize])
            .map(|(i, _)| *i)
            .collect();
        recall_all_after.0 += recall_at_k(&list, &all_after, K).unwrap();
        recall_all_after.1 += recall_at_k(&baseline, &all_after, K).unwrap();
        for (sum, ranked) in [(&mut sum_model, &list), (&mut sum_base, &baseline)] {
            sum.recall += recall_at_k(ranked, &relevant, K).unwrap();
            sum.recall_capped += recall_at_k_capped(ranked, &relevant, K).unwrap();
            sum.ndcg += ndcg_at_k(ranked, &relevant, K).unwrap();
        }
    }
    let mean = |s: Figures| Figures {
        recall: s.recall / customers as f64,
        recall_capped: s.recall_capped / customers as f64,
        ndcg: s.ndcg / customers as f64,
    };
    Evaluation {
        customers,
        recall_all_after: (
            recall_all_after.0 / customers as f64,
            recall_all_after.1 / customers as f64,
        ),
        model: mean(sum_model),
        baseline: mean(sum_base),
    }
}

pub fn date(s: &str) -> i64 {
    parse_timestamp(s).unwrap()
}

pub fn print(label: &str, e: &Evaluation) {
    println!(
        "{label}: {} customers scored\n  buy-again: Recall@10 {:.4}  capped {:.4}  NDCG@10 {:.4}\n  \
         most-bought baseline: Recall@10 {:.4}  capped {:.4}  NDCG@10 {:.4}\n  \
         Recall@10 against every after-item (new items included): buy-again {:.4}, \
         baseline {:.4}",
        e.customers,
        e.model.recall,
        e.model.recall_capped,
        e.model.ndcg,
        e.baseline.recall,
        e.baseline.recall_capped,
        e.baseline.ndcg,
        e.recall_all_after.0,
        e.recall_all_after.1,
    );
}
