//! Choosing among the repeat-buying models: BG/NBD, Pareto/NBD and MBG/NBD
//! are fitted on the same history and the one that best predicts a held-out
//! validation window is used for every customer figure.
//!
//! # The criterion
//! A validation window of `validation_days` before the reference time is
//! held out: each model is fitted on the customers' histories at the
//! *cutoff* `reference − validation_days` (customers who first bought after
//! the cutoff are left out), and scored by the log-likelihood of what those
//! customers then did in the window:
//!
//! `VLL = Σᵢ [ln L(xᵢ', t_xᵢ', Tᵢ' | θ̂) − ln L(xᵢ, t_xᵢ, Tᵢ | θ̂)]`,
//!
//! with `(x, t_x, T)` a customer's history at the cutoff, `(x', t_x', T')`
//! at the reference and `θ̂` the cutoff fit. In all three models `L(x, t_x, T)`
//! is the density of the customer's whole purchase path up to `T` (it
//! depends on the path only through `(x, t_x, T)`), and the path to the
//! reference extends the path to the cutoff, so each difference is the log
//! of the model's predictive density of the window's purchases given the
//! customer's past: an honest out-of-sample score, on the same footing for
//! the three models (the same data, the same time unit, four parameters
//! each). The model with the highest `VLL` is selected, except that a
//! degenerate fit (below) gives way to a non-degenerate one whose score is
//! within `tie_log_likelihood` (1 nat by default) of it: on histories where
//! nobody visibly leaves the three scores are often equal to a fraction of a
//! nat, and the fit that still estimates drop-out is the more useful one.
//! Exact ties go to the first of BG/NBD, Pareto/NBD, MBG/NBD.
//!
//! Every model is then refitted on the full history at the reference, which
//! is what the customer figures use. When no validation is possible (no
//! customer bought before the cutoff, or `validation_days = 0`) the models
//! are compared by their full-history log-likelihood instead, and
//! [`ModelSelection::criterion`] says so. A model that fails to fit is
//! reported with its error and is not a candidate.
//!
//! # Degenerate fits
//! On a history where almost nobody visibly drops out, a model may put its
//! drop-out mass at zero (BG/NBD's `a → 0`): it then calls every customer
//! alive with probability ≈ 1, which says nothing. A fit is *degenerate*
//! when every customer it was fitted on has `P(alive) ≥ degenerate_p_alive`
//! (0.999 by default). The P(alive) of a degenerate selected model is not
//! reported ([`Chosen::p_alive`] is `None`); its expected purchases, and the
//! churn risk derived from them, still are.
//!
//! # Churn risk
//! [`Chosen::churn_risk`] is the selected model's probability that the
//! customer makes *no* purchase in the next `h` (the caller's horizon; the
//! lifecycle uses the customer's own, see [`super::lifecycle`]):
//! `L(x, t_x, T + h) / L(x, t_x, T)`, the likelihood of the same past with
//! `h` more silent time over the likelihood of the past. It is defined for
//! degenerate fits too (it then reflects the customer's estimated purchase
//! rate only).

use super::bgnbd::{self, BgNbd, BgNbdParams};
use super::mbg_nbd::{self, MbgNbd};
use super::pareto_nbd::{self, ParetoNbd};
use super::repeat::{
    FitParams, RepeatModelError, check_customer, check_horizon, next_purchase_date,
    time_to_one_purchase,
};
use super::summary::{CustomerSummary, DAY_SECS, SummaryParams, summarize};
use encore_data::PurchaseLog;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One customer's `(x, t_x, T)`.
pub type History = (f64, f64, f64);

/// A validation window: every customer's history at the cutoff paired with
/// the history at the reference, the cutoff (seconds since the epoch) and the
/// window's length in days.
pub type ValidationWindow<'a> = (&'a [(History, History)], i64, f64);

/// Which repeat-buying model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    BgNbd,
    ParetoNbd,
    MbgNbd,
}

impl ModelKind {
    /// All three, in tie-breaking order.
    pub const ALL: [ModelKind; 3] = [ModelKind::BgNbd, ModelKind::ParetoNbd, ModelKind::MbgNbd];

    /// The model's usual name ("BG/NBD", …).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::BgNbd => "BG/NBD",
            ModelKind::ParetoNbd => "Pareto/NBD",
            ModelKind::MbgNbd => "MBG/NBD",
        }
    }
}

/// A fitted repeat-buying model of any of the three kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum RepeatModel {
    BgNbd(BgNbd),
    ParetoNbd(ParetoNbd),
    MbgNbd(MbgNbd),
}

impl RepeatModel {
    pub fn kind(&self) -> ModelKind {
        match self {
            RepeatModel::BgNbd(_) => ModelKind::BgNbd,
            RepeatModel::ParetoNbd(_) => ModelKind::ParetoNbd,
            RepeatModel::MbgNbd(_) => ModelKind::MbgNbd,
        }
    }

    /// Fits a model of `kind` to `data`.
    pub fn fit(
        kind: ModelKind,
        bgnbd: &BgNbdParams,
        params: &SelectionParams,
        data: &[History],
    ) -> Result<Self, RepeatModelError> {
        Ok(match kind {
            ModelKind::BgNbd => RepeatModel::BgNbd(bgnbd::fit(bgnbd, data)?),
            ModelKind::ParetoNbd => {
                RepeatModel::ParetoNbd(pareto_nbd::fit(&params.pareto_nbd, data)?)
            }
            ModelKind::MbgNbd => RepeatModel::MbgNbd(mbg_nbd::fit(&params.mbg_nbd, data)?),
        })
    }

    /// The four parameters, in the model's order (`r, α, a, b` or `r, α, s, β`).
    pub fn parameters(&self) -> [(&'static str, f64); 4] {
        match self {
            RepeatModel::BgNbd(m) => [("r", m.r), ("alpha", m.alpha), ("a", m.a), ("b", m.b)],
            RepeatModel::ParetoNbd(m) => {
                [("r", m.r), ("alpha", m.alpha), ("s", m.s), ("beta", m.beta)]
            }
            RepeatModel::MbgNbd(m) => [("r", m.r), ("alpha", m.alpha), ("a", m.a), ("b", m.b)],
        }
    }

    /// Log-likelihood of the fitting data (NaN for a given model).
    pub fn log_likelihood(&self) -> f64 {
        match self {
            RepeatModel::BgNbd(m) => m.log_likelihood,
            RepeatModel::ParetoNbd(m) => m.log_likelihood,
            RepeatModel::MbgNbd(m) => m.log_likelihood,
        }
    }

    /// Whether the fit met its tolerance.
    pub fn converged(&self) -> bool {
        match self {
            RepeatModel::BgNbd(m) => m.converged,
            RepeatModel::ParetoNbd(m) => m.converged,
            RepeatModel::MbgNbd(m) => m.converged,
        }
    }

    /// Whether the fit's simplex collapsed (see [`crate::math::optim`]).
    pub fn collapsed(&self) -> bool {
        match self {
            RepeatModel::BgNbd(m) => m.collapsed,
            RepeatModel::ParetoNbd(m) => m.collapsed,
            RepeatModel::MbgNbd(m) => m.collapsed,
        }
    }

    /// Total log-likelihood of `data` under this model.
    pub fn log_likelihood_of(&self, data: &[History]) -> Result<f64, RepeatModelError> {
        Ok(match self {
            RepeatModel::BgNbd(m) => m.log_likelihood_of(data)?,
            RepeatModel::ParetoNbd(m) => m.log_likelihood_of(data)?,
            RepeatModel::MbgNbd(m) => m.log_likelihood_of(data)?,
        })
    }

    /// The model's P(alive) (BG/NBD: 1 for `x = 0` by assumption).
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        match self {
            RepeatModel::BgNbd(m) => m.p_alive(x, t_x, t),
            RepeatModel::ParetoNbd(m) => m.p_alive(x, t_x, t),
            RepeatModel::MbgNbd(m) => m.p_alive(x, t_x, t),
        }
    }

    /// Expected purchases in `(T, T + t]`.
    pub fn expected_purchases(
        &self,
        t: f64,
        x: f64,
        t_x: f64,
        big_t: f64,
    ) -> Result<f64, RepeatModelError> {
        Ok(match self {
            RepeatModel::BgNbd(m) => m.expected_purchases(t, x, t_x, big_t)?,
            RepeatModel::ParetoNbd(m) => m.expected_purchases(t, x, t_x, big_t)?,
            RepeatModel::MbgNbd(m) => m.expected_purchases(t, x, t_x, big_t)?,
        })
    }

    /// Probability of no purchase in `(T, T + h]`: `L(x, t_x, T+h) / L(x, t_x, T)`
    /// (module docs).
    pub fn p_no_purchase(
        &self,
        h: f64,
        x: f64,
        t_x: f64,
        big_t: f64,
    ) -> Result<f64, RepeatModelError> {
        check_customer(0, x, t_x, big_t)?;
        check_horizon(self.kind().name(), h)?;
        if h == 0.0 {
            return Ok(1.0);
        }
        let later = self.log_likelihood_of(&[(x, t_x, big_t + h)])?;
        let now = self.log_likelihood_of(&[(x, t_x, big_t)])?;
        let p = (later - now).exp();
        if p.is_nan() {
            return Err(RepeatModelError::InvalidParam {
                model: self.kind().name(),
                name: "h",
                value: h.to_string(),
                reason: "the likelihood cannot be evaluated at T + h",
            });
        }
        Ok(p.clamp(0.0, 1.0))
    }

    /// The horizon `u ≤ max_horizon` at which the expected purchases reach
    /// 1, to a relative precision of `10⁻⁶`; `None` if they stay below 1
    /// (see the [`bgnbd`] module docs).
    pub fn expected_time_to_next_purchase(
        &self,
        x: f64,
        t_x: f64,
        big_t: f64,
        max_horizon: f64,
    ) -> Result<Option<f64>, RepeatModelError> {
        check_horizon(self.kind().name(), max_horizon)?;
        time_to_one_purchase(max_horizon, |u| self.expected_purchases(u, x, t_x, big_t))
    }

    /// [`RepeatModel::expected_time_to_next_purchase`] for a summary, as a
    /// date (seconds since the epoch), `reference + u`.
    pub fn expected_next_purchase_date(
        &self,
        summary: &CustomerSummary,
        reference: i64,
        max_horizon: f64,
    ) -> Result<Option<i64>, RepeatModelError> {
        next_purchase_date(summary, reference, |x, t_x, t| {
            self.expected_time_to_next_purchase(x, t_x, t, max_horizon)
        })
    }
}

/// Settings of the model selection (the `[customers.selection]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelectionParams {
    /// Length of the held-out validation window before the reference, in
    /// days (0 = compare full-history log-likelihoods instead).
    pub validation_days: f64,
    /// A fit whose P(alive) is at least this for every customer is degenerate.
    pub degenerate_p_alive: f64,
    /// A degenerate best model gives way to a non-degenerate one scoring
    /// within this many nats of it (module docs).
    pub tie_log_likelihood: f64,
    /// The Pareto/NBD fit (`initial` is `r, α, s, β`).
    pub pareto_nbd: FitParams,
    /// The MBG/NBD fit (`initial` is `r, α, a, b`).
    pub mbg_nbd: FitParams,
    /// The models are fitted, scored and checked for degeneracy on at most
    /// this many customers: with more, on every `s`-th of them (`s =
    /// ceil(count / max_fit_customers)`), the same customers for the three
    /// models. Four population parameters are well determined long before
    /// that; the figures of every customer still come from the fitted model.
    pub max_fit_customers: usize,
}

impl Default for SelectionParams {
    /// 90 validation days, `degenerate_p_alive` 0.999, `tie_log_likelihood`
    /// 1, default fits on at most 50,000 customers.
    fn default() -> Self {
        SelectionParams {
            validation_days: 90.0,
            degenerate_p_alive: 0.999,
            tie_log_likelihood: 1.0,
            pareto_nbd: FitParams::default(),
            mbg_nbd: FitParams::default(),
            max_fit_customers: 50_000,
        }
    }
}

impl SelectionParams {
    /// Checks every setting.
    pub fn check(&self) -> Result<(), RepeatModelError> {
        if !(self.validation_days.is_finite() && self.validation_days >= 0.0) {
            return Err(RepeatModelError::InvalidParam {
                model: "selection",
                name: "validation_days",
                value: self.validation_days.to_string(),
                reason: "must be a finite non-negative number of days",
            });
        }
        if !(self.degenerate_p_alive > 0.0 && self.degenerate_p_alive <= 1.0) {
            return Err(RepeatModelError::InvalidParam {
                model: "selection",
                name: "degenerate_p_alive",
                value: self.degenerate_p_alive.to_string(),
                reason: "must be within (0, 1]",
            });
        }
        if !(self.tie_log_likelihood.is_finite() && self.tie_log_likelihood >= 0.0) {
            return Err(RepeatModelError::InvalidParam {
                model: "selection",
                name: "tie_log_likelihood",
                value: self.tie_log_likelihood.to_string(),
                reason: "must be a finite non-negative number",
            });
        }
        if self.max_fit_customers == 0 {
            return Err(RepeatModelError::InvalidParam {
                model: "selection",
                name: "max_fit_customers",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        self.pareto_nbd.check("Pareto/NBD")?;
        self.mbg_nbd.check("MBG/NBD")
    }
}

/// Every `s`-th element of `all`, `s` chosen so that at most `max` are kept
/// (all of them when there are at most `max`).
fn spread<T: Clone>(all: &[T], max: usize) -> std::borrow::Cow<'_, [T]> {
    if all.len() <= max {
        return std::borrow::Cow::Borrowed(all);
    }
    let step = all.len().div_ceil(max);
    std::borrow::Cow::Owned(all.iter().step_by(step).cloned().collect())
}

/// How the models were compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Criterion {
    /// By the log-likelihood of a held-out window (module docs).
    Validation {
        /// The cutoff (seconds since the epoch; 0 when not known, as for
        /// histories given directly).
        cutoff: i64,
        /// Length of the window, days.
        days: f64,
        /// Customers who bought before the cutoff (those scored).
        customers: usize,
    },
    /// By the log-likelihood of the full history (no validation possible).
    FullHistory,
}

/// One model's fits and scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub kind: ModelKind,
    /// The fit on the full history at the reference.
    pub model: Option<RepeatModel>,
    /// Why it could not be fitted, if it could not.
    pub error: Option<String>,
    /// Log-likelihood of the validation window under the cutoff fit.
    pub validation_log_likelihood: Option<f64>,
    /// Why the validation score is missing (cutoff fit failed, …).
    #[serde(default)]
    pub validation_error: Option<String>,
    /// Whether the full fit calls every customer alive (module docs).
    #[serde(default)]
    pub degenerate: bool,
}

/// The three candidates and the choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSelection {
    pub criterion: Criterion,
    pub candidates: Vec<Candidate>,
    /// The selected model; `None` if none could be fitted.
    pub selected: Option<ModelKind>,
}

/// The selected model and whether its P(alive) means anything.
#[derive(Debug, Clone, Copy)]
pub struct Chosen<'a> {
    pub model: &'a RepeatModel,
    pub degenerate: bool,
}

impl Chosen<'_> {
    /// P(alive), or `None` where it says nothing: the fit is degenerate, or
    /// the model is BG/NBD and the customer has no repeat purchase (BG/NBD
    /// assumes such a customer alive rather than estimating it).
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> Option<f64> {
        if self.degenerate || (x == 0.0 && self.model.kind() == ModelKind::BgNbd) {
            return None;
        }
        Some(self.model.p_alive(x, t_x, t)).filter(|p| p.is_finite())
    }

    /// Probability of no purchase in the next `h` (module docs); `None` if
    /// it cannot be evaluated.
    pub fn churn_risk(&self, h: f64, x: f64, t_x: f64, t: f64) -> Option<f64> {
        self.model.p_no_purchase(h, x, t_x, t).ok()
    }
}

impl ModelSelection {
    /// The selected candidate.
    pub fn selected_candidate(&self) -> Option<&Candidate> {
        let kind = self.selected?;
        self.candidates.iter().find(|c| c.kind == kind)
    }

    /// The selected model, with its degenerate flag.
    pub fn chosen(&self) -> Option<Chosen<'_>> {
        let c = self.selected_candidate()?;
        Some(Chosen {
            model: c.model.as_ref()?,
            degenerate: c.degenerate,
        })
    }

    /// The candidate of `kind`.
    pub fn candidate(&self, kind: ModelKind) -> Option<&Candidate> {
        self.candidates.iter().find(|c| c.kind == kind)
    }

    /// Every model's result on one line each, for the fit summary.
    pub fn describe(&self) -> Vec<String> {
        self.candidates
            .iter()
            .map(|c| {
                let chosen = if Some(c.kind) == self.selected {
                    " [selected]"
                } else {
                    ""
                };
                let validation = match (c.validation_log_likelihood, &c.validation_error) {
                    (Some(v), _) => format!("validation LL {v:.2}"),
                    (None, Some(e)) => format!("no validation score ({e})"),
                    (None, None) => "no validation score".into(),
                };
                match (&c.model, &c.error) {
                    (Some(m), _) => {
                        let params = m
                            .parameters()
                            .iter()
                            .map(|(n, v)| format!("{n} {v:.4}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        format!(
                            "{}{chosen}: {params}; LL {:.2}, {validation}; converged {}, collapsed {}, degenerate {}",
                            c.kind.name(),
                            m.log_likelihood(),
                            m.converged(),
                            m.collapsed(),
                            c.degenerate
                        )
                    }
                    (None, e) => format!(
                        "{}: not fitted ({})",
                        c.kind.name(),
                        e.as_deref().unwrap_or("unknown error")
                    ),
                }
            })
            .collect()
    }
}

/// Fits the three models and selects one (module docs). `full` holds every
/// customer's history at the reference; `validation`, when given, pairs the
/// history at the cutoff with the history at the reference for every
/// customer who bought before the cutoff, and `cutoff`/`days` describe it.
pub fn select(
    params: &SelectionParams,
    bgnbd: &BgNbdParams,
    full: &[History],
    validation: Option<ValidationWindow<'_>>,
) -> Result<ModelSelection, RepeatModelError> {
    params.check()?;
    let full = spread(full, params.max_fit_customers);
    let full = &full[..];
    let sampled_pairs = validation.map(|(pairs, _, _)| spread(pairs, params.max_fit_customers));
    let validation = validation
        .zip(sampled_pairs.as_deref())
        .map(|((_, cutoff, days), pairs)| (pairs, cutoff, days))
        .filter(|(pairs, _, days)| !pairs.is_empty() && *days > 0.0);
    let candidates: Vec<Candidate> = ModelKind::ALL
        .par_iter()
        .map(|&kind| {
            let (model, error) = match RepeatModel::fit(kind, bgnbd, params, full) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let degenerate = model.as_ref().is_some_and(|m| {
                full.iter()
                    .all(|&(x, t_x, t)| m.p_alive(x, t_x, t) >= params.degenerate_p_alive)
            });
            let (validation_log_likelihood, validation_error) = match validation {
                None => (None, None),
                Some((pairs, _, _)) => match validation_score(kind, bgnbd, params, pairs) {
                    Ok(v) => (Some(v), None),
                    Err(e) => (None, Some(e.to_string())),
                },
            };
            Candidate {
                kind,
                model,
                error,
                validation_log_likelihood,
                validation_error,
                degenerate,
            }
        })
        .collect();
    let criterion = match validation {
        Some((pairs, cutoff, days)) => Criterion::Validation {
            cutoff,
            days,
            customers: pairs.len(),
        },
        None => Criterion::FullHistory,
    };
    let score = |c: &Candidate| -> Option<f64> {
        let m = c.model.as_ref()?;
        let s = match criterion {
            Criterion::Validation { .. } => c.validation_log_likelihood?,
            Criterion::FullHistory => m.log_likelihood(),
        };
        s.is_finite().then_some(s)
    };
    let best_of = |only_sound: bool| {
        let mut best: Option<(ModelKind, f64)> = None;
        for c in candidates.iter().filter(|c| !(only_sound && c.degenerate)) {
            if let Some(s) = score(c)
                && best.is_none_or(|(_, b)| s > b)
            {
                best = Some((c.kind, s));
            }
        }
        best
    };
    let selected = match (best_of(false), best_of(true)) {
        (Some((_, top)), Some(sound)) if sound.1 >= top - params.tie_log_likelihood => Some(sound),
        (top, _) => top,
    };
    Ok(ModelSelection {
        criterion,
        candidates,
        selected: selected.map(|(k, _)| k),
    })
}

/// `VLL` of one model: fitted on the cutoff histories, scored on the window.
fn validation_score(
    kind: ModelKind,
    bgnbd: &BgNbdParams,
    params: &SelectionParams,
    pairs: &[(History, History)],
) -> Result<f64, RepeatModelError> {
    let before: Vec<History> = pairs.iter().map(|p| p.0).collect();
    let after: Vec<History> = pairs.iter().map(|p| p.1).collect();
    let model = RepeatModel::fit(kind, bgnbd, params, &before)?;
    let v = model.log_likelihood_of(&after)? - model.log_likelihood_of(&before)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(RepeatModelError::InvalidParam {
            model: kind.name(),
            name: "validation_log_likelihood",
            value: v.to_string(),
            reason: "the validation window's likelihood is not finite",
        })
    }
}

/// The validation pairs of a purchase log: each customer's repeat history at
/// `reference − validation_days` and at `reference`, for every customer who
/// bought at or before the cutoff. Returns the cutoff too.
pub fn validation_pairs(
    log: &PurchaseLog,
    reference: i64,
    summary: &SummaryParams,
    validation_days: f64,
) -> (i64, Vec<(History, History)>) {
    let cutoff = reference - (validation_days * DAY_SECS as f64).round() as i64;
    let at_reference: HashMap<u32, History> = summarize(log, reference, summary)
        .iter()
        .map(|s| (s.customer.0, s.repeat_summary().tuple()))
        .collect();
    let pairs = summarize(log, cutoff, summary)
        .iter()
        .filter_map(|s| {
            let after = at_reference.get(&s.customer.0)?;
            Some((s.repeat_summary().tuple(), *after))
        })
        .collect();
    (cutoff, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weekly buyers who never stop, and one-off buyers: nobody visibly
    /// drops out.
    fn steady(n: usize) -> Vec<History> {
        (0..n)
            .map(|i| {
                let t = 30.0 + (i % 20) as f64;
                let x = (t / (1.0 + (i % 4) as f64)).floor();
                (x, t - 0.5 * (i % 2) as f64, t)
            })
            .collect()
    }

    /// 300 customers' histories at a cutoff (week 26) and at the reference
    /// (week 39): every third buys once more in the window.
    fn window_pairs() -> Vec<(History, History)> {
        (0..300)
            .map(|i| {
                let x = (i % 5) as f64;
                let t_x = if x > 0.0 { 10.0 + (i % 7) as f64 } else { 0.0 };
                let later = if i % 3 == 0 { x + 1.0 } else { x };
                let t_x2 = if later > x { 28.0 } else { t_x };
                ((x, t_x, 26.0), (later, t_x2, 39.0))
            })
            .collect()
    }

    #[test]
    fn the_best_validation_score_wins_and_every_model_is_reported() {
        let pairs = window_pairs();
        let full: Vec<History> = pairs.iter().map(|p| p.1).collect();
        let sel = select(
            &SelectionParams::default(),
            &BgNbdParams::default(),
            &full,
            Some((&pairs, 0, 91.0)),
        )
        .unwrap();
        assert_eq!(sel.candidates.len(), 3);
        let best = sel
            .candidates
            .iter()
            .filter_map(|c| c.validation_log_likelihood.map(|v| (c.kind, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(sel.selected, Some(best.0));
        assert!(matches!(
            sel.criterion,
            Criterion::Validation { customers: 300, .. }
        ));
        assert_eq!(sel.describe().len(), 3);
        // Round trip, and a selection stored without the later fields loads.
        let json = serde_json::to_value(&sel).unwrap();
        let back: ModelSelection = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, sel);
        let mut old = json;
        for c in old["candidates"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("degenerate");
            c.as_object_mut().unwrap().remove("validation_error");
        }
        let _: ModelSelection = serde_json::from_value(old).unwrap();
    }

    /// Above `max_fit_customers` the models see every `s`-th customer: the
    /// same fits as on that sample given directly.
    #[test]
    fn large_bases_are_fitted_on_an_even_sample() {
        let pairs = window_pairs();
        let full: Vec<History> = pairs.iter().map(|p| p.1).collect();
        let capped = SelectionParams {
            max_fit_customers: 100,
            ..Default::default()
        };
        let bg = BgNbdParams::default();
        let sampled = select(&capped, &bg, &full, Some((&pairs, 0, 91.0))).unwrap();
        assert!(matches!(
            sampled.criterion,
            Criterion::Validation { customers: 100, .. }
        ));
        let every_third: Vec<(History, History)> = pairs.iter().step_by(3).copied().collect();
        let full_third: Vec<History> = full.iter().step_by(3).copied().collect();
        let direct = select(
            &SelectionParams::default(),
            &bg,
            &full_third,
            Some((&every_third, 0, 91.0)),
        )
        .unwrap();
        assert_eq!(sampled, direct);
        let zero = SelectionParams {
            max_fit_customers: 0,
            ..Default::default()
        };
        assert!(select(&zero, &bg, &full, None).is_err());
    }

    /// On the degenerate history every model scores about the same: a
    /// non-degenerate fit within the tie tolerance is preferred.
    #[test]
    fn a_sound_fit_beats_a_degenerate_one_within_the_tie() {
        let full = steady(400);
        let strict = SelectionParams {
            tie_log_likelihood: 0.0,
            ..Default::default()
        };
        let loose = SelectionParams {
            tie_log_likelihood: f64::MAX,
            ..Default::default()
        };
        let bg = BgNbdParams::default();
        let a = select(&strict, &bg, &full, None).unwrap();
        let b = select(&loose, &bg, &full, None).unwrap();
        if b.candidates.iter().any(|c| !c.degenerate) {
            let picked = b.selected_candidate().unwrap();
            assert!(!picked.degenerate, "{:?}", b.describe());
        } else {
            assert_eq!(a.selected, b.selected);
        }
        assert!(
            select(
                &SelectionParams {
                    tie_log_likelihood: -1.0,
                    ..Default::default()
                },
                &bg,
                &full,
                None
            )
            .is_err()
        );
    }

    #[test]
    fn without_validation_the_full_likelihood_decides() {
        let full = steady(200);
        let sel = select(
            &SelectionParams::default(),
            &BgNbdParams::default(),
            &full,
            None,
        )
        .unwrap();
        assert_eq!(sel.criterion, Criterion::FullHistory);
        let best = sel
            .candidates
            .iter()
            .map(|c| (c.kind, c.model.as_ref().unwrap().log_likelihood()))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert_eq!(sel.selected, Some(best.0));
    }

    /// Nobody stops buying: whichever model wins, P(alive) is not claimed
    /// when the fit is degenerate, and churn risk is still a probability.
    #[test]
    fn degenerate_fits_do_not_claim_p_alive() {
        let full = steady(400);
        let sel = select(
            &SelectionParams::default(),
            &BgNbdParams::default(),
            &full,
            None,
        )
        .unwrap();
        let chosen = sel.chosen().unwrap();
        for &(x, t_x, t) in &full {
            if let Some(p) = chosen.p_alive(x, t_x, t) {
                assert!(!chosen.degenerate && p.is_finite());
            }
            let c = chosen.churn_risk(10.0, x, t_x, t).unwrap();
            assert!((0.0..=1.0).contains(&c), "{c}");
        }
        let bg = sel.candidate(ModelKind::BgNbd).unwrap();
        assert!(bg.degenerate, "{:?}", sel.describe());
    }

    #[test]
    fn p_no_purchase_is_the_likelihood_ratio() {
        let bg = RepeatModel::BgNbd(BgNbd::new(0.2426, 4.4135, 0.7929, 2.4258).unwrap());
        let (x, t_x, t, h) = (2.0, 30.43, 38.86, 10.0);
        // BG/NBD closed form: dead, or alive and no Poisson event in h.
        let p = bg.p_alive(x, t_x, t);
        let want = 1.0 - p + p * ((4.4135 + t) / (4.4135 + t + h)).powf(0.2426 + x);
        let got = bg.p_no_purchase(h, x, t_x, t).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        for m in [
            bg,
            RepeatModel::ParetoNbd(ParetoNbd::new(0.5533, 10.5776, 0.6061, 11.6687).unwrap()),
            RepeatModel::MbgNbd(MbgNbd::new(0.5248, 6.183, 0.8914, 1.614).unwrap()),
        ] {
            assert_eq!(m.p_no_purchase(0.0, x, t_x, t).unwrap(), 1.0);
            let mut prev = 1.0;
            for h in [1.0, 10.0, 100.0, 1000.0] {
                let q = m.p_no_purchase(h, x, t_x, t).unwrap();
                assert!(q <= prev && q > 0.0, "{m:?} {q} at h = {h}");
                prev = q;
            }
            // Never below the chance of being dead already.
            assert!(prev >= 1.0 - m.p_alive(x, t_x, t) - 1e-9);
        }
    }

    #[test]
    fn a_single_customer_or_all_zero_frequencies_do_not_panic() {
        for full in [vec![(0.0, 0.0, 10.0)], vec![(0.0, 0.0, 5.0); 50]] {
            let sel = select(
                &SelectionParams::default(),
                &BgNbdParams::default(),
                &full,
                None,
            )
            .unwrap();
            assert_eq!(sel.candidates.len(), 3);
            let _ = sel.describe();
        }
        assert!(
            select(
                &SelectionParams {
                    validation_days: -1.0,
                    ..Default::default()
                },
                &BgNbdParams::default(),
                &[],
                None
            )
            .is_err()
        );
    }
}
