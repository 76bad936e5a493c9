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
//! The CG iterations of a row are warm-started from its previous factors.
//!
//! Regularisation is plain `λI` (not scaled by the row's count), as in the
//! `implicit` Python library, so `regularization = 0.01` means the same in
//! both. (`implicit` takes the confidence to be the matrix value itself; feed
//! it `1 + alpha * r` to solve the same problem as here.)
//!
//! # Implementation notes
//! - **Determinism.** Rows are updated in parallel (rayon), but each row's
//!   update reads only the fixed side and its own previous value, so the result
//!   does not depend on the number of threads. The Gram matrix is summed over
//!   fixed chunks of rows in a fixed order. The same seed therefore gives
//!   bit-identical factors for any thread count on a given CPU.
//! - **Kernels.** Training pads the factor vectors with zeros to a multiple of
//!   16 floats (the padded coordinates stay exactly zero, and are dropped at
//!   the end). For padded sizes up to 128 the per-row CG is monomorphised on
//!   the size, so that its vectors live in registers and every loop is
//!   unrolled; larger sizes use the same CG on slices (slower per flop). The kernels are plain Rust shaped so that LLVM vectorises them
//!   (see `dot_n` in this module for how much the shape matters).
//! - **SIMD dispatch.** The kernels are compiled three times: for the build's
//!   baseline target, for AVX2 + FMA and for AVX-512F, and the widest one the
//!   CPU supports is picked at run time (`is_x86_feature_detected!`); the
//!   `als_bench` example and `bench/als_vs_implicit.sh` measure them (figures
//!   in `docs/benchmarks.md`). Calling the `#[target_feature]` builds is
//!   one of the two uses of `unsafe` here (the other is a prefetch hint). The FMA and non-FMA builds round differently, so factors are
//!   bit-identical only between runs that use the same build; set
//!   `ENCORE_ALS_SIMD=generic` (or `avx2`, `avx512`) to pin the choice, e.g.
//!   to compare runs across machines.
//! - **Memory.** The first CG pass over a row's nonzeros prefetches their
//!   fixed-side vectors a few rows ahead and copies them into a contiguous
//!   per-thread buffer that the later passes stream from cache (rows with more
//!   than 4096 nonzeros read them in place instead, which bounds the buffer).
//!   Training holds the interaction matrix's transpose, both (padded) factor
//!   matrices and the buffers.
//! - **Serving.** [`Als::recommend_batch`] scores blocks of users against tiles
//!   of items with a GEMM (`ndarray`/`matrixmultiply`), keeping the score tile
//!   in cache, and selects the top `k` with a threshold test that rejects most
//!   items with one comparison per 16 scores. For a batch of at least one
//!   block of users the items are taken by decreasing norm: once every user
//!   of a block has `k` items scoring more than `|x|` times a tile's largest
//!   item norm (Cauchy–Schwarz, with room for rounding), that tile's product
//!   is skipped. The lists are the same either way.

use crate::setting::{InvalidSetting, at_least_one, non_negative};
use crate::topk::rank_order;
use encore_data::Csr;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Axis, s};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// ALS hyper-parameters; see the module docs for their meaning.
///
/// Build with [`AlsParams::new`] and the builder methods, then [`AlsParams::fit`]:
///
/// ```
/// use encore_data::Csr;
/// use encore_model::cf::als::AlsParams;
///
/// let m = Csr::from_triplets(3, 4, [(0, 1, 2.0), (1, 1, 1.0), (1, 2, 1.0), (2, 3, 5.0)]);
/// let als = AlsParams::new(2).iterations(5).seed(1).fit(&m).unwrap();
/// let mut scores = vec![0.0; 4];
/// als.score_user(0, &mut scores);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlsParams {
    /// Dimension of the user and item vectors.
    pub factors: usize,
    /// `λ`, the weight of the squared norms of the factors.
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub regularization: f32,
    /// Confidence slope: `c = 1 + alpha * r`.
    #[serde(serialize_with = "crate::serde_f32::shortest")]
    pub alpha: f32,
    /// Number of alternating (users, then items) iterations.
    pub iterations: usize,
    /// Conjugate-gradient steps per row and half-iteration.
    pub cg_steps: usize,
    /// Seed of the random initial factors.
    pub seed: u64,
}

/// Why ALS could not be fitted or assembled.
#[derive(Debug, thiserror::Error)]
pub enum AlsError {
    /// A hyper-parameter is out of range.
    #[error("invalid ALS parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The interaction matrix has no stored entry.
    #[error("the interaction matrix has no entries")]
    EmptyMatrix,
    /// An input or the result holds NaN or an infinity.
    #[error("non-finite value in {what}")]
    NonFinite { what: &'static str },
    /// An interaction value is zero or negative (confidence would not exceed 1).
    #[error("interaction ({row}, {col}) is {value}; values must be positive")]
    NonPositive { row: usize, col: u32, value: f32 },
    /// Factor matrices disagree with each other or with the parameters.
    #[error("shape mismatch: {what}")]
    ShapeMismatch { what: String },
}

crate::setting::invalid_setting_from!(AlsError);

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

    /// Sets `λ`.
    pub fn regularization(mut self, v: f32) -> Self {
        self.regularization = v;
        self
    }

    /// Sets the confidence slope (`c = 1 + alpha * r`).
    pub fn alpha(mut self, v: f32) -> Self {
        self.alpha = v;
        self
    }

    /// Sets the number of iterations.
    pub fn iterations(mut self, v: usize) -> Self {
        self.iterations = v;
        self
    }

    /// Sets the CG steps per row and half-iteration.
    pub fn cg_steps(mut self, v: usize) -> Self {
        self.cg_steps = v;
        self
    }

    /// Sets the seed of the initial factors.
    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }

    /// Checks every parameter.
    pub fn check(&self) -> Result<(), AlsError> {
        if !(1..=4096).contains(&self.factors) {
            let e = InvalidSetting::new("factors", self.factors, "must be between 1 and 4096");
            return Err(e.into());
        }
        non_negative(&[
            ("regularization", self.regularization),
            ("alpha", self.alpha),
        ])?;
        at_least_one(&[("iterations", self.iterations), ("cg_steps", self.cg_steps)])?;
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
        self.fit_impl(interactions, Isa::detect(), on_iteration)
    }

    fn fit_impl(
        &self,
        interactions: &Csr,
        isa: Isa,
        on_iteration: &mut dyn FnMut(usize),
    ) -> Result<Als, AlsError> {
        self.check()?;
        if interactions.nnz() == 0 {
            return Err(AlsError::EmptyMatrix);
        }
        check_values(interactions)?;
        let f = self.factors;
        // Training runs on rows padded with zeros to a multiple of LANES
        // (padded coordinates stay exactly zero; see `solve_side`).
        let fp = f.next_multiple_of(LANES);
        // Users first, then items, from one stream: uniform in [0, 0.01) like
        // `implicit`; the same values whatever the padding.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let mut init = |n: usize| {
            let mut a = Array2::<f32>::zeros((n, fp));
            for mut row in a.rows_mut() {
                for v in row.iter_mut().take(f) {
                    *v = rng.r#gen::<f32>() * 0.01;
                }
            }
            a
        };
        let mut users = init(interactions.n_rows());
        let mut items = init(interactions.n_cols());
        let transposed = interactions.transpose();
        for it in 1..=self.iterations {
            let start = std::time::Instant::now();
            solve_side(self, isa, interactions, &items, &mut users);
            solve_side(self, isa, &transposed, &users, &mut items);
            tracing::debug!(
                iteration = it,
                seconds = start.elapsed().as_secs_f64(),
                "ALS iteration"
            );
            on_iteration(it);
        }
        drop(transposed);
        if users.iter().chain(items.iter()).any(|v| !v.is_finite()) {
            return Err(AlsError::NonFinite { what: "factors" });
        }
        let unpad = |a: Array2<f32>| {
            if fp == f {
                a
            } else {
                a.slice(s![.., ..f]).to_owned()
            }
        };
        let users = unpad(users);
        let items = unpad(items);
        Als::from_factors(self.clone(), users, items)
    }
}

/// Every interaction value must be finite and positive.
fn check_values(m: &Csr) -> Result<(), AlsError> {
    if m.values().iter().all(|&v| v.is_finite() && v > 0.0) {
        return Ok(());
    }
    for r in 0..m.n_rows() {
        let (cols, vals) = m.row(r);
        for (&col, &value) in cols.iter().zip(vals) {
            if !value.is_finite() {
                return Err(AlsError::NonFinite {
                    what: "interaction values",
                });
            }
            if value <= 0.0 {
                return Err(AlsError::NonPositive { row: r, col, value });
            }
        }
    }
    unreachable!("a bad value was seen above")
}

// ---------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------

/// Width of the accumulator arrays: one AVX-512 register, two AVX2 ones.
const LANES: usize = 16;

/// Rows with more nonzeros than this read the fixed-side vectors in place
/// instead of gathering them (bounds the per-thread buffer to `GATHER_MAX · f`).
const GATHER_MAX: usize = 4096;

/// The instruction-set level the kernels run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// Whatever the build target allows (SSE2 on a default x86-64 build).
    Generic,
    /// AVX2 with fused multiply-add.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F (and FMA).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The best level the CPU supports, or the one `ENCORE_ALS_SIMD` pins
    /// (`generic`, `avx2`, `avx512`; a level the CPU lacks falls back to the best).
    fn detect() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let wanted = std::env::var("ENCORE_ALS_SIMD").ok();
            let available = Isa::available();
            let pinned = wanted.as_deref().and_then(|w| {
                available
                    .iter()
                    .copied()
                    .find(|isa| isa.name().eq_ignore_ascii_case(w))
            });
            pinned.unwrap_or(*available.last().expect("generic is always available"))
        })
    }

    /// Every level this CPU can run, narrowest first.
    fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Generic];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
                if is_x86_feature_detected!("avx512f") {
                    v.push(Isa::Avx512);
                }
            }
        }
        v
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
        }
    }
}

/// Defines `$name(isa, args..)`, which runs `$imp::<FMA>(args..)` compiled
/// for the instruction set `isa`. `$imp` and everything it calls must be
/// `#[inline(always)]` so that it is compiled inside the `#[target_feature]`
/// wrapper, and must not do float arithmetic in closures: closures do not
/// inherit target features (a `mul_add` in one becomes a libm call).
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* fn $name:ident => $imp:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {
        $(#[$meta])*
        fn $name(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $imp::<true>($($arg),*)
                }
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $imp::<true>($($arg),*)
                }
                match isa {
                    // SAFETY: `Isa::Avx2` is only produced by `Isa::available`
                    // after `is_x86_feature_detected!` confirmed AVX2 and FMA.
                    Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    // SAFETY: as above, for AVX-512F, AVX2 and FMA.
                    Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    Isa::Generic => {}
                }
            }
            let _ = isa;
            $imp::<false>($($arg),*)
        }
    };
}

/// `a * b + c`, fused when the FMA build is running.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Sum of the lanes, pairwise (halves added to halves), written with
/// fixed-size arrays so that it compiles to a few vector shuffles and adds.
#[inline(always)]
fn hsum(v: [f32; LANES]) -> f32 {
    let mut h8 = [0f32; 8];
    for k in 0..8 {
        h8[k] = v[k] + v[k + 8];
    }
    let mut h4 = [0f32; 4];
    for k in 0..4 {
        h4[k] = h8[k] + h8[k + 4];
    }
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

/// `Σ a_i b_i` over the common length, with `LANES` independent accumulators
/// (the serving and loss paths; training uses [`dot_n`]).
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            acc[k] = madd::<FMA>(x[k], y[k], acc[k]);
        }
    }
    for (k, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        acc[k] = madd::<FMA>(x, y, acc[k]);
    }
    hsum(acc)
}

/// `out = G v` for a symmetric `f × f` matrix `g` (row-major), as a sum of
/// scaled rows (the loss path).
fn symv(g: &[f32], v: &[f32], out: &mut [f32], f: usize) {
    out.fill(0.0);
    for (row, &vj) in g.chunks_exact(f).zip(v) {
        for (o, &gj) in out.iter_mut().zip(row) {
            *o += vj * gj;
        }
    }
}

/// What one half-iteration shares between rows. Vectors are padded to
/// `f = chunks · LANES` floats.
struct Side<'a> {
    /// The sparse rows being solved for (users, or items for the transpose).
    rows: &'a Csr,
    /// The fixed factors, row-major `n_fixed × f`.
    fixed: &'a [f32],
    /// `FᵀF + λI` of the fixed factors, row-major `f × f`.
    gram: &'a [f32],
    f: usize,
    alpha: f32,
    steps: usize,
}

/// Per-thread work buffers.
#[derive(Default)]
struct Scratch {
    /// `c − 1 = alpha r` per nonzero of the row.
    w: Vec<f32>,
    /// Gathered fixed-side vectors of the row's nonzeros.
    ys: Vec<f32>,
    /// CG vectors of the slice kernel: r, p, A p.
    cg: Vec<f32>,
}

simd_dispatch! {
    /// Re-solves rows `first ..` of the target (whose factors are `out`, `f` per row).
    fn solve_rows => solve_rows_impl(side: &Side<'_>, first: usize, out: &mut [f32], s: &mut Scratch)
}

#[inline(always)]
fn solve_rows_impl<const FMA: bool>(
    side: &Side<'_>,
    first: usize,
    out: &mut [f32],
    s: &mut Scratch,
) {
    match side.f {
        16 => solve_rows_fixed::<FMA, 16>(side, first, out, s),
        32 => solve_rows_fixed::<FMA, 32>(side, first, out, s),
        48 => solve_rows_fixed::<FMA, 48>(side, first, out, s),
        64 => solve_rows_fixed::<FMA, 64>(side, first, out, s),
        80 => solve_rows_fixed::<FMA, 80>(side, first, out, s),
        96 => solve_rows_fixed::<FMA, 96>(side, first, out, s),
        112 => solve_rows_fixed::<FMA, 112>(side, first, out, s),
        128 => solve_rows_fixed::<FMA, 128>(side, first, out, s),
        _ => solve_rows_dyn::<FMA>(side, first, out, s),
    }
}

/// Fills `s.w` with `alpha r` of a row and, if the row is small enough to
/// gather, returns a buffer of `n · f` floats for its fixed vectors.
#[inline(always)]
fn prepare_row<'s>(
    side: &Side<'_>,
    vals: &[f32],
    s: &'s mut Scratch,
) -> (&'s [f32], Option<&'s mut [f32]>) {
    s.w.clear();
    s.w.extend(vals.iter().map(|&v| side.alpha * v));
    if vals.len() > GATHER_MAX {
        return (&s.w, None);
    }
    let need = vals.len() * side.f;
    if s.ys.len() < need {
        s.ys.resize(need, 0.0);
    }
    (&s.w, Some(&mut s.ys[..need]))
}

/// [`solve_rows_impl`] for `f == F`: every vector of the CG lives in
/// registers (fully unrolled loops).
#[inline(always)]
fn solve_rows_fixed<const FMA: bool, const F: usize>(
    side: &Side<'_>,
    first: usize,
    out: &mut [f32],
    s: &mut Scratch,
) {
    let (fixed, _) = side.fixed.as_chunks::<F>();
    let (gram, _) = side.gram.as_chunks::<F>();
    let (xs, _) = out.as_chunks_mut::<F>();
    for (k, x) in xs.iter_mut().enumerate() {
        let (cols, vals) = side.rows.row(first + k);
        let (w, gather) = prepare_row(side, vals, s);
        let gather = gather.map(|g| g.as_chunks_mut::<F>().0);
        cg_fixed::<FMA, F>(gram, fixed, cols, w, gather, side.steps, x);
    }
}

/// `Σ a_i b_i` for `F`-vectors (`F` a multiple of `LANES`): the products
/// as whole vectors, summed vertically into `LANES` lanes, then across lanes.
///
/// This exact shape matters: it is the one form among those tried for which
/// LLVM keeps everything in full-width registers (accumulating into an
/// array indexed by a loop variable, or starting from a zero accumulator,
/// made it split the sums into two-lane pieces through the stack).
#[inline(always)]
fn dot_n<const F: usize>(a: &[f32; F], b: &[f32; F]) -> f32 {
    const { assert!(F.is_multiple_of(LANES) && F >= LANES) };
    let mut prod = [0f32; F];
    for k in 0..F {
        prod[k] = a[k] * b[k];
    }
    let mut acc = [0f32; LANES];
    acc.copy_from_slice(&prod[..LANES]);
    for c in 1..F / LANES {
        for k in 0..LANES {
            acc[k] += prod[c * LANES + k];
        }
    }
    hsum(acc)
}

/// `y += a x` for `F`-vectors.
#[inline(always)]
fn axpy_n<const FMA: bool, const F: usize>(a: f32, x: &[f32; F], y: &mut [f32; F]) {
    for k in 0..F {
        y[k] = madd::<FMA>(a, x[k], y[k]);
    }
}

/// `G v` for a symmetric `F × F` matrix given by its rows, as a sum of
/// scaled rows with two interleaved accumulators.
#[inline(always)]
fn symv_n<const FMA: bool, const F: usize>(g: &[[f32; F]], v: &[f32; F]) -> [f32; F] {
    let mut a0 = [0f32; F];
    let mut a1 = [0f32; F];
    let (pairs, rest) = g.as_chunks::<2>();
    let (vpairs, vrest) = v.as_chunks::<2>();
    for (rows, vv) in pairs.iter().zip(vpairs) {
        for k in 0..F {
            a0[k] = madd::<FMA>(vv[0], rows[0][k], a0[k]);
            a1[k] = madd::<FMA>(vv[1], rows[1][k], a1[k]);
        }
    }
    for (row, &vj) in rest.iter().zip(vrest) {
        axpy_n::<FMA, F>(vj, row, &mut a0);
    }
    for k in 0..F {
        a0[k] += a1[k];
    }
    a0
}

/// `ap += Σ_j w_j (y_j·p) y_j` over `(y_j, w_j)` pairs.
#[inline(always)]
fn sparse_ap<'a, const FMA: bool, const F: usize>(
    pairs: impl Iterator<Item = (&'a [f32; F], f32)>,
    p: &[f32; F],
    ap: &mut [f32; F],
) {
    for (y, wj) in pairs {
        let z = dot_n::<F>(y, p);
        axpy_n::<FMA, F>(wj * z, y, ap);
    }
}

/// How many nonzeros ahead the first pass prefetches fixed-side vectors.
const PREFETCH_AHEAD: usize = 8;

/// Hints the CPU to bring `v` into the L1 cache (a no-op off x86-64).
///
/// The first pass over a row's nonzeros is bound by the latency of fetching
/// their (scattered) fixed vectors; prefetching a few rows ahead hides part
/// of that latency (measured by the `als_bench` example).
#[inline(always)]
fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: SSE is part of the x86-64 baseline, and a prefetch never
        // faults or changes memory; the address is that of a live slice.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// `r += (1 + w − w y·x) y`: one nonzero's share of `b − A x`.
///
/// (A function, not a closure: closures do not inherit `#[target_feature]`.)
#[inline(always)]
fn residual_term<const FMA: bool, const F: usize>(
    y: &[f32; F],
    w: f32,
    x: &[f32; F],
    r: &mut [f32; F],
) {
    let z = dot_n::<F>(y, x);
    axpy_n::<FMA, F>(1.0 + w - w * z, y, r);
}

/// `steps` CG steps on one row's normal equations
/// `(G + Σ_j w_j y_j y_jᵀ) x = Σ_j (1 + w_j) y_j` (with `G = FᵀF + λI`),
/// warm-started from `x_out`, for `f == F`.
///
/// `cols` and `w` are the row's nonzeros and their `c − 1`; `fixed` the
/// fixed side's vectors. `gather`, when given, has room for one vector per
/// nonzero: the first pass fills it and the later passes read it
/// contiguously.
#[inline(always)]
fn cg_fixed<const FMA: bool, const F: usize>(
    gram: &[[f32; F]],
    fixed: &[[f32; F]],
    cols: &[u32],
    w: &[f32],
    gather: Option<&mut [[f32; F]]>,
    steps: usize,
    x_out: &mut [f32; F],
) {
    let mut x = *x_out;
    // r = b − A x = Σ_j (c_j − (c_j − 1) y_j·x) y_j − G x, with c_j = 1 + w_j.
    let mut r = symv_n::<FMA, F>(gram, &x);
    for v in r.iter_mut() {
        *v = -*v;
    }
    let gathered: Option<&[[f32; F]]> = match gather {
        Some(ys) => {
            for (j, ((&c, &wj), slot)) in cols.iter().zip(w).zip(ys.iter_mut()).enumerate() {
                if let Some(&ahead) = cols.get(j + PREFETCH_AHEAD) {
                    prefetch(&fixed[ahead as usize]);
                }
                let y = &fixed[c as usize];
                *slot = *y;
                residual_term::<FMA, F>(y, wj, &x, &mut r);
            }
            Some(ys)
        }
        None => {
            for (j, (&c, &wj)) in cols.iter().zip(w).enumerate() {
                if let Some(&ahead) = cols.get(j + PREFETCH_AHEAD) {
                    prefetch(&fixed[ahead as usize]);
                }
                residual_term::<FMA, F>(&fixed[c as usize], wj, &x, &mut r);
            }
            None
        }
    };
    let mut p = r;
    let mut rs_old = dot_n::<F>(&r, &r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        let mut ap = symv_n::<FMA, F>(gram, &p);
        match gathered {
            Some(ys) => sparse_ap::<FMA, F>(ys.iter().zip(w.iter().copied()), &p, &mut ap),
            None => sparse_ap::<FMA, F>(
                cols.iter()
                    .map(|&c| &fixed[c as usize])
                    .zip(w.iter().copied()),
                &p,
                &mut ap,
            ),
        }
        let pap = dot_n::<F>(&p, &ap);
        if !(pap > 0.0 && pap.is_finite()) {
            break;
        }
        let a = rs_old / pap;
        axpy_n::<FMA, F>(a, &p, &mut x);
        axpy_n::<FMA, F>(-a, &ap, &mut r);
        let rs_new = dot_n::<F>(&r, &r);
        let beta = rs_new / rs_old;
        for k in 0..F {
            p[k] = madd::<FMA>(beta, p[k], r[k]);
        }
        rs_old = rs_new;
    }
    *x_out = x;
}

/// `y += a x` over the common length.
#[inline(always)]
fn axpy<const FMA: bool>(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = madd::<FMA>(a, xi, *yi);
    }
}

/// [`solve_rows_impl`] for padded sizes without a fixed-size kernel (above
/// 128): the same CG as [`cg_fixed`] on slices, with its vectors in scratch.
#[inline(always)]
fn solve_rows_dyn<const FMA: bool>(
    side: &Side<'_>,
    first: usize,
    out: &mut [f32],
    s: &mut Scratch,
) {
    let f = side.f;
    let mut cg = std::mem::take(&mut s.cg);
    cg.resize(3 * f, 0.0);
    let (r, rest) = cg.split_at_mut(f);
    let (p, ap) = rest.split_at_mut(f);
    for (k, x) in out.chunks_exact_mut(f).enumerate() {
        let (cols, vals) = side.rows.row(first + k);
        let (w, gather) = prepare_row(side, vals, s);
        let fixed_row = |c: u32| &side.fixed[c as usize * f..(c as usize + 1) * f];
        // r = b − A x
        r.fill(0.0);
        for (g, &xj) in side.gram.chunks_exact(f).zip(x.iter()) {
            axpy::<FMA>(-xj, g, r);
        }
        for (j, (&c, &wj)) in cols.iter().zip(w).enumerate() {
            if let Some(&ahead) = cols.get(j + PREFETCH_AHEAD) {
                prefetch(fixed_row(ahead));
            }
            let y = fixed_row(c);
            let z = dot::<FMA>(y, x);
            axpy::<FMA>(1.0 + wj - wj * z, y, r);
        }
        let gathered: Option<&[f32]> = match gather {
            Some(ys) => {
                for (slot, &c) in ys.chunks_exact_mut(f).zip(cols) {
                    slot.copy_from_slice(fixed_row(c));
                }
                Some(ys)
            }
            None => None,
        };
        p.copy_from_slice(r);
        let mut rs_old = dot::<FMA>(r, r);
        for _ in 0..side.steps {
            if rs_old < 1e-20 {
                break;
            }
            ap.fill(0.0);
            for (g, &pj) in side.gram.chunks_exact(f).zip(p.iter()) {
                axpy::<FMA>(pj, g, ap);
            }
            match gathered {
                Some(ys) => {
                    for (y, &wj) in ys.chunks_exact(f).zip(w) {
                        let z = dot::<FMA>(y, p);
                        axpy::<FMA>(wj * z, y, ap);
                    }
                }
                None => {
                    for (&c, &wj) in cols.iter().zip(w) {
                        let y = fixed_row(c);
                        let z = dot::<FMA>(y, p);
                        axpy::<FMA>(wj * z, y, ap);
                    }
                }
            }
            let pap = dot::<FMA>(p, ap);
            if !(pap > 0.0 && pap.is_finite()) {
                break;
            }
            let a = rs_old / pap;
            axpy::<FMA>(a, p, x);
            axpy::<FMA>(-a, ap, r);
            let rs_new = dot::<FMA>(r, r);
            let beta = rs_new / rs_old;
            for (pi, &ri) in p.iter_mut().zip(r.iter()) {
                *pi = madd::<FMA>(beta, *pi, ri);
            }
            rs_old = rs_new;
        }
    }
    s.cg = cg;
}

simd_dispatch! {
    /// `out[i] = v · rows[i]` for each `f`-long row of `rows`.
    fn score_rows => score_rows_impl(v: &[f32], rows: &[f32], out: &mut [f32])
}

#[inline(always)]
fn score_rows_impl<const FMA: bool>(v: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, y) in out.iter_mut().zip(rows.chunks_exact(v.len())) {
        *o = dot::<FMA>(v, y);
    }
}

simd_dispatch! {
    /// `out[b * n + i] = vectors[b] · rows[i]` for each `f`-long vector of
    /// `vectors` and each of the `n` `f`-long rows of `rows`, a tile of rows
    /// at a time for all the vectors.
    fn score_rows_tiled => score_rows_tiled_impl(vectors: &[f32], rows: &[f32], f: usize, out: &mut [f32])
}

/// Users a caller of [`Als::score_users`] may score together: 16 users'
/// scores over a 50,000-item catalog are 3.2 MB, and the item factors are
/// then read once for 16 users instead of once for each.
pub const SCORE_BLOCK: usize = 16;

/// Item rows per tile of [`score_rows_tiled`]: 256 rows of 64 factors are
/// 64 KiB, read from the nearest caches by every vector of the block.
const SCORE_TILE: usize = 256;

#[inline(always)]
fn score_rows_tiled_impl<const FMA: bool>(
    vectors: &[f32],
    rows: &[f32],
    f: usize,
    out: &mut [f32],
) {
    let n = rows.len() / f;
    for (t, tile) in rows.chunks(SCORE_TILE * f).enumerate() {
        let start = t * SCORE_TILE;
        for (b, v) in vectors.chunks_exact(f).enumerate() {
            let row_out = &mut out[b * n + start..b * n + start + tile.len() / f];
            score_rows_impl::<FMA>(v, tile, row_out);
        }
    }
}

/// Rows summed per partial Gram matrix; fixed so that the sum's order (and
/// so its rounding) does not depend on the thread count.
const GRAM_CHUNK: usize = 8192;

/// `FᵀF` of the fixed factors: partial products over fixed chunks of rows
/// (in parallel), summed in chunk order.
fn gram(fixed: ArrayView2<'_, f32>) -> Array2<f32> {
    let f = fixed.ncols();
    let chunks: Vec<ArrayView2<'_, f32>> = fixed.axis_chunks_iter(Axis(0), GRAM_CHUNK).collect();
    let partials: Vec<Array2<f32>> = chunks.par_iter().map(|c| c.t().dot(c)).collect();
    let mut g = Array2::zeros((f, f));
    for p in &partials {
        g += p;
    }
    // Exactly symmetric, whatever the GEMM's rounding.
    for i in 0..f {
        for j in 0..i {
            g[[i, j]] = g[[j, i]];
        }
    }
    g
}

/// Rows per rayon task in a half-iteration.
const ROWS_PER_TASK: usize = 32;

/// One half-iteration: every row of `target` re-solved against `fixed`.
///
/// Both factor matrices are padded with zero columns to a multiple of
/// `LANES`. The padded coordinates stay exactly zero: the Gram matrix is zero
/// in their rows and columns except for `λ` on the diagonal, the fixed
/// vectors are zero there, so the residual, the search direction and the
/// update are zero there too.
fn solve_side(p: &AlsParams, isa: Isa, rows: &Csr, fixed: &Array2<f32>, target: &mut Array2<f32>) {
    let f = fixed.ncols();
    debug_assert!(f.is_multiple_of(LANES));
    debug_assert_eq!(target.ncols(), f);
    let mut g = gram(fixed.view());
    for k in 0..f {
        g[[k, k]] += p.regularization;
    }
    let side = Side {
        rows,
        fixed: fixed.as_slice().expect("factors are standard layout"),
        gram: g.as_slice().expect("standard layout"),
        f,
        alpha: p.alpha,
        steps: p.cg_steps,
    };
    target
        .as_slice_mut()
        .expect("factors are standard layout")
        .par_chunks_mut(f * ROWS_PER_TASK)
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (t, out)| {
            solve_rows(isa, &side, t * ROWS_PER_TASK, out, scratch);
        });
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// A fitted ALS model.
#[derive(Debug, Clone)]
pub struct Als {
    params: AlsParams,
    users: Array2<f32>,
    items: Array2<f32>,
    /// `YᵀY` of the item factors (no `λ`), for folding in and the loss.
    item_gram: Array2<f32>,
}

impl Als {
    /// Assembles a model from stored factors (`n_users × f` and `n_items × f`),
    /// checking the parameters, shapes and values.
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
        let standard = |a: Array2<f32>| {
            if a.is_standard_layout() {
                a
            } else {
                a.as_standard_layout().into_owned()
            }
        };
        let users = standard(users);
        let items = standard(items);
        let item_gram = gram(items.view());
        Ok(Als {
            params,
            users,
            items,
            item_gram,
        })
    }

    /// The hyper-parameters the model was trained with.
    pub fn params(&self) -> &AlsParams {
        &self.params
    }

    /// Dimension of the factor vectors.
    pub fn factors(&self) -> usize {
        self.params.factors
    }

    /// User factors, `n_users × factors`.
    pub fn user_factors(&self) -> &Array2<f32> {
        &self.users
    }

    /// Item factors, `n_items × factors`.
    pub fn item_factors(&self) -> &Array2<f32> {
        &self.items
    }

    /// `out[i] = x_user · y_i` for every item.
    ///
    /// Panics if `user` is out of range or `out.len()` is not the number of items.
    pub fn score_user(&self, user: usize, out: &mut [f32]) {
        let f = self.factors();
        let users = self.users.as_slice().expect("standard layout");
        self.score_vector(&users[user * f..(user + 1) * f], out);
    }

    /// [`Als::score_user`] for each of `users` at once: row `r` of `out`
    /// (`users.len()` rows of one score per item) holds the scores of
    /// `users[r]`, each the same sum [`Als::score_user`] gives. The item
    /// factors are read a tile at a time for all the users, instead of once
    /// per user: for a catalog too large for the cache this is what the
    /// scoring costs.
    ///
    /// Panics if a user is out of range or `out.len()` is not
    /// `users.len()` times the number of items.
    pub fn score_users(&self, users: &[u32], out: &mut [f32]) {
        let f = self.factors();
        let n_items = self.items.nrows();
        assert_eq!(out.len(), users.len() * n_items, "score buffer length");
        let all = self.users.as_slice().expect("standard layout");
        let vectors: Vec<f32> = users
            .iter()
            .flat_map(|&u| &all[u as usize * f..(u as usize + 1) * f])
            .copied()
            .collect();
        let items = self.items.as_slice().expect("standard layout");
        score_rows_tiled(Isa::detect(), &vectors, items, f, out);
    }

    /// `out[i] = v · y_i` for every item.
    ///
    /// Panics if `v.len()` is not [`Als::factors`] or `out.len()` is not the number of items.
    pub fn score_vector(&self, v: &[f32], out: &mut [f32]) {
        assert_eq!(v.len(), self.factors(), "user vector length");
        assert_eq!(out.len(), self.items.nrows(), "score buffer length");
        let items = self.items.as_slice().expect("standard layout");
        score_rows(Isa::detect(), v, items, out);
    }

    /// The user vector ALS would give a customer whose interactions are
    /// `items` (`(item, r)` pairs, each item at most once): the exact solution
    /// (Cholesky, in `f64`) of the row's regularised weighted least squares
    /// against the item factors. Items out of range and non-positive or
    /// non-finite `r` are ignored; an empty basket gives the zero vector.
    pub fn fold_in(&self, items: &[(u32, f32)]) -> Vec<f32> {
        let f = self.factors();
        let lambda = self.params.regularization as f64;
        let alpha = self.params.alpha as f64;
        let mut a: Vec<f64> = self.item_gram.iter().map(|&v| v as f64).collect();
        for k in 0..f {
            a[k * f + k] += lambda;
        }
        let mut b = vec![0f64; f];
        let mut y = vec![0f64; f];
        for &(i, r) in items {
            if i as usize >= self.items.nrows() || !(r.is_finite() && r > 0.0) {
                continue;
            }
            for (yk, &v) in y.iter_mut().zip(self.items.row(i as usize)) {
                *yk = v as f64;
            }
            let w = alpha * r as f64;
            for (p, &yp) in y.iter().enumerate() {
                b[p] += (1.0 + w) * yp;
                let scaled = w * yp;
                for (apq, &yq) in a[p * f..(p + 1) * f].iter_mut().zip(&y) {
                    *apq += scaled * yq;
                }
            }
        }
        match cholesky_solve(&mut a, &mut b, f) {
            true => b.into_iter().map(|v| v as f32).collect(),
            false => vec![0.0; f],
        }
    }

    /// Top-`k` items for each user in `users` (best first: descending score,
    /// ties to the lower item index), skipping the items of `exclude.row(user)`.
    /// NaN scores are never returned.
    ///
    /// Panics if a user index is out of range (of the model, or of `exclude`).
    pub fn recommend_batch(
        &self,
        users: &[u32],
        k: usize,
        exclude: Option<&Csr>,
    ) -> Vec<Vec<(u32, f32)>> {
        let n_users = self.users.nrows();
        if let Some(&bad) = users.iter().find(|&&u| u as usize >= n_users) {
            panic!("user {bad} out of range ({n_users} users)");
        }
        if k == 0 {
            return vec![Vec::new(); users.len()];
        }
        // Ordering the items costs a copy of their factors: worth it once a
        // whole block of users shares it.
        let tiles = ItemTiles::new(self.items.view(), users.len() >= REC_USER_BLOCK);
        users
            .par_chunks(REC_USER_BLOCK)
            .flat_map_iter(|block| {
                let idx: Vec<usize> = block.iter().map(|&u| u as usize).collect();
                let u = self.users.select(Axis(0), &idx);
                let norms: Vec<f64> = u.rows().into_iter().map(|r| norm(&r)).collect();
                let mut tops: Vec<TopList> = block.iter().map(|_| TopList::new(k)).collect();
                let width = REC_ITEM_TILE.min(tiles.order.len());
                let mut scores = Array2::<f32>::zeros((block.len(), width));
                for (items, factors, max_norm) in tiles.iter() {
                    // By Cauchy–Schwarz no user of the block scores an item
                    // of this tile above its k-th best: skip the product.
                    let bound = max_norm * ROUNDING_ROOM;
                    if tops
                        .iter()
                        .zip(&norms)
                        .all(|(top, &n)| top.beats_all_below(n * bound))
                    {
                        continue;
                    }
                    let mut out = scores.slice_mut(s![.., ..items.len()]);
                    general_mat_mul(1.0, &u, &factors.t(), 0.0, &mut out);
                    for ((top, row), &user) in tops.iter_mut().zip(out.rows()).zip(block) {
                        let skip: &[u32] = exclude.map_or(&[], |m| m.row(user as usize).0);
                        top.scan(
                            row.as_slice().expect("rows of a standard-layout slice"),
                            items,
                            skip,
                        );
                    }
                }
                tops.into_iter().map(TopList::into_sorted)
            })
            .collect()
    }

    /// The full objective (see the module docs) on `interactions`, in `f64`:
    /// `Σ_u xᵀ(YᵀY)x + Σ_{(u,i) stored} [c (1 − s)² − s²] + λ(|X|² + |Y|²)`
    /// with `s = x_u·y_i`, which equals the sum over all pairs without visiting them.
    ///
    /// Panics if the shape of `interactions` disagrees with the factors.
    pub fn loss(&self, interactions: &Csr) -> f64 {
        assert_eq!(interactions.n_rows(), self.users.nrows(), "rows = users");
        assert_eq!(interactions.n_cols(), self.items.nrows(), "columns = items");
        let f = self.factors();
        let alpha = self.params.alpha as f64;
        let g = self.item_gram.as_slice().expect("standard layout");
        let users = self.users.as_slice().expect("standard layout");
        let items = self.items.as_slice().expect("standard layout");
        // Fixed chunks summed in order: the same value for any thread count.
        let partials: Vec<f64> = users
            .par_chunks(f * 1024)
            .enumerate()
            .map(|(t, chunk)| {
                let mut gx = vec![0f32; f];
                let mut total = 0f64;
                for (k, x) in chunk.chunks_exact(f).enumerate() {
                    symv(g, x, &mut gx, f);
                    total += dot::<false>(x, &gx) as f64;
                    let (cols, vals) = interactions.row(t * 1024 + k);
                    for (&i, &v) in cols.iter().zip(vals) {
                        let i = i as usize;
                        let s = dot::<false>(x, &items[i * f..(i + 1) * f]) as f64;
                        let c = 1.0 + alpha * v as f64;
                        total += c * (1.0 - s).powi(2) - s * s;
                    }
                }
                total
            })
            .collect();
        let norms: f64 = users
            .iter()
            .chain(items)
            .map(|&v| (v as f64) * (v as f64))
            .sum();
        partials.iter().sum::<f64>() + self.params.regularization as f64 * norms
    }
}

/// Users scored together by one GEMM in [`Als::recommend_batch`].
const REC_USER_BLOCK: usize = 256;
/// Items per score tile: `REC_USER_BLOCK × REC_ITEM_TILE` floats (1 MiB) stay in cache.
const REC_ITEM_TILE: usize = 1024;
/// How much a computed score may exceed `|x|·|y|` through rounding, as a
/// factor: an `f32` dot product of `f` terms errs by at most about
/// `f · 2⁻²⁴` of `Σ|x_k y_k|`, far below this for any factor count in use.
const ROUNDING_ROOM: f64 = 1.0 + 1e-3;

/// The Euclidean norm of a factor vector, in `f64`.
fn norm(v: &ndarray::ArrayView1<'_, f32>) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// The item factors in the order [`Als::recommend_batch`] scores them, in
/// tiles of [`REC_ITEM_TILE`] items, each with its largest norm. Sorted by
/// decreasing norm, the first tiles hold the items that can score highest, so
/// the lists fill with high scores early and the last tiles, whose items
/// cannot reach them, are skipped.
struct ItemTiles<'a> {
    /// The item at each position.
    order: Vec<u32>,
    /// Their factors, one row per position.
    factors: ndarray::CowArray<'a, f32, ndarray::Ix2>,
    /// The largest norm in each tile.
    max_norms: Vec<f64>,
}

impl<'a> ItemTiles<'a> {
    /// The items by decreasing norm (ties by index) when `sorted`, else in
    /// index order.
    fn new(items: ArrayView2<'a, f32>, sorted: bool) -> Self {
        let norms: Vec<f64> = items.rows().into_iter().map(|r| norm(&r)).collect();
        let mut order: Vec<u32> = (0..items.nrows() as u32).collect();
        let factors = if sorted {
            order.sort_by(|&a, &b| norms[b as usize].total_cmp(&norms[a as usize]));
            let rows: Vec<usize> = order.iter().map(|&i| i as usize).collect();
            items.select(Axis(0), &rows).into()
        } else {
            items.into()
        };
        let max_norms = order
            .chunks(REC_ITEM_TILE)
            .map(|tile| tile.iter().map(|&i| norms[i as usize]).fold(0.0, f64::max))
            .collect();
        ItemTiles {
            order,
            factors,
            max_norms,
        }
    }

    /// Each tile: its items, their factors and its largest norm.
    fn iter(&self) -> impl Iterator<Item = (&[u32], ArrayView2<'_, f32>, f64)> {
        self.order
            .chunks(REC_ITEM_TILE)
            .zip(&self.max_norms)
            .enumerate()
            .map(|(t, (items, &max_norm))| {
                let t0 = t * REC_ITEM_TILE;
                let rows = self.factors.slice(s![t0..t0 + items.len(), ..]);
                (items, rows, max_norm)
            })
    }
}

/// The best `k` entries of one user's scores, offered in any item order.
struct TopList {
    k: usize,
    /// Unsorted while filling; sorted best first once it holds `k` entries.
    list: Vec<(u32, f32)>,
}

impl TopList {
    fn new(k: usize) -> Self {
        TopList {
            k,
            list: Vec::with_capacity(k.min(1024)),
        }
    }

    /// Whether the list is full and its worst score is above `bound`: no
    /// score up to `bound` can enter it.
    fn beats_all_below(&self, bound: f64) -> bool {
        self.list.len() == self.k && bound < f64::from(self.list[self.k - 1].1)
    }

    /// Offers `scores[j]` for item `items[j]`, skipping items in `skip` (sorted).
    #[inline]
    fn scan(&mut self, scores: &[f32], items: &[u32], skip: &[u32]) {
        debug_assert_eq!(scores.len(), items.len());
        let mut j = 0;
        // Fill phase: take anything that is not NaN or excluded.
        while self.list.len() < self.k && j < scores.len() {
            let (item, s) = (items[j], scores[j]);
            if !s.is_nan() && skip.binary_search(&item).is_err() {
                self.list.push((item, s));
                if self.list.len() == self.k {
                    self.list.sort_unstable_by(rank_order);
                }
            }
            j += 1;
        }
        if self.list.len() < self.k {
            return;
        }
        let mut worst = self.list[self.k - 1].1;
        // Most chunks hold nothing reaching the threshold: one vector test
        // each (a score equal to it may still win on a lower index).
        let (chunks, tail) = scores[j..].as_chunks::<LANES>();
        for (c, chunk) in chunks.iter().enumerate() {
            let mut any = false;
            for &s in chunk {
                any |= s >= worst;
            }
            if any {
                let at = j + c * LANES;
                worst = self.offer(chunk, &items[at..at + LANES], skip, worst);
            }
        }
        let at = j + chunks.len() * LANES;
        self.offer(tail, &items[at..], skip, worst);
    }

    /// Offers `scores[j]` for item `items[j]` to a full list whose worst
    /// score is `worst`; returns the new worst score.
    #[inline]
    fn offer(&mut self, scores: &[f32], items: &[u32], skip: &[u32], mut worst: f32) -> f32 {
        for (&s, &item) in scores.iter().zip(items) {
            if s >= worst {
                let entry = (item, s);
                if rank_order(&entry, &self.list[self.k - 1]).is_ge()
                    || skip.binary_search(&item).is_ok()
                {
                    continue;
                }
                let at = self.list.partition_point(|e| rank_order(e, &entry).is_lt());
                self.list.pop();
                self.list.insert(at, entry);
                worst = self.list[self.k - 1].1;
            }
        }
        worst
    }

    fn into_sorted(mut self) -> Vec<(u32, f32)> {
        if self.list.len() < self.k {
            self.list.sort_unstable_by(rank_order);
        }
        self.list
    }
}

/// Solves `a x = b` in place (`x` left in `b`) for a symmetric positive
/// definite row-major `n × n` matrix `a`, overwritten by its Cholesky factor.
/// Returns false if `a` is not positive definite.
fn cholesky_solve(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    // Lower triangle: a = L Lᵀ, L stored row-major in the lower half.
    for j in 0..n {
        let (upper, lower) = a.split_at_mut(j * n);
        let row_j = &mut lower[..n];
        // row_j[..j] holds L[j][..j] after the previous columns.
        for k in 0..j {
            let row_k = &upper[k * n..k * n + n];
            let v = row_j[k]
                - row_k[..k]
                    .iter()
                    .zip(&row_j[..k])
                    .map(|(x, y)| x * y)
                    .sum::<f64>();
            row_j[k] = v / row_k[k];
        }
        let d = row_j[j] - row_j[..j].iter().map(|x| x * x).sum::<f64>();
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        row_j[j] = d.sqrt();
    }
    // L z = b
    for i in 0..n {
        let row = &a[i * n..i * n + n];
        let v = b[i]
            - row[..i]
                .iter()
                .zip(&b[..i])
                .map(|(x, y)| x * y)
                .sum::<f64>();
        b[i] = v / row[i];
    }
    // Lᵀ x = z
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= a[k * n + i] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topk::top_k_dense;
    use ndarray::ShapeBuilder;
    use proptest::prelude::{ProptestConfig, prop_assert, prop_assert_eq, proptest};

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

    /// A sparse random matrix with a few dense rows and columns.
    fn random_matrix(users: usize, items: usize, density: f64, seed: u64) -> Csr {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut t = Vec::new();
        for u in 0..users {
            for i in 0..items {
                let p = if u == 0 || i == 1 { 0.9 } else { density };
                if rng.gen_bool(p) {
                    t.push((u as u32, i as u32, rng.gen_range(0.5f32..5.0)));
                }
            }
        }
        Csr::from_triplets(users, items, t)
    }

    #[test]
    fn kernels_match_naive_on_every_isa() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for f in [1, 5, 16, 31, 64, 70, 100, 130] {
            let v: Vec<f32> = (0..f).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let rows: Vec<f32> = (0..7 * f).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let naive: Vec<f32> = rows
                .chunks(f)
                .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
                .collect();
            for isa in Isa::available() {
                let mut out = vec![0f32; 7];
                score_rows(isa, &v, &rows, &mut out);
                for (a, b) in out.iter().zip(&naive) {
                    assert!((a - b).abs() < 1e-4, "{isa:?} f={f}: {a} vs {b}");
                }
            }
            // symv against a naive product with a symmetric matrix.
            let mut g = vec![0f32; f * f];
            for i in 0..f {
                for j in 0..=i {
                    let x = rng.gen_range(-1.0..1.0);
                    g[i * f + j] = x;
                    g[j * f + i] = x;
                }
            }
            let mut out = vec![0f32; f];
            symv(&g, &v, &mut out, f);
            for i in 0..f {
                let want: f32 = (0..f).map(|j| g[i * f + j] * v[j]).sum();
                assert!((out[i] - want).abs() < 1e-4, "symv f={f} row {i}");
            }
        }
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
    fn thread_count_does_not_change_the_model() {
        // Big enough for several Gram chunks and many row tasks.
        let m = random_matrix(20_000, 300, 0.01, 9);
        let p = AlsParams::new(24).iterations(2);
        let fit_on = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| p.fit(&m).unwrap())
        };
        let one = fit_on(1);
        let three = fit_on(3);
        assert_eq!(one.user_factors(), three.user_factors());
        assert_eq!(one.item_factors(), three.item_factors());
        assert_eq!(one.loss(&m).to_bits(), three.loss(&m).to_bits());
    }

    #[test]
    fn every_isa_and_kernel_converges_to_the_same_model() {
        let m = random_matrix(60, 40, 0.2, 8);
        // 8 pads to 16 (fixed kernel), 64 is a fixed kernel, 130 pads to 144
        // (slice kernel).
        for f in [8, 64, 130] {
            let p = AlsParams::new(f).iterations(4).cg_steps(3);
            let models: Vec<Als> = Isa::available()
                .into_iter()
                .map(|isa| p.fit_impl(&m, isa, &mut |_| {}).unwrap())
                .collect();
            let l0 = models[0].loss(&m);
            for other in &models[1..] {
                let l = other.loss(&m);
                assert!((l - l0).abs() <= 1e-3 * l0.abs(), "f={f}: {l} vs {l0}");
            }
            assert_eq!(models[0].user_factors().dim(), (60, f));
            assert_eq!(models[0].item_factors().dim(), (40, f));
        }
    }

    /// The fixed-size and slice kernels solve the same system: one
    /// half-iteration with many CG steps gives the same (converged) factors.
    #[test]
    fn fixed_and_slice_kernels_agree() {
        let m = random_matrix(50, 30, 0.3, 4);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let f = 16;
        let fixed = Array2::from_shape_simple_fn((30, f), || rng.gen_range(-0.5f32..0.5));
        let params = AlsParams::new(f).cg_steps(40).regularization(0.1);
        let mut g = gram(fixed.view());
        for k in 0..f {
            g[[k, k]] += params.regularization;
        }
        let side = Side {
            rows: &m,
            fixed: fixed.as_slice().unwrap(),
            gram: g.as_slice().unwrap(),
            f,
            alpha: params.alpha,
            steps: params.cg_steps,
        };
        let mut a = vec![0f32; 50 * f];
        let mut b = vec![0f32; 50 * f];
        solve_rows_fixed::<false, 16>(&side, 0, &mut a, &mut Scratch::default());
        solve_rows_dyn::<false>(&side, 0, &mut b, &mut Scratch::default());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
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
    fn held_out_items_rank_above_random_ones() {
        // Planted groups; hold out one purchase per user and check that it
        // ranks better than a random unbought item (AUC well above 0.5).
        let full = planted(120, 80, 4, 11);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let mut train = Vec::new();
        let mut held = Vec::new();
        for u in 0..full.n_rows() {
            let (cols, vals) = full.row(u);
            let out = rng.gen_range(0..cols.len());
            for (k, (&c, &v)) in cols.iter().zip(vals).enumerate() {
                if k == out {
                    held.push((u, c));
                } else {
                    train.push((u as u32, c, v));
                }
            }
        }
        let train = Csr::from_triplets(120, 80, train);
        let als = AlsParams::new(4)
            .alpha(5.0)
            .iterations(10)
            .fit(&train)
            .unwrap();
        let mut scores = vec![0f32; 80];
        let (mut wins, mut trials) = (0, 0);
        for &(u, item) in &held {
            als.score_user(u, &mut scores);
            let bought = train.row(u).0;
            for _ in 0..20 {
                let other = rng.gen_range(0..80u32);
                if other == item || bought.binary_search(&other).is_ok() || full.get(u, other) > 0.0
                {
                    continue;
                }
                trials += 1;
                wins += usize::from(scores[item as usize] > scores[other as usize]);
            }
        }
        let auc = wins as f64 / trials as f64;
        assert!(auc > 0.9, "held-out AUC {auc}");
    }

    #[test]
    fn score_users_gives_each_users_own_scores() {
        // More items than one tile, a partial last tile, users out of order
        // and repeated.
        let m = random_matrix(30, 2 * SCORE_TILE + 37, 0.05, 9);
        let als = AlsParams::new(16).iterations(3).fit(&m).unwrap();
        let n = m.n_cols();
        let users = [7u32, 0, 29, 7, 13];
        let mut block = vec![0f32; users.len() * n];
        als.score_users(&users, &mut block);
        let mut one = vec![0f32; n];
        for (r, &u) in users.iter().enumerate() {
            als.score_user(u as usize, &mut one);
            let got: Vec<u32> = block[r * n..(r + 1) * n]
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let want: Vec<u32> = one.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "user {u}");
        }
        als.score_users(&[], &mut []);
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
        for user in [3, 17, 42] {
            let (cols, vals) = m.row(user);
            let basket: Vec<(u32, f32)> = cols.iter().copied().zip(vals.iter().copied()).collect();
            let v = als.fold_in(&basket);
            let mut a = vec![0f32; 40];
            let mut b = vec![0f32; 40];
            als.score_user(user, &mut a);
            als.score_vector(&v, &mut b);
            let ta: Vec<u32> = top_k_dense(&a, 10, |_| false).iter().map(|x| x.0).collect();
            let tb: Vec<u32> = top_k_dense(&b, 10, |_| false).iter().map(|x| x.0).collect();
            let overlap = ta.iter().filter(|i| tb.contains(i)).count();
            assert!(overlap >= 8, "{ta:?} vs {tb:?}");
        }
        // The user half-step solved exactly is what fold-in computes: with many
        // CG steps the trained vector is (nearly) the fold-in solution.
        assert_eq!(als.fold_in(&[]), vec![0.0; 8]);
        assert_eq!(als.fold_in(&[(999, 1.0), (1, f32::NAN)]), vec![0.0; 8]);
    }

    #[test]
    fn fold_in_solves_the_normal_equations() {
        let m = planted(30, 20, 2, 6);
        let als = AlsParams::new(5).alpha(2.0).iterations(3).fit(&m).unwrap();
        let basket = [(0u32, 2.0f32), (4, 1.0), (7, 3.5)];
        let x = als.fold_in(&basket);
        // Residual of (YᵀY + λI + Σ w y yᵀ) x = Σ c y.
        let y = als.item_factors();
        let f = 5;
        let mut a = als.item_gram.mapv(|v| v as f64);
        let mut b = vec![0f64; f];
        for p in 0..f {
            a[[p, p]] += 0.01;
        }
        for &(i, r) in &basket {
            let w = 2.0 * r as f64;
            for p in 0..f {
                b[p] += (1.0 + w) * y[[i as usize, p]] as f64;
                for q in 0..f {
                    a[[p, q]] += w * y[[i as usize, p]] as f64 * y[[i as usize, q]] as f64;
                }
            }
        }
        for p in 0..f {
            let ax: f64 = (0..f).map(|q| a[[p, q]] * x[q] as f64).sum();
            assert!(
                (ax - b[p]).abs() < 1e-3 * (1.0 + b[p].abs()),
                "row {p}: {ax} vs {}",
                b[p]
            );
        }
    }

    #[test]
    fn batch_equals_sort_and_truncate() {
        let m = planted(300, 30, 3, 4);
        let als = AlsParams::new(6).iterations(3).fit(&m).unwrap();
        let users: Vec<u32> = (0..300).rev().collect();
        for k in [1, 7, 30, 40] {
            let batch = als.recommend_batch(&users, k, Some(&m));
            let mut scores = vec![0f32; 30];
            for (&u, got) in users.iter().zip(&batch) {
                als.score_user(u as usize, &mut scores);
                let (bought, _) = m.row(u as usize);
                let mut all: Vec<(u32, f32)> = (0..30u32)
                    .filter(|i| bought.binary_search(i).is_err())
                    .map(|i| (i, scores[i as usize]))
                    .collect();
                all.sort_by(rank_order);
                all.truncate(k);
                // GEMM and dot may round differently: compare as sets of
                // near-equal scores, and exactly when the gaps are clear.
                assert_eq!(got.len(), all.len());
                for (g, w) in got.iter().zip(&all) {
                    assert!((g.1 - w.1).abs() < 1e-4, "user {u}: {got:?} vs {all:?}");
                    assert!(bought.binary_search(&g.0).is_err());
                    assert!((scores[g.0 as usize] - g.1).abs() < 1e-4);
                }
            }
        }
        assert!(
            als.recommend_batch(&users, 0, None)
                .iter()
                .all(Vec::is_empty)
        );
        assert!(als.recommend_batch(&[], 5, None).is_empty());
    }

    /// Integer-valued factors make every score exact, so ties are real and the
    /// tie-breaking rule is checked exactly, across item tiles.
    #[test]
    fn batch_breaks_ties_by_index_across_tiles() {
        let n_items = REC_ITEM_TILE * 2 + 37;
        let items = Array2::from_shape_fn((n_items, 2), |(i, c)| ((i * 7 + c * 3) % 5) as f32);
        let users = Array2::from_shape_fn((3, 2), |(u, c)| (u + c) as f32 - 1.0);
        let als = Als::from_factors(AlsParams::new(2), users, items).unwrap();
        let exclude = Csr::from_triplets(3, n_items, [(1, 3, 1.0), (1, n_items as u32 - 5, 1.0)]);
        let got = als.recommend_batch(&[0, 1, 2, 1], 25, Some(&exclude));
        let mut scores = vec![0f32; n_items];
        for (&u, got) in [0usize, 1, 2, 1].iter().zip(&got) {
            als.score_user(u, &mut scores);
            let skip = exclude.row(u).0;
            let want = top_k_dense(&scores, 25, |i| skip.binary_search(&i).is_ok());
            assert_eq!(got, &want, "user {u}");
        }
    }

    /// A batch of more than a block of users scores the items by decreasing
    /// norm and skips the tiles of small items that cannot enter the lists;
    /// the lists are still the reference's, ties broken by index. One user
    /// has bought all but a few large items, so its list needs the small
    /// ones and its block may skip nothing. Integer factors: exact scores.
    #[test]
    fn batch_over_items_ordered_by_norm_equals_reference() {
        let n_items = REC_ITEM_TILE * 3 + 11;
        let large = |i: usize| i.is_multiple_of(3);
        let items = Array2::from_shape_fn((n_items, 2), |(i, c)| match (large(i), c) {
            (true, 0) => (5 + (i * 7) % 4) as f32,
            (true, _) => (5 + (i * 5) % 3) as f32,
            (false, 0) => (i % 2) as f32,
            (false, _) => ((i / 2) % 2) as f32,
        });
        let n_users = REC_USER_BLOCK + 40;
        let users = Array2::from_shape_fn((n_users, 2), |(u, c)| (1 + (u + c) % 3) as f32);
        let als = Als::from_factors(AlsParams::new(2), users, items).unwrap();
        let bought = (0..n_items)
            .filter(|&i| large(i) && i > 30)
            .map(|i| (7, i as u32, 1.0));
        let exclude = Csr::from_triplets(n_users, n_items, bought);
        let users: Vec<u32> = (0..n_users as u32).rev().collect();
        for k in [25, 40] {
            let got = als.recommend_batch(&users, k, Some(&exclude));
            let mut scores = vec![0f32; n_items];
            for (&u, got) in users.iter().zip(&got) {
                als.score_user(u as usize, &mut scores);
                let skip = exclude.row(u as usize).0;
                let want = top_k_dense(&scores, k, |i| skip.binary_search(&i).is_ok());
                assert_eq!(got, &want, "user {u}, k {k}");
            }
        }
    }

    #[test]
    fn top_list_breaks_ties_by_index_in_any_order() {
        let mut t = TopList::new(2);
        t.scan(&[1.0, 1.0, 1.0, 2.0], &[9, 8, 3, 7], &[]);
        t.scan(&[1.0, 1.0], &[5, 1], &[1]);
        assert_eq!(t.into_sorted(), vec![(7, 2.0), (3, 1.0)]);
    }

    #[test]
    fn top_list_skips_nan_and_takes_infinities() {
        let mut t = TopList::new(3);
        t.scan(&[f32::NAN, 1.0, f32::NEG_INFINITY], &[0, 1, 2], &[]);
        t.scan(&[f32::NAN, 1.0, f32::INFINITY, 0.5], &[3, 4, 5, 6], &[6]);
        assert_eq!(
            t.into_sorted(),
            vec![(5, f32::INFINITY), (1, 1.0), (4, 1.0)]
        );
        let mut t = TopList::new(4);
        t.scan(&[f32::NAN, 2.0], &[0, 1], &[]);
        assert_eq!(t.into_sorted(), vec![(1, 2.0)]);
    }

    #[test]
    fn bad_params_values_and_shapes() {
        let m = planted(10, 10, 2, 5);
        assert!(matches!(
            AlsParams::new(0).fit(&m),
            Err(AlsError::InvalidParam {
                name: "factors",
                ..
            })
        ));
        assert!(AlsParams::new(4).regularization(f32::NAN).check().is_err());
        assert!(AlsParams::new(4).regularization(-1.0).check().is_err());
        assert!(AlsParams::new(4).alpha(f32::INFINITY).check().is_err());
        assert!(AlsParams::new(4).iterations(0).check().is_err());
        assert!(matches!(
            AlsParams::new(4).cg_steps(0).check(),
            Err(AlsError::InvalidParam {
                name: "cg_steps",
                ..
            })
        ));
        assert!(matches!(
            AlsParams::new(4).fit(&Csr::from_triplets(3, 3, [])),
            Err(AlsError::EmptyMatrix)
        ));
        assert!(matches!(
            AlsParams::new(4).fit(&Csr::from_triplets(2, 2, [(0, 0, 1.0), (1, 1, f32::NAN)])),
            Err(AlsError::NonFinite { .. })
        ));
        assert!(matches!(
            AlsParams::new(4).fit(&Csr::from_triplets(2, 2, [(0, 0, 1.0), (1, 1, -2.0)])),
            Err(AlsError::NonPositive { row: 1, col: 1, .. })
        ));
        let bad = Als::from_factors(
            AlsParams::new(4),
            Array2::zeros((3, 4)),
            Array2::zeros((3, 5)),
        );
        assert!(matches!(bad, Err(AlsError::ShapeMismatch { .. })));
        let mut nan = Array2::zeros((3, 4));
        nan[[1, 1]] = f32::NAN;
        assert!(matches!(
            Als::from_factors(AlsParams::new(4), nan, Array2::zeros((2, 4))),
            Err(AlsError::NonFinite { .. })
        ));
        // Column-major input is accepted and stored row-major.
        let fortran = Array2::from_shape_vec((2, 4).f(), (0..8).map(|v| v as f32).collect());
        let als =
            Als::from_factors(AlsParams::new(4), Array2::ones((1, 4)), fortran.unwrap()).unwrap();
        let mut out = [0f32; 2];
        als.score_user(0, &mut out);
        assert_eq!(out, [0.0 + 2.0 + 4.0 + 6.0, 1.0 + 3.0 + 5.0 + 7.0]);
    }

    #[test]
    fn empty_rows_and_columns_are_fine() {
        // User 2 and item 3 have no interactions.
        let m = Csr::from_triplets(4, 5, [(0, 0, 1.0), (1, 1, 2.0), (3, 4, 1.0), (0, 4, 3.0)]);
        let als = AlsParams::new(3).iterations(3).fit(&m).unwrap();
        assert!(als.user_factors().row(2).iter().all(|v| v.abs() < 1e-3));
        assert!(als.item_factors().row(3).iter().all(|v| v.abs() < 1e-3));
        assert!(als.loss(&m).is_finite());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// With exact solves (enough CG steps) every half-iteration minimises the
        /// objective over one side, so the loss never increases.
        #[test]
        fn loss_does_not_increase(
            seed in 0u64..1000,
            users in 2usize..40,
            items in 2usize..30,
            density in 0.05f64..0.5,
            factors in 1usize..10,
        ) {
            let m = random_matrix(users, items, density, seed);
            let mut last = f64::INFINITY;
            for it in 1..=5 {
                let als = AlsParams::new(factors)
                    .iterations(it)
                    .cg_steps(factors + 2)
                    .seed(seed)
                    .fit(&m)
                    .unwrap();
                let l = als.loss(&m);
                prop_assert!(l <= last * (1.0 + 1e-4) + 1e-6, "iteration {}: {} > {}", it, l, last);
                last = l;
            }
        }

        /// The Gram trick equals the naive sum over every pair.
        #[test]
        fn loss_equals_the_naive_sum(seed in 0u64..1000, alpha in 0.0f32..5.0) {
            let m = random_matrix(12, 9, 0.3, seed);
            let als = AlsParams::new(3).alpha(alpha).iterations(2).seed(seed).fit(&m).unwrap();
            let (x, y) = (als.user_factors(), als.item_factors());
            let mut naive = 0f64;
            for u in 0..12 {
                for i in 0..9 {
                    let s = x.row(u).dot(&y.row(i)) as f64;
                    let r = m.get(u, i as u32) as f64;
                    let (p, c) = if r > 0.0 { (1.0, 1.0 + alpha as f64 * r) } else { (0.0, 1.0) };
                    naive += c * (p - s).powi(2);
                }
            }
            let norms: f64 = x.iter().chain(y.iter()).map(|&v| (v as f64).powi(2)).sum();
            naive += 0.01 * norms;
            let l = als.loss(&m);
            prop_assert!((l - naive).abs() <= 1e-4 * naive.abs().max(1.0), "{} vs {}", l, naive);
        }

        /// Batch recommendations equal sorting each user's scores (exact here:
        /// small-integer factors make the GEMM and the dot agree to the bit).
        #[test]
        fn batch_equals_reference(
            n_items in 1usize..80,
            k in 0usize..90,
            seed in 0u64..1000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let items = Array2::from_shape_simple_fn((n_items, 3), || rng.gen_range(-3i8..4) as f32);
            let users = Array2::from_shape_simple_fn((5, 3), || rng.gen_range(-3i8..4) as f32);
            let als = Als::from_factors(AlsParams::new(3), users, items).unwrap();
            let ex = random_matrix(5, n_items, 0.3, seed);
            let got = als.recommend_batch(&[4, 0, 2], k, Some(&ex));
            let mut scores = vec![0f32; n_items];
            for (&u, got) in [4usize, 0, 2].iter().zip(&got) {
                als.score_user(u, &mut scores);
                let skip = ex.row(u).0;
                let want = top_k_dense(&scores, k, |i| skip.binary_search(&i).is_ok());
                prop_assert_eq!(got, &want);
            }
        }
    }
}
