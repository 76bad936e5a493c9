//! The artifact's manifest: its format version, where the model came from
//! (the data summary, the configuration, the metrics) and the size and
//! checksum of every other file. The [`Engine`](crate::engine::Engine)
//! carries its manifest; [`crate::artifact`] writes it last and reads it
//! first.

use crate::cf::als::AlsParams;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The artifact format this build writes and reads.
pub const FORMAT_VERSION: u32 = 4;

/// What the training data looked like.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// `sha256:` of the input file as read.
    pub fingerprint: String,
    pub source: String,
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub rows_rejected: u64,
    pub customers: usize,
    pub items: usize,
    pub orders: usize,
    /// Non-zero (customer, item) pairs the models trained on.
    pub interactions: usize,
    pub first_purchase: Option<String>,
    pub last_purchase: Option<String>,
    /// Purchase events merged into the input (`encore-train fit --events`);
    /// absent when none were read. Optional, so manifests without it load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventInputSummary>,
}

/// What `fit --events DIR` merged from an event log (see `encore-train`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventInputSummary {
    /// The event log directory read.
    pub dir: String,
    /// Log files read.
    pub files: usize,
    /// Purchase events added to the history.
    pub purchases_merged: u64,
    /// Purchase events skipped because their order is in the input file already.
    pub purchases_in_input: u64,
    /// Exposures and clicks (not training input).
    pub other_events: u64,
    /// Files ending in an unacknowledged partial line (skipped).
    pub torn_tails: usize,
    /// Times of the first and last merged purchase.
    pub first_purchase: Option<String>,
    pub last_purchase: Option<String>,
}

/// The artifact's table of contents, written last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Unique name of this model, e.g. `20261122T231500Z-3fa2c1d0`.
    pub model_version: String,
    /// RFC 3339 time the artifact was written.
    pub created_at: String,
    /// Version of Encore that wrote it.
    pub encore_version: String,
    pub data: DataSummary,
    /// The training configuration, as given.
    pub config: serde_json::Value,
    /// ALS hyper-parameters (also inside `config`; here because loading needs them).
    pub als: AlsParams,
    /// Evaluation figures of the training run, if any.
    pub metrics: serde_json::Value,
    /// Which model built the precomputed "for you" lists, and the re-ranker's
    /// weights when it did (absent in artifacts without those lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_you: Option<ForYouSummary>,
    /// Every other file of the artifact with its size and checksum.
    #[serde(default)]
    pub files: BTreeMap<String, FileEntry>,
}

/// How the precomputed "for you" lists were built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForYouSummary {
    /// `ranker` or `tifu_als`.
    pub model: String,
    /// Why the configured model was not used, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The re-ranker's training rows and weights by feature, largest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranker: Option<RankerSummary>,
}

/// What the re-ranker learned, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankerSummary {
    /// `logistic` or `boosted_trees`.
    pub learner: String,
    pub training_customers: usize,
    pub training_rows: usize,
    pub training_positives: usize,
    /// Logistic regression only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intercept: Option<f64>,
    /// By feature, largest first: the weights of the standardised features
    /// (logistic regression) or each feature's share of the splits (trees).
    pub importance: Vec<(String, f64)>,
}

/// Size and checksum of one artifact file, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    pub bytes: u64,
    pub crc32: u32,
}
