//! Throughput measurements for `spreadout bench`: training images per second for each device,
//! network width and precision, and decode / augment images per second. Numbers, not
//! assertions: they belong in the README's table (and, with `--json`, in
//! `benchmarks/vs-pytorch/run.sh`'s side-by-side table), never in a timed test.
//!
//! The data path's rows (decode, cache, views on the CPU and on the device) are `data_path`'s;
//! a CPU step's time by phase is `phases`'s.
//!
//! A training row runs the training loop's own epoch (`train::EpochRunner`): the batch producer
//! thread, the device step and the deferred loss read, so what is timed is what a run does.

use std::time::Instant;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::augment::KeptImages;
use crate::data::{self, DataError, ImageSet};
use crate::device::{self, DeviceChoice, DeviceError, SelectedDevice};
use crate::lab::demo::DemoError;
use crate::method::MethodState;
use crate::model::{Precision, Stem};
use crate::optim::Sgd;
use crate::support::error_kind::ErrorKind;
use crate::train::{
    AugmentOn, Control, EpochRunner, EpochStart, TrainConfig, TrainError, keep_images,
};

mod data_path;
mod duplicates;
mod phases;

pub use duplicates::{duplicate_search, hash_search};

pub use data_path::data_pipeline;
pub use phases::step_phases;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No temporary folder for the generated images.
    #[error("cannot create a temporary folder: {0}")]
    TempDir(std::io::Error),
    /// The generated images could not be written.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// The images could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A device could not be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A training step failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Step phases asked of a device that queues its work, where time between calls is not the
    /// work's.
    #[error(
        "{0} queues its work, so a step's phases cannot be timed there: --phases times the CPU backend"
    )]
    Queued(String),
}

impl BenchError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TempDir(_) => ErrorKind::Files,
            Self::Demo(error) => error.kind(),
            Self::Data(error) => error.kind(),
            Self::Device(error) => error.kind(),
            Self::Train(error) => error.kind(),
            Self::Queued(_) => ErrorKind::Config,
        }
    }
}

/// One line of the benchmark table (one JSON object with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// `train`, `decode` or `augment`.
    pub task: String,
    /// What exactly, e.g. "ResNet-18 w16, CIFAR stem, 32 px, batch 128×2".
    pub detail: String,
    /// Where it ran, as `spreadout devices` names it.
    pub device: String,
    /// Burn backend: `wgpu`, `flex`, `ndarray`; `cpu` for the data rows.
    pub backend: String,
    /// Shader compiler (`SPIR-V`, `MSL`, `WGSL`) on wgpu, `native` on the CPU backends.
    pub compiler: String,
    /// `f32` or `f16` for training rows, `u8` for the data rows.
    pub precision: String,
    /// Network width (training rows).
    pub width: Option<usize>,
    /// Images per batch (each gives two views in training).
    pub batch: usize,
    /// Square input side.
    pub image_size: u32,
    /// Images per second (both views counted in training).
    pub images_per_sec: f64,
    /// Seconds per step (training) or for the whole set (data rows).
    pub seconds: f64,
    /// Share of step time the device waited for its input (training rows).
    pub data_wait_fraction: Option<f64>,
    /// What a step costs the host and asks of the device (training rows).
    #[serde(flatten)]
    pub budget: Option<StepBudget>,
}

/// Bytes a step sent to and received from the server, counted on the wire by the client's relay.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NetworkPerStep {
    /// Bytes sent to the server per step.
    pub sent_bytes: f64,
    /// Bytes received from it per step.
    pub received_bytes: f64,
}

/// What one training step costs the host and asks of the device, averaged over the timed steps.
#[derive(Debug, Clone, Serialize)]
pub struct StepBudget {
    /// Kernel launches, counted by CubeCL's launch observer; absent on the flex CPU backend,
    /// whose kernels are native Rust.
    pub launches_per_step: Option<f64>,
    /// Times the training thread waited for data from the device.
    pub blocking_reads_per_step: f64,
    /// Milliseconds the training thread spent recording a step (building its work).
    pub host_ms_per_step: f64,
    /// Bytes uploaded to the device per step: the pixels and what else the step sends.
    pub upload_bytes_per_step: f64,
    /// On a served device, the bytes that crossed the network per step, each way.
    pub network: Option<NetworkPerStep>,
    /// Launches per step by kernel name, most first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub launches: Vec<(String, f64)>,
}

/// Kernel launches by name while installed: CubeCL calls it on the thread that issues each launch,
/// before the launch reaches the device.
#[derive(Default)]
struct LaunchCounts(std::sync::Mutex<std::collections::BTreeMap<&'static str, usize>>);

impl cubecl::logging::LaunchObserver for LaunchCounts {
    fn launched(&self, kernel: &'static str) {
        *self.0.lock().expect("lock").entry(kernel).or_default() += 1;
    }
}

impl LaunchCounts {
    /// Launches per step over `steps` steps by kernel name, most first: kernels whose short names
    /// agree are one line.
    fn per_step(&self, steps: usize) -> Vec<(String, f64)> {
        let mut by_name = std::collections::BTreeMap::<String, f64>::new();
        for (&kernel, &launched) in self.0.lock().expect("lock").iter() {
            *by_name.entry(kernel_name(kernel)).or_default() += launched as f64 / steps as f64;
        }
        let mut by_kernel: Vec<(String, f64)> = by_name.into_iter().collect();
        by_kernel.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        by_kernel
    }
}

/// A kernel's type name without its module paths (`KernelBinop<MulOp>`), generic arguments cut
/// at 80 characters: CubeCL names a matmul with a dozen nested generic types.
fn kernel_name(full: &str) -> String {
    let mut name = String::with_capacity(full.len());
    let mut word = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
        } else if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            name.push_str(&word);
            word.clear();
            name.push(c);
        }
    }
    name.push_str(&word);
    match name.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name,
    }
}

/// One training configuration to time.
#[derive(Debug, Clone, Copy)]
pub struct TrainingCase {
    /// ResNet-18 base width.
    pub width: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Square input side (≤ 64 px: CIFAR stem, else ImageNet stem).
    pub image_size: u32,
    /// Convolution precision.
    pub precision: Precision,
    /// Where the training views are built (`auto`: on a GPU adapter, there).
    pub augment_on: AugmentOn,
}

impl TrainingCase {
    /// The paper's training settings at this case's width, batch, size and precision.
    fn config(&self) -> TrainConfig {
        TrainConfig {
            width: self.width,
            batch_size: self.batch_size,
            image_size: self.image_size,
            precision: self.precision,
            ..TrainConfig::default()
        }
    }
}

/// The devices a benchmark runs on: the one `choice` names, or, without a choice, the CPU and
/// every real GPU (software rasterisers too with `include_software`).
///
/// # Errors
/// As [`device::select`].
pub fn devices(
    choice: Option<DeviceChoice>,
    include_software: bool,
) -> Result<Vec<SelectedDevice>, DeviceError> {
    if let Some(choice) = choice {
        return Ok(vec![device::select(choice)?]);
    }
    let mut devices = vec![device::cpu()];
    #[cfg(feature = "ndarray")]
    devices.push(device::ndarray());
    let adapters = device::list_adapters();
    for adapter in &adapters {
        if adapter.kind.is_gpu() || include_software {
            devices.push(device::select_from(
                DeviceChoice::Adapter(adapter.index),
                &adapters,
            )?);
        }
    }
    Ok(devices)
}

/// Training throughput of `case` on `device`: `warmup` untimed steps (kernel compilation,
/// autotuning), then `steps` timed ones, each a real step of the training loop: both views
/// augmented on the producer thread, uploaded as 8-bit pixels, forward, Eq. 7, backward and the
/// SGD update, the loss read one step late.
///
/// # Errors
/// [`BenchError::Device`] when the device cannot compute at the case's precision.
pub fn training(
    device: &SelectedDevice,
    case: TrainingCase,
    warmup: usize,
    steps: usize,
) -> Result<BenchRow, BenchError> {
    device::check_precision(device, case.precision)?;
    let views_on_device = case.augment_on.on_device(device)?;
    let config = case.config();
    let autodiff = device.device.clone().autodiff();
    let mut net = config.model_config().init_seeded(&autodiff, 0);
    let mut sgd = Sgd::new(config.momentum, config.weight_decay);
    let control = Control::default();
    let mut steps_done = 0;
    let mut timed = None;
    let launches = std::sync::Arc::new(LaunchCounts::default());
    // Two epochs over two sets of random images: the first as long as the warm-up, the second
    // as long as the timed part.
    for (epoch, count) in [warmup, steps.max(1)].into_iter().enumerate() {
        if count == 0 {
            continue;
        }
        let set = synthetic_set(case.batch_size * count, case.image_size, epoch as u64);
        let normalization = set.normalization();
        let mut runner = EpochRunner::new(
            &config,
            &set,
            normalization,
            &autodiff,
            device.defers_work(),
        );
        if views_on_device {
            let (cube, kept) = device_views(device, &set, &config)?;
            runner = runner.with_views_on(cube, kept);
        }
        // The timed epoch's launches; the warm-up's include one-off compilation and tuning.
        let watching = (epoch == 1 && device.is_wgpu)
            .then(|| cubecl::logging::LaunchObservation::new(launches.clone()));
        let traffic = device.remote.as_ref().map(|link| link.traffic.clone());
        let before = traffic.as_ref().map(|t| (t.sent(), t.received()));
        let trained = runner
            .train_epoch(
                EpochStart {
                    epoch,
                    net,
                    steps: steps_done,
                    resume_at: None,
                    first_of_run: false,
                },
                &mut sgd,
                &mut MethodState::Stateless,
                &control,
                None,
                &mut |_| {},
            )?
            .trained()
            .expect("a benchmark is never cancelled");
        drop(watching);
        net = trained.net;
        steps_done = trained.steps;
        let per_step = |value: f64| value / count as f64;
        let by_kernel = launches.per_step(count);
        let budget = StepBudget {
            launches_per_step: device
                .is_wgpu
                .then(|| by_kernel.iter().map(|(_, launched)| launched).sum()),
            blocking_reads_per_step: per_step(trained.blocking_reads as f64),
            host_ms_per_step: per_step(1000.0 * trained.record_seconds),
            upload_bytes_per_step: per_step(trained.uploaded_bytes as f64),
            network: traffic
                .zip(before)
                .map(|(t, (sent, received))| NetworkPerStep {
                    sent_bytes: per_step((t.sent() - sent) as f64),
                    received_bytes: per_step((t.received() - received) as f64),
                }),
            launches: by_kernel,
        };
        timed = Some(TimedEpoch {
            steps: count,
            seconds: trained.seconds,
            data_wait_fraction: trained.data_wait_fraction,
            budget,
            views_on_device: runner.views_on_device(),
        });
    }
    Ok(training_row(
        device,
        case,
        timed.expect("at least one timed step"),
    ))
}

/// Where a benchmark builds its training views on the device: the adapter and, on a served
/// device, the images kept there.
fn device_views(
    device: &SelectedDevice,
    set: &ImageSet,
    config: &TrainConfig,
) -> Result<(Option<cubecl::Device>, Option<KeptImages>), BenchError> {
    Ok(match device.cube_device() {
        // On a GPU adapter each batch's images are uploaded with it, so the upload column shows
        // what a run whose images do not fit the device sends.
        Some(cube) => (Some(cube), None),
        // A served device builds views of kept images only, which cross the network before the
        // timed steps: the read waits for them, so the steps' bytes are their own.
        None => {
            let kept = keep_images(device, set, config.device_data_mb)?;
            let _ = burn::tensor::Tensor::<1>::zeros([1], &device.device).into_data();
            kept
        }
    })
}

/// The timed epoch of a training benchmark.
struct TimedEpoch {
    steps: usize,
    seconds: f64,
    data_wait_fraction: f64,
    budget: StepBudget,
    /// Whether the training views were built on the device.
    views_on_device: bool,
}

/// The table's row for `case`'s timed epoch on `device`.
fn training_row(device: &SelectedDevice, case: TrainingCase, timed: TimedEpoch) -> BenchRow {
    let per_step = timed.seconds / timed.steps as f64;
    let stem = match Stem::for_image_size(case.image_size) {
        Stem::Cifar => "CIFAR stem",
        Stem::Imagenet => "ImageNet stem",
    };
    BenchRow {
        task: "train".to_owned(),
        detail: format!(
            "ResNet-18 w{}, {stem}, {} px, batch {}×2, {}, views built on the {}",
            case.width,
            case.image_size,
            case.batch_size,
            case.precision,
            match (timed.views_on_device, &device.remote) {
                (false, _) => "CPU",
                (true, None) => "GPU",
                (true, Some(_)) => "server from images kept there",
            }
        ),
        device: device.name.clone(),
        backend: device.backend.to_owned(),
        compiler: compiler_of(device),
        precision: case.precision.to_string(),
        width: Some(case.width),
        batch: case.batch_size,
        image_size: case.image_size,
        images_per_sec: (2 * case.batch_size) as f64 / per_step,
        seconds: per_step,
        data_wait_fraction: Some(timed.data_wait_fraction),
        budget: Some(timed.budget),
    }
}

pub(super) fn compiler_of(device: &SelectedDevice) -> String {
    match device.compute() {
        Some(compute) => compute.compiler,
        None if device.is_wgpu => "unknown".to_owned(),
        // The server compiles; `spreadout devices --remote` says with what.
        None if device.remote.is_some() => "served".to_owned(),
        None => "native".to_owned(),
    }
}

/// A row for host work over `rows` embeddings that took `seconds`.
pub(super) fn host_row(task: &str, detail: String, rows: usize, seconds: f64) -> BenchRow {
    // The pool the host work ran on: all cores, unless RAYON_NUM_THREADS says otherwise (the
    // per-core rates of `benchmarks/heic/run.sh`).
    let threads = rayon::current_num_threads();
    BenchRow {
        task: task.to_owned(),
        detail,
        device: format!("CPU, {threads} threads"),
        backend: "cpu".to_owned(),
        compiler: "native".to_owned(),
        precision: "f32".to_owned(),
        width: None,
        batch: 1,
        image_size: 0,
        images_per_sec: rows as f64 / seconds,
        seconds,
        data_wait_fraction: None,
        budget: None,
    }
}

/// One neighbour query over `rows` random unit embeddings of `dim` values (the host search Explore
/// runs when an image is clicked): the median of 21 queries, `k` neighbours each.
///
/// # Errors
/// [`EvalError`] for an empty or ragged matrix.
pub fn neighbor_query(
    rows: usize,
    dim: usize,
    k: usize,
) -> Result<BenchRow, crate::eval::EvalError> {
    let values = crate::eval::random_unit_rows(rows, dim, 11);
    let base = crate::eval::Embeddings::new(&values, dim)?;
    let mut times = Vec::new();
    for query in 0..21 {
        let row = (query * 7919) % rows;
        let start = Instant::now();
        let query = crate::eval::Embeddings::new(base.row(row), dim)?;
        let hits = crate::eval::top_k(query, base, k.min(rows), false)?;
        times.push(start.elapsed().as_secs_f64());
        assert_eq!(hits[0][0].0, row, "a row is its own nearest neighbour");
    }
    times.sort_by(f64::total_cmp);
    Ok(host_row(
        "neighbors",
        format!("one neighbour query over {rows} embeddings ({dim}-d, k {k})"),
        rows,
        times[times.len() / 2],
    ))
}

/// A UMAP map of `rows` random unit embeddings (Explore's map).
///
/// # Errors
/// [`EvalError`] for fewer than 3 rows.
pub fn umap_map(rows: usize, dim: usize) -> Result<BenchRow, crate::eval::EvalError> {
    let values = crate::eval::random_unit_rows(rows, dim, 11);
    let features = crate::eval::Embeddings::new(&values, dim)?;
    let start = Instant::now();
    crate::eval::umap_2d(features, 0, &|_, _| true)?;
    Ok(host_row(
        "map",
        format!("UMAP of {rows} embeddings ({dim}-d): 15-neighbour graph and layout"),
        rows,
        start.elapsed().as_secs_f64(),
    ))
}

/// `count` random-noise images of `size`²: content does not change a network's cost.
fn synthetic_set(count: usize, size: u32, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let images = (0..count)
        .map(|_| {
            RgbImage::from_fn(size, size, |_, _| {
                Rgb([rng.random(), rng.random(), rng.random()])
            })
        })
        .collect();
    let entries = (0..count)
        .map(|i| data::ImageEntry {
            path: format!("synthetic/{i}.png").into(),
            label: None,
            stamp: data::FileStamp::default(),
        })
        .collect();
    ImageSet::in_memory("synthetic".into(), entries, images, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ResNet-18 at width 2, 16 px, batch 4×2: a step the CPU times in milliseconds.
    fn tiny_case(precision: Precision) -> TrainingCase {
        TrainingCase {
            width: 2,
            batch_size: 4,
            image_size: 16,
            precision,
            augment_on: AugmentOn::Auto,
        }
    }

    #[test]
    fn a_steps_uploads_are_its_pixels_alone() {
        let case = tiny_case(Precision::F32);
        let row = training(&device::cpu(), case, 0, 2).unwrap();
        let budget = row.budget.unwrap();
        // Two 8-bit views of 4 images of 3 × 16 × 16, nothing else: the normalisation's
        // constants went up once, when the run's step was made.
        assert_eq!(budget.upload_bytes_per_step, (2 * 4 * 3 * 16 * 16) as f64);
        assert_eq!(budget.blocking_reads_per_step, 1.0);
        assert_eq!(
            budget.launches_per_step, None,
            "flex launches no CubeCL kernels"
        );
    }

    #[test]
    fn kernel_names_lose_their_module_paths() {
        assert_eq!(
            kernel_name(
                "burn_cubecl::kernel::binary::kernel_binop::KernelBinop<burn_cubecl::kernel::binary::MulOp>"
            ),
            "KernelBinop<MulOp>"
        );
        assert_eq!(kernel_name("a::B"), "B");
        let long = kernel_name(&format!("m::Entry<{}>", "x::Arg, ".repeat(40)));
        assert_eq!(long.chars().count(), 81);
        assert!(long.starts_with("Entry<Arg, Arg") && long.ends_with('…'));
    }

    #[test]
    fn a_training_row_times_real_steps_on_the_cpu() {
        let case = tiny_case(Precision::F32);
        let row = training(&device::cpu(), case, 1, 2).unwrap();
        assert_eq!(row.task, "train");
        assert_eq!(
            (row.backend.as_str(), row.compiler.as_str()),
            ("flex", "native")
        );
        assert!(row.images_per_sec > 0.0 && row.seconds > 0.0, "{row:?}");
        let wait = row.data_wait_fraction.unwrap();
        assert!((0.0..=1.0).contains(&wait), "{wait}");
        let json = serde_json::to_value(&row).unwrap();
        for key in [
            "task",
            "device",
            "backend",
            "compiler",
            "precision",
            "width",
            "batch",
            "image_size",
            "images_per_sec",
            "data_wait_fraction",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
    }

    #[test]
    fn f16_is_refused_on_the_cpu_with_a_reason() {
        let case = tiny_case(Precision::F16);
        let error = training(&device::cpu(), case, 0, 1)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("f16") && error.contains("train at f32"),
            "{error}"
        );
    }

    #[test]
    fn a_neighbor_query_is_timed_and_finds_its_own_row() {
        let row = neighbor_query(500, 16, 10).unwrap();
        assert_eq!(row.task, "neighbors");
        assert!(row.seconds > 0.0 && row.images_per_sec > 0.0);
    }
}
