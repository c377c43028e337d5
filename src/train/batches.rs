//! The batch producer's work: which images each step of an epoch takes, and their two augmented
//! views as 8-bit pixels. [`crate::prefetch`] runs it on a worker thread ahead of the device.
//!
//! Every random draw derives from the seed, the epoch and the step, so a batch is the same
//! whether it was prepared ahead, serially, or after a resume.

use rand::seq::SliceRandom;

use super::{TrainConfig, derive_seed, rng_for};
use crate::data::{DataError, ImageSet, Subset};
use crate::embed::{PixelBatch, View};

/// Batches prepared ahead of the device: enough to cover a slow batch, few enough that memory
/// stays flat (a 224 px batch of 2×128 views is 38 MB).
pub(crate) const PREFETCH_DEPTH: usize = 3;

/// The images of each step of `epoch`: a seeded permutation cut into full batches (the rest of
/// the permutation waits for another epoch, as PyTorch's `drop_last`).
pub(crate) fn epoch_batches(
    seed: u64,
    epoch: usize,
    images: usize,
    batch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..images).collect();
    order.shuffle(&mut rng_for(seed, epoch, u64::MAX));
    order.chunks_exact(batch).map(<[usize]>::to_vec).collect()
}

/// The augmented views of the images at `indices` the run's method trains on: rows `0..m` the
/// first views and, for two-view methods, `m..2m` the second views of the same images (row `r`
/// draws from `seed(epoch, step) + r`).
pub(crate) fn prepare(
    config: &TrainConfig,
    train: &ImageSet,
    indices: &[usize],
    epoch: usize,
    step: usize,
) -> Result<PixelBatch, DataError> {
    // Each image is read from the cache (a JPEG decode at large sizes) once for all its views.
    let images = train.images(indices)?;
    let rows: Vec<usize> = (0..config.method.views())
        .flat_map(|_| 0..images.len())
        .collect();
    PixelBatch::prepare(
        &Subset {
            source: images.as_slice(),
            indices: &rows,
        },
        config.image_size,
        View::Augmented {
            ops: config.augment,
            seed: derive_seed(config.seed, epoch, step as u64),
        },
    )
}
