//! Every customer's orders: one row per order, the customer's purchase
//! history as the dashboard's timeline and `GET /v1/customers/{id}/orders`
//! show it. Stored in the artifact as `customer_orders.bin` and read in
//! place from the mapped file.
//!
//! An **order** is, as in the customer profiles ([`super::summary`]), a
//! distinct order id of the customer with at least one *positive-value*
//! line (`quantity > 0` and a price that is positive or unknown), at or
//! before the reference time. Returns, free lines and negative adjustments
//! are never orders, and add nothing to an order's figures. So a customer's
//! number of orders here is their profile's `orders`. Per order:
//!
//! * `time`: its earliest positive-value line (seconds since the epoch);
//! * `lines`: its positive-value lines;
//! * `units`: the sum of their quantities;
//! * `value`: the sum of their `quantity · price` (gross, like an occasion's
//!   value in [`super::summary`]); unknown (`NaN` in the file, `None` here)
//!   when one of them has no price.
//!
//! A customer's orders are sorted by time (then by their order's index in
//! the log, so that the order of equal times is fixed).
//!
//! ```text
//! header   magic "ENCORD\0\x01", u64 customers, u64 orders, u64 zero
//! offsets  u64 × (customers + 1): customer c's orders are rows
//!          offsets[c] .. offsets[c + 1]
//! times    i64 × orders
//! values   f32 × orders
//! units    f32 × orders
//! lines    u32 × orders
//! ```
//!
//! The rows are stored a column at a time (CSR offsets, then one array per
//! field) rather than as records: every array is aligned for its type after
//! the 32-byte header, so each is viewed in place
//! ([`encore_data::mapped::Buf`]) like the CSR files.
//!
//! # Implementation notes
//! [`OrderTable::build`] reads the log a block of customers at a time: one
//! pass counts each customer's positive-value lines, then each block of
//! customers holding at most [`BLOCK_LINES`] such lines gets a pass over
//! the log that collects its lines (24 bytes each), sorts them by
//! customer and order, and appends the block's orders to the table. The
//! memory beside the table itself is one counter per customer and one
//! block's lines, never a copy or an index of the whole log. The columns
//! go to temporary files as they are made (under the system's temporary
//! directory, `TMPDIR`: about 20 bytes an order), are joined into one file
//! in the layout above, and that file is mapped: a fitted table holds no
//! column on the heap, and saving it copies the file through a small buffer
//! ([`OrderTable::write_to`]), so a large fit's peak memory does not grow
//! by the table.
//! [`OrderTable::open`] checks the header against the file's length and
//! every row once (offsets from 0 to the number of orders, never
//! decreasing; times sorted within a customer; at least one line and a
//! positive, finite number of units per order; a value that is unknown or
//! finite and not negative), so reading a row later cannot fail.

use super::summary::is_positive_value;
use encore_data::PurchaseLog;
use encore_data::mapped::{Buf, Mapping};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"ENCORD\0\x01";
const HEADER: usize = 32;
/// Bytes of one order over the four columns.
const ROW_BYTES: usize = 8 + 4 + 4 + 4;
/// Positive-value lines a block of [`OrderTable::build`] collects at most
/// (a customer with more is a block alone).
pub const BLOCK_LINES: usize = 1 << 21;

/// The 32-byte header of a table of `customers` customers and `orders` orders.
fn write_header(w: &mut impl Write, customers: usize, orders: usize) -> std::io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&(customers as u64).to_le_bytes())?;
    w.write_all(&(orders as u64).to_le_bytes())?;
    w.write_all(&0u64.to_le_bytes())
}

/// One order of a customer (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    /// Seconds since the epoch.
    pub time: i64,
    pub lines: u32,
    pub units: f32,
    /// `None` when a line of the order has no price.
    pub value: Option<f32>,
}

/// Every customer's orders, built by a fit or read in place from a loaded
/// model's `customer_orders.bin`.
#[derive(Clone, Default)]
pub struct OrderTable {
    offsets: Buf<usize>,
    times: Buf<i64>,
    values: Buf<f32>,
    units: Buf<f32>,
    lines: Buf<u32>,
    /// For a table built by a fit: the (already unlinked) file it is mapped
    /// from, which [`OrderTable::write_to`] copies.
    spilled: Option<Arc<File>>,
}

impl std::fmt::Debug for OrderTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OrderTable({} customers, {} orders)",
            self.len(),
            self.total()
        )
    }
}

impl PartialEq for OrderTable {
    /// Same rows; unknown values (`NaN`) are equal to each other.
    fn eq(&self, other: &Self) -> bool {
        fn bits(v: &[f32]) -> impl Iterator<Item = u32> + '_ {
            v.iter().map(|x| x.to_bits())
        }
        *self.offsets == *other.offsets
            && *self.times == *other.times
            && *self.lines == *other.lines
            && bits(&self.units).eq(bits(&other.units))
            && bits(&self.values).eq(bits(&other.values))
    }
}

/// One positive-value line of a block, as [`OrderTable::build`] collects it.
#[derive(Clone, Copy)]
struct Line {
    customer: u32,
    order: u32,
    time: i64,
    quantity: f32,
    price: f32,
}

impl OrderTable {
    /// A table of `customers` customers without any order.
    pub fn empty(customers: usize) -> OrderTable {
        OrderTable {
            offsets: vec![0; customers + 1].into(),
            ..OrderTable::default()
        }
    }

    /// The orders of every customer of `log` at or before `reference`
    /// (seconds since the epoch), built a block of customers at a time
    /// (module docs).
    ///
    /// Fails only if the temporary files cannot be written (a full or
    /// missing temporary directory).
    pub fn build(log: &PurchaseLog, reference: i64) -> std::io::Result<OrderTable> {
        Self::build_in_blocks(log, reference, BLOCK_LINES)
    }

    fn build_in_blocks(
        log: &PurchaseLog,
        reference: i64,
        block_lines: usize,
    ) -> std::io::Result<OrderTable> {
        let n = log.customers.len();
        let counted = |p: &encore_data::Purchase| {
            p.time <= reference && is_positive_value(p.quantity, p.price)
        };
        let mut per_customer = vec![0u32; n];
        for p in log.purchases.iter().filter(|&p| counted(p)) {
            per_customer[p.customer.idx()] += 1;
        }
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        // times, values, units, lines: each column to its own temporary file.
        let mut columns: [BufWriter<File>; 4] = [
            BufWriter::new(tempfile::tempfile()?),
            BufWriter::new(tempfile::tempfile()?),
            BufWriter::new(tempfile::tempfile()?),
            BufWriter::new(tempfile::tempfile()?),
        ];
        let mut total = 0usize;
        let mut block: Vec<Line> = Vec::new();
        let mut start = 0usize;
        while start < n {
            // Customers start..end, at most `block_lines` lines (at least one customer).
            let mut end = start + 1;
            let mut held = per_customer[start] as usize;
            while end < n && held + per_customer[end] as usize <= block_lines {
                held += per_customer[end] as usize;
                end += 1;
            }
            block.clear();
            block.reserve(held);
            if held > 0 {
                let (lo, hi) = (start as u32, end as u32);
                block.extend(
                    log.purchases
                        .iter()
                        .filter(|&p| (lo..hi).contains(&p.customer.0) && counted(p))
                        .map(|p| Line {
                            customer: p.customer.0,
                            order: p.order.0,
                            time: p.time,
                            quantity: p.quantity,
                            price: p.price,
                        }),
                );
            }
            block.sort_unstable_by_key(|l| (l.customer, l.order, l.time));
            let mut rest = &block[..];
            for c in start..end {
                let k = rest.partition_point(|l| l.customer as usize == c);
                let (mine, after) = rest.split_at(k);
                rest = after;
                // (time, order, lines, units, value or NaN), then sorted by time.
                let mut orders: Vec<(i64, u32, u32, f64, f64)> = Vec::new();
                for group in mine.chunk_by(|a, b| a.order == b.order) {
                    let mut value = 0.0f64;
                    let mut units = 0.0f64;
                    for l in group {
                        units += f64::from(l.quantity);
                        value += f64::from(l.quantity) * f64::from(l.price);
                    }
                    // Sorted by time within the order: the first is the earliest.
                    orders.push((
                        group[0].time,
                        group[0].order,
                        group.len() as u32,
                        units,
                        value,
                    ));
                }
                orders.sort_unstable_by_key(|o| (o.0, o.1));
                for (time, _, n_lines, n_units, value) in orders {
                    let [times, values, units, lines] = &mut columns;
                    times.write_all(&time.to_le_bytes())?;
                    // A line without a price makes the sum NaN: unknown.
                    values.write_all(&(value as f32).to_le_bytes())?;
                    units.write_all(&(n_units as f32).to_le_bytes())?;
                    lines.write_all(&n_lines.to_le_bytes())?;
                    total += 1;
                }
                offsets.push(total);
            }
            start = end;
        }
        // One file in the artifact's layout, mapped; unlinked once open.
        let mut joined = tempfile::NamedTempFile::new()?;
        {
            let mut w = BufWriter::new(joined.as_file_mut());
            write_header(&mut w, n, total)?;
            for &o in &offsets {
                w.write_all(&(o as u64).to_le_bytes())?;
            }
            drop(offsets);
            for column in columns {
                let mut file = column.into_inner().map_err(|e| e.into_error())?;
                file.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut file, &mut w)?;
            }
            w.flush()?;
        }
        let map = Mapping::open(joined.path())?;
        let file = joined.reopen()?;
        drop(joined);
        let mut table = Self::view(map).map_err(std::io::Error::other)?;
        table.spilled = Some(Arc::new(file));
        Ok(table)
    }

    /// Customers the table has a row range for.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Orders of every customer.
    pub fn total(&self) -> usize {
        self.times.len()
    }

    /// Orders of customer index `c` (0 for an index out of range).
    pub fn count(&self, c: u32) -> usize {
        self.range(c).len()
    }

    fn range(&self, c: u32) -> std::ops::Range<usize> {
        let c = c as usize;
        if c >= self.len() {
            return 0..0;
        }
        self.offsets[c]..self.offsets[c + 1]
    }

    fn order_at(&self, row: usize) -> Order {
        let value = self.values[row];
        Order {
            time: self.times[row],
            lines: self.lines[row],
            units: self.units[row],
            value: (!value.is_nan()).then_some(value),
        }
    }

    /// Customer index `c`'s orders, oldest first.
    pub fn orders(
        &self,
        c: u32,
    ) -> impl DoubleEndedIterator<Item = Order> + ExactSizeIterator + '_ {
        self.range(c).map(|row| self.order_at(row))
    }

    /// Whether the columns are read in place from a mapped file.
    pub fn is_mapped(&self) -> bool {
        self.times.is_mapped() || self.offsets.is_mapped()
    }

    /// Writes the table in the layout of the module docs: a fitted table by
    /// copying its file through a small buffer (the mapped columns are not
    /// read, so they cost no memory), otherwise a column at a time.
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        if let Some(file) = &self.spilled {
            // Positional reads: clones of the table share the file.
            let mut buf = vec![0u8; 1 << 16];
            let mut at = 0u64;
            loop {
                let n = file.read_at(&mut buf, at)?;
                if n == 0 {
                    return Ok(());
                }
                w.write_all(&buf[..n])?;
                at += n as u64;
            }
        }
        write_header(w, self.len(), self.total())?;
        for &o in self.offsets.iter() {
            w.write_all(&(o as u64).to_le_bytes())?;
        }
        for &t in self.times.iter() {
            w.write_all(&t.to_le_bytes())?;
        }
        for &v in self.values.iter() {
            w.write_all(&v.to_le_bytes())?;
        }
        for &u in self.units.iter() {
            w.write_all(&u.to_le_bytes())?;
        }
        for &l in self.lines.iter() {
            w.write_all(&l.to_le_bytes())?;
        }
        Ok(())
    }

    /// Views the columns of a mapped file in place after checking its header
    /// against its length; the rows are not read.
    fn view(map: Arc<Mapping>) -> Result<OrderTable, String> {
        let b = map.bytes();
        if b.len() < HEADER || &b[..8] != MAGIC {
            return Err("not an orders file (bad magic bytes or too short)".into());
        }
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let (customers, orders, zero) = (u64_at(8), u64_at(16), u64_at(24));
        if zero != 0 {
            return Err(format!("header field at byte 24 is {zero}, not 0"));
        }
        let need = HEADER as u128
            + (u128::from(customers) + 1) * 8
            + u128::from(orders) * ROW_BYTES as u128;
        if need != b.len() as u128 {
            return Err(format!(
                "{customers} customers and {orders} orders need {need} bytes, the file has {}",
                b.len()
            ));
        }
        // Within the file's length, so within usize.
        let (customers, orders) = (customers as usize, orders as usize);
        let at_times = HEADER + (customers + 1) * 8;
        let at_values = at_times + orders * 8;
        let at_units = at_values + orders * 4;
        let at_lines = at_units + orders * 4;
        let view = || "array out of the file".to_string();
        let table = OrderTable {
            offsets: Buf::view(&map, HEADER, customers + 1).ok_or_else(view)?,
            times: Buf::view(&map, at_times, orders).ok_or_else(view)?,
            values: Buf::view(&map, at_values, orders).ok_or_else(view)?,
            units: Buf::view(&map, at_units, orders).ok_or_else(view)?,
            lines: Buf::view(&map, at_lines, orders).ok_or_else(view)?,
            spilled: None,
        };
        Ok(table)
    }

    /// Checks the mapped file (see the module docs) and views its columns
    /// in place; the error says what is wrong, for the caller to name the file.
    pub fn open(map: Arc<Mapping>) -> Result<OrderTable, String> {
        let table = Self::view(map)?;
        let (customers, orders) = (table.len(), table.total());
        let offsets = &*table.offsets;
        if offsets[0] != 0 || offsets[customers] != orders {
            return Err(format!(
                "the offsets run from {} to {}, not from 0 to {orders}",
                offsets[0], offsets[customers]
            ));
        }
        for c in 0..customers {
            let (from, to) = (offsets[c], offsets[c + 1]);
            if to < from || to > orders {
                return Err(format!("customer {c}: offsets {from}..{to} out of order"));
            }
            let bad = |what: &str| Err(format!("customer {c}: {what}"));
            if table.times[from..to].windows(2).any(|w| w[1] < w[0]) {
                return bad("orders not sorted by time");
            }
            for row in from..to {
                if table.lines[row] == 0 {
                    return bad("an order without a line");
                }
                let u = table.units[row];
                if !(u.is_finite() && u > 0.0) {
                    return bad("an order whose units are not a positive number");
                }
                let v = table.values[row];
                if !(v.is_nan() || (v.is_finite() && v >= 0.0)) {
                    return bad("an order whose value is negative or infinite");
                }
            }
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::book::CustomerConfig;

    const DAY: i64 = 86_400;

    fn log() -> PurchaseLog {
        let mut log = PurchaseLog::default();
        // a: two lines in o1 (one bought later the same day), a return in
        // o2 (not an order), a free line alone in o3 (not an order), o4.
        log.push("o1", "a", "tea", 10 * DAY + 50, 2.0, 3.0);
        log.push("o1", "a", "mug", 10 * DAY, 1.0, 8.0);
        log.push("o2", "a", "tea", 12 * DAY, -1.0, 3.0);
        log.push("o3", "a", "bag", 13 * DAY, 1.0, 0.0);
        log.push("o4", "b", "tea", 5 * DAY, 1.0, 3.0);
        log.push("o5", "a", "tea", 11 * DAY, 3.0, 3.0);
        // b: o6 is before o4 in time, after it in the log; one line unpriced.
        log.push("o6", "b", "mug", 2 * DAY, 1.0, f32::NAN);
        log.push("o6", "b", "tea", 2 * DAY, 1.0, 3.0);
        // c: only a return.
        log.push("o7", "c", "tea", 3 * DAY, -2.0, 3.0);
        log
    }

    #[test]
    fn orders_are_the_positive_value_orders_sorted_by_time() {
        let log = log();
        let t = OrderTable::build(&log, 100 * DAY).unwrap();
        assert_eq!((t.len(), t.total()), (3, 4));
        let a: Vec<Order> = t.orders(0).collect();
        assert_eq!(
            a,
            [
                Order {
                    time: 10 * DAY,
                    lines: 2,
                    units: 3.0,
                    value: Some(14.0)
                },
                Order {
                    time: 11 * DAY,
                    lines: 1,
                    units: 3.0,
                    value: Some(9.0)
                },
            ]
        );
        let b: Vec<Order> = t.orders(1).collect();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].time, b[0].lines, b[0].value), (2 * DAY, 2, None));
        assert_eq!(b[1].time, 5 * DAY);
        assert_eq!(t.count(2), 0);
        assert_eq!(t.count(99), 0);
        // Lines after the reference are left out.
        assert_eq!(OrderTable::build(&log, 10 * DAY + 10).unwrap().count(0), 1);
    }

    /// The number of orders is the profile's, for every customer.
    #[test]
    fn counts_equal_the_profiles_orders() {
        let log = encore_data::synth::generate(&encore_data::synth::SynthParams {
            customers: 200,
            items: 40,
            purchases: 3_000,
            ..Default::default()
        });
        let reference = log.time_range().unwrap().1;
        let book = CustomerConfig::default().build(&log, reference).unwrap();
        let t = OrderTable::build(&log, reference).unwrap();
        let mut profiled = 0;
        for c in 0..log.customers.len() as u32 {
            let expected = book.profile(c).map_or(0, |p| p.orders as usize);
            assert_eq!(t.count(c), expected, "customer {c}");
            profiled += usize::from(expected > 0);
        }
        assert!(profiled > 150, "{profiled}");
    }

    /// Small blocks give the table one block gives.
    #[test]
    fn the_blocks_do_not_change_the_table() {
        let log = encore_data::synth::generate(&encore_data::synth::SynthParams {
            customers: 120,
            items: 30,
            purchases: 2_000,
            ..Default::default()
        });
        let whole = OrderTable::build_in_blocks(&log, i64::MAX, usize::MAX).unwrap();
        assert!(whole.total() > 300);
        for block in [1, 7, 100] {
            assert_eq!(
                OrderTable::build_in_blocks(&log, i64::MAX, block).unwrap(),
                whole
            );
        }
    }

    #[test]
    fn a_written_table_reads_back_in_place() {
        let t = OrderTable::build(&log(), 100 * DAY).unwrap();
        // A fitted table is mapped from its temporary file, not on the heap.
        assert!(t.is_mapped() && t.spilled.is_some());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("customer_orders.bin");
        let mut bytes = Vec::new();
        t.write_to(&mut bytes).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let back = OrderTable::open(Mapping::open(&path).unwrap()).unwrap();
        assert!(back.is_mapped() && back.spilled.is_none());
        assert_eq!(back, t);
        // Written a column at a time, the same bytes as the copied file.
        let mut again = Vec::new();
        back.write_to(&mut again).unwrap();
        assert_eq!(again, bytes);
        assert_eq!(back.orders(1).next().unwrap().value, None);
        let empty = OrderTable::empty(4);
        let mut bytes = Vec::new();
        empty.write_to(&mut bytes).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            OrderTable::open(Mapping::open(&path).unwrap()).unwrap(),
            empty
        );
    }
}
