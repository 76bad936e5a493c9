//! Training an [`Engine`] from a purchase history: one function, every model.
//!
//! The stages run in a fixed order (interaction matrix, ALS, co-purchase,
//! popularity, HNSW) and report progress through a callback, so that the CLI
//! can draw progress bars while tests stay silent.

use crate::ann::{DEFAULT_HNSW_MIN_ITEMS, HnswParams, SimilarIndex};
use crate::cf::als::SCORE_BLOCK;
use crate::cf::als::{AlsError, AlsParams};
use crate::cf::item_knn::{Basis, CoPurchaseParams, Similarity};
use crate::cf::popularity::PopularityParams;
use crate::cf::ranker::{Ranker, RankerError, Signals};
use crate::cf::tifu::TifuKnn;
use crate::customer::book::CustomerConfig;
use crate::customer::orders::OrderTable;
use crate::engine::{
    Engine, EngineParts, ItemMeta, Ranked, all_customers, build_lists_chunked, top_unbought,
};
use crate::manifest::{DataSummary, FORMAT_VERSION, ForYouSummary, Manifest, RankerSummary};
use encore_data::timestamp::now_secs;
use encore_data::{Csr, InteractionMatrix, Purchase, PurchaseLog, Weighting};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How quantities become ALS confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QuantityScaling {
    /// `r = ln(1 + quantity)`: a bulk order of 500 counts more than 1, not 500 times more.
    #[default]
    Log,
    /// `r = quantity`.
    Linear,
    /// `r = 1` for every bought pair.
    Binary,
}

/// ALS settings of the training configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsConfig {
    pub factors: usize,
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub regularization: f32,
    /// Confidence `c = 1 + alpha * r` where `r` is the scaled quantity.
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub alpha: f32,
    pub iterations: usize,
    pub cg_steps: usize,
    pub seed: u64,
    pub scaling: QuantityScaling,
    /// Half-life of the recency decay in days; none by default.
    pub recency_half_life_days: Option<f64>,
}

impl Default for AlsConfig {
    fn default() -> Self {
        AlsConfig {
            factors: 64,
            regularization: 0.01,
            alpha: 10.0,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
            scaling: QuantityScaling::Log,
            recency_half_life_days: None,
        }
    }
}

/// Co-purchase ("bought together") settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoPurchaseConfig {
    /// `orders` (bought in the same order) or `customers` (bought by the same customer).
    pub basis: String,
    /// `cosine` or `bm25`.
    pub similarity: String,
    pub neighbours: usize,
    pub min_support: u32,
}

impl Default for CoPurchaseConfig {
    fn default() -> Self {
        CoPurchaseConfig {
            basis: "orders".into(),
            similarity: "cosine".into(),
            neighbours: 100,
            min_support: 2,
        }
    }
}

/// Settings of the similar-items index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswConfig {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// Insert serially so that the same factors always give the same graph
    /// (the default: same seed, same model); `false` builds on all cores,
    /// about twice as fast, but the graph may differ from run to run.
    pub deterministic: bool,
    /// Catalogs of fewer items are searched by an exact scan of every item
    /// (faster there, nothing to build or store); `0`: always the graph.
    pub min_items: usize,
    /// With the exact scan, search once per item during the fit and keep
    /// each item's list in the model, so that a freshly loaded model
    /// answers without scanning the catalog (see
    /// [`Engine::with_similar_lists`]); `false` leaves it to the first
    /// request for each item.
    pub keep_lists: bool,
}

impl Default for HnswConfig {
    fn default() -> Self {
        let d = HnswParams::default();
        HnswConfig {
            m: d.m,
            ef_construction: d.ef_construction,
            ef_search: d.ef_search,
            deterministic: true,
            min_items: DEFAULT_HNSW_MIN_ITEMS,
            keep_lists: true,
        }
    }
}

/// Popularity (fallback) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopularityConfig {
    /// Count buyers over this many days before the end of the history.
    pub window_days: f64,
}

impl Default for PopularityConfig {
    fn default() -> Self {
        PopularityConfig { window_days: 90.0 }
    }
}

/// Everything that decides what a training run produces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub als: AlsConfig,
    pub copurchase: CoPurchaseConfig,
    pub popularity: PopularityConfig,
    pub hnsw: HnswConfig,
    /// Customer models: BG/NBD, Gamma-Gamma CLV, RFM, lifecycle, KPIs.
    pub customers: CustomerConfig,
    /// The repeat-aware "for you" model (TIFU-KNN, blended with ALS).
    pub repeat_aware: crate::cf::tifu::TifuParams,
    /// EASE, the closed-form item-item model (evaluated, not served yet).
    pub ease: crate::cf::ease::EaseParams,
    /// The learned re-ranker of "for you" candidates.
    pub ranker: crate::cf::ranker::RankerParams,
    /// Which model serves the "for you" list when purchased items are allowed.
    pub for_you: ForYouConfig,
    /// How these settings were chosen, written by `encore-train tune`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuningRecord>,
}

/// The record of a tuning run (validation split only), kept in the config
/// and so in the artifact manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuningRecord {
    pub objective: String,
    pub validation_recall: f64,
    pub validation_ndcg: f64,
    /// The configuration the search started from, on the same split.
    pub base_recall: f64,
    pub base_ndcg: f64,
    pub trials: usize,
    pub budget_seconds: f64,
    pub split: String,
}

/// The model behind the precomputed "for you" lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForYouModel {
    /// The learned re-ranker ([`crate::cf::ranker`]) over TIFU-KNN, ALS and
    /// popular candidates; TIFU-KNN + ALS when it cannot be trained.
    #[default]
    Ranker,
    /// TIFU-KNN blended with ALS for new items.
    TifuAls,
}

impl ForYouModel {
    /// Its row in `encore-train evaluate`'s table.
    pub fn evaluation_name(self) -> &'static str {
        match self {
            ForYouModel::Ranker => "ranker",
            ForYouModel::TifuAls => "tifu_als",
        }
    }
}

/// How the "for you" list is served (see [`Engine::for_you`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForYouConfig {
    /// Precompute the repeat-aware list of every customer.
    pub repeat_aware: bool,
    /// Which model builds it.
    pub model: ForYouModel,
    /// Items kept per customer; longer lists are filled from ALS.
    pub top_n: usize,
    /// Items kept per customer of the ALS list of items never bought (the
    /// default "for you" list): requests for at most this many, whose
    /// filters leave enough of them, are answered from it without scoring
    /// the catalog. 0 keeps none. Costs 8 bytes an item a customer in the
    /// artifact and in memory.
    pub new_items_top_n: usize,
    /// Above this many customers the repeat-aware lists are not built and
    /// the fit summary says so; none by default (every customer gets one,
    /// at any size: docs/benchmarks.md measures the cost up to a million).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_customers: Option<usize>,
}

impl ForYouConfig {
    /// Whether a fit on `customers` customers builds the repeat-aware lists.
    pub fn builds_repeat_aware(&self, customers: usize) -> bool {
        self.repeat_aware && self.max_customers.is_none_or(|m| customers <= m)
    }
}

impl Default for ForYouConfig {
    fn default() -> Self {
        ForYouConfig {
            repeat_aware: true,
            model: ForYouModel::Ranker,
            top_n: 100,
            new_items_top_n: 50,
            max_customers: None,
        }
    }
}

/// Why a configuration or a training run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("config key '{key}': {reason}")]
    Config { key: String, reason: String },
    #[error("ALS: {0}")]
    Als(AlsError),
    #[error("similar-items index: {0}")]
    Ann(String),
    #[error(transparent)]
    Customers(#[from] crate::customer::book::CustomerConfigError),
    #[error("the purchase history has no usable purchase")]
    NoData,
    #[error(
        "cannot write the customers' orders to a temporary file in {dir} (set TMPDIR to a directory with room): {cause}"
    )]
    Scratch {
        dir: std::path::PathBuf,
        cause: std::io::Error,
    },
}

/// The customers' orders of a fit on `log` ([`OrderTable::build`]).
fn build_orders(log: &PurchaseLog) -> Result<OrderTable, TrainError> {
    OrderTable::build(log, reference_of(log)).map_err(|cause| TrainError::Scratch {
        dir: std::env::temp_dir(),
        cause,
    })
}

impl From<AlsError> for TrainError {
    fn from(e: AlsError) -> Self {
        TrainError::Als(e)
    }
}

impl EngineConfig {
    pub(crate) fn als_params(&self) -> AlsParams {
        let a = &self.als;
        AlsParams::new(a.factors)
            .regularization(a.regularization)
            .alpha(a.alpha)
            .iterations(a.iterations)
            .cg_steps(a.cg_steps)
            .seed(a.seed)
    }

    pub(crate) fn copurchase_params(&self) -> Result<CoPurchaseParams, TrainError> {
        let c = &self.copurchase;
        let basis = match c.basis.as_str() {
            "orders" => Basis::Orders,
            "customers" => Basis::Customers,
            other => {
                return Err(TrainError::Config {
                    key: "copurchase.basis".into(),
                    reason: format!("'{other}' is not one of orders, customers"),
                });
            }
        };
        let weighting = match c.similarity.as_str() {
            "cosine" => Similarity::Cosine,
            "bm25" => Similarity::Bm25 { k1: 1.2, b: 0.75 },
            other => {
                return Err(TrainError::Config {
                    key: "copurchase.similarity".into(),
                    reason: format!("'{other}' is not one of cosine, bm25"),
                });
            }
        };
        Ok(CoPurchaseParams {
            basis,
            weighting,
            neighbours: c.neighbours,
            min_support: c.min_support,
        })
    }

    /// Checks every value, naming the key of the first bad one.
    pub fn validate(&self) -> Result<(), TrainError> {
        // ALS names its parameters as the `[als]` table does.
        if let Err(AlsError::InvalidParam {
            name,
            value,
            reason,
        }) = self.als_params().check()
        {
            return Err(TrainError::Config {
                key: format!("als.{name}"),
                reason: format!("{value}: {reason}"),
            });
        }
        self.als_params().check()?;
        self.copurchase_params()?;
        let bad = |key: &str, reason: &str| {
            Err(TrainError::Config {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if let Some(h) = self.als.recency_half_life_days
            && !(h.is_finite() && h > 0.0)
        {
            return bad(
                "als.recency_half_life_days",
                "must be a positive number of days",
            );
        }
        if self.copurchase.neighbours == 0 {
            return bad("copurchase.neighbours", "must be at least 1");
        }
        if !(self.popularity.window_days.is_finite() && self.popularity.window_days > 0.0) {
            return bad(
                "popularity.window_days",
                "must be a positive number of days",
            );
        }
        if !(2..=255).contains(&self.hnsw.m) {
            return bad("hnsw.m", "must be between 2 and 255");
        }
        if self.hnsw.ef_construction == 0 {
            return bad("hnsw.ef_construction", "must be at least 1");
        }
        if self.hnsw.ef_search == 0 {
            return bad("hnsw.ef_search", "must be at least 1");
        }
        self.customers.check()?;
        self.repeat_aware.check().map_err(|e| TrainError::Config {
            key: "repeat_aware".into(),
            reason: e.to_string(),
        })?;
        self.ease.check().map_err(|e| TrainError::Config {
            key: "ease".into(),
            reason: e.to_string(),
        })?;
        if let Err(crate::cf::ranker::RankerError::InvalidParam {
            name,
            value,
            reason,
        }) = self.ranker.check()
        {
            return Err(TrainError::Config {
                key: format!("ranker.{name}"),
                reason: format!("{value}: {reason}"),
            });
        }
        if self.for_you.top_n == 0 {
            return bad("for_you.top_n", "must be at least 1");
        }
        Ok(())
    }
}

/// A training stage, reported as it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Matrix,
    /// ALS starts, for this many iterations.
    Als(usize),
    /// ALS iteration `i` of `n` finished.
    AlsIteration(usize, usize),
    CoPurchase,
    Popularity,
    Index,
    /// Every item's similar-items list, kept when the index is the exact
    /// scan ([`Engine::with_similar_lists`]).
    SimilarLists,
    /// The re-ranker's learner, trained on inner splits of the history
    /// (before the other models: its inner fits are a fit's largest memory,
    /// and this way they do not sit beside the final models).
    Ranker,
    /// Customer models (BG/NBD, Gamma-Gamma, RFM, lifecycle, KPIs).
    Customers,
    /// The repeat-aware "for you" lists, and with them the heads of the
    /// ALS new-item lists (`[for_you] new_items_top_n`).
    ForYou,
    /// The heads of the ALS new-item lists, alone: when no "for you" lists
    /// are built.
    NewItems,
}

/// Turns a purchase history into the ALS input: net quantities per
/// (customer, item), returns netted out, then scaled.
pub fn interaction_matrix(log: &PurchaseLog, config: &AlsConfig) -> (Csr, usize) {
    let reference_time = log.time_range().map_or(0, |(_, last)| last);
    let m = InteractionMatrix::from_log(
        log,
        &Weighting {
            recency_half_life_days: config.recency_half_life_days,
            reference_time,
        },
    );
    let scaled = match config.scaling {
        QuantityScaling::Log => m.matrix.map_values(|q| q.ln_1p()),
        QuantityScaling::Linear => m.matrix,
        QuantityScaling::Binary => m.matrix.map_values(|_| 1.0),
    };
    (scaled, m.netted_out_pairs)
}

/// Trains every model on `log` and assembles an [`Engine`]: the shared part
/// ([`train_shared`]), then the lists of every customer
/// ([`customer_lists`]), as a sharded run does it for one shard at a time.
///
/// `item_meta` is indexed like `log.items` (missing entries mean "no catalog
/// data, available"). `data` and `metrics` go into the manifest as given.
pub fn train_engine(
    log: &PurchaseLog,
    item_meta: Vec<ItemMeta>,
    config: &EngineConfig,
    data: DataSummary,
    progress: &mut dyn FnMut(Stage),
) -> Result<Engine, TrainError> {
    let shared = fit_shared(log, item_meta, config, data, progress)?;
    // Before the lists, whose end is a large fit's peak of memory: the
    // table lives in a mapped file, and its build's one block of lines is
    // freed by then.
    let orders = build_orders(log)?;
    let all = all_customers(log.customers.len());
    let lists = customer_lists(log, &shared.engine, config, &shared.plan, &all, progress)?;
    shared
        .engine
        .with_customer_lists(lists.for_you, lists.new_items)
        .and_then(|e| e.with_orders(orders))
        .map_err(|e| TrainError::Ann(e.to_string()))
}

/// The time every customer figure of a fit on `log` refers to: its last purchase.
fn reference_of(log: &PurchaseLog) -> i64 {
    log.time_range().map_or(0, |(_, last)| last)
}

/// How the per-customer lists of a fit are made, decided by its shared part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum ListPlan {
    /// No repeat-aware lists (`[for_you] repeat_aware = false`, or more
    /// customers than `max_customers`): only the heads of the ALS new-item
    /// lists, scored by the engine.
    NewItemsOnly,
    /// The learned re-ranker over TIFU-KNN, ALS and popular candidates.
    Ranker { ranker: Box<Ranker> },
    /// TIFU-KNN blended with ALS (configured, or the re-ranker could not be trained).
    TifuAls,
}

/// What [`train_shared`] builds: every model but the per-customer lists.
pub struct SharedFit {
    /// The engine without "for you" or new-item lists; its manifest already
    /// says how the lists are built (`for_you`).
    pub engine: Engine,
    pub plan: ListPlan,
}

/// The part of a fit that every customer's lists read, built once: the
/// re-ranker's learner, ALS (item and customer factors: one joint fit),
/// co-purchase, popularity, the similar-items index, the customer models
/// and profiles (RFM scores and segments are ranks among all customers, so
/// the profiles are made with the population fits), replenishment, and
/// every customer's orders ([`OrderTable`]: built last, from the log).
pub fn train_shared(
    log: &PurchaseLog,
    item_meta: Vec<ItemMeta>,
    config: &EngineConfig,
    data: DataSummary,
    progress: &mut dyn FnMut(Stage),
) -> Result<SharedFit, TrainError> {
    let SharedFit { engine, plan } = fit_shared(log, item_meta, config, data, progress)?;
    let engine = engine
        .with_orders(build_orders(log)?)
        .map_err(|e| TrainError::Ann(e.to_string()))?;
    Ok(SharedFit { engine, plan })
}

/// [`train_shared`] without the customers' orders (an empty table, which
/// [`train_engine`] fills once the lists are made).
fn fit_shared(
    log: &PurchaseLog,
    mut item_meta: Vec<ItemMeta>,
    config: &EngineConfig,
    data: DataSummary,
    progress: &mut dyn FnMut(Stage),
) -> Result<SharedFit, TrainError> {
    config.validate()?;
    if log.purchases.is_empty() {
        return Err(TrainError::NoData);
    }
    item_meta.resize(log.items.len(), ItemMeta::default());
    let builds_lists = config.for_you.builds_repeat_aware(log.customers.len());
    let ranker = if builds_lists && config.for_you.model == ForYouModel::Ranker {
        progress(Stage::Ranker);
        let available = |i: u32| item_meta[i as usize].available;
        match config.ranker.fit(log, available, |inner, scored| {
            ranker_base_models(inner, config, Some(scored)).map_err(|e| e.to_string())
        }) {
            Ok(ranker) => Some(Ok(ranker)),
            // A configuration error is the user's to fix; anything else
            // (too little history for the inner split) falls back.
            Err(e @ RankerError::InvalidParam { .. }) => {
                return Err(TrainError::Config {
                    key: "ranker".into(),
                    reason: e.to_string(),
                });
            }
            Err(e) => Some(Err(e.to_string())),
        }
    } else {
        None
    };
    progress(Stage::Matrix);
    let (interactions, _) = interaction_matrix(log, &config.als);
    if interactions.nnz() == 0 {
        return Err(TrainError::NoData);
    }
    let history = InteractionMatrix::from_log(log, &Weighting::default()).matrix;
    let iterations = config.als.iterations;
    progress(Stage::Als(iterations));
    let als = config.als_params().fit_with(&interactions, &mut |i| {
        progress(Stage::AlsIteration(i, iterations))
    })?;
    drop(interactions);
    // Co-purchase and popularity see only purchases that stood: lines of a
    // (customer, item) pair whose returns cancel it out are left out, as in ALS.
    let kept = stood(&history);
    progress(Stage::CoPurchase);
    let copurchase = config.copurchase_params()?.fit_where(log, kept);
    progress(Stage::Popularity);
    let popularity = PopularityParams {
        window_days: config.popularity.window_days,
    }
    .fit_where(log, kept);
    progress(Stage::Index);
    let hnsw_params = HnswParams {
        m: config.hnsw.m,
        ef_construction: config.hnsw.ef_construction,
        ef_search: config.hnsw.ef_search,
        deterministic: config.hnsw.deterministic,
    };
    let similar = SimilarIndex::build(als.item_factors(), &hnsw_params, config.hnsw.min_items)
        .map_err(|e| TrainError::Ann(e.to_string()))?;
    let (plan, for_you_summary) = match ranker {
        _ if !builds_lists => (ListPlan::NewItemsOnly, None),
        Some(Ok(ranker)) => {
            let summary = ForYouSummary {
                model: "ranker".into(),
                fallback_reason: None,
                ranker: Some(RankerSummary {
                    learner: ranker.learner().to_string(),
                    training_customers: ranker.training_customers,
                    training_rows: ranker.training_rows,
                    training_positives: ranker.training_positives,
                    intercept: ranker.intercept(),
                    importance: ranker
                        .importance()
                        .into_iter()
                        .map(|(n, w)| (n.to_string(), w))
                        .collect(),
                }),
            };
            (
                ListPlan::Ranker {
                    ranker: Box::new(ranker),
                },
                Some(summary),
            )
        }
        other => (
            ListPlan::TifuAls,
            Some(ForYouSummary {
                model: "tifu_als".into(),
                fallback_reason: other.and_then(Result::err),
                ranker: None,
            }),
        ),
    };
    progress(Stage::Customers);
    let reference = reference_of(log);
    let customer_book = config.customers.build(log, reference)?;
    let categories: Vec<Option<String>> = item_meta.iter().map(|m| m.category.clone()).collect();
    let replenishment = config
        .customers
        .replenishment
        .fit(log, &categories, reference)
        .map_err(crate::customer::book::CustomerConfigError::from)?;

    let data = DataSummary {
        interactions: history.nnz(),
        ..data
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_version: model_version(&data.fingerprint),
        created_at: now_rfc3339(),
        encore_version: env!("CARGO_PKG_VERSION").to_string(),
        data,
        config: serde_json::to_value(config).expect("config serialises"),
        als: als.params().clone(),
        metrics: serde_json::Value::Object(Default::default()),
        for_you: for_you_summary,
        files: BTreeMap::new(),
    };
    let engine = Engine::from_parts(EngineParts {
        manifest,
        customers: log.customers.clone(),
        items: log.items.clone(),
        item_meta,
        history,
        als,
        copurchase,
        popularity,
        similar,
        customer_book,
        orders: OrderTable::empty(log.customers.len()),
        replenishment,
        for_you: None,
        new_items: None,
        similar_lists: None,
    })
    .map_err(|e| TrainError::Ann(e.to_string()))?;
    // An exact index scans the catalog for every search: search once per
    // item here rather than on each item's first request after every load.
    let engine = if config.hnsw.keep_lists && engine.similar_index().as_hnsw().is_none() {
        progress(Stage::SimilarLists);
        engine.with_similar_lists()
    } else {
        engine
    };
    Ok(SharedFit { engine, plan })
}

/// The per-customer lists of some customers: one row per customer asked
/// for, in that order.
pub struct CustomerLists {
    /// The repeat-aware "for you" lists (none under [`ListPlan::NewItemsOnly`]).
    pub for_you: Option<Csr>,
    /// The heads of the ALS new-item lists (none when `[for_you]
    /// new_items_top_n` is 0).
    pub new_items: Option<Csr>,
}

/// The lists of `customers` (indices of `log`'s customers), made from the
/// shared part `shared` and `plan` of a fit on the same `log` with the
/// same `config`. A customer's lists do not depend on which other
/// customers are asked for: the lists of a shard of the customers are
/// those rows of the lists of all of them, bit for bit.
///
/// Every customer's neighbours (TIFU-KNN) and the re-ranker's activity
/// features are found among all customers of `log`, so the whole history
/// is read, whatever the shard.
pub fn customer_lists(
    log: &PurchaseLog,
    shared: &Engine,
    config: &EngineConfig,
    plan: &ListPlan,
    customers: &[u32],
    progress: &mut dyn FnMut(Stage),
) -> Result<CustomerLists, TrainError> {
    if shared.customers().len() != log.customers.len() || shared.items().len() != log.items.len() {
        return Err(TrainError::Config {
            key: "input".into(),
            reason: format!(
                "the history has {} customers and {} items, the shared part {} and {}",
                log.customers.len(),
                log.items.len(),
                shared.customers().len(),
                shared.items().len()
            ),
        });
    }
    let new_top_n = config.for_you.new_items_top_n;
    let ranker = match plan {
        ListPlan::NewItemsOnly => {
            if new_top_n > 0 {
                progress(Stage::NewItems);
            }
            return Ok(CustomerLists {
                for_you: None,
                new_items: (new_top_n > 0).then(|| shared.new_item_rows(customers, new_top_n)),
            });
        }
        ListPlan::Ranker { ranker } => Some(ranker),
        ListPlan::TifuAls => None,
    };
    progress(Stage::ForYou);
    // Neighbours are searched when a customer's list is made (for the
    // customers asked for only), not held for every customer.
    let tifu = fit_tifu(log, config, None)?;
    let item_meta = shared.all_item_meta();
    let history = shared.history();
    let als = shared.als();
    let n_items = log.items.len();
    let available = |i: u32| item_meta.get(i as usize).is_none_or(|m| m.available);
    let top_n = config.for_you.top_n;
    // Gives customer `c`'s "for you" list by `for_you` and their list of new
    // items from `cf`, their ALS scores over the catalog.
    let both = |cf: &[f32], c: u32, for_you: &dyn Fn(&[f32]) -> Ranked| {
        let new = match (new_top_n, history.row(c as usize).0) {
            (0, _) | (_, []) => Vec::new(),
            (_, bought) => top_unbought(cf, new_top_n, bought, available),
        };
        [for_you(cf), new]
    };
    // ALS scores the catalog for `SCORE_BLOCK` customers at once
    // ([`crate::cf::als::Als::score_users`]), then each one's lists are made.
    let lists = |for_you: &(dyn Fn(&[f32], u32) -> Ranked + Sync)| {
        let [for_you, new] = build_lists_chunked(
            customers,
            n_items,
            SCORE_BLOCK,
            || vec![0f32; SCORE_BLOCK * n_items],
            |cf, some| als.score_users(some, &mut cf[..some.len() * n_items]),
            |cf, at, c| {
                let cf = &cf[at * n_items..(at + 1) * n_items];
                both(cf, c, &|cf| for_you(cf, c))
            },
        );
        CustomerLists {
            for_you: Some(for_you),
            new_items: (new_top_n > 0).then_some(new),
        }
    };
    Ok(match ranker {
        Some(ranker) => {
            let signals = Signals::new(log, tifu, als, shared.copurchase(), &config.ranker);
            lists(&|cf, c| ranker.recommend_scored(&signals, c, top_n, available, cf))
        }
        None => lists(&|cf, c| tifu.recommend(c, top_n, |i| !available(i), Some(cf))),
    })
}

/// TIFU-KNN fitted on `log` with `[repeat_aware]`; neighbours only for
/// `scored` when given ([`crate::cf::tifu::TifuParams::fit_for`]).
fn fit_tifu(
    log: &PurchaseLog,
    config: &EngineConfig,
    scored: Option<&[u32]>,
) -> Result<TifuKnn, TrainError> {
    config
        .repeat_aware
        .fit_for(log, scored)
        .map_err(|e| TrainError::Config {
            key: "repeat_aware".into(),
            reason: e.to_string(),
        })
}

/// The re-ranker's base models (TIFU-KNN, ALS, co-purchase) fitted on `log`
/// with the settings of `config`, as [`train_engine`] fits them; with
/// `scored`, TIFU-KNN searches the neighbours of those customers only
/// ([`crate::cf::tifu::TifuParams::fit_for`]).
pub fn ranker_base_models(
    log: &PurchaseLog,
    config: &EngineConfig,
    scored: Option<&[u32]>,
) -> Result<crate::cf::ranker::BaseModels, TrainError> {
    let (interactions, _) = interaction_matrix(log, &config.als);
    let als = config.als_params().fit(&interactions)?;
    drop(interactions);
    let history = InteractionMatrix::from_log(log, &Weighting::default()).matrix;
    let copurchase = config.copurchase_params()?.fit_where(log, stood(&history));
    let tifu = fit_tifu(log, config, scored)?;
    Ok(crate::cf::ranker::BaseModels {
        tifu,
        als,
        copurchase,
    })
}

/// Accepts the positive-quantity lines whose (customer, item) pair has a
/// positive net quantity in `history` (the purchases that stood).
fn stood(history: &Csr) -> impl Fn(&Purchase) -> bool + Copy + '_ {
    |p| p.quantity > 0.0 && history.get(p.customer.idx(), p.item.0) > 0.0
}

pub(crate) fn now_rfc3339() -> String {
    encore_data::timestamp::format_timestamp(now_secs())
}

/// `YYYYMMDDTHHMMSSZ-<first 8 hex of the fingerprint>`.
fn model_version(fingerprint: &str) -> String {
    let stamp: String = now_rfc3339()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T' || *c == 'Z')
        .collect();
    let hex = fingerprint.trim_start_matches("sha256:");
    format!("{stamp}-{}", &hex[..hex.len().min(8)])
}
