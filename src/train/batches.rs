//! The batch producer's work: which images each step of an epoch takes, their two augmented
//! views as packed 8-bit pixels, and NCE's noise draw: everything a step uploads, ready to move
//! to the device. [`crate::support::prefetch`] runs it on a worker thread ahead of the device.
//!
//! Every random draw derives from the seed, the epoch and the step, so a batch is the same
//! whether it was prepared ahead, serially, or after a resume.

use burn::tensor::TensorData;
use rand::seq::SliceRandom;

use super::TrainConfig;
use crate::augment::{DeviceViews, KeepOn, KeptImages};
use crate::data::{DataError, ImageSet, Subset};
use crate::device::SelectedDevice;
use crate::embed::{Input, PixelBatch, View};
use crate::method::{self, Method};
use crate::support::rng::Stream;

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
    order.shuffle(&mut Stream::BatchOrder { epoch }.rng(seed));
    order.chunks_exact(batch).map(<[usize]>::to_vec).collect()
}

/// Where a run builds its views on the device `selected`, and its images kept there when they
/// fit `budget_mb` (and, served, the server's largest buffer): on a GPU adapter, its CubeCL
/// device (where each batch's own images go when the set is not kept); on a served device, the
/// kept images alone, or nothing when they do not fit, and the views are built here: a batch's
/// images would cross the network larger than its two 8-bit views.
///
/// # Errors
/// [`DataError`] when an image cannot be read from the cache.
pub(crate) fn keep_images(
    selected: &SelectedDevice,
    train: &ImageSet,
    budget_mb: u32,
) -> Result<(Option<cubecl::Device>, Option<KeptImages>), DataError> {
    let cube = selected.cube_device();
    let on = match (&cube, &selected.remote) {
        (Some(cube), _) => KeepOn::Local(cube),
        (None, Some(link)) => KeepOn::Served {
            device: &selected.device,
            max_buffer: link.max_buffer,
        },
        (None, None) => return Ok((None, None)),
    };
    // Read in chunks, each dropped once packed: the run holds the packed bytes and one chunk of
    // images at a time, not both copies of the set.
    let all: Vec<usize> = (0..train.len()).collect();
    let chunks = all.chunks(1024).map(|chunk| train.images(chunk));
    let kept = KeptImages::upload(on, chunks, u64::from(budget_mb) << 20)?;
    match &kept {
        Some(images) => tracing::info!(
            "{} training images kept on the device ({:.1} MiB)",
            train.len(),
            images.bytes() as f64 / f64::from(1 << 20)
        ),
        None if cube.is_some() => tracing::info!("training images uploaded batch by batch"),
        None => tracing::info!(
            "training images pass the served device's room for them ({budget_mb} MiB): views built here"
        ),
    }
    Ok((cube, kept))
}

/// Where the producer leaves a step's views.
#[derive(Clone, Copy)]
pub(crate) enum ViewsPlace<'a> {
    /// Built here, on the CPU.
    Cpu,
    /// Drawn here, built on the device from the batch's images, uploaded with it.
    Device,
    /// Drawn here, built on the device from the run's images kept there: no pixel is read.
    Kept(&'a KeptImages),
}

/// What one step uploads, prepared on the producer's thread.
pub(crate) struct StepInput {
    /// The views (see [`prepare`]).
    pub(crate) views: Input,
    /// NCE's candidate rows ([`method::nce_candidates`]); `None` for the other methods.
    pub(crate) nce_candidates: Option<TensorData>,
}

/// The augmented views of the images at `indices` the run's method trains on: rows `0..m` the
/// first views and, for two-view methods, `m..2m` the second views of the same images (row `r`
/// draws from `seed(epoch, step) + r`), built or drawn as `place` says; and NCE's noise for the
/// step.
pub(crate) fn prepare(
    config: &TrainConfig,
    train: &ImageSet,
    indices: &[usize],
    at: (usize, usize),
    place: ViewsPlace<'_>,
) -> Result<StepInput, DataError> {
    let (epoch, step) = at;
    let rows: Vec<usize> = (0..config.method.views())
        .flat_map(|_| 0..indices.len())
        .collect();
    let seed = Stream::Augmentation { epoch, step }.seed(config.seed);
    let (size, ops) = (config.image_size, &config.augment);
    let views = match place {
        ViewsPlace::Kept(kept) => {
            let images: Vec<usize> = rows.iter().map(|&row| indices[row]).collect();
            Input::ToBuild(DeviceViews::prepare_kept(kept, &images, size, ops, seed))
        }
        // Each image is read from the cache (a JPEG decode at large sizes) once for all its
        // views.
        ViewsPlace::Device => Input::ToBuild(DeviceViews::prepare(
            train.images(indices)?,
            &rows,
            size,
            ops,
            seed,
        )),
        ViewsPlace::Cpu => {
            let images = train.images(indices)?;
            Input::Built(PixelBatch::prepare(
                &Subset {
                    source: images.as_slice(),
                    indices: &rows,
                },
                size,
                View::Augmented { ops: *ops, seed },
            )?)
        }
    };
    // The memory bank has a row per training image (a changed folder's rows are remapped to its
    // images before the first step).
    let instances = train.len();
    let nce_candidates = (config.method == Method::Nce).then(|| {
        method::nce_candidates(
            indices,
            config.method_settings.nce_noise.min(instances - 1).max(1),
            instances,
            Stream::NceNoise { epoch, step }.seed(config.seed),
        )
    });
    Ok(StepInput {
        views,
        nce_candidates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::AugmentOps;
    use crate::data::{ImageEntry, ImageSet};
    use image::RgbImage;
    use rand::{Rng, SeedableRng};

    fn set(count: usize) -> ImageSet {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let images: Vec<RgbImage> = (0..count)
            .map(|_| RgbImage::from_fn(12, 12, |_, _| image::Rgb(rng.random())))
            .collect();
        let entries = (0..count)
            .map(|i| ImageEntry {
                path: format!("{i}.png").into(),
                label: None,
                stamp: Default::default(),
            })
            .collect();
        ImageSet::in_memory("views".into(), entries, images, Vec::new())
    }

    /// Rows `i` and `m + i` are two views of image `i`: drawn independently they differ (the
    /// invariance the method learns); with augmentation off they coincide, and one-view methods
    /// get `m` rows.
    #[test]
    fn the_two_views_of_an_image_are_different_draws() {
        let images = set(4);
        let config = TrainConfig {
            image_size: 8,
            ..TrainConfig::default()
        };
        let rows = |config: &TrainConfig| {
            let Input::Built(batch) =
                prepare(config, &images, &[3, 0, 2, 1], (0, 0), ViewsPlace::Cpu)
                    .unwrap()
                    .views
            else {
                unreachable!("views built on the host")
            };
            let pixels = batch.pixels();
            let row = pixels.len() / batch.len();
            (
                batch.len(),
                pixels.chunks(row).map(<[u8]>::to_vec).collect::<Vec<_>>(),
            )
        };
        let (count, views) = rows(&config);
        assert_eq!(count, 8);
        for i in 0..4 {
            assert_ne!(
                views[i],
                views[4 + i],
                "image {i}: both views are the same pixels"
            );
        }
        let (_, plain) = rows(&TrainConfig {
            augment: AugmentOps::none(),
            ..config.clone()
        });
        for i in 0..4 {
            assert_eq!(
                plain[i],
                plain[4 + i],
                "without augmentation the views coincide"
            );
        }
        let (count, _) = rows(&TrainConfig {
            method: Method::Nce,
            ..config
        });
        assert_eq!(count, 4, "one view per image for the memory-bank methods");
    }
}
