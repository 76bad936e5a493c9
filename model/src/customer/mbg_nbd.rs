//! The MBG/NBD model of repeat buying (Batislam, Denizel & Filiztekin 2007,
//! "Empirical validation and comparison of models for customer base
//! analysis", International Journal of Research in Marketing 24(3)).
//!
//! # Model
//! As BG/NBD (Poisson purchases at rate `λ ~ Gamma(r, α)`, drop-out with
//! probability `p ~ Beta(a, b)`), except that the customer may also drop out
//! right after her *first* purchase, at time 0. So a customer who never came
//! back may have left, and `P(alive)` is below 1 for `x = 0` — the BG/NBD
//! convention that such a customer is alive for sure is what makes BG/NBD's
//! P(alive) meaningless for the one-off buyers of a retail history.
//!
//! # Likelihood
//! `L = Γ(r+x) αʳ / Γ(r) · B(a, b+x+1)/B(a, b) · (α+T)^−(r+x) · [1 + D]` with
//! the death odds `D = a/(b+x) · ((α+T)/(α+t_x))^(r+x)` (for every `x`,
//! zero included); in logs, `ln(1 + D)` by log-sum-exp.
//!
//! # Predictions
//! * `P(alive | x, t_x, T) = 1 / (1 + D)`.
//! * Unconditional `E[X(t)] = b/(a−1) · [1 − (α/(α+t))ʳ ₂F₁(r, b+1; a+b; t/(α+t))]`.
//! * Conditional expected purchases in `(T, T+t]`:
//!   `E[Y(t) | x, t_x, T] = (a+b+x)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))] / (1 + D)`.
//!
//!   Both have a removable singularity at `a = 1`; there they are the mean
//!   of the values at `a = 1 ± 10⁻⁵` (as in [`super::bgnbd`]).

use super::bgnbd::expected_if_alive;
use super::repeat::{FitParams, Histories, RepeatModelError, around_a_one};
use crate::math::special::{hyp2f1_scaled, ln_gamma, log_add_exp, logistic};

const NAME: &str = "MBG/NBD";

/// Settings of the MBG/NBD fit; `initial` is `(r, α, a, b)`.
pub type MbgNbdParams = FitParams;

super::repeat::fitted_model!(
    /// A fitted (or given) MBG/NBD model.
    MbgNbd {
        /// Shape of the Gamma distribution of purchase rates.
        r,
        /// Rate of the Gamma distribution of purchase rates.
        alpha,
        /// First shape of the Beta distribution of drop-out probabilities.
        a,
        /// Second shape of the Beta distribution of drop-out probabilities.
        b,
    }
    /// Customers fitted on.
);

super::repeat::repeat_model!(MbgNbd(r, alpha, a, b), NAME, Histories::new, log_likelihood);

/// `ln D`, the log death odds (module docs).
fn ln_death_odds(r: f64, alpha: f64, a: f64, b: f64, x: f64, t_x: f64, t: f64) -> f64 {
    a.ln() - (b + x).ln() + (r + x) * ((alpha + t).ln() - (alpha + t_x).ln())
}

fn log_likelihood(h: &Histories, r: f64, alpha: f64, a: f64, b: f64) -> f64 {
    let ln_g_r = ln_gamma(r);
    let ln_g_ab = ln_gamma(a + b);
    let ln_g_b = ln_gamma(b);
    let r_ln_alpha = r * alpha.ln();
    h.sum(|x, t_x, t| {
        let beta_ratio = ln_g_ab + ln_gamma(b + x + 1.0) - ln_g_b - ln_gamma(a + b + x + 1.0);
        ln_gamma(r + x) - ln_g_r + r_ln_alpha + beta_ratio - (r + x) * (alpha + t).ln()
            + log_add_exp(0.0, ln_death_odds(r, alpha, a, b, x, t_x, t))
    })
}

impl MbgNbd {
    /// Probability that the customer is still alive at `T` (module docs).
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let z = ln_death_odds(self.r, self.alpha, self.a, self.b, x, t_x, t);
        logistic(-z)
    }

    /// Expected purchases of a newly acquired customer in `(0, t]`.
    pub fn expected_purchases_unconditional(&self, t: f64) -> Result<f64, RepeatModelError> {
        super::repeat::check_horizon(NAME, t)?;
        if t == 0.0 {
            return Ok(0.0);
        }
        let (r, alpha, b) = (self.r, self.alpha, self.b);
        let eval = |a: f64| -> Result<f64, RepeatModelError> {
            let (m, s) = hyp2f1_scaled(r, b + 1.0, a + b, t / (alpha + t))?;
            let h = m * (s + r * (alpha / (alpha + t)).ln()).exp();
            Ok(b / (a - 1.0) * (1.0 - h))
        };
        around_a_one(self.a, eval)
    }

    /// [`MbgNbd::expected_purchases`] for checked arguments and `t > 0`.
    fn conditional(&self, t: f64, x: f64, t_x: f64, big_t: f64) -> Result<f64, RepeatModelError> {
        let params = [self.r, self.alpha, self.a, self.b];
        let if_alive = expected_if_alive(params, 1.0, t, x, big_t)?;
        Ok(if_alive * self.p_alive(x, t_x, big_t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lifetimes' CDNOW fit (the brief's reference values).
    fn cdnow() -> MbgNbd {
        MbgNbd::new(0.5248, 6.183, 0.8914, 1.614).unwrap()
    }

    #[test]
    fn likelihood_matches_the_direct_formula() {
        let m = cdnow();
        let (r, al, a, b) = (m.r, m.alpha, m.a, m.b);
        let beta = |p: f64, q: f64| (ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)).exp();
        for &(x, t_x, t) in &[(0.0, 0.0, 38.86), (2.0, 30.43, 38.86), (5.0, 10.0, 20.0)] {
            let g = (ln_gamma(r + x) - ln_gamma(r)).exp() * al.powf(r);
            // The two routes to the data: alive at T, or dead after the last purchase.
            let alive = beta(a, b + x + 1.0) / beta(a, b) / (al + t).powf(r + x);
            let dead = beta(a + 1.0, b + x) / beta(a, b) / (al + t_x).powf(r + x);
            let want = (g * (alive + dead)).ln();
            let got = m.log_likelihood_of(&[(x, t_x, t)]).unwrap();
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn p_alive_edge_cases_and_monotonicity() {
        let m = cdnow();
        // x = 0: below 1 (may have left after the first purchase), and the
        // same at every T for t_x = T = 0... but falling as T grows.
        let p0 = m.p_alive(0.0, 0.0, 0.0);
        assert!((p0 - 1.0 / (1.0 + m.a / m.b)).abs() < 1e-15, "{p0}");
        let mut prev = p0;
        for t in [1.0, 10.0, 39.0, 100.0] {
            let p = m.p_alive(0.0, 0.0, t);
            assert!(p < prev, "{p} at T = {t}");
            prev = p;
        }
        // Recency = T: only the drop-out chance after the last purchase.
        let p = m.p_alive(3.0, 38.0, 38.0);
        assert!((p - 1.0 / (1.0 + m.a / (m.b + 3.0))).abs() < 1e-15, "{p}");
        // Rising in the recency.
        let mut prev = 0.0;
        for t_x in [1.0, 10.0, 20.0, 30.0, 38.0] {
            let p = m.p_alive(4.0, t_x, 38.86);
            assert!(p > prev, "{p} at t_x = {t_x}");
            prev = p;
        }
        // Extreme odds stay finite.
        let p = m.p_alive(500.0, 0.0, 1000.0);
        assert!((0.0..1e-100).contains(&p));
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
        // Small t: P(alive) · E[λ | alive] · t.
        let dt = 1e-5;
        let e = m.expected_purchases(dt, 3.0, 30.0, 38.86).unwrap();
        let approx = m.p_alive(3.0, 30.0, 38.86) * (m.r + 3.0) / (m.alpha + 38.86) * dt;
        assert!((e / approx - 1.0).abs() < 1e-4, "{e} vs {approx}");
        // Unconditional, small t: a newly acquired customer is alive with
        // probability b/(a+b) and buys at the mean rate r/α.
        let u = m.expected_purchases_unconditional(dt).unwrap();
        let approx = m.b / (m.a + m.b) * m.r / m.alpha * dt;
        assert!((u / approx - 1.0).abs() < 1e-4, "{u} vs {approx}");
        // Heavy buyers do not overflow.
        let e = m.expected_purchases(39.0, 300.0, 38.0, 38.86).unwrap();
        assert!(e.is_finite() && e > 50.0, "{e}");
        // a = 1 is continuous.
        let at = |a: f64| {
            MbgNbd::new(0.5, 6.0, a, 1.6)
                .unwrap()
                .expected_purchases(39.0, 2.0, 30.0, 38.0)
                .unwrap()
        };
        let (c0, c1, c2) = (at(1.0), at(1.0 + 1e-3), at(1.0 - 1e-3));
        assert!((c0 - 0.5 * (c1 + c2)).abs() < 1e-4 * c0, "{c0} {c1} {c2}");
        assert!(m.expected_purchases(-1.0, 0.0, 0.0, 1.0).is_err());
    }

    #[test]
    fn invalid_input() {
        let p = MbgNbdParams::default();
        assert!(matches!(fit(&p, &[]), Err(RepeatModelError::NoData { .. })));
        assert!(fit(&p, &[(0.5, 0.0, 1.0)]).is_err());
        assert!(MbgNbd::new(1.0, 1.0, f64::NAN, 1.0).is_err());
    }
}
