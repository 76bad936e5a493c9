//! What the repeat-buying models beside BG/NBD share: fit settings, errors,
//! the grouping of customers by their `(x, t_x, T)` and the fit loop.
//!
//! [`super::pareto_nbd`] and [`super::mbg_nbd`] are fitted exactly like
//! [`super::bgnbd`]: penalised maximum likelihood over the logarithms of
//! their four parameters by Nelder–Mead ([`crate::math::optim`]), restarted until
//! it stops improving, optionally from several random starts.

use crate::math::optim::{NelderMeadOptions, NelderMeadResult, OptimError, minimize_nelder_mead};
use crate::math::special::SpecialError;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Settings of a four-parameter repeat-buying fit (Pareto/NBD, MBG/NBD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// one start, seed 42 (the BG/NBD defaults).
    fn default() -> Self {
        FitParams {
            penalizer: 0.0,
            max_iter: 3_000,
            tol: 1e-12,
            initial: [1.0; 4],
            starts: 1,
            seed: 42,
        }
    }
}

/// Why a Pareto/NBD or MBG/NBD model could not be fitted or evaluated.
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
    /// The BG/NBD model failed (when used through [`super::select::RepeatModel`]).
    #[error("BG/NBD: {0}")]
    BgNbd(super::bgnbd::BgNbdError),
}

crate::error_from!(RepeatModelError { Optim(OptimError), Special(SpecialError), BgNbd(super::bgnbd::BgNbdError) });

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
        Err(RepeatModelError::InvalidParam {
            model,
            name: "t",
            value: t.to_string(),
            reason: "the horizon must be finite and non-negative",
        })
    }
}

/// Checks four model parameters (finite and positive).
pub(crate) fn check_model_params(
    model: &'static str,
    named: [(&'static str, f64); 4],
) -> Result<(), RepeatModelError> {
    for (name, v) in named {
        if !(v.is_finite() && v > 0.0) {
            return Err(RepeatModelError::InvalidParam {
                model,
                name,
                value: v.to_string(),
                reason: "must be finite and positive",
            });
        }
    }
    Ok(())
}

impl FitParams {
    /// Checks every setting; `model` names the model in the error.
    pub fn check(&self, model: &'static str) -> Result<(), RepeatModelError> {
        let bad = |name, value: String, reason| {
            Err(RepeatModelError::InvalidParam {
                model,
                name,
                value,
                reason,
            })
        };
        if !(self.penalizer.is_finite() && self.penalizer >= 0.0) {
            return bad(
                "penalizer",
                self.penalizer.to_string(),
                "must be a finite non-negative number",
            );
        }
        if self.max_iter == 0 {
            return bad("max_iter", "0".into(), "must be at least 1");
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return bad(
                "tol",
                self.tol.to_string(),
                "must be a finite positive number",
            );
        }
        if self.initial.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return bad(
                "initial",
                format!("{:?}", self.initial),
                "every value must be finite and positive",
            );
        }
        if self.starts == 0 {
            return bad("starts", "0".into(), "must be at least 1");
        }
        Ok(())
    }

    /// Minimises `−(1/n) Σ ln Lᵢ + penalizer · |θ|²` over `ln θ`, where
    /// `log_likelihood(θ)` is the total log-likelihood of `n` customers.
    /// Returns the winning run and its `θ`.
    pub(crate) fn minimize(
        &self,
        n: usize,
        log_likelihood: impl Fn([f64; 4]) -> f64,
    ) -> Result<(NelderMeadResult, [f64; 4]), RepeatModelError> {
        let n = n as f64;
        let penalizer = self.penalizer;
        let objective = |phi: &[f64]| {
            let theta = [phi[0].exp(), phi[1].exp(), phi[2].exp(), phi[3].exp()];
            -log_likelihood(theta) / n + penalizer * theta.iter().map(|v| v * v).sum::<f64>()
        };
        let opts = NelderMeadOptions {
            initial_step: 0.5,
            max_iter: self.max_iter,
            ftol_abs: self.tol * 1e-3,
            ftol_rel: self.tol,
            xtol: 1e-9,
            max_restarts: 5,
            adaptive: true,
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let mut best: Option<NelderMeadResult> = None;
        for start in 0..self.starts {
            let x0: Vec<f64> = if start == 0 {
                self.initial.iter().map(|v| v.ln()).collect()
            } else {
                (0..4).map(|_| rng.gen_range(-2.0..2.0)).collect()
            };
            let res = match minimize_nelder_mead(objective, &x0, &opts) {
                Ok(res) => res,
                Err(OptimError::NonFiniteStart { .. }) if start > 0 => continue,
                Err(e) => return Err(e.into()),
            };
            if best.as_ref().is_none_or(|b| res.fx < b.fx) {
                best = Some(res);
            }
        }
        let best = best.expect("the first start always yields a result");
        let theta = [
            best.x[0].exp(),
            best.x[1].exp(),
            best.x[2].exp(),
            best.x[3].exp(),
        ];
        Ok((best, theta))
    }
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
