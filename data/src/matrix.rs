//! Compressed sparse row matrices and the customer x item interaction matrix.
//!
//! # Implementation notes
//! Rows are sorted by column and hold no duplicate column; every constructor
//! goes through [`Csr::from_triplets`], which sums duplicates, so the invariant
//! holds for every matrix in the program.

use crate::log::PurchaseLog;

/// A compressed sparse row matrix of `f32`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Csr {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    /// Builds a matrix from `(row, col, value)` triplets, summing duplicates.
    /// Panics if a row or column is out of range.
    pub fn from_triplets(
        n_rows: usize,
        n_cols: usize,
        triplets: impl IntoIterator<Item = (u32, u32, f32)>,
    ) -> Self {
        let triplets: Vec<(u32, u32, f32)> = triplets.into_iter().collect();
        let mut counts = vec![0usize; n_rows + 1];
        for &(r, c, _) in &triplets {
            assert!((r as usize) < n_rows, "row {r} out of range {n_rows}");
            assert!((c as usize) < n_cols, "column {c} out of range {n_cols}");
            counts[r as usize + 1] += 1;
        }
        for i in 0..n_rows {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut cols = vec![0u32; triplets.len()];
        let mut vals = vec![0f32; triplets.len()];
        for &(r, c, v) in &triplets {
            let slot = &mut next[r as usize];
            cols[*slot] = c;
            vals[*slot] = v;
            *slot += 1;
        }
        // Sort each row by column and merge duplicates.
        let mut indptr = Vec::with_capacity(n_rows + 1);
        let mut indices = Vec::with_capacity(triplets.len());
        let mut values = Vec::with_capacity(triplets.len());
        indptr.push(0);
        let mut order: Vec<usize> = Vec::new();
        for r in 0..n_rows {
            let (lo, hi) = (counts[r], counts[r + 1]);
            order.clear();
            order.extend(lo..hi);
            order.sort_unstable_by_key(|&k| cols[k]);
            for &k in &order {
                if indices.len() > indptr[r] && *indices.last().unwrap() == cols[k] {
                    *values.last_mut().unwrap() += vals[k];
                } else {
                    indices.push(cols[k]);
                    values.push(vals[k]);
                }
            }
            indptr.push(indices.len());
        }
        Csr {
            n_rows,
            n_cols,
            indptr,
            indices,
            values,
        }
    }

    /// Builds from raw parts, checking every invariant (sorted unique columns in range).
    pub fn from_parts(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Self, String> {
        if indptr.len() != n_rows + 1 || indptr[0] != 0 {
            return Err("indptr length must be n_rows + 1 and start at 0".into());
        }
        if indices.len() != values.len() || *indptr.last().unwrap() != indices.len() {
            return Err("indptr, indices and values disagree on nnz".into());
        }
        for r in 0..n_rows {
            let (lo, hi) = (indptr[r], indptr[r + 1]);
            if lo > hi {
                return Err(format!("indptr decreases at row {r}"));
            }
            let row = &indices[lo..hi];
            if row.iter().any(|&c| c as usize >= n_cols) {
                return Err(format!("column out of range in row {r}"));
            }
            if row.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("columns not strictly increasing in row {r}"));
            }
        }
        Ok(Csr {
            n_rows,
            n_cols,
            indptr,
            indices,
            values,
        })
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Column indices and values of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (lo, hi) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[lo..hi], &self.values[lo..hi])
    }

    /// Number of stored entries in row `r`.
    #[inline]
    pub fn row_nnz(&self, r: usize) -> usize {
        self.indptr[r + 1] - self.indptr[r]
    }

    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The value at `(r, c)`, or 0.
    pub fn get(&self, r: usize, c: u32) -> f32 {
        let (cols, vals) = self.row(r);
        cols.binary_search(&c).map(|k| vals[k]).unwrap_or(0.0)
    }

    /// The transpose (CSR of the transposed matrix, i.e. the CSC of this one).
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.n_cols {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        // Rows are visited in increasing order, so each output row comes out sorted.
        for r in 0..self.n_rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                let slot = &mut next[c as usize];
                indices[*slot] = r as u32;
                values[*slot] = v;
                *slot += 1;
            }
        }
        Csr {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr: counts,
            indices,
            values,
        }
    }

    /// Applies `f` to every stored value.
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Csr {
        Csr {
            values: self.values.iter().map(|&v| f(v)).collect(),
            ..self.clone()
        }
    }
}

/// How purchases are turned into interaction strengths.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Weighting {
    /// Half-life of the recency decay in days; `None` weighs all purchases equally.
    pub recency_half_life_days: Option<f64>,
    /// Reference time for the decay (usually the end of the training period).
    pub reference_time: i64,
}

/// Customer x item matrix of net purchased quantity.
///
/// Quantities of every line for a (customer, item) pair are summed, returns
/// (negative quantities) included, and pairs whose net quantity is zero or
/// negative are left out: a returned item is not a preference. When a recency
/// half-life is set each line is weighted by `0.5^(age / half_life)` before summing.
#[derive(Debug, Clone)]
pub struct InteractionMatrix {
    /// Rows are customers, columns items.
    pub matrix: Csr,
    /// Pairs dropped because their net quantity was zero or negative.
    pub netted_out_pairs: usize,
}

impl InteractionMatrix {
    /// Builds the matrix over the full id maps of `log`.
    pub fn from_log(log: &PurchaseLog, weighting: &Weighting) -> Self {
        let decay = weighting.recency_half_life_days.map(|h| {
            let per_sec = std::f64::consts::LN_2 / (h * 86_400.0);
            move |t: i64| (-(weighting.reference_time - t).max(0) as f64 * per_sec).exp() as f32
        });
        let summed = Csr::from_triplets(
            log.customers.len(),
            log.items.len(),
            log.purchases.iter().map(|p| {
                let w = decay.map_or(1.0, |d| d(p.time));
                (p.customer.0, p.item.0, p.quantity * w)
            }),
        );
        let mut netted_out_pairs = 0;
        let mut triplets = Vec::with_capacity(summed.nnz());
        for r in 0..summed.n_rows() {
            let (cols, vals) = summed.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                if v > 0.0 {
                    triplets.push((r as u32, c, v));
                } else {
                    netted_out_pairs += 1;
                }
            }
        }
        InteractionMatrix {
            matrix: Csr::from_triplets(summed.n_rows(), summed.n_cols(), triplets),
            netted_out_pairs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triplets_sum_and_sort() {
        let m = Csr::from_triplets(2, 3, [(0, 2, 1.0), (0, 0, 1.0), (0, 2, 2.0), (1, 1, 5.0)]);
        assert_eq!(m.row(0), (&[0u32, 2][..], &[1.0f32, 3.0][..]));
        assert_eq!(m.nnz(), 3);
        let t = m.transpose();
        assert_eq!(t.n_rows(), 3);
        assert_eq!(t.row(2), (&[0u32][..], &[3.0f32][..]));
        assert_eq!(t.transpose(), m);
        assert!(Csr::from_parts(1, 2, vec![0, 2], vec![1, 0], vec![1.0, 1.0]).is_err());
    }

    #[test]
    fn returns_net_out() {
        let mut log = PurchaseLog::default();
        log.push("o1", "c", "a", 0, 2.0, 1.0);
        log.push("C1", "c", "a", 1, -2.0, 1.0);
        log.push("o2", "c", "b", 2, 1.0, 1.0);
        let m = InteractionMatrix::from_log(&log, &Weighting::default());
        assert_eq!(m.matrix.nnz(), 1);
        assert_eq!(m.netted_out_pairs, 1);
        assert_eq!(m.matrix.get(0, 1), 1.0);
    }
}
