//! The in-memory purchase history every model trains on.

use crate::ids::{CustomerIdx, IdMap, ItemIdx, OrderIdx};

/// One purchase line: a quantity of one item in one order.
///
/// `quantity` is negative for returns and cancellations; see
/// [`crate::matrix::InteractionMatrix`] for how those are netted out so that they
/// never become positive preference.
// Packed to 4-byte alignment: 28 bytes a line instead of 32 (the `i64` time
// would otherwise pad it), an eighth less for the largest structure of a fit.
// Fields are read by value; a reference to one does not compile.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, packed(4))]
pub struct Purchase {
    pub order: OrderIdx,
    pub customer: CustomerIdx,
    pub item: ItemIdx,
    /// Seconds since the Unix epoch, UTC.
    pub time: i64,
    pub quantity: f32,
    /// Unit price; `NaN` when the input has no price column.
    pub price: f32,
}

const _: () = assert!(std::mem::size_of::<Purchase>() == 28);

/// A purchase history with its id maps. Purchases keep input order.
#[derive(Debug, Clone, Default)]
pub struct PurchaseLog {
    pub customers: IdMap,
    pub items: IdMap,
    pub orders: IdMap,
    pub purchases: Vec<Purchase>,
}

impl PurchaseLog {
    /// Earliest and latest purchase time, or `None` for an empty log.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mut it = self.purchases.iter().map(|p| p.time);
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t))))
    }

    /// Appends a purchase given by external ids (used by tests and generators).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        order: &str,
        customer: &str,
        item: &str,
        time: i64,
        quantity: f32,
        price: f32,
    ) {
        let order = OrderIdx(self.orders.get_or_insert(order));
        let customer = CustomerIdx(self.customers.get_or_insert(customer));
        let item = ItemIdx(self.items.get_or_insert(item));
        self.purchases.push(Purchase {
            order,
            customer,
            item,
            time,
            quantity,
            price,
        });
    }

    /// Splits at `cutoff` (seconds since epoch): purchases strictly before go to
    /// the first log, the rest to the second. Both keep the full id maps, so
    /// indices mean the same thing on both sides.
    pub fn split_at(&self, cutoff: i64) -> (PurchaseLog, PurchaseLog) {
        let (before, after): (Vec<Purchase>, Vec<Purchase>) =
            self.purchases.iter().partition(|p| p.time < cutoff);
        let with = |purchases| PurchaseLog {
            customers: self.customers.clone(),
            items: self.items.clone(),
            orders: self.orders.clone(),
            purchases,
        };
        (with(before), with(after))
    }

    /// The same purchases with id maps that hold only the customers, items
    /// and orders they name, in the order of their indices here; and, for
    /// each new item index, the item's index in `self`.
    ///
    /// The part of a growing history before some time, compacted, is indexed
    /// exactly as the history was when it ended there (ids are numbered in
    /// first-seen order), so a model trained on it is the model trained then.
    pub fn compacted(&self) -> (PurchaseLog, Vec<u32>) {
        // New index of every old one that is used (u32::MAX: unused).
        fn renumber(len: usize, used: impl Iterator<Item = u32>) -> Vec<u32> {
            let mut new = vec![u32::MAX; len];
            for i in used {
                new[i as usize] = 0;
            }
            for (next, n) in new.iter_mut().filter(|n| **n == 0).enumerate() {
                *n = next as u32;
            }
            new
        }
        fn kept(map: &IdMap, new: &[u32]) -> IdMap {
            IdMap::from_ids(
                map.ids()
                    .zip(new)
                    .filter(|&(_, &n)| n != u32::MAX)
                    .map(|(id, _)| id),
            )
        }
        let ps = &self.purchases;
        let customers = renumber(self.customers.len(), ps.iter().map(|p| p.customer.0));
        let items = renumber(self.items.len(), ps.iter().map(|p| p.item.0));
        let orders = renumber(self.orders.len(), ps.iter().map(|p| p.order.0));
        let log = PurchaseLog {
            customers: kept(&self.customers, &customers),
            items: kept(&self.items, &items),
            orders: kept(&self.orders, &orders),
            purchases: ps
                .iter()
                .map(|p| Purchase {
                    order: OrderIdx(orders[p.order.idx()]),
                    customer: CustomerIdx(customers[p.customer.idx()]),
                    item: ItemIdx(items[p.item.idx()]),
                    ..*p
                })
                .collect(),
        };
        let origin = (0..self.items.len() as u32)
            .filter(|&i| items[i as usize] != u32::MAX)
            .collect();
        (log, origin)
    }
}

/// The lines of a log grouped by customer, as positions in
/// [`PurchaseLog::purchases`] (4 bytes a line): for passes that work one
/// customer at a time without sorting or copying the whole log.
#[derive(Debug, Clone, Default)]
pub struct ByCustomer {
    /// Customer `c`'s lines are `positions[starts[c]..starts[c + 1]]`.
    starts: Vec<usize>,
    positions: Vec<u32>,
}

impl ByCustomer {
    /// Indexes the lines of `log` that `keep` accepts, in log order within
    /// each customer.
    pub fn new(log: &PurchaseLog, keep: impl Fn(&Purchase) -> bool) -> Self {
        let n = log.customers.len();
        let kept = || log.purchases.iter().enumerate().filter(|(_, p)| keep(p));
        let mut starts = vec![0usize; n + 1];
        for (_, p) in kept() {
            starts[p.customer.idx() + 1] += 1;
        }
        for c in 0..n {
            starts[c + 1] += starts[c];
        }
        let mut next = starts.clone();
        let mut positions = vec![0u32; starts[n]];
        for (k, p) in kept() {
            let slot = &mut next[p.customer.idx()];
            positions[*slot] = u32::try_from(k).expect("purchase lines are indexed by u32");
            *slot += 1;
        }
        ByCustomer { starts, positions }
    }

    /// Number of customers (of the log's id map).
    pub fn n_customers(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Customer `c`'s indexed lines of `log` (the log this was built from).
    pub fn lines<'a>(
        &'a self,
        log: &'a PurchaseLog,
        c: u32,
    ) -> impl ExactSizeIterator<Item = &'a Purchase> + 'a {
        let c = c as usize;
        self.positions[self.starts[c]..self.starts[c + 1]]
            .iter()
            .map(|&k| &log.purchases[k as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_id_maps() {
        let mut log = PurchaseLog::default();
        log.push("o1", "c1", "i1", 10, 1.0, 2.0);
        log.push("o2", "c2", "i2", 20, 1.0, 2.0);
        let (a, b) = log.split_at(15);
        assert_eq!(a.purchases.len(), 1);
        assert_eq!(b.purchases.len(), 1);
        assert_eq!(b.items.len(), 2);
        assert_eq!(log.time_range(), Some((10, 20)));
    }

    #[test]
    fn the_compacted_past_is_indexed_as_the_history_was_then() {
        let rows = [
            ("o1", "c1", "i1", 10),
            ("o2", "c2", "i2", 20),
            ("o3", "c3", "i3", 30),
            ("o4", "c2", "i4", 40),
            ("o5", "c1", "i3", 50),
        ];
        let mut full = PurchaseLog::default();
        let mut then = PurchaseLog::default();
        for (n, &(o, c, i, t)) in rows.iter().enumerate() {
            if n == 2 {
                // A customer and an item whose only purchase is later,
                // numbered between the earlier ones (a file not in time order).
                full.push("o0", "c0", "i0", 60, 1.0, 2.0);
            }
            full.push(o, c, i, t, 1.0, 2.0);
            if t < 35 {
                then.push(o, c, i, t, 1.0, 2.0);
            }
        }
        let (past, _) = full.split_at(35);
        assert_eq!(past.items.len(), 5, "split keeps every id");
        let (compact, origin) = past.compacted();
        assert_eq!(compact.customers, then.customers);
        assert_eq!(compact.items, then.items);
        assert_eq!(compact.orders, then.orders);
        assert_eq!(compact.purchases, then.purchases);
        assert_eq!(origin, vec![0, 1, 3], "i1, i2, i3 (i0 is index 2)");
        // Unused ids are dropped and the rest close up, keeping their order.
        let (later, origin) = full.split_at(25).1.compacted();
        assert_eq!(later.items.ids().collect::<Vec<_>>(), ["i0", "i3", "i4"]);
        assert_eq!(origin, vec![2, 3, 4]);
        // In their order in `full`, not in the order the later part names them.
        assert_eq!(
            later.customers.ids().collect::<Vec<_>>(),
            ["c1", "c2", "c0", "c3"]
        );
        // The purchases keep their order: o0 (c0, i0), then o3 (c3, i3).
        assert_eq!(later.purchases[0].item, ItemIdx(0));
        assert_eq!(later.purchases[0].customer, CustomerIdx(2));
        assert_eq!(later.purchases[1].item, ItemIdx(1));
        assert_eq!(later.purchases[1].customer, CustomerIdx(3));
    }

    #[test]
    fn lines_by_customer_keep_log_order() {
        let mut log = PurchaseLog::default();
        log.push("o1", "a", "x", 10, 1.0, 1.0);
        log.push("o2", "b", "x", 11, 1.0, 1.0);
        log.push("o3", "a", "y", 12, -1.0, 1.0);
        log.push("o4", "a", "z", 13, 2.0, 1.0);
        let index = ByCustomer::new(&log, |p| p.quantity > 0.0);
        assert_eq!(index.n_customers(), 2);
        let times = |c| index.lines(&log, c).map(|p| p.time).collect::<Vec<_>>();
        assert_eq!(times(0), [10, 13]);
        assert_eq!(times(1), [11]);
        let all = ByCustomer::new(&log, |_| true);
        assert_eq!(all.lines(&log, 0).len(), 3);
    }
}
