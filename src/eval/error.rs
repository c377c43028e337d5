//! Why an evaluation could not be computed: one error type for every metric, and the shape checks
//! the metrics share, so that a mismatch is reported with the names of the two things compared.

use super::Embeddings;
use crate::support::error_kind::ErrorKind;

/// Why an evaluation could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    /// The caller asked a long computation (k-means) to stop.
    #[error("stopped before it finished")]
    Stopped,
    /// An embedding set was declared with zero columns.
    #[error("embedding dimension must be at least 1")]
    ZeroDimension,
    /// The flat buffer does not hold a whole number of rows.
    #[error("embedding buffer of {len} values is not a whole number of rows of dimension {dim}")]
    RaggedData {
        /// Number of values in the buffer.
        len: usize,
        /// Declared row length.
        dim: usize,
    },
    /// A NaN or infinity, which would make similarity rankings meaningless.
    #[error("embedding value at row {row}, column {column} is not finite")]
    NonFinite {
        /// Row of the offending value.
        row: usize,
        /// Column of the offending value.
        column: usize,
    },
    /// Two embedding sets that must be compared have different row lengths.
    #[error("dimension mismatch: {left_name} has {left} columns but {right_name} has {right}")]
    DimensionMismatch {
        /// Name of the first set.
        left_name: &'static str,
        /// Its dimension.
        left: usize,
        /// Name of the second set.
        right_name: &'static str,
        /// Its dimension.
        right: usize,
    },
    /// Two collections that must pair up row by row have different lengths.
    #[error("count mismatch: {left_name} has {left} entries but {right_name} has {right}")]
    CountMismatch {
        /// Name of the first collection.
        left_name: &'static str,
        /// Its length.
        left: usize,
        /// Name of the second collection.
        right_name: &'static str,
        /// Its length.
        right: usize,
    },
    /// A threshold so low that the pairs above it would fill memory and mean nothing.
    #[error(
        "more than {limit} pairs of images are more alike than {threshold:.3}, too many to be near-duplicates: the threshold is too low, raise it"
    )]
    TooManyPairs {
        /// The threshold asked for.
        threshold: f32,
        /// Pairs kept at most.
        limit: usize,
    },
    /// An input that must contain something is empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// Fewer rows than the computation needs.
    #[error("{what} needs at least {needed} rows, got {got}")]
    TooFewRows {
        /// What was being computed.
        what: &'static str,
        /// Minimum number of rows.
        needed: usize,
        /// Rows supplied.
        got: usize,
    },
    /// A count parameter (neighbours, clusters, bins, a K of Recall@K) was zero.
    #[error("{0} must be at least 1")]
    ZeroParameter(&'static str),
    /// The kNN temperature must be a positive finite number.
    #[error("kNN temperature sigma must be positive and finite, got {0}")]
    InvalidSigma(f32),
    /// More clusters were requested than there are rows to seed them.
    #[error("cannot form {k} clusters from {rows} rows")]
    TooManyClusters {
        /// Requested clusters.
        k: usize,
        /// Available rows.
        rows: usize,
    },
}

impl EvalError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Stopped => ErrorKind::Canceled,
            Self::TooManyPairs { .. } => ErrorKind::ThresholdTooLow,
            _ => ErrorKind::Eval,
        }
    }
}

/// Fails with a named [`EvalError::DimensionMismatch`] unless both sets have the same row length.
pub(super) fn check_same_dim(
    left_name: &'static str,
    left: Embeddings,
    right_name: &'static str,
    right: Embeddings,
) -> Result<(), EvalError> {
    if left.dim() != right.dim() {
        return Err(EvalError::DimensionMismatch {
            left_name,
            left: left.dim(),
            right_name,
            right: right.dim(),
        });
    }
    Ok(())
}

/// Fails with a named [`EvalError::CountMismatch`] unless the two lengths agree.
pub(super) fn check_same_count(
    left_name: &'static str,
    left: usize,
    right_name: &'static str,
    right: usize,
) -> Result<(), EvalError> {
    if left != right {
        return Err(EvalError::CountMismatch {
            left_name,
            left,
            right_name,
            right,
        });
    }
    Ok(())
}
