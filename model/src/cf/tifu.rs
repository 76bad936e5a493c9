//! Repeat-aware "for you" scores: TIFU-KNN (Hu, He, Li, Ding & Xu, SIGIR 2020,
//! "Modeling Personalized Item Frequency Information for Next-basket
//! Recommendation"), with an optional blend of collaborative-filtering scores
//! for items the customer never bought.
//!
//! Why: on repeat-heavy shops (wholesale, groceries) the strongest signal for
//! the next purchase is what the customer already buys, and how recently.
//! TIFU-KNN turns each customer's history into a time-decayed item-frequency
//! vector and smooths it with the vectors of similar customers.
//!
//! # The model
//! A customer's history is the sequence of their orders ("baskets") sorted by
//! time (ties by order index); a basket is the binary set of items with a
//! positive-quantity line in it. Items whose net quantity over the whole
//! history (returns included) is zero or negative were returned in full: they
//! are dropped from every basket, and baskets left empty are dropped.
//!
//! The `n` baskets are split into `g = ceil(n / m)` groups of `m =
//! group_size` consecutive baskets, counted from the most recent one, so
//! only the oldest group may be short. With `b_1..b_s` the baskets of a group
//! (oldest first), `r_b = within_decay`, `r_g = group_decay` and `v_1..v_g`
//! the groups (oldest first):
//!
//! ```text
//! group vector   v   = (1/s) Σ_{j=1..s} r_b^(s-j) b_j
//! personal vector u  = (1/g) Σ_{i=1..g} r_g^(g-i) v_i
//! score          p_u = α u + (1 − α) (1/K) Σ_{w ∈ N_K(u)} u_w
//! ```
//!
//! where `N_K(u)` are the `K = neighbours` other customers with the largest
//! cosine similarity `u·w / (|u| |w|)` (only positive similarities; ties by the
//! lower index). The mean divides by `K` even when fewer neighbours exist, as
//! in the paper, so a customer with few neighbours leans on their own vector.
//!
//! # Blend with collaborative filtering
//! TIFU scores are zero for items neither the customer nor their neighbours
//! bought. [`TifuKnn::recommend`] accepts a dense CF score slice for the
//! customer (e.g. [`crate::cf::als::Als::score_user`]); for every item the
//! customer never bought (no positive line at all) it adds
//!
//! ```text
//! β · max_i p_u[i] · n(cf)[i]
//! ```
//!
//! where `n` is the per-customer normalisation ([`CfNormalisation`]) that maps
//! the best candidate to 1. The factor `max_i p_u[i]` makes `β` scale-free:
//! with `β < 1` a new item outranks the customer's favourite only if it is
//! strongly backed by TIFU *and* CF, and when TIFU has nothing to say the CF
//! order decides the rest of the list.
//!
//! # Implementation notes
//! - **Neighbour search** is exact and sparse: personal vectors are
//!   L2-normalised into a customer x item CSR and its transpose; for customer
//!   `u` a dense per-thread accumulator sums `û_i ŵ_i` over the customers `w`
//!   of every item `i` of `u`, remembering the touched slots. The cost is
//!   `Σ_i n_i²` multiply-adds (`n_i` = customers holding item `i`) plus
//!   one accumulator slot per customer of the neighbour pool (below) per
//!   thread; memory is two copies of the vectors plus `K` neighbours per
//!   customer when they are stored. Customers run in
//!   parallel (rayon), each one's sums in a fixed order, so the result is the
//!   same for any thread count. (Fit times: `docs/benchmarks.md`.)
//! - **Neighbour pool**: `Σ_i n_i²` grows with the square of the customers
//!   (on the seeded synthetic 100k x 20k history of the `synth` example it is
//!   1.1 × 10¹⁰, most of it from the few most popular items). With more than
//!   `neighbour_pool` customers with a history, the neighbours of every
//!   customer are searched among every `s`-th of those customers only (`s =
//!   ceil(count / neighbour_pool)`): the transpose holds the pool alone, so
//!   the cost is `Σ_i n_i p_i` (`p_i` = pool customers holding `i`), about
//!   `Σ_i n_i² · pool / count`, linear in the customers for a fixed pool.
//!   Similarities to pool members are the exact ones; only customers outside
//!   the pool are never neighbours. Below the pool size (the default 20,000)
//!   nothing changes. What the pool costs in quality is measured with
//!   `encore-train evaluate --score-validation` and a small
//!   `neighbour_pool`; the figures are in `docs/models.md` ("TIFU-KNN").
//! - **Scoring** one customer is `O(n_items + Σ_{w ∈ N(u)} |u_w|)`.
//! - Everything is deterministic: same log and parameters, same scores.

use crate::topk::{top_k, top_k_dense};
use encore_data::{ByCustomer, Csr, CsrBuilder, PurchaseLog};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How CF scores are mapped to `[0, 1]` per customer before blending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CfNormalisation {
    /// `max(cf, 0) / max over candidates of cf` (0 when no candidate is positive).
    #[default]
    Max,
    /// Reciprocal rank among the candidates: `1 / (1 + rank)`, the best being rank 0.
    Rank,
}

/// TIFU-KNN parameters; see the module docs for the formulas.
///
/// ```
/// use encore_data::PurchaseLog;
/// use encore_model::cf::tifu::TifuParams;
///
/// let mut log = PurchaseLog::default();
/// log.push("o1", "c1", "a", 0, 1.0, 1.0);
/// log.push("o2", "c1", "b", 10, 2.0, 1.0);
/// log.push("o3", "c2", "a", 5, 1.0, 1.0);
/// let model = TifuParams::default().fit(&log).unwrap();
/// let list = model.recommend(0, 5, |_| false, None);
/// assert_eq!(list.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TifuParams {
    /// `m`: baskets per group, at least 1.
    pub group_size: usize,
    /// `r_b` in `(0, 1]`: decay between consecutive baskets of a group.
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub within_decay: f32,
    /// `r_g` in `(0, 1]`: decay between consecutive groups.
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub group_decay: f32,
    /// `K`: nearest customers averaged; 0 uses the personal vector alone.
    pub neighbours: usize,
    /// `α` in `[0, 1]`: weight of the personal vector.
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub alpha: f32,
    /// `β >= 0`: weight of the CF contribution for never-bought items.
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub beta: f32,
    /// How CF scores are normalised per customer.
    pub cf_normalisation: CfNormalisation,
    /// At most this many customers are searched as neighbours: with more
    /// customers with a history, every customer's `K` neighbours come from
    /// an evenly spaced pool of this size (module docs). At least 1.
    pub neighbour_pool: usize,
}

impl Default for TifuParams {
    /// Chosen on a validation split of Online Retail inside the training
    /// period (`cargo run --release -p encore-model --example tifu_tuning`).
    /// The blend gained nothing there (best `β` 0, `β = 0.01` with rank
    /// normalisation within 0.0001 of it); the small `β` is kept so that CF
    /// fills lists where TIFU has fewer than `k` items.
    fn default() -> Self {
        TifuParams {
            group_size: 20,
            within_decay: 0.9,
            group_decay: 0.3,
            neighbours: 300,
            alpha: 0.4,
            beta: 0.01,
            cf_normalisation: CfNormalisation::Rank,
            neighbour_pool: 20_000,
        }
    }
}

/// Why TIFU-KNN could not be fitted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TifuError {
    /// A parameter is out of range.
    #[error("invalid TIFU-KNN parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl TifuParams {
    /// Checks every parameter.
    pub fn check(&self) -> Result<(), TifuError> {
        let bad = |name, value: String, reason| {
            Err(TifuError::InvalidParam {
                name,
                value,
                reason,
            })
        };
        if self.group_size == 0 {
            return bad("group_size", "0".into(), "must be at least 1");
        }
        for (name, v) in [
            ("within_decay", self.within_decay),
            ("group_decay", self.group_decay),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(name, v.to_string(), "must be in (0, 1]");
            }
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad("alpha", self.alpha.to_string(), "must be in [0, 1]");
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return bad("beta", self.beta.to_string(), "must be finite and >= 0");
        }
        if self.neighbour_pool == 0 {
            return bad("neighbour_pool", "0".into(), "must be at least 1");
        }
        Ok(())
    }

    /// Builds the personal vectors and the neighbour lists from `log`.
    pub fn fit(&self, log: &PurchaseLog) -> Result<TifuKnn, TifuError> {
        self.fit_for(log, None)
    }

    /// [`TifuParams::fit`], searching neighbours only for `customers` when
    /// given (the others get none, as if they had no similar customer; any
    /// customer may still be a neighbour). For callers that score a subset:
    /// the search is most of the fitting time on a large log.
    pub fn fit_for(
        &self,
        log: &PurchaseLog,
        customers: Option<&[u32]>,
    ) -> Result<TifuKnn, TifuError> {
        self.check()?;
        let n_customers = log.customers.len();
        let n_items = log.items.len();
        let (vectors, bought) = personal_vectors(log, self);
        let neighbours = if self.neighbours == 0 || self.alpha == 1.0 {
            Neighbours::Stored(vec![Vec::new(); n_customers])
        } else {
            let search = NeighbourSearch::new(&vectors, self.neighbour_pool);
            match customers {
                // Every customer may be scored: search each one's when asked
                // rather than hold K neighbours for every customer.
                None => Neighbours::OnDemand(search),
                Some(only) => {
                    Neighbours::Stored(search.for_customers(&vectors, self.neighbours, only))
                }
            }
        };
        debug_assert_eq!(vectors.n_cols(), n_items);
        Ok(TifuKnn {
            params: self.clone(),
            vectors,
            bought,
            neighbours,
        })
    }
}

/// `(vectors, bought)`: the personal vectors (customer x item) and the
/// pattern of every item with a positive line per customer.
fn personal_vectors(log: &PurchaseLog, p: &TifuParams) -> (Csr, Csr) {
    let n_customers = log.customers.len();
    let n_items = log.items.len();
    // Net quantity per (customer, item); `bought` = any positive line.
    let net = Csr::from_triplets_with(n_customers, n_items, || {
        log.purchases
            .iter()
            .filter(|q| q.quantity.is_finite())
            .map(|q| (q.customer.0, q.item.0, q.quantity))
    });
    let bought = Csr::from_triplets_with(n_customers, n_items, || {
        log.purchases
            .iter()
            .filter(|q| q.quantity > 0.0)
            .map(|q| (q.customer.0, q.item.0, 1.0))
    })
    .map_values(|_| 1.0);
    // Each customer's positive lines of items whose net quantity stands,
    // grouped into orders oldest first (the time of an order = its earliest
    // positive line), one customer at a time.
    let by_customer = ByCustomer::new(log, |q| q.quantity > 0.0);
    let mut vectors = CsrBuilder::new(n_items);
    let mut order_time: Vec<(u32, i64)> = Vec::new();
    let mut lines: Vec<(i64, u32, u32)> = Vec::new();
    for c in 0..n_customers as u32 {
        order_time.clear();
        order_time.extend(by_customer.lines(log, c).map(|q| (q.order.0, q.time)));
        order_time.sort_unstable();
        order_time.dedup_by_key(|e| e.0);
        let time_of = |o: u32| order_time[order_time.binary_search_by_key(&o, |e| e.0).unwrap()].1;
        lines.clear();
        lines.extend(
            by_customer
                .lines(log, c)
                .filter(|q| net.get(c as usize, q.item.0) > 0.0)
                .map(|q| (time_of(q.order.0), q.order.0, q.item.0)),
        );
        lines.sort_unstable();
        lines.dedup();
        // Baskets of customer `c`, oldest first, as ranges of `lines`.
        let baskets: Vec<&[(i64, u32, u32)]> = lines.chunk_by(|a, b| a.1 == b.1).collect();
        vectors.push_row(&decayed_vector(&baskets, p));
    }
    (vectors.finish(), bought)
}

/// The personal vector of one customer (sparse, unsorted) from their
/// baskets (oldest first).
fn decayed_vector(baskets: &[&[(i64, u32, u32)]], p: &TifuParams) -> Vec<(u32, f32)> {
    let n = baskets.len();
    let m = p.group_size;
    let g = n.div_ceil(m);
    let mut acc: std::collections::BTreeMap<u32, f64> = std::collections::BTreeMap::new();
    let (rb, rg) = (f64::from(p.within_decay), f64::from(p.group_decay));
    // Groups counted from the newest basket: group `gi` (0 = oldest) covers
    // baskets [lo, hi).
    for gi in 0..g {
        let hi = n - (g - 1 - gi) * m;
        let lo = hi.saturating_sub(m);
        let s = hi - lo;
        let group_weight = rg.powi((g - 1 - gi) as i32) / g as f64;
        for (j, basket) in baskets[lo..hi].iter().enumerate() {
            let w = group_weight * rb.powi((s - 1 - j) as i32) / s as f64;
            for &(_, _, item) in basket.iter() {
                *acc.entry(item).or_insert(0.0) += w;
            }
        }
    }
    acc.into_iter().map(|(i, v)| (i, v as f32)).collect()
}

/// The nearest-customer search of a fit: each customer's `k` other
/// customers (of the neighbour pool) with the largest positive cosine
/// similarity, best first (ties by the lower index).
#[derive(Debug, Clone)]
pub(crate) struct NeighbourSearch {
    /// The Euclidean norm of each personal vector.
    norms: Vec<f32>,
    /// Item -> the pool's members holding it (by their place in `members`),
    /// with their unit-vector values.
    by_item: Csr,
    /// The pool's customers, ascending: a search sums similarities into one
    /// slot per member, which for a pool much smaller than the customers
    /// stays in the nearest caches.
    members: Vec<u32>,
}

/// One worker's accumulators of [`NeighbourSearch::search`].
#[derive(Default)]
struct SearchScratch {
    acc: Vec<f32>,
    touched: Vec<u32>,
}

thread_local! {
    static SEARCH_SCRATCH: std::cell::RefCell<SearchScratch> = std::cell::RefCell::default();
}

impl NeighbourSearch {
    fn new(vectors: &Csr, pool: usize) -> Self {
        let n = vectors.n_rows();
        let in_pool = neighbour_pool(vectors, pool);
        let norms: Vec<f32> = (0..n)
            .map(|r| {
                let (_, v) = vectors.row(r);
                v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt() as f32
            })
            .collect();
        let members: Vec<u32> = (0..n as u32)
            .filter(|&r| in_pool.as_ref().is_none_or(|p| p[r as usize]))
            .collect();
        let by_item = Csr::from_triplets_with(members.len(), vectors.n_cols(), || {
            members.iter().enumerate().flat_map(|(at, &r)| {
                let (cols, vals) = vectors.row(r as usize);
                let norm = norms[r as usize];
                cols.iter()
                    .zip(vals)
                    .map(move |(&c, &v)| (at as u32, c, v / norm))
            })
        })
        .transpose();
        NeighbourSearch {
            norms,
            by_item,
            members,
        }
    }

    /// The neighbours of the customers in `only` (none for the others).
    fn for_customers(&self, vectors: &Csr, k: usize, only: &[u32]) -> Vec<Vec<(u32, f32)>> {
        let n = vectors.n_rows();
        let mut wanted = vec![false; n];
        for &c in only.iter().filter(|&&c| (c as usize) < n) {
            wanted[c as usize] = true;
        }
        (0..n)
            .into_par_iter()
            .map(|u| {
                if wanted[u] {
                    self.search(vectors, k, u)
                } else {
                    Vec::new()
                }
            })
            .collect()
    }

    /// The `k` nearest customers of customer `u`.
    fn search(&self, vectors: &Csr, k: usize, u: usize) -> Vec<(u32, f32)> {
        SEARCH_SCRATCH.with_borrow_mut(|SearchScratch { acc, touched }| {
            acc.resize(self.members.len(), 0.0);
            let norm = self.norms[u];
            let (items, weights) = vectors.row(u);
            for (&i, &w) in items.iter().zip(weights) {
                let wu = w / norm;
                let (others, wo) = self.by_item.row(i as usize);
                for (&v, &wv) in others.iter().zip(wo) {
                    if acc[v as usize] == 0.0 {
                        touched.push(v);
                    }
                    acc[v as usize] += wu * wv;
                }
            }
            // Members are ascending, so ranking by place in the pool breaks
            // ties as ranking by customer index does.
            let me = self.members.binary_search(&(u as u32)).ok();
            let list = top_k(
                touched
                    .iter()
                    .filter(|&&v| Some(v as usize) != me && acc[v as usize] > 0.0)
                    .map(|&v| (v, acc[v as usize])),
                k,
            );
            for &v in touched.iter() {
                acc[v as usize] = 0.0;
            }
            touched.clear();
            list.into_iter()
                .map(|(v, s)| (self.members[v as usize], s))
                .collect()
        })
    }
}

/// Which customers may be neighbours: `None` for all of them, when at most
/// `pool` customers have a non-empty vector; otherwise every `s`-th of those
/// (`s = ceil(count / pool)`, from the first), at most `pool` in all.
fn neighbour_pool(vectors: &Csr, pool: usize) -> Option<Vec<bool>> {
    let n = vectors.n_rows();
    let active: Vec<usize> = (0..n).filter(|&r| !vectors.row(r).0.is_empty()).collect();
    if active.len() <= pool {
        return None;
    }
    let stride = active.len().div_ceil(pool);
    let mut in_pool = vec![false; n];
    for &r in active.iter().step_by(stride) {
        in_pool[r] = true;
    }
    Some(in_pool)
}

/// A fitted TIFU-KNN model.
#[derive(Debug, Clone)]
pub struct TifuKnn {
    params: TifuParams,
    vectors: Csr,
    bought: Csr,
    neighbours: Neighbours,
}

/// Each customer's nearest customers.
#[derive(Debug, Clone)]
enum Neighbours {
    /// Searched when fitting (none for the customers not asked for).
    Stored(Vec<Vec<(u32, f32)>>),
    /// Searched each time they are needed: a fit that scores every customer
    /// once then holds no list (K = 300 neighbours are 2.4 KB a customer).
    OnDemand(NeighbourSearch),
}

impl TifuKnn {
    pub fn params(&self) -> &TifuParams {
        &self.params
    }

    pub fn n_items(&self) -> usize {
        self.vectors.n_cols()
    }

    pub fn n_customers(&self) -> usize {
        self.vectors.n_rows()
    }

    /// The personal vector of `customer` (items, values).
    pub fn personal_vector(&self, customer: u32) -> (&[u32], &[f32]) {
        self.vectors.row(customer as usize)
    }

    /// The nearest customers of `customer` with their cosine similarity,
    /// best first. Searched on each call when the model was fitted for every
    /// customer ([`TifuParams::fit`]).
    pub fn neighbours(&self, customer: u32) -> std::borrow::Cow<'_, [(u32, f32)]> {
        let c = customer as usize;
        match &self.neighbours {
            Neighbours::Stored(lists) => std::borrow::Cow::Borrowed(&lists[c]),
            Neighbours::OnDemand(search) => {
                std::borrow::Cow::Owned(search.search(&self.vectors, self.params.neighbours, c))
            }
        }
    }

    /// True if `customer` has a positive line of `item` in the training log.
    pub fn has_bought(&self, customer: u32, item: u32) -> bool {
        self.bought.get(customer as usize, item) > 0.0
    }

    /// Writes the TIFU score `p_u` of every item into `out` (length
    /// `n_items`). An unknown customer (index out of range) scores 0 everywhere.
    pub fn scores(&self, customer: u32, out: &mut [f32]) {
        assert_eq!(out.len(), self.n_items(), "score buffer length");
        out.fill(0.0);
        let c = customer as usize;
        if c >= self.n_customers() {
            return;
        }
        let alpha = self.params.alpha;
        let (items, vals) = self.vectors.row(c);
        for (&i, &v) in items.iter().zip(vals) {
            out[i as usize] += alpha * v;
        }
        self.add_neighbours(c, 1.0 - alpha, out);
    }

    /// Writes `(1/K) Σ_{w ∈ N_K(u)} u_w`, the neighbour half of the score
    /// before the `1 − α` weight, into `out` (length `n_items`).
    pub fn neighbour_mean(&self, customer: u32, out: &mut [f32]) {
        assert_eq!(out.len(), self.n_items(), "score buffer length");
        out.fill(0.0);
        let c = customer as usize;
        if c < self.n_customers() {
            self.add_neighbours(c, 1.0, out);
        }
    }

    /// Adds `weight / K` times each neighbour's vector to `out`.
    fn add_neighbours(&self, c: usize, weight: f32, out: &mut [f32]) {
        if self.params.neighbours == 0 || weight == 0.0 {
            return;
        }
        let w = weight / self.params.neighbours as f32;
        for &(other, _) in self.neighbours(c as u32).iter() {
            let (items, vals) = self.vectors.row(other as usize);
            for (&i, &v) in items.iter().zip(vals) {
                out[i as usize] += w * v;
            }
        }
    }

    /// Adds the CF blend (module docs) to TIFU `scores` in place. `cf` holds
    /// the customer's CF score per item; items for which `skip` is true are
    /// not candidates for the normalisation.
    pub fn blend(&self, customer: u32, scores: &mut [f32], cf: &[f32], skip: impl Fn(u32) -> bool) {
        assert_eq!(cf.len(), scores.len(), "CF score length");
        let beta = self.params.beta;
        if beta == 0.0 {
            return;
        }
        let top = scores.iter().copied().fold(0f32, f32::max);
        let scale = beta * if top > 0.0 { top } else { 1.0 };
        let candidate =
            |i: usize| cf[i].is_finite() && !skip(i as u32) && !self.has_bought(customer, i as u32);
        match self.params.cf_normalisation {
            CfNormalisation::Max => {
                let max = (0..cf.len())
                    .filter(|&i| candidate(i))
                    .map(|i| cf[i])
                    .fold(0f32, f32::max);
                if max > 0.0 {
                    for i in 0..cf.len() {
                        if cf[i] > 0.0 && candidate(i) {
                            scores[i] += scale * cf[i] / max;
                        }
                    }
                }
            }
            CfNormalisation::Rank => {
                let mut order: Vec<(u32, f32)> = (0..cf.len())
                    .filter(|&i| candidate(i))
                    .map(|i| (i as u32, cf[i]))
                    .collect();
                order.sort_by(crate::topk::rank_order);
                for (rank, &(i, _)) in order.iter().enumerate() {
                    scores[i as usize] += scale / (1 + rank) as f32;
                }
            }
        }
    }

    /// The `k` best items for `customer`, best first, leaving out items for
    /// which `skip` is true. Without `cf` only items with a positive TIFU score
    /// are listed; with `cf` (the customer's CF score per item, length
    /// `n_items`) never-bought items get the blend of the module docs.
    pub fn recommend(
        &self,
        customer: u32,
        k: usize,
        skip: impl Fn(u32) -> bool,
        cf: Option<&[f32]>,
    ) -> Vec<(u32, f32)> {
        let mut scores = vec![0f32; self.n_items()];
        self.scores(customer, &mut scores);
        match cf {
            None => {
                let mut list = top_k_dense(&scores, k, &skip);
                list.retain(|e| e.1 > 0.0);
                list
            }
            Some(cf) => {
                self.blend(customer, &mut scores, cf, &skip);
                top_k_dense(&scores, k, |i| skip(i) || !cf[i as usize].is_finite())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
    }

    fn row(model: &TifuKnn, c: u32) -> Vec<(u32, f32)> {
        let (i, v) = model.personal_vector(c);
        i.iter().copied().zip(v.iter().copied()).collect()
    }

    #[test]
    fn decay_on_a_hand_case() {
        // Baskets of c: [a], [a, b], [b]; m = 2 -> groups {[a]}, {[a, b], [b]}.
        // v1 = a; v2 = (0.5 (a + b) + b) / 2 = 0.25 a + 0.75 b
        // u  = (0.5 v1 + v2) / 2 = 0.375 a + 0.375 b
        let mut log = PurchaseLog::default();
        log.push("o1", "c", "a", 0, 1.0, 1.0);
        log.push("o2", "c", "a", 10, 3.0, 1.0);
        log.push("o2", "c", "b", 10, 1.0, 1.0);
        log.push("o3", "c", "b", 20, 2.0, 1.0);
        let params = TifuParams {
            group_size: 2,
            within_decay: 0.5,
            group_decay: 0.5,
            neighbours: 0,
            alpha: 1.0,
            ..TifuParams::default()
        };
        let model = params.fit(&log).unwrap();
        let u = row(&model, 0);
        assert_eq!(u.len(), 2);
        assert!(close(u[0].1, 0.375) && close(u[1].1, 0.375), "{u:?}");
        // m = 3: one group; u = (0.25 a + 0.5 (a + b) + b) / 3.
        let model = TifuParams {
            group_size: 3,
            ..params.clone()
        }
        .fit(&log)
        .unwrap();
        let u = row(&model, 0);
        assert!(
            close(u[0].1, 0.75 / 3.0) && close(u[1].1, 1.5 / 3.0),
            "{u:?}"
        );
    }

    #[test]
    fn full_returns_are_not_preferences_and_order_is_by_time() {
        let mut log = PurchaseLog::default();
        // o2 comes first in the input but is later in time.
        log.push("o2", "c", "a", 50, 1.0, 1.0);
        log.push("o1", "c", "b", 10, 1.0, 1.0);
        log.push("o1", "c", "x", 10, 2.0, 1.0);
        log.push("C1", "c", "x", 11, -2.0, 1.0);
        let params = TifuParams {
            group_size: 1,
            within_decay: 1.0,
            group_decay: 0.5,
            neighbours: 0,
            alpha: 1.0,
            ..TifuParams::default()
        };
        let model = params.fit(&log).unwrap();
        // Groups {o1: b}, {o2: a}: u = (0.5 b + a) / 2.
        assert_eq!(row(&model, 0), vec![(0, 0.5), (1, 0.25)]);
        assert!(model.has_bought(0, 2));
        let list = model.recommend(0, 10, |_| false, None);
        assert_eq!(list, vec![(0, 0.5), (1, 0.25)]);
    }

    fn small_log() -> PurchaseLog {
        let mut log = PurchaseLog::default();
        let mut t = 0;
        for c in 0..30 {
            for o in 0..(1 + c % 4) {
                t += 1;
                for i in 0..(2 + (c * 7 + o * 3) % 5) {
                    let item = (c * 3 + i * 5 + o) % 17;
                    log.push(
                        &format!("o{c}-{o}"),
                        &format!("c{c}"),
                        &format!("i{item}"),
                        t,
                        1.0,
                        1.0,
                    );
                }
            }
        }
        log
    }

    #[test]
    fn neighbours_and_blend() {
        let log = small_log();
        let params = TifuParams {
            neighbours: 3,
            alpha: 0.5,
            beta: 0.5,
            ..TifuParams::default()
        };
        let model = params.fit(&log).unwrap();
        let n = model.n_items();
        // Neighbours are the exact top 3 by cosine.
        for c in 0..model.n_customers() as u32 {
            let nb = model.neighbours(c);
            assert!(nb.len() <= 3);
            assert!(
                nb.iter()
                    .all(|&(o, s)| o != c && s > 0.0 && s <= 1.0 + 1e-5)
            );
            assert!(nb.windows(2).all(|w| w[0].1 >= w[1].1));
        }
        // Scores: alpha * own + (1 - alpha) / K * sum of neighbours.
        let mut s = vec![0f32; n];
        model.scores(0, &mut s);
        let mut expected = vec![0f32; n];
        for (i, v) in row(&model, 0) {
            expected[i as usize] += 0.5 * v;
        }
        for &(o, _) in model.neighbours(0).iter() {
            for (i, v) in row(&model, o) {
                expected[i as usize] += 0.5 / 3.0 * v;
            }
        }
        assert!(s.iter().zip(&expected).all(|(a, b)| close(*a, *b)));
        // The blend only touches never-bought items.
        let cf: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut blended = s.clone();
        model.blend(0, &mut blended, &cf, |_| false);
        for i in 0..n {
            if model.has_bought(0, i as u32) {
                assert_eq!(blended[i], s[i]);
            } else if i > 0 {
                assert!(blended[i] > s[i]);
            }
        }
        let list = model.recommend(0, n, |i| i == 3, Some(&cf));
        assert_eq!(list.len(), n - 1);
        assert!(list.iter().all(|e| e.0 != 3));
    }

    #[test]
    fn a_neighbour_pool_keeps_the_exact_similarities_of_its_members() {
        let log = small_log();
        let exact = TifuParams {
            neighbours: 30,
            ..TifuParams::default()
        };
        let all = exact.fit(&log).unwrap();
        // 30 customers, all with a history: a pool of 30 or more is the
        // exact search.
        let same = TifuParams {
            neighbour_pool: 30,
            ..exact.clone()
        }
        .fit(&log)
        .unwrap();
        // A pool of 8: every 4th customer (0, 4, ..., 28).
        let pooled = TifuParams {
            neighbour_pool: 8,
            ..exact.clone()
        }
        .fit(&log)
        .unwrap();
        let mut in_pool_seen = HashSet::new();
        for c in 0..all.n_customers() as u32 {
            assert_eq!(same.neighbours(c), all.neighbours(c));
            // With K = 30 the exact list holds every similar customer; the
            // pooled list is that list restricted to the pool, same
            // similarities, same order.
            let expected: Vec<(u32, f32)> = all
                .neighbours(c)
                .iter()
                .copied()
                .filter(|&(o, _)| o % 4 == 0)
                .collect();
            assert_eq!(pooled.neighbours(c), expected.as_slice(), "customer {c}");
            in_pool_seen.extend(pooled.neighbours(c).iter().map(|e| e.0));
        }
        assert_eq!(in_pool_seen.len(), 8, "{in_pool_seen:?}");
    }

    #[test]
    fn fit_for_searches_only_the_listed_customers() {
        let log = small_log();
        let params = TifuParams {
            neighbours: 4,
            ..TifuParams::default()
        };
        let all = params.fit(&log).unwrap();
        let some = params.fit_for(&log, Some(&[1, 7, 29])).unwrap();
        for c in 0..all.n_customers() as u32 {
            if [1, 7, 29].contains(&c) {
                assert!(!all.neighbours(c).is_empty(), "customer {c}");
                assert_eq!(some.neighbours(c), all.neighbours(c), "customer {c}");
            } else {
                assert!(some.neighbours(c).is_empty(), "customer {c}");
            }
            assert_eq!(row(&some, c), row(&all, c), "customer {c}: vector");
        }
    }

    #[test]
    fn deterministic() {
        let log = small_log();
        let params = TifuParams {
            neighbours: 5,
            ..TifuParams::default()
        };
        let a = params.fit(&log).unwrap();
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| params.fit(&log).unwrap());
        for c in 0..a.n_customers() as u32 {
            assert_eq!(a.neighbours(c), b.neighbours(c));
            assert_eq!(
                a.recommend(c, 10, |_| false, None),
                b.recommend(c, 10, |_| false, None)
            );
        }
    }

    #[test]
    fn parameter_checks() {
        let ok = TifuParams::default();
        assert!(ok.check().is_ok());
        let bad = [
            TifuParams {
                group_size: 0,
                ..ok.clone()
            },
            TifuParams {
                within_decay: 0.0,
                ..ok.clone()
            },
            TifuParams {
                group_decay: 1.5,
                ..ok.clone()
            },
            TifuParams {
                alpha: -0.1,
                ..ok.clone()
            },
            TifuParams {
                beta: f32::NAN,
                ..ok.clone()
            },
            TifuParams {
                neighbour_pool: 0,
                ..ok.clone()
            },
        ];
        for p in bad {
            assert!(
                matches!(p.check(), Err(TifuError::InvalidParam { .. })),
                "{p:?}"
            );
            assert!(p.fit(&PurchaseLog::default()).is_err());
        }
        let json = serde_json::to_string(&ok).unwrap();
        assert_eq!(serde_json::from_str::<TifuParams>(&json).unwrap(), ok);
    }
}
