//! Replenishment cycles and the "buy again" list: which of the things a
//! customer bought before are they about to need again?
//!
//! Consumables run out at a rate: a customer who buys a 500 g bag of coffee
//! every three weeks will, by the end of the third week, be more likely to buy
//! coffee than anything else they ever bought. This module learns each item's
//! *cycle* (how long one unit lasts) from every customer who re-bought it,
//! shrinks thin evidence towards the item's category and the whole catalogue,
//! and scores each (customer, item) pair by the probability that the customer
//! buys the item again soon.
//!
//! # Model
//! Only lines with `time <= reference` are read.
//!
//! **Occasions.** For a (customer `c`, item `i`) pair a purchase occasion is a
//! distinct UTC day (default, [`OccasionRule::DistinctDays`]) or a distinct
//! order ([`OccasionRule::DistinctOrders`]) with at least one line of positive
//! quantity (any price: a free unit still has to be used up). Returns and
//! cancellations (negative quantities) never create an occasion; they only
//! enter the pair's net quantity, and a pair whose net quantity is not
//! positive (everything was returned) is not on the buy-again list. An
//! occasion's quantity `q` is the sum of its positive quantities; its time is
//! the start of the day (distinct days) or the order's earliest line.
//!
//! **Cycles.** Consecutive occasions `t_{j-1} < t_j` of one pair give one
//! repeat interval, normalised by the quantity bought at the earlier one
//! (two units last twice as long when the elasticity `e_q` is 1):
//!
//! ```text
//! u_j = ln( max(t_j − t_{j−1}, 1 h) in days  /  q_{j−1}^{e_q} )      (log days per unit)
//! ```
//!
//! Per item, over the `n_i` intervals of all its customers: the location
//! `m_i = median(u)` and the spread `s_i = 1.4826 · MAD(u)` (a robust standard
//! deviation of the log cycle). The same statistics over every interval of a
//! category give `(m_c, s_c, n_c)` and over all intervals `(m_g, s_g)`.
//! Shrinkage, with `k` = [`ReplenishmentParams::cycle_prior_strength`]:
//!
//! ```text
//! w_c = n_c / (n_c + k)        m'_c = w_c m_c + (1 − w_c) m_g     (same for s)
//! w_i = n_i / (n_i + k)        m'_i = w_i m_i + (1 − w_i) m'_c    (same for s)
//! days_per_unit_i = exp(m'_i)  σ_i = max(s'_i, min_spread)
//! ```
//!
//! Items without a category (or all items, when no categories are given)
//! shrink straight to the global prior.
//!
//! **Repeat probability.** `B_i` customers bought item `i`, `R_i` of them on
//! two or more occasions. With `a` = [`ReplenishmentParams::repeat_prior_strength`]
//! pseudo-buyers (a beta prior with that total strength):
//!
//! ```text
//! p_g = ΣR / ΣB,   p'_c = (R_c + a p_g) / (B_c + a),   p_i = (R_i + a p'_c) / (B_i + a)
//! ```
//!
//! **Per pair.** The customer bought the item on `o` occasions, the last at
//! `t_L` with quantity `q_L`, so they showed `g = o − 1` repeat intervals with
//! median log cycle `ū` (if `g > 0`). With `k_o` =
//! [`ReplenishmentParams::own_gap_strength`] and `s` =
//! [`ReplenishmentParams::own_repeat_strength`]:
//!
//! ```text
//! w_o = g / (g + k_o)          μ = w_o ū + (1 − w_o) m'_i
//! I   = clamp(exp(μ) · q_L^{e_q}, min_interval_days, max_interval_days)
//! due date = t_L + I
//! p   = (s p_i + g) / (s + g)              (the item prior updated by the g repeats)
//! ```
//!
//! **Due score.** The pair is a two-part mixture: with probability `p` the
//! customer re-buys the item after a log-normal interval `T` with median `I`
//! and log spread `σ_i`, otherwise never. Having seen no purchase in the
//! `e = reference − t_L` days since, the probability of a purchase within the
//! next `H` = [`ReplenishmentParams::horizon_days`] days is
//!
//! ```text
//! S(t) = P(T > t) = 1 − Φ((ln t − ln I) / σ_i)
//! due_score = p · (S(e) − S(e + H)) / ((1 − p) + p · S(e))
//! ```
//!
//! It rises as the due date comes into the horizon, peaks around it, and
//! decays when the item is many cycles overdue: the longer the silence, the
//! more likely the customer stopped buying it (the denominator is the
//! posterior weight of "still a repeat buyer").
//!
//! The buy-again list ([`Replenishment::due`]) ranks a customer's items by
//! due score, ties broken by more occasions, then the more recent last
//! purchase, then the lower item index.
//!
//! # Defaults
//! [`ReplenishmentParams::default`] was tuned on UCI Online Retail with a
//! validation split *before* the test period (fit on purchases before
//! 2011-07-24, Recall@10 of the buy-again list on the days up to
//! 2011-10-01, where the test period starts), by coordinate ascent:
//! `cargo run --release -p encore-model --example replenishment_tuning`.
//! The validation figures are in `docs/models.md` ("Replenishment"). The
//! defaults, and why:
//!
//! | setting | value | |
//! |---|---|---|
//! | `cycle_prior_strength` `k` | 100 | item cycles are noisy: lean on the category |
//! | `repeat_prior_strength` `a` | 2 | |
//! | `own_gap_strength` `k_o` | 1 | one own interval already weighs half |
//! | `own_repeat_strength` `s` | 5 | |
//! | `quantity_elasticity` `e_q` | 0.75 | bulk buys last longer, less than proportionally |
//! | `min_interval_days`, `max_interval_days` | 1, 180 | |
//! | `min_spread` | 2.0 | timing is a weak signal in this data: wide hazards |
//! | `horizon_days` `H` | 60 | about the length of the evaluation window |
//! | `occasion` | distinct days | |
//!
//! Other catalogues (groceries, pet food) have sharper cycles and may prefer
//! a smaller `min_spread` and `H`.
//!
//! # Implementation notes
//! Per-pair data lives in flat arrays indexed CSR-style by customer
//! (`offsets[c]..offsets[c + 1]`), items ascending within a customer; a pair
//! takes 20 bytes (item, age of the last occasion in seconds, last quantity,
//! occasions, own log cycle). Fitting sorts the lines once by
//! `(customer, item, time, line)`, processes customers in parallel (rayon)
//! and collects in customer order, and sorts the intervals with a total order,
//! so the same input always gives the same model. Scores are computed at
//! query time from the stored figures. [`Replenishment::encode`] writes a
//! little-endian binary artifact ending in a CRC-32;
//! [`Replenishment::decode`] checks the checksum, every length, index and
//! value before building anything.

use crate::customer::summary::{DAY_SECS, OccasionRule, median};
use crate::le::{Crc32Writer, put_le};
use crate::setting::{InvalidSetting, non_negative, positive};
use encore_data::PurchaseLog;
use encore_data::mapped::{Buf, Element, Mapping};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

/// Shortest interval between two occasions, in days (one hour), so that two
/// orders placed at the same second do not give `ln 0`.
const MIN_GAP_DAYS: f64 = 1.0 / 24.0;

/// Log spread of the global prior when the data hold no repeat interval.
const FALLBACK_SPREAD: f64 = 1.0;

/// Magic bytes opening an encoded model.
const MAGIC: &[u8; 8] = b"ENCRPLN\0";

/// Version of the binary encoding. 2: the header is padded to 120 bytes, so
/// that the offsets and pair arrays are 4-byte aligned and read in place
/// from a mapped file ([`Replenishment::from_mapped`]).
const FORMAT_VERSION: u32 = 2;

/// Settings of the replenishment model (see the module docs for every symbol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplenishmentParams {
    /// What makes one purchase occasion of a (customer, item) pair.
    pub occasion: OccasionRule,
    /// `k`: pseudo-intervals of the category / global prior in the shrinkage
    /// of an item's (and a category's) log cycle and spread.
    pub cycle_prior_strength: f64,
    /// `a`: pseudo-buyers of the beta prior of the repeat probability.
    pub repeat_prior_strength: f64,
    /// `k_o`: pseudo-intervals of the item cycle when blending it with a
    /// customer's own median gap.
    pub own_gap_strength: f64,
    /// `s`: strength of the item's repeat probability as the prior of one
    /// customer's, updated by that customer's repeats.
    pub own_repeat_strength: f64,
    /// `e_q`: how the interval scales with the quantity bought (1: two units
    /// last twice as long; 0: quantity ignored).
    pub quantity_elasticity: f64,
    /// Lower bound of an expected interval, in days.
    pub min_interval_days: f64,
    /// Upper bound of an expected interval, in days.
    pub max_interval_days: f64,
    /// Floor of the log spread `σ` of an item's interval distribution.
    pub min_spread: f64,
    /// `H`: the due score is the probability of a purchase within this many days.
    pub horizon_days: f64,
    /// Days per unit of the global prior when the data hold no repeat at all.
    pub default_days_per_unit: f64,
}

impl Default for ReplenishmentParams {
    /// The defaults tuned on the validation split described in the module docs
    /// (see "Defaults" there for the values and why).
    fn default() -> Self {
        ReplenishmentParams {
            occasion: OccasionRule::DistinctDays,
            cycle_prior_strength: 100.0,
            repeat_prior_strength: 2.0,
            own_gap_strength: 1.0,
            own_repeat_strength: 5.0,
            quantity_elasticity: 0.75,
            min_interval_days: 1.0,
            max_interval_days: 180.0,
            min_spread: 2.0,
            horizon_days: 60.0,
            default_days_per_unit: 30.0,
        }
    }
}

/// Why a replenishment model cannot be fitted, or an artifact not decoded.
#[derive(Debug, thiserror::Error)]
pub enum ReplenishmentError {
    /// A setting is out of range.
    #[error("invalid replenishment parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The category slice does not match the log's items.
    #[error(
        "item_category has {got} entries, the log has {expected} items (pass an empty slice for none)"
    )]
    CategoryLength { expected: usize, got: usize },
    /// A purchase refers to a customer or item outside the log's id maps.
    #[error("purchase line {line} refers to {what} index {index}, but the log has {len}")]
    IndexOutOfRange {
        line: usize,
        what: &'static str,
        index: u32,
        len: usize,
    },
    /// More pairs or customers than the encoding can index.
    #[error("too many {what} ({count}) for the replenishment model")]
    TooLarge { what: &'static str, count: usize },
    /// The bytes are not a replenishment model (wrong magic, version, checksum…).
    #[error("not a valid replenishment artifact: {reason}")]
    Corrupt { reason: String },
}

crate::setting::invalid_setting_from!(ReplenishmentError);

impl ReplenishmentParams {
    /// Checks every setting: finite non-negative strengths and elasticity,
    /// positive bounds with `min_interval_days <= max_interval_days`, positive
    /// spread floor, horizon and default cycle.
    pub fn check(&self) -> Result<(), ReplenishmentError> {
        non_negative(&[
            ("cycle_prior_strength", self.cycle_prior_strength),
            ("repeat_prior_strength", self.repeat_prior_strength),
            ("own_gap_strength", self.own_gap_strength),
            ("own_repeat_strength", self.own_repeat_strength),
            ("quantity_elasticity", self.quantity_elasticity),
        ])?;
        positive(&[
            ("min_interval_days", self.min_interval_days),
            ("max_interval_days", self.max_interval_days),
            ("min_spread", self.min_spread),
            ("horizon_days", self.horizon_days),
            ("default_days_per_unit", self.default_days_per_unit),
        ])?;
        if self.max_interval_days < self.min_interval_days {
            return Err(InvalidSetting::new(
                "max_interval_days",
                self.max_interval_days,
                "must be >= min_interval_days",
            )
            .into());
        }
        Ok(())
    }

    /// Fits on the purchases of `log` at or before `reference` (unix seconds).
    ///
    /// `item_category` holds each item's category by item index (`None`: no
    /// category); an empty slice means no categories at all.
    pub fn fit(
        &self,
        log: &PurchaseLog,
        item_category: &[Option<String>],
        reference: i64,
    ) -> Result<Replenishment, ReplenishmentError> {
        self.check()?;
        let n_items = log.items.len();
        let n_customers = log.customers.len();
        if !item_category.is_empty() && item_category.len() != n_items {
            return Err(ReplenishmentError::CategoryLength {
                expected: n_items,
                got: item_category.len(),
            });
        }
        if u32::try_from(n_customers).is_err() {
            return Err(ReplenishmentError::TooLarge {
                what: "customers",
                count: n_customers,
            });
        }
        for (line, p) in log.purchases.iter().enumerate() {
            if p.customer.idx() >= n_customers {
                return Err(ReplenishmentError::IndexOutOfRange {
                    line,
                    what: "customer",
                    index: p.customer.0,
                    len: n_customers,
                });
            }
            if p.item.idx() >= n_items {
                return Err(ReplenishmentError::IndexOutOfRange {
                    line,
                    what: "item",
                    index: p.item.0,
                    len: n_items,
                });
            }
        }

        if u32::try_from(log.purchases.len()).is_err() {
            return Err(ReplenishmentError::TooLarge {
                what: "purchase lines",
                count: log.purchases.len(),
            });
        }
        let mut lines: Vec<u32> = (0..log.purchases.len() as u32)
            .filter(|&i| log.purchases[i as usize].time <= reference)
            .collect();
        lines.par_sort_unstable_by_key(|&i| {
            let p = &log.purchases[i as usize];
            (p.customer, p.item, p.time, i)
        });
        let groups: Vec<&[u32]> = lines
            .chunk_by(|&a, &b| {
                log.purchases[a as usize].customer == log.purchases[b as usize].customer
            })
            .collect();

        // Item buyers and repeat buyers; CSR arrays by customer. Customers
        // are worked out a block at a time (in parallel within the block) and
        // appended, so only one block's per-customer vectors exist at once.
        let mut item_buyers = vec![0u32; n_items];
        let mut item_repeat_buyers = vec![0u32; n_items];
        // At most one pair a line: reserved, not touched, beyond what is used.
        let mut pairs = PairArrays::with_capacity(lines.len());
        let mut offsets = vec![0u32; n_customers + 1];
        let mut intervals: Vec<(u32, f64)> = Vec::new();
        let mut next_customer = 0usize;
        for block in groups.chunks(8192) {
            let per_customer: Vec<CustomerPairs> = block
                .par_iter()
                .map(|group| self.customer_pairs(log, group, reference))
                .collect();
            for c in &per_customer {
                for &(item, occasions) in &c.buyers {
                    item_buyers[item as usize] += 1;
                    if occasions >= 2 {
                        item_repeat_buyers[item as usize] += 1;
                    }
                }
                let customer = c.customer as usize;
                while next_customer < customer {
                    offsets[next_customer + 1] = offsets[next_customer];
                    next_customer += 1;
                }
                for p in &c.pairs {
                    pairs.push(p);
                }
                offsets[customer + 1] =
                    u32::try_from(pairs.item.len()).map_err(|_| ReplenishmentError::TooLarge {
                        what: "pairs",
                        count: pairs.item.len(),
                    })?;
                next_customer = customer + 1;
                intervals.extend_from_slice(&c.intervals);
            }
        }
        drop(lines);
        pairs.shrink_to_fit();
        while next_customer < n_customers {
            offsets[next_customer + 1] = offsets[next_customer];
            next_customer += 1;
        }

        // Interval statistics per item, per category, global.
        intervals.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut item_stats: Vec<Option<LogStats>> = vec![None; n_items];
        let item_groups: Vec<&[(u32, f64)]> = intervals.chunk_by(|a, b| a.0 == b.0).collect();
        let computed: Vec<(u32, LogStats)> = item_groups
            .par_iter()
            .map(|g| {
                let values: Vec<f64> = g.iter().map(|v| v.1).collect();
                (g[0].0, LogStats::of_sorted(&values))
            })
            .collect();
        for (item, s) in computed {
            item_stats[item as usize] = Some(s);
        }
        let global = {
            let mut all: Vec<f64> = intervals.iter().map(|v| v.1).collect();
            all.par_sort_unstable_by(f64::total_cmp);
            if all.is_empty() {
                LogStats {
                    n: 0,
                    location: self.default_days_per_unit.ln(),
                    spread: FALLBACK_SPREAD,
                }
            } else {
                LogStats::of_sorted(&all)
            }
        };
        let total_buyers: u64 = item_buyers.iter().map(|&b| u64::from(b)).sum();
        let total_repeaters: u64 = item_repeat_buyers.iter().map(|&b| u64::from(b)).sum();
        let global_p = if total_buyers == 0 {
            0.0
        } else {
            total_repeaters as f64 / total_buyers as f64
        };

        // Category priors (categories numbered in sorted order).
        let mut category_id: BTreeMap<&str, usize> = BTreeMap::new();
        for c in item_category.iter().flatten() {
            let next = category_id.len();
            category_id.entry(c.as_str()).or_insert(next);
        }
        let item_cat: Vec<Option<usize>> = (0..n_items)
            .map(|i| {
                item_category
                    .get(i)
                    .and_then(|c| c.as_deref())
                    .map(|c| category_id[c])
            })
            .collect();
        let n_cats = category_id.len();
        let mut cat_values: Vec<Vec<f64>> = vec![Vec::new(); n_cats];
        let mut cat_buyers = vec![0u64; n_cats];
        let mut cat_repeaters = vec![0u64; n_cats];
        for &(item, u) in &intervals {
            if let Some(c) = item_cat[item as usize] {
                cat_values[c].push(u);
            }
        }
        for i in 0..n_items {
            if let Some(c) = item_cat[i] {
                cat_buyers[c] += u64::from(item_buyers[i]);
                cat_repeaters[c] += u64::from(item_repeat_buyers[i]);
            }
        }
        let k = self.cycle_prior_strength;
        let a = self.repeat_prior_strength;
        let cat_prior: Vec<(LogStats, f64)> = cat_values
            .into_par_iter()
            .zip(
                cat_buyers
                    .into_par_iter()
                    .zip(cat_repeaters.into_par_iter()),
            )
            .map(|(mut values, (buyers, repeaters))| {
                values.sort_unstable_by(f64::total_cmp);
                let own = (!values.is_empty()).then(|| LogStats::of_sorted(&values));
                let stats = shrink(own.as_ref(), &global, k);
                let p = beta_shrink(repeaters as f64, buyers as f64, global_p, a);
                (stats, p)
            })
            .collect();

        let mut items = ItemArrays::with_capacity(n_items);
        for i in 0..n_items {
            let (prior, prior_p) = match item_cat[i] {
                Some(c) => (&cat_prior[c].0, cat_prior[c].1),
                None => (&global, global_p),
            };
            let own = item_stats[i].as_ref();
            let shrunk = shrink(own, prior, k);
            items.repeats.push(own.map_or(0, |s| s.n));
            items.buyers.push(item_buyers[i]);
            items.repeat_buyers.push(item_repeat_buyers[i]);
            items
                .raw_log_cycle
                .push(own.map_or(f64::NAN, |s| s.location));
            items.log_cycle.push(shrunk.location);
            items.spread.push(shrunk.spread.max(self.min_spread));
            items.repeat_probability.push(beta_shrink(
                f64::from(item_repeat_buyers[i]),
                f64::from(item_buyers[i]),
                prior_p,
                a,
            ));
        }
        Ok(Replenishment {
            params: self.clone(),
            reference,
            items,
            offsets: offsets.into(),
            pairs: pairs.into_stored(),
        })
    }

    /// Pairs, buyer counts and repeat intervals of one customer's lines
    /// (sorted by item, then time).
    fn customer_pairs(&self, log: &PurchaseLog, lines: &[u32], reference: i64) -> CustomerPairs {
        let customer = log.purchases[lines[0] as usize].customer.0;
        let mut out = CustomerPairs {
            customer,
            pairs: Vec::new(),
            buyers: Vec::new(),
            intervals: Vec::new(),
        };
        let mut occ: Vec<(i64, f64)> = Vec::new();
        let mut own: Vec<f64> = Vec::new();
        for group in lines
            .chunk_by(|&a, &b| log.purchases[a as usize].item == log.purchases[b as usize].item)
        {
            let item = log.purchases[group[0] as usize].item.0;
            occ.clear();
            let mut net = 0.0f64;
            // Occasion key -> index into `occ`.
            let mut by_key: BTreeMap<i64, usize> = BTreeMap::new();
            for &i in group {
                let p = &log.purchases[i as usize];
                if !p.quantity.is_finite() {
                    continue;
                }
                net += f64::from(p.quantity);
                if p.quantity <= 0.0 {
                    continue;
                }
                let (key, time) = match self.occasion {
                    OccasionRule::DistinctDays => {
                        let day = p.time.div_euclid(DAY_SECS);
                        (day, day * DAY_SECS)
                    }
                    OccasionRule::DistinctOrders => (i64::from(p.order.0), p.time),
                };
                match by_key.get(&key) {
                    Some(&j) => {
                        occ[j].0 = occ[j].0.min(time);
                        occ[j].1 += f64::from(p.quantity);
                    }
                    None => {
                        by_key.insert(key, occ.len());
                        occ.push((time, f64::from(p.quantity)));
                    }
                }
            }
            if occ.is_empty() {
                continue;
            }
            occ.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let occasions = u32::try_from(occ.len()).unwrap_or(u32::MAX);
            out.buyers.push((item, occasions));
            own.clear();
            for w in occ.windows(2) {
                let gap = ((w[1].0 - w[0].0) as f64 / DAY_SECS as f64).max(MIN_GAP_DAYS);
                let u = gap.ln() - self.quantity_elasticity * w[0].1.ln();
                own.push(u);
                out.intervals.push((item, u));
            }
            if net <= 0.0 {
                continue;
            }
            let (last, last_qty) = occ[occ.len() - 1];
            let own_log = if own.is_empty() {
                f32::NAN
            } else {
                median(&mut own) as f32
            };
            out.pairs.push(Pair {
                item,
                age: u32::try_from((reference - last).max(0)).unwrap_or(u32::MAX),
                last_qty: last_qty as f32,
                occasions,
                own_log,
            });
        }
        out
    }
}

/// One customer's contribution to the fit.
struct CustomerPairs {
    customer: u32,
    pairs: Vec<Pair>,
    /// `(item, occasions)` for every item with an occasion (returned or not).
    buyers: Vec<(u32, u32)>,
    /// `(item, log days per unit)` of every repeat interval.
    intervals: Vec<(u32, f64)>,
}

/// One (customer, item) pair as stored.
struct Pair {
    item: u32,
    age: u32,
    last_qty: f32,
    occasions: u32,
    own_log: f32,
}

/// Robust location and spread of log cycles.
#[derive(Debug, Clone)]
struct LogStats {
    n: u32,
    location: f64,
    spread: f64,
}

impl LogStats {
    /// Median and `1.4826 · MAD` of a sorted, non-empty slice.
    fn of_sorted(values: &[f64]) -> LogStats {
        let mut v = values.to_vec();
        let location = median(&mut v);
        let mut dev: Vec<f64> = values.iter().map(|x| (x - location).abs()).collect();
        let spread = 1.4826 * median(&mut dev);
        LogStats {
            n: u32::try_from(values.len()).unwrap_or(u32::MAX),
            location,
            spread,
        }
    }
}

/// `w · own + (1 − w) · prior` with `w = n / (n + k)`, for location and spread.
fn shrink(own: Option<&LogStats>, prior: &LogStats, k: f64) -> LogStats {
    match own {
        None => LogStats {
            n: 0,
            ..prior.clone()
        },
        Some(s) => {
            let n = f64::from(s.n);
            let w = if n + k > 0.0 { n / (n + k) } else { 1.0 };
            LogStats {
                n: s.n,
                location: w * s.location + (1.0 - w) * prior.location,
                spread: w * s.spread + (1.0 - w) * prior.spread,
            }
        }
    }
}

/// `(successes + a · prior) / (trials + a)`, or `prior` with no evidence at all.
fn beta_shrink(successes: f64, trials: f64, prior: f64, a: f64) -> f64 {
    if trials + a > 0.0 {
        ((successes + a * prior) / (trials + a)).clamp(0.0, 1.0)
    } else {
        prior
    }
}

/// Complementary error function, relative error below 1.2e-7 everywhere
/// (the Chebyshev-fitted approximation in Press et al., *Numerical Recipes*,
/// §6.2), so that far tails keep their relative precision.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// `P(T > t)` for a log-normal `T` with median `median` and log spread `sigma`.
fn lognormal_survival(t: f64, median: f64, sigma: f64) -> f64 {
    if t <= 0.0 {
        return 1.0;
    }
    let z = (t.ln() - median.ln()) / sigma;
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Per-item arrays.
#[derive(Debug, Clone, Default)]
struct ItemArrays {
    repeats: Vec<u32>,
    buyers: Vec<u32>,
    repeat_buyers: Vec<u32>,
    /// Median log days per unit of the item's own intervals (NaN: none).
    raw_log_cycle: Vec<f64>,
    /// Shrunk `m'_i`.
    log_cycle: Vec<f64>,
    /// `σ_i` (shrunk, floored).
    spread: Vec<f64>,
    /// `p_i`.
    repeat_probability: Vec<f64>,
}

impl ItemArrays {
    fn with_capacity(n: usize) -> Self {
        ItemArrays {
            repeats: Vec::with_capacity(n),
            buyers: Vec::with_capacity(n),
            repeat_buyers: Vec::with_capacity(n),
            raw_log_cycle: Vec::with_capacity(n),
            log_cycle: Vec::with_capacity(n),
            spread: Vec::with_capacity(n),
            repeat_probability: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.repeats.len()
    }
}

/// Per-pair arrays, CSR by customer.
#[derive(Debug, Clone, Default)]
struct PairArrays {
    item: Vec<u32>,
    /// Seconds from the last occasion to the reference (saturating).
    age: Vec<u32>,
    last_qty: Vec<f32>,
    occasions: Vec<u32>,
    /// The customer's own median log days per unit (NaN: one occasion).
    own_log: Vec<f32>,
}

impl PairArrays {
    fn with_capacity(n: usize) -> Self {
        PairArrays {
            item: Vec::with_capacity(n),
            age: Vec::with_capacity(n),
            last_qty: Vec::with_capacity(n),
            occasions: Vec::with_capacity(n),
            own_log: Vec::with_capacity(n),
        }
    }

    fn shrink_to_fit(&mut self) {
        self.item.shrink_to_fit();
        self.age.shrink_to_fit();
        self.last_qty.shrink_to_fit();
        self.occasions.shrink_to_fit();
        self.own_log.shrink_to_fit();
    }

    fn push(&mut self, p: &Pair) {
        self.item.push(p.item);
        self.age.push(p.age);
        self.last_qty.push(p.last_qty);
        self.occasions.push(p.occasions);
        self.own_log.push(p.own_log);
    }

    fn into_stored(self) -> StoredPairs {
        StoredPairs {
            item: self.item.into(),
            age: self.age.into(),
            last_qty: self.last_qty.into(),
            occasions: self.occasions.into(),
            own_log: self.own_log.into(),
        }
    }
}

/// The pair arrays of a fitted model: owned after a fit, read in place from
/// the mapped file after a load.
#[derive(Debug, Clone, Default)]
struct StoredPairs {
    item: Buf<u32>,
    age: Buf<u32>,
    last_qty: Buf<f32>,
    occasions: Buf<u32>,
    own_log: Buf<f32>,
}

/// An item's fitted replenishment cycle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemCycle {
    /// `n_i`: repeat intervals observed (all customers).
    pub repeats: u32,
    /// `B_i`: customers who bought the item.
    pub buyers: u32,
    /// `R_i`: customers who bought it on two or more occasions.
    pub repeat_buyers: u32,
    /// Shrunk days per unit, `exp(m'_i)`.
    pub days_per_unit: f64,
    /// The item's own median days per unit, before shrinkage (`None`: no repeat).
    pub raw_days_per_unit: Option<f64>,
    /// `σ_i`: log spread of the interval distribution (shrunk, floored).
    pub spread: f64,
    /// Shrunk repeat probability `p_i`.
    pub repeat_probability: f64,
    /// `w_i = n_i / (n_i + k)`: the weight of the item's own evidence (0: the
    /// cycle is entirely the prior).
    pub weight: f64,
    /// True if the prior has any weight (`w_i < 1`).
    pub shrunk: bool,
}

/// One entry of a buy-again list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DueItem {
    /// The item.
    pub item: u32,
    /// Time of the last occasion (unix seconds; start of the day with distinct days).
    pub last_purchase: i64,
    /// `last_purchase + interval`.
    pub due_date: i64,
    /// Probability of a purchase within the horizon (see the module docs).
    pub due_score: f32,
    /// `p`: the customer's repeat probability for the item.
    pub repeat_probability: f32,
    /// `I`: expected interval after the last purchase, in days.
    pub interval_days: f32,
    /// Purchase occasions of the item by the customer.
    pub purchases: u32,
}

/// A fitted replenishment model at a reference time.
#[derive(Debug, Clone)]
pub struct Replenishment {
    params: ReplenishmentParams,
    reference: i64,
    items: ItemArrays,
    /// `n_customers + 1` offsets into `pairs`.
    offsets: Buf<u32>,
    pairs: StoredPairs,
}

impl Replenishment {
    /// The reference time the model was fitted at (unix seconds).
    pub fn reference(&self) -> i64 {
        self.reference
    }

    /// The settings the model was fitted with.
    pub fn params(&self) -> &ReplenishmentParams {
        &self.params
    }

    /// Number of customers (the log's customer map size).
    pub fn n_customers(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of items (the log's item map size).
    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Number of stored (customer, item) pairs.
    pub fn n_pairs(&self) -> usize {
        self.pairs.item.len()
    }

    /// The fitted cycle of `item`, `None` if out of range.
    pub fn item_cycle(&self, item: u32) -> Option<ItemCycle> {
        let i = item as usize;
        if i >= self.n_items() {
            return None;
        }
        let n = self.items.repeats[i];
        let k = self.params.cycle_prior_strength;
        let weight = if f64::from(n) + k > 0.0 {
            f64::from(n) / (f64::from(n) + k)
        } else {
            1.0
        };
        let raw = self.items.raw_log_cycle[i];
        Some(ItemCycle {
            repeats: n,
            buyers: self.items.buyers[i],
            repeat_buyers: self.items.repeat_buyers[i],
            days_per_unit: self.items.log_cycle[i].exp(),
            raw_days_per_unit: raw.is_finite().then(|| raw.exp()),
            spread: self.items.spread[i],
            repeat_probability: self.items.repeat_probability[i],
            weight,
            shrunk: weight < 1.0,
        })
    }

    /// The scored pair at position `j` of the pair arrays.
    fn score_pair(&self, j: usize) -> DueItem {
        let p = &self.params;
        let item = self.pairs.item[j];
        let i = item as usize;
        let occasions = self.pairs.occasions[j];
        let g = f64::from(occasions.saturating_sub(1));
        let own = f64::from(self.pairs.own_log[j]);
        let item_log = self.items.log_cycle[i];
        let mu = if own.is_finite() && g > 0.0 {
            let w = g / (g + p.own_gap_strength);
            w * own + (1.0 - w) * item_log
        } else {
            item_log
        };
        let qty = f64::from(self.pairs.last_qty[j]).max(f64::MIN_POSITIVE);
        let interval = (mu + p.quantity_elasticity * qty.ln())
            .exp()
            .clamp(p.min_interval_days, p.max_interval_days);
        let p_item = self.items.repeat_probability[i];
        let s = p.own_repeat_strength;
        let prob = if s + g > 0.0 {
            (s * p_item + g) / (s + g)
        } else {
            p_item
        };
        let age = i64::from(self.pairs.age[j]);
        let e = age as f64 / DAY_SECS as f64;
        let sigma = self.items.spread[i];
        let s_now = lognormal_survival(e, interval, sigma);
        let s_later = lognormal_survival(e + p.horizon_days, interval, sigma);
        let denom = (1.0 - prob) + prob * s_now;
        let score = if denom > 0.0 {
            (prob * (s_now - s_later).max(0.0) / denom).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let last_purchase = self.reference - age;
        DueItem {
            item,
            last_purchase,
            due_date: last_purchase.saturating_add((interval * DAY_SECS as f64).round() as i64),
            due_score: score as f32,
            repeat_probability: prob as f32,
            interval_days: interval as f32,
            purchases: occasions,
        }
    }

    /// Every item `customer` bought before the reference (net quantity
    /// positive), scored, in item order; empty for an unknown customer.
    pub fn scored(&self, customer: u32) -> Vec<DueItem> {
        let c = customer as usize;
        if c >= self.n_customers() {
            return Vec::new();
        }
        let (lo, hi) = (self.offsets[c] as usize, self.offsets[c + 1] as usize);
        (lo..hi).map(|j| self.score_pair(j)).collect()
    }

    /// The customer's items, best due score first, skipping items where
    /// `skip(item)` is true. Ties: more occasions, then the more recent last
    /// purchase, then the lower item index.
    pub fn due(&self, customer: u32, k: usize, skip: impl Fn(u32) -> bool) -> Vec<DueItem> {
        let c = customer as usize;
        if k == 0 || c >= self.n_customers() {
            return Vec::new();
        }
        let (lo, hi) = (self.offsets[c] as usize, self.offsets[c + 1] as usize);
        let mut list: Vec<DueItem> = (lo..hi)
            .filter(|&j| !skip(self.pairs.item[j]))
            .map(|j| self.score_pair(j))
            .collect();
        list.sort_by(due_order);
        list.truncate(k);
        list
    }

    /// Compact little-endian binary encoding for the model artifact: magic,
    /// version, settings, reference, lengths, the item arrays, the customer
    /// offsets and the pair arrays, then a CRC-32 of everything before it.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(
            HEADER_LEN
                + self.n_items() * ITEM_BYTES
                + self.offsets.len() * 4
                + self.n_pairs() * PAIR_BYTES
                + 4,
        );
        self.encode_to(&mut w).expect("writing to memory");
        w
    }

    /// Streams [`Replenishment::encode`]'s bytes into `out`, a few
    /// thousand values at a time, so that the encoding is never held whole.
    pub fn encode_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut w = Crc32Writer::new(out);
        let w = &mut w;
        let n_items = self.n_items();
        let n_pairs = self.n_pairs();
        let mut head = Vec::with_capacity(HEADER_LEN);
        head.extend_from_slice(MAGIC);
        put_u32(&mut head, FORMAT_VERSION);
        let p = &self.params;
        head.push(match p.occasion {
            OccasionRule::DistinctDays => 0,
            OccasionRule::DistinctOrders => 1,
        });
        for v in params_f64(p) {
            put_f64(&mut head, v);
        }
        head.extend_from_slice(&self.reference.to_le_bytes());
        put_u32(&mut head, self.n_customers() as u32);
        put_u32(&mut head, n_items as u32);
        put_u32(&mut head, n_pairs as u32);
        head.extend_from_slice(&[0; HEADER_PAD]);
        debug_assert_eq!(head.len(), HEADER_LEN);
        w.write_all(&head)?;
        let it = &self.items;
        put_le(w, &it.repeats, u32::to_le_bytes)?;
        put_le(w, &it.buyers, u32::to_le_bytes)?;
        put_le(w, &it.repeat_buyers, u32::to_le_bytes)?;
        put_le(w, &it.raw_log_cycle, f64::to_le_bytes)?;
        put_le(w, &it.log_cycle, f64::to_le_bytes)?;
        put_le(w, &it.spread, f64::to_le_bytes)?;
        put_le(w, &it.repeat_probability, f64::to_le_bytes)?;
        put_le(w, &self.offsets, u32::to_le_bytes)?;
        let pa = &self.pairs;
        put_le(w, &pa.item, u32::to_le_bytes)?;
        put_le(w, &pa.age, u32::to_le_bytes)?;
        put_le(w, &pa.last_qty, |v: f32| v.to_bits().to_le_bytes())?;
        put_le(w, &pa.occasions, u32::to_le_bytes)?;
        put_le(w, &pa.own_log, |v: f32| v.to_bits().to_le_bytes())?;
        let crc = w.crc.clone().finalize();
        w.out.write_all(&crc.to_le_bytes())
    }

    /// Decodes [`Replenishment::encode`]'s output, validating the checksum,
    /// every length, offset, index and value; damaged bytes give an error.
    pub fn decode(bytes: &[u8]) -> Result<Replenishment, ReplenishmentError> {
        Self::parse(bytes, None)
    }

    /// [`Replenishment::decode`] of a mapped file, whose per-customer arrays
    /// (the offsets and the pairs) are then read in place rather than copied.
    /// Every length, offset, index and value is validated here, once; the
    /// checksum is not (the caller has checked it while streaming the file:
    /// [`Replenishment::check_trailing_crc`]).
    pub fn from_mapped(map: &Arc<Mapping>) -> Result<Replenishment, ReplenishmentError> {
        Self::parse(map.bytes(), Some(map))
    }

    /// Whether `crc`, the CRC-32 of every byte of an encoding but its last
    /// four, matches the checksum those four hold.
    pub fn check_trailing_crc(crc: u32, tail: [u8; 4]) -> Result<(), ReplenishmentError> {
        if crc != u32::from_le_bytes(tail) {
            return Err(ReplenishmentError::Corrupt {
                reason: "checksum mismatch".into(),
            });
        }
        Ok(())
    }

    /// The decoder behind [`Replenishment::decode`] (`map = None`: the
    /// checksum is checked and the arrays copied) and
    /// [`Replenishment::from_mapped`] (`bytes` are `map`'s).
    fn parse(
        bytes: &[u8],
        map: Option<&Arc<Mapping>>,
    ) -> Result<Replenishment, ReplenishmentError> {
        let corrupt = |reason: String| ReplenishmentError::Corrupt { reason };
        if bytes.len() < HEADER_LEN + 4 {
            return Err(corrupt(format!("{} bytes is too short", bytes.len())));
        }
        if &bytes[..8] != MAGIC {
            return Err(corrupt("wrong magic bytes".into()));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        if map.is_none() {
            let tail = [tail[0], tail[1], tail[2], tail[3]];
            Self::check_trailing_crc(crc32fast::hash(body), tail)?;
        }
        let mut r = Reader {
            bytes: body,
            pos: 8,
        };
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let occasion = match r.u8()? {
            0 => OccasionRule::DistinctDays,
            1 => OccasionRule::DistinctOrders,
            other => return Err(corrupt(format!("unknown occasion rule {other}"))),
        };
        let mut f = [0.0f64; N_PARAM_F64];
        for v in &mut f {
            *v = r.f64()?;
        }
        let params = params_from_f64(occasion, f);
        params
            .check()
            .map_err(|e| corrupt(format!("bad settings: {e}")))?;
        let reference = r.i64()?;
        let n_customers = r.u32()? as usize;
        let n_items = r.u32()? as usize;
        let n_pairs = r.u32()? as usize;
        if body[r.pos..].iter().take(HEADER_PAD).any(|&b| b != 0) {
            return Err(corrupt("header padding is not zero".into()));
        }
        r.pos += HEADER_PAD;
        // Check the total length before allocating or viewing anything.
        let expected = (n_items as u128) * ITEM_BYTES as u128
            + (n_customers as u128 + 1) * 4
            + (n_pairs as u128) * PAIR_BYTES as u128;
        if (body.len() - r.pos) as u128 != expected {
            return Err(corrupt(format!(
                "lengths ({n_customers} customers, {n_items} items, {n_pairs} pairs) need \
                 {expected} bytes, {} remain",
                body.len() - r.pos
            )));
        }
        let items = ItemArrays {
            repeats: r.u32s(n_items)?,
            buyers: r.u32s(n_items)?,
            repeat_buyers: r.u32s(n_items)?,
            raw_log_cycle: r.f64s(n_items)?,
            log_cycle: r.f64s(n_items)?,
            spread: r.f64s(n_items)?,
            repeat_probability: r.f64s(n_items)?,
        };
        // The lengths are checked: every array below is within the body.
        fn array<T: Element>(
            bytes: &[u8],
            map: Option<&Arc<Mapping>>,
            r: &mut Reader<'_>,
            n: usize,
        ) -> Buf<T> {
            let at = r.pos;
            r.pos += 4 * n;
            match map.and_then(|m| Buf::view(m, at, n)) {
                Some(view) => view,
                None => Buf::Owned(
                    bytes[at..at + 4 * n]
                        .chunks_exact(4)
                        .map(T::from_le)
                        .collect(),
                ),
            }
        }
        let offsets: Buf<u32> = array(bytes, map, &mut r, n_customers + 1);
        let pairs = StoredPairs {
            item: array(bytes, map, &mut r, n_pairs),
            age: array(bytes, map, &mut r, n_pairs),
            last_qty: array(bytes, map, &mut r, n_pairs),
            occasions: array(bytes, map, &mut r, n_pairs),
            own_log: array(bytes, map, &mut r, n_pairs),
        };
        for i in 0..n_items {
            if items.repeat_buyers[i] > items.buyers[i] {
                return Err(corrupt(format!("item {i}: more repeat buyers than buyers")));
            }
            let raw = items.raw_log_cycle[i];
            if !(raw.is_nan() || raw.is_finite())
                || !items.log_cycle[i].is_finite()
                || !(items.spread[i].is_finite() && items.spread[i] > 0.0)
                || !(0.0..=1.0).contains(&items.repeat_probability[i])
            {
                return Err(corrupt(format!("item {i}: value out of range")));
            }
        }
        if offsets[0] != 0 || offsets[n_customers] as usize != n_pairs {
            return Err(corrupt("offsets do not span the pairs".into()));
        }
        for c in 0..n_customers {
            let (lo, hi) = (offsets[c] as usize, offsets[c + 1] as usize);
            if lo > hi {
                return Err(corrupt(format!("customer {c}: decreasing offsets")));
            }
            for j in lo..hi {
                let item = pairs.item[j] as usize;
                if item >= n_items {
                    return Err(corrupt(format!("pair {j}: item {item} out of range")));
                }
                if j > lo && pairs.item[j - 1] >= pairs.item[j] {
                    return Err(corrupt(format!(
                        "customer {c}: items not strictly ascending"
                    )));
                }
            }
        }
        for j in 0..n_pairs {
            let q = pairs.last_qty[j];
            let own = pairs.own_log[j];
            if !(q.is_finite() && q > 0.0)
                || pairs.occasions[j] == 0
                || !(own.is_nan() || own.is_finite())
            {
                return Err(corrupt(format!("pair {j}: value out of range")));
            }
        }
        Ok(Replenishment {
            params,
            reference,
            items,
            offsets,
            pairs,
        })
    }
}

/// Buy-again order: higher score, more occasions, more recent, lower item.
fn due_order(a: &DueItem, b: &DueItem) -> Ordering {
    b.due_score
        .total_cmp(&a.due_score)
        .then(b.purchases.cmp(&a.purchases))
        .then(b.last_purchase.cmp(&a.last_purchase))
        .then(a.item.cmp(&b.item))
}

/// Number of `f64` settings in the encoding.
const N_PARAM_F64: usize = 10;
/// Zero bytes closing the header, so that it ends 8-byte aligned.
const HEADER_PAD: usize = 7;
/// Magic, version, occasion rule, settings, reference, three lengths, padding.
const HEADER_LEN: usize = 8 + 4 + 1 + N_PARAM_F64 * 8 + 8 + 3 * 4 + HEADER_PAD;
/// Bytes per item: three `u32` and four `f64`.
const ITEM_BYTES: usize = 3 * 4 + 4 * 8;
/// Bytes per pair: five 4-byte values.
const PAIR_BYTES: usize = 5 * 4;

fn params_f64(p: &ReplenishmentParams) -> [f64; N_PARAM_F64] {
    [
        p.cycle_prior_strength,
        p.repeat_prior_strength,
        p.own_gap_strength,
        p.own_repeat_strength,
        p.quantity_elasticity,
        p.min_interval_days,
        p.max_interval_days,
        p.min_spread,
        p.horizon_days,
        p.default_days_per_unit,
    ]
}

fn params_from_f64(occasion: OccasionRule, f: [f64; N_PARAM_F64]) -> ReplenishmentParams {
    ReplenishmentParams {
        occasion,
        cycle_prior_strength: f[0],
        repeat_prior_strength: f[1],
        own_gap_strength: f[2],
        own_repeat_strength: f[3],
        quantity_elasticity: f[4],
        min_interval_days: f[5],
        max_interval_days: f[6],
        min_spread: f[7],
        horizon_days: f[8],
        default_days_per_unit: f[9],
    }
}

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_f64(w: &mut Vec<u8>, v: f64) {
    w.extend_from_slice(&v.to_le_bytes());
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ReplenishmentError> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(ReplenishmentError::Corrupt {
                reason: format!("truncated at byte {}", self.pos),
            });
        };
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ReplenishmentError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, ReplenishmentError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, ReplenishmentError> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    fn f64(&mut self) -> Result<f64, ReplenishmentError> {
        Ok(f64::from_le_bytes(self.take()?))
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, ReplenishmentError> {
        (0..n).map(|_| self.u32()).collect()
    }

    fn f64s(&mut self, n: usize) -> Result<Vec<f64>, ReplenishmentError> {
        (0..n).map(|_| self.f64()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = DAY_SECS;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn erfc_matches_reference_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
            (-1.0, 1.842_700_792_949_715),
        ] {
            assert!(
                close(erfc(x), want, 2e-7),
                "erfc({x}) = {} not {want}",
                erfc(x)
            );
        }
        assert_eq!(lognormal_survival(0.0, 10.0, 1.0), 1.0);
        assert!(close(lognormal_survival(10.0, 10.0, 1.0), 0.5, 1e-7));
    }

    /// Customer `c` buys `item` every `gap` days, `n` times, `qty` units each.
    fn regular(log: &mut PurchaseLog, c: &str, item: &str, start: i64, gap: i64, n: i64, qty: f32) {
        for j in 0..n {
            let t = (start + j * gap) * DAY + 3600;
            log.push(&format!("{c}-{item}-{j}"), c, item, t, qty, 1.0);
        }
    }

    #[test]
    fn quantity_normalisation_scales_the_interval() {
        let mut log = PurchaseLog::default();
        // Many customers buy "tea" one unit every 10 days.
        for c in 0..20 {
            regular(&mut log, &format!("c{c}"), "tea", c, 10, 5, 1.0);
        }
        // Two newcomers: one bought 1 unit, one bought 2.
        log.push("n1", "one", "tea", 200 * DAY, 1.0, 1.0);
        log.push("n2", "two", "tea", 200 * DAY, 2.0, 1.0);
        // Proportional scaling (the tuned default elasticity is below 1).
        let proportional = ReplenishmentParams {
            quantity_elasticity: 1.0,
            ..Default::default()
        };
        let model = proportional.fit(&log, &[], 205 * DAY).unwrap();
        let cycle = model.item_cycle(0).unwrap();
        assert_eq!(cycle.repeats, 80);
        assert!(close(cycle.days_per_unit, 10.0, 1e-9), "{cycle:?}");
        let one = &model.due(log.customers.get("one").unwrap(), 5, |_| false)[0];
        let two = &model.due(log.customers.get("two").unwrap(), 5, |_| false)[0];
        assert!(close(f64::from(one.interval_days), 10.0, 1e-6), "{one:?}");
        assert!(close(f64::from(two.interval_days), 20.0, 1e-6), "{two:?}");
        assert_eq!(two.due_date - two.last_purchase, 20 * DAY);
        // Someone who bought 2 units every 20 days has 10 days per unit too.
        let mut log2 = PurchaseLog::default();
        regular(&mut log2, "a", "tea", 0, 20, 6, 2.0);
        let m2 = proportional.fit(&log2, &[], 200 * DAY).unwrap();
        assert!(close(
            m2.item_cycle(0).unwrap().raw_days_per_unit.unwrap(),
            10.0,
            1e-9
        ));
        // With elasticity 0 the quantity is ignored.
        let flat = ReplenishmentParams {
            quantity_elasticity: 0.0,
            ..Default::default()
        };
        let m3 = flat.fit(&log2, &[], 200 * DAY).unwrap();
        assert!(close(
            m3.item_cycle(0).unwrap().raw_days_per_unit.unwrap(),
            20.0,
            1e-9
        ));
    }

    #[test]
    fn thin_items_shrink_to_their_category_rich_items_keep_their_own() {
        let mut log = PurchaseLog::default();
        // Category "pantry": item "rice" has many 40-day repeats; "salt" has
        // a single 5-day repeat; "flour" has 30 repeats at 5 days.
        for c in 0..30 {
            regular(&mut log, &format!("r{c}"), "rice", c, 40, 3, 1.0);
        }
        regular(&mut log, "s0", "salt", 0, 5, 2, 1.0);
        for c in 0..30 {
            regular(&mut log, &format!("f{c}"), "flour", c, 5, 2, 1.0);
        }
        // Another category with 2-day cycles, so the global prior differs.
        for c in 0..30 {
            regular(&mut log, &format!("m{c}"), "milk", c, 2, 3, 1.0);
        }
        let cat = |s: &str| Some(s.to_string());
        let categories: Vec<Option<String>> = log
            .items
            .ids()
            .map(|id| match id {
                "milk" => cat("dairy"),
                _ => cat("pantry"),
            })
            .collect();
        // A light prior (the tuned default leans much harder on categories).
        let params = ReplenishmentParams {
            cycle_prior_strength: 5.0,
            ..Default::default()
        };
        let model = params.fit(&log, &categories, 400 * DAY).unwrap();
        let item = |id: &str| model.item_cycle(log.items.get(id).unwrap()).unwrap();
        let (rice, salt, flour) = (item("rice"), item("salt"), item("flour"));
        assert_eq!(salt.repeats, 1);
        assert!(salt.shrunk && salt.weight < 0.2, "{salt:?}");
        // The pantry prior is the median of 60 rice intervals and 31 at 5 days: 40.
        assert!(salt.days_per_unit > 20.0, "{salt:?}");
        // Many repeats: near its own 5 days despite the 40-day category.
        assert_eq!(flour.repeats, 30);
        assert!(flour.days_per_unit < 7.0, "{flour:?}");
        assert!(close(rice.days_per_unit, 40.0, 0.02), "{rice:?}");
        // Without categories, salt shrinks to the global prior instead.
        let flat = params.fit(&log, &[], 400 * DAY).unwrap();
        let salt_flat = flat.item_cycle(log.items.get("salt").unwrap()).unwrap();
        assert!(salt_flat.days_per_unit < salt.days_per_unit);
        // Repeat probability: every buyer of rice re-bought it.
        assert!(rice.repeat_probability > 0.8);
        // A category slice of the wrong length is an error.
        assert!(matches!(
            params.fit(&log, &categories[..1], 0),
            Err(ReplenishmentError::CategoryLength { .. })
        ));
    }

    #[test]
    fn returns_do_not_create_occasions() {
        let mut log = PurchaseLog::default();
        log.push("o1", "a", "soap", 0, 1.0, 2.0);
        log.push("c1", "a", "soap", 10 * DAY, -1.0, 2.0);
        log.push("o2", "a", "soap", 20 * DAY, 1.0, 2.0);
        log.push("c2", "a", "mug", 15 * DAY, -1.0, 5.0);
        let model = ReplenishmentParams::default()
            .fit(&log, &[], 30 * DAY)
            .unwrap();
        let soap = model.item_cycle(0).unwrap();
        // One interval of 20 days (the return at day 10 does not split it).
        assert_eq!(soap.repeats, 1);
        assert!(close(soap.raw_days_per_unit.unwrap(), 20.0, 1e-9));
        assert_eq!((soap.buyers, soap.repeat_buyers), (1, 1));
        let list = model.due(0, 10, |_| false);
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].purchases, 2);
        assert_eq!(list[0].last_purchase, 20 * DAY);
        // An item only ever returned has no buyer; one fully returned is not listed.
        let mug = model.item_cycle(1).unwrap();
        assert_eq!(mug.buyers, 0);
        let mut log2 = PurchaseLog::default();
        log2.push("o1", "a", "soap", 0, 2.0, 2.0);
        log2.push("c1", "a", "soap", DAY, -2.0, 2.0);
        let m2 = ReplenishmentParams::default()
            .fit(&log2, &[], 30 * DAY)
            .unwrap();
        assert!(m2.due(0, 10, |_| false).is_empty());
        assert_eq!(m2.item_cycle(0).unwrap().buyers, 1);
    }

    #[test]
    fn due_score_peaks_near_the_due_date_and_decays_when_long_overdue() {
        let mut log = PurchaseLog::default();
        for c in 0..50 {
            regular(&mut log, &format!("c{c}"), "tea", 0, 30, 4, 1.0);
        }
        log.push("x", "me", "tea", 1000 * DAY, 1.0, 1.0);
        let params = ReplenishmentParams {
            horizon_days: 7.0,
            min_spread: 0.5,
            ..Default::default()
        };
        let me = |days: i64| {
            let model = params.fit(&log, &[], (1000 + days) * DAY).unwrap();
            model.due(log.customers.get("me").unwrap(), 1, |_| false)[0].due_score
        };
        let (early, due, late) = (me(1), me(27), me(300));
        assert!(due > early && due > late, "{early} {due} {late}");
    }

    fn sample_log() -> (PurchaseLog, Vec<Option<String>>) {
        let mut log = PurchaseLog::default();
        for c in 0..40i64 {
            for (k, item) in ["a", "b", "c", "d"].iter().enumerate() {
                let k = k as i64;
                let n = (c + k) % 5 + 1;
                regular(
                    &mut log,
                    &format!("c{c}"),
                    item,
                    c + k,
                    7 + 3 * k + c % 4,
                    n,
                    (1 + k % 2) as f32,
                );
            }
        }
        log.push("r", "c3", "a", 50 * DAY, -1.0, 1.0);
        let cats = log
            .items
            .ids()
            .map(|id| (id != "d").then(|| format!("cat-{}", id < "c")))
            .collect();
        (log, cats)
    }

    #[test]
    fn encode_decode_round_trip() {
        let (log, cats) = sample_log();
        let model = ReplenishmentParams::default()
            .fit(&log, &cats, 60 * DAY)
            .unwrap();
        let bytes = model.encode();
        let back = Replenishment::decode(&bytes).unwrap();
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.reference(), model.reference());
        assert_eq!(back.params(), model.params());
        assert_eq!((back.n_customers(), back.n_items()), (40, 4));
        for c in 0..40 {
            assert_eq!(back.due(c, 10, |_| false), model.due(c, 10, |_| false));
        }
        for i in 0..4 {
            assert_eq!(back.item_cycle(i), model.item_cycle(i));
        }
        assert_eq!(model.item_cycle(4), None);
        assert!(model.due(40, 10, |_| false).is_empty());
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let (log, cats) = sample_log();
        let bytes = ReplenishmentParams::default()
            .fit(&log, &cats, 60 * DAY)
            .unwrap()
            .encode();
        for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            assert!(
                Replenishment::decode(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        for pos in (0..bytes.len()).step_by(5) {
            for bit in [0, 3, 7] {
                let mut bad = bytes.clone();
                bad[pos] ^= 1 << bit;
                assert!(Replenishment::decode(&bad).is_err(), "flip at {pos}.{bit}");
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Replenishment::decode(&longer).is_err());
        // A consistent checksum over inconsistent content is still caught.
        let mut forged = bytes[..bytes.len() - 4].to_vec();
        let n_pairs_at = HEADER_LEN - HEADER_PAD - 4;
        forged[n_pairs_at] ^= 1;
        let crc = crc32fast::hash(&forged);
        forged.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Replenishment::decode(&forged),
            Err(ReplenishmentError::Corrupt { .. })
        ));
        // So is a non-zero padding byte.
        let mut padded = bytes[..bytes.len() - 4].to_vec();
        padded[HEADER_LEN - 1] = 1;
        let crc = crc32fast::hash(&padded);
        padded.extend_from_slice(&crc.to_le_bytes());
        assert!(Replenishment::decode(&padded).is_err());
    }

    #[test]
    fn fit_is_deterministic_and_lists_are_ordered() {
        let (log, cats) = sample_log();
        let params = ReplenishmentParams::default();
        let a = params.fit(&log, &cats, 60 * DAY).unwrap().encode();
        for _ in 0..3 {
            assert_eq!(params.fit(&log, &cats, 60 * DAY).unwrap().encode(), a);
        }
        let model = Replenishment::decode(&a).unwrap();
        for c in 0..40 {
            let list = model.due(c, 10, |_| false);
            for w in list.windows(2) {
                assert_ne!(due_order(&w[0], &w[1]), Ordering::Greater);
            }
            let skipped = model.due(c, 10, |i| i == 0);
            assert!(skipped.iter().all(|d| d.item != 0));
            assert_eq!(
                model.due(c, 2, |_| false),
                list[..list.len().min(2)].to_vec()
            );
        }
    }

    #[test]
    fn bad_params_are_rejected() {
        let bad = ReplenishmentParams {
            min_interval_days: 10.0,
            max_interval_days: 5.0,
            ..Default::default()
        };
        assert!(bad.check().is_err());
        let nan = ReplenishmentParams {
            horizon_days: f64::NAN,
            ..Default::default()
        };
        assert!(matches!(
            nan.check(),
            Err(ReplenishmentError::InvalidParam {
                name: "horizon_days",
                ..
            })
        ));
        assert!(ReplenishmentParams::default().check().is_ok());
        let json = serde_json::to_string(&ReplenishmentParams::default()).unwrap();
        let back: ReplenishmentParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ReplenishmentParams::default());
        let partial: ReplenishmentParams = serde_json::from_str(r#"{"horizon_days": 9}"#).unwrap();
        assert_eq!(partial.horizon_days, 9.0);
    }
}
