//! Logistic regression on standardised features: the learner of the
//! propensity model (`customer::propensity`) and the linear learner
//! of the "for you" re-ranker.
//!
//! [`column_stats`] gives each column's mean and standard deviation,
//! [`standardise`] turns raw features into clipped z-scores with them, and
//! [`fit_logistic`] fits an L2-penalised logistic regression (linfa-logistic,
//! L-BFGS from zero, deterministic) whose weights always speak of `true`.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ArrayView2};

/// `(weights, intercept)` of an L2-penalised logistic regression
/// (linfa-logistic, L-BFGS from zero) of `y` on the standardised `z`, in the
/// log-odds of `true`. linfa maps the *more frequent* class to its positive
/// label; the signs are turned so that they always speak of `true`.
pub fn fit_logistic(
    z: Array2<f64>,
    y: Array1<bool>,
    l2: f64,
    max_iterations: u64,
    gradient_tolerance: f64,
) -> Result<(Vec<f64>, f64), String> {
    let fitted = LogisticRegression::default()
        .alpha(l2)
        .max_iterations(max_iterations)
        .gradient_tolerance(gradient_tolerance)
        .with_intercept(true)
        .fit(&DatasetBase::new(z, y))
        .map_err(|e| e.to_string())?;
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let weights: Vec<f64> = fitted.params().iter().map(|w| sign * w).collect();
    let intercept = sign * fitted.intercept();
    if weights.iter().any(|w| !w.is_finite()) || !intercept.is_finite() {
        return Err("the fitted weights are not finite".into());
    }
    Ok((weights, intercept))
}

/// Mean and standard deviation (population) of each column over its finite
/// values; a constant or empty column gets mean 0 / std 1 as needed.
pub fn column_stats(x: ArrayView2<'_, f64>) -> (Vec<f64>, Vec<f64>) {
    x.columns()
        .into_iter()
        .map(|col| {
            let finite: Vec<f64> = col.iter().copied().filter(|v| v.is_finite()).collect();
            if finite.is_empty() {
                return (0.0, 1.0);
            }
            let n = finite.len() as f64;
            let mean = finite.iter().sum::<f64>() / n;
            let var = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let std = var.sqrt();
            // A column (nearly) constant in training carries no information
            // and must not blow up later values: P(alive) from a degenerate
            // BG/NBD fit is 1 ± 1e-8 at training time, and 0.98 at serving
            // time under a different fit, which a tiny std would turn into
            // −10⁶ standard deviations.
            let floor = 1e-6 * mean.abs().max(1.0);
            (mean, if std > floor { std } else { 1.0 })
        })
        .unzip()
}

/// Standardised values are clipped to ±`Z_CLIP`, in training and in
/// prediction alike, so that one customer far outside the training range
/// cannot saturate the score on one feature.
pub const Z_CLIP: f64 = 8.0;

/// `(x − mean) / std` per column, clipped to ±[`Z_CLIP`]; non-finite values
/// become 0 (the mean).
pub fn standardise(x: ArrayView2<'_, f64>, means: &[f64], stds: &[f64]) -> Array2<f64> {
    let mut z = x.to_owned();
    for mut row in z.rows_mut() {
        for ((v, m), s) in row.iter_mut().zip(means).zip(stds) {
            *v = if v.is_finite() {
                ((*v - m) / s).clamp(-Z_CLIP, Z_CLIP)
            } else {
                0.0
            };
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_constant_columns_and_outliers_cannot_blow_up_a_score() {
        let x = ndarray::array![[1.0, 0.0], [1.0 + 1e-9, 1.0], [1.0 - 1e-9, 2.0]];
        let (means, stds) = column_stats(x.view());
        assert_eq!(stds[0], 1.0, "a near-constant column is not rescaled");
        let far = ndarray::array![[0.5, 1e9]];
        let z = standardise(far.view(), &means, &stds);
        assert!((z[[0, 0]] + 0.5).abs() < 1e-6, "{z}");
        assert_eq!(z[[0, 1]], Z_CLIP);
    }
}
