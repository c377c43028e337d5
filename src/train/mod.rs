//! The training loop: Siamese batches of two augmented views, the spread-out loss, SGD, and after
//! every epoch an evaluation, `metrics.jsonl`, an atomic checkpoint and an export.
//!
//! A run is driven by [`run`] on the caller's thread or by [`spawn`] on one long-lived worker
//! thread; both report through one stream of [`TrainEvent`]s and obey a shared [`Control`]
//! (pause, resume, cancel within one step). Random streams are derived from the seed, epoch and
//! step, so a resumed run draws exactly what an uninterrupted one would.

pub mod checkpoint;
mod evaluation;
pub mod events;
pub mod optim;
pub mod runs;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use burn::optim::GradientsParams;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentOps, Normalization};
use crate::data::{self, DataError, ImageSet};
use crate::device::{self, DeviceChoice, DeviceError, SelectedDevice};
use crate::embed::{self, View};
use crate::eval::EvalError;
use crate::export::{self, ExportError, ExportedConfig};
use crate::loss::{NegativeSampling, spread_out_loss};
use crate::model::{EmbeddingNet, ModelConfig};
pub use events::{EpochMetrics, Neighbour, Phase, ProbeNeighbours, TrainEvent};
pub use optim::{Schedule, Sgd};

/// File of per-epoch metrics in a run folder, one JSON object per line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File listing the training files that were skipped, with reasons.
pub const SKIPPED_FILE: &str = "skipped.json";
/// File describing the run: device, data and configuration.
pub const RUN_FILE: &str = "run.json";

/// Hyper-parameters of a run. Defaults are the paper's (§4.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per batch (m); each contributes two views, so the network sees 2m rows.
    pub batch_size: usize,
    /// Square training input side in pixels.
    pub image_size: u32,
    /// ResNet-18 base width (64 in the paper).
    pub width: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Softmax temperature τ.
    pub tau: f32,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed of every random choice (initialisation, order, augmentation).
    pub seed: u64,
    /// Augmentations in use.
    pub augment: AugmentOps,
    /// Which negatives enter the loss.
    pub negatives: NegativeSampling,
    /// Neighbours of the weighted kNN evaluation.
    pub knn_k: usize,
    /// Temperature of the kNN vote weights exp(s/σ).
    pub knn_sigma: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 200,
            batch_size: 128,
            image_size: 32,
            width: 64,
            dim: 128,
            tau: 0.1,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: Schedule::Step,
            seed: 0,
            augment: AugmentOps::default(),
            negatives: NegativeSampling::All,
            knn_k: 200,
            knn_sigma: 0.1,
        }
    }
}

impl TrainConfig {
    /// The network this configuration trains.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig::resnet18(self.width, self.dim, self.image_size)
    }

    fn validate(&self) -> Result<(), TrainError> {
        let problem = if self.epochs == 0 {
            "epochs must be at least 1"
        } else if self.batch_size < 2 {
            "batch size must be at least 2 (each image needs other images as negatives)"
        } else if self.image_size < 8 {
            "image size must be at least 8 pixels"
        } else if self.width == 0 || self.dim == 0 {
            "width and dim must be positive"
        } else if !(self.tau.is_finite() && self.tau > 0.0) {
            "tau must be a positive number"
        } else if !(self.lr.is_finite() && self.lr > 0.0) {
            "learning rate must be a positive number"
        } else {
            return Ok(());
        };
        Err(TrainError::Config(problem.to_owned()))
    }
}

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The images could not be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The requested device is not available.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A file of the run folder could not be written or read.
    #[error(transparent)]
    Files(#[from] ExportError),
    /// Evaluation inputs were inconsistent.
    #[error("evaluation: {0}")]
    Eval(#[from] EvalError),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// Starting fresh would overwrite a run.
    #[error(
        "{} already holds a run ({}); pass --resume to continue it or choose another output folder",
        .0.display(), checkpoint::CHECKPOINT_FILE
    )]
    ExistingRun(PathBuf),
    /// `--resume` without a checkpoint.
    #[error("nothing to resume: {} has no {}; start without --resume", .0.display(), checkpoint::CHECKPOINT_FILE)]
    NothingToResume(PathBuf),
    /// The loss became NaN or infinite.
    #[error(
        "the loss became {loss} at epoch {epoch}, step {step}; the last good checkpoint is kept. Lower the learning rate (--lr) or raise tau and resume"
    )]
    NonFinite {
        /// Epoch (1-based).
        epoch: usize,
        /// Step (1-based).
        step: usize,
        /// The value.
        loss: f64,
    },
    /// The worker thread panicked.
    #[error("training crashed: {0}; the last good checkpoint is kept")]
    Panicked(String),
}

/// Pause, resume and cancel, shared between the worker and whoever drives it.
#[derive(Debug, Default)]
pub struct Control {
    cancel: AtomicBool,
    pause: AtomicBool,
}

impl Control {
    /// Asks the run to stop after the current step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    /// Holds the run before its next step.
    pub fn pause(&self) {
        self.pause.store(true, Ordering::SeqCst);
    }
    /// Lets a paused run continue.
    pub fn resume(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }
    /// Whether a cancel was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
    /// Blocks while paused; returns whether the run should go on.
    fn wait_while_paused(&self) -> bool {
        while self.pause.load(Ordering::SeqCst) && !self.is_cancelled() {
            thread::sleep(Duration::from_millis(50));
        }
        !self.is_cancelled()
    }
}

/// What to train on, where to write, and on what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainRequest {
    /// Hyper-parameters (ignored on resume except `epochs`, which may extend the run).
    pub config: TrainConfig,
    /// Folder of training images (labels, if any, are never used for training).
    pub train_dir: PathBuf,
    /// Labelled folder whose embeddings are the kNN memory; defaults to `train_dir` when that is
    /// labelled.
    pub eval_train_dir: Option<PathBuf>,
    /// Labelled folder scored each epoch (kNN, Recall@K, NMI, similarity histograms).
    pub eval_test_dir: Option<PathBuf>,
    /// Run folder.
    pub out: PathBuf,
    /// Continue the run in `out` from its checkpoint.
    pub resume: bool,
    /// Device to train on.
    pub device: DeviceChoice,
}

/// How a run ended without error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Epochs completed in total.
    pub epochs_completed: usize,
    /// Whether the user stopped it.
    pub cancelled: bool,
    /// Metrics of every epoch of this invocation.
    pub metrics: Vec<EpochMetrics>,
}

/// A run on its own worker thread.
pub struct TrainingHandle {
    /// The run's events; the last one is always `Finished` or `Failed`.
    pub events: mpsc::Receiver<TrainEvent>,
    /// Pause, resume, cancel.
    pub control: Arc<Control>,
    /// The worker; joins to the run's result.
    pub worker: thread::JoinHandle<Result<RunSummary, TrainError>>,
}

/// Starts [`run`] on a worker thread. A panic inside becomes a `Failed` event and
/// [`TrainError::Panicked`], never a crash of the caller.
pub fn spawn(request: TrainRequest) -> TrainingHandle {
    let (sender, events) = mpsc::channel();
    let control = Arc::new(Control::default());
    let worker_control = control.clone();
    let worker = thread::Builder::new()
        .name("spreadout-train".to_owned())
        .spawn(move || {
            let mut emit = |event: TrainEvent| {
                // A consumer that went away only stops listening; the run still finishes cleanly.
                let _ = sender.send(event);
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(&request, &worker_control, &mut emit)
            }));
            match outcome {
                Ok(result) => result,
                Err(panic) => {
                    let error = TrainError::Panicked(panic_message(panic.as_ref()));
                    emit(TrainEvent::Failed {
                        message: error.to_string(),
                    });
                    Err(error)
                }
            }
        })
        .expect("the OS can start a thread");
    TrainingHandle {
        events,
        control,
        worker,
    }
}

/// The text a panic was raised with (`panic!("…")` payloads are a `String` or a `&str`).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs a whole training request on this thread, emitting events; ends with `Finished` or
/// `Failed`.
pub fn run(
    request: &TrainRequest,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, TrainError> {
    let result = run_inner(request, control, emit);
    match &result {
        Ok(summary) => emit(TrainEvent::Finished {
            cancelled: summary.cancelled,
            epochs_completed: summary.epochs_completed,
        }),
        Err(error) => emit(TrainEvent::Failed {
            message: error.to_string(),
        }),
    }
    result
}

fn run_inner(
    request: &TrainRequest,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, TrainError> {
    let out = &request.out;
    let has_checkpoint = checkpoint::path(out).exists();
    match (request.resume, has_checkpoint) {
        (false, true) => return Err(TrainError::ExistingRun(out.clone())),
        (true, false) => return Err(TrainError::NothingToResume(out.clone())),
        _ => {}
    }
    let resumed = if request.resume {
        Some(checkpoint::read_state(out)?)
    } else {
        None
    };
    let config = match &resumed {
        Some(state) => TrainConfig {
            epochs: request.config.epochs.max(state.config.epochs),
            ..state.config.clone()
        },
        None => request.config.clone(),
    };
    config.validate()?;
    let selected = device::select(request.device)?;
    if let Some(notice) = &selected.notice {
        emit(TrainEvent::Warning {
            message: notice.clone(),
        });
    }

    emit(TrainEvent::Phase {
        phase: Phase::LoadingData,
    });
    let loaded = load_with_progress(&request.train_dir, config.image_size, control, emit).and_then(
        |train| {
            let evals =
                evaluation::load_eval_sets(request, &train, config.image_size, control, emit)?;
            Ok((train, evals))
        },
    );
    let (train, evals) = match loaded {
        Err(DataError::Cancelled(_)) => {
            return Ok(RunSummary {
                epochs_completed: resumed.map_or(0, |state| state.epochs_completed),
                cancelled: true,
                metrics: Vec::new(),
            });
        }
        other => other?,
    };
    fs::create_dir_all(out).map_err(|source| ExportError::Io {
        path: out.clone(),
        source,
    })?;
    write_json(&out.join(SKIPPED_FILE), &train.skipped)?;
    if !train.skipped.is_empty() {
        emit(TrainEvent::Warning {
            message: format!(
                "{} file(s) in {} could not be used and were skipped; see {}",
                train.skipped.len(),
                request.train_dir.display(),
                out.join(SKIPPED_FILE).display()
            ),
        });
    }

    let device = selected.device.clone().autodiff();
    let (mut net, mut sgd, normalization, first_epoch, mut steps) = match resumed {
        Some(_) => {
            let restored = checkpoint::load(out, &device)?;
            truncate_metrics(out, restored.state.epochs_completed)?;
            (
                restored.net,
                restored.sgd,
                restored.state.normalization,
                restored.state.epochs_completed,
                restored.state.steps,
            )
        }
        None => {
            let _ = fs::remove_file(out.join(METRICS_FILE));
            (
                config.model_config().init_seeded(&device, config.seed),
                Sgd::new(config.momentum, config.weight_decay),
                Normalization::from_images(&train.images),
                0,
                0,
            )
        }
    };
    write_json(
        &out.join(RUN_FILE),
        &runs::RunRecord {
            device: selected.name.clone(),
            train_dir: request.train_dir.clone(),
            eval_train_dir: request.eval_train_dir.clone(),
            eval_test_dir: request.eval_test_dir.clone(),
            images: train.len(),
            skipped: train.skipped.len(),
            labels: train.label_names.clone(),
            normalization,
            config: config.clone(),
        },
    )?;

    let batch = config.batch_size.min(train.len());
    let steps_per_epoch = train.len() / batch;
    emit(TrainEvent::Started {
        device: selected.name.clone(),
        images: train.len(),
        skipped: train.skipped.clone(),
        steps_per_epoch,
        epochs: config.epochs,
        first_epoch: first_epoch + 1,
    });

    let mut metrics = Vec::new();
    let total_steps = (config.epochs * steps_per_epoch) as f64;
    let mut warmed_up = false;
    for epoch in first_epoch..config.epochs {
        let epoch_start = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng_for(config.seed, epoch, u64::MAX));
        let mut loss_sum = 0.0;
        let mut train_seconds = 0.0;
        let mut lr = config.lr;
        for (step, indices) in order.chunks_exact(batch).enumerate() {
            if !control.wait_while_paused() {
                return Ok(RunSummary {
                    epochs_completed: epoch,
                    cancelled: true,
                    metrics,
                });
            }
            if !warmed_up && selected.is_wgpu {
                emit(TrainEvent::Phase {
                    phase: Phase::WarmingUp,
                });
            }
            let step_start = Instant::now();
            lr = config
                .schedule
                .lr(config.lr, epoch, config.epochs, steps as f64 / total_steps);
            let seed = derive_seed(config.seed, epoch, step as u64);
            let (next, loss) = train_step(
                &config,
                &normalization,
                &train,
                indices,
                seed,
                net,
                &mut sgd,
                lr,
                &selected,
            );
            net = next;
            steps += 1;
            if !loss.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch: epoch + 1,
                    step: step + 1,
                    loss,
                });
            }
            let seconds = step_start.elapsed().as_secs_f64();
            if !warmed_up {
                warmed_up = true;
                emit(TrainEvent::Phase {
                    phase: Phase::Training,
                });
            } else {
                train_seconds += seconds;
            }
            loss_sum += loss;
            emit(TrainEvent::Step {
                epoch: epoch + 1,
                step: step + 1,
                steps_per_epoch,
                loss,
                lr,
                images_per_sec: (2 * batch) as f64 / seconds,
            });
        }
        emit(TrainEvent::Phase {
            phase: Phase::Evaluating,
        });
        let measured_steps = if epoch == first_epoch {
            steps_per_epoch.saturating_sub(1)
        } else {
            steps_per_epoch
        };
        let mut epoch_metrics = EpochMetrics {
            epoch: epoch + 1,
            loss: loss_sum / steps_per_epoch as f64,
            lr,
            images_per_sec: if train_seconds > 0.0 {
                (measured_steps * 2 * batch) as f64 / train_seconds
            } else {
                0.0
            },
            knn_accuracy: None,
            recall_at: None,
            nmi: None,
            similarity: None,
            probes: Vec::new(),
            seconds: 0.0,
        };
        evaluation::evaluate(
            &config,
            &normalization,
            &net,
            &train,
            &evals,
            epoch,
            &mut epoch_metrics,
        )?;
        epoch_metrics.seconds = epoch_start.elapsed().as_secs_f64();
        append_metrics(out, &epoch_metrics)?;
        let state = checkpoint::RunState {
            config: config.clone(),
            normalization,
            epochs_completed: epoch + 1,
            steps,
        };
        checkpoint::save(out, &state, &net, &sgd)?;
        let exported = ExportedConfig {
            model: config.model_config(),
            normalization,
            tau: config.tau,
            steps,
        };
        export::export_model(out, &net, &exported)?;
        if runs::keeps_snapshot(epoch + 1, config.epochs) {
            export::export_model(&runs::snapshot_dir(out, epoch + 1), &net, &exported)?;
        }
        emit(TrainEvent::Epoch(epoch_metrics.clone()));
        metrics.push(epoch_metrics);
        if control.is_cancelled() {
            return Ok(RunSummary {
                epochs_completed: epoch + 1,
                cancelled: true,
                metrics,
            });
        }
    }
    Ok(RunSummary {
        epochs_completed: config.epochs,
        cancelled: false,
        metrics,
    })
}

/// One optimiser step on the images at `indices`; returns the new network and the loss.
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_step(
    config: &TrainConfig,
    normalization: &Normalization,
    train: &ImageSet,
    indices: &[usize],
    seed: u64,
    net: EmbeddingNet,
    sgd: &mut Sgd,
    lr: f64,
    selected: &SelectedDevice,
) -> (EmbeddingNet, f64) {
    // Rows 0..m are the first views and m..2m the second views of the same images.
    let images: Vec<_> = indices
        .iter()
        .chain(indices)
        .map(|&i| &train.images[i])
        .collect();
    let device = selected.device.clone().autodiff();
    let input = embed::input_batch(
        &images,
        config.image_size,
        normalization,
        View::Augmented {
            ops: config.augment,
            seed,
        },
        &device,
    );
    let features = net.forward(input);
    let loss = spread_out_loss(features, config.tau, config.negatives);
    let value: f64 = loss
        .clone()
        .inner()
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("loss is a float")[0];
    if !value.is_finite() {
        return (net, value);
    }
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    (sgd.step(lr, net, grads), value)
}

pub(super) fn load_with_progress(
    dir: &Path,
    image_size: u32,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<ImageSet, DataError> {
    // The decoder reports from its worker threads; its counts come back through a channel so
    // that `emit` is only ever called on this thread.
    let (sender, receiver) = mpsc::channel();
    thread::scope(|scope| {
        let loader = scope.spawn(move || {
            data::load_folder(dir, image_size, &|done, total| {
                let _ = sender.send((done, total));
                !control.is_cancelled()
            })
        });
        // The loop ends when the loader drops its sender.
        for (done, total) in receiver {
            emit(TrainEvent::Loading { done, total });
        }
        loader.join().expect("image loader thread")
    })
}

/// The generator for one `(epoch, step)` of a run.
pub fn rng_for(seed: u64, epoch: usize, step: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, epoch, step))
}

/// Mixes seed, epoch and step into one well-spread seed (SplitMix64 finaliser).
pub(super) fn derive_seed(seed: u64, epoch: usize, step: u64) -> u64 {
    let mut z = seed
        ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ step.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ExportError> {
    let json = serde_json::to_vec_pretty(value).expect("serialisable");
    export::write_atomically(path, &json)
}

fn append_metrics(out: &Path, metrics: &EpochMetrics) -> Result<(), ExportError> {
    let path = out.join(METRICS_FILE);
    let io = |source| ExportError::Io {
        path: path.clone(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    let line = serde_json::to_string(metrics).expect("metrics serialise");
    writeln!(file, "{line}").map_err(io)
}

/// Keeps the first `epochs` lines of `metrics.jsonl`: an epoch whose checkpoint was never written
/// will be trained again.
fn truncate_metrics(out: &Path, epochs: usize) -> Result<(), ExportError> {
    let path = out.join(METRICS_FILE);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .take(epochs)
        .map(|l| format!("{l}\n"))
        .collect();
    export::write_atomically(&path, kept.as_bytes())
}

/// Reads a run folder's `metrics.jsonl`.
pub fn read_metrics(run_dir: &Path) -> Result<Vec<EpochMetrics>, ExportError> {
    let path = run_dir.join(METRICS_FILE);
    let text = fs::read_to_string(&path).map_err(|source| ExportError::Io {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|error| ExportError::Format {
                path: path.clone(),
                message: error.to_string(),
            })
        })
        .collect()
}
