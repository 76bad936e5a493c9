//! What the repeat-buying models share: fit settings, errors, checks, the
//! grouping of customers by their `(x, t_x, T)` and the fit loop.
//!
//! [`super::bgnbd`], [`super::pareto_nbd`] and [`super::mbg_nbd`] are fitted
//! alike: penalised maximum likelihood over the logarithms of
//! their four parameters by Nelder–Mead ([`crate::math::optim`]), restarted until
//! it stops improving, optionally from several random starts.

use crate::math::optim::{NelderMeadResult, OptimError};
use crate::math::special::SpecialError;
use crate::setting::{InvalidSetting, at_least_one, non_negative, positive};
use rayon::prelude::*;

/// Settings of a four-parameter repeat-buying fit (BG/NBD, Pareto/NBD,
/// MBG/NBD).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FitParams {
    /// L2 penalty on the four parameters added to the mean negative
    /// log-likelihood (0 = plain maximum likelihood).
    pub penalizer: f64,
    /// Nelder–Mead iterations per start.
    pub max_iter: usize,
    /// Relative tolerance on the objective (the mean negative log-likelihood).
    pub tol: f64,
    /// The first starting point, in the model's parameter order.
    pub initial: [f64; 4],
    /// Number of starts: the first from `initial`, the others from random
    /// log-parameters in `[−2, 2]⁴` drawn with `seed`. The best fit wins.
    pub starts: usize,
    /// Seed of the extra starting points.
    pub seed: u64,
}

impl Default for FitParams {
    /// No penalty, 3,000 iterations, `tol = 1e-12`, start at `(1, 1, 1, 1)`,
    /// one start, seed 42.
    fn default() -> Self {
        FitParams {
            penalizer: 0.0,
            // BG/NBD fits that converge take about 500 (CDNOW: 529); one
            // far out on the ridge a -> 0, b -> infinity (nobody "dies")
            // ends when its simplex collapses (`BgNbd::collapsed`).
            max_iter: 3_000,
            tol: 1e-12,
            initial: [1.0; 4],
            starts: 1,
            seed: 42,
        }
    }
}

impl FitParams {
    /// Checks every setting; `model` names the model in the error.
    pub fn check(&self, model: &'static str) -> Result<(), RepeatModelError> {
        self.check_settings().map_err(|e| e.in_model(model))
    }

    /// The first setting out of range.
    fn check_settings(&self) -> Result<(), InvalidSetting> {
        check_fit_settings(self.penalizer, self.max_iter, self.tol, &self.initial)?;
        at_least_one(&[("starts", self.starts)])
    }

    /// [`crate::math::optim::minimize_log_params`] with these settings:
    /// the winning run and its four parameters.
    pub(crate) fn minimize(
        &self,
        n: usize,
        log_likelihood: impl Fn([f64; 4]) -> f64,
    ) -> Result<(NelderMeadResult, [f64; 4]), OptimError> {
        crate::math::optim::minimize_log_params(
            &crate::math::optim::fit_options(self.max_iter, self.tol),
            self.penalizer,
            &self.initial,
            (self.starts, self.seed),
            n,
            log_likelihood,
        )
    }
}

/// Defines a fitted (or given) customer model: its parameters, then what the
/// fit reports, with `unfitted` (the model with given parameters and no fit)
/// and `with_fit` (what a Nelder–Mead run reported).
macro_rules! fitted_model {
    (
        $(#[$attr:meta])*
        $name:ident { $($(#[$param_doc:meta])* $param:ident),+ $(,)? }
        $(#[$n_doc:meta])*
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $($(#[$param_doc])* pub $param: f64,)+
            /// Total log-likelihood of the fitting data (unpenalised); NaN for a
            /// model built with `new`.
            pub log_likelihood: f64,
            /// Nelder–Mead iterations of the winning start.
            pub iterations: usize,
            /// Whether the winning start met the tolerance.
            pub converged: bool,
            /// Whether the winning start ended with its parameters known to the
            /// optimiser's tolerance but the likelihood's values there spreading
            /// wider than `tol`: the likelihood's own rounding, typically far out
            /// on a ridge of the likelihood ([`crate::math::optim`]). The fit is
            /// then as good as the arithmetic allows.
            #[serde(default)]
            pub collapsed: bool,
            $(#[$n_doc])*
            pub n_customers: usize,
        }

        impl $name {
            /// The model with these parameters, fitted on nothing.
            fn unfitted($($param: f64),+) -> Self {
                $name {
                    $($param,)+
                    log_likelihood: f64::NAN,
                    iterations: 0,
                    converged: false,
                    collapsed: false,
                    n_customers: 0,
                }
            }

            /// This model as fitted by `run` on `n_customers` customers, with
            /// `log_likelihood` at its parameters.
            fn with_fit(
                self,
                log_likelihood: f64,
                run: &$crate::math::optim::NelderMeadResult,
                n_customers: usize,
            ) -> Self {
                $name {
                    log_likelihood,
                    iterations: run.iterations,
                    converged: run.converged,
                    collapsed: run.collapsed,
                    n_customers,
                    ..self
                }
            }
        }
    };
}
pub(crate) use fitted_model;

/// What BG/NBD, Pareto/NBD and MBG/NBD (`$model`, named `$name` in errors,
/// with parameters `$param`) share around their likelihood and their
/// conditional expectation: the free function `fit`, and the methods `new`,
/// `log_likelihood_of` and `expected_purchases`. The module provides
/// `$prepare(data) -> Result<D, RepeatModelError>` (the data checked and
/// grouped for the likelihood), `$ll(&D, params…) -> f64` (`Σ ln Lᵢ`) and the
/// method `conditional(t, x, t_x, T)`, the expected purchases called for
/// checked arguments and `t > 0`.
macro_rules! repeat_model {
    ($model:ident($($param:ident),+), $name:expr, $prepare:path, $ll:path) => {
        /// Fits the model to one `(x, t_x, T)` per customer by (penalised)
        /// maximum likelihood over the logarithms of its four parameters
        /// ([`super::repeat`]).
        pub fn fit(
            params: &$crate::customer::repeat::FitParams,
            data: &[(f64, f64, f64)],
        ) -> Result<$model, $crate::customer::repeat::RepeatModelError> {
            params.check($name)?;
            if data.is_empty() {
                return Err($crate::customer::repeat::RepeatModelError::NoData { model: $name });
            }
            let prepared = $prepare(data)?;
            let ll = |[$($param),+]: [f64; 4]| $ll(&prepared, $($param),+);
            let (best, [$($param),+]) = params.minimize(data.len(), ll)?;
            Ok($model::unfitted($($param),+).with_fit(
                $ll(&prepared, $($param),+),
                &best,
                data.len(),
            ))
        }

        impl $model {
            /// A model with given parameters (for instance from a stored fit).
            pub fn new(
                $($param: f64),+
            ) -> Result<Self, $crate::customer::repeat::RepeatModelError> {
                $crate::customer::repeat::check_model_params(
                    $name,
                    [$((stringify!($param), $param)),+],
                )?;
                Ok($model::unfitted($($param),+))
            }

            /// Total log-likelihood of `data` under this model.
            pub fn log_likelihood_of(
                &self,
                data: &[(f64, f64, f64)],
            ) -> Result<f64, $crate::customer::repeat::RepeatModelError> {
                Ok($ll(&$prepare(data)?, $(self.$param),+))
            }

            /// Expected purchases in `(T, T + t]` of a customer with history
            /// `(x, t_x, T)` (module docs).
            pub fn expected_purchases(
                &self,
                t: f64,
                x: f64,
                t_x: f64,
                big_t: f64,
            ) -> Result<f64, $crate::customer::repeat::RepeatModelError> {
                $crate::customer::repeat::check_customer(0, x, t_x, big_t)?;
                $crate::customer::repeat::check_horizon($name, t)?;
                if t == 0.0 {
                    return Ok(0.0);
                }
                self.conditional(t, x, t_x, big_t)
            }
        }
    };
}
pub(crate) use repeat_model;

impl InvalidSetting {
    /// The error of the repeat-buying model `model`.
    pub(crate) fn in_model(self, model: &'static str) -> RepeatModelError {
        RepeatModelError::InvalidParam {
            model,
            name: self.name,
            value: self.value,
            reason: self.reason,
        }
    }
}

/// Why a BG/NBD, Pareto/NBD or MBG/NBD model could not be fitted or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RepeatModelError {
    /// A setting or model parameter is out of range.
    #[error("invalid {model} parameter {name} = {value}: {reason}")]
    InvalidParam {
        model: &'static str,
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// No customer to fit on.
    #[error("no customers to fit the {model} model on")]
    NoData { model: &'static str },
    /// A customer's `(x, t_x, T)` is impossible.
    #[error("customer #{index} has (x, t_x, T) = ({x}, {t_x}, {t}): {reason}")]
    InvalidCustomer {
        index: usize,
        x: f64,
        t_x: f64,
        t: f64,
        reason: &'static str,
    },
    /// The optimiser refused to start.
    #[error("optimiser: {0}")]
    Optim(OptimError),
    /// A special function failed.
    #[error("special function: {0}")]
    Special(SpecialError),
}

crate::error_from!(RepeatModelError { Optim(OptimError), Special(SpecialError) });

/// Checks one customer's `(x, t_x, T)`.
pub(crate) fn check_customer(
    index: usize,
    x: f64,
    t_x: f64,
    t: f64,
) -> Result<(), RepeatModelError> {
    let bad = |reason| {
        Err(RepeatModelError::InvalidCustomer {
            index,
            x,
            t_x,
            t,
            reason,
        })
    };
    if !(x.is_finite() && t_x.is_finite() && t.is_finite()) {
        return bad("values must be finite");
    }
    if x < 0.0 || x.fract() != 0.0 {
        return bad("x must be a non-negative whole number");
    }
    if t_x < 0.0 || t < t_x {
        return bad("needs 0 <= t_x <= T");
    }
    Ok(())
}

/// Checks a horizon (finite, non-negative).
pub(crate) fn check_horizon(model: &'static str, t: f64) -> Result<(), RepeatModelError> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(
            InvalidSetting::new("t", t, "the horizon must be finite and non-negative")
                .in_model(model),
        )
    }
}

/// Half-width of the evaluation around the removable singularity at `a = 1`
/// of the BG/NBD and MBG/NBD expectations.
const A_ONE_EPS: f64 = 1e-5;

/// `eval(a)`, or the mean of `eval(1 ± ε)` when `a` is within `ε` of 1.
pub(crate) fn around_a_one(
    a: f64,
    eval: impl Fn(f64) -> Result<f64, RepeatModelError>,
) -> Result<f64, RepeatModelError> {
    if (a - 1.0).abs() < A_ONE_EPS {
        Ok(0.5 * (eval(1.0 - A_ONE_EPS)? + eval(1.0 + A_ONE_EPS)?))
    } else {
        eval(a)
    }
}

/// Checks model parameters (finite and positive).
pub(crate) fn positive_params(named: &[(&'static str, f64)]) -> Result<(), InvalidSetting> {
    match named.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        Some(&(name, v)) => Err(InvalidSetting::new(name, v, "must be finite and positive")),
        None => Ok(()),
    }
}

/// Checks four model parameters (finite and positive).
pub(crate) fn check_model_params(
    model: &'static str,
    named: [(&'static str, f64); 4],
) -> Result<(), RepeatModelError> {
    positive_params(&named).map_err(|e| e.in_model(model))
}

/// Checks the settings every Nelder–Mead fit of the customer models has:
/// the penalty, the iterations, the tolerance and the starting point.
pub(crate) fn check_fit_settings(
    penalizer: f64,
    max_iter: usize,
    tol: f64,
    initial: &[f64],
) -> Result<(), InvalidSetting> {
    non_negative(&[("penalizer", penalizer)])?;
    at_least_one(&[("max_iter", max_iter)])?;
    positive(&[("tol", tol)])?;
    if initial.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(InvalidSetting::new(
            "initial",
            format!("{initial:?}"),
            "every value must be finite and positive",
        ));
    }
    Ok(())
}

/// The horizon `u ≤ max_horizon` at which `expected(u)`, a customer's
/// expected purchases in `(T, T + u]`, reaches 1, to a relative precision
/// of `10⁻⁶`; `None` if it stays below 1 up to `max_horizon`.
pub(crate) fn time_to_one_purchase<E>(
    max_horizon: f64,
    expected: impl Fn(f64) -> Result<f64, E>,
) -> Result<Option<f64>, E> {
    if expected(max_horizon)? < 1.0 {
        return Ok(None);
    }
    let (mut lo, mut hi) = (0.0_f64, max_horizon);
    while hi - lo > 1e-6 * hi.max(1e-9) {
        let mid = 0.5 * (lo + hi);
        if expected(mid)? >= 1.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi))
}

/// `reference + u` in seconds, for `time_to(x, t_x, T)` the time `u` (in
/// `summary`'s unit) to the next expected purchase of `summary`'s customer.
pub(crate) fn next_purchase_date<E>(
    summary: &super::summary::CustomerSummary,
    reference: i64,
    time_to: impl FnOnce(f64, f64, f64) -> Result<Option<f64>, E>,
) -> Result<Option<i64>, E> {
    let s = summary.repeat_summary();
    let u = time_to(s.x, s.t_x, s.t)?;
    Ok(u.map(|u| {
        reference + (u * summary.unit.days() * super::summary::DAY_SECS as f64).round() as i64
    }))
}

/// Customers grouped by distinct `(x, t_x, T)`, with their counts: the
/// likelihood is evaluated once per distinct history.
pub(crate) struct Histories {
    rows: Vec<((f64, f64, f64), f64)>,
}

/// Rows per parallel chunk of a log-likelihood.
const LL_CHUNK: usize = 4_096;

impl Histories {
    /// Groups `data` after checking every customer.
    pub(crate) fn new(data: &[(f64, f64, f64)]) -> Result<Self, RepeatModelError> {
        for (i, &(x, t_x, t)) in data.iter().enumerate() {
            check_customer(i, x, t_x, t)?;
        }
        let mut sorted = data.to_vec();
        sorted.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.total_cmp(&b.2))
        });
        let mut rows: Vec<((f64, f64, f64), f64)> = Vec::new();
        for d in sorted {
            match rows.last_mut() {
                Some((last, count)) if *last == d => *count += 1.0,
                _ => rows.push((d, 1.0)),
            }
        }
        Ok(Histories { rows })
    }

    /// `Σ count · ln L(x, t_x, T)`, summed in fixed chunks in order, so the
    /// total is the same on any number of threads.
    pub(crate) fn sum(&self, ln_l: impl Fn(f64, f64, f64) -> f64 + Sync) -> f64 {
        let chunk_sum = |rows: &[((f64, f64, f64), f64)]| {
            rows.iter()
                .map(|&((x, t_x, t), c)| c * ln_l(x, t_x, t))
                .sum::<f64>()
        };
        if self.rows.len() <= LL_CHUNK {
            return chunk_sum(&self.rows);
        }
        let parts: Vec<f64> = self.rows.par_chunks(LL_CHUNK).map(chunk_sum).collect();
        parts.iter().sum()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_group_and_check() {
        let h = Histories::new(&[(1.0, 2.0, 3.0), (0.0, 0.0, 3.0), (1.0, 2.0, 3.0)]).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.sum(|x, _, _| x + 1.0), 2.0 + 1.0 + 2.0);
        assert!(matches!(
            Histories::new(&[(1.0, 4.0, 3.0)]),
            Err(RepeatModelError::InvalidCustomer { .. })
        ));
    }

    #[test]
    fn fit_params_are_checked() {
        assert!(FitParams::default().check("m").is_ok());
        for bad in [
            FitParams {
                penalizer: -1.0,
                ..Default::default()
            },
            FitParams {
                max_iter: 0,
                ..Default::default()
            },
            FitParams {
                tol: 0.0,
                ..Default::default()
            },
            FitParams {
                starts: 0,
                ..Default::default()
            },
            FitParams {
                initial: [1.0, 0.0, 1.0, 1.0],
                ..Default::default()
            },
        ] {
            let e = bad.check("Pareto/NBD").unwrap_err();
            assert!(e.to_string().contains("Pareto/NBD"), "{e}");
        }
    }
}
