//! Nearest-neighbour search over item embeddings, by cosine similarity.
//!
//! [`VectorSearch`] is what the engine asks for ("the `k` vectors most similar
//! to this one"); [`ExactIndex`] answers by brute force and is the oracle in
//! tests and evaluation, [`HnswIndex`] answers approximately through an HNSW
//! graph (the `hnsw_rs` crate); [`SimilarIndex`] is what an engine holds: the
//! exact scan below a catalog size, the graph from it on.
//!
//! Scores are cosine similarities in `[-1, 1]`, greater is better. Vectors are
//! L2-normalised on the way in; a zero vector (or, for [`ExactIndex`], one with
//! a non-finite component) is kept as the zero vector, whose similarity to
//! everything is 0.

pub mod exact;
pub mod hnsw;
pub mod similar;

pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams};
pub use similar::{DEFAULT_HNSW_MIN_ITEMS, SimilarIndex};

use ndarray::Array2;
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::PathBuf;

/// A searchable set of `len()` vectors of dimension `dim()`, identified by
/// their row index.
///
/// Implementations are shared between server worker threads, hence
/// `Send + Sync`; `search` takes `&self` and may be called concurrently.
pub trait VectorSearch: Send + Sync {
    /// Up to `k` `(row index, cosine similarity)` pairs, most similar first
    /// (ties: lower index). Nothing is excluded, the query's own row included:
    /// a caller looking for neighbours of an indexed item asks for `k + 1` and
    /// drops the item. A query of the wrong dimension or with a non-finite
    /// component gets an empty list.
    fn search(&self, query: &[f32], k: usize) -> Vec<(u32, f32)>;

    /// Number of indexed vectors.
    fn len(&self) -> usize;

    /// True if no vector is indexed.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dimension of the vectors.
    fn dim(&self) -> usize;
}

/// Why an index could not be built, written or read.
#[derive(Debug, thiserror::Error)]
pub enum AnnError {
    #[error("invalid index parameters: {reason}")]
    InvalidParams { reason: String },
    #[error("cannot index an empty set of vectors ({rows} rows of dimension {dim})")]
    Empty { rows: usize, dim: usize },
    #[error("vector {row} has a non-finite component")]
    NonFinite { row: usize },
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: damaged or foreign index file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot dump the index into {dir}: {reason}")]
    Dump { dir: PathBuf, reason: String },
    #[error("the HNSW library panicked while {during}: {message}")]
    Panicked {
        during: &'static str,
        message: String,
    },
}

impl AnnError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AnnError::Io {
            path: path.into(),
            cause: source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        AnnError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Mean recall@k of `candidate` against `oracle` over the rows of `queries`:
/// for each query, the share of the oracle's `k` results that the candidate
/// also returns in its `k`. Queries for which the oracle returns nothing are
/// skipped; with none left the result is 1. Queries run in parallel.
pub fn recall_at_k(
    oracle: &dyn VectorSearch,
    candidate: &dyn VectorSearch,
    queries: &Array2<f32>,
    k: usize,
) -> f64 {
    let per_query: Vec<f64> = (0..queries.nrows())
        .into_par_iter()
        .filter_map(|q| {
            let query = queries.row(q).to_vec();
            let truth: HashSet<u32> = oracle.search(&query, k).into_iter().map(|x| x.0).collect();
            if truth.is_empty() {
                return None;
            }
            let found: HashSet<u32> = candidate
                .search(&query, k)
                .into_iter()
                .map(|x| x.0)
                .collect();
            Some(found.intersection(&truth).count() as f64 / truth.len() as f64)
        })
        .collect();
    if per_query.is_empty() {
        1.0
    } else {
        per_query.iter().sum::<f64>() / per_query.len() as f64
    }
}

/// The L2-normalised copy of `v`, or `None` if a component is not finite. A
/// zero vector stays zero. The norm is computed in `f64`, so huge components
/// do not overflow.
pub(crate) fn normalised(v: &[f32]) -> Option<Vec<f32>> {
    if v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return Some(vec![0.0; v.len()]);
    }
    Some(v.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

/// Every row of `vectors` normalised, row-major; rows that cannot be
/// normalised (non-finite) become zero rows.
pub(crate) fn normalised_rows(vectors: &Array2<f32>) -> Vec<f32> {
    let mut out = Vec::with_capacity(vectors.len());
    for row in vectors.rows() {
        let row = row.to_vec();
        match normalised(&row) {
            Some(n) => out.extend(n),
            None => out.extend(std::iter::repeat_n(0.0, row.len())),
        }
    }
    out
}

/// Index of the first row of `vectors` with a non-finite component.
pub(crate) fn first_non_finite_row(vectors: &Array2<f32>) -> Option<usize> {
    vectors
        .rows()
        .into_iter()
        .position(|r| r.iter().any(|x| !x.is_finite()))
}

/// Dot product with eight independent accumulators, which the compiler turns
/// into SIMD code.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Seeded, clustered vectors for index tests.
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// `n` vectors of dimension `dim` around `clusters` random centres.
    pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Array2<f32> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        Array2::from_shape_fn((n, dim), |(i, d)| centres[i % clusters][d])
            .mapv(|x| x + rng.gen_range(-0.35f32..0.35))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalisation_edge_cases() {
        assert_eq!(normalised(&[3.0, 4.0]), Some(vec![0.6, 0.8]));
        assert_eq!(normalised(&[0.0, 0.0]), Some(vec![0.0, 0.0]));
        assert_eq!(normalised(&[1.0, f32::NAN]), None);
        let huge = normalised(&[3e38, 3e38]).unwrap();
        assert!((huge[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        let m = Array2::from_shape_vec((2, 2), vec![f32::INFINITY, 1.0, 0.0, 2.0]).unwrap();
        assert_eq!(normalised_rows(&m), vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(first_non_finite_row(&m), Some(0));
    }

    #[test]
    fn recall_of_an_index_against_itself_is_one() {
        let v = testdata::clustered(50, 5, 3, 1);
        let exact = ExactIndex::new(&v);
        assert_eq!(recall_at_k(&exact, &exact, &v, 5), 1.0);
        assert_eq!(recall_at_k(&exact, &exact, &Array2::zeros((0, 5)), 5), 1.0);
    }

    proptest! {
        #[test]
        fn dot_matches_naive(v in proptest::collection::vec((-10f32..10.0, -10f32..10.0), 0..40)) {
            let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            prop_assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-3);
        }
    }
}
