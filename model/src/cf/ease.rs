//! EASE, "Embarrassingly Shallow Autoencoders for Sparse Data" (Steck, WWW
//! 2019): a closed-form item-item model that is often the strongest plain
//! item-to-item recommender on small and mid-sized catalogs.
//!
//! With `X` the customer x item matrix (binary or log-scaled quantities, as
//! the caller builds it) and `λ > 0`:
//!
//! ```text
//! G = XᵀX + λI,   P = G⁻¹,   B = I − P · diag(1 / diag(P))
//! ```
//!
//! i.e. `B[i, j] = −P[i, j] / P[j, j]` off the diagonal and `B[j, j] = 0`. A
//! customer's score of item `j` is `Σ_i x_i B[i, j]`, and row `i` of `B` is
//! the weight item `i` lends every other item (usable as "similar items").
//!
//! # Cost
//! `G` is dense: the fit holds two `n × n` matrices of the working precision
//! (`8 n²` bytes each in `f64`, `4 n²` in `f32`) and keeps `B` as `f32`
//! (`4 n²` bytes): at 20,000 items that is 6.4 GB at the peak in `f64` (3.2 GB
//! in `f32`) and 1.6 GB for the fitted model. Time is about `n³` flops (a
//! third each for the Cholesky factorisation, the triangular inverse and the
//! product `L⁻ᵀ L⁻¹`): seconds for Online Retail's 3.7k items, several
//! minutes for 20k items on 2 cores. [`EaseParams::max_items`] (default
//! 20,000) refuses larger catalogs up front.
//!
//! # Implementation notes
//! The inverse is computed without LAPACK: a blocked right-looking Cholesky
//! factorisation `G = L Lᵀ` whose trailing updates are GEMMs
//! (`ndarray`/`matrixmultiply`) run in parallel over column blocks (rayon),
//! then `Y = L⁻¹` by blocked forward substitution, one column block per rayon
//! job, and `P = YᵀY` (lower half, mirrored). Each output block is computed
//! by one job in a fixed order, so the result does not depend on the number of
//! threads. A non-positive pivot (`λ` too small for the rounding of the
//! working precision) is reported as [`EaseError::NotPositiveDefinite`].

use crate::topk::top_k_dense;
use encore_data::Csr;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayBase, ArrayView1, ArrayViewMut2, Axis, DataMut, Ix2, LinalgScalar, s};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Working precision of the fit (the fitted weights are `f32` either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Half the memory and about twice as fast; fine when `λ` is not tiny.
    F32,
    #[default]
    F64,
}

/// EASE parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EaseParams {
    /// `λ > 0`, added to the diagonal of `XᵀX`.
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub lambda: f32,
    /// Largest catalog (columns of `X`) the fit accepts.
    pub max_items: usize,
    pub precision: Precision,
}

impl Default for EaseParams {
    /// `lambda` chosen on a validation split of Online Retail inside the
    /// training period (binary `X`; see `repeat_aware_holdout.rs`).
    fn default() -> Self {
        EaseParams {
            lambda: 200.0,
            max_items: 20_000,
            precision: Precision::F64,
        }
    }
}

/// Why EASE could not be fitted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EaseError {
    #[error("invalid EASE parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "EASE needs a dense {items} x {items} matrix ({bytes} bytes at the peak); \
         the limit is {max_items} items (raise EaseParams::max_items if the memory and \
         O(n³) time are acceptable, or use ALS / item-kNN for this catalog)"
    )]
    TooManyItems {
        items: usize,
        max_items: usize,
        bytes: u64,
    },
    #[error("the interaction matrix holds a non-finite value")]
    NonFinite,
    #[error("XᵀX + λI is not numerically positive definite at pivot {pivot}; increase lambda")]
    NotPositiveDefinite { pivot: usize },
}

impl EaseParams {
    pub fn check(&self) -> Result<(), EaseError> {
        if !(self.lambda > 0.0 && self.lambda.is_finite()) {
            return Err(EaseError::InvalidParam {
                name: "lambda",
                value: self.lambda.to_string(),
                reason: "must be finite and > 0",
            });
        }
        Ok(())
    }

    /// Fits `B` on the customer x item matrix `x`.
    pub fn fit(&self, x: &Csr) -> Result<Ease, EaseError> {
        self.check()?;
        let n = x.n_cols();
        if n > self.max_items {
            let width: u64 = match self.precision {
                Precision::F32 => 4,
                Precision::F64 => 8,
            };
            return Err(EaseError::TooManyItems {
                items: n,
                max_items: self.max_items,
                bytes: 2 * width * (n as u64).pow(2),
            });
        }
        if x.values().iter().any(|v| !v.is_finite()) {
            return Err(EaseError::NonFinite);
        }
        let weights = match self.precision {
            Precision::F32 => fit_in::<f32>(x, self.lambda)?,
            Precision::F64 => fit_in::<f64>(x, self.lambda)?,
        };
        Ok(Ease { weights })
    }
}

/// A floating-point type the dense kernels run in.
pub trait Real: LinalgScalar + Send + Sync + PartialOrd + std::fmt::Debug {
    fn sqrt(self) -> Self;
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl Real for f32 {
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl Real for f64 {
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
}

/// Block size of the dense kernels.
const NB: usize = 96;

fn fit_in<T: Real>(x: &Csr, lambda: f32) -> Result<Array2<f32>, EaseError> {
    let n = x.n_cols();
    let mut g = gram::<T>(x);
    let lambda = T::from_f32(lambda);
    for i in 0..n {
        g[[i, i]] = g[[i, i]] + lambda;
    }
    let p = spd_inverse(g).map_err(|pivot| EaseError::NotPositiveDefinite { pivot })?;
    let diag: Vec<T> = (0..n).map(|j| p[[j, j]]).collect();
    let mut b = Array2::<f32>::zeros((n, n));
    b.outer_iter_mut()
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            let prow = p.row(i);
            for j in 0..n {
                row[j] = if i == j {
                    0.0
                } else {
                    (T::zero() - prow[j] / diag[j]).to_f32()
                };
            }
        });
    Ok(b)
}

/// Dense `XᵀX`, one item row per rayon job.
fn gram<T: Real>(x: &Csr) -> Array2<T> {
    let n = x.n_cols();
    let xt = x.transpose();
    let mut g = Array2::<T>::zeros((n, n));
    g.outer_iter_mut()
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            let (customers, xi) = xt.row(i);
            for (&u, &vi) in customers.iter().zip(xi) {
                let (items, xu) = x.row(u as usize);
                let vi = T::from_f32(vi);
                for (&j, &vj) in items.iter().zip(xu) {
                    row[j as usize] = row[j as usize] + vi * T::from_f32(vj);
                }
            }
        });
    g
}

/// The blocks of `NB` columns of `m` (the last one narrower), each with the
/// index of its first column, to be worked on in parallel.
fn column_blocks<T, S: DataMut<Elem = T>>(
    m: &mut ArrayBase<S, Ix2>,
) -> Vec<(usize, ArrayViewMut2<'_, T>)> {
    m.axis_chunks_iter_mut(Axis(1), NB)
        .enumerate()
        .map(|(b, v)| (b * NB, v))
        .collect()
}

/// The inverse of a symmetric positive-definite matrix (module docs). `Err`
/// holds the index of the first non-positive pivot.
pub fn spd_inverse<T: Real>(mut a: Array2<T>) -> Result<Array2<T>, usize> {
    assert_eq!(a.nrows(), a.ncols(), "square matrix");
    let n = a.nrows();
    cholesky_in_place(&mut a)?;
    let y = lower_inverse(&a);
    // P = YᵀY, lower half: P[j0.., J] = Y[j0.., j0..]ᵀ Y[j0.., J] (Y is lower
    // triangular, so rows above j0 of column block J are zero).
    let mut p = a; // L is no longer needed: reuse its storage.
    let mut blocks = column_blocks(&mut p);
    blocks.par_iter_mut().for_each(|(j0, col)| {
        let j0 = *j0;
        let w = col.ncols();
        let lhs = y.slice(s![j0.., j0..]);
        let rhs = y.slice(s![j0.., j0..j0 + w]);
        let mut out = col.slice_mut(s![j0.., ..]);
        general_mat_mul(T::one(), &lhs.t(), &rhs, T::zero(), &mut out);
    });
    drop(blocks);
    drop(y);
    for i in 0..n {
        for j in i + 1..n {
            p[[i, j]] = p[[j, i]];
        }
    }
    Ok(p)
}

/// Overwrites the lower triangle of `a` with `L` (`a = L Lᵀ`) and zeroes the
/// upper triangle.
fn cholesky_in_place<T: Real>(a: &mut Array2<T>) -> Result<(), usize> {
    let n = a.nrows();
    for k0 in (0..n).step_by(NB) {
        let k1 = (k0 + NB).min(n);
        // Diagonal block, unblocked (earlier blocks were subtracted already).
        for j in k0..k1 {
            let mut d = a[[j, j]];
            for p in k0..j {
                d = d - a[[j, p]] * a[[j, p]];
            }
            // NaN fails this test too.
            if d.partial_cmp(&T::zero()) != Some(std::cmp::Ordering::Greater) {
                return Err(j);
            }
            let l = d.sqrt();
            a[[j, j]] = l;
            for i in j + 1..k1 {
                let mut v = a[[i, j]];
                for p in k0..j {
                    v = v - a[[i, p]] * a[[j, p]];
                }
                a[[i, j]] = v / l;
            }
        }
        if k1 == n {
            break;
        }
        // Panel: L21 = A21 L11⁻ᵀ, row by row.
        let l11 = a.slice(s![k0..k1, k0..k1]).to_owned();
        let w = k1 - k0;
        let mut panel = a.slice_mut(s![k1.., k0..k1]);
        let mut rows: Vec<_> = panel.outer_iter_mut().collect();
        rows.par_iter_mut().for_each(|row| {
            for j in 0..w {
                let mut v = row[j];
                for p in 0..j {
                    v = v - row[p] * l11[[j, p]];
                }
                row[j] = v / l11[[j, j]];
            }
        });
        drop(rows);
        // Trailing update of the lower part: A22 -= L21 L21ᵀ by column blocks.
        let l21 = a.slice(s![k1.., k0..k1]).to_owned();
        let mut trailing = a.slice_mut(s![k1.., k1..]);
        let mut blocks = column_blocks(&mut trailing);
        blocks.par_iter_mut().for_each(|(c0, col)| {
            let c0 = *c0;
            let cw = col.ncols();
            let mut out = col.slice_mut(s![c0.., ..]);
            general_mat_mul(
                T::zero() - T::one(),
                &l21.slice(s![c0.., ..]),
                &l21.slice(s![c0..c0 + cw, ..]).t(),
                T::one(),
                &mut out,
            );
        });
    }
    for i in 0..n {
        for j in i + 1..n {
            a[[i, j]] = T::zero();
        }
    }
    Ok(())
}

/// `L⁻¹` of a lower-triangular `l` (upper triangle zero), by blocked forward
/// substitution, one column block per rayon job.
fn lower_inverse<T: Real>(l: &Array2<T>) -> Array2<T> {
    let n = l.nrows();
    let mut y = Array2::<T>::zeros((n, n));
    let mut blocks = column_blocks(&mut y);
    blocks.par_iter_mut().for_each(|(j0, col)| {
        let j0 = *j0;
        let w = col.ncols();
        for i0 in (j0..n).step_by(NB) {
            let i1 = (i0 + NB).min(n);
            // rhs = E[I, J] − L[I, j0..i0] Y[j0..i0, J]
            let mut rhs = Array2::<T>::zeros((i1 - i0, w));
            if i0 == j0 {
                for d in 0..w {
                    rhs[[d, d]] = T::one();
                }
            } else {
                general_mat_mul(
                    T::zero() - T::one(),
                    &l.slice(s![i0..i1, j0..i0]),
                    &col.slice(s![j0..i0, ..]),
                    T::one(),
                    &mut rhs,
                );
            }
            // Solve L[I, I] Y[I, J] = rhs.
            for r in 0..i1 - i0 {
                let d = l[[i0 + r, i0 + r]];
                for c in 0..w {
                    let mut v = rhs[[r, c]];
                    for p in 0..r {
                        v = v - l[[i0 + r, i0 + p]] * rhs[[p, c]];
                    }
                    rhs[[r, c]] = v / d;
                }
            }
            col.slice_mut(s![i0..i1, ..]).assign(&rhs);
        }
    });
    drop(blocks);
    y
}

/// A fitted EASE model: the item-item weights `B` (`f32`, zero diagonal).
#[derive(Debug, Clone)]
pub struct Ease {
    weights: Array2<f32>,
}

impl Ease {
    pub fn n_items(&self) -> usize {
        self.weights.nrows()
    }

    /// The whole weight matrix `B`.
    pub fn weights(&self) -> &Array2<f32> {
        &self.weights
    }

    /// Row `item` of `B`: the weight `item` lends every other item ("similar
    /// items": rank it, skipping `item` itself, whose weight is 0).
    pub fn item_row(&self, item: u32) -> ArrayView1<'_, f32> {
        self.weights.row(item as usize)
    }

    /// Writes `Σ_i x_i B[i, ·]` for the customer row `(items, values)` (e.g.
    /// [`Csr::row`]) into `out` (length `n_items`).
    pub fn scores(&self, row: (&[u32], &[f32]), out: &mut [f32]) {
        assert_eq!(out.len(), self.n_items(), "score buffer length");
        out.fill(0.0);
        for (&i, &x) in row.0.iter().zip(row.1) {
            let w = self.weights.row(i as usize);
            for (o, &b) in out.iter_mut().zip(w.iter()) {
                *o += x * b;
            }
        }
    }

    /// The `k` best items for the customer row, best first, leaving out items
    /// for which `skip` is true (bought items are not skipped unless `skip`
    /// says so).
    pub fn recommend(
        &self,
        row: (&[u32], &[f32]),
        k: usize,
        skip: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let mut out = vec![0f32; self.n_items()];
        self.scores(row, &mut out);
        top_k_dense(&out, k, skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gauss-Jordan with partial pivoting in f64, the naive reference.
    fn naive_inverse(a: &Array2<f64>) -> Array2<f64> {
        let n = a.nrows();
        let mut m = a.clone();
        let mut inv = Array2::<f64>::eye(n);
        for c in 0..n {
            let p = (c..n)
                .max_by(|&x, &y| m[[x, c]].abs().total_cmp(&m[[y, c]].abs()))
                .unwrap();
            for j in 0..n {
                m.swap([c, j], [p, j]);
                inv.swap([c, j], [p, j]);
            }
            let d = m[[c, c]];
            for j in 0..n {
                m[[c, j]] /= d;
                inv[[c, j]] /= d;
            }
            for r in 0..n {
                if r != c {
                    let f = m[[r, c]];
                    for j in 0..n {
                        m[[r, j]] -= f * m[[c, j]];
                        inv[[r, j]] -= f * inv[[c, j]];
                    }
                }
            }
        }
        inv
    }

    fn random_spd(n: usize, seed: u64) -> Array2<f64> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let m = Array2::from_shape_fn((n, n), |_| next());
        m.t().dot(&m) + Array2::<f64>::eye(n) * 0.5
    }

    #[test]
    fn spd_inverse_matches_naive_across_block_sizes() {
        // Sizes below, at and across the block size exercise every path.
        for n in [1, 5, NB, NB + 1, 2 * NB + 17] {
            let a = random_spd(n, n as u64);
            let got = spd_inverse(a.clone()).unwrap();
            let want = naive_inverse(&a);
            let err = (&got - &want).iter().fold(0f64, |m, v| m.max(v.abs()));
            let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
            assert!(err <= 1e-9 * scale, "n {n}: error {err} scale {scale}");
            let f32_got = spd_inverse(a.mapv(|v| v as f32)).unwrap();
            let err32 = f32_got
                .iter()
                .zip(&want)
                .fold(0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
            assert!(err32 <= 1e-2 * scale, "n {n}: f32 error {err32}");
        }
        assert_eq!(
            spd_inverse(Array2::from_shape_vec((2, 2), vec![1.0, 2.0, 2.0, 1.0]).unwrap()),
            Err(1)
        );
    }

    fn tiny() -> Csr {
        Csr::from_triplets(
            5,
            4,
            [
                (0, 0, 1.0),
                (0, 1, 1.0),
                (1, 0, 1.0),
                (1, 1, 1.0),
                (1, 2, 1.0),
                (2, 2, 1.0),
                (2, 3, 1.0),
                (3, 1, 1.0),
                (3, 3, 1.0),
                (4, 0, 1.0),
            ],
        )
    }

    #[test]
    fn ease_on_a_tiny_matrix_matches_the_naive_formula() {
        let x = tiny();
        let lambda = 0.5f32;
        let mut dense = Array2::<f64>::zeros((5, 4));
        for r in 0..5 {
            let (c, v) = x.row(r);
            for (&c, &v) in c.iter().zip(v) {
                dense[[r, c as usize]] = f64::from(v);
            }
        }
        let g = dense.t().dot(&dense) + Array2::<f64>::eye(4) * f64::from(lambda);
        let p = naive_inverse(&g);
        for precision in [Precision::F64, Precision::F32] {
            let ease = EaseParams {
                lambda,
                precision,
                ..EaseParams::default()
            }
            .fit(&x)
            .unwrap();
            for i in 0..4 {
                for j in 0..4 {
                    let want = if i == j { 0.0 } else { -p[[i, j]] / p[[j, j]] };
                    let got = f64::from(ease.weights()[[i, j]]);
                    assert!((got - want).abs() < 1e-4, "{i},{j}: {got} vs {want}");
                }
            }
            // Customer 4 bought item 0: items 1 then 2 (co-bought with 0).
            let list = ease.recommend(x.row(4), 2, |i| i == 0);
            assert_eq!(list[0].0, 1);
            assert_eq!(ease.item_row(0)[0], 0.0);
        }
    }

    #[test]
    fn refuses_too_many_items_and_bad_lambda() {
        let x = tiny();
        let err = EaseParams {
            max_items: 3,
            ..EaseParams::default()
        }
        .fit(&x)
        .unwrap_err();
        assert!(matches!(
            err,
            EaseError::TooManyItems {
                items: 4,
                max_items: 3,
                ..
            }
        ));
        assert!(err.to_string().contains("limit is 3 items"));
        for lambda in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let p = EaseParams {
                lambda,
                ..EaseParams::default()
            };
            assert!(matches!(p.check(), Err(EaseError::InvalidParam { .. })));
        }
        assert_eq!(EaseParams::default().max_items, 20_000);
    }

    #[test]
    fn deterministic_across_thread_counts() {
        let x = tiny();
        let p = EaseParams::default();
        let a = p.fit(&x).unwrap();
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| p.fit(&x).unwrap());
        assert_eq!(a.weights(), b.weights());
    }
}
