//! A folder opened for Explore or a command, whichever way it was opened: with a model (a
//! [`Collection`]) or without one (a [`HashedFolder`], its perceptual hashes alone). It carries
//! the one rule both shells follow for near-duplicates: a threshold the person gives is a cosine
//! with a model and a hash similarity without one; none is the folder's suggestion, where a model
//! that cannot yet tell copies from neighbours leaves the embedding out and the hashes alone
//! decide ([`DuplicateThreshold::Suggested`]).

use std::path::Path;
use std::sync::Arc;

use super::hash_stage;
use super::{
    Collection, DuplicateThreshold, Duplicates, ExploreError, HashedFolder, Readiness,
    ResolvedStore,
};
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
    /// a model). Groups a person marked resolved in `decisions` say so
    /// ([`super::DuplicateGroup::resolved`]), with the copy they kept.
    ///
    /// # Errors
    /// Those of [`Collection::duplicates`] and [`HashedFolder::duplicates`];
    /// [`ExploreError::Resolved`] when the decisions cannot be read.
    pub fn duplicates(
        &self,
        threshold: Option<f32>,
        hash_bits: Option<u32>,
        decisions: &ResolvedStore,
    ) -> Result<Duplicates, ExploreError> {
        let mut found = match self {
            Self::Hashed(hashed) => {
                hashed.duplicates(hash_bits.or(threshold.map(hash_stage::max_bits)))
            }
            Self::Embedded(collection) => {
                collection.duplicates(DuplicateThreshold::from(threshold), hash_bits)
            }
        }?;
        decisions.apply(self.folder(), &mut found.groups, self.entries())?;
        Ok(found)
    }

    /// Marks the group of rows `members` resolved, keeping row `keep`, in `decisions` (or, with
    /// `keep` `None`, no longer resolved): the next search sets it aside until it gains a member.
    ///
    /// # Errors
    /// [`ExploreError::NoSuchImage`] for a row out of range; [`ExploreError::NotAGroup`] for
    /// fewer than two members or a `keep` not among them; [`ExploreError::Resolved`] when the
    /// decisions cannot be written.
    pub fn mark_resolved(
        &self,
        members: &[usize],
        keep: Option<usize>,
        decisions: &ResolvedStore,
    ) -> Result<(), ExploreError> {
        let entries = self.entries();
        if let Some(&index) = members.iter().find(|&&row| row >= entries.len()) {
            return Err(ExploreError::NoSuchImage {
                index,
                len: entries.len(),
            });
        }
        if members.len() < 2 {
            return Err(ExploreError::NotAGroup("a group holds two images or more"));
        }
        if keep.is_some_and(|row| !members.contains(&row)) {
            return Err(ExploreError::NotAGroup(
                "the copy to keep is not one of the group",
            ));
        }
        Ok(decisions.mark(self.folder(), members, entries, keep)?)
    }

    /// The folder the images came from.
    pub fn folder(&self) -> &Path {
        match self {
            Self::Hashed(hashed) => hashed.folder(),
            Self::Embedded(collection) => &collection.embedded().set.root,
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
