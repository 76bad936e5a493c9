//! The in-memory purchase history every model trains on.

use crate::ids::{CustomerIdx, IdMap, ItemIdx, OrderIdx};

/// One purchase line: a quantity of one item in one order.
///
/// `quantity` is negative for returns and cancellations; see
/// [`crate::matrix::InteractionMatrix`] for how those are netted out so that they
/// never become positive preference.
#[derive(Debug, Clone, Copy, PartialEq)]
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
}
