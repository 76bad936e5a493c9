//! The Pareto/NBD model of repeat buying (Schmittlein, Morrison & Colombo
//! 1987, "Counting your customers: who are they and what will they do
//! next?", Management Science 33(1)); likelihood and predictions in the form
//! of Fader & Hardie's note "A note on deriving the Pareto/NBD model and
//! related expressions" (2005).
//!
//! # Model
//! While alive, a customer buys as a Poisson process with rate `λ`; her
//! lifetime is exponential with rate `μ`, so she may drop out at any moment
//! (in BG/NBD only right after a purchase). Across customers
//! `λ ~ Gamma(r, α)` and `μ ~ Gamma(s, β)` (shapes `r`, `s`, rates `α`, `β`),
//! independent. Data: `(x, t_x, T)` as in [`super::bgnbd`].
//!
//! # Likelihood
//! `L = Γ(r+x) αʳ βˢ / Γ(r) · [ (α+T)^−(r+x) (β+T)^−s + s/(r+s+x) · A₀ ]`
//! with `A₀ = F(t_x) − F(T)` and, writing `m = r+s+x`,
//! * for `α ≥ β`: `F(t) = ₂F₁(m, s+1; m+1; (α−β)/(α+t)) / (α+t)^m`,
//! * for `α < β`: `F(t) = ₂F₁(m, r+x; m+1; (β−α)/(β+t)) / (β+t)^m`.
//!
//! Taking the larger of `α` and `β` in the denominator keeps the argument of
//! `₂F₁` in `[0, 1)`, where its series converges (slowly only when the two
//! rates differ by orders of magnitude and `t` is small). Everything is
//! evaluated in logs: `ln F(t)` from the scaled series
//! ([`crate::math::special::hyp2f1_scaled`], no overflow for heavy buyers),
//! `ln A₀ = ln F(t_x) + ln(1 − e^{ln F(T) − ln F(t_x)})` with `expm1` (no
//! loss when `t_x` is close to `T`; `A₀ = 0` when `t_x = T`), and the
//! bracket by log-sum-exp.
//!
//! `₂F₁(m, b; m+1; z)` is summed in Euler's form
//! `(1−z)^(1−b) ₂F₁(1, m+1−b; m+1; z)`: its term ratios
//! `z (m+1−b+k)/(m+1+k)` are all below `z`, so the terms fall from the
//! first (the plain series first climbs for `max(m, b)` terms, hundreds for
//! heavy buyers), and `m+1−b` is `r+x` or `s+1`, positive, so no term
//! cancels another. From `z = ½` on, [`crate::math::special::ln_hyp2f1`] takes
//! Gauss's continued fraction for this `a = 1` form instead, which settles
//! in a few dozen levels. The series would need up to about `37/(1 − z)` terms, which
//! grows without bound as the two rates drift apart
//! (`min(α, β)/max(α, β) → 0`) for customers with small `t`, and the
//! likelihood is summed over thousands of customers at every step of the
//! fit. Arguments above `0.95` are therefore not evaluated: the likelihood is
//! NaN there, which the optimiser treats as `+∞`, so a fit stays where every
//! customer's `z ≤ 0.95` (at `t = 0`: the smaller rate at least a twentieth
//! of the larger one). On CDNOW the rates are 10.6 and 11.7; on a history
//! where nobody seems to leave the optimum may lie beyond, and the fit then
//! ends on that boundary (a degenerate fit anyway, see [`super::select`]).
//! P(alive) is NaN beyond it too, and the figures that need it are reported
//! as missing. (A connection formula at `1 − z` would lift the limit.)

//! # Predictions
//! * `P(alive | x, t_x, T)` is the share of the first term in the bracket:
//!   `1 / (1 + s/(r+s+x) · (α+T)^(r+x) (β+T)^s · A₀)`. It is below 1 even
//!   for `x = 0` (unlike BG/NBD): a customer silent since her first purchase
//!   may have left.
//! * Unconditional `E[X(t)] = rβ/(α(s−1)) · [1 − (β/(β+t))^(s−1)]`.
//! * Conditional expected purchases in `(T, T+t]`:
//!   `E[Y(t) | x, t_x, T] = (r+x)(β+T)/((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)] · P(alive)`.
//!
//!   The factor `[1 − q^(s−1)]/(s−1)` is computed as `−expm1((s−1) ln q)/(s−1)`,
//!   and as its limit `−ln q` at `s = 1`: no removable singularity to step around.

use super::repeat::{FitParams, Histories, RepeatModelError, check_horizon};
use crate::math::special::{ln_gamma, ln_hyp2f1, log_add_exp, logistic};

const NAME: &str = "Pareto/NBD";

/// The largest argument of `₂F₁` evaluated (module docs).
const MAX_Z: f64 = 0.95;

/// Settings of the Pareto/NBD fit; `initial` is `(r, α, s, β)`.
pub type ParetoNbdParams = FitParams;

super::repeat::fitted_model!(
    /// A fitted (or given) Pareto/NBD model.
    ParetoNbd {
        /// Shape of the Gamma distribution of purchase rates.
        r,
        /// Rate of the Gamma distribution of purchase rates.
        alpha,
        /// Shape of the Gamma distribution of drop-out rates.
        s,
        /// Rate of the Gamma distribution of drop-out rates.
        beta,
    }
    /// Customers fitted on.
);

super::repeat::repeat_model!(
    ParetoNbd(r, alpha, s, beta),
    NAME,
    Histories::new,
    log_likelihood
);

/// `ln Γ(r+x) − ln Γ(r) + r ln α + s ln β`, and the two log terms of the
/// bracket (module docs): `(ln first, ln(s/(r+s+x) · A₀))`. NaN or `−∞`
/// where the parameters are degenerate or `₂F₁` fails.
fn terms(r: f64, alpha: f64, s: f64, beta: f64, x: f64, t_x: f64, t: f64) -> (f64, f64, f64) {
    let rx = r + x;
    let m = rx + s;
    let front = ln_gamma(rx) - ln_gamma(r) + r * alpha.ln() + s * beta.ln();
    let first = -rx * (alpha + t).ln() - s * (beta + t).ln();
    let (big, b2) = if alpha >= beta {
        (alpha, s + 1.0)
    } else {
        (beta, rx)
    };
    let diff = (alpha - beta).abs();
    let ln_f = |u: f64| -> f64 {
        let z = diff / (big + u);
        if z > MAX_Z {
            return f64::NAN;
        }
        // Euler's transformation: ₂F₁(m, b; m+1; z) = (1−z)^(1−b) ₂F₁(1, m+1−b; m+1; z),
        // whose terms all fall from the first (module docs).
        match ln_hyp2f1(1.0, m + 1.0 - b2, m + 1.0, z) {
            Ok(v) => v + (1.0 - b2) * (-z).ln_1p() - m * (big + u).ln(),
            Err(_) => f64::NAN,
        }
    };
    let ln_a0 = if t_x < t {
        let (hi, lo) = (ln_f(t_x), ln_f(t));
        let d = lo - hi;
        if d.is_nan() {
            f64::NAN
        } else if d >= 0.0 {
            // Equal to rounding: A₀ is zero as far as f64 can tell.
            f64::NEG_INFINITY
        } else {
            hi + (-d.exp_m1()).ln()
        }
    } else {
        f64::NEG_INFINITY
    };
    (front, first, (s / m).ln() + ln_a0)
}

fn ln_likelihood_one(r: f64, alpha: f64, s: f64, beta: f64, x: f64, t_x: f64, t: f64) -> f64 {
    let (front, first, second) = terms(r, alpha, s, beta, x, t_x, t);
    front + log_add_exp(first, second)
}

fn log_likelihood(h: &Histories, r: f64, alpha: f64, s: f64, beta: f64) -> f64 {
    h.sum(|x, t_x, t| ln_likelihood_one(r, alpha, s, beta, x, t_x, t))
}

impl ParetoNbd {
    /// Probability that the customer is still alive at `T` (module docs);
    /// NaN if `₂F₁` cannot be evaluated.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let (_, first, second) = terms(self.r, self.alpha, self.s, self.beta, x, t_x, t);
        if second == f64::NEG_INFINITY {
            return 1.0;
        }
        // 1 / (1 + e^(second − first)).
        logistic(first - second)
    }

    /// `[1 − q^(s−1)] / (s−1)` for `ln q = ln_q ≤ 0` (module docs).
    fn survival_factor(&self, ln_q: f64) -> f64 {
        let e = self.s - 1.0;
        if e.abs() < 1e-9 {
            -ln_q
        } else {
            -(e * ln_q).exp_m1() / e
        }
    }

    /// Expected purchases of a newly acquired customer in `(0, t]`.
    pub fn expected_purchases_unconditional(&self, t: f64) -> Result<f64, RepeatModelError> {
        check_horizon(NAME, t)?;
        let ln_q = (self.beta / (self.beta + t)).ln();
        Ok(self.r * self.beta / self.alpha * self.survival_factor(ln_q))
    }

    /// [`ParetoNbd::expected_purchases`] for checked arguments and `t > 0`.
    fn conditional(&self, t: f64, x: f64, t_x: f64, big_t: f64) -> Result<f64, RepeatModelError> {
        let ln_q = ((self.beta + big_t) / (self.beta + big_t + t)).ln();
        let rate = (self.r + x) * (self.beta + big_t) / (self.alpha + big_t);
        Ok(rate * self.survival_factor(ln_q) * self.p_alive(x, t_x, big_t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::special::hyp2f1;

    /// The published CDNOW estimates.
    fn cdnow() -> ParetoNbd {
        ParetoNbd::new(0.5533, 10.5776, 0.6061, 11.6687).unwrap()
    }

    /// The likelihood by the direct formula (no logs), both orderings of α, β.
    fn direct(m: &ParetoNbd, x: f64, t_x: f64, t: f64) -> f64 {
        let (r, al, s, be) = (m.r, m.alpha, m.s, m.beta);
        let mm = r + s + x;
        let f = |u: f64| {
            if al >= be {
                hyp2f1(mm, s + 1.0, mm + 1.0, (al - be) / (al + u)).unwrap() / (al + u).powf(mm)
            } else {
                hyp2f1(mm, r + x, mm + 1.0, (be - al) / (be + u)).unwrap() / (be + u).powf(mm)
            }
        };
        let g = (ln_gamma(r + x) - ln_gamma(r)).exp() * al.powf(r) * be.powf(s);
        let first = 1.0 / ((al + t).powf(r + x) * (be + t).powf(s));
        (g * (first + s / mm * (f(t_x) - f(t)))).ln()
    }

    #[test]
    fn likelihood_matches_the_direct_formula_in_both_orderings() {
        for m in [cdnow(), ParetoNbd::new(0.5, 12.0, 0.7, 3.0).unwrap()] {
            for &(x, t_x, t) in &[(0.0, 0.0, 38.86), (2.0, 30.43, 38.86), (5.0, 10.0, 20.0)] {
                let want = direct(&m, x, t_x, t);
                let got = m.log_likelihood_of(&[(x, t_x, t)]).unwrap();
                assert!(
                    (got - want).abs() < 1e-10,
                    "{m:?} {x} {t_x} {t}: {got} vs {want}"
                );
            }
        }
    }

    /// With `α = β` the `₂F₁` terms are 1: compare with the closed form.
    #[test]
    fn equal_rates_reduce_to_powers() {
        let m = ParetoNbd::new(0.5, 10.0, 0.6, 10.0).unwrap();
        let got = m.log_likelihood_of(&[(3.0, 12.0, 30.0)]).unwrap();
        assert!((got - direct(&m, 3.0, 12.0, 30.0)).abs() < 1e-12);
    }

    /// The likelihood is continuous across `α = β`, where the formula switches.
    #[test]
    fn likelihood_is_continuous_across_alpha_equal_beta() {
        let at = |alpha: f64| {
            ParetoNbd::new(0.5, alpha, 0.6, 10.0)
                .unwrap()
                .log_likelihood_of(&[(3.0, 12.0, 30.0), (0.0, 0.0, 30.0)])
                .unwrap()
        };
        let (lo, mid, hi) = (at(10.0 - 1e-7), at(10.0), at(10.0 + 1e-7));
        assert!(
            (lo - mid).abs() < 1e-6 && (hi - mid).abs() < 1e-6,
            "{lo} {mid} {hi}"
        );
    }

    #[test]
    fn heavy_buyers_and_large_times_stay_finite() {
        let m = cdnow();
        let ll = m
            .log_likelihood_of(&[(300.0, 100.0, 1000.0), (300.0, 999.9, 1000.0)])
            .unwrap();
        assert!(ll.is_finite(), "{ll}");
        let p = m.p_alive(300.0, 100.0, 1000.0);
        assert!((0.0..1e-10).contains(&p), "{p}");
        // Rates 15-fold apart: the series still converges.
        let far = ParetoNbd::new(0.5, 15.0, 0.6, 1.0).unwrap();
        let ll = far.log_likelihood_of(&[(1.0, 0.5, 10.0)]).unwrap();
        assert!(ll.is_finite(), "{ll}");
        // 10,000-fold: beyond the evaluated range (module docs), NaN, no hang.
        let too_far = ParetoNbd::new(0.5, 1e4, 0.6, 1.0).unwrap();
        assert!(
            too_far
                .log_likelihood_of(&[(1.0, 0.0, 10.0)])
                .unwrap()
                .is_nan()
        );
        assert!(too_far.p_alive(1.0, 0.0, 10.0).is_nan());
        assert!(
            far.log_likelihood_of(&[(1.0, 0.5, 10.0)])
                .unwrap()
                .is_finite()
        );
    }

    #[test]
    fn p_alive_edge_cases_and_monotonicity() {
        let m = cdnow();
        // Bought at the end of the window: nothing speaks for drop-out.
        assert_eq!(m.p_alive(3.0, 38.0, 38.0), 1.0);
        assert_eq!(m.p_alive(0.0, 0.0, 0.0), 1.0);
        // No repeat purchase: alive with probability below 1, falling with T.
        let mut prev = 1.0;
        for t in [1.0, 10.0, 39.0, 100.0] {
            let p = m.p_alive(0.0, 0.0, t);
            assert!(p < prev && p > 0.0, "{p} at T = {t}");
            prev = p;
        }
        // Falling in the silence T − t_x, rising in the recency t_x.
        let mut prev = 0.0;
        for t_x in [1.0, 10.0, 20.0, 30.0, 38.0] {
            let p = m.p_alive(4.0, t_x, 38.86);
            assert!(p > prev, "{p} at t_x = {t_x}");
            prev = p;
        }
        // For a fixed silence, more purchases make a long silence more telling.
        assert!(m.p_alive(10.0, 20.0, 38.86) < m.p_alive(2.0, 20.0, 38.86));
    }

    #[test]
    fn expectations_behave() {
        let m = cdnow();
        let mut prev = 0.0;
        for t in [0.0, 1.0, 10.0, 39.0, 100.0] {
            let e = m.expected_purchases(t, 2.0, 30.43, 38.86).unwrap();
            assert!(e >= prev, "{e} < {prev} at t = {t}");
            prev = e;
        }
        // A new customer: conditional = unconditional.
        let c = m.expected_purchases(39.0, 0.0, 0.0, 0.0).unwrap();
        let u = m.expected_purchases_unconditional(39.0).unwrap();
        assert!((c - u).abs() < 1e-12, "{c} vs {u}");
        // Small t: P(alive) · E[λ | alive] · t.
        let dt = 1e-5;
        let e = m.expected_purchases(dt, 3.0, 30.0, 38.86).unwrap();
        let approx = m.p_alive(3.0, 30.0, 38.86) * (m.r + 3.0) / (m.alpha + 38.86) * dt;
        assert!((e / approx - 1.0).abs() < 1e-4, "{e} vs {approx}");
        // s = 1 is continuous.
        let at = |s: f64| {
            ParetoNbd::new(0.5, 10.0, s, 11.0)
                .unwrap()
                .expected_purchases(39.0, 2.0, 30.0, 38.0)
                .unwrap()
        };
        assert!((at(1.0) - 0.5 * (at(1.0 + 1e-6) + at(1.0 - 1e-6))).abs() < 1e-6);
        assert!(m.expected_purchases(-1.0, 0.0, 0.0, 1.0).is_err());
        assert!(m.expected_purchases(1.0, 2.0, 5.0, 4.0).is_err());
    }

    #[test]
    fn invalid_input() {
        let p = ParetoNbdParams::default();
        assert!(matches!(fit(&p, &[]), Err(RepeatModelError::NoData { .. })));
        assert!(fit(&p, &[(1.0, 2.0, 1.0)]).is_err());
        assert!(ParetoNbd::new(0.0, 1.0, 1.0, 1.0).is_err());
        let stored = r#"{"r":0.55,"alpha":10.6,"s":0.61,"beta":11.7,"log_likelihood":-9595.0,
            "iterations":400,"converged":true,"n_customers":2357}"#;
        let m: ParetoNbd = serde_json::from_str(stored).unwrap();
        assert!(!m.collapsed);
    }
}
