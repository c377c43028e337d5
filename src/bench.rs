//! Throughput measurements for `spreadout bench`: training images per second for each device and
//! network width, and decode/augment images per second. Numbers, not assertions: they belong in
//! the README's table, never in a timed test.

use std::time::Instant;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::augment::{AugmentOps, Normalization};
use crate::data::{self, DataError, ImageSet};
use crate::demo::{self, DemoError, DemoSpec};
use crate::device::SelectedDevice;
use crate::train::{self, Sgd, TrainConfig};

/// Why the data benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No temporary folder for the generated images.
    #[error("cannot create a temporary folder: {0}")]
    TempDir(std::io::Error),
    /// The generated images could not be written.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// The generated images could not be read back.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// One line of the benchmark table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// What was measured, e.g. "train ResNet-18 w16, 32 px, batch 128×2".
    pub task: String,
    /// Where it ran.
    pub device: String,
    /// Images per second (both views counted for training).
    pub images_per_sec: f64,
    /// Seconds per step or per image batch, for context.
    pub seconds: f64,
}

/// Training throughput of ResNet-18 at `width` on `device`: `warmup` untimed steps (kernel
/// compilation, autotuning), then the mean over `steps` timed ones. Real steps: augmentation,
/// forward, loss, backward and SGD update.
pub fn training(
    device: &SelectedDevice,
    width: usize,
    batch_size: usize,
    image_size: u32,
    warmup: usize,
    steps: usize,
) -> BenchRow {
    let config = TrainConfig {
        width,
        batch_size,
        image_size,
        ..TrainConfig::default()
    };
    let images = random_images(batch_size, image_size, 0);
    let set = ImageSet {
        root: "synthetic".into(),
        entries: Vec::new(),
        images,
        label_names: Vec::new(),
        skipped: Vec::new(),
        formats: Default::default(),
    };
    let normalization = Normalization::from_images(&set.images);
    let autodiff = device.device.clone().autodiff();
    let mut net = config.model_config().init_seeded(&autodiff, 0);
    let mut sgd = Sgd::new(config.momentum, config.weight_decay);
    let indices: Vec<usize> = (0..batch_size).collect();
    let mut step = |net| {
        train::train_step(
            &config,
            &normalization,
            &set,
            &indices,
            0,
            net,
            &mut sgd,
            0.03,
            device,
        )
        .0
    };
    for _ in 0..warmup {
        net = step(net);
    }
    let start = Instant::now();
    for _ in 0..steps {
        net = step(net);
    }
    let seconds = start.elapsed().as_secs_f64() / steps.max(1) as f64;
    BenchRow {
        task: format!("train ResNet-18 w{width}, {image_size} px, batch {batch_size}×2"),
        device: device.name.clone(),
        images_per_sec: (2 * batch_size) as f64 / seconds,
        seconds,
    }
}

/// Decoding throughput (PNG files of the demo set → resized RGB) and augmentation throughput
/// (two random training views per image), on this machine's CPU cores.
pub fn data_pipeline(images: usize, image_size: u32) -> Result<Vec<BenchRow>, BenchError> {
    let folder = tempfile::tempdir().map_err(BenchError::TempDir)?;
    let per_class = images.div_ceil(6);
    let spec = DemoSpec {
        classes: 6,
        train_per_class: per_class,
        test_per_class: 0,
        size: image_size,
        seed: 0,
    };
    let folders = demo::generate(folder.path(), &spec)?;
    let start = Instant::now();
    let set = data::load_folder(&folders.train, image_size, &|_, _| true)?;
    let decode_seconds = start.elapsed().as_secs_f64();

    let normalization = Normalization::from_images(&set.images);
    let refs: Vec<&RgbImage> = set.images.iter().chain(&set.images).collect();
    let start = Instant::now();
    let _batch = crate::embed::input_batch(
        &refs,
        image_size,
        &normalization,
        crate::embed::View::Augmented {
            ops: AugmentOps::default(),
            seed: 0,
        },
        &burn::tensor::Device::flex(),
    );
    let augment_seconds = start.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(vec![
        BenchRow {
            task: format!(
                "decode + resize PNG to {image_size} px ({} files)",
                set.len()
            ),
            device: format!("CPU, {cores} threads"),
            images_per_sec: set.len() as f64 / decode_seconds,
            seconds: decode_seconds,
        },
        BenchRow {
            task: format!("augment two views, {image_size} px ({} views)", refs.len()),
            device: format!("CPU, {cores} threads"),
            images_per_sec: refs.len() as f64 / augment_seconds,
            seconds: augment_seconds,
        },
    ])
}

/// Random-noise RGB images: content does not change a network's cost.
fn random_images(count: usize, size: u32, seed: u64) -> Vec<RgbImage> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            RgbImage::from_fn(size, size, |_, _| {
                Rgb([rng.random(), rng.random(), rng.random()])
            })
        })
        .collect()
}
