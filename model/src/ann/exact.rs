//! Brute-force cosine search: the exact answer, in `O(n · dim)` per query.

use super::{VectorSearch, dot, normalised, normalised_rows};
use crate::topk::top_k_dense;
use ndarray::Array2;

/// Exact cosine search over normalised copies of the given rows.
///
/// Rows with a non-finite component are indexed as zero vectors (similarity
/// 0 to everything) rather than refused, so that the oracle can always be
/// built; [`super::HnswIndex::build`] refuses them instead.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactIndex {
    /// Row-major normalised vectors.
    data: Vec<f32>,
    len: usize,
    dim: usize,
}

impl ExactIndex {
    /// Indexes every row of `vectors`.
    pub fn new(vectors: &Array2<f32>) -> Self {
        ExactIndex {
            data: normalised_rows(vectors),
            len: vectors.nrows(),
            dim: vectors.ncols(),
        }
    }

    /// The cosine similarity of `query` (already normalised) to every row.
    fn scores(&self, query: &[f32]) -> Vec<f32> {
        if self.dim == 0 {
            return vec![0.0; self.len];
        }
        self.data
            .chunks_exact(self.dim)
            .map(|row| dot(row, query).clamp(-1.0, 1.0))
            .collect()
    }
}

impl VectorSearch for ExactIndex {
    fn search(&self, query: &[f32], k: usize) -> Vec<(u32, f32)> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let Some(query) = normalised(query) else {
            return Vec::new();
        };
        top_k_dense(&self.scores(&query), k, |_| false)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn dim(&self) -> usize {
        self.dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topk::rank_order;
    use proptest::prelude::*;

    #[test]
    fn finds_by_angle_not_length() {
        let v = Array2::from_shape_vec((4, 2), vec![1.0, 0.0, 100.0, 1.0, 0.0, 0.0, -1.0, 0.0])
            .unwrap();
        let idx = ExactIndex::new(&v);
        assert_eq!((idx.len(), idx.dim()), (4, 2));
        let got = idx.search(&[2.0, 0.0], 4);
        assert_eq!(
            got.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(got[0].1, 1.0);
        assert_eq!(got[2].1, 0.0); // the zero vector
        assert_eq!(got[3].1, -1.0);
        assert!(idx.search(&[1.0], 2).is_empty());
        assert!(idx.search(&[1.0, f32::NAN], 2).is_empty());
        assert!(idx.search(&[1.0, 0.0], 0).is_empty());
        // A zero query scores 0 against everything; ties go to the lower index.
        assert_eq!(idx.search(&[0.0, 0.0], 2), vec![(0, 0.0), (1, 0.0)]);
    }

    #[test]
    fn degenerate_shapes() {
        let empty = ExactIndex::new(&Array2::zeros((0, 3)));
        assert!(empty.is_empty());
        assert!(empty.search(&[1.0, 0.0, 0.0], 3).is_empty());
        let dimless = ExactIndex::new(&Array2::zeros((2, 0)));
        assert_eq!(dimless.search(&[], 5), vec![(0, 0.0), (1, 0.0)]);
    }

    proptest! {
        #[test]
        fn equals_sorted_brute_force(
            rows in proptest::collection::vec(proptest::collection::vec(-5f32..5.0, 3), 1..30),
            q in proptest::collection::vec(-5f32..5.0, 3),
            k in 0usize..35,
        ) {
            let v = Array2::from_shape_vec((rows.len(), 3), rows.concat()).unwrap();
            let idx = ExactIndex::new(&v);
            let got = idx.search(&q, k);
            let nq = normalised(&q).unwrap();
            let mut want: Vec<(u32, f32)> = (0..rows.len())
                .map(|i| {
                    let r = normalised(&rows[i]).unwrap();
                    (i as u32, dot(&r, &nq).clamp(-1.0, 1.0))
                })
                .collect();
            want.sort_by(rank_order);
            want.truncate(k);
            prop_assert_eq!(&got, &want);
            prop_assert!(got.iter().all(|x| (-1.0..=1.0).contains(&x.1)));
        }
    }
}
