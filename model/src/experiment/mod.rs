//! Online experiments: their configuration and the deterministic assignment
//! of customers to variants.
//!
//! An experiment has a name, an optional salt, a control variant and two or
//! more variants, each with a traffic share and the strategy it serves. The
//! configuration is a TOML file (or, for an admin API, the same fields as JSON
//! through [`ExperimentSpec`] and [`Experiment::from_spec`]):
//!
//! ```toml
//! [[experiment]]
//! name = "home-for-you"
//! salt = "2026-12"            # optional, defaults to the name
//! control = "control"         # which variant is control
//! [[experiment.variant]]
//! name = "control"
//! share = 0.5
//! strategy = { list = "als", k = 10 }
//! [[experiment.variant]]
//! name = "repeat_aware"
//! share = 0.5
//! strategy = { list = "for_you", k = 10, include_purchased = true }
//! ```
//!
//! A strategy is one of the lists the server answers today (one model is
//! served at a time, so a variant cannot name another model version):
//!
//! | `list` | what is served | keys besides `k` |
//! |---|---|---|
//! | `als` | the ALS personal list (popularity for unknown customers) | `include_purchased` (default false), `category` |
//! | `for_you` | the precomputed repeat-aware list (TIFU-KNN blended with ALS), filled from ALS | `include_purchased` (must be true if given: without it the list *is* `als`), `category` |
//! | `popular` | the popularity list for everyone | `category` |
//! | `buy_again` | the replenishment ("buy it again") list | none |
//! | `blend` | a list blend: the `buy_again_slots` most due buy-again items, then new items from ALS up to `k` | `buy_again_slots` (required, 1 to `k`), `category` |
//!
//! `k` is 1 to [`MAX_K`], the server's limit.
//!
//! An optional `placement` names the list of the server the experiment runs
//! on; the only one is `recommendations` ([`DEFAULT_PLACEMENT`], the personal
//! list of `GET /v1/customers/{id}/recommendations`), which is also the
//! default. The server runs at most one experiment per placement (it refuses
//! a configuration with two); this crate only checks the name.
//!
//! # Assignment
//!
//! [`Experiment::assign`] hashes `salt || 0x00 || customer_id` (UTF-8 bytes)
//! with SHA-256, reads the first 8 bytes of the digest as a big-endian `u64`,
//! keeps its top 53 bits and divides by 2⁵³, which gives a point `u` in
//! `[0, 1)` computed exactly. Variants own consecutive ranges of `[0, 1)` in
//! configuration order, each as wide as its share: the customer gets the first
//! variant whose cumulative share exceeds `u` (the last variant takes any
//! remainder left by rounding). SHA-256 and IEEE arithmetic are the same on
//! every platform, Rust version, process and replica, so a customer keeps
//! their variant across restarts and machines.
//!
//! # Changing an experiment
//!
//! A customer keeps their variant as long as the variant owning their point
//! `u` does not change. So:
//! * changing the salt reshuffles everyone independently of the old
//!   assignment (start a new experiment that way);
//! * in a two-variant experiment any share change moves exactly the customers
//!   it must, all in one direction (ramping treatment from 10% to 50% moves
//!   40% of customers from control to treatment, nobody back);
//! * adding a variant at the end, with its share taken from the variant
//!   before it, moves only customers of that variant to the new one;
//! * changing the share of any other variant shifts the boundaries of every
//!   variant after it, which moves customers between those variants too.
//!   Analyse such an experiment from the change on, or change the salt.
//!
//! Renaming a variant keeps its customers (assignment depends on the order
//! and shares, not names); the exposure log records the name served.

pub mod report;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The longest list a variant may serve. The same bound as the server's
/// `k` limit (`encore-serving`'s `limits::MAX_K`), repeated here because
/// this crate does not depend on the server.
pub const MAX_K: usize = 200;

/// The placement of an experiment that names none.
pub const DEFAULT_PLACEMENT: &str = "recommendations";

/// Every placement an experiment may name.
pub const PLACEMENTS: [&str; 1] = [DEFAULT_PLACEMENT];

/// How far the shares of an experiment may sum away from 1.
pub const SHARE_TOLERANCE: f64 = 1e-9;

/// The longest experiment, variant or salt name, in bytes: the same bound as
/// ids in the event log, where experiment and variant names are recorded.
pub const MAX_NAME_BYTES: usize = encore_data::events::MAX_EVENT_ID_BYTES;

/// Why an experiments configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentConfigError {
    #[error("cannot read the experiments file {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The text is not TOML.
    #[error("the experiments file is not valid TOML: {message}")]
    Syntax { message: String },
    /// A value is missing, unknown, of the wrong type or out of range.
    #[error("{}", invalid_message(.experiment, .variant, .key, .message))]
    Invalid {
        /// The experiment's name (or `#n`, its position, when it has none).
        experiment: Option<String>,
        /// The variant's name (or `#n`).
        variant: Option<String>,
        /// The key at fault; empty when the message names it.
        key: String,
        message: String,
    },
    /// A file's error, with the file named.
    #[error("{path}: {cause}")]
    InFile {
        path: PathBuf,
        cause: Box<ExperimentConfigError>,
    },
}

fn invalid_message(
    experiment: &Option<String>,
    variant: &Option<String>,
    key: &str,
    message: &str,
) -> String {
    let mut out = String::new();
    if let Some(e) = experiment {
        out.push_str(&format!("experiment {e:?}: "));
    }
    if let Some(v) = variant {
        out.push_str(&format!("variant {v:?}: "));
    }
    if !key.is_empty() {
        out.push_str(key);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

fn invalid(
    experiment: Option<&str>,
    variant: Option<&str>,
    key: &str,
    message: impl Into<String>,
) -> ExperimentConfigError {
    ExperimentConfigError::Invalid {
        experiment: experiment.map(str::to_string),
        variant: variant.map(str::to_string),
        key: key.to_string(),
        message: message.into(),
    }
}

/// Which list a strategy serves, as spelled in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListName {
    Als,
    ForYou,
    Popular,
    BuyAgain,
    Blend,
}

impl fmt::Display for ListName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListName::Als => "als",
            ListName::ForYou => "for_you",
            ListName::Popular => "popular",
            ListName::BuyAgain => "buy_again",
            ListName::Blend => "blend",
        })
    }
}

/// A strategy as written, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    pub list: ListName,
    pub k: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_purchased: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `blend` only: how many of the first places go to due buy-again items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy_again_slots: Option<usize>,
}

/// A variant as written, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    pub name: String,
    pub share: f64,
    pub strategy: StrategySpec,
}

/// An experiment as written (a `[[experiment]]` table, or the JSON body of an
/// admin call), before validation by [`Experiment::from_spec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    pub control: String,
    /// Where the experiment runs (one of [`PLACEMENTS`]; default
    /// [`DEFAULT_PLACEMENT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    #[serde(rename = "variant", alias = "variants")]
    pub variants: Vec<VariantSpec>,
}

/// What a variant serves: one of the lists the server answers today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The ALS personal list; popularity for customers the model does not know.
    Als {
        k: usize,
        include_purchased: bool,
        category: Option<String>,
    },
    /// The precomputed repeat-aware list (served with `include_purchased`),
    /// filled from ALS; ALS for customers without one.
    ForYou { k: usize, category: Option<String> },
    /// The popularity list, for everyone.
    Popular { k: usize, category: Option<String> },
    /// The buy-again (replenishment) list.
    BuyAgain { k: usize },
    /// A blend: up to `buy_again_slots` due buy-again items first, then new
    /// items from the ALS list (never bought by the customer) to fill `k`.
    Blend {
        k: usize,
        buy_again_slots: usize,
        category: Option<String>,
    },
}

impl Strategy {
    /// The list length.
    pub fn k(&self) -> usize {
        match self {
            Strategy::Als { k, .. }
            | Strategy::ForYou { k, .. }
            | Strategy::Popular { k, .. }
            | Strategy::BuyAgain { k }
            | Strategy::Blend { k, .. } => *k,
        }
    }

    /// The list's configuration name.
    pub fn list(&self) -> ListName {
        match self {
            Strategy::Als { .. } => ListName::Als,
            Strategy::ForYou { .. } => ListName::ForYou,
            Strategy::Popular { .. } => ListName::Popular,
            Strategy::BuyAgain { .. } => ListName::BuyAgain,
            Strategy::Blend { .. } => ListName::Blend,
        }
    }

    /// The category filter, if any.
    pub fn category(&self) -> Option<&str> {
        match self {
            Strategy::Als { category, .. }
            | Strategy::ForYou { category, .. }
            | Strategy::Popular { category, .. }
            | Strategy::Blend { category, .. } => category.as_deref(),
            Strategy::BuyAgain { .. } => None,
        }
    }

    /// Whether items the customer bought before may be listed.
    pub fn include_purchased(&self) -> bool {
        match self {
            Strategy::Als {
                include_purchased, ..
            } => *include_purchased,
            Strategy::ForYou { .. } | Strategy::BuyAgain { .. } => true,
            // The new-item part; the buy-again part lists bought items.
            Strategy::Popular { .. } | Strategy::Blend { .. } => false,
        }
    }

    fn from_spec(
        spec: &StrategySpec,
        experiment: &str,
        variant: &str,
    ) -> Result<Strategy, ExperimentConfigError> {
        let bad = |key: &str, message: String| {
            invalid(
                Some(experiment),
                Some(variant),
                &format!("strategy.{key}"),
                message,
            )
        };
        let k = spec.k;
        if !(1..=MAX_K).contains(&k) {
            return Err(bad("k", format!("must be 1 to {MAX_K}, not {k}")));
        }
        if let Some(c) = &spec.category {
            check_name(c).map_err(|m| bad("category", m))?;
        }
        let category = spec.category.clone();
        let list = spec.list;
        let no = |key: &str| bad(key, format!("does not apply to the {list} list"));
        if list != ListName::Blend && spec.buy_again_slots.is_some() {
            return Err(no("buy_again_slots"));
        }
        Ok(match list {
            ListName::Als => Strategy::Als {
                k,
                include_purchased: spec.include_purchased.unwrap_or(false),
                category,
            },
            ListName::ForYou => {
                if spec.include_purchased == Some(false) {
                    return Err(bad(
                        "include_purchased",
                        "the for_you list without purchased items is the als list; \
                         write list = \"als\""
                            .to_string(),
                    ));
                }
                Strategy::ForYou { k, category }
            }
            ListName::Popular => {
                if spec.include_purchased.is_some() {
                    return Err(no("include_purchased"));
                }
                Strategy::Popular { k, category }
            }
            ListName::BuyAgain => {
                if spec.include_purchased.is_some() {
                    return Err(no("include_purchased"));
                }
                if spec.category.is_some() {
                    return Err(no("category"));
                }
                Strategy::BuyAgain { k }
            }
            ListName::Blend => {
                if spec.include_purchased.is_some() {
                    return Err(no("include_purchased"));
                }
                let slots = spec.buy_again_slots.ok_or_else(|| {
                    bad(
                        "buy_again_slots",
                        "is required for the blend list (1 to k)".to_string(),
                    )
                })?;
                if !(1..=k).contains(&slots) {
                    return Err(bad(
                        "buy_again_slots",
                        format!("must be 1 to k ({k}), not {slots}"),
                    ));
                }
                Strategy::Blend {
                    k,
                    buy_again_slots: slots,
                    category,
                }
            }
        })
    }

    /// The strategy as written.
    pub fn spec(&self) -> StrategySpec {
        let (include_purchased, category) = match self {
            Strategy::Als {
                include_purchased,
                category,
                ..
            } => (Some(*include_purchased), category.clone()),
            Strategy::ForYou { category, .. } => (Some(true), category.clone()),
            Strategy::Popular { category, .. } | Strategy::Blend { category, .. } => {
                (None, category.clone())
            }
            Strategy::BuyAgain { .. } => (None, None),
        };
        StrategySpec {
            list: self.list(),
            k: self.k(),
            include_purchased,
            category,
            buy_again_slots: match self {
                Strategy::Blend {
                    buy_again_slots, ..
                } => Some(*buy_again_slots),
                _ => None,
            },
        }
    }
}

/// A validated variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    /// Its share of the experiment's customers, in `(0, 1]`.
    pub share: f64,
    pub strategy: Strategy,
}

/// A validated experiment; see the module docs for the assignment rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    name: String,
    salt: String,
    /// Whether the salt was given (or defaulted to the name).
    explicit_salt: bool,
    /// The placement as written (`None`: [`DEFAULT_PLACEMENT`]).
    placement: Option<String>,
    control: usize,
    variants: Vec<Variant>,
    /// `bounds[i]`: the cumulative share of variants `0..=i`.
    bounds: Vec<f64>,
}

/// The point in `[0, 1)` of `customer_id` under `salt`: the top 53 bits of the
/// first 8 bytes (big-endian) of `SHA-256(salt || 0x00 || customer_id)`,
/// divided by 2⁵³ (exact in `f64`).
pub fn assignment_point(salt: &str, customer_id: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update([0u8]);
    hasher.update(customer_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let x = u64::from_be_bytes(first) >> 11;
    x as f64 / (1u64 << 53) as f64
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.len() > MAX_NAME_BYTES {
        Err(format!(
            "is {} bytes long; at most {MAX_NAME_BYTES}",
            name.len()
        ))
    } else if name.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

impl Experiment {
    /// Validates an experiment: names non-empty (at most [`MAX_NAME_BYTES`],
    /// no control characters) and unique, at least two variants, shares
    /// positive and summing to 1 within [`SHARE_TOLERANCE`], the control a
    /// variant, each strategy valid for its list with `k` in `1..=MAX_K`.
    pub fn from_spec(spec: ExperimentSpec) -> Result<Experiment, ExperimentConfigError> {
        let name = spec.name;
        check_name(&name).map_err(|m| invalid(Some(&name), None, "name", m))?;
        let e = Some(name.as_str());
        if let Some(salt) = &spec.salt {
            check_name(salt).map_err(|m| invalid(e, None, "salt", m))?;
        }
        if let Some(p) = &spec.placement
            && !PLACEMENTS.contains(&p.as_str())
        {
            return Err(invalid(
                e,
                None,
                "placement",
                format!(
                    "unknown placement {p:?}; the placements are {}",
                    PLACEMENTS.join(", ")
                ),
            ));
        }
        if spec.variants.len() < 2 {
            return Err(invalid(
                e,
                None,
                "variant",
                format!(
                    "an experiment needs at least two variants, found {}",
                    spec.variants.len()
                ),
            ));
        }
        let mut seen = HashSet::new();
        let mut variants = Vec::with_capacity(spec.variants.len());
        let mut bounds = Vec::with_capacity(spec.variants.len());
        let mut total = 0.0;
        for v in spec.variants {
            check_name(&v.name).map_err(|m| invalid(e, Some(&v.name), "name", m))?;
            if !seen.insert(v.name.clone()) {
                return Err(invalid(
                    e,
                    Some(&v.name),
                    "name",
                    "another variant has this name",
                ));
            }
            if !(v.share.is_finite() && v.share > 0.0 && v.share <= 1.0) {
                return Err(invalid(
                    e,
                    Some(&v.name),
                    "share",
                    format!("must be in (0, 1], not {}", v.share),
                ));
            }
            let strategy = Strategy::from_spec(&v.strategy, &name, &v.name)?;
            total += v.share;
            bounds.push(total);
            variants.push(Variant {
                name: v.name,
                share: v.share,
                strategy,
            });
        }
        if (total - 1.0).abs() > SHARE_TOLERANCE {
            return Err(invalid(
                e,
                None,
                "share",
                format!("the variants' shares sum to {total}, not 1"),
            ));
        }
        let control = variants
            .iter()
            .position(|v| v.name == spec.control)
            .ok_or_else(|| {
                invalid(
                    e,
                    None,
                    "control",
                    format!("{:?} is not one of the variants", spec.control),
                )
            })?;
        let (salt, explicit_salt) = match spec.salt {
            Some(s) => (s, true),
            None => (name.clone(), false),
        };
        Ok(Experiment {
            name,
            salt,
            explicit_salt,
            placement: spec.placement,
            control,
            variants,
            bounds,
        })
    }

    /// The experiment as written (the salt only if it was given).
    pub fn spec(&self) -> ExperimentSpec {
        ExperimentSpec {
            name: self.name.clone(),
            salt: self.explicit_salt.then(|| self.salt.clone()),
            control: self.control().name.clone(),
            placement: self.placement.clone(),
            variants: self
                .variants
                .iter()
                .map(|v| VariantSpec {
                    name: v.name.clone(),
                    share: v.share,
                    strategy: v.strategy.spec(),
                })
                .collect(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The salt of the assignment hash (the name unless one was given).
    pub fn salt(&self) -> &str {
        &self.salt
    }

    /// Where the experiment runs: one of [`PLACEMENTS`].
    pub fn placement(&self) -> &str {
        self.placement.as_deref().unwrap_or(DEFAULT_PLACEMENT)
    }

    /// The variants in configuration order.
    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// The control variant.
    pub fn control(&self) -> &Variant {
        &self.variants[self.control]
    }

    /// The control variant's position in [`Experiment::variants`].
    pub fn control_index(&self) -> usize {
        self.control
    }

    /// The variant of this name.
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }

    /// The position of the variant `customer_id` is assigned to.
    pub fn assign_index(&self, customer_id: &str) -> usize {
        let u = assignment_point(&self.salt, customer_id);
        let last = self.variants.len() - 1;
        self.bounds[..last]
            .iter()
            .position(|&b| u < b)
            .unwrap_or(last)
    }

    /// The variant `customer_id` is assigned to (see the module docs).
    pub fn assign(&self, customer_id: &str) -> &Variant {
        &self.variants[self.assign_index(customer_id)]
    }
}

/// Every configured experiment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExperimentsConfig {
    experiments: Vec<Experiment>,
}

impl ExperimentsConfig {
    /// Validates experiments given as specs (experiment names must be unique).
    pub fn from_specs(specs: Vec<ExperimentSpec>) -> Result<Self, ExperimentConfigError> {
        let mut experiments: Vec<Experiment> = Vec::with_capacity(specs.len());
        for spec in specs {
            let e = Experiment::from_spec(spec)?;
            if experiments.iter().any(|x| x.name == e.name) {
                return Err(invalid(
                    Some(&e.name),
                    None,
                    "name",
                    "another experiment has this name",
                ));
            }
            experiments.push(e);
        }
        Ok(ExperimentsConfig { experiments })
    }

    /// Parses and validates a TOML configuration (`[[experiment]]` tables).
    /// Unknown keys are refused; errors name the experiment, variant and key.
    pub fn from_toml_str(text: &str) -> Result<Self, ExperimentConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ExperimentConfigError::Syntax {
                    message: e.to_string(),
                })?;
        let file: ExperimentsFile =
            serde_path_to_error::deserialize(toml::Value::Table(table.clone()))
                .map_err(|e| located(&table, e.path(), e.inner().message()))?;
        Self::from_specs(file.experiment)
    }

    /// Reads and validates a TOML configuration file.
    pub fn from_path(path: &Path) -> Result<Self, ExperimentConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentConfigError::Io {
            path: path.to_path_buf(),
            cause: source,
        })?;
        Self::from_toml_str(&text).map_err(|e| ExperimentConfigError::InFile {
            path: path.to_path_buf(),
            cause: Box::new(e),
        })
    }

    /// The experiments in configuration order.
    pub fn experiments(&self) -> &[Experiment] {
        &self.experiments
    }

    /// The experiment of this name.
    pub fn get(&self, name: &str) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.name == name)
    }
}

/// An experiments file: `[[experiment]]` tables and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentsFile {
    #[serde(default)]
    experiment: Vec<ExperimentSpec>,
}

/// The error at `path` of the file read into `table`: the experiment and
/// the variant named (by their `name`, else `#n`, their 1-based position),
/// and the key path below them (`strategy.k`).
fn located(
    table: &toml::Table,
    path: &serde_path_to_error::Path,
    message: &str,
) -> ExperimentConfigError {
    use serde_path_to_error::Segment;
    let name_of = |value: Option<&toml::Value>, index: usize| match value
        .and_then(|v| v.get("name"))
        .and_then(toml::Value::as_str)
    {
        Some(name) => name.to_string(),
        None => format!("#{}", index + 1),
    };
    let segments: Vec<&Segment> = path.iter().collect();
    let mut rest = segments.as_slice();
    let mut experiment = None;
    let mut variant = None;
    if let [Segment::Map { key }, Segment::Seq { index }, tail @ ..] = rest
        && key == "experiment"
    {
        let e = table.get("experiment").and_then(|v| v.get(*index));
        experiment = Some(name_of(e, *index));
        rest = tail;
        if let [Segment::Map { key }, Segment::Seq { index }, tail @ ..] = rest
            && (key == "variant" || key == "variants")
        {
            let v = e.and_then(|e| e.get(key)).and_then(|v| v.get(*index));
            variant = Some(name_of(v, *index));
            rest = tail;
        }
    }
    let mut key = String::new();
    for segment in rest {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Enum { variant } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(variant);
            }
            Segment::Unknown => key.push_str(".?"),
        }
    }
    ExperimentConfigError::Invalid {
        experiment,
        variant,
        key,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[experiment]]
name = "home-for-you"
salt = "2026-12"
control = "control"
[[experiment.variant]]
name = "control"
share = 0.5
strategy = { list = "als", k = 10 }
[[experiment.variant]]
name = "repeat_aware"
share = 0.5
strategy = { list = "for_you", k = 10, include_purchased = true }

[[experiment]]
name = "three-way"
control = "a"
[[experiment.variant]]
name = "a"
share = 0.5
strategy = { list = "als", k = 10 }
[[experiment.variant]]
name = "b"
share = 0.3
strategy = { list = "popular", k = 20, category = "tea" }
[[experiment.variant]]
name = "c"
share = 0.2
strategy = { list = "buy_again", k = 5 }
"#;

    fn config() -> ExperimentsConfig {
        ExperimentsConfig::from_toml_str(EXAMPLE).unwrap()
    }

    /// A two- or more-variant experiment with these shares (variants v0, v1, ...).
    fn with_shares(salt: &str, shares: &[f64]) -> Experiment {
        Experiment::from_spec(ExperimentSpec {
            name: "x".into(),
            salt: Some(salt.into()),
            control: "v0".into(),
            placement: None,
            variants: shares
                .iter()
                .enumerate()
                .map(|(i, &share)| VariantSpec {
                    name: format!("v{i}"),
                    share,
                    strategy: StrategySpec {
                        list: ListName::Als,
                        k: 10,
                        include_purchased: None,
                        category: None,
                        buy_again_slots: None,
                    },
                })
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn the_example_parses_with_defaults() {
        let c = config();
        assert_eq!(c.experiments().len(), 2);
        let home = c.get("home-for-you").unwrap();
        assert_eq!(home.salt(), "2026-12");
        assert_eq!(home.placement(), DEFAULT_PLACEMENT);
        assert_eq!(
            home.spec().placement,
            None,
            "the default is not written out"
        );
        let placed = ExperimentsConfig::from_toml_str(&EXAMPLE.replacen(
            "salt = \"2026-12\"",
            "placement = \"recommendations\"",
            1,
        ))
        .unwrap();
        let placed = placed.get("home-for-you").unwrap();
        assert_eq!(placed.spec().placement.as_deref(), Some("recommendations"));
        assert_eq!(&Experiment::from_spec(placed.spec()).unwrap(), placed);
        assert_eq!(home.control().name, "control");
        assert_eq!(
            home.variant("repeat_aware").unwrap().strategy,
            Strategy::ForYou {
                k: 10,
                category: None
            }
        );
        let three = c.get("three-way").unwrap();
        assert_eq!(three.salt(), "three-way", "the salt defaults to the name");
        assert_eq!(
            three.variants()[1].strategy,
            Strategy::Popular {
                k: 20,
                category: Some("tea".into())
            }
        );
        assert_eq!(three.variants()[2].strategy.k(), 5);
        assert!(c.get("nope").is_none());
        // The spec round-trips through validation.
        for e in c.experiments() {
            assert_eq!(&Experiment::from_spec(e.spec()).unwrap(), e);
        }
        assert!(
            ExperimentsConfig::from_toml_str("")
                .unwrap()
                .experiments()
                .is_empty()
        );
    }

    /// The error for `EXAMPLE` with `from` replaced by `to`.
    fn error_of(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from}");
        let text = EXAMPLE.replacen(from, to, 1);
        ExperimentsConfig::from_toml_str(&text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_experiment_variant_and_key() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "salt = \"2026-12\"",
                "colour = \"red\"",
                &["\"home-for-you\"", "colour"],
            ),
            (
                "strategy = { list = \"als\", k = 10 }",
                "strategy = { list = \"als\", k = 10, depth = 3 }",
                &["\"home-for-you\"", "\"control\"", "strategy", "depth"],
            ),
            (
                "strategy = { list = \"als\", k = 10 }",
                "strategy = { list = \"ease\", k = 10 }",
                &["\"control\"", "strategy", "ease"],
            ),
            (
                "strategy = { list = \"als\", k = 10 }",
                "strategy = { list = \"als\", k = 201 }",
                &["\"control\"", "strategy.k", "1 to 200"],
            ),
            (
                "strategy = { list = \"als\", k = 10 }",
                "strategy = { list = \"als\", k = 0 }",
                &["strategy.k"],
            ),
            (
                "strategy = { list = \"als\", k = 10 }",
                "strategy = { list = \"blend\", k = 10 }",
                &["\"control\"", "strategy.buy_again_slots", "required"],
            ),
            (
                "strategy = { list = \"als\", k = 10 }",
                "strategy = { list = \"blend\", k = 10, buy_again_slots = 11 }",
                &["strategy.buy_again_slots", "1 to k (10)"],
            ),
            (
                "strategy = { list = \"als\", k = 10 }",
                "strategy = { list = \"als\", k = 10, buy_again_slots = 3 }",
                &["strategy.buy_again_slots", "does not apply to the als list"],
            ),
            (
                "share = 0.5\nstrategy = { list = \"als\", k = 10 }",
                "share = -0.5\nstrategy = { list = \"als\", k = 10 }",
                &["\"home-for-you\"", "\"control\"", "share"],
            ),
            (
                "share = 0.5\nstrategy = { list = \"als\", k = 10 }",
                "share = 0.4\nstrategy = { list = \"als\", k = 10 }",
                &["\"home-for-you\"", "share", "sum to 0.9"],
            ),
            (
                "control = \"control\"",
                "control = \"baseline\"",
                &["\"home-for-you\"", "control", "baseline"],
            ),
            (
                "name = \"c\"",
                "name = \"b\"",
                &["\"three-way\"", "\"b\"", "another variant"],
            ),
            (
                "name = \"three-way\"",
                "name = \"home-for-you\"",
                &["\"home-for-you\"", "another experiment"],
            ),
            (
                "{ list = \"buy_again\", k = 5 }",
                "{ list = \"buy_again\", k = 5, category = \"tea\" }",
                &["\"c\"", "strategy.category", "buy_again"],
            ),
            (
                "{ list = \"popular\", k = 20, category = \"tea\" }",
                "{ list = \"popular\", k = 20, include_purchased = true }",
                &["\"b\"", "strategy.include_purchased"],
            ),
            (
                "include_purchased = true",
                "include_purchased = false",
                &["\"repeat_aware\"", "strategy.include_purchased", "als"],
            ),
            (
                "control = \"control\"",
                "",
                &["\"home-for-you\"", "control"],
            ),
            ("salt = \"2026-12\"", "salt = \"\"", &["salt", "empty"]),
            (
                "salt = \"2026-12\"",
                "placement = \"checkout\"",
                &[
                    "\"home-for-you\"",
                    "placement",
                    "checkout",
                    "recommendations",
                ],
            ),
            ("share = 0.5", "share = \"half\"", &["\"control\"", "share"]),
        ];
        for (from, to, wants) in cases {
            let e = error_of(from, to);
            for w in *wants {
                assert!(e.contains(w), "{from} -> {to}: {e:?} lacks {w:?}");
            }
        }
        let e = ExperimentsConfig::from_toml_str("experiments = []")
            .unwrap_err()
            .to_string();
        assert!(e.contains("experiments"), "{e}");
        let e = ExperimentsConfig::from_toml_str("[[experiment]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid TOML"), "{e}");
        // One variant is not an experiment.
        let one = "[[experiment]]\nname = \"x\"\ncontrol = \"a\"\n[[experiment.variant]]\n\
                   name = \"a\"\nshare = 1.0\nstrategy = { list = \"als\", k = 10 }\n";
        let e = ExperimentsConfig::from_toml_str(one)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least two variants"), "{e}");
    }

    #[test]
    fn the_file_reader_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiments.toml");
        std::fs::write(&path, EXAMPLE.replacen("k = 10", "k = 300", 1)).unwrap();
        let e = ExperimentsConfig::from_path(&path).unwrap_err().to_string();
        assert!(
            e.contains("experiments.toml") && e.contains("strategy.k"),
            "{e}"
        );
        std::fs::write(&path, EXAMPLE).unwrap();
        assert_eq!(ExperimentsConfig::from_path(&path).unwrap(), config());
        let e = ExperimentsConfig::from_path(&dir.path().join("missing.toml")).unwrap_err();
        assert!(matches!(e, ExperimentConfigError::Io { .. }), "{e}");
    }

    #[test]
    fn json_specs_are_accepted_for_an_admin_api() {
        let spec: ExperimentSpec = serde_json::from_value(serde_json::json!({
            "name": "x", "control": "a",
            "variants": [
                {"name": "a", "share": 0.25, "strategy": {"list": "als", "k": 10}},
                {"name": "b", "share": 0.5, "strategy": {"list": "for_you", "k": 10}},
                {"name": "c", "share": 0.25,
                 "strategy": {"list": "blend", "k": 10, "buy_again_slots": 3}}
            ]
        }))
        .unwrap();
        let e = Experiment::from_spec(spec.clone()).unwrap();
        assert_eq!(e.variants()[1].share, 0.5);
        assert_eq!(
            e.variants()[2].strategy,
            Strategy::Blend {
                k: 10,
                buy_again_slots: 3,
                category: None
            }
        );
        let back = serde_json::to_value(e.spec()).unwrap();
        assert_eq!(back["variant"][1]["strategy"]["include_purchased"], true);
        assert_eq!(back["variant"][2]["strategy"]["buy_again_slots"], 3);
        let again: ExperimentSpec = serde_json::from_value(back).unwrap();
        assert_eq!(Experiment::from_spec(again).unwrap(), e);
    }

    /// Regression check: these assignments were computed once with this
    /// implementation (SHA-256 of `salt || 0x00 || id`; the points agree with
    /// an independent SHA-256 implementation) and must never change, or every
    /// running experiment would reshuffle its customers.
    #[test]
    fn golden_assignments_are_stable() {
        let home = config();
        let home = home.get("home-for-you").unwrap();
        let got: Vec<&str> = ["c-1", "c-2", "c-3", "17850", "customer@example.com", "ü-42"]
            .iter()
            .map(|id| home.assign(id).name.as_str())
            .collect();
        assert_eq!(got, GOLDEN_HOME);
        let points: Vec<f64> = ["c-1", "17850"]
            .iter()
            .map(|id| assignment_point("2026-12", id))
            .collect();
        assert_eq!(points, GOLDEN_POINTS);
    }

    const GOLDEN_HOME: [&str; 6] = [
        "repeat_aware",
        "control",
        "repeat_aware",
        "repeat_aware",
        "control",
        "control",
    ];
    const GOLDEN_POINTS: [f64; 2] = [0.804772137231859, 0.8076564450698775];

    #[test]
    fn the_point_is_the_documented_hash() {
        // SHA-256("s\0c"), first 8 bytes, top 53 bits, / 2^53: computed here
        // from the digest spelled out by the hash, to pin the byte layout.
        let digest = Sha256::digest(b"s\x00c");
        let x = u64::from_be_bytes(digest[..8].try_into().unwrap());
        let want = (x >> 11) as f64 / 9_007_199_254_740_992.0;
        assert_eq!(assignment_point("s", "c"), want);
        assert!((0.0..1.0).contains(&want));
        // The separator matters: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(assignment_point("ab", "c"), assignment_point("a", "bc"));
    }

    fn ids(n: usize) -> impl Iterator<Item = String> {
        (0..n).map(|i| format!("customer-{i}"))
    }

    #[test]
    fn shares_are_respected_within_binomial_tolerance() {
        let shares = [0.5, 0.3, 0.15, 0.05];
        let e = with_shares("shares", &shares);
        let n = 100_000;
        let mut counts = [0usize; 4];
        for id in ids(n) {
            counts[e.assign_index(&id)] += 1;
        }
        for (c, p) in counts.iter().zip(shares) {
            let mean = n as f64 * p;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            // 4.5 standard deviations: a correct hash fails this about once in
            // 150,000 checks.
            assert!(
                (*c as f64 - mean).abs() <= 4.5 * sd,
                "{counts:?} vs shares {shares:?}"
            );
        }
    }

    #[test]
    fn changing_the_salt_reshuffles() {
        let a = with_shares("salt-1", &[0.5, 0.5]);
        let b = with_shares("salt-2", &[0.5, 0.5]);
        let n = 20_000;
        let same = ids(n)
            .filter(|id| a.assign_index(id) == b.assign_index(id))
            .count();
        // Independent assignments agree for half the customers.
        let sd = (n as f64 * 0.25).sqrt();
        assert!(
            (same as f64 - n as f64 / 2.0).abs() <= 4.5 * sd,
            "{same} of {n} kept their variant"
        );
    }

    #[test]
    fn adding_a_variant_at_the_end_moves_only_the_customers_it_must() {
        let before = with_shares("grow", &[0.5, 0.5]);
        let after = with_shares("grow", &[0.5, 0.4, 0.1]);
        let n = 50_000;
        let mut moved = 0;
        for id in ids(n) {
            let (b, a) = (before.assign_index(&id), after.assign_index(&id));
            if a != b {
                assert_eq!((b, a), (1, 2), "{id} moved from v{b} to v{a}");
                moved += 1;
            }
        }
        let sd = (n as f64 * 0.1 * 0.9).sqrt();
        assert!((moved as f64 - 0.1 * n as f64).abs() <= 4.5 * sd, "{moved}");

        // A ramp in a two-variant experiment moves one way only.
        let ramp_from = with_shares("ramp", &[0.9, 0.1]);
        let ramp_to = with_shares("ramp", &[0.5, 0.5]);
        let mut moved = 0;
        for id in ids(n) {
            let (b, a) = (ramp_from.assign_index(&id), ramp_to.assign_index(&id));
            if a != b {
                assert_eq!((b, a), (0, 1));
                moved += 1;
            }
        }
        let sd = (n as f64 * 0.4 * 0.6).sqrt();
        assert!((moved as f64 - 0.4 * n as f64).abs() <= 4.5 * sd, "{moved}");
    }

    #[test]
    fn shares_summing_to_one_within_tolerance_are_accepted() {
        let e = with_shares("t", &[0.1, 0.2, 0.7]); // 0.1 + 0.2 + 0.7 != 1.0 exactly
        assert_eq!(e.variants().len(), 3);
        // The last variant takes any point at or above the previous bound.
        assert_eq!(e.bounds.len(), 3);
    }
}
