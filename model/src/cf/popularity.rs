//! Popularity: the fallback list for customers and baskets no model knows.
//!
//! An item's score is the number of *distinct customers* who bought it
//! (positive-quantity lines) in the last `window_days` before the log's last
//! purchase. Counting customers rather than units or lines keeps one
//! wholesaler who orders 10,000 of an item every week from dominating the
//! list. If the window holds no positive line at all, the whole log is used.
//!
//! The list holds only items with at least one buyer in the counted period,
//! best first, ties broken by the lower item index.

use crate::topk::rank_order;
use encore_data::{Purchase, PurchaseLog};

/// Settings of [`Popularity`].
#[derive(Debug, Clone, PartialEq)]
pub struct PopularityParams {
    /// Count buyers over this many days before the last purchase of the log.
    /// A window that is not a positive number means the whole log.
    pub window_days: f64,
}

impl Default for PopularityParams {
    fn default() -> Self {
        PopularityParams { window_days: 90.0 }
    }
}

impl PopularityParams {
    /// Ranks the items of `log` (see the module docs).
    pub fn fit(&self, log: &PurchaseLog) -> Popularity {
        self.fit_where(log, |_| true)
    }

    /// [`PopularityParams::fit`] on the lines of `log` that `keep` accepts,
    /// as if they were the whole log (without copying them into one).
    pub fn fit_where(&self, log: &PurchaseLog, keep: impl Fn(&Purchase) -> bool) -> Popularity {
        let Some(last) = log
            .purchases
            .iter()
            .filter(|p| keep(p))
            .map(|p| p.time)
            .max()
        else {
            return Popularity::default();
        };
        let cutoff = if self.window_days > 0.0 {
            // `as` saturates, so an enormous window is simply "everything".
            let secs = (self.window_days * 86_400.0) as i64;
            last.saturating_sub(secs)
        } else {
            i64::MIN
        };
        let mut ranked = count_buyers(log, cutoff, &keep);
        if ranked.is_empty() && cutoff != i64::MIN {
            ranked = count_buyers(log, i64::MIN, &keep);
        }
        Popularity { ranked }
    }
}

/// Distinct buyers per item over positive lines at or after `cutoff`, ranked.
fn count_buyers(
    log: &PurchaseLog,
    cutoff: i64,
    keep: &impl Fn(&Purchase) -> bool,
) -> Vec<(u32, f32)> {
    let mut pairs: Vec<u64> = log
        .purchases
        .iter()
        .filter(|p| p.time >= cutoff && p.quantity > 0.0 && keep(p))
        .map(|p| (u64::from(p.item.0) << 32) | u64::from(p.customer.0))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut ranked: Vec<(u32, f32)> = Vec::new();
    for pair in pairs {
        let item = (pair >> 32) as u32;
        match ranked.last_mut() {
            Some((last, n)) if *last == item => *n += 1.0,
            _ => ranked.push((item, 1.0)),
        }
    }
    ranked.sort_by(rank_order);
    ranked
}

/// The popularity list, best first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Popularity {
    ranked: Vec<(u32, f32)>,
}

impl Popularity {
    /// Wraps a list as stored in an artifact; it is kept in the given order,
    /// which must be best first.
    pub fn from_ranked(ranked: Vec<(u32, f32)>) -> Self {
        Popularity { ranked }
    }

    /// The whole list, best first: `(item index, distinct buyers)`.
    pub fn ranked(&self) -> &[(u32, f32)] {
        &self.ranked
    }

    /// The first `k` items of the list for which `skip` returns false.
    pub fn top(&self, k: usize, skip: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        self.ranked
            .iter()
            .filter(|&&(i, _)| !skip(i))
            .take(k)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400;

    fn log() -> PurchaseLog {
        let mut log = PurchaseLog::default();
        // Old purchases (outside a 10-day window): item "old" by 3 customers.
        log.push("o1", "a", "old", 0, 1.0, 1.0);
        log.push("o2", "b", "old", DAY, 1.0, 1.0);
        log.push("o3", "c", "old", 2 * DAY, 1.0, 1.0);
        // Recent: "x" by a, b (a twice); "y" by c; "z" by d, e; "r" returned only.
        let t = 100 * DAY;
        log.push("o4", "a", "x", t, 1.0, 1.0);
        log.push("o5", "a", "x", t + 1, 500.0, 1.0);
        log.push("o6", "b", "x", t + 2, 1.0, 1.0);
        log.push("o7", "c", "y", t + 3, 1.0, 1.0);
        log.push("o8", "d", "z", t + 4, 1.0, 1.0);
        log.push("o9", "e", "z", t + 5, 1.0, 1.0);
        log.push("C1", "a", "r", t + 6, -1.0, 1.0);
        log
    }

    fn idx(log: &PurchaseLog, id: &str) -> u32 {
        log.items.get(id).unwrap()
    }

    #[test]
    fn counts_distinct_recent_buyers() {
        let log = log();
        let pop = PopularityParams { window_days: 10.0 }.fit(&log);
        let (x, y, z) = (idx(&log, "x"), idx(&log, "y"), idx(&log, "z"));
        assert!(x < z);
        assert_eq!(pop.ranked(), &[(x, 2.0), (z, 2.0), (y, 1.0)]);
        assert_eq!(pop.top(2, |i| i == x), vec![(z, 2.0), (y, 1.0)]);
        assert_eq!(pop.top(0, |_| false), vec![]);
    }

    #[test]
    fn whole_log_window_and_empty_window_fallback() {
        let log = log();
        let all = PopularityParams {
            window_days: f64::INFINITY,
        }
        .fit(&log);
        assert_eq!(all.ranked()[0], (idx(&log, "old"), 3.0));
        assert_eq!(all.ranked().len(), 4);
        // Only the return lies in a tiny window at the very end: use everything.
        let tiny = PopularityParams { window_days: 1e-9 }.fit(&log);
        assert_eq!(tiny, all);
        assert_eq!(
            PopularityParams::default()
                .fit(&PurchaseLog::default())
                .ranked(),
            &[]
        );
        assert_eq!(Popularity::from_ranked(all.ranked().to_vec()), all);
    }

    proptest! {
        #[test]
        fn ranked_is_sorted_and_counts_are_bounded(
            lines in proptest::collection::vec((0u8..6, 0u8..8, 0i64..50, -2i8..4), 0..60),
            window in 1.0f64..60.0,
        ) {
            let mut log = PurchaseLog::default();
            for (k, (c, i, day, q)) in lines.iter().enumerate() {
                log.push(&format!("o{k}"), &format!("c{c}"), &format!("i{i}"), day * DAY, f32::from(*q), 1.0);
            }
            let pop = PopularityParams { window_days: window }.fit(&log);
            let r = pop.ranked();
            prop_assert!(r.windows(2).all(|w| rank_order(&w[0], &w[1]).is_lt()));
            for &(_, n) in r {
                prop_assert!(n >= 1.0 && n as usize <= log.customers.len());
            }
            let any_positive = lines.iter().any(|l| l.3 > 0);
            prop_assert_eq!(r.is_empty(), !any_positive);
        }
    }
}
