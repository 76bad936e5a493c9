//! The index behind an engine's similar-items lists: the exact scan for a
//! small catalog, an HNSW graph from `min_items` items on.
//!
//! Below some catalog size a scan of every item's vector answers faster than
//! a walk of the graph, and it needs no build time and no files in the
//! artifact; the crossover is measured by `examples/ann_crossover.rs` (see
//! the benchmarks page), and [`DEFAULT_HNSW_MIN_ITEMS`] follows it.

use super::{AnnError, ExactIndex, HnswIndex, HnswParams, VectorSearch, first_non_finite_row};
use ndarray::Array2;

/// The catalog size from which [`SimilarIndex::build`] builds a graph by
/// default (`[hnsw] min_items`).
pub const DEFAULT_HNSW_MIN_ITEMS: usize = 100_000;

/// The exact scan or an HNSW graph, behind [`VectorSearch`].
#[derive(Debug)]
pub enum SimilarIndex {
    Exact(ExactIndex),
    Hnsw(HnswIndex),
}

impl SimilarIndex {
    /// The exact index for fewer than `min_items` rows, else the HNSW graph
    /// built with `params` (`min_items = 0`: always the graph).
    ///
    /// Either way, refuses rows with a non-finite component and an empty or
    /// zero-dimensional matrix, as [`HnswIndex::build`] does, so that the
    /// catalog size never decides whether a model can be trained.
    pub fn build(
        vectors: &Array2<f32>,
        params: &HnswParams,
        min_items: usize,
    ) -> Result<Self, AnnError> {
        if vectors.nrows() >= min_items {
            return HnswIndex::build(vectors, params).map(SimilarIndex::Hnsw);
        }
        params.check()?;
        let (rows, dim) = vectors.dim();
        super::hnsw::check_shape(rows, dim)?;
        if let Some(row) = first_non_finite_row(vectors) {
            return Err(AnnError::NonFinite { row });
        }
        Ok(SimilarIndex::Exact(ExactIndex::new(vectors)))
    }

    /// `"exact"` or `"hnsw"`, as the fit summary and the manifest say it.
    pub fn kind(&self) -> &'static str {
        match self {
            SimilarIndex::Exact(_) => "exact",
            SimilarIndex::Hnsw(_) => "hnsw",
        }
    }

    /// The graph, if this is one.
    pub fn as_hnsw(&self) -> Option<&HnswIndex> {
        match self {
            SimilarIndex::Hnsw(h) => Some(h),
            SimilarIndex::Exact(_) => None,
        }
    }
}

impl VectorSearch for SimilarIndex {
    fn search(&self, query: &[f32], k: usize) -> Vec<(u32, f32)> {
        match self {
            SimilarIndex::Exact(e) => e.search(query, k),
            SimilarIndex::Hnsw(h) => h.search(query, k),
        }
    }

    fn len(&self) -> usize {
        match self {
            SimilarIndex::Exact(e) => e.len(),
            SimilarIndex::Hnsw(h) => h.len(),
        }
    }

    fn dim(&self) -> usize {
        match self {
            SimilarIndex::Exact(e) => e.dim(),
            SimilarIndex::Hnsw(h) => h.dim(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ann::testdata::clustered;

    #[test]
    fn the_catalog_size_picks_the_index_and_both_answer_alike() {
        let v = clustered(300, 8, 6, 3);
        let params = HnswParams {
            deterministic: true,
            ..HnswParams::default()
        };
        let exact = SimilarIndex::build(&v, &params, 301).unwrap();
        let graph = SimilarIndex::build(&v, &params, 300).unwrap();
        let always = SimilarIndex::build(&v, &params, 0).unwrap();
        assert_eq!(
            (exact.kind(), graph.kind(), always.kind()),
            ("exact", "hnsw", "hnsw")
        );
        assert!(exact.as_hnsw().is_none() && graph.as_hnsw().is_some());
        assert_eq!((exact.len(), exact.dim()), (300, 8));
        assert_eq!((graph.len(), graph.dim()), (300, 8));
        let oracle = ExactIndex::new(&v);
        assert_eq!(
            exact.search(v.row(7).as_slice().unwrap(), 5),
            oracle.search(v.row(7).as_slice().unwrap(), 5)
        );
        assert!(crate::ann::recall_at_k(&oracle, &graph, &v, 10) > 0.95);
    }

    #[test]
    fn both_refuse_what_the_graph_refuses() {
        let params = HnswParams::default();
        let mut v = clustered(20, 4, 2, 1);
        v[[5, 2]] = f32::NAN;
        for min_items in [0, 1000] {
            assert!(matches!(
                SimilarIndex::build(&v, &params, min_items),
                Err(AnnError::NonFinite { row: 5 })
            ));
            assert!(matches!(
                SimilarIndex::build(&Array2::zeros((0, 4)), &params, min_items),
                Err(AnnError::Empty { .. })
            ));
        }
        let bad = HnswParams {
            m: 1,
            ..HnswParams::default()
        };
        assert!(matches!(
            SimilarIndex::build(&clustered(20, 4, 2, 1), &bad, 1000),
            Err(AnnError::InvalidParams { .. })
        ));
    }
}
