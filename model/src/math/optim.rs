//! Derivative-free minimisation: the Nelder–Mead simplex method with restarts.
//!
//! The customer models maximise smooth but awkward likelihoods over a handful
//! of (log-)parameters; Nelder–Mead needs no gradients and is robust there.
//!
//! # Algorithm
//! Start from the simplex `x₀, x₀ + h·e₁, …, x₀ + h·eₙ`. Each iteration sorts
//! the vertices by value (`x₁` best, `xₙ₊₁` worst), forms the centroid `x̄` of
//! the best `n`, and tries in turn
//! * reflection `x_r = x̄ + ρ(x̄ − xₙ₊₁)`,
//! * expansion `x_e = x̄ + χ(x_r − x̄)` if `x_r` beats the best,
//! * outside / inside contraction `x̄ ± γ(x_r − x̄)` if `x_r` is not better than `xₙ`,
//! * and otherwise shrinks every vertex towards the best: `xᵢ ← x₁ + σ(xᵢ − x₁)`.
//!
//! With `adaptive` set the coefficients depend on the dimension as proposed by
//! Gao & Han (2012): `ρ = 1, χ = 1 + 2/n, γ = ¾ − 1/(2n), σ = 1 − 1/n`;
//! otherwise the classic `ρ = 1, χ = 2, γ = ½, σ = ½`.
//!
//! A run ends when every vertex lies within `xtol` of `x₁` in the max norm.
//! It has converged if the spread of values `f(xₙ₊₁) − f(x₁)` is then at most
//! `ftol_abs + ftol_rel·|f(x₁)|`; otherwise it has *collapsed*: vertices
//! closer than `xtol` whose values still differ by more than the value
//! tolerance. That happens to a simplex that shrank prematurely, and where
//! the objective's own rounding is larger than the value tolerance (a
//! likelihood of many terms far out on a ridge): no further step of that
//! simplex can tell its vertices apart, so it is not iterated on. Either way
//! the search restarts from a fresh simplex around the best point (up to
//! `max_restarts` times) and stops once a restart improves the value by no
//! more than the value tolerance. Non-finite objective values are treated as
//! `+∞`, so an objective may return NaN outside its domain.

/// Settings of [`minimize_nelder_mead`].
#[derive(Debug, Clone, PartialEq)]
pub struct NelderMeadOptions {
    /// Edge length `h` of the initial (and every restart's) simplex.
    pub initial_step: f64,
    /// Maximum number of iterations over all restarts.
    pub max_iter: usize,
    /// Absolute tolerance on the spread of values.
    pub ftol_abs: f64,
    /// Relative tolerance on the spread of values.
    pub ftol_rel: f64,
    /// Tolerance on the simplex size (max norm).
    pub xtol: f64,
    /// How many times to restart after convergence.
    pub max_restarts: usize,
    /// Use the dimension-dependent coefficients of Gao & Han (2012).
    pub adaptive: bool,
}

impl Default for NelderMeadOptions {
    /// Step 0.5, 10,000 iterations, `ftol_abs = 1e-12`, `ftol_rel = 1e-12`,
    /// `xtol = 1e-8`, 3 restarts, adaptive coefficients.
    fn default() -> Self {
        NelderMeadOptions {
            initial_step: 0.5,
            max_iter: 10_000,
            ftol_abs: 1e-12,
            ftol_rel: 1e-12,
            xtol: 1e-8,
            max_restarts: 3,
            adaptive: true,
        }
    }
}

/// Why [`minimize_nelder_mead`] could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimError {
    /// An option is out of range.
    #[error("invalid Nelder-Mead option {name} = {value}: {reason}")]
    InvalidOption {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The starting point has no coordinate or a non-finite one.
    #[error("invalid starting point {x0:?}: {reason}")]
    InvalidStart { x0: Vec<f64>, reason: &'static str },
    /// The objective is not finite at the starting point.
    #[error("the objective is {value} at the starting point {x0:?}")]
    NonFiniteStart { x0: Vec<f64>, value: f64 },
}

/// The outcome of [`minimize_nelder_mead`].
#[derive(Debug, Clone, PartialEq)]
pub struct NelderMeadResult {
    /// The best point found.
    pub x: Vec<f64>,
    /// The objective at `x`.
    pub fx: f64,
    /// Iterations over all restarts.
    pub iterations: usize,
    /// Objective evaluations.
    pub evaluations: usize,
    /// Restarts performed.
    pub restarts: usize,
    /// True if the last run met the tolerances (false if `max_iter` ran out).
    pub converged: bool,
    /// True if the last run's simplex shrank within `xtol` while its values
    /// still spread wider than the value tolerance (module docs): the point
    /// is known to `xtol`, the value only to the objective's own rounding.
    pub collapsed: bool,
}

impl NelderMeadOptions {
    /// Checks every option.
    pub fn check(&self) -> Result<(), OptimError> {
        let bad = |name, value: f64, reason| {
            Err(OptimError::InvalidOption {
                name,
                value: value.to_string(),
                reason,
            })
        };
        if !(self.initial_step.is_finite() && self.initial_step > 0.0) {
            return bad(
                "initial_step",
                self.initial_step,
                "must be a finite positive number",
            );
        }
        if self.max_iter == 0 {
            return bad("max_iter", 0.0, "must be at least 1");
        }
        for (name, v) in [
            ("ftol_abs", self.ftol_abs),
            ("ftol_rel", self.ftol_rel),
            ("xtol", self.xtol),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, v, "must be a finite non-negative number");
            }
        }
        Ok(())
    }
}

/// Minimises `f` from `x0` with Nelder–Mead (see the module docs).
///
/// ```
/// use encore_model::math::optim::{minimize_nelder_mead, NelderMeadOptions};
///
/// let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
/// let res = minimize_nelder_mead(rosenbrock, &[-1.2, 1.0], &NelderMeadOptions::default()).unwrap();
/// assert!(res.converged);
/// assert!((res.x[0] - 1.0).abs() < 1e-6 && (res.x[1] - 1.0).abs() < 1e-6);
/// ```
pub fn minimize_nelder_mead<F>(
    mut f: F,
    x0: &[f64],
    opts: &NelderMeadOptions,
) -> Result<NelderMeadResult, OptimError>
where
    F: FnMut(&[f64]) -> f64,
{
    opts.check()?;
    if x0.is_empty() {
        return Err(OptimError::InvalidStart {
            x0: x0.to_vec(),
            reason: "needs at least one coordinate",
        });
    }
    if x0.iter().any(|v| !v.is_finite()) {
        return Err(OptimError::InvalidStart {
            x0: x0.to_vec(),
            reason: "every coordinate must be finite",
        });
    }
    let mut evaluations = 0usize;
    let mut eval = |x: &[f64]| {
        evaluations += 1;
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let f0 = eval(x0);
    if !f0.is_finite() {
        return Err(OptimError::NonFiniteStart {
            x0: x0.to_vec(),
            value: f0,
        });
    }

    let n = x0.len();
    let nf = n as f64;
    let (rho, chi, gamma, sigma) = if opts.adaptive && n > 1 {
        (1.0, 1.0 + 2.0 / nf, 0.75 - 0.5 / nf, 1.0 - 1.0 / nf)
    } else {
        (1.0, 2.0, 0.5, 0.5)
    };
    let value_tol = |best: f64| opts.ftol_abs + opts.ftol_rel * best.abs();

    let mut best_x = x0.to_vec();
    let mut best_f = f0;
    let mut iterations = 0usize;
    let mut restarts = 0usize;
    let mut converged;
    let mut collapsed;
    loop {
        // A fresh simplex around the best point.
        let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
        simplex.push((best_x.clone(), best_f));
        for i in 0..n {
            let mut x = best_x.clone();
            x[i] += opts.initial_step;
            let fx = eval(&x);
            simplex.push((x, fx));
        }
        let start_f = best_f;
        converged = false;
        collapsed = false;
        let mut centroid = vec![0.0; n];
        while iterations < opts.max_iter {
            simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
            let f_best = simplex[0].1;
            let f_worst = simplex[n].1;
            let spread_ok = f_worst - f_best <= value_tol(f_best);
            let size_ok = simplex[1..].iter().all(|(x, _)| {
                x.iter()
                    .zip(&simplex[0].0)
                    .all(|(a, b)| (a - b).abs() <= opts.xtol)
            });
            if size_ok {
                // Collapsed: converged if the values agree too. Otherwise
                // no step of this simplex can tell its vertices apart any
                // more; the restart below decides.
                converged = spread_ok;
                collapsed = !spread_ok;
                break;
            }
            iterations += 1;

            centroid.iter_mut().for_each(|c| *c = 0.0);
            for (x, _) in &simplex[..n] {
                for (c, v) in centroid.iter_mut().zip(x) {
                    *c += v / nf;
                }
            }
            let worst = simplex[n].0.clone();
            let xr = trial(&centroid, &worst, rho);
            let fr = eval(&xr);
            if fr < simplex[0].1 {
                // Expansion: centroid + chi * (xr - centroid) = centroid + rho*chi*(centroid - worst).
                let xe = trial(&centroid, &worst, rho * chi);
                let fe = eval(&xe);
                simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
                continue;
            }
            if fr < simplex[n - 1].1 {
                simplex[n] = (xr, fr);
                continue;
            }
            // Contraction: outside if the reflection beats the worst vertex
            // (accepted if it is no worse than the reflection), else inside
            // (accepted if it beats the worst vertex).
            let outside = fr < simplex[n].1;
            let (xc, bound) = if outside {
                (trial(&centroid, &worst, rho * gamma), fr)
            } else {
                (trial(&centroid, &worst, -gamma), simplex[n].1)
            };
            let fc = eval(&xc);
            if (outside && fc <= bound) || (!outside && fc < bound) {
                simplex[n] = (xc, fc);
                continue;
            }
            // Shrink towards the best vertex.
            let x1 = simplex[0].0.clone();
            for (x, fx) in simplex.iter_mut().skip(1) {
                for (v, b) in x.iter_mut().zip(&x1) {
                    *v = b + sigma * (*v - b);
                }
                *fx = eval(x);
            }
        }
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        if simplex[0].1 < best_f {
            best_x = simplex[0].0.clone();
            best_f = simplex[0].1;
        }
        let improved = start_f - best_f > value_tol(best_f);
        let ended = converged || collapsed;
        if !ended || restarts >= opts.max_restarts || (restarts > 0 && !improved) {
            break;
        }
        restarts += 1;
    }
    Ok(NelderMeadResult {
        x: best_x,
        fx: best_f,
        iterations,
        evaluations,
        restarts,
        converged,
        collapsed,
    })
}

/// The Nelder–Mead options the customer models are fitted with: step 0.5,
/// `max_iter` iterations, relative value tolerance `tol` (absolute
/// `tol · 10⁻³`), `xtol = 10⁻⁹`, 5 restarts, adaptive coefficients.
pub(crate) fn fit_options(max_iter: usize, tol: f64) -> NelderMeadOptions {
    NelderMeadOptions {
        initial_step: 0.5,
        max_iter,
        ftol_abs: tol * 1e-3,
        ftol_rel: tol,
        xtol: 1e-9,
        max_restarts: 5,
        adaptive: true,
    }
}

/// Penalised maximum likelihood over the logarithms of `D` positive
/// parameters `θ`: minimises `−ℓ(θ)/n + penalizer · |θ|²` over `ln θ`, where
/// `log_likelihood(θ)` is the total log-likelihood `ℓ` of `n` observations.
///
/// `starts = (count, seed)`: the first start is `initial`, the others random
/// log-parameters in `[−2, 2]ᴰ` drawn with `seed` (a random start where the
/// objective is not finite is skipped). Returns the best run and its `θ`.
pub(crate) fn minimize_log_params<const D: usize>(
    opts: &NelderMeadOptions,
    penalizer: f64,
    initial: &[f64; D],
    (starts, seed): (usize, u64),
    n: usize,
    log_likelihood: impl Fn([f64; D]) -> f64,
) -> Result<(NelderMeadResult, [f64; D]), OptimError> {
    use rand::{Rng, SeedableRng};
    let n = n as f64;
    let objective = |phi: &[f64]| {
        let theta: [f64; D] = std::array::from_fn(|i| phi[i].exp());
        -log_likelihood(theta) / n + penalizer * theta.iter().map(|v| v * v).sum::<f64>()
    };
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut best: Option<NelderMeadResult> = None;
    for start in 0..starts {
        let x0: Vec<f64> = if start == 0 {
            initial.iter().map(|v| v.ln()).collect()
        } else {
            (0..D).map(|_| rng.gen_range(-2.0..2.0)).collect()
        };
        let res = match minimize_nelder_mead(objective, &x0, opts) {
            Ok(res) => res,
            Err(OptimError::NonFiniteStart { .. }) if start > 0 => continue,
            Err(e) => return Err(e),
        };
        if best.as_ref().is_none_or(|b| res.fx < b.fx) {
            best = Some(res);
        }
    }
    let best = best.expect("the first start always yields a result");
    let theta = std::array::from_fn(|i| best.x[i].exp());
    Ok((best, theta))
}

/// `base + coef · (base − from)`.
fn trial(base: &[f64], from: &[f64], coef: f64) -> Vec<f64> {
    base.iter()
        .zip(from)
        .map(|(b, d)| b + coef * (b - d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rosenbrock_and_friends() {
        let opts = NelderMeadOptions::default();
        let rosen = |x: &[f64]| {
            x.windows(2)
                .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                .sum::<f64>()
        };
        for x0 in [
            vec![-1.2, 1.0],
            vec![0.0, 0.0, 0.0, 0.0],
            vec![2.0, -1.0, 0.5],
        ] {
            let res = minimize_nelder_mead(rosen, &x0, &opts).unwrap();
            assert!(res.converged, "{res:?}");
            for v in &res.x {
                assert!((v - 1.0).abs() < 1e-5, "{res:?}");
            }
            assert!(res.fx < 1e-10);
            assert!(res.evaluations > res.iterations);
        }
        // One dimension.
        let res = minimize_nelder_mead(|x: &[f64]| (x[0] - 3.0).powi(2), &[0.0], &opts).unwrap();
        assert!((res.x[0] - 3.0).abs() < 1e-7 && res.converged);
    }

    /// An objective whose rounding noise (here 1e-9) is larger than the
    /// value tolerance: the simplex closes in on the minimum and collapses
    /// there; the search stops soon after instead of shrinking until
    /// `max_iter`, and says so.
    #[test]
    fn a_collapsed_simplex_ends_the_run() {
        let noisy = |x: &[f64]| {
            let q: f64 = x.iter().map(|v| (v - 1.0).powi(2)).sum();
            q + 1e-9 * (x.iter().sum::<f64>() * 1e12).sin()
        };
        let opts = NelderMeadOptions::default();
        let res = minimize_nelder_mead(noisy, &[3.0, -2.0], &opts).unwrap();
        assert!(res.collapsed && !res.converged, "{res:?}");
        assert!(res.iterations < opts.max_iter / 10, "{res:?}");
        for v in &res.x {
            assert!((v - 1.0).abs() < 1e-3, "{res:?}");
        }
        // Without the noise the same search converges.
        let clean = |x: &[f64]| x.iter().map(|v| (v - 1.0).powi(2)).sum::<f64>();
        let res = minimize_nelder_mead(clean, &[3.0, -2.0], &opts).unwrap();
        assert!(res.converged && !res.collapsed, "{res:?}");
    }

    #[test]
    fn nan_outside_the_domain_is_avoided() {
        // Minimum of x - ln x at x = 1; NaN for x <= 0.
        let f = |x: &[f64]| x[0] - x[0].ln();
        let opts = NelderMeadOptions {
            initial_step: 5.0,
            ..Default::default()
        };
        let res = minimize_nelder_mead(f, &[4.0], &opts).unwrap();
        assert!((res.x[0] - 1.0).abs() < 1e-6, "{res:?}");
    }

    #[test]
    fn iteration_budget_is_reported() {
        let opts = NelderMeadOptions {
            max_iter: 5,
            ..Default::default()
        };
        let res = minimize_nelder_mead(|x: &[f64]| x[0] * x[0] + x[1] * x[1], &[3.0, 4.0], &opts)
            .unwrap();
        assert!(!res.converged);
        assert_eq!(res.iterations, 5);
        assert!(res.fx < 25.0);
    }

    #[test]
    fn invalid_input_is_refused() {
        let f = |x: &[f64]| x[0];
        let opts = NelderMeadOptions::default();
        assert!(matches!(
            minimize_nelder_mead(f, &[], &opts),
            Err(OptimError::InvalidStart { .. })
        ));
        assert!(matches!(
            minimize_nelder_mead(f, &[f64::NAN], &opts),
            Err(OptimError::InvalidStart { .. })
        ));
        assert!(matches!(
            minimize_nelder_mead(|_: &[f64]| f64::NAN, &[1.0], &opts),
            Err(OptimError::NonFiniteStart { .. })
        ));
        let bad = NelderMeadOptions {
            initial_step: 0.0,
            ..Default::default()
        };
        let e = minimize_nelder_mead(f, &[1.0], &bad).unwrap_err();
        assert!(e.to_string().contains("initial_step"), "{e}");
        let bad = NelderMeadOptions {
            xtol: -1.0,
            ..Default::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn restarts_after_convergence() {
        // Himmelblau's function: four global minima, all with value 0.
        let f = |x: &[f64]| {
            let (a, b) = (x[0], x[1]);
            (a * a + b - 11.0).powi(2) + (a + b * b - 7.0).powi(2)
        };
        let res = minimize_nelder_mead(f, &[0.0, 0.0], &NelderMeadOptions::default()).unwrap();
        assert!(res.fx < 1e-12, "{res:?}");
        assert!(res.restarts >= 1);
    }

    proptest! {
        #[test]
        fn finds_the_minimum_of_shifted_quadratics(
            centre in proptest::collection::vec(-5.0f64..5.0, 1..6),
            scales in proptest::collection::vec(0.1f64..10.0, 6),
        ) {
            let c = centre.clone();
            let s = scales.clone();
            let f = move |x: &[f64]| x.iter().zip(&c).zip(&s).map(|((v, c), s)| s * (v - c).powi(2)).sum::<f64>();
            let x0 = vec![0.0; centre.len()];
            let res = minimize_nelder_mead(f, &x0, &NelderMeadOptions::default()).unwrap();
            prop_assert!(res.converged);
            for (v, c) in res.x.iter().zip(&centre) {
                prop_assert!((v - c).abs() < 1e-5, "{:?} vs {:?}", res.x, centre);
            }
        }
    }
}
