//! The Gamma-Gamma model of spend per transaction (Colombo & Jiang 1999;
//! Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves for
//! customer base analysis"; Fader & Hardie 2013, "The Gamma-Gamma model of
//! monetary value"), and customer lifetime value combined with [`BgNbd`].
//!
//! # Model
//! A customer's transaction values `zᵢ` are i.i.d. `Gamma(p, ν)` (shape `p`,
//! rate `ν`), so their mean is `p/ν`; across customers `ν ~ Gamma(q, γ)`.
//! Spend is assumed independent of the transaction process. A customer is
//! summarised by `x` repeat transactions with mean value `m̄` (see
//! [`super::summary`]; the first transaction is excluded).
//!
//! # Likelihood
//! `f(m̄ | p, q, γ; x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q · m̄^(px−1) · x^(px) / (γ + x m̄)^(px+q)`,
//! so
//! `ln f = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m̄ + px ln x − (px+q) ln(γ + x m̄)`.
//! [`GammaGammaParams::fit`] minimises `−(1/n) Σ ln fᵢ + penalizer · (p² + q² + γ²)`
//! over `(ln p, ln q, ln γ)` with Nelder–Mead, on the customers with `x > 0`.
//! (`γ` is called `v` in the fields, as in most software.)
//!
//! # Expected spend
//! `E[M | p, q, γ, m̄, x] = (γ + x m̄) p / (px + q − 1)
//!  = (q−1)/(px+q−1) · γp/(q−1) + px/(px+q−1) · m̄`:
//! a weighted average of the population mean `γp/(q−1)` and the customer's
//! own mean, finite when `px + q > 1` (for `x = 0`, `q > 1`).
//!
//! # Customer lifetime value
//! [`GammaGamma::clv`] follows the usual discrete approach: for months
//! `m = 1..H`, the expected purchases in month `m` are
//! `E[Y(m·L)] − E[Y((m−1)·L)]` from the BG/NBD conditional expectation, with
//! `L` one month in the BG/NBD's time unit (`days_per_month` days, default
//! 365.25/12); each month's purchases times the expected spend times `margin`
//! are discounted by `(1 + d)^(−m/12)` for an annual rate `d`:
//! `CLV = Σ_m margin · E[M] · (E[Y(mL)] − E[Y((m−1)L)]) / (1+d)^(m/12)`.

use super::bgnbd::BgNbd;
use super::repeat::{check_fit_settings, positive_params};
use super::summary::TimeUnit;
use crate::math::optim::{OptimError, fit_options, minimize_log_params};
use crate::math::special::ln_gamma;
use crate::setting::InvalidSetting;
use serde::{Deserialize, Serialize};

/// Settings of the Gamma-Gamma fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GammaGammaParams {
    /// L2 penalty on `(p, q, γ)` added to the mean negative log-likelihood.
    pub penalizer: f64,
    /// Nelder–Mead iterations.
    pub max_iter: usize,
    /// Relative tolerance on the objective.
    pub tol: f64,
    /// Starting point `(p, q, γ)`.
    pub initial: [f64; 3],
}

impl Default for GammaGammaParams {
    /// No penalty, 10,000 iterations, `tol = 1e-12`, start at `(1, 1, 1)`.
    fn default() -> Self {
        GammaGammaParams {
            penalizer: 0.0,
            max_iter: 10_000,
            tol: 1e-12,
            initial: [1.0; 3],
        }
    }
}

/// Why the Gamma-Gamma model could not be fitted or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GammaGammaError {
    /// A setting or model parameter is out of range.
    #[error("invalid Gamma-Gamma parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// No customer with a repeat purchase.
    #[error("no customer with x > 0 to fit the Gamma-Gamma model on")]
    NoData,
    /// A customer's `(x, m̄)` cannot be used.
    #[error("customer #{index} has (x, mean spend) = ({x}, {monetary}): {reason}")]
    InvalidCustomer {
        index: usize,
        x: f64,
        monetary: f64,
        reason: &'static str,
    },
    /// The expected spend is infinite (`px + q ≤ 1`).
    #[error("the expected spend is infinite for x = {x}: p x + q = {pxq} <= 1")]
    InfiniteMean { x: f64, pxq: f64 },
    /// The optimiser refused to start.
    #[error("optimiser: {0}")]
    Optim(OptimError),
    /// The repeat-buying model (the BG/NBD part of a CLV) failed.
    #[error("repeat-buying model: {0}")]
    Repeat(super::repeat::RepeatModelError),
}

crate::error_from!(GammaGammaError { Optim(OptimError), Repeat(super::repeat::RepeatModelError) });
crate::setting::invalid_setting_from!(GammaGammaError);

super::repeat::fitted_model!(
    /// A fitted (or given) Gamma-Gamma model.
    GammaGamma {
        /// Shape of the per-transaction spend distribution.
        p,
        /// Shape of the Gamma distribution of the spend rate `ν`.
        q,
        /// Rate `γ` of the Gamma distribution of `ν`.
        v,
    }
    /// Customers fitted on (those with `x > 0`).
);

/// Settings of [`GammaGamma::clv`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClvParams {
    /// Months to sum over.
    pub horizon_months: u32,
    /// Annual discount rate `d` (0.1 = 10 %).
    pub discount_rate_annual: f64,
    /// The time unit the BG/NBD model was fitted in.
    pub time_unit: TimeUnit,
    /// Length of a month in days.
    pub days_per_month: f64,
    /// Profit margin applied to spend (1 = revenue).
    pub margin: f64,
}

impl Default for ClvParams {
    /// 12 months, 10 % a year, weeks, 365.25/12 days a month, margin 1.
    fn default() -> Self {
        ClvParams {
            horizon_months: 12,
            discount_rate_annual: 0.10,
            time_unit: TimeUnit::Weeks,
            days_per_month: 365.25 / 12.0,
            margin: 1.0,
        }
    }
}

impl ClvParams {
    /// Checks every setting.
    pub fn check(&self) -> Result<(), GammaGammaError> {
        let bad = |name, value: f64, reason| Err(InvalidSetting::new(name, value, reason).into());
        if !(self.discount_rate_annual.is_finite() && self.discount_rate_annual > -1.0) {
            return bad(
                "discount_rate_annual",
                self.discount_rate_annual,
                "must be finite and above -1",
            );
        }
        positive_params(&[("days_per_month", self.days_per_month)])?;
        if !self.margin.is_finite() {
            return bad("margin", self.margin, "must be finite");
        }
        Ok(())
    }
}

fn check_customer(index: usize, x: f64, monetary: f64) -> Result<(), GammaGammaError> {
    let bad = |reason| {
        Err(GammaGammaError::InvalidCustomer {
            index,
            x,
            monetary,
            reason,
        })
    };
    if !(x.is_finite() && monetary.is_finite()) {
        return bad("values must be finite");
    }
    if x < 0.0 || x.fract() != 0.0 {
        return bad("x must be a non-negative whole number");
    }
    if x > 0.0 && monetary <= 0.0 {
        return bad("the mean spend of a repeat customer must be positive");
    }
    Ok(())
}

impl GammaGammaParams {
    /// Checks every setting.
    pub fn check(&self) -> Result<(), GammaGammaError> {
        Ok(check_fit_settings(
            self.penalizer,
            self.max_iter,
            self.tol,
            &self.initial,
        )?)
    }

    /// Fits the model to `(x, m̄)` per customer. Customers with `x = 0` are
    /// skipped (they carry no spend information under the convention that the
    /// first transaction is excluded); a repeat customer with `m̄ ≤ 0` is an
    /// error (filter such customers out first).
    pub fn fit(&self, data: &[(f64, f64)]) -> Result<GammaGamma, GammaGammaError> {
        self.check()?;
        for (i, &(x, m)) in data.iter().enumerate() {
            check_customer(i, x, m)?;
        }
        let used: Vec<(f64, f64)> = data.iter().copied().filter(|d| d.0 > 0.0).collect();
        if used.is_empty() {
            return Err(GammaGammaError::NoData);
        }
        let ll = |[p, q, v]: [f64; 3]| log_likelihood(&used, p, q, v);
        let opts = fit_options(self.max_iter, self.tol);
        let (res, [p, q, v]) =
            minimize_log_params(&opts, self.penalizer, &self.initial, (1, 0), used.len(), ll)?;
        Ok(
            GammaGamma::unfitted(p, q, v).with_fit(
                log_likelihood(&used, p, q, v),
                &res,
                used.len(),
            ),
        )
    }
}

/// `Σ ln f(m̄ᵢ | p, q, γ; xᵢ)` over customers with `x > 0` (module docs).
fn log_likelihood(data: &[(f64, f64)], p: f64, q: f64, v: f64) -> f64 {
    let base = q * v.ln() - ln_gamma(q);
    data.iter()
        .map(|&(x, m)| {
            let px = p * x;
            ln_gamma(px + q) - ln_gamma(px) + base + (px - 1.0) * m.ln() + px * x.ln()
                - (px + q) * (v + x * m).ln()
        })
        .sum()
}

impl GammaGamma {
    /// A model with given parameters.
    pub fn new(p: f64, q: f64, v: f64) -> Result<Self, GammaGammaError> {
        positive_params(&[("p", p), ("q", q), ("v", v)])?;
        Ok(GammaGamma::unfitted(p, q, v))
    }

    /// Total log-likelihood of `(x, m̄)` data (customers with `x = 0` skipped).
    pub fn log_likelihood_of(&self, data: &[(f64, f64)]) -> Result<f64, GammaGammaError> {
        for (i, &(x, m)) in data.iter().enumerate() {
            check_customer(i, x, m)?;
        }
        let used: Vec<(f64, f64)> = data.iter().copied().filter(|d| d.0 > 0.0).collect();
        Ok(log_likelihood(&used, self.p, self.q, self.v))
    }

    /// The population mean spend per transaction, `γp/(q−1)` (needs `q > 1`).
    pub fn population_mean_spend(&self) -> Result<f64, GammaGammaError> {
        self.conditional_expected_average_profit(0.0, 0.0)
    }

    /// `E[M | x, m̄] = (γ + x m̄) p / (px + q − 1)` (module docs); `m̄` is
    /// ignored when `x = 0`.
    pub fn conditional_expected_average_profit(
        &self,
        x: f64,
        monetary: f64,
    ) -> Result<f64, GammaGammaError> {
        check_customer(0, x, monetary)?;
        let pxq = self.p * x + self.q;
        if pxq <= 1.0 {
            return Err(GammaGammaError::InfiniteMean { x, pxq });
        }
        let m = if x > 0.0 { monetary } else { 0.0 };
        Ok((self.v + x * m) * self.p / (pxq - 1.0))
    }

    /// Discounted customer lifetime value over the next
    /// `params.horizon_months` months for a customer with BG/NBD history
    /// `(x, t_x, T)` (in `params.time_unit`) and mean repeat spend `m̄`
    /// (module docs).
    pub fn clv(
        &self,
        bgnbd: &BgNbd,
        (x, t_x, big_t): (f64, f64, f64),
        monetary: f64,
        params: &ClvParams,
    ) -> Result<f64, GammaGammaError> {
        let spend = self.conditional_expected_average_profit(x, monetary)?;
        discounted_value(bgnbd, (x, t_x, big_t), spend, params)
    }
}

/// `Σ_m margin · spend · (E[Y(mL)] − E[Y((m−1)L)]) / (1+d)^(m/12)`: the
/// discounted value of a customer's expected purchases over the CLV horizon
/// at `spend` per purchase (module docs). [`GammaGamma::clv`] with the
/// Gamma-Gamma expected spend; callers with another spend estimate (e.g. the
/// population mean for a repeat customer without priced purchases) use this.
pub fn discounted_value(
    bgnbd: &BgNbd,
    (x, t_x, big_t): (f64, f64, f64),
    spend: f64,
    params: &ClvParams,
) -> Result<f64, GammaGammaError> {
    discounted_value_with(
        |t| Ok(bgnbd.expected_purchases(t, x, t_x, big_t)?),
        spend,
        params,
    )
}

/// [`discounted_value`] with the expected purchases in `(T, T + t]` given by
/// `cumulative(t)` (`t` in `params.time_unit`): any repeat-buying model.
pub fn discounted_value_with(
    cumulative: impl Fn(f64) -> Result<f64, GammaGammaError>,
    spend: f64,
    params: &ClvParams,
) -> Result<f64, GammaGammaError> {
    params.check()?;
    let month = params.time_unit.from_days(params.days_per_month);
    let mut prev = 0.0;
    let mut total = 0.0;
    for m in 1..=params.horizon_months {
        let cum = cumulative(f64::from(m) * month)?;
        let discount = (1.0 + params.discount_rate_annual).powf(f64::from(m) / 12.0);
        total += params.margin * spend * (cum - prev) / discount;
        prev = cum;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn gamma(rng: &mut Xoshiro256PlusPlus, shape: f64) -> f64 {
        // Marsaglia–Tsang, boosted for shape < 1.
        let (k, boost) = if shape < 1.0 {
            (
                shape + 1.0,
                rng.gen_range(f64::EPSILON..1.0).powf(1.0 / shape),
            )
        } else {
            (shape, 1.0)
        };
        let d = k - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.r#gen());
            let n = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let v = (1.0 + c * n).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            if u.ln() < 0.5 * n * n + d - d * v + d * v.ln() {
                return d * v * boost;
            }
        }
    }

    /// A fit stored before `collapsed` existed still loads (as not collapsed).
    #[test]
    fn a_stored_fit_without_collapsed_loads() {
        let stored = r#"{"p":6.25,"q":3.74,"v":15.45,"log_likelihood":-4055.9,
            "iterations":312,"converged":true,"n_customers":946}"#;
        let fit: GammaGamma = serde_json::from_str(stored).unwrap();
        assert!(fit.converged && !fit.collapsed);
    }

    #[test]
    fn recovers_simulated_parameters() {
        let (p, q, v) = (6.0, 4.0, 15.0);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let mut data = vec![(0.0, 0.0)];
        for _ in 0..20_000 {
            let nu = gamma(&mut rng, q) / v;
            let x = rng.gen_range(1..8);
            let mean = (0..x).map(|_| gamma(&mut rng, p) / nu).sum::<f64>() / f64::from(x);
            data.push((f64::from(x), mean));
        }
        let fit = GammaGammaParams::default().fit(&data).unwrap();
        assert!(fit.converged);
        assert_eq!(fit.n_customers, 20_000);
        for (got, want) in [(fit.p, p), (fit.q, q), (fit.v, v)] {
            assert!((got / want - 1.0).abs() < 0.1, "{fit:?}");
        }
    }

    #[test]
    fn likelihood_matches_the_density() {
        // For x = 1 the density of m̄ is the Gamma–Gamma compound:
        // ∫ Gamma(m | p, ν) Gamma(ν | q, γ) dν; check by numerical integration.
        let (p, q, v, m) = (2.0, 3.0, 10.0, 4.0);
        let model = GammaGamma::new(p, q, v).unwrap();
        let got = model.log_likelihood_of(&[(1.0, m)]).unwrap().exp();
        let mut want = 0.0;
        let h = 1e-4;
        let mut nu: f64 = h / 2.0;
        while nu < 5.0 {
            let g1 = (p * nu.ln() + (p - 1.0) * m.ln() - nu * m - ln_gamma(p)).exp();
            let g2 = (q * v.ln() + (q - 1.0) * nu.ln() - v * nu - ln_gamma(q)).exp();
            want += g1 * g2 * h;
            nu += h;
        }
        assert!((got / want - 1.0).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn expected_spend() {
        let m = GammaGamma::new(6.25, 3.74, 15.45).unwrap();
        let pop = m.population_mean_spend().unwrap();
        assert!((pop - 15.45 * 6.25 / 2.74).abs() < 1e-12);
        // Shrinks the customer's own mean towards the population mean.
        let e = m.conditional_expected_average_profit(2.0, 100.0).unwrap();
        assert!(pop < e && e < 100.0);
        let e_many = m.conditional_expected_average_profit(50.0, 100.0).unwrap();
        assert!(e < e_many && e_many < 100.0);
        assert_eq!(
            m.conditional_expected_average_profit(0.0, 123.0).unwrap(),
            pop
        );
        let heavy_tail = GammaGamma::new(1.0, 0.5, 1.0).unwrap();
        assert!(matches!(
            heavy_tail.population_mean_spend(),
            Err(GammaGammaError::InfiniteMean { .. })
        ));
        assert!(m.conditional_expected_average_profit(2.0, -1.0).is_err());
    }

    #[test]
    fn clv_sums_discounted_monthly_purchases() {
        let gg = GammaGamma::new(6.25, 3.74, 15.45).unwrap();
        let bg = BgNbd::new(0.2426, 4.4135, 0.7929, 2.4258).unwrap();
        let customer = (2.0, 30.43, 38.86);
        let undiscounted = ClvParams {
            discount_rate_annual: 0.0,
            ..Default::default()
        };
        let clv0 = gg.clv(&bg, customer, 22.35, &undiscounted).unwrap();
        let months = 12.0 * (365.25 / 12.0) / 7.0;
        let want = gg.conditional_expected_average_profit(2.0, 22.35).unwrap()
            * bg.expected_purchases(months, 2.0, 30.43, 38.86).unwrap();
        assert!((clv0 - want).abs() < 1e-9 * want, "{clv0} vs {want}");
        let clv = gg.clv(&bg, customer, 22.35, &ClvParams::default()).unwrap();
        assert!(clv < clv0 && clv > clv0 / 1.1, "{clv} vs {clv0}");
        let half = gg
            .clv(
                &bg,
                customer,
                22.35,
                &ClvParams {
                    margin: 0.5,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!((half - 0.5 * clv).abs() < 1e-9);
        // A probably-dead customer is worth much less.
        let dead = gg
            .clv(&bg, (2.0, 3.0, 38.86), 22.35, &ClvParams::default())
            .unwrap();
        assert!(dead < 0.2 * clv, "{dead} vs {clv}");
        let zero = gg
            .clv(
                &bg,
                customer,
                22.35,
                &ClvParams {
                    horizon_months: 0,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(zero, 0.0);
        assert!(
            gg.clv(
                &bg,
                customer,
                22.35,
                &ClvParams {
                    days_per_month: 0.0,
                    ..Default::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn invalid_input() {
        let p = GammaGammaParams::default();
        assert!(matches!(p.fit(&[(0.0, 0.0)]), Err(GammaGammaError::NoData)));
        let e = p.fit(&[(1.0, 5.0), (2.0, 0.0)]).unwrap_err();
        assert!(e.to_string().contains("customer #1"), "{e}");
        assert!(p.fit(&[(f64::NAN, 1.0)]).is_err());
        assert!(
            GammaGammaParams {
                tol: -1.0,
                ..Default::default()
            }
            .fit(&[(1.0, 1.0)])
            .is_err()
        );
        assert!(GammaGamma::new(1.0, 0.0, 1.0).is_err());
    }
}
