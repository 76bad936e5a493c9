//! Compressed sparse row matrices and the customer x item interaction matrix.
//!
//! # Implementation notes
//! Rows are sorted by column and hold no duplicate column; every constructor
//! goes through [`Csr::from_triplets`], which sums duplicates, so the invariant
//! holds for every matrix in the program.

use crate::log::PurchaseLog;
use crate::mapped::Buf;

/// A compressed sparse row matrix of `f32`. Its arrays are owned, or read
/// in place from a mapped file ([`Buf`]; a loaded model's matrices).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Csr {
    n_rows: usize,
    n_cols: usize,
    indptr: Buf<usize>,
    indices: Buf<u32>,
    values: Buf<f32>,
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
        Self::from_triplets_with(n_rows, n_cols, || triplets.iter().copied())
    }

    /// [`Csr::from_triplets`] from a source of triplets that can be walked
    /// twice (once to count each row, once to fill it), so that they are
    /// never held in memory: the build needs 8 bytes an entry, not 28.
    /// `triplets` must give the same triplets each time it is called.
    pub fn from_triplets_with<I>(n_rows: usize, n_cols: usize, triplets: impl Fn() -> I) -> Self
    where
        I: Iterator<Item = (u32, u32, f32)>,
    {
        let mut counts = vec![0usize; n_rows + 1];
        for (r, c, _) in triplets() {
            assert!((r as usize) < n_rows, "row {r} out of range {n_rows}");
            assert!((c as usize) < n_cols, "column {c} out of range {n_cols}");
            counts[r as usize + 1] += 1;
        }
        for i in 0..n_rows {
            counts[i + 1] += counts[i];
        }
        let total = counts[n_rows];
        let mut next = counts.clone();
        let mut indices = vec![0u32; total];
        let mut values = vec![0f32; total];
        let mut filled = 0;
        for (r, c, v) in triplets() {
            let slot = &mut next[r as usize];
            assert!(
                *slot < counts[r as usize + 1],
                "the triplets changed between walks"
            );
            indices[*slot] = c;
            values[*slot] = v;
            *slot += 1;
            filled += 1;
        }
        assert_eq!(filled, total, "the triplets changed between walks");
        drop(next);
        // Sort each row by column and merge duplicates, compacting in place:
        // a row is written at or before where it was read from.
        let mut indptr = counts;
        let mut order: Vec<usize> = Vec::new();
        let mut row: Vec<(u32, f32)> = Vec::new();
        let mut write = 0;
        let mut lo = 0;
        for r in 0..n_rows {
            let hi = indptr[r + 1];
            order.clear();
            order.extend(lo..hi);
            order.sort_unstable_by_key(|&k| indices[k]);
            row.clear();
            row.extend(order.iter().map(|&k| (indices[k], values[k])));
            let start = write;
            for &(c, v) in &row {
                if write > start && indices[write - 1] == c {
                    values[write - 1] += v;
                } else {
                    indices[write] = c;
                    values[write] = v;
                    write += 1;
                }
            }
            lo = hi;
            indptr[r + 1] = write;
        }
        indices.truncate(write);
        values.truncate(write);
        indices.shrink_to_fit();
        values.shrink_to_fit();
        Csr {
            n_rows,
            n_cols,
            indptr: indptr.into(),
            indices: indices.into(),
            values: values.into(),
        }
    }

    /// Builds from raw parts, checking every invariant (sorted unique columns in range).
    pub fn from_parts(
        n_rows: usize,
        n_cols: usize,
        indptr: impl Into<Buf<usize>>,
        indices: impl Into<Buf<u32>>,
        values: impl Into<Buf<f32>>,
    ) -> Result<Self, String> {
        let (indptr, indices, values) = (indptr.into(), indices.into(), values.into());
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
            if hi > indices.len() {
                return Err(format!(
                    "indptr of row {r} ends at {hi}, past the {} stored entries",
                    indices.len()
                ));
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
        for &c in self.indices.iter() {
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
            indptr: counts.into(),
            indices: indices.into(),
            values: values.into(),
        }
    }

    /// Applies `f` to every stored value.
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Csr {
        Csr {
            values: self.values.iter().map(|&v| f(v)).collect::<Vec<_>>().into(),
            ..self.clone()
        }
    }
}

/// Builds a [`Csr`] one row at a time, for rows computed in order (in
/// blocks, say) that should never all be held as separate lists.
#[derive(Debug, Clone)]
pub struct CsrBuilder {
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl CsrBuilder {
    /// An empty matrix of `n_cols` columns.
    pub fn new(n_cols: usize) -> Self {
        CsrBuilder {
            n_cols,
            indptr: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Appends the next row from `(col, value)` entries in any order,
    /// summing duplicates as [`Csr::from_triplets`] does. Panics if a column
    /// is out of range.
    pub fn push_row(&mut self, entries: &[(u32, f32)]) {
        let start = self.indices.len();
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_unstable_by_key(|&k| entries[k].0);
        for k in order {
            let (c, v) = entries[k];
            assert!(
                (c as usize) < self.n_cols,
                "column {c} out of range {}",
                self.n_cols
            );
            if self.indices.len() > start && *self.indices.last().unwrap() == c {
                *self.values.last_mut().unwrap() += v;
            } else {
                self.indices.push(c);
                self.values.push(v);
            }
        }
        self.indptr.push(self.indices.len());
    }

    /// The matrix of the rows pushed so far.
    pub fn finish(mut self) -> Csr {
        self.indices.shrink_to_fit();
        self.values.shrink_to_fit();
        Csr {
            n_rows: self.indptr.len() - 1,
            n_cols: self.n_cols,
            indptr: self.indptr.into(),
            indices: self.indices.into(),
            values: self.values.into(),
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
        let summed = Csr::from_triplets_with(log.customers.len(), log.items.len(), || {
            log.purchases.iter().map(|p| {
                let w = decay.map_or(1.0, |d| d(p.time));
                (p.customer.0, p.item.0, p.quantity * w)
            })
        });
        let netted_out_pairs = summed.nnz() - summed.values.iter().filter(|&&v| v > 0.0).count();
        let matrix = Csr::from_triplets_with(summed.n_rows(), summed.n_cols(), || {
            (0..summed.n_rows()).flat_map(|r| {
                let (cols, vals) = summed.row(r);
                cols.iter()
                    .zip(vals)
                    .filter(|&(_, &v)| v > 0.0)
                    .map(move |(&c, &v)| (r as u32, c, v))
            })
        });
        InteractionMatrix {
            matrix,
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

    #[test]
    fn two_walks_and_row_pushes_build_what_triplets_build() {
        let triplets = [
            (2, 1, 0.5),
            (0, 3, 1.0),
            (2, 1, 0.25),
            (0, 0, 2.0),
            (3, 2, -1.0),
            (0, 3, 4.0),
        ];
        let reference = Csr::from_triplets(5, 4, triplets);
        assert_eq!(reference.row(0), (&[0, 3][..], &[2.0, 5.0][..]));
        assert_eq!(reference.row(2), (&[1][..], &[0.75][..]));
        assert_eq!(reference.row_nnz(1), 0);
        let walked = Csr::from_triplets_with(5, 4, || triplets.iter().copied());
        assert_eq!(walked, reference);
        let mut builder = CsrBuilder::new(4);
        for r in 0..5u32 {
            let row: Vec<(u32, f32)> = triplets
                .iter()
                .filter(|t| t.0 == r)
                .map(|&(_, c, v)| (c, v))
                .collect();
            builder.push_row(&row);
        }
        assert_eq!(builder.finish(), reference);
    }

    #[test]
    #[should_panic(expected = "changed between walks")]
    fn a_source_that_changes_between_walks_is_refused() {
        let calls = std::cell::Cell::new(0);
        Csr::from_triplets_with(2, 2, || {
            calls.set(calls.get() + 1);
            (0..calls.get()).map(|_| (0, 0, 1.0))
        });
    }
}
