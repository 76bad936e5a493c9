//! The customer book: every customer model of a training run, fitted once at
//! the end of the history and kept per customer for serving.
//!
//! [`CustomerConfig::build`] summarises each customer at the reference time
//! (the last purchase of the training data), fits BG/NBD, Pareto/NBD and
//! MBG/NBD and selects one of them on a validation window ([`super::select`]:
//! every customer's P(alive), churn risk, expected purchases, next purchase
//! and CLV come from the selected model), fits Gamma-Gamma,
//! scores RFM, classifies lifecycle stages, computes the repurchase KPIs and
//! stores one [`CustomerProfile`] per customer. Serving answers profile,
//! next-purchase and audience requests from these profiles without refitting.
//!
//! A model that cannot be fitted (too few repeat customers, no prices) does
//! not fail the run: its error is kept in [`CustomerModels`] (and printed by
//! `encore-train fit`), and the figures that need it are `None`.

use super::bgnbd::{BgNbd, BgNbdParams};
use super::gamma_gamma::{ClvParams, GammaGamma, GammaGammaParams, discounted_value_with};
use super::kpis::{KpiError, KpiParams, RepurchaseKpis, repurchase_kpis};
use super::lifecycle::{LifecycleError, LifecycleParams, Stage};
use super::propensity::{PropensityModel, PropensityParams};
use super::replenishment::{ReplenishmentError, ReplenishmentParams};
use super::rfm::{Rfm, RfmError, RfmParams};
use super::segments::{SegmentModel, SegmentParams};
use super::select::{
    Chosen, ModelKind, ModelSelection, RepeatModel, SelectionParams, select, validation_pairs,
};
use super::summary::{CustomerSummary, OccasionRule, SummaryParams, TimeUnit, summarize};
use encore_data::PurchaseLog;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod profiles;
use profiles::ProfileTable;

/// Settings of the customer models (the `[customers]` table of the training config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomerConfig {
    /// Time unit of the BG/NBD fit (`weeks` by default: better conditioned
    /// than days for histories of a year or more).
    pub time_unit: TimeUnit,
    /// What counts as one purchase occasion (distinct days by default).
    pub occasion: OccasionRule,
    pub bgnbd: BgNbdParams,
    /// Pareto/NBD and MBG/NBD fits and the choice among the three models.
    pub selection: SelectionParams,
    pub gamma_gamma: GammaGammaParams,
    /// CLV horizon, discount rate and margin. Its `time_unit` is always set
    /// to `time_unit` above.
    pub clv: ClvParams,
    pub rfm: RfmParams,
    pub lifecycle: LifecycleParams,
    pub kpis: KpiParams,
    /// A predicted next purchase further away than this many days is
    /// reported as none.
    pub next_purchase_max_days: f64,
    /// The "buys within the next `horizon_days`" classifier.
    pub propensity: PropensityParams,
    /// Behavioural segments (k-means).
    pub segments: SegmentParams,
    /// Replenishment cycles and the buy-again list (fitted by the training
    /// pipeline, which knows the item categories).
    pub replenishment: ReplenishmentParams,
}

impl Default for CustomerConfig {
    fn default() -> Self {
        CustomerConfig {
            time_unit: TimeUnit::Weeks,
            occasion: OccasionRule::DistinctDays,
            bgnbd: BgNbdParams::default(),
            selection: SelectionParams::default(),
            gamma_gamma: GammaGammaParams::default(),
            clv: ClvParams::default(),
            rfm: RfmParams::default(),
            lifecycle: LifecycleParams::default(),
            kpis: KpiParams::default(),
            next_purchase_max_days: 365.0,
            propensity: PropensityParams::default(),
            segments: SegmentParams::default(),
            replenishment: ReplenishmentParams::default(),
        }
    }
}

/// Why the customer settings are invalid.
#[derive(Debug, thiserror::Error)]
pub enum CustomerConfigError {
    #[error("customers.rfm: {0}")]
    Rfm(RfmError),
    #[error("customers.lifecycle: {0}")]
    Lifecycle(LifecycleError),
    #[error("customers.kpis: {0}")]
    Kpis(KpiError),
    #[error("customers.replenishment: {0}")]
    Replenishment(ReplenishmentError),
    #[error("customers.{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

crate::error_from!(CustomerConfigError { Rfm(RfmError), Lifecycle(LifecycleError), Kpis(KpiError), Replenishment(ReplenishmentError) });

/// One customer's figures at the reference time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerProfile {
    /// Distinct orders with a positive-value line.
    pub orders: u32,
    /// Purchase occasions (see [`super::summary`]).
    pub occasions: u32,
    /// First and last purchase, seconds since the epoch.
    pub first_purchase: i64,
    pub last_purchase: i64,
    /// Net spend (returns subtracted).
    pub total_spend: f64,
    /// `total_spend / orders`.
    pub average_order_value: f64,
    /// False if some line had no price (spend figures are then lower bounds).
    pub spend_complete: bool,
    pub recency_days: f64,
    /// RFM quintile scores, 5 best.
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub segment: String,
    pub stage: Stage,
    /// The customer's typical gap between purchases, in days.
    pub typical_gap_days: f64,
    /// Figures of the selected repeat-buying model ([`super::select`]);
    /// `None` when no model could be fitted. P(alive) is also `None` where
    /// it would say nothing (a degenerate fit, or BG/NBD for a customer
    /// without repeat purchase; see [`super::lifecycle`]).
    pub p_alive: Option<f64>,
    /// Probability of no purchase within the customer's lifecycle horizon
    /// (`lost_mult` × `typical_gap_days`) from the reference, by the
    /// selected model; see [`super::lifecycle`].
    #[serde(default)]
    pub churn_risk: Option<f64>,
    pub expected_purchases_30d: Option<f64>,
    pub expected_purchases_90d: Option<f64>,
    /// When the expected number of purchases reaches 1, seconds since the
    /// epoch; `None` if not within `next_purchase_max_days`.
    pub predicted_next_purchase: Option<i64>,
    /// Discounted value over the CLV horizon; `None` without both models.
    pub clv: Option<f64>,
    /// Probability of buying within the propensity horizon (30 days by
    /// default); `None` when the classifier could not be trained.
    pub buy_within_30d_probability: Option<f64>,
    /// Label of the customer's behavioural (k-means) segment.
    pub behaviour_segment: Option<String>,
}

/// The fitted population models and the figures of the whole base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerModels {
    /// Time every figure refers to (seconds since the epoch).
    pub reference: i64,
    pub time_unit: TimeUnit,
    /// The BG/NBD fit (also what the propensity classifier's features use).
    pub bgnbd: Option<BgNbd>,
    /// Why BG/NBD could not be fitted, if it could not.
    pub bgnbd_error: Option<String>,
    /// The three repeat-buying models and the one selected; `None` in
    /// artifacts written before the selection existed.
    #[serde(default)]
    pub selection: Option<ModelSelection>,
    pub gamma_gamma: Option<GammaGamma>,
    pub gamma_gamma_error: Option<String>,
    pub clv: ClvParams,
    /// Customers profiled, and those whose CLV or next-purchase figure failed
    /// numerically (reported as `None`).
    pub customers: usize,
    pub numeric_failures: usize,
    /// Median typical gap of repeat customers, in days.
    pub population_gap_days: f64,
    pub stage_counts: BTreeMap<Stage, usize>,
    pub segment_counts: BTreeMap<String, usize>,
    /// Every RFM segment the configuration can assign (rule names in rule
    /// order, then the default), so that a request can name one no customer
    /// is in, and a misspelt one is refused. Empty in artifacts written
    /// before it was stored: then any name is accepted.
    #[serde(default)]
    pub segment_names: Vec<String>,
    pub kpis: RepurchaseKpis,
    pub propensity: Option<PropensityModel>,
    pub propensity_error: Option<String>,
    pub segments: Option<SegmentModel>,
    pub segments_error: Option<String>,
}

impl CustomerModels {
    /// The repurchase KPIs, stage and segment counts and model fits as JSON,
    /// as `GET /v1/kpis` and the Python `Model.kpis` give them (the server
    /// adds its spend and CLV summaries).
    pub fn kpis_json(&self) -> serde_json::Value {
        serde_json::json!({
            "as_of": encore_data::timestamp::format_date(self.reference),
            "customers": self.customers,
            "overall": self.kpis.overall,
            "monthly": self.kpis.monthly,
            "cohorts": self.kpis.cohorts,
            "stage_counts": self.stage_counts,
            "segment_counts": self.segment_counts,
            "behaviour_segments": self.segments.as_ref().map(|s| serde_json::json!({
                "labels": s.labels, "sizes": s.sizes,
            })),
            "models": {
                "bgnbd": self.bgnbd, "bgnbd_error": self.bgnbd_error,
                "gamma_gamma": self.gamma_gamma, "gamma_gamma_error": self.gamma_gamma_error,
                "propensity_training_auc": self.propensity.as_ref().and_then(|p| p.training_auc),
                "propensity_error": self.propensity_error,
            },
        })
    }
}

/// Everything [`CustomerConfig::build`] produces.
#[derive(Debug, Clone)]
pub struct CustomerBook {
    models: CustomerModels,
    /// Indexed by customer index; `None` for customers with no positive purchase.
    profiles: Profiles,
}

/// The profiles of a book: built by a fit, or read in place from a loaded
/// model's `customer_profiles.bin`.
#[derive(Debug, Clone)]
enum Profiles {
    Owned(Vec<Option<CustomerProfile>>),
    Stored(ProfileTable),
}

impl PartialEq for CustomerBook {
    fn eq(&self, other: &Self) -> bool {
        self.models == other.models
            && self.len() == other.len()
            && self.profiles().eq(other.profiles())
    }
}

impl CustomerConfig {
    /// Checks every setting, naming the key of the first bad one.
    pub fn check(&self) -> Result<(), CustomerConfigError> {
        Rfm::new(self.rfm.clone())?;
        self.lifecycle.check()?;
        if self.kpis.utc_offset_secs.abs() > 18 * 3600 {
            return Err(KpiError::InvalidOffset {
                value: self.kpis.utc_offset_secs,
            }
            .into());
        }
        self.bgnbd
            .check("BG/NBD")
            .map_err(|e| CustomerConfigError::Invalid {
                key: "bgnbd",
                reason: e.to_string(),
            })?;
        self.selection
            .check()
            .map_err(|e| CustomerConfigError::Invalid {
                key: "selection",
                reason: e.to_string(),
            })?;
        self.gamma_gamma
            .check()
            .map_err(|e| CustomerConfigError::Invalid {
                key: "gamma_gamma",
                reason: e.to_string(),
            })?;
        self.clv_params()
            .check()
            .map_err(|e| CustomerConfigError::Invalid {
                key: "clv",
                reason: e.to_string(),
            })?;
        self.propensity
            .check()
            .map_err(|e| CustomerConfigError::Invalid {
                key: "propensity",
                reason: e.to_string(),
            })?;
        self.segments
            .check()
            .map_err(|e| CustomerConfigError::Invalid {
                key: "segments",
                reason: e.to_string(),
            })?;
        self.replenishment.check()?;
        if !(self.next_purchase_max_days.is_finite() && self.next_purchase_max_days > 0.0) {
            return Err(CustomerConfigError::Invalid {
                key: "next_purchase_max_days",
                reason: "must be a positive number of days".into(),
            });
        }
        Ok(())
    }

    fn clv_params(&self) -> ClvParams {
        ClvParams {
            time_unit: self.time_unit,
            ..self.clv.clone()
        }
    }

    /// Fits every customer model on the purchases of `log` at or before
    /// `reference` (seconds since the epoch) and profiles every customer.
    pub fn build(
        &self,
        log: &PurchaseLog,
        reference: i64,
    ) -> Result<CustomerBook, CustomerConfigError> {
        self.check()?;
        let params = SummaryParams {
            unit: self.time_unit,
            occasion: self.occasion,
        };
        let summaries = summarize(log, reference, &params);
        let repeat: Vec<(f64, f64, f64)> = summaries
            .iter()
            .map(|s| s.repeat_summary().tuple())
            .collect();
        let days = self.selection.validation_days;
        let (cutoff, pairs) = if days > 0.0 {
            validation_pairs(log, reference, &params, days)
        } else {
            (reference, Vec::new())
        };
        let selection = select(
            &self.selection,
            &self.bgnbd,
            &repeat,
            Some((&pairs, cutoff, days)),
        )
        .map_err(|e| CustomerConfigError::Invalid {
            key: "selection",
            reason: e.to_string(),
        })?;
        let (bgnbd, bgnbd_error) = match selection.candidate(ModelKind::BgNbd) {
            Some(c) => match &c.model {
                Some(RepeatModel::BgNbd(m)) => (Some(m.clone()), None),
                _ => (None, c.error.clone()),
            },
            None => (None, Some("not fitted".into())),
        };
        let chosen = selection.chosen();
        let spend: Vec<(f64, f64)> = summaries
            .iter()
            .filter(|s| s.frequency > 0.0 && s.monetary > 0.0)
            .map(|s| (s.frequency, s.monetary))
            .collect();
        let (gamma_gamma, gamma_gamma_error) = if spend.is_empty() {
            (
                None,
                Some("no repeat customer with a positive spend (are prices missing?)".into()),
            )
        } else {
            split(self.gamma_gamma.fit(&spend))
        };
        let rfm = Rfm::new(self.rfm.clone())?.compute(&summaries, reference);
        let (propensity, propensity_error) = split(self.propensity.fit(log, reference));
        let buy_probability = match &propensity {
            Some(model) => model.predict(log, reference),
            None => vec![None; log.customers.len()],
        };
        let (segments, segments_error) = split(self.segments.fit(&summaries, reference));
        let segment_of = segments
            .as_ref()
            .map(|model| model.assign(&summaries, reference));
        let stages = self.lifecycle.classify(&summaries, reference, chosen)?;
        let clv_params = self.clv_params();
        let unit = self.time_unit;
        let max_horizon = unit.from_days(self.next_purchase_max_days);
        let figures: Vec<(Figures, bool)> = summaries
            .par_iter()
            .map(|s| {
                predict(
                    s,
                    chosen,
                    gamma_gamma.as_ref(),
                    &clv_params,
                    reference,
                    max_horizon,
                )
            })
            .collect();

        let mut profiles = vec![None; log.customers.len()];
        let mut stage_counts = BTreeMap::new();
        let mut segment_counts = BTreeMap::new();
        let mut numeric_failures = 0;
        for (n, (((s, score), stage), (fig, failed))) in summaries
            .iter()
            .zip(rfm)
            .zip(&stages)
            .zip(figures)
            .enumerate()
        {
            let behaviour_segment = match (&segments, &segment_of) {
                (Some(model), Some(of)) => model.labels.get(of[n]).cloned(),
                _ => None,
            };
            *stage_counts.entry(stage.stage).or_insert(0) += 1;
            *segment_counts.entry(score.segment.clone()).or_insert(0) += 1;
            numeric_failures += usize::from(failed);
            profiles[s.customer.idx()] = Some(CustomerProfile {
                orders: s.orders,
                occasions: s.occasions,
                first_purchase: s.first_purchase,
                last_purchase: s.last_purchase,
                total_spend: s.total_spend,
                average_order_value: if s.orders > 0 {
                    s.total_spend / f64::from(s.orders)
                } else {
                    0.0
                },
                spend_complete: s.spend_complete,
                recency_days: score.recency_days,
                r: score.r,
                f: score.f,
                m: score.m,
                segment: score.segment,
                stage: stage.stage,
                typical_gap_days: stage.typical_gap_days,
                p_alive: stage.p_alive,
                churn_risk: stage.churn_risk,
                expected_purchases_30d: fig.e30,
                expected_purchases_90d: fig.e90,
                predicted_next_purchase: fig.next,
                clv: fig.clv,
                buy_within_30d_probability: buy_probability[s.customer.idx()],
                behaviour_segment,
            });
        }
        let kpis = repurchase_kpis(log, &self.kpis)?;
        Ok(CustomerBook {
            models: CustomerModels {
                reference,
                time_unit: unit,
                bgnbd,
                bgnbd_error,
                selection: Some(selection),
                gamma_gamma,
                gamma_gamma_error,
                clv: clv_params,
                customers: summaries.len(),
                numeric_failures,
                population_gap_days: self.lifecycle.population_gap_days(&summaries),
                stage_counts,
                segment_counts,
                segment_names: self.rfm.segment_names(),
                kpis,
                propensity,
                propensity_error,
                segments,
                segments_error,
            },
            profiles: Profiles::Owned(profiles),
        })
    }
}

fn split<T, E: std::fmt::Display>(r: Result<T, E>) -> (Option<T>, Option<String>) {
    match r {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

#[derive(Default)]
struct Figures {
    e30: Option<f64>,
    e90: Option<f64>,
    next: Option<i64>,
    clv: Option<f64>,
}

/// `Some(v)` for a finite `v`; otherwise `None`, and `failed` is set.
fn finite<E>(r: Result<f64, E>, failed: &mut bool) -> Option<f64> {
    match r {
        Ok(v) if v.is_finite() => Some(v),
        _ => {
            *failed = true;
            None
        }
    }
}

/// The model figures of one customer, and whether any of them failed numerically.
fn predict(
    s: &CustomerSummary,
    chosen: Option<Chosen<'_>>,
    gamma_gamma: Option<&GammaGamma>,
    clv: &ClvParams,
    reference: i64,
    max_horizon: f64,
) -> (Figures, bool) {
    let Some(Chosen { model: bg, .. }) = chosen else {
        return (Figures::default(), false);
    };
    let (x, t_x, t) = s.repeat_summary().tuple();
    let unit = s.unit;
    let mut failed = false;
    let e30 = finite(
        bg.expected_purchases(unit.from_days(30.0), x, t_x, t),
        &mut failed,
    );
    let e90 = finite(
        bg.expected_purchases(unit.from_days(90.0), x, t_x, t),
        &mut failed,
    );
    let clv_value = gamma_gamma.and_then(|gg| {
        // A repeat customer without a priced repeat occasion has no usable
        // mean spend: value them at the population mean (x = 0 spend term).
        let m = if x > 0.0 && s.monetary > 0.0 {
            s.monetary
        } else {
            0.0
        };
        let spend_x = if m > 0.0 { x } else { 0.0 };
        let spend = gg
            .conditional_expected_average_profit(spend_x, m)
            .ok()
            .filter(|v| v.is_finite());
        let Some(spend) = spend else {
            failed = true;
            return None;
        };
        let cumulative = |u: f64| Ok(bg.expected_purchases(u, x, t_x, t)?);
        match discounted_value_with(cumulative, spend, clv) {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                failed = true;
                None
            }
        }
    });
    let next = match bg.expected_next_purchase_date(s, reference, max_horizon) {
        Ok(v) => v,
        Err(_) => {
            failed = true;
            None
        }
    };
    (
        Figures {
            e30,
            e90,
            next,
            clv: clv_value,
        },
        failed,
    )
}

impl CustomerBook {
    /// Assembles a book from profiles held in memory.
    pub fn from_parts(models: CustomerModels, profiles: Vec<Option<CustomerProfile>>) -> Self {
        CustomerBook {
            models,
            profiles: Profiles::Owned(profiles),
        }
    }

    /// Assembles a book whose profiles are read in place from a mapped
    /// file (the artifact loader).
    pub fn from_stored(models: CustomerModels, profiles: ProfileTable) -> Self {
        CustomerBook {
            models,
            profiles: Profiles::Stored(profiles),
        }
    }

    pub fn models(&self) -> &CustomerModels {
        &self.models
    }

    /// Every profile, by customer index (`None`: a customer without one).
    pub fn profiles(&self) -> impl Iterator<Item = Option<CustomerProfile>> + '_ {
        (0..self.len()).map(|c| self.profile_at(c))
    }

    /// Calls `f` with every profile, by customer index, without copying the
    /// profiles a fit holds in memory.
    pub fn visit_profiles<E>(
        &self,
        mut f: impl FnMut(Option<&CustomerProfile>) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.profiles {
            Profiles::Owned(v) => v.iter().try_for_each(|p| f(p.as_ref())),
            Profiles::Stored(t) => (0..t.len()).try_for_each(|c| f(t.get(c).as_ref())),
        }
    }

    /// The profile of customer index `c`, if they bought anything.
    pub fn profile(&self, c: u32) -> Option<CustomerProfile> {
        self.profile_at(c as usize)
    }

    fn profile_at(&self, c: usize) -> Option<CustomerProfile> {
        match &self.profiles {
            Profiles::Owned(v) => v.get(c).and_then(Option::clone),
            Profiles::Stored(t) => t.get(c),
        }
    }

    /// Customers the book has a slot for (with or without a profile).
    pub fn len(&self) -> usize {
        match &self.profiles {
            Profiles::Owned(v) => v.len(),
            Profiles::Stored(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Why no profile reports P(alive), if none does: the selected
    /// repeat-buying model is degenerate on this history ([`super::select`]).
    /// `None` when P(alive) is reported (for the customers it means
    /// something for).
    pub fn p_alive_unavailable(&self) -> Option<String> {
        let selection = self.models.selection.as_ref()?;
        let chosen = selection.chosen()?;
        chosen.degenerate.then(|| {
            format!(
                "the selected repeat-buying model ({}) calls every customer alive on this \
                 history, so no profile reports P(alive); use churn_risk instead",
                chosen.model.kind().name()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    /// 60 customers: 20 regular weekly buyers still buying, 20 who stopped
    /// after a few purchases, 20 one-off buyers; prices on every line.
    fn log() -> PurchaseLog {
        let mut log = PurchaseLog::default();
        let mut order = 0;
        let mut buy = |log: &mut PurchaseLog, c: &str, day: i64| {
            order += 1;
            log.push(&format!("o{order}"), c, "tea", day * DAY, 1.0, 5.0);
        };
        for c in 0..20 {
            for w in 0..40 {
                buy(&mut log, &format!("regular{c}"), w * 7 + c % 7);
            }
        }
        for c in 0..20 {
            for w in 0..4 {
                buy(&mut log, &format!("lapsed{c}"), w * 10 + c);
            }
        }
        for c in 0..20 {
            buy(&mut log, &format!("once{c}"), 100 + 5 * c);
        }
        log
    }

    #[test]
    fn regular_buyers_are_active_and_alive_lapsed_are_not() {
        let log = log();
        let reference = 280 * DAY;
        let book = CustomerConfig::default().build(&log, reference).unwrap();
        let m = book.models();
        assert!(m.bgnbd.is_some(), "{:?}", m.bgnbd_error);
        assert!(m.gamma_gamma.is_some(), "{:?}", m.gamma_gamma_error);
        assert_eq!(m.customers, 60);
        assert_eq!(m.stage_counts.values().sum::<usize>(), 60);
        let regular = book
            .profile(log.customers.get("regular3").unwrap())
            .unwrap();
        let lapsed = book.profile(log.customers.get("lapsed3").unwrap()).unwrap();
        assert_eq!(regular.stage, Stage::Active);
        assert!(matches!(lapsed.stage, Stage::AtRisk | Stage::Lost));
        assert!(regular.p_alive.unwrap() > lapsed.p_alive.unwrap());
        assert!(regular.expected_purchases_30d.unwrap() > 2.0);
        assert!(regular.expected_purchases_90d.unwrap() > regular.expected_purchases_30d.unwrap());
        assert!(regular.clv.unwrap() > lapsed.clv.unwrap());
        assert!(regular.predicted_next_purchase.unwrap() > reference);
        assert_eq!(regular.orders, 40);
        assert_eq!(regular.total_spend, 200.0);
        assert_eq!(regular.average_order_value, 5.0);
        assert_eq!(book.len(), log.customers.len());
    }

    #[test]
    fn a_log_without_repeats_keeps_rfm_and_stages_and_says_why_bgnbd_is_missing() {
        let mut log = PurchaseLog::default();
        for c in 0..10 {
            log.push(
                &format!("o{c}"),
                &format!("c{c}"),
                "mug",
                c * DAY,
                1.0,
                f32::NAN,
            );
        }
        let book = CustomerConfig::default().build(&log, 20 * DAY).unwrap();
        let m = book.models();
        assert!(m.gamma_gamma.is_none());
        assert!(m.gamma_gamma_error.as_deref().unwrap().contains("prices"));
        for p in book.profiles().flatten() {
            assert!(p.clv.is_none());
            assert!((1..=5).contains(&p.r));
        }
        assert_eq!(m.stage_counts.values().sum::<usize>(), 10);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let mut config = CustomerConfig {
            next_purchase_max_days: -1.0,
            ..Default::default()
        };
        let e = config.check().unwrap_err().to_string();
        assert!(e.contains("next_purchase_max_days"), "{e}");
        config.next_purchase_max_days = 10.0;
        config.lifecycle.lost_p_alive = 2.0;
        let e = config.check().unwrap_err().to_string();
        assert!(
            e.contains("customers.lifecycle") && e.contains("lost_p_alive"),
            "{e}"
        );
    }

    #[test]
    fn segment_names_are_stored_and_older_models_load_without_them() {
        let log = log();
        let book = CustomerConfig::default().build(&log, 280 * DAY).unwrap();
        let names = &book.models().segment_names;
        assert_eq!(*names, RfmParams::default().segment_names());
        assert!(
            book.models()
                .segment_counts
                .keys()
                .all(|s| names.contains(s))
        );
        let mut json = serde_json::to_value(book.models()).unwrap();
        json.as_object_mut().unwrap().remove("segment_names");
        let old: CustomerModels = serde_json::from_value(json).unwrap();
        assert!(old.segment_names.is_empty());
    }

    /// The selection is stored with all three models; artifacts written
    /// before it (no `selection`, no `churn_risk`) still load.
    #[test]
    fn the_selection_is_stored_and_older_books_load_without_it() {
        let log = log();
        let book = CustomerConfig::default().build(&log, 280 * DAY).unwrap();
        let sel = book.models().selection.as_ref().unwrap();
        assert_eq!(sel.candidates.len(), 3);
        assert!(sel.selected.is_some(), "{:?}", sel.describe());
        assert!(book.profiles().flatten().all(|p| p.churn_risk.is_some()));
        let mut json = serde_json::to_value(book.models()).unwrap();
        json.as_object_mut().unwrap().remove("selection");
        let old: CustomerModels = serde_json::from_value(json).unwrap();
        assert!(old.selection.is_none());
        let profile = book.profiles().flatten().next().unwrap();
        let mut json = serde_json::to_value(profile).unwrap();
        json.as_object_mut().unwrap().remove("churn_risk");
        let old: CustomerProfile = serde_json::from_value(json).unwrap();
        assert!(old.churn_risk.is_none());
    }

    #[test]
    fn same_input_same_book() {
        let log = log();
        let a = CustomerConfig::default().build(&log, 280 * DAY).unwrap();
        let b = CustomerConfig::default().build(&log, 280 * DAY).unwrap();
        assert_eq!(a, b);
    }
}
