//! The borrowed view every metric takes: rows of L2-normalised embeddings, checked once (shape and
//! finiteness) when the view is made so that no metric has to check again.

use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::EvalError;

/// A borrowed, row-major set of embeddings: `len()` rows of `dim()` values each.
#[derive(Clone, Copy)]
pub struct Embeddings<'a> {
    data: &'a [f32],
    dim: usize,
}

impl<'a> Embeddings<'a> {
    /// Wraps `data` as rows of `dim` values.
    ///
    /// Fails when `dim == 0`, when `data.len()` is not a multiple of `dim`, or when a value is not
    /// finite (a NaN would silently corrupt every ranking it touches).
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self, EvalError> {
        if dim == 0 {
            return Err(EvalError::ZeroDimension);
        }
        if !data.len().is_multiple_of(dim) {
            return Err(EvalError::RaggedData {
                len: data.len(),
                dim,
            });
        }
        if let Some(at) = data.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite {
                row: at / dim,
                column: at % dim,
            });
        }
        Ok(Self { data, dim })
    }

    /// Wraps rows computed here from checked ones (k-means centres are means of finite rows),
    /// skipping the finiteness pass of [`Embeddings::new`] that every Lloyd iteration would
    /// otherwise pay for.
    pub(super) fn trusted(data: &'a [f32], dim: usize) -> Self {
        debug_assert!(dim > 0 && data.len().is_multiple_of(dim));
        Self { data, dim }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Number of values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All rows, row-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `i`; panics when `i >= len()`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Rows `rows`, in that order, copied into one row-major buffer: a subset to search or score.
    /// Panics when a row is out of range.
    pub fn gather(&self, rows: &[usize]) -> Vec<f32> {
        // A copy of each row, not an iterator over its values: this gathers millions of rows for
        // the near-duplicates' inverted file.
        let mut values = Vec::with_capacity(rows.len() * self.dim);
        for &row in rows {
            values.extend_from_slice(self.row(row));
        }
        values
    }
}

impl fmt::Debug for Embeddings<'_> {
    // The data can be millions of values; its shape is what helps when debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embeddings")
            .field("rows", &self.len())
            .field("dim", &self.dim)
            .finish()
    }
}

/// `n` seeded random unit rows of `dim` values (uniform in the cube, then normalised): the
/// embeddings benchmarks and tests search when no model is at hand.
pub fn random_unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data: Vec<f32> = (0..n * dim)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    for row in data.chunks_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_inputs_are_reported() {
        let data = [1.0, 0.0, 0.0, 1.0];
        let message = |e: EvalError| e.to_string();

        assert_eq!(
            Embeddings::new(&data, 0).unwrap_err(),
            EvalError::ZeroDimension
        );
        assert!(message(Embeddings::new(&data, 3).unwrap_err()).contains("not a whole number"));
        let nan = [1.0, f32::NAN];
        assert!(message(Embeddings::new(&nan, 1).unwrap_err()).contains("row 1, column 0"));
    }
}
