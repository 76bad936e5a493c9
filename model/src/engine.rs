//! The trained engine: every model of one artifact behind one query API.
//!
//! `encore-serve` answers HTTP requests from an [`Engine`] and `encore-train
//! recommend` writes batch lists from one; neither needs to know which model
//! produced a list beyond the [`Source`] it reports.

use crate::ann::{SimilarIndex, VectorSearch};
use crate::cf::als::Als;
use crate::cf::item_knn::CoPurchase;
use crate::cf::popularity::Popularity;
use crate::customer::book::CustomerBook;
use crate::customer::orders::OrderTable;
use crate::customer::replenishment::Replenishment;
use crate::manifest::Manifest;
use crate::topk::{rank_order, top_k_dense};
use encore_data::{Csr, CsrBuilder, IdMap};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::OnceLock;

/// Length of the similar-items list kept per item after its first request
/// (see [`Engine::similar`]); longer requests search the index every time.
pub const SIMILAR_CACHE_LEN: usize = 50;

/// A ranked list kept for the engine's life.
type KeptList = Box<[(u32, f32)]>;

/// What the storefront knows of an item, from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Unavailable items are never recommended.
    #[serde(default = "yes")]
    pub available: bool,
}

fn yes() -> bool {
    true
}

impl Default for ItemMeta {
    fn default() -> Self {
        ItemMeta {
            title: None,
            category: None,
            available: true,
        }
    }
}

/// Where a recommendation list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The personalised model.
    Model,
    /// The popularity list, for customers or baskets the model does not know.
    Fallback,
}

/// Filters applied to every list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Items never to return.
    pub exclude: HashSet<u32>,
    /// Only items of this catalog category.
    pub category: Option<String>,
    /// Keep items the customer already bought (recommendations only).
    pub include_purchased: bool,
}

/// The `k` best items by `scores` (one per item) that `allowed` keeps and
/// `bought` (sorted item indices) does not hold: a customer's ALS list of
/// new items, as [`Engine::recommend`] ranks and
/// [`Engine::with_new_item_lists`] keeps it.
pub(crate) fn top_unbought(
    scores: &[f32],
    k: usize,
    bought: &[u32],
    allowed: impl Fn(u32) -> bool,
) -> Ranked {
    top_k_dense(scores, k, |i| {
        !allowed(i) || bought.binary_search(&i).is_ok()
    })
}

/// Customers per block of [`build_lists`].
const LIST_BLOCK: usize = 16_384;

/// `N` lists per customer of `customers` (customer indices, one row each
/// in this order), computed by `list` in parallel (each worker with its
/// own scratch from `init`), as `N` matrices of scores with a row per
/// customer. Customers go one block at a time, each block's lists appended
/// to the matrices and dropped: the lists of all customers are never held
/// twice. A customer's row depends on nothing but `list` of that customer,
/// so a shard of the customers gets the rows the whole set gets.
pub(crate) fn build_lists<S, const N: usize>(
    customers: &[u32],
    n_items: usize,
    init: impl Fn() -> S + Sync + Send,
    list: impl Fn(&mut S, u32) -> [Ranked; N] + Sync + Send,
) -> [Csr; N] {
    build_lists_chunked(
        customers,
        n_items,
        1,
        init,
        |_, _| {},
        |scratch, _, c| list(scratch, c),
    )
}

/// [`build_lists`] for work shared by a few customers: each worker takes
/// `chunk` consecutive customers at a time, calls `prepare` with them, then
/// `list` for each with its position in the chunk. The lists are the same
/// for any `chunk` as long as `list` gives each customer's own.
pub(crate) fn build_lists_chunked<S, const N: usize>(
    customers: &[u32],
    n_items: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    prepare: impl Fn(&mut S, &[u32]) + Sync + Send,
    list: impl Fn(&mut S, usize, u32) -> [Ranked; N] + Sync + Send,
) -> [Csr; N] {
    use rayon::prelude::*;
    let chunk = chunk.max(1);
    let mut builders: [CsrBuilder; N] = std::array::from_fn(|_| CsrBuilder::new(n_items));
    for block in customers.chunks(LIST_BLOCK) {
        let block: Vec<[Ranked; N]> = block
            .par_chunks(chunk)
            .map_init(&init, |scratch, some| {
                prepare(scratch, some);
                some.iter()
                    .enumerate()
                    .map(|(at, &c)| list(scratch, at, c))
                    .collect::<Vec<_>>()
            })
            .flatten_iter()
            .collect();
        for lists in &block {
            for (builder, l) in builders.iter_mut().zip(lists) {
                builder.push_row(l);
            }
        }
    }
    builders.map(CsrBuilder::finish)
}

/// Every customer index of an engine or log of `n` customers, in order.
pub(crate) fn all_customers(n: usize) -> Vec<u32> {
    let n = u32::try_from(n).expect("customers are indexed by u32");
    (0..n).collect()
}

/// A ranked list of `(item index, score)`, best first.
pub type Ranked = Vec<(u32, f32)>;

/// All the pieces an engine is made of; see [`Engine::from_parts`].
pub struct EngineParts {
    pub manifest: Manifest,
    pub customers: IdMap,
    pub items: IdMap,
    pub item_meta: Vec<ItemMeta>,
    /// Customer x item purchase history of the training period.
    pub history: Csr,
    pub als: Als,
    pub copurchase: CoPurchase,
    pub popularity: Popularity,
    pub similar: SimilarIndex,
    /// Customer models and profiles at the end of the training period.
    pub customer_book: CustomerBook,
    /// Every customer's orders (date, lines, units, value).
    pub orders: OrderTable,
    /// Replenishment cycles per item and per (customer, item).
    pub replenishment: Replenishment,
    /// Precomputed repeat-aware "for you" scores (customer x item), if built.
    pub for_you: Option<Csr>,
    /// Precomputed head of every customer's ALS list of items never bought
    /// (customer x item scores), if built: see [`Engine::recommend`].
    pub new_items: Option<Csr>,
    /// Every item's similar-items list of [`SIMILAR_CACHE_LEN`] (item x item
    /// scores), if built: see [`Engine::with_similar_lists`].
    pub similar_lists: Option<Csr>,
}

/// A trained engine, ready to answer queries. Cheap to share behind an `Arc`.
pub struct Engine {
    manifest: Manifest,
    customers: IdMap,
    items: IdMap,
    item_meta: Vec<ItemMeta>,
    history: Csr,
    als: Als,
    copurchase: CoPurchase,
    popularity: Popularity,
    similar: SimilarIndex,
    customer_book: CustomerBook,
    orders: OrderTable,
    replenishment: Replenishment,
    for_you: Option<Csr>,
    new_items: Option<Csr>,
    similar_lists: Option<Csr>,
    /// Per item: whether anyone bought it (net) in the training period.
    bought_by_anyone: Vec<bool>,
    /// The ALS interaction value of one unit bought, under the trained scaling.
    unit_weight: f32,
    /// Per item: its unfiltered similar-items list of up to
    /// [`SIMILAR_CACHE_LEN`], filled by the first request for the item.
    similar_cache: Vec<OnceLock<KeptList>>,
}

/// An engine whose parts do not fit together.
#[derive(Debug, thiserror::Error)]
#[error("inconsistent engine: {0}")]
pub struct InconsistentEngine(pub String);

impl Engine {
    /// Assembles an engine, checking that every part agrees on the customer and item counts.
    pub fn from_parts(p: EngineParts) -> Result<Engine, InconsistentEngine> {
        let (nc, ni) = (p.customers.len(), p.items.len());
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(InconsistentEngine(format!(
                    "{what} does not match {nc} customers x {ni} items"
                )))
            }
        };
        check(p.item_meta.len() == ni, "item metadata")?;
        check(
            p.history.n_rows() == nc && p.history.n_cols() == ni,
            "purchase history",
        )?;
        check(
            p.als.user_factors().nrows() == nc && p.als.item_factors().nrows() == ni,
            "ALS factors",
        )?;
        let nb = p.copurchase.as_csr();
        check(
            nb.n_rows() == ni && nb.n_cols() == ni,
            "co-purchase neighbours",
        )?;
        check(
            p.popularity
                .ranked()
                .iter()
                .all(|&(i, _)| (i as usize) < ni),
            "popularity list",
        )?;
        check(
            p.similar.len() == ni && p.similar.dim() == p.als.factors(),
            "similar-items index",
        )?;
        check(p.customer_book.len() == nc, "customer profiles")?;
        check(p.orders.len() == nc, "customer orders")?;
        check(
            p.replenishment.n_customers() == nc && p.replenishment.n_items() == ni,
            "replenishment model",
        )?;
        if let Some(f) = &p.for_you {
            check(f.n_rows() == nc && f.n_cols() == ni, "for-you lists")?;
        }
        if let Some(f) = &p.new_items {
            check(f.n_rows() == nc && f.n_cols() == ni, "new-item lists")?;
        }
        if let Some(f) = &p.similar_lists {
            check(
                f.n_rows() == ni
                    && f.n_cols() == ni
                    && f.indices().iter().all(|&i| (i as usize) < ni),
                "similar-items lists",
            )?;
        }
        let mut bought_by_anyone = vec![false; ni];
        for &i in p.history.indices() {
            bought_by_anyone[i as usize] = true;
        }
        // Same mapping as `pipeline::interaction_matrix` applies to a quantity of 1.
        let unit_weight = match p.manifest.config["als"]["scaling"].as_str() {
            Some("log") => std::f32::consts::LN_2,
            _ => 1.0,
        };
        Ok(Engine {
            similar_cache: (0..ni).map(|_| OnceLock::new()).collect(),
            bought_by_anyone,
            unit_weight,
            manifest: p.manifest,
            customers: p.customers,
            items: p.items,
            item_meta: p.item_meta,
            history: p.history,
            als: p.als,
            copurchase: p.copurchase,
            popularity: p.popularity,
            similar: p.similar,
            customer_book: p.customer_book,
            orders: p.orders,
            replenishment: p.replenishment,
            for_you: p.for_you,
            new_items: p.new_items,
            similar_lists: p.similar_lists,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest, to record evaluation metrics before saving.
    pub fn manifest_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }

    pub fn customers(&self) -> &IdMap {
        &self.customers
    }

    pub fn items(&self) -> &IdMap {
        &self.items
    }

    pub fn item_meta(&self, item: u32) -> &ItemMeta {
        &self.item_meta[item as usize]
    }

    pub fn history(&self) -> &Csr {
        &self.history
    }

    pub fn als(&self) -> &Als {
        &self.als
    }

    pub fn copurchase(&self) -> &CoPurchase {
        &self.copurchase
    }

    pub fn popularity(&self) -> &Popularity {
        &self.popularity
    }

    pub fn similar_index(&self) -> &SimilarIndex {
        &self.similar
    }

    /// Customer models and per-customer profiles.
    pub fn customer_book(&self) -> &CustomerBook {
        &self.customer_book
    }

    /// Replenishment cycles and buy-again scores.
    /// Every customer's orders, oldest first ([`OrderTable`]).
    pub fn customer_orders(&self) -> &OrderTable {
        &self.orders
    }

    /// This engine with its table of orders replaced, checked against the
    /// engine's customer count.
    pub fn with_orders(mut self, orders: OrderTable) -> Result<Engine, InconsistentEngine> {
        if orders.len() != self.customers.len() {
            return Err(InconsistentEngine(format!(
                "orders of {} customers do not match {} customers",
                orders.len(),
                self.customers.len()
            )));
        }
        self.orders = orders;
        Ok(self)
    }

    pub fn replenishment(&self) -> &Replenishment {
        &self.replenishment
    }

    /// The precomputed heads of the ALS new-item lists, if the model has them.
    pub fn new_item_lists(&self) -> Option<&Csr> {
        self.new_items.as_ref()
    }

    /// Every item's kept similar-items list, if the model has them.
    pub fn similar_lists(&self) -> Option<&Csr> {
        self.similar_lists.as_ref()
    }

    /// Searches the index once for every item and keeps each item's
    /// unfiltered list of [`SIMILAR_CACHE_LEN`] (what the first request for
    /// the item would otherwise search and keep, identical), so that a
    /// freshly loaded model answers [`Engine::similar`] without a search.
    /// Worth it where a search scans the catalog (the exact index): after
    /// a reload, the first request for each item would pay that scan.
    pub fn with_similar_lists(mut self) -> Engine {
        let items = all_customers(self.items.len());
        let filter = ListFilter::default();
        let [lists] = build_lists(
            &items,
            self.items.len(),
            || (),
            |_, i| [self.similar_search(i, SIMILAR_CACHE_LEN, &filter)],
        );
        self.similar_lists = Some(lists);
        self
    }

    /// Precomputes the first `top_n` entries of every customer's ALS list
    /// of items never bought (available ones only), as [`Engine::recommend`]
    /// ranks them with the default filter; `top_n = 0` drops the lists.
    pub fn with_new_item_lists(mut self, top_n: usize) -> Engine {
        self.new_items = None;
        if top_n == 0 {
            return self;
        }
        let lists = self.new_item_rows(&all_customers(self.customers.len()), top_n);
        self.new_items = Some(lists);
        self
    }

    /// The rows [`Engine::with_new_item_lists`] keeps for `customers` (one
    /// row each, in that order): what a shard of the customers computes.
    pub fn new_item_rows(&self, customers: &[u32], top_n: usize) -> Csr {
        let filter = ListFilter::default();
        let [lists] = build_lists(
            customers,
            self.items.len(),
            || vec![0f32; self.items.len()],
            |scores, c| match self.history.row_nnz(c as usize) {
                0 => [Vec::new()],
                _ => [self.score_als(c, top_n, &filter, scores)],
            },
        );
        lists
    }

    /// This engine with the precomputed per-customer lists replaced: the
    /// repeat-aware "for you" lists and the heads of the ALS new-item lists
    /// (customer x item scores, or none), checked against the engine's
    /// customer and item counts.
    pub fn with_customer_lists(
        mut self,
        for_you: Option<Csr>,
        new_items: Option<Csr>,
    ) -> Result<Engine, InconsistentEngine> {
        let (nc, ni) = (self.customers.len(), self.items.len());
        for (what, m) in [("for-you lists", &for_you), ("new-item lists", &new_items)] {
            if let Some(m) = m
                && (m.n_rows() != nc || m.n_cols() != ni)
            {
                return Err(InconsistentEngine(format!(
                    "{what} of {} x {} do not match {nc} customers x {ni} items",
                    m.n_rows(),
                    m.n_cols()
                )));
            }
        }
        self.for_you = for_you;
        self.new_items = new_items;
        Ok(self)
    }

    /// The precomputed repeat-aware lists, if the model has them.
    pub fn for_you_lists(&self) -> Option<&Csr> {
        self.for_you.as_ref()
    }

    /// The "for you" list as served. With `include_purchased` and a
    /// precomputed repeat-aware list for the customer, that list (the learned
    /// re-ranker, or TIFU-KNN blended with ALS: see the manifest's
    /// `for_you`), filtered, then filled from ALS; otherwise [`Engine::recommend`]
    /// (ALS, which ranks items the customer never bought best).
    pub fn for_you(
        &self,
        customer: Option<u32>,
        k: usize,
        filter: &ListFilter,
    ) -> (Source, Ranked) {
        if let Some(answer) = self.for_you_cached(customer, k, filter) {
            return answer;
        }
        let Some((c, mut list)) =
            customer.and_then(|c| Some((c, self.repeat_aware_head(c, k, filter)?)))
        else {
            return self.recommend(customer, k, filter);
        };
        // Fill from ALS, below every repeat-aware entry.
        let floor = list.last().map_or(0.0, |e| e.1);
        let (_, more) = self.recommend(Some(c), k + list.len(), filter);
        let have: HashSet<u32> = list.iter().map(|e| e.0).collect();
        let mut rank = 0.0;
        for (i, _) in more.into_iter().filter(|e| !have.contains(&e.0)) {
            if list.len() == k {
                break;
            }
            rank += 1.0;
            list.push((i, floor - rank));
        }
        (Source::Model, list)
    }

    /// The answer of [`Engine::for_you`] if it needs no scoring of the
    /// catalog: the fallback list, the repeat-aware list when `k` of its
    /// items pass the filter, or the head of the precomputed new-item list
    /// (see [`Engine::recommend`]). Cheap enough to answer inline.
    pub fn for_you_cached(
        &self,
        customer: Option<u32>,
        k: usize,
        filter: &ListFilter,
    ) -> Option<(Source, Ranked)> {
        let Some(c) = customer else {
            return Some((Source::Fallback, self.fallback(k, filter)));
        };
        if let Some(list) = self.repeat_aware_head(c, k, filter) {
            return (list.len() == k).then_some((Source::Model, list));
        }
        if self.history.row_nnz(c as usize) == 0 {
            return Some((Source::Fallback, self.fallback(k, filter)));
        }
        self.precomputed_new_items(c, k, filter)
            .map(|list| (Source::Model, list))
    }

    /// The first `k` entries of the customer's precomputed repeat-aware list
    /// that pass `filter`, if the list is asked for (`include_purchased`)
    /// and the customer has one.
    fn repeat_aware_head(&self, c: u32, k: usize, filter: &ListFilter) -> Option<Ranked> {
        let lists = self.for_you.as_ref()?;
        if !filter.include_purchased || lists.row_nnz(c as usize) == 0 {
            return None;
        }
        let mut list = self.allowed_entries(lists, c, filter);
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        list.truncate(k);
        Some(list)
    }

    /// The entries of row `c` of precomputed `lists` that pass `filter`, in
    /// item order.
    fn allowed_entries(&self, lists: &Csr, c: u32, filter: &ListFilter) -> Ranked {
        let (items, scores) = lists.row(c as usize);
        items
            .iter()
            .zip(scores)
            .filter(|&(&i, _)| self.allowed(i, filter))
            .map(|(&i, &s)| (i, s))
            .collect()
    }

    pub(crate) fn all_item_meta(&self) -> &[ItemMeta] {
        &self.item_meta
    }

    /// True if `item` passes the availability, category and exclusion filters.
    pub(crate) fn allowed(&self, item: u32, filter: &ListFilter) -> bool {
        let meta = &self.item_meta[item as usize];
        meta.available
            && !filter.exclude.contains(&item)
            && filter
                .category
                .as_deref()
                .is_none_or(|c| meta.category.as_deref() == Some(c))
    }

    /// Items closest to `item` in the ALS embedding space (cosine), via HNSW.
    ///
    /// Without a filter and for `k` up to [`SIMILAR_CACHE_LEN`], the answer is
    /// the first `k` of the item's list of [`SIMILAR_CACHE_LEN`], searched on
    /// the item's first request and kept for the engine's life: the search is
    /// deterministic, so a kept list equals a new search of that length, and a
    /// storefront asks for the same items over and over.
    pub fn similar(&self, item: u32, k: usize, filter: &ListFilter) -> Ranked {
        if let Some(list) = self.similar_cached(item, k, filter) {
            return list;
        }
        if Self::cacheable(k, filter) {
            let list = self.similar_cache[item as usize].get_or_init(|| {
                self.similar_search(item, SIMILAR_CACHE_LEN, filter)
                    .into_boxed_slice()
            });
            return list.iter().take(k).copied().collect();
        }
        self.similar_search(item, k, filter)
    }

    /// The answer of [`Engine::similar`] if it needs no index search (the
    /// item's list is kept and the request takes a prefix of it).
    pub fn similar_cached(&self, item: u32, k: usize, filter: &ListFilter) -> Option<Ranked> {
        if !Self::cacheable(k, filter) {
            return None;
        }
        if let Some(kept) = &self.similar_lists {
            // Stored by item index; the search ranked them by `rank_order`.
            let (cols, vals) = kept.row(item as usize);
            let mut list: Ranked = cols.iter().copied().zip(vals.iter().copied()).collect();
            list.sort_unstable_by(rank_order);
            list.truncate(k);
            return Some(list);
        }
        let list = self.similar_cache.get(item as usize)?.get()?;
        Some(list.iter().take(k).copied().collect())
    }

    fn cacheable(k: usize, filter: &ListFilter) -> bool {
        k <= SIMILAR_CACHE_LEN && filter.exclude.is_empty() && filter.category.is_none()
    }

    /// The index search behind [`Engine::similar`].
    fn similar_search(&self, item: u32, k: usize, filter: &ListFilter) -> Ranked {
        let query = self.als.item_factors().row(item as usize).to_vec();
        let n = self.items.len();
        let mut fetch = (k + 1 + filter.exclude.len()).max(2 * k + 8).min(n);
        loop {
            let found: Ranked = self
                .similar
                .search(&query, fetch)
                .into_iter()
                .filter(|&(i, _)| i != item && self.allowed(i, filter))
                .take(k)
                .collect();
            if found.len() >= k || fetch >= n {
                return found;
            }
            fetch = (fetch * 4).min(n);
        }
    }

    /// Items most often bought together with `item` (co-purchase neighbours).
    pub fn bought_together(&self, item: u32, k: usize, filter: &ListFilter) -> Ranked {
        self.copurchase
            .neighbours(item)
            .into_iter()
            .filter(|&(i, _)| i != item && self.allowed(i, filter))
            .take(k)
            .collect()
    }

    /// The popularity list under `filter`.
    pub fn fallback(&self, k: usize, filter: &ListFilter) -> Ranked {
        self.popularity.top(k, |i| !self.allowed(i, filter))
    }

    /// Personalised recommendations for a known customer index, or the fallback
    /// list for `None` or a customer with no usable history.
    ///
    /// ALS ranks the catalog for the customer (items bought in training left
    /// out unless `filter.include_purchased`). When the engine holds the
    /// head of the customer's list ([`Engine::with_new_item_lists`]) and `k`
    /// of its items pass `filter`, the answer is taken from it, identical
    /// and without scoring the catalog; otherwise the catalog is scored.
    pub fn recommend(
        &self,
        customer: Option<u32>,
        k: usize,
        filter: &ListFilter,
    ) -> (Source, Ranked) {
        let Some(c) = customer.filter(|&c| self.history.row_nnz(c as usize) > 0) else {
            return (Source::Fallback, self.fallback(k, filter));
        };
        if let Some(list) = self.precomputed_new_items(c, k, filter) {
            return (Source::Model, list);
        }
        let mut scores = vec![0f32; self.items.len()];
        (Source::Model, self.score_als(c, k, filter, &mut scores))
    }

    /// The customer's list from the precomputed head of their ALS new-item
    /// list, if it holds `k` items that pass `filter`: the head is the
    /// catalog's order with the default filter, and a filter only removes
    /// items from it, so its first `k` survivors are what scoring the whole
    /// catalog would give.
    fn precomputed_new_items(&self, c: u32, k: usize, filter: &ListFilter) -> Option<Ranked> {
        if filter.include_purchased {
            return None;
        }
        let lists = self.new_items.as_ref()?;
        if lists.row_nnz(c as usize) < k {
            return None;
        }
        let mut list = self.allowed_entries(lists, c, filter);
        if list.len() < k {
            return None;
        }
        list.sort_by(rank_order);
        list.truncate(k);
        Some(list)
    }

    /// ALS over the whole catalog for customer `c`: the top `k` items that
    /// pass `filter` (items bought in training left out unless it includes
    /// them). `scores` is scratch space of one entry per item.
    fn score_als(&self, c: u32, k: usize, filter: &ListFilter, scores: &mut [f32]) -> Ranked {
        self.als.score_user(c as usize, scores);
        let bought = match filter.include_purchased {
            true => &[][..],
            false => self.history.row(c as usize).0,
        };
        top_unbought(scores, k, bought, |i| self.allowed(i, filter))
    }

    /// Recommendations for an anonymous basket of item indices: the basket is
    /// folded into the ALS space as if it were a customer who bought one unit
    /// of each item. Basket items are never returned. A basket with no item
    /// that anyone bought in the training period gets the fallback list.
    pub fn recommend_basket(
        &self,
        basket: &[u32],
        k: usize,
        filter: &ListFilter,
    ) -> (Source, Ranked) {
        let mut weighted: Vec<(u32, f32)> = basket
            .iter()
            .copied()
            .filter(|&i| {
                self.bought_by_anyone
                    .get(i as usize)
                    .copied()
                    .unwrap_or(false)
            })
            .map(|i| (i, self.unit_weight))
            .collect();
        if weighted.is_empty() {
            let mut f = filter.clone();
            f.exclude.extend(basket.iter().copied());
            return (Source::Fallback, self.fallback(k, &f));
        }
        weighted.sort_unstable_by_key(|&(i, _)| i);
        weighted.dedup_by_key(|&mut (i, _)| i);
        let user = self.als.fold_in(&weighted);
        let mut scores = vec![0f32; self.items.len()];
        self.als.score_vector(&user, &mut scores);
        let list = top_k_dense(&scores, k, |i| {
            !self.allowed(i, filter) || basket.contains(&i)
        });
        (Source::Model, list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::DataSummary;
    use crate::pipeline::{EngineConfig, ForYouModel, Stage, train_engine};
    use encore_data::PurchaseLog;
    use encore_data::synth::{SynthParams, generate};

    fn engine() -> Engine {
        let log = generate(&SynthParams {
            customers: 300,
            items: 120,
            purchases: 6_000,
            categories: 6,
            ..SynthParams::default()
        });
        let meta = vec![ItemMeta::default(); log.items.len()];
        let mut config = EngineConfig::default();
        config.als.factors = 8;
        config.als.iterations = 3;
        config.for_you.max_customers = Some(0);
        train_engine(&log, meta, &config, DataSummary::default(), &mut |_| {}).unwrap()
    }

    /// A small seeded history and its catalog: three categories (item index
    /// mod 3), every seventh item unavailable.
    fn small_catalog() -> (PurchaseLog, Vec<ItemMeta>) {
        let log = generate(&SynthParams {
            customers: 200,
            items: 150,
            purchases: 4_000,
            ..SynthParams::default()
        });
        let meta = (0..log.items.len())
            .map(|i| ItemMeta {
                category: Some(format!("c{}", i % 3)),
                available: i % 7 != 0,
                ..ItemMeta::default()
            })
            .collect();
        (log, meta)
    }

    /// Precomputed new-item lists answer exactly as scoring the catalog
    /// does, for any `k` and filter, and step aside when they cannot.
    #[test]
    fn precomputed_new_item_lists_answer_as_scoring_the_catalog() {
        let (log, meta) = small_catalog();
        let mut config = EngineConfig::default();
        config.als.factors = 8;
        config.als.iterations = 3;
        config.for_you.max_customers = Some(0);
        config.for_you.new_items_top_n = 20;
        let engine =
            train_engine(&log, meta, &config, DataSummary::default(), &mut |_| {}).unwrap();
        let lists = engine.new_item_lists().expect("built");
        let mut scratch = vec![0f32; engine.items().len()];
        let (mut answered, mut scored) = (0, 0);
        for c in 0..engine.customers().len() as u32 {
            if engine.history().row_nnz(c as usize) == 0 {
                assert_eq!(lists.row_nnz(c as usize), 0);
                continue;
            }
            let head = engine.score_als(c, 3, &ListFilter::default(), &mut scratch);
            let filters = [
                ListFilter::default(),
                ListFilter {
                    category: Some("c1".into()),
                    ..ListFilter::default()
                },
                ListFilter {
                    exclude: head.iter().map(|e| e.0).collect(),
                    ..ListFilter::default()
                },
                ListFilter {
                    include_purchased: true,
                    ..ListFilter::default()
                },
            ];
            for filter in &filters {
                for k in [1, 5, 10, 20, 21] {
                    let (source, got) = engine.recommend(Some(c), k, filter);
                    assert_eq!(source, Source::Model);
                    let want = engine.score_als(c, k, filter, &mut scratch);
                    assert_eq!(got, want, "customer {c}, k {k}, filter {filter:?}");
                    match engine.precomputed_new_items(c, k, filter) {
                        Some(_) => answered += 1,
                        None => scored += 1,
                    }
                }
            }
            // Longer than the head, or with bought items: never from it.
            assert!(engine.precomputed_new_items(c, 21, &filters[0]).is_none());
            assert!(engine.precomputed_new_items(c, 1, &filters[3]).is_none());
        }
        // Both paths were taken (a category keeps about a third of the head).
        assert!(answered > 1_000 && scored > 1_000, "{answered} {scored}");
        // 0 drops them.
        let without = engine.with_new_item_lists(0);
        assert!(without.new_item_lists().is_none());
    }

    /// With "for you" lists, the new-item lists are built from the ALS
    /// scores the "for you" lists computed: the same lists as scoring the
    /// catalog again for them, with either "for you" model.
    #[test]
    fn new_item_lists_built_with_the_for_you_lists_equal_a_second_scoring() {
        let (log, meta) = small_catalog();
        for model in [ForYouModel::Ranker, ForYouModel::TifuAls] {
            let mut config = EngineConfig::default();
            config.als.factors = 8;
            config.als.iterations = 3;
            config.for_you.model = model;
            config.for_you.new_items_top_n = 20;
            let mut stages = Vec::new();
            let engine = train_engine(
                &log,
                meta.clone(),
                &config,
                DataSummary::default(),
                &mut |s| stages.push(s),
            )
            .unwrap();
            assert!(engine.for_you_lists().is_some(), "{model:?}");
            // Each model built its own lists (the re-ranker did not fall back).
            let built = &engine.manifest().for_you.as_ref().expect("summary").model;
            assert_eq!(built, model.evaluation_name(), "{model:?}");
            // One stage built both.
            assert!(stages.contains(&Stage::ForYou) && !stages.contains(&Stage::NewItems));
            let lists = engine.new_item_lists().expect("built");
            let mut scratch = vec![0f32; engine.items().len()];
            let mut filled = 0;
            for c in 0..engine.customers().len() as u32 {
                let (items, scores) = lists.row(c as usize);
                let got: Ranked = items.iter().copied().zip(scores.iter().copied()).collect();
                let mut want = match engine.history().row_nnz(c as usize) {
                    0 => Vec::new(),
                    _ => engine.score_als(c, 20, &ListFilter::default(), &mut scratch),
                };
                // A list matrix row holds the list in item order.
                want.sort_by_key(|e| e.0);
                assert_eq!(got, want, "{model:?}, customer {c}");
                filled += usize::from(got.len() == 20);
            }
            assert!(filled > 150, "{model:?}: {filled}");
            // Without new-item lists, none are built.
            config.for_you.new_items_top_n = 0;
            let engine = train_engine(
                &log,
                meta.clone(),
                &config,
                DataSummary::default(),
                &mut |_| {},
            )
            .unwrap();
            assert!(engine.for_you_lists().is_some() && engine.new_item_lists().is_none());
        }
    }

    #[test]
    fn kept_similar_lists_are_prefixes_of_one_search_and_filters_bypass_them() {
        let mut engine = engine();
        // The lists kept at the fit, dropped: each item's is searched on
        // its first request.
        engine.similar_lists = None;
        let none = ListFilter::default();
        for item in [0u32, 7, 42] {
            assert!(engine.similar_cached(item, 10, &none).is_none());
            let long = engine.similar_search(item, SIMILAR_CACHE_LEN, &none);
            assert_eq!(long.len(), SIMILAR_CACHE_LEN);
            assert_eq!(engine.similar(item, 10, &none), long[..10]);
            // Kept now: every k up to the kept length is a prefix, inline.
            for k in [1, 10, SIMILAR_CACHE_LEN] {
                assert_eq!(engine.similar_cached(item, k, &none).unwrap(), long[..k]);
                assert_eq!(engine.similar(item, k, &none), long[..k]);
            }
            assert!(!long.iter().any(|&(i, _)| i == item));
        }
        // Longer lists and filtered ones search the index.
        assert!(
            engine
                .similar_cached(0, SIMILAR_CACHE_LEN + 1, &none)
                .is_none()
        );
        let first = engine.similar(0, 3, &none)[0].0;
        let filter = ListFilter {
            exclude: HashSet::from([first]),
            ..ListFilter::default()
        };
        assert!(engine.similar_cached(0, 3, &filter).is_none());
        let filtered = engine.similar(0, 3, &filter);
        assert_eq!(filtered.len(), 3);
        assert!(!filtered.iter().any(|&(i, _)| i == first));
    }

    /// A fit whose index is the exact scan keeps every item's list: each
    /// answer is what the search gives, with no search at request time;
    /// unavailable items stay out of them.
    #[test]
    fn a_fit_searched_exactly_keeps_every_items_similar_list() {
        let (log, meta) = small_catalog();
        let mut config = EngineConfig::default();
        config.als.factors = 8;
        config.als.iterations = 3;
        config.for_you.max_customers = Some(0);
        let engine =
            train_engine(&log, meta, &config, DataSummary::default(), &mut |_| {}).unwrap();
        assert_eq!(engine.similar_index().kind(), "exact");
        let kept = engine
            .similar_lists()
            .expect("lists kept for an exact index");
        assert_eq!((kept.n_rows(), kept.n_cols()), (150, 150));
        let none = ListFilter::default();
        for item in 0..150u32 {
            let searched = engine.similar_search(item, SIMILAR_CACHE_LEN, &none);
            assert_eq!(searched.len(), SIMILAR_CACHE_LEN);
            assert!(searched.iter().all(|&(i, _)| i % 7 != 0 && i != item));
            for k in [1, 10, SIMILAR_CACHE_LEN] {
                assert_eq!(
                    engine.similar_cached(item, k, &none).unwrap(),
                    searched[..k]
                );
            }
            // Nothing went through the per-item cache.
            assert!(engine.similar_cache[item as usize].get().is_none());
        }
        // `[hnsw] keep_lists = false`: none kept, the same answers.
        let (log, meta) = small_catalog();
        config.hnsw.keep_lists = false;
        let lazy = train_engine(&log, meta, &config, DataSummary::default(), &mut |_| {}).unwrap();
        assert!(lazy.similar_lists().is_none());
        for item in [0u32, 1, 149] {
            assert_eq!(
                lazy.similar(item, 10, &none),
                engine.similar(item, 10, &none)
            );
        }
    }
}
