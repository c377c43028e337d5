//! A folder opened for Explore or a command, whichever way it was opened: with a model (a
//! [`Collection`]) or without one (a [`HashedFolder`], its perceptual hashes alone). It carries
//! the one rule both shells follow for near-duplicates: a threshold the person gives is a cosine
//! with a model and a hash similarity without one; none is the folder's suggestion, where a model
//! that cannot yet tell copies from neighbours leaves the embedding out and the hashes alone
//! decide ([`DuplicateThreshold::Suggested`]).

use std::sync::Arc;

use super::hash_stage;
use super::{Collection, DuplicateThreshold, Duplicates, ExploreError, HashedFolder, Readiness};
use crate::data::{ImageEntry, SkippedFile};

/// A folder opened with a model or without one.
#[derive(Clone)]
pub enum Opened {
    /// Without a model: the hash stage alone.
    Hashed(Arc<HashedFolder>),
    /// With a model: both stages.
    Embedded(Arc<Collection>),
}

impl Opened {
    /// Groups of near-duplicates, largest first. `threshold` is the person's (none: the
    /// suggested one): with a model a cosine of the embeddings, without one on the hashes'
    /// similarity scale, where the folder's suggestion and distributions are drawn. `hash_bits`
    /// overrides the hash stage's differing bits (none: its suggestion, or `threshold`'s without
    /// a model).
    ///
    /// # Errors
    /// Those of [`Collection::duplicates`] and [`HashedFolder::duplicates`].
    pub fn duplicates(
        &self,
        threshold: Option<f32>,
        hash_bits: Option<u32>,
    ) -> Result<Duplicates, ExploreError> {
        match self {
            Self::Hashed(hashed) => {
                hashed.duplicates(hash_bits.or(threshold.map(hash_stage::max_bits)))
            }
            Self::Embedded(collection) => {
                collection.duplicates(DuplicateThreshold::from(threshold), hash_bits)
            }
        }
    }

    /// Whether the model separates copies from neighbours yet, with the note to show where not
    /// (without a model, always the note that the hashes alone are used).
    ///
    /// # Errors
    /// Those of [`Collection::readiness`].
    pub fn readiness(&self) -> Result<Readiness, ExploreError> {
        match self {
            Self::Hashed(hashed) => Ok(hashed.readiness()),
            Self::Embedded(collection) => collection.readiness(),
        }
    }

    /// The images, in row order.
    pub fn entries(&self) -> &[ImageEntry] {
        match self {
            Self::Hashed(hashed) => hashed.entries(),
            Self::Embedded(collection) => collection.entries(),
        }
    }

    /// Files that could not be used.
    pub fn skipped(&self) -> &[SkippedFile] {
        match self {
            Self::Hashed(hashed) => hashed.skipped(),
            Self::Embedded(collection) => collection.skipped(),
        }
    }
}
