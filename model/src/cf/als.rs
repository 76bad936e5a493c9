//! Implicit-feedback alternating least squares (Hu, Koren & Volinsky 2008),
//! solved with a few conjugate-gradient steps per row (Takács, Pilászy & Tikk 2011).
//!
//! For an interaction `r_ui > 0` the preference is `p_ui = 1` with confidence
//! `c_ui = 1 + alpha * r_ui`; every other pair has `p = 0`, `c = 1`. ALS
//! minimises
//!
//! ```text
//! Σ_u Σ_i c_ui (p_ui − x_u·y_i)² + λ (Σ_u |x_u|² + Σ_i |y_i|²)
//! ```
//!
//! by solving for all user vectors with the item vectors fixed, then the other
//! way round. Each row's normal equations are
//! `(YᵀY + λI + Σ_{i∈u} (c_ui − 1) y_i y_iᵀ) x_u = Σ_{i∈u} c_ui y_i`;
//! the Gram matrix `YᵀY` is shared by every row, so one row costs
//! `O(f² + n_u f)` per CG step instead of forming and factoring an `f × f` matrix.
//!
//! # Implementation notes
//! - Rows are updated in parallel (rayon); each row's update reads only the
//!   fixed side, so results do not depend on the thread count. The Gram matrix
//!   is a single-threaded GEMM, so it is deterministic too: the same seed
//!   gives bit-identical factors.
//! - Inner products use eight independent accumulators so that they vectorise
//!   without fast-math.
//! - Regularisation is plain `λI`, as in the `implicit` Python library.

use crate::topk::top_k_dense;
use encore_data::Csr;
use ndarray::{Array2, ArrayView2, Axis, s};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// ALS hyper-parameters; see the module docs for their meaning.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlsParams {
    pub factors: usize,
    pub regularization: f32,
    pub alpha: f32,
    pub iterations: usize,
    pub cg_steps: usize,
    pub seed: u64,
}

/// Why ALS could not be fitted or assembled.
#[derive(Debug, thiserror::Error)]
pub enum AlsError {
    #[error("invalid ALS parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("the interaction matrix has no entries")]
    EmptyMatrix,
    #[error("non-finite value in {what}")]
    NonFinite { what: &'static str },
    #[error("shape mismatch: {what}")]
    ShapeMismatch { what: String },
}

impl AlsParams {
    /// Defaults: regularization 0.01, alpha 1, 15 iterations, 3 CG steps, seed 42.
    pub fn new(factors: usize) -> Self {
        AlsParams {
            factors,
            regularization: 0.01,
            alpha: 1.0,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
        }
    }

    pub fn regularization(mut self, v: f32) -> Self {
        self.regularization = v;
        self
    }

    pub fn alpha(mut self, v: f32) -> Self {
        self.alpha = v;
        self
    }

    pub fn iterations(mut self, v: usize) -> Self {
        self.iterations = v;
        self
    }

    pub fn cg_steps(mut self, v: usize) -> Self {
        self.cg_steps = v;
        self
    }

    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }

    /// Checks every parameter.
    pub fn check(&self) -> Result<(), AlsError> {
        let bad = |name, value: String, reason| {
            Err(AlsError::InvalidParam {
                name,
                value,
                reason,
            })
        };
        if self.factors == 0 || self.factors > 4096 {
            return bad(
                "factors",
                self.factors.to_string(),
                "must be between 1 and 4096",
            );
        }
        if !(self.regularization.is_finite() && self.regularization >= 0.0) {
            return bad(
                "regularization",
                self.regularization.to_string(),
                "must be a finite non-negative number",
            );
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad(
                "alpha",
                self.alpha.to_string(),
                "must be a finite non-negative number",
            );
        }
        if self.iterations == 0 {
            return bad("iterations", "0".into(), "must be at least 1");
        }
        if self.cg_steps == 0 {
            return bad("cg_steps", "0".into(), "must be at least 1");
        }
        Ok(())
    }

    /// Fits ALS to `interactions` (rows users, columns items, values `r_ui > 0`).
    pub fn fit(&self, interactions: &Csr) -> Result<Als, AlsError> {
        self.fit_with(interactions, &mut |_| {})
    }

    /// Like [`AlsParams::fit`], calling `on_iteration(i)` after iteration `i` (1-based).
    pub fn fit_with(
        &self,
        interactions: &Csr,
        on_iteration: &mut dyn FnMut(usize),
    ) -> Result<Als, AlsError> {
        self.check()?;
        if interactions.nnz() == 0 {
            return Err(AlsError::EmptyMatrix);
        }
        if interactions.values().iter().any(|v| !v.is_finite()) {
            return Err(AlsError::NonFinite {
                what: "interaction values",
            });
        }
        let f = self.factors;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let mut init =
            |n: usize| Array2::from_shape_simple_fn((n, f), || rng.r#gen::<f32>() * 0.01);
        let mut users = init(interactions.n_rows());
        let mut items = init(interactions.n_cols());
        let transposed = interactions.transpose();
        for it in 1..=self.iterations {
            solve_side(self, interactions, items.view(), &mut users);
            solve_side(self, &transposed, users.view(), &mut items);
            on_iteration(it);
        }
        if users.iter().chain(items.iter()).any(|v| !v.is_finite()) {
            return Err(AlsError::NonFinite { what: "factors" });
        }
        Als::from_factors(self.clone(), users, items)
    }
}

/// `Σ a_i b_i` with eight independent accumulators.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// `y += a x`.
#[inline]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `Gᵀ G` of the fixed factors (single-threaded GEMM: deterministic).
fn gram(fixed: ArrayView2<f32>) -> Array2<f32> {
    fixed.t().dot(&fixed)
}

/// One half-iteration: every row of `target` re-solved against `fixed`.
fn solve_side(p: &AlsParams, rows: &Csr, fixed: ArrayView2<f32>, target: &mut Array2<f32>) {
    let f = p.factors;
    let mut g = gram(fixed);
    for k in 0..f {
        g[[k, k]] += p.regularization;
    }
    let g = g.as_standard_layout().into_owned();
    let g = g.as_slice().expect("standard layout");
    let fixed = fixed.as_standard_layout();
    let fixed = fixed.as_slice().expect("standard layout");
    let alpha = p.alpha;
    let steps = p.cg_steps;
    target
        .as_slice_mut()
        .expect("factors are standard layout")
        .par_chunks_mut(f)
        .with_min_len(64)
        .enumerate()
        .for_each_init(
            || vec![0f32; 3 * f],
            |scratch, (u, x)| {
                let (cols, vals) = rows.row(u);
                cg_row(g, fixed, f, cols, vals, alpha, steps, x, scratch);
            },
        );
}

/// A few CG steps on one row's normal equations, warm-started from `x`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn cg_row(
    g: &[f32],
    fixed: &[f32],
    f: usize,
    cols: &[u32],
    vals: &[f32],
    alpha: f32,
    steps: usize,
    x: &mut [f32],
    scratch: &mut [f32],
) {
    let (r, rest) = scratch.split_at_mut(f);
    let (pv, ap) = rest.split_at_mut(f);
    // r = b - A x = Σ c y - (G x + Σ (c-1)(y·x) y)
    mat_vec(g, x, r, f);
    for v in r.iter_mut() {
        *v = -*v;
    }
    for (&i, &v) in cols.iter().zip(vals) {
        let y = &fixed[i as usize * f..(i as usize + 1) * f];
        let c = 1.0 + alpha * v;
        axpy(c - (c - 1.0) * dot(y, x), y, r);
    }
    pv.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        mat_vec(g, pv, ap, f);
        for (&i, &v) in cols.iter().zip(vals) {
            let y = &fixed[i as usize * f..(i as usize + 1) * f];
            axpy(alpha * v * dot(y, pv), y, ap);
        }
        let denom = dot(pv, ap);
        if denom <= 0.0 || !denom.is_finite() {
            break;
        }
        let a = rs_old / denom;
        axpy(a, pv, x);
        axpy(-a, ap, r);
        let rs_new = dot(r, r);
        let beta = rs_new / rs_old;
        for (p, &ri) in pv.iter_mut().zip(r.iter()) {
            *p = ri + beta * *p;
        }
        rs_old = rs_new;
    }
}

/// `out = G v` for a symmetric `f × f` matrix, as a sum of scaled rows (vectorises).
#[inline]
fn mat_vec(g: &[f32], v: &[f32], out: &mut [f32], f: usize) {
    out.fill(0.0);
    for (row, &vj) in g.chunks_exact(f).zip(v) {
        axpy(vj, row, out);
    }
}

/// A fitted ALS model.
#[derive(Debug, Clone)]
pub struct Als {
    params: AlsParams,
    users: Array2<f32>,
    items: Array2<f32>,
    /// `YᵀY` of the item factors, for folding in new baskets.
    item_gram: Array2<f32>,
}

impl Als {
    /// Assembles a model from stored factors, checking shapes and values.
    pub fn from_factors(
        params: AlsParams,
        users: Array2<f32>,
        items: Array2<f32>,
    ) -> Result<Als, AlsError> {
        params.check()?;
        if users.ncols() != params.factors || items.ncols() != params.factors {
            return Err(AlsError::ShapeMismatch {
                what: format!(
                    "factor matrices have {} and {} columns, params say {}",
                    users.ncols(),
                    items.ncols(),
                    params.factors
                ),
            });
        }
        if users.iter().chain(items.iter()).any(|v| !v.is_finite()) {
            return Err(AlsError::NonFinite { what: "factors" });
        }
        let users = users.as_standard_layout().into_owned();
        let items = items.as_standard_layout().into_owned();
        let item_gram = gram(items.view());
        Ok(Als {
            params,
            users,
            items,
            item_gram,
        })
    }

    pub fn params(&self) -> &AlsParams {
        &self.params
    }

    pub fn factors(&self) -> usize {
        self.params.factors
    }

    pub fn user_factors(&self) -> &Array2<f32> {
        &self.users
    }

    pub fn item_factors(&self) -> &Array2<f32> {
        &self.items
    }

    /// `out[i] = x_user · y_i` for every item.
    pub fn score_user(&self, user: usize, out: &mut [f32]) {
        let u = self.users.row(user);
        self.score_vector(u.as_slice().expect("standard layout"), out);
    }

    /// `out[i] = v · y_i` for every item.
    pub fn score_vector(&self, v: &[f32], out: &mut [f32]) {
        let f = self.factors();
        let items = self.items.as_slice().expect("standard layout");
        for (o, y) in out.iter_mut().zip(items.chunks_exact(f)) {
            *o = dot(v, y);
        }
    }

    /// The user vector ALS would give a customer whose interactions are
    /// `items` (`(item, r)` pairs), solved exactly (Cholesky) against the item factors.
    pub fn fold_in(&self, items: &[(u32, f32)]) -> Vec<f32> {
        let f = self.factors();
        let mut a = self.item_gram.clone();
        for k in 0..f {
            a[[k, k]] += self.params.regularization;
        }
        let mut b = vec![0f32; f];
        for &(i, r) in items {
            if i as usize >= self.items.nrows() || !(r.is_finite() && r > 0.0) {
                continue;
            }
            let y = self.items.row(i as usize);
            let c = 1.0 + self.params.alpha * r;
            for p in 0..f {
                b[p] += c * y[p];
                for q in 0..f {
                    a[[p, q]] += (c - 1.0) * y[p] * y[q];
                }
            }
        }
        cholesky_solve(a, b).unwrap_or_else(|| vec![0.0; f])
    }

    /// Top-`k` items for each user in `users`, skipping items in `exclude.row(user)`.
    pub fn recommend_batch(
        &self,
        users: &[u32],
        k: usize,
        exclude: Option<&Csr>,
    ) -> Vec<Vec<(u32, f32)>> {
        const BLOCK: usize = 128;
        users
            .par_chunks(BLOCK)
            .flat_map_iter(|block| {
                let idx: Vec<usize> = block.iter().map(|&u| u as usize).collect();
                let u = self.users.select(Axis(0), &idx);
                let scores = u.dot(&self.items.t());
                block
                    .iter()
                    .enumerate()
                    .map(|(r, &user)| {
                        let row = scores.slice(s![r, ..]);
                        let row = row.as_slice().expect("standard layout");
                        let skip: &[u32] = exclude.map_or(&[], |m| m.row(user as usize).0);
                        top_k_dense(row, k, |i| skip.binary_search(&i).is_ok())
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The full objective (see the module docs), in `f64`.
    pub fn loss(&self, interactions: &Csr) -> f64 {
        let f = self.factors();
        let alpha = self.params.alpha as f64;
        let g = &self.item_gram;
        let mut total: f64 = (0..self.users.nrows())
            .into_par_iter()
            .map(|u| {
                let x = self.users.row(u);
                let gx = g.dot(&x);
                let mut l = x.dot(&gx) as f64;
                let (cols, vals) = interactions.row(u);
                for (&i, &v) in cols.iter().zip(vals) {
                    let s = x.dot(&self.items.row(i as usize)) as f64;
                    let c = 1.0 + alpha * v as f64;
                    l += c * (1.0 - s).powi(2) - s * s;
                }
                l
            })
            .sum();
        let norms: f64 = self
            .users
            .iter()
            .chain(self.items.iter())
            .map(|&v| (v as f64).powi(2))
            .sum();
        total += self.params.regularization as f64 * norms;
        let _ = f;
        total
    }
}

/// Solves `a x = b` for symmetric positive definite `a`; `None` if it is not.
fn cholesky_solve(mut a: Array2<f32>, mut b: Vec<f32>) -> Option<Vec<f32>> {
    let n = b.len();
    for j in 0..n {
        let mut d = a[[j, j]] as f64;
        for k in 0..j {
            d -= (a[[j, k]] as f64).powi(2);
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[[j, j]] = d as f32;
        for i in j + 1..n {
            let mut v = a[[i, j]] as f64;
            for k in 0..j {
                v -= a[[i, k]] as f64 * a[[j, k]] as f64;
            }
            a[[i, j]] = (v / d) as f32;
        }
    }
    for i in 0..n {
        let mut v = b[i] as f64;
        for k in 0..i {
            v -= a[[i, k]] as f64 * b[k] as f64;
        }
        b[i] = (v / a[[i, i]] as f64) as f32;
    }
    for i in (0..n).rev() {
        let mut v = b[i] as f64;
        for k in i + 1..n {
            v -= a[[k, i]] as f64 * b[k] as f64;
        }
        b[i] = (v / a[[i, i]] as f64) as f32;
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{ProptestConfig, prop_assert, proptest};

    /// Users in `groups` groups each buy most items of their group.
    fn planted(users: usize, items: usize, groups: usize, seed: u64) -> Csr {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut t = Vec::new();
        for u in 0..users {
            let g = u % groups;
            for i in 0..items {
                if i % groups == g && rng.gen_bool(0.6) {
                    t.push((u as u32, i as u32, 1.0 + rng.r#gen::<f32>() * 3.0));
                }
            }
        }
        Csr::from_triplets(users, items, t)
    }

    #[test]
    fn same_seed_same_model() {
        let m = planted(60, 40, 4, 1);
        let p = AlsParams::new(8).iterations(4);
        let a = p.fit(&m).unwrap();
        let b = p.fit(&m).unwrap();
        assert_eq!(a.user_factors(), b.user_factors());
        assert_eq!(a.item_factors(), b.item_factors());
        let c = p.clone().seed(7).fit(&m).unwrap();
        assert_ne!(a.item_factors(), c.item_factors());
    }

    #[test]
    fn ranks_planted_structure() {
        let m = planted(80, 60, 4, 2);
        let als = AlsParams::new(4).alpha(5.0).iterations(10).fit(&m).unwrap();
        let mut scores = vec![0f32; 60];
        for u in 0..80 {
            als.score_user(u, &mut scores);
            let (bought, _) = m.row(u);
            let top = top_k_dense(&scores, 5, |i| bought.binary_search(&i).is_ok());
            // Unbought items of the user's own group should rank first.
            let own = top
                .iter()
                .filter(|&&(i, _)| i as usize % 4 == u % 4)
                .count();
            let unbought_own = (0..60u32)
                .filter(|&i| i as usize % 4 == u % 4 && bought.binary_search(&i).is_err())
                .count();
            assert_eq!(own, unbought_own.min(5), "user {u}: {top:?}");
        }
    }

    #[test]
    fn fold_in_matches_trained_user() {
        let m = planted(50, 40, 4, 3);
        let als = AlsParams::new(8)
            .alpha(5.0)
            .iterations(15)
            .cg_steps(8)
            .fit(&m)
            .unwrap();
        let (cols, vals) = m.row(3);
        let basket: Vec<(u32, f32)> = cols.iter().copied().zip(vals.iter().copied()).collect();
        let v = als.fold_in(&basket);
        let mut a = vec![0f32; 40];
        let mut b = vec![0f32; 40];
        als.score_user(3, &mut a);
        als.score_vector(&v, &mut b);
        let ta: Vec<u32> = top_k_dense(&a, 10, |_| false).iter().map(|x| x.0).collect();
        let tb: Vec<u32> = top_k_dense(&b, 10, |_| false).iter().map(|x| x.0).collect();
        let overlap = ta.iter().filter(|i| tb.contains(i)).count();
        assert!(overlap >= 8, "{ta:?} vs {tb:?}");
    }

    #[test]
    fn batch_equals_sort_and_truncate() {
        let m = planted(40, 30, 3, 4);
        let als = AlsParams::new(6).iterations(3).fit(&m).unwrap();
        let users: Vec<u32> = (0..40).collect();
        let batch = als.recommend_batch(&users, 7, Some(&m));
        let mut scores = vec![0f32; 30];
        for (u, got) in batch.iter().enumerate() {
            als.score_user(u, &mut scores);
            let (bought, _) = m.row(u);
            let mut all: Vec<(u32, f32)> = (0..30u32)
                .filter(|i| bought.binary_search(i).is_err())
                .map(|i| (i, scores[i as usize]))
                .collect();
            all.sort_by(crate::topk::rank_order);
            all.truncate(7);
            assert_eq!(
                got.iter().map(|x| x.0).collect::<Vec<_>>(),
                all.iter().map(|x| x.0).collect::<Vec<_>>()
            );
            for (g, w) in got.iter().zip(&all) {
                assert!((g.1 - w.1).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn bad_params_and_shapes() {
        let m = planted(10, 10, 2, 5);
        assert!(matches!(
            AlsParams::new(0).fit(&m),
            Err(AlsError::InvalidParam {
                name: "factors",
                ..
            })
        ));
        assert!(AlsParams::new(4).regularization(f32::NAN).check().is_err());
        assert!(AlsParams::new(4).cg_steps(0).check().is_err());
        assert!(matches!(
            AlsParams::new(4).fit(&Csr::from_triplets(3, 3, [])),
            Err(AlsError::EmptyMatrix)
        ));
        let bad = Als::from_factors(
            AlsParams::new(4),
            Array2::zeros((3, 4)),
            Array2::zeros((3, 5)),
        );
        assert!(matches!(bad, Err(AlsError::ShapeMismatch { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// With exact solves (enough CG steps) every half-iteration minimises the
        /// objective over one side, so the loss never increases.
        #[test]
        fn loss_does_not_increase(seed in 0u64..1000) {
            let m = planted(30, 20, 3, seed);
            let mut last = f64::INFINITY;
            for it in 1..=5 {
                let als = AlsParams::new(4).iterations(it).cg_steps(8).seed(seed).fit(&m).unwrap();
                let l = als.loss(&m);
                prop_assert!(l <= last * (1.0 + 1e-4) + 1e-6, "iteration {}: {} > {}", it, l, last);
                last = l;
            }
        }
    }
}
