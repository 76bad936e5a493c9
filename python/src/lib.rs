//! `encore._encore`: the native half of the Python package `encore`.
//!
//! A thin layer over `encore-data`, `encore-model` and `encore-training`: it
//! reads a purchase history (a file, or Arrow record batches handed over
//! through the Arrow C data interface), trains, saves and loads the same
//! artifact as `encore-train`, and answers every query with Arrow record
//! batches that the Python side turns into DataFrames. It has no logic of
//! its own: each query calls the function `encore-train` or `encore-serve`
//! calls for the same answer (named in each method's docs).
//!
//! # Implementation notes
//! - Input DataFrames arrive as an `ArrowArrayStream` capsule (the Arrow
//!   PyCapsule interface); the stream is read batch by batch by
//!   [`encore_data::parquet::read_record_batches`], the same row checks as a
//!   Parquet file, never row by row through Python objects.
//! - Answers leave as an `ArrowArrayStream` capsule holding one record batch;
//!   the id columns of ranked lists are dictionary-encoded (each distinct id
//!   once), and the Python side hands them out as plain string columns.
//! - Every query and every fit runs with the GIL released
//!   ([`Python::detach`]), in parallel on rayon's pool where the Rust
//!   function is parallel.

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    RecordBatchIterator, RecordBatchReader, StringArray, TimestampSecondArray, UInt32Array,
};
use encore_data::ingest::{ColumnMap, IngestOptions};
use encore_data::parquet::read_record_batches;
use encore_data::timestamp::parse_timestamp;
use encore_model::artifact;
use encore_model::customer::replenishment::DueItem;
use encore_model::engine::{Engine, ListFilter};
use encore_model::outreach::{Reason, SettingProblem, Suggestion};
use encore_model::pipeline::{EngineConfig, train_engine};
use encore_training::batch::{ListKind, lists_for};
use encore_training::config::{load_config, parse_config};
use encore_training::customers::AudienceArgs;
use encore_training::evaluate::{
    DEFAULT_VALIDATION_DAYS, EvalOptions, Registry, Split, evaluate_with,
};
use encore_training::input::{
    Input, InputArgs, data_summary, input_summary, input_with_catalog, load_input,
};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

create_exception!(
    _encore,
    EncoreError,
    PyException,
    "Base class of the errors raised by encore."
);
create_exception!(
    _encore,
    DataError,
    EncoreError,
    "The purchase history or catalog cannot be read: the message names the file (or DataFrame), the line or row, and the field."
);
create_exception!(
    _encore,
    ConfigError,
    EncoreError,
    "A training configuration, column map or argument is not valid: the message names the key."
);
create_exception!(
    _encore,
    ModelError,
    EncoreError,
    "A model cannot be trained, saved or loaded, or cannot answer the query."
);

/// The whole chain of an error, outermost first, as `encore-train` prints it.
fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

fn data_err(e: impl Into<anyhow::Error>) -> PyErr {
    DataError::new_err(chain(&e.into()))
}

fn config_err(e: impl Into<anyhow::Error>) -> PyErr {
    ConfigError::new_err(chain(&e.into()))
}

fn model_err(e: impl Into<anyhow::Error>) -> PyErr {
    ModelError::new_err(chain(&e.into()))
}

/// The complete training configuration as TOML (every key, defaults filled
/// in): the defaults, a TOML file, or TOML text, validated exactly as
/// `encore-train --config` validates its file.
#[pyfunction]
#[pyo3(signature = (path=None, text=None))]
fn check_config(path: Option<PathBuf>, text: Option<String>) -> PyResult<String> {
    let config = read_config(path.as_deref(), text.as_deref())?;
    toml::to_string(&config).map_err(config_err)
}

/// A configuration given as JSON (a Python dict) written as TOML text, so
/// that it is parsed and validated by the CLI's own [`parse_config`].
#[pyfunction]
fn config_json_to_toml(json: &str) -> PyResult<String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(config_err)?;
    if !value.is_object() {
        return Err(ConfigError::new_err(
            "a configuration is a dict of sections (e.g. {'als': {'factors': 32}})",
        ));
    }
    toml::to_string(&value).map_err(|e| {
        ConfigError::new_err(format!(
            "configuration: {e} (None values are not allowed: leave the key out)"
        ))
    })
}

fn read_config(path: Option<&Path>, text: Option<&str>) -> PyResult<EngineConfig> {
    match (path, text) {
        (_, Some(text)) => parse_config(text).map_err(config_err),
        (path, None) => load_config(path).map_err(config_err),
    }
}

/// A purchase history read into memory, with its catalog metadata.
#[pyclass(frozen, module = "encore._encore")]
struct Purchases {
    input: Input,
}

#[pymethods]
impl Purchases {
    /// Reads a CSV or Parquet history (a file or a directory of part files),
    /// as `encore-train --input` does.
    #[staticmethod]
    #[pyo3(signature = (path, columns=None, catalog=None, strict=false, rejects=None))]
    fn from_path(
        py: Python<'_>,
        path: PathBuf,
        columns: Option<String>,
        catalog: Option<PathBuf>,
        strict: bool,
        rejects: Option<PathBuf>,
    ) -> PyResult<Purchases> {
        if let Some(spec) = &columns {
            spec.parse::<ColumnMap>().map_err(|e| {
                config_err(anyhow::Error::new(e).context(format!("columns '{spec}'")))
            })?;
        }
        let args = InputArgs {
            input: path,
            columns,
            catalog,
            strict,
            rejects,
        };
        let input = py.detach(|| load_input(&args)).map_err(data_err)?;
        Ok(Purchases { input })
    }

    /// Reads the record batches of an `arrow_array_stream` capsule (a
    /// DataFrame or Table), with the checks of a Parquet file.
    #[staticmethod]
    #[pyo3(signature = (stream, name, columns=None, catalog=None, strict=false, rejects=None))]
    fn from_arrow(
        py: Python<'_>,
        stream: &Bound<'_, PyCapsule>,
        name: String,
        columns: Option<String>,
        catalog: Option<PathBuf>,
        strict: bool,
        rejects: Option<PathBuf>,
    ) -> PyResult<Purchases> {
        let columns: ColumnMap = match &columns {
            Some(spec) => spec.parse().map_err(|e| {
                config_err(anyhow::Error::new(e).context(format!("columns '{spec}'")))
            })?,
            None => ColumnMap::default(),
        };
        let expected = c"arrow_array_stream";
        let ptr = stream.pointer_checked(Some(expected))?;
        // SAFETY: the capsule is named `arrow_array_stream`, so by the Arrow
        // PyCapsule interface it holds an `ArrowArrayStream`; `from_raw`
        // moves the stream out and leaves a released one behind, which the
        // capsule's destructor then ignores.
        let reader = unsafe {
            RecordBatchStreamReader::from_raw(ptr.as_ptr().cast::<FFI_ArrowArrayStream>())
        }
        .map_err(|e| data_err(anyhow::anyhow!("{name}: cannot read the Arrow stream: {e}")))?;
        let schema = reader.schema();
        let opts = IngestOptions {
            strict,
            rejects_path: rejects,
            columns,
        };
        let source = PathBuf::from(name);
        let input = py
            .detach(|| -> anyhow::Result<Input> {
                let batches = reader.map(|b| b.map_err(|e| e.to_string()));
                let (log, report) = read_record_batches(&source, &schema, batches, &opts)?;
                input_with_catalog(log, report, catalog.as_deref())
            })
            .map_err(data_err)?;
        Ok(Purchases { input })
    }

    /// What ingestion read, kept and rejected: `encore-train`'s first line.
    fn summary(&self) -> String {
        self.input.report.summary()
    }

    /// The ingest report as JSON (rows read, accepted, rejected by reason).
    fn report_json(&self) -> String {
        serde_json::to_string(&self.input.report).expect("the report serialises")
    }

    /// Catalog rows naming items that are not in the history.
    #[getter]
    fn catalog_unmatched(&self) -> usize {
        self.input.catalog_unmatched
    }
}

/// Trains every model on `purchases` (no holdout evaluation): what
/// `encore-train fit --no-eval` trains.
#[pyfunction]
#[pyo3(signature = (purchases, config_path=None, config_text=None))]
fn fit(
    py: Python<'_>,
    purchases: &Purchases,
    config_path: Option<PathBuf>,
    config_text: Option<String>,
) -> PyResult<Model> {
    let config = read_config(config_path.as_deref(), config_text.as_deref())?;
    let input = &purchases.input;
    let engine = py
        .detach(|| {
            train_engine(
                &input.log,
                input.item_meta.clone(),
                &config,
                input_summary(input),
                &mut |_| {},
            )
        })
        .map_err(model_err)?;
    Ok(Model {
        engine: Arc::new(engine),
    })
}

/// Loads an artifact directory written by `encore-train fit` or `Model.save`.
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
    let engine = py.detach(|| artifact::load(&path)).map_err(|e| {
        model_err(
            anyhow::Error::new(e).context(format!("cannot load the model at {}", path.display())),
        )
    })?;
    Ok(Model {
        engine: Arc::new(engine),
    })
}

/// `encore-train evaluate --split time --holdout-from ...`: the text table
/// it prints and the JSON report it writes with `--report`.
#[pyfunction]
#[pyo3(signature = (purchases, holdout_from, ks, models=None, config_path=None, config_text=None, validation_days=None, score_validation=false))]
#[allow(clippy::too_many_arguments)]
fn evaluate(
    py: Python<'_>,
    purchases: &Purchases,
    holdout_from: String,
    ks: Vec<usize>,
    models: Option<Vec<String>>,
    config_path: Option<PathBuf>,
    config_text: Option<String>,
    validation_days: Option<f64>,
    score_validation: bool,
) -> PyResult<(String, String)> {
    let config = read_config(config_path.as_deref(), config_text.as_deref())?;
    let cutoff = parse_timestamp(&holdout_from).ok_or_else(|| {
        ConfigError::new_err(format!(
            "holdout_from '{holdout_from}' is not a timestamp (RFC 3339, YYYY-MM-DD HH:MM:SS, YYYY-MM-DD or YYYYMMDD)"
        ))
    })?;
    let registry = match &models {
        None => Registry::standard(),
        Some(m) => Registry::standard().only(m).map_err(config_err)?,
    };
    let options = EvalOptions {
        split: Split::Time { cutoff, end: None },
        validation_days: validation_days.unwrap_or(DEFAULT_VALIDATION_DAYS),
        ks,
        score_validation,
    };
    let input = &purchases.input;
    let report = py
        .detach(|| {
            let data = data_summary(&input.report, &input.log);
            evaluate_with(
                &input.log,
                &input.item_meta,
                &config,
                &data,
                &options,
                &registry,
                None,
            )
        })
        .map_err(model_err)?;
    if report.customers_scored == 0 {
        return Err(ModelError::new_err("no customer could be scored"));
    }
    let json = serde_json::to_string(&report).map_err(model_err)?;
    Ok((report.table(), json))
}

/// A trained engine: every model of one artifact. Its methods take every
/// argument: the Python wrapper `encore.Model` gives the defaults.
#[pyclass(frozen, module = "encore._encore")]
struct Model {
    engine: Arc<Engine>,
}

/// One record batch as an `arrow_array_stream` capsule.
fn to_capsule<'py>(py: Python<'py>, batch: RecordBatch) -> PyResult<Bound<'py, PyCapsule>> {
    let schema = batch.schema();
    let reader: Box<dyn RecordBatchReader + Send> =
        Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema));
    let stream = FFI_ArrowArrayStream::new(reader);
    let name = CString::new("arrow_array_stream").expect("no NUL byte");
    PyCapsule::new(py, stream, Some(name))
}

/// Builds a record batch from named columns.
fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("columns of equal length and known types")
}

fn strings<'a>(values: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(values.into_iter().map(Some).collect::<StringArray>())
}

fn opt_strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn dates(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<TimestampSecondArray>())
}

fn reason_name(r: Reason) -> &'static str {
    match r {
        Reason::Replenishment => "replenishment",
        Reason::Recommendation => "recommendation",
    }
}

/// A string column stored as a dictionary: row `r` holds `values[keys[r]]`
/// (`values` distinct). Long answers repeat few ids (a customer on each of
/// its k rows, the same items across lists): the Python side then makes one
/// string object per distinct id rather than one per row.
fn coded(values: Vec<&str>, keys: Vec<i32>) -> ArrayRef {
    let values: ArrayRef = Arc::new(StringArray::from_iter_values(values));
    Arc::new(
        DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), values)
            .expect("every key indexes a value"),
    )
}

/// Ranked lists as rows `key_name, rank, item_name, score`, the two id
/// columns [`coded`].
fn list_rows(
    engine: &Engine,
    keys: &[String],
    lists: &[Vec<(u32, f32)>],
    key_name: &str,
    item_name: &str,
) -> RecordBatch {
    let n: usize = lists.iter().map(Vec::len).sum();
    let mut key_col = Vec::with_capacity(n);
    let mut rank = Vec::with_capacity(n);
    let mut item = Vec::with_capacity(n);
    let mut score = Vec::with_capacity(n);
    // The code of each distinct key and item, given at its first row.
    let mut key_codes: HashMap<&str, i32> = HashMap::with_capacity(keys.len());
    let mut key_values = Vec::new();
    let mut item_codes = vec![-1i32; engine.items().len()];
    let mut item_values = Vec::new();
    for (key, list) in keys.iter().zip(lists) {
        if list.is_empty() {
            continue;
        }
        let code = *key_codes.entry(key.as_str()).or_insert_with(|| {
            key_values.push(key.as_str());
            key_values.len() as i32 - 1
        });
        for (r, &(i, s)) in list.iter().enumerate() {
            let item_code = &mut item_codes[i as usize];
            if *item_code < 0 {
                *item_code = item_values.len() as i32;
                item_values.push(engine.items().id(i));
            }
            key_col.push(code);
            rank.push(r as i64 + 1);
            item.push(*item_code);
            score.push(s);
        }
    }
    batch(vec![
        (key_name, coded(key_values, key_col)),
        ("rank", Arc::new(Int64Array::from(rank))),
        (item_name, coded(item_values, item)),
        ("score", Arc::new(Float32Array::from(score))),
    ])
}

impl Model {
    fn filter(&self, exclude: Option<Vec<String>>, category: Option<String>) -> ListFilter {
        ListFilter {
            exclude: exclude
                .unwrap_or_default()
                .iter()
                .filter_map(|id| self.engine.items().get(id))
                .collect(),
            category,
            include_purchased: false,
        }
    }

    fn customer_ids(&self, ids: Option<Vec<String>>) -> Vec<String> {
        ids.unwrap_or_else(|| self.engine.customers().ids().map(str::to_owned).collect())
    }

    fn item_ids(&self, ids: Option<Vec<String>>) -> Vec<String> {
        ids.unwrap_or_else(|| self.engine.items().ids().map(str::to_owned).collect())
    }

    /// Customers known to the model with a profile, in the order given.
    fn profiled(&self, ids: &[String]) -> Vec<(String, u32)> {
        ids.iter()
            .filter_map(|id| {
                let c = self.engine.customers().get(id)?;
                self.engine.customer_book().profile(c)?;
                Some((id.clone(), c))
            })
            .collect()
    }

    /// A list of at most `k` (checked: 1 to 100) for each
    /// [`Model::profiled`] customer of `customer_ids` (every customer when
    /// `None`), computed off the GIL and in parallel by `list(engine,
    /// customer)`, then `rows(engine, customers, lists)`.
    fn per_customer<'py, T: Send>(
        &self,
        py: Python<'py>,
        customer_ids: Option<Vec<String>>,
        k: usize,
        list: impl Fn(&Engine, u32) -> Vec<T> + Sync,
        rows: impl FnOnce(&Engine, &[(String, u32)], &[Vec<T>]) -> RecordBatch + Send,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        check_k(k, 100)?;
        let ids = self.customer_ids(customer_ids);
        let engine = &*self.engine;
        let rows = py.detach(|| {
            let who = self.profiled(&ids);
            let lists: Vec<Vec<T>> = who.par_iter().map(|&(_, c)| list(engine, c)).collect();
            rows(engine, &who, &lists)
        });
        to_capsule(py, rows)
    }
}

fn check_k(k: usize, max: usize) -> PyResult<()> {
    if (1..=max).contains(&k) {
        Ok(())
    } else {
        Err(ConfigError::new_err(format!(
            "k must be between 1 and {max}, got {k}"
        )))
    }
}

#[pymethods]
impl Model {
    /// Writes the artifact directory (replaced atomically), the format
    /// `encore-serve` and `encore-train` load; returns the manifest as JSON.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<String> {
        let manifest = py
            .detach(|| artifact::save(&self.engine, &path))
            .map_err(|e| {
                model_err(
                    anyhow::Error::new(e)
                        .context(format!("cannot write the model to {}", path.display())),
                )
            })?;
        serde_json::to_string(&manifest).map_err(model_err)
    }

    /// The manifest (version, data summary, configuration, metrics) as JSON.
    fn manifest_json(&self) -> String {
        serde_json::to_string(self.engine.manifest()).expect("the manifest serialises")
    }

    /// Per customer the personal list: what `GET
    /// /v1/customers/{id}/recommendations` answers and `encore-train
    /// recommend --list for-you` writes (the tests check they agree).
    #[pyo3(signature = (customer_ids, k, include_purchased, exclude, category))]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        customer_ids: Option<Vec<String>>,
        k: usize,
        include_purchased: bool,
        exclude: Option<Vec<String>>,
        category: Option<String>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        check_k(k, 1000)?;
        let ids = self.customer_ids(customer_ids);
        let filtered = exclude.is_some() || category.is_some();
        let filter = ListFilter {
            include_purchased,
            ..self.filter(exclude, category)
        };
        let engine = &*self.engine;
        // Lists of new items longer than the heads the model precomputed are
        // scored in blocks, as `encore-train recommend` does; every other
        // list is the API's (precomputed heads where they answer). The two
        // give the same lists (`Engine::recommend`'s docs).
        let heads = match engine.new_item_lists() {
            Some(_) => engine.manifest().config["for_you"]["new_items_top_n"]
                .as_u64()
                .unwrap_or(0) as usize,
            None => 0,
        };
        let batch_scoring = !filtered && !include_purchased && k > heads;
        let rows = py.detach(|| {
            let idx: Vec<Option<u32>> = ids.iter().map(|id| engine.customers().get(id)).collect();
            let lists = if batch_scoring {
                lists_for(engine, ListKind::ForYou, &idx, k, false)
            } else {
                idx.par_iter()
                    .map(|&c| engine.for_you(c, k, &filter).1)
                    .collect()
            };
            list_rows(engine, &ids, &lists, "customer_id", "item_id")
        });
        to_capsule(py, rows)
    }

    /// A list for an anonymous basket (`POST /v1/recommendations`); returns
    /// the rows and whether the fallback list answered.
    #[pyo3(signature = (items, k, exclude, category))]
    fn basket<'py>(
        &self,
        py: Python<'py>,
        items: Vec<String>,
        k: usize,
        exclude: Option<Vec<String>>,
        category: Option<String>,
    ) -> PyResult<(Bound<'py, PyCapsule>, bool)> {
        check_k(k, 1000)?;
        let filter = self.filter(exclude, category);
        let engine = &*self.engine;
        let basket: Vec<u32> = items
            .iter()
            .filter_map(|id| engine.items().get(id))
            .collect();
        let (source, list) = py.detach(|| engine.recommend_basket(&basket, k, &filter));
        let rows = list_rows(engine, &[String::new()], &[list], "basket", "item_id");
        let rows = rows.project(&[1, 2, 3]).expect("the columns exist");
        Ok((
            to_capsule(py, rows)?,
            source == encore_model::engine::Source::Fallback,
        ))
    }

    /// One row per profiled customer with every profile field (`encore-train
    /// customers`).
    fn customers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        let engine = &*self.engine;
        let rows = py.detach(|| {
            let profiles: Vec<(u32, encore_model::customer::book::CustomerProfile)> = engine
                .customer_book()
                .profiles()
                .enumerate()
                .filter_map(|(c, p)| Some((c as u32, p?)))
                .collect();
            let col_f64 =
                |f: &dyn Fn(&encore_model::customer::book::CustomerProfile) -> f64| -> ArrayRef {
                    Arc::new(profiles.iter().map(|(_, p)| f(p)).collect::<Float64Array>())
                };
            let col_opt = |f: &dyn Fn(
                &encore_model::customer::book::CustomerProfile,
            ) -> Option<f64>|
             -> ArrayRef {
                Arc::new(profiles.iter().map(|(_, p)| f(p)).collect::<Float64Array>())
            };
            let col_u32 =
                |f: &dyn Fn(&encore_model::customer::book::CustomerProfile) -> u32| -> ArrayRef {
                    Arc::new(profiles.iter().map(|(_, p)| f(p)).collect::<UInt32Array>())
                };
            batch(vec![
                (
                    "customer_id",
                    strings(profiles.iter().map(|(c, _)| engine.customers().id(*c))),
                ),
                ("orders", col_u32(&|p| p.orders)),
                (
                    "first_purchase",
                    dates(profiles.iter().map(|(_, p)| Some(p.first_purchase))),
                ),
                (
                    "last_purchase",
                    dates(profiles.iter().map(|(_, p)| Some(p.last_purchase))),
                ),
                ("total_spend", col_f64(&|p| p.total_spend)),
                ("average_order_value", col_f64(&|p| p.average_order_value)),
                (
                    "spend_complete",
                    Arc::new(
                        profiles
                            .iter()
                            .map(|(_, p)| Some(p.spend_complete))
                            .collect::<arrow_array::BooleanArray>(),
                    ),
                ),
                ("recency_days", col_f64(&|p| p.recency_days)),
                ("r", col_u32(&|p| u32::from(p.r))),
                ("f", col_u32(&|p| u32::from(p.f))),
                ("m", col_u32(&|p| u32::from(p.m))),
                (
                    "segment",
                    strings(profiles.iter().map(|(_, p)| p.segment.as_str())),
                ),
                (
                    "behaviour_segment",
                    opt_strings(profiles.iter().map(|(_, p)| p.behaviour_segment.as_deref())),
                ),
                (
                    "lifecycle_stage",
                    strings(profiles.iter().map(|(_, p)| p.stage.as_str())),
                ),
                ("typical_gap_days", col_f64(&|p| p.typical_gap_days)),
                ("p_alive", col_opt(&|p| p.p_alive)),
                ("churn_risk", col_opt(&|p| p.churn_risk)),
                (
                    "expected_purchases_30d",
                    col_opt(&|p| p.expected_purchases_30d),
                ),
                (
                    "expected_purchases_90d",
                    col_opt(&|p| p.expected_purchases_90d),
                ),
                (
                    "predicted_next_purchase_date",
                    dates(profiles.iter().map(|(_, p)| p.predicted_next_purchase)),
                ),
                (
                    "buy_within_30d_probability",
                    col_opt(&|p| p.buy_within_30d_probability),
                ),
                ("clv", col_opt(&|p| p.clv)),
            ])
        });
        to_capsule(py, rows)
    }

    /// The lists of `kind` for `ids` (every item or customer of the model
    /// when `None`). Per item, unknown items without rows: `similar`, the
    /// items closest in the ALS space (`encore-train recommend --list
    /// similar`); `bought_together`, the items most often bought with it
    /// (`--list bought-together`). Per customer, customers without a profile
    /// without rows: `next_purchase`, the items of a next-purchase message
    /// (`GET /v1/customers/{id}/next-purchase`'s `recommended_items`), due
    /// replenishments then new items; `buy_again`, the previously bought
    /// items, most due first (`GET /v1/customers/{id}/buy-again`).
    #[pyo3(signature = (kind, ids, k))]
    fn lists<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        ids: Option<Vec<String>>,
        k: usize,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let all = ListFilter::default();
        // An item list, computed as `encore-train recommend` computes it.
        let item_lists = |kind: ListKind, ids: Option<Vec<String>>| {
            check_k(k, 1000)?;
            let ids = self.item_ids(ids);
            let engine = &*self.engine;
            let rows = py.detach(|| {
                let idx: Vec<Option<u32>> = ids.iter().map(|id| engine.items().get(id)).collect();
                let lists = lists_for(engine, kind, &idx, k, false);
                list_rows(engine, &ids, &lists, "item_id", "similar_item_id")
            });
            to_capsule(py, rows)
        };
        match kind {
            "similar" => item_lists(ListKind::Similar, ids),
            "bought_together" => item_lists(ListKind::BoughtTogether, ids),
            "next_purchase" => self.per_customer(
                py,
                ids,
                k,
                |engine, c| engine.next_purchase_items(c, k, &all),
                |engine, who, lists| {
                    suggestion_rows(engine, who.iter().map(|(id, _)| id.as_str()), lists, None)
                },
            ),
            "buy_again" => self.per_customer(
                py,
                ids,
                k,
                |engine, c| engine.buy_again(c, k, &all),
                buy_again_rows,
            ),
            other => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown list '{other}' (known: similar, bought_together, next_purchase, buy_again)"
            ))),
        }
    }

    /// A reactivation audience (`encore-train audience`, `GET
    /// /v1/audiences/reactivation`): one row per suggested item, customers
    /// highest CLV first, with the customer's send date.
    #[pyo3(signature = (stages, segments, min_p_alive, min_clv, k, limit, as_of, max_churn_risk))]
    #[allow(clippy::too_many_arguments)]
    fn audience<'py>(
        &self,
        py: Python<'py>,
        stages: String,
        segments: Option<Vec<String>>,
        min_p_alive: Option<f64>,
        min_clv: Option<f64>,
        k: usize,
        limit: Option<usize>,
        as_of: Option<String>,
        max_churn_risk: Option<f64>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let setting_err = |SettingProblem { setting, problem }| {
            ConfigError::new_err(format!("{setting} {problem}"))
        };
        let settings = AudienceArgs {
            stage: stages,
            segment: segments.unwrap_or_default(),
            min_p_alive,
            max_churn_risk,
            min_clv,
            k,
            limit,
            as_of,
        };
        let query = settings.query().map_err(setting_err)?;
        let engine = &*self.engine;
        if let Some(problem) = engine.audience_setting_problem(&query) {
            return Err(setting_err(problem));
        }
        let rows = py.detach(|| {
            let members = engine.audience_members(&query);
            let rows = engine.audience_rows(&members, &query);
            let lists: Vec<Vec<Suggestion>> = rows.iter().map(|r| r.items.clone()).collect();
            let send: Vec<i64> = rows.iter().map(|r| r.send_date).collect();
            suggestion_rows(
                engine,
                rows.iter().map(|r| engine.customers().id(r.customer)),
                &lists,
                Some(&send),
            )
        });
        to_capsule(py, rows)
    }

    /// Repurchase KPIs, stage and segment counts and the customer model fits
    /// as JSON: the body of `GET /v1/kpis` without its `segment_spend` and
    /// `clv_distribution`.
    fn kpis_json(&self) -> String {
        self.engine.customer_book().models().kpis_json().to_string()
    }

    /// The ALS factors as little-endian `f32` bytes, row-major: (customer
    /// factors, item factors, factors per row). Rows follow the model's
    /// customer and item order ([`Model::ids`]).
    fn als_factor_bytes<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>, usize) {
        let als = self.engine.als();
        let bytes = |a: &ndarray::Array2<f32>| -> Vec<u8> {
            a.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        (
            PyBytes::new(py, &bytes(als.user_factors())),
            PyBytes::new(py, &bytes(als.item_factors())),
            als.factors(),
        )
    }

    /// The customer x item purchase matrix of the training period as
    /// little-endian bytes: (indptr as `u64`, indices as `u32`, values as
    /// `f32`), the CSR layout scipy reads.
    fn history_bytes<'py>(
        &self,
        py: Python<'py>,
    ) -> (
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
    ) {
        let h = self.engine.history();
        let indptr: Vec<u8> = h
            .indptr()
            .iter()
            .flat_map(|&v| (v as u64).to_le_bytes())
            .collect();
        let indices: Vec<u8> = h.indices().iter().flat_map(|v| v.to_le_bytes()).collect();
        let values: Vec<u8> = h.values().iter().flat_map(|v| v.to_le_bytes()).collect();
        (
            PyBytes::new(py, &indptr),
            PyBytes::new(py, &indices),
            PyBytes::new(py, &values),
        )
    }

    /// The customer ids and the item ids, in the model's index order.
    fn ids(&self) -> (Vec<String>, Vec<String>) {
        (
            self.engine.customers().ids().map(str::to_owned).collect(),
            self.engine.items().ids().map(str::to_owned).collect(),
        )
    }

    /// Customers and items the model knows.
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.engine.customers().len(), self.engine.items().len())
    }

    fn __repr__(&self) -> String {
        let m = self.engine.manifest();
        format!(
            "<encore.Model {}: {} customers x {} items>",
            m.model_version,
            self.engine.customers().len(),
            self.engine.items().len()
        )
    }
}

/// Every entry of `lists`, list by list, with the index of its list and its
/// rank (from 1): the rows of an answer, from which each column is mapped.
fn ranked<T>(lists: &[Vec<T>]) -> Vec<(usize, i64, &T)> {
    lists
        .iter()
        .enumerate()
        .flat_map(|(l, list)| {
            list.iter()
                .enumerate()
                .map(move |(r, entry)| (l, r as i64 + 1, entry))
        })
        .collect()
}

/// The `rank` column of [`ranked`] rows.
fn ranks<T>(rows: &[(usize, i64, &T)]) -> ArrayRef {
    Arc::new(rows.iter().map(|&(_, r, _)| r).collect::<Int64Array>())
}

/// Buy-again lists as rows `customer_id, rank, item_id, score, due_date,
/// last_purchase, interval_days, repeat_probability, purchases`.
fn buy_again_rows(engine: &Engine, who: &[(String, u32)], lists: &[Vec<DueItem>]) -> RecordBatch {
    let rows = ranked(lists);
    let floats = |f: fn(&DueItem) -> f32| -> ArrayRef {
        Arc::new(rows.iter().map(|&(_, _, d)| f(d)).collect::<Float32Array>())
    };
    batch(vec![
        (
            "customer_id",
            strings(rows.iter().map(|&(l, _, _)| who[l].0.as_str())),
        ),
        ("rank", ranks(&rows)),
        (
            "item_id",
            strings(rows.iter().map(|(_, _, d)| engine.items().id(d.item))),
        ),
        ("score", floats(|d| d.due_score)),
        (
            "due_date",
            dates(rows.iter().map(|(_, _, d)| Some(d.due_date))),
        ),
        (
            "last_purchase",
            dates(rows.iter().map(|(_, _, d)| Some(d.last_purchase))),
        ),
        ("interval_days", floats(|d| d.interval_days)),
        ("repeat_probability", floats(|d| d.repeat_probability)),
        (
            "purchases",
            Arc::new(
                rows.iter()
                    .map(|(_, _, d)| d.purchases)
                    .collect::<UInt32Array>(),
            ),
        ),
    ])
}

/// Suggestions as rows `customer_id, [send_date,] rank, item_id, reason, score, due_date`.
fn suggestion_rows<'a>(
    engine: &Engine,
    customers: impl Iterator<Item = &'a str>,
    lists: &[Vec<Suggestion>],
    send_dates: Option<&[i64]>,
) -> RecordBatch {
    let customers: Vec<&str> = customers.collect();
    let rows = ranked(lists);
    let mut columns: Vec<(&str, ArrayRef)> = vec![(
        "customer_id",
        strings(rows.iter().map(|&(l, _, _)| customers[l])),
    )];
    if let Some(send) = send_dates {
        columns.push((
            "send_date",
            dates(rows.iter().map(|&(l, _, _)| Some(send[l]))),
        ));
    }
    columns.extend([
        ("rank", ranks(&rows)),
        (
            "item_id",
            strings(rows.iter().map(|(_, _, s)| engine.items().id(s.item))),
        ),
        (
            "reason",
            strings(rows.iter().map(|(_, _, s)| reason_name(s.reason))),
        ),
        (
            "score",
            Arc::new(
                rows.iter()
                    .map(|(_, _, s)| s.score)
                    .collect::<Float32Array>(),
            ),
        ),
        ("due_date", dates(rows.iter().map(|(_, _, s)| s.due_date))),
    ]);
    batch(columns)
}

/// The native module; the Python package `encore` re-exports it.
#[pymodule]
fn _encore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EncoreError", py.get_type::<EncoreError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add_class::<Purchases>()?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(check_config, m)?)?;
    m.add_function(wrap_pyfunction!(config_json_to_toml, m)?)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    Ok(())
}
