//! The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting
//! your customers the easy way: an alternative to the Pareto/NBD model",
//! Marketing Science 24(2)).
//!
//! # Model
//! While alive, a customer buys as a Poisson process with rate `λ`; after each
//! purchase she becomes inactive ("dies") with probability `p`. Across
//! customers `λ ~ Gamma(r, α)` (shape `r`, rate `α`) and `p ~ Beta(a, b)`.
//! A customer is summarised by `(x, t_x, T)`: `x` repeat purchases, the last
//! at `t_x`, observed for `T` since her first purchase (see
//! [`super::summary`]).
//!
//! # Likelihood (paper eq. 6)
//! `L(r, α, a, b | x, t_x, T) = Γ(r+x) αʳ / Γ(r) · [A₁ + δ_{x>0} A₂]` with
//! * `A₁ = B(a, b+x)/B(a, b) · (α+T)^−(r+x)`,
//! * `A₂ = B(a+1, b+x−1)/B(a, b) · (α+t_x)^−(r+x)`,
//!
//! so `ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln[A₁ + δ A₂]`, the last term
//! evaluated with log-sum-exp from `ln A₁` and `ln A₂`.
//!
//! # Fitting
//! [`fit`] minimises `−(1/n) Σ ln Lᵢ + penalizer · (r² + α² + a² + b²)`
//! over `(ln r, ln α, ln a, ln b)` with Nelder–Mead (restarted until it stops
//! improving; optionally from several random starts). `lnΓ` of `r+x`, `b+x`
//! and `a+b+x` is computed once per distinct `x` per evaluation.
//!
//! # Predictions
//! * `P(alive | x, t_x, T) = 1 / (1 + δ_{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))` (eq. 11).
//! * Unconditional `E[X(t)] = (a+b−1)/(a−1) · [1 − (α/(α+t))ʳ ₂F₁(r, b; a+b−1; t/(α+t))]` (eq. 9).
//! * Conditional expected purchases in `(T, T+t]` (eq. 10):
//!   `E[Y(t) | x, t_x, T] = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))]
//!   / [1 + δ_{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)]`.
//!
//!   Both expectations have a removable singularity at `a = 1`; there they
//!   are the mean of the values at `a = 1 ± 10⁻⁵`.
//! * [`RepeatModel::expected_time_to_next_purchase`] (of any of the three
//!   models): the horizon `u` at which the
//!   conditional expected number of purchases `E[Y(u) | x, t_x, T]` reaches
//!   one. It is *not* a median waiting time: it answers "by when do we expect
//!   one more purchase?". Because a dead customer never buys again,
//!   `E[Y(u)]` grows ever more slowly for customers who are probably dead
//!   and may never reach 1 (it is bounded when `a > 1`); the method returns
//!   `None` when 1 is not reached within the caller's `max_horizon`.
//!
//! [`RepeatModel::expected_time_to_next_purchase`]: super::select::RepeatModel::expected_time_to_next_purchase

use super::repeat::{FitParams, RepeatModelError, around_a_one, check_customer, check_horizon};
use crate::math::special::{hyp2f1_scaled, ln_gamma, log_add_exp, logistic};
use rayon::prelude::*;

const NAME: &str = "BG/NBD";

/// Settings of the BG/NBD fit; `initial` is `(r, α, a, b)`.
pub type BgNbdParams = FitParams;

super::repeat::fitted_model!(
    /// A fitted (or given) BG/NBD model.
    BgNbd {
        /// Shape of the Gamma distribution of purchase rates.
        r,
        /// Rate (inverse scale) of the Gamma distribution of purchase rates.
        alpha,
        /// First shape of the Beta distribution of drop-out probabilities.
        a,
        /// Second shape of the Beta distribution of drop-out probabilities.
        b,
    }
    /// Customers fitted on.
);

super::repeat::repeat_model!(
    BgNbd(r, alpha, a, b),
    NAME,
    Prepared::new,
    Prepared::log_likelihood
);

/// Fitting data grouped by distinct `x`, `t_x` and `T`, so that each
/// evaluation computes the `x`-dependent log-gammas once per distinct `x`
/// and `ln(α + t)` once per distinct time. With the default occasions
/// (distinct days) times are whole days, so a year of history has at most a
/// few hundred distinct times however many customers it holds.
struct Prepared {
    /// Distinct `x` values.
    xs: Vec<f64>,
    /// Distinct `t_x` and `T` values, together.
    times: Vec<f64>,
    /// `(index into xs, index of t_x, index of T in times)` per customer.
    rows: Vec<(u32, u32, u32)>,
}

/// Sorted distinct values.
fn distinct(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| a.total_cmp(b).is_eq());
    v
}

impl Prepared {
    /// Groups `data` after checking every customer.
    fn new(data: &[(f64, f64, f64)]) -> Result<Self, RepeatModelError> {
        for (i, &(x, t_x, t)) in data.iter().enumerate() {
            check_customer(i, x, t_x, t)?;
        }
        let xs = distinct(data.iter().map(|d| d.0));
        let times = distinct(data.iter().flat_map(|d| [d.1, d.2]));
        let at =
            |values: &[f64], v: f64| values.partition_point(|w| w.total_cmp(&v).is_lt()) as u32;
        let rows = data
            .iter()
            .map(|&(x, t_x, t)| (at(&xs, x), at(&times, t_x), at(&times, t)))
            .collect();
        Ok(Prepared { xs, times, rows })
    }

    /// `Σ ln Lᵢ` (module docs); `−∞`/NaN where the parameters are degenerate.
    fn log_likelihood(&self, r: f64, alpha: f64, a: f64, b: f64) -> f64 {
        let ln_g_r = ln_gamma(r);
        let ln_g_ab = ln_gamma(a + b);
        let ln_g_b = ln_gamma(b);
        let ln_a = a.ln();
        // Per distinct x: (ln Γ(r+x) − ln Γ(r), common part of ln A1, of ln A2).
        let per_x: Vec<(f64, f64, f64)> = self
            .xs
            .iter()
            .map(|&x| {
                let base = ln_g_ab - ln_g_b - ln_gamma(a + b + x);
                let a1 = ln_gamma(b + x) + base;
                let a2 = if x > 0.0 {
                    ln_a + ln_gamma(b + x - 1.0) + base
                } else {
                    f64::NEG_INFINITY
                };
                (ln_gamma(r + x) - ln_g_r, a1, a2)
            })
            .collect();
        let r_ln_alpha = r * alpha.ln();
        let ln_alpha_t: Vec<f64> = self.times.iter().map(|&t| (alpha + t).ln()).collect();
        let chunk_sum = |rows: &[(u32, u32, u32)]| {
            let mut total = 0.0;
            for &(k, k_tx, k_t) in rows {
                let x = self.xs[k as usize];
                let (g, a1, a2) = per_x[k as usize];
                let rx = r + x;
                let ln_a1 = a1 - rx * ln_alpha_t[k_t as usize];
                let ln_sum = if x > 0.0 {
                    log_add_exp(ln_a1, a2 - rx * ln_alpha_t[k_tx as usize])
                } else {
                    ln_a1
                };
                total += g + r_ln_alpha + ln_sum;
            }
            total
        };
        // Fixed chunks summed in order: the same total on any number of
        // threads, so the same fit (and one chunk below LL_CHUNK rows, as a
        // plain loop).
        if self.rows.len() <= LL_CHUNK {
            return chunk_sum(&self.rows);
        }
        let parts: Vec<f64> = self.rows.par_chunks(LL_CHUNK).map(chunk_sum).collect();
        parts.iter().sum()
    }
}

/// Rows per parallel chunk of the log-likelihood.
const LL_CHUNK: usize = 16_384;

impl BgNbd {
    /// `ln` of the odds of being dead, `a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)`,
    /// or `−∞` when `x = 0` (a customer without repeat purchase is alive).
    fn ln_death_odds(&self, x: f64, t_x: f64, t: f64) -> f64 {
        if x <= 0.0 {
            return f64::NEG_INFINITY;
        }
        self.a.ln() - (self.b + x - 1.0).ln()
            + (self.r + x) * ((self.alpha + t).ln() - (self.alpha + t_x).ln())
    }

    /// Probability that the customer is still alive at `T` (module docs, eq. 11).
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let z = self.ln_death_odds(x, t_x, t);
        logistic(-z)
    }

    /// Expected purchases of a newly acquired customer in `(0, t]` (eq. 9).
    pub fn expected_purchases_unconditional(&self, t: f64) -> Result<f64, RepeatModelError> {
        check_horizon(NAME, t)?;
        if t == 0.0 {
            return Ok(0.0);
        }
        // Eq. 10 at x = 0, T = 0 (alive for sure).
        expected_if_alive([self.r, self.alpha, self.a, self.b], 0.0, t, 0.0, 0.0)
    }

    /// [`BgNbd::expected_purchases`] for checked arguments and `t > 0` (eq. 10).
    fn conditional(&self, t: f64, x: f64, t_x: f64, big_t: f64) -> Result<f64, RepeatModelError> {
        let params = [self.r, self.alpha, self.a, self.b];
        let numerator = expected_if_alive(params, 0.0, t, x, big_t)?;
        Ok(numerator * self.p_alive(x, t_x, big_t))
    }
}

/// The numerator of eq. 10, `E[Y(t) | alive, x, T]`:
/// `c/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x+k; c; t/(α+T+t))]`
/// with `c = a+b+x+k−1` and `k = 0`. MBG/NBD's is the same with `k = 1`
/// ([`super::mbg_nbd`]). Evaluated around the removable singularity at `a = 1`.
pub(super) fn expected_if_alive(
    [r, alpha, a, b]: [f64; 4],
    k: f64,
    t: f64,
    x: f64,
    big_t: f64,
) -> Result<f64, RepeatModelError> {
    let rx = r + x;
    let z = t / (alpha + big_t + t);
    let ln_ratio = ((alpha + big_t) / (alpha + big_t + t)).ln();
    let eval = |a: f64| -> Result<f64, RepeatModelError> {
        let c = a + b + x - (1.0 - k);
        let (m, s) = hyp2f1_scaled(rx, b + x + k, c, z)?;
        let h = m * (s + rx * ln_ratio).exp();
        Ok(c / (a - 1.0) * (1.0 - h))
    };
    around_a_one(a, eval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::select::RepeatModel;
    use crate::customer::summary::DAY_SECS;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// The published CDNOW estimates.
    fn cdnow() -> BgNbd {
        BgNbd::new(0.2426, 4.4135, 0.7929, 2.4258).unwrap()
    }

    /// Simulates the BG/NBD generative process for `n` customers observed for `t`.
    fn simulate(model: &BgNbd, n: usize, t: f64, seed: u64) -> Vec<(f64, f64, f64)> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let gamma = |rng: &mut Xoshiro256PlusPlus, shape: f64| -> f64 {
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
        };
        (0..n)
            .map(|_| {
                let lambda = gamma(&mut rng, model.r) / model.alpha;
                let ga = gamma(&mut rng, model.a);
                let gb = gamma(&mut rng, model.b);
                let p = ga / (ga + gb);
                let (mut now, mut x, mut last) = (0.0, 0.0, 0.0);
                loop {
                    now += -rng.gen_range(f64::EPSILON..1.0_f64).ln() / lambda;
                    if now > t {
                        break;
                    }
                    x += 1.0;
                    last = now;
                    if rng.r#gen::<f64>() < p {
                        break;
                    }
                }
                (x, last, t)
            })
            .collect()
    }

    #[test]
    fn log_likelihood_is_the_same_on_any_number_of_threads() {
        let data: Vec<(f64, f64, f64)> = (0..40_000)
            .map(|i| {
                let x = f64::from(i % 7);
                let t = 10.0 + f64::from(i % 30);
                (x, if x > 0.0 { t * 0.5 } else { 0.0 }, t)
            })
            .collect();
        let prepared = Prepared::new(&data).unwrap();
        let many = prepared.log_likelihood(0.3, 4.0, 0.8, 2.4);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| prepared.log_likelihood(0.3, 4.0, 0.8, 2.4));
        assert_eq!(many.to_bits(), one.to_bits());
        assert!(many.is_finite());
    }

    #[test]
    fn recovers_simulated_parameters() {
        let truth = BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap();
        let data = simulate(&truth, 20_000, 52.0, 7);
        let fit = super::fit(&BgNbdParams::default(), &data).unwrap();
        assert!(fit.converged);
        for (got, want) in [(fit.r, 0.5), (fit.alpha, 5.0), (fit.a, 0.8), (fit.b, 2.5)] {
            assert!((got / want - 1.0).abs() < 0.2, "{fit:?}");
        }
        // The fit beats the truth on its own data (it is the maximum).
        assert!(fit.log_likelihood >= truth.log_likelihood_of(&data).unwrap() - 1e-6);
        // Several starts agree.
        let multi = BgNbdParams {
            starts: 3,
            ..Default::default()
        };
        let multi = super::fit(&multi, &data).unwrap();
        assert!((multi.log_likelihood - fit.log_likelihood).abs() < 1e-3);
    }

    /// Nobody drops out: the optimum is at `a → 0`, far out on a ridge where
    /// the likelihood is flat to its rounding. The fit ends there well
    /// before its iteration limit, says how (collapsed, not converged), and
    /// still recovers the purchase rates.
    #[test]
    fn a_history_without_drop_out_ends_on_the_ridge() {
        let truth = BgNbd::new(0.5, 5.0, 1e-9, 100.0).unwrap();
        let data = simulate(&truth, 20_000, 52.0, 11);
        let params = BgNbdParams::default();
        let fit = super::fit(&params, &data).unwrap();
        assert!(fit.converged || fit.collapsed, "{fit:?}");
        assert!(fit.iterations < params.max_iter / 2, "{fit:?}");
        assert!(fit.a / (fit.a + fit.b) < 1e-3, "{fit:?}");
        for (got, want) in [(fit.r, 0.5), (fit.alpha, 5.0)] {
            assert!((got / want - 1.0).abs() < 0.2, "{fit:?}");
        }
    }

    #[test]
    fn likelihood_matches_the_direct_formula() {
        let m = cdnow();
        let (r, al, a, b) = (m.r, m.alpha, m.a, m.b);
        let beta = |p: f64, q: f64| (ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)).exp();
        for &(x, t_x, t) in &[(0.0, 0.0, 38.86), (2.0, 30.43, 38.86), (5.0, 10.0, 20.0)] {
            let g = (ln_gamma(r + x) - ln_gamma(r)).exp() * al.powf(r);
            let a1 = beta(a, b + x) / beta(a, b) / (al + t).powf(r + x);
            let a2 = if x > 0.0 {
                beta(a + 1.0, b + x - 1.0) / beta(a, b) / (al + t_x).powf(r + x)
            } else {
                0.0
            };
            let want = (g * (a1 + a2)).ln();
            let got = m.log_likelihood_of(&[(x, t_x, t)]).unwrap();
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    /// Customers share the per-time terms; each still gets its own times.
    #[test]
    fn shared_times_give_each_customer_its_own_likelihood() {
        let m = cdnow();
        let data: Vec<(f64, f64, f64)> = (0..500)
            .map(|i| {
                let x = f64::from(i % 6);
                // Whole days (shared) for most, odd fractions for some.
                let t = if i % 5 == 0 {
                    30.0 + f64::from(i) / 7.3
                } else {
                    f64::from(20 + i % 19)
                };
                let t_x = if x > 0.0 {
                    (t - f64::from(i % 4)).max(0.0)
                } else {
                    0.0
                };
                (x, t_x, t)
            })
            .collect();
        let one_by_one: f64 = data
            .iter()
            .map(|&d| m.log_likelihood_of(&[d]).unwrap())
            .sum();
        let together = m.log_likelihood_of(&data).unwrap();
        assert!(
            (together - one_by_one).abs() <= 1e-12 * one_by_one.abs(),
            "{together} vs {one_by_one}"
        );
        let p = Prepared::new(&data).unwrap();
        assert!(
            p.times.len() < 2 * data.len() / 3,
            "{} times",
            p.times.len()
        );
    }

    #[test]
    fn predictions_behave() {
        let m = cdnow();
        // No repeat purchase: alive for sure.
        assert_eq!(m.p_alive(0.0, 0.0, 38.0), 1.0);
        // Recent heavy buyer alive, long-silent heavy buyer probably dead.
        assert!(m.p_alive(10.0, 38.0, 38.86) > 0.9);
        assert!(m.p_alive(10.0, 5.0, 38.86) < 0.01);
        // Extreme odds stay finite.
        let p = m.p_alive(500.0, 0.0, 1000.0);
        assert!((0.0..1e-100).contains(&p));
        // Expectations are increasing in t and start at 0.
        let mut prev = 0.0;
        for t in [0.0, 1.0, 10.0, 39.0, 100.0, 300.0] {
            let e = m.expected_purchases(t, 2.0, 30.43, 38.86).unwrap();
            assert!(e >= prev, "{e} < {prev} at t={t}");
            prev = e;
        }
        // x = 0, t_x = T = 0 is a newly acquired customer: conditional = unconditional.
        let c = m.expected_purchases(39.0, 0.0, 0.0, 0.0).unwrap();
        let u = m.expected_purchases_unconditional(39.0).unwrap();
        assert!((c - u).abs() < 1e-12, "{c} vs {u}");
        // Heavy buyers do not overflow.
        let e = m.expected_purchases(39.0, 300.0, 38.0, 38.86).unwrap();
        assert!(e.is_finite() && e > 50.0, "{e}");
        assert!(m.expected_purchases(-1.0, 0.0, 0.0, 1.0).is_err());
        assert!(matches!(
            m.expected_purchases(1.0, 2.0, 5.0, 4.0),
            Err(RepeatModelError::InvalidCustomer { .. })
        ));
    }

    #[test]
    fn conditional_expectation_matches_simulation() {
        // Small t: E[Y(t)] ≈ P(alive) · E[λ | data] · t with E[λ|alive] = (r+x)/(α+T).
        let m = cdnow();
        let (x, t_x, t) = (3.0, 30.0, 38.86);
        let dt = 1e-4;
        let e = m.expected_purchases(dt, x, t_x, t).unwrap();
        let approx = m.p_alive(x, t_x, t) * (m.r + x) / (m.alpha + t) * dt;
        assert!((e / approx - 1.0).abs() < 1e-3, "{e} vs {approx}");
    }

    #[test]
    fn a_near_one_is_continuous() {
        let at = |a: f64| {
            let m = BgNbd::new(0.25, 4.4, a, 2.4).unwrap();
            (
                m.expected_purchases(39.0, 2.0, 30.0, 38.0).unwrap(),
                m.expected_purchases_unconditional(39.0).unwrap(),
            )
        };
        let (c0, u0) = at(1.0);
        let (c1, u1) = at(1.0 + 1e-3);
        let (c2, u2) = at(1.0 - 1e-3);
        assert!(c0.is_finite() && u0.is_finite());
        assert!((c0 - 0.5 * (c1 + c2)).abs() < 1e-4 * c0, "{c0} {c1} {c2}");
        assert!((u0 - 0.5 * (u1 + u2)).abs() < 1e-4 * u0, "{u0} {u1} {u2}");
    }

    #[test]
    fn time_to_next_purchase() {
        let m = RepeatModel::BgNbd(cdnow());
        let u = m
            .expected_time_to_next_purchase(10.0, 38.0, 38.86, 520.0)
            .unwrap()
            .expect("an active heavy buyer buys again soon");
        let e = m.expected_purchases(u, 10.0, 38.0, 38.86).unwrap();
        assert!((e - 1.0).abs() < 1e-4, "{e}");
        assert!(u < 10.0, "{u}");
        // A heavy buyer silent for 34 weeks is almost surely gone.
        assert_eq!(
            m.expected_time_to_next_purchase(10.0, 5.0, 38.86, 520.0)
                .unwrap(),
            None
        );
    }

    #[test]
    fn next_purchase_date_from_a_summary() {
        use super::super::summary::{SummaryParams, TimeUnit, summarize};
        use encore_data::PurchaseLog;
        let day = DAY_SECS;
        let mut log = PurchaseLog::default();
        for (k, d) in [0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70]
            .iter()
            .enumerate()
        {
            log.push(&format!("o{k}"), "a", "i", d * day, 1.0, 1.0);
        }
        for d in 0..6 {
            log.push(&format!("b{d}"), "b", "i", d * day, 1.0, 1.0);
        }
        let reference = 72 * day;
        let params = SummaryParams {
            unit: TimeUnit::Weeks,
            ..Default::default()
        };
        let summaries = summarize(&log, reference, &params);
        let m = RepeatModel::BgNbd(cdnow());
        let date = m
            .expected_next_purchase_date(&summaries[0], reference, 104.0)
            .unwrap()
            .unwrap();
        let s = summaries[0].repeat_summary();
        let u = m
            .expected_time_to_next_purchase(s.x, s.t_x, s.t, 104.0)
            .unwrap()
            .unwrap();
        assert_eq!(date, reference + (u * 7.0 * 86_400.0).round() as i64);
        assert!(date > reference && date < reference + 30 * day, "{date}");
        // b bought on six consecutive days ten weeks ago: probably gone.
        assert_eq!(
            m.expected_next_purchase_date(&summaries[1], reference, 104.0)
                .unwrap(),
            None
        );
    }

    /// A fit stored before `collapsed` existed still loads (as not collapsed).
    #[test]
    fn a_stored_fit_without_collapsed_loads() {
        let stored = r#"{"r":0.24,"alpha":4.4,"a":0.79,"b":2.4,"log_likelihood":-9582.4,
            "iterations":529,"converged":true,"n_customers":2357}"#;
        let fit: BgNbd = serde_json::from_str(stored).unwrap();
        assert!(fit.converged && !fit.collapsed);
        assert_eq!(fit.iterations, 529);
    }

    #[test]
    fn invalid_input() {
        let p = BgNbdParams::default();
        assert!(matches!(fit(&p, &[]), Err(RepeatModelError::NoData { .. })));
        let e = fit(&p, &[(1.0, 2.0, 1.0)]).unwrap_err();
        assert!(e.to_string().contains("customer #0"), "{e}");
        assert!(fit(&p, &[(f64::NAN, 0.0, 1.0)]).is_err());
        assert!(fit(&p, &[(-1.0, 0.0, 1.0)]).is_err());
        assert!(fit(&p, &[(0.5, 0.0, 1.0)]).is_err());
        for bad in [
            BgNbdParams {
                penalizer: -1.0,
                ..Default::default()
            },
            BgNbdParams {
                max_iter: 0,
                ..Default::default()
            },
            BgNbdParams {
                tol: 0.0,
                ..Default::default()
            },
            BgNbdParams {
                starts: 0,
                ..Default::default()
            },
            BgNbdParams {
                initial: [1.0, 0.0, 1.0, 1.0],
                ..Default::default()
            },
        ] {
            assert!(matches!(
                fit(&bad, &[(0.0, 0.0, 1.0)]),
                Err(RepeatModelError::InvalidParam { .. })
            ));
        }
        assert!(BgNbd::new(0.0, 1.0, 1.0, 1.0).is_err());
        let json = serde_json::to_string(&BgNbdParams::default()).unwrap();
        let back: BgNbdParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, BgNbdParams::default());
    }

    #[test]
    fn penalizer_shrinks_parameters() {
        let truth = BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap();
        let data = simulate(&truth, 2_000, 52.0, 3);
        let plain = fit(&BgNbdParams::default(), &data).unwrap();
        let pen = BgNbdParams {
            penalizer: 0.01,
            ..Default::default()
        };
        let pen = fit(&pen, &data).unwrap();
        let norm = |m: &BgNbd| m.r * m.r + m.alpha * m.alpha + m.a * m.a + m.b * m.b;
        assert!(norm(&pen) < norm(&plain));
        assert!(pen.log_likelihood <= plain.log_likelihood + 1e-9);
    }
}
