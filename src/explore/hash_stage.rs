//! The near-duplicate finder's hash stage, which needs no model: a perceptual hash
//! ([`crate::phash`]) of every image of a folder, computed once from the cache's pixels and kept
//! beside them, the distance below which the folder itself says two images are copies, and every
//! pair within it (a multi-index search, not all pairs).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use rand::SeedableRng;
use rayon::prelude::*;

use super::threshold::{self, ThresholdSuggestion};
use super::{COPY_SAMPLE, COPY_STRENGTH, ExploreError, NEAREST_SAMPLE, sample_rows};
use crate::data::{DataError, ImageSet, ImageSource, PixelCache};
use crate::eval::{EvalError, PAIRS_PER_ROW};
use crate::explore::planted::Edit;
use crate::phash::multi_index::MultiIndex;
use crate::phash::{COLOR_BYTES, DCT_BITS, ImageHash};

/// Colour signatures further apart than this (mean difference of the chromaticity grid, 0–1)
/// belong to different pictures whatever their structure: two grey skies, or one layout in two
/// colours. Edited copies stay under 0.02 (`phash` tests: JPEG quality 15, half size, ×1.3
/// brightness, noise σ 12).
pub const MAX_COLOR_DIFFERENCE: f32 = 0.04;

/// The most differing bits the suggestion allows, whatever the folder's distributions say. The
/// mirrored neighbours the calibration measures against are farther than a folder's own similar
/// shots (bursts, a series of frames of one scene), and on the 2 000 CIFAR-10 originals without
/// copies 10 bits already group 8 distinct photos, 12 bits 30, where 8 group none.
const MAX_SUGGESTED_BITS: u32 = 8;

/// The edits a hash is meant to survive. Crops move the whole picture under the hash's grid: they
/// are the embedding's to find, and calibrating on them would loosen the threshold for all.
const HASH_EDITS: [Edit; 4] = [Edit::Jpeg, Edit::Downscale, Edit::Brighten, Edit::Noise];

/// The training size whose cache the hash stage reads when there is no model: a 96 px shorter
/// side holds all the 32×32 grid of the DCT needs, and JPEG photos decode at 1/8 scale for it.
pub const HASH_IMAGE_SIZE: u32 = 64;

/// Perceptual hashes of every image of a set, in its order.
pub struct HashStage {
    hashes: Vec<ImageHash>,
}

/// The similarity scale the hash stage shares with the embedding's threshold machinery: 1 for
/// equal hashes, 0 for 64 differing bits.
pub fn similarity(bits: u32) -> f32 {
    1.0 - bits as f32 / DCT_BITS as f32
}

/// The most differing bits a pair may have to count as copies at similarity `threshold` (pairs
/// count when their similarity is above it; equal hashes always count).
pub fn max_bits(threshold: f32) -> u32 {
    (0..=DCT_BITS)
        .take_while(|&bits| similarity(bits) > threshold)
        .last()
        .unwrap_or(0)
}

impl HashStage {
    /// The hashes of `set`'s images, cached for `image_size`: those `cache` keeps for the
    /// folder's content at that size, else computed in parallel from the cached pixels and kept
    /// there.
    ///
    /// # Errors
    /// [`DataError::Cache`] when a cached image cannot be read.
    pub fn build(set: &ImageSet, cache: &PixelCache, image_size: u32) -> Result<Self, DataError> {
        let key = format!("phash-{}-{image_size}", set.fingerprint.digest);
        if let Some(hashes) = cache.hashes(&key, set.len()) {
            return Ok(Self { hashes });
        }
        let hashes = (0..set.len())
            .into_par_iter()
            .map(|i| set.image(i).map(|image| ImageHash::of(&image)))
            .collect::<Result<Vec<_>, _>>()?;
        if let Err(error) = cache.keep_hashes(&key, &hashes) {
            // Losing the kept copy costs a recomputation next time, not this answer.
            tracing::warn!("{error}");
        }
        Ok(Self { hashes })
    }

    /// A stage over `hashes` as they are, for tests of what the stage does with them.
    #[cfg(test)]
    pub(super) fn from_hashes(hashes: Vec<ImageHash>) -> Self {
        Self { hashes }
    }

    /// Number of hashed images.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no image was hashed.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Differing bits of images `a` and `b`, or `None` when their colours rule them out.
    pub fn distance(&self, a: usize, b: usize) -> Option<u32> {
        let (a, b) = (&self.hashes[a], &self.hashes[b]);
        (a.color_difference(b) <= MAX_COLOR_DIFFERENCE).then(|| a.distance(b))
    }

    /// The pairs `(a, b, bits)`, `a < b`, of copies at `max_bits`, sorted by `(a, b)`, that link
    /// every copy: images whose hashes are equal (structure and colours: a burst of one static
    /// scene, a folder of black frames) are all copies of one another, so each is paired with the
    /// first of them alone, and only the first is searched against the rest. A thousand black
    /// frames give 999 pairs, not half a million; grouping ([`super::duplicates`]) still links
    /// every two of them, from their hashes.
    ///
    /// # Errors
    /// [`EvalError::TooManyPairs`] past [`PAIRS_PER_ROW`] pairs per image, as the embedding
    /// stage refuses them: at such a radius distinct pictures are taken for copies.
    pub fn pairs(&self, max_bits: u32) -> Result<Vec<(usize, usize, u32)>, EvalError> {
        let mut first_of: HashMap<(u64, [u8; COLOR_BYTES]), usize> = HashMap::new();
        let mut pairs = Vec::new();
        let mut firsts = Vec::new();
        for (row, hash) in self.hashes.iter().enumerate() {
            match first_of.entry((hash.dct, hash.color)) {
                Entry::Occupied(first) => pairs.push((*first.get(), row, 0)),
                Entry::Vacant(slot) => {
                    slot.insert(row);
                    firsts.push(row);
                }
            }
        }
        let limit = PAIRS_PER_ROW * self.len();
        let dct: Vec<u64> = firsts.iter().map(|&row| self.hashes[row].dct).collect();
        let found = MultiIndex::new(&dct)
            .pairs_within(max_bits, limit.saturating_sub(pairs.len()))
            .ok_or(EvalError::TooManyPairs {
                threshold: similarity(max_bits),
                limit,
            })?;
        pairs.extend(
            found
                .into_iter()
                .map(|(a, b, bits)| (firsts[a], firsts[b], bits))
                .filter(|&(a, b, _)| self.distance(a, b).is_some()),
        );
        pairs.sort_unstable();
        Ok(pairs)
    }

    /// The threshold this folder suggests for the hash stage, on the similarity scale of
    /// [`similarity`] ([`threshold::suggest_threshold`]): sampled images against a copy of
    /// themselves edited as the hash is meant to survive (JPEG, downscale, brighten, noise, at
    /// half the planted strength), and against the nearest mirrored other image of compatible
    /// colour (mirrored, so that copies already in the folder do not pass for distinct images).
    /// Seeded: the same answer every time.
    ///
    /// # Errors
    /// [`ExploreError::Data`] when a cached image cannot be read; [`ExploreError::Eval`] for
    /// fewer than two images.
    pub fn suggest_threshold(&self, set: &ImageSet) -> Result<ThresholdSuggestion, ExploreError> {
        let n = self.len();
        if n < 2 {
            return Err(EvalError::TooFewRows {
                what: "a hash threshold",
                needed: 2,
                got: n,
            }
            .into());
        }
        // The nearest *distinct* picture: every other image mirrored. A folder full of copies
        // (a photo library, the planted benchmark) would otherwise make its own copies the
        // "nearest other image" of a sixth of its images and pull the threshold below them.
        let mirrors: Vec<ImageHash> = self.hashes.iter().map(ImageHash::mirror).collect();
        let nearest: Vec<f32> = sample_rows(n, NEAREST_SAMPLE)
            .into_par_iter()
            .map(|a| {
                let query = &self.hashes[a];
                // The bits first (one instruction); the colours only of a closer candidate:
                // 5 000 queries over 100 000 images stay under a second.
                let mut bits = DCT_BITS;
                for (b, mirror) in mirrors.iter().enumerate() {
                    let d = query.distance(mirror);
                    if d < bits && b != a && query.color_difference(mirror) <= MAX_COLOR_DIFFERENCE
                    {
                        bits = d;
                    }
                }
                similarity(bits)
            })
            .collect();
        let copies = sample_rows(n, COPY_SAMPLE)
            .into_par_iter()
            .enumerate()
            .map(|(i, row)| {
                let image = set.image(row)?;
                let edit = HASH_EDITS[i % HASH_EDITS.len()];
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(row as u64);
                let copy = ImageHash::of(&edit.edited(&image, COPY_STRENGTH, &mut rng));
                let original = &self.hashes[row];
                // A copy whose colours rule it out is one the stage misses.
                let bits = if original.color_difference(&copy) <= MAX_COLOR_DIFFERENCE {
                    original.distance(&copy)
                } else {
                    DCT_BITS
                };
                Ok(similarity(bits))
            })
            .collect::<Result<Vec<f32>, DataError>>()?;
        let mut suggestion = threshold::suggest_threshold(&copies, &nearest)?;
        if max_bits(suggestion.threshold) > MAX_SUGGESTED_BITS {
            // Halfway between the cap and one bit more, so that `max_bits` gives the cap.
            let capped =
                0.5 * (similarity(MAX_SUGGESTED_BITS) + similarity(MAX_SUGGESTED_BITS + 1));
            let share = |values: &[f32], above: bool| {
                values.iter().filter(|&&v| (v > capped) == above).count() as f32
                    / values.len() as f32
            };
            suggestion.missed = share(&copies, false);
            suggestion.crowded = share(&nearest, true);
            suggestion.threshold = capped;
            suggestion.how = format!(
                "at most {MAX_SUGGESTED_BITS} bits, the cap (beyond it distinct pictures of one scene start to match), where the folder's own distributions would allow more: {:.1} % of edited copies of {} images fall below it, {:.1} % of images' nearest mirrored neighbours lie above it",
                100.0 * suggestion.missed,
                copies.len(),
                100.0 * suggestion.crowded
            );
        }
        Ok(suggestion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_similarity_agree_on_the_threshold() {
        assert_eq!(similarity(0), 1.0);
        assert_eq!(similarity(64), 0.0);
        // Above 0.9: at most 6 bits (1 − 6/64 = 0.906; 7 bits give 0.891).
        assert_eq!(max_bits(0.9), 6);
        assert_eq!(max_bits(similarity(5) - 1e-4), 5);
        assert_eq!(max_bits(1.0), 0);
    }
}
