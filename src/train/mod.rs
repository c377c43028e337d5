//! The training loop: Siamese batches of two augmented views, the spread-out loss, SGD, and after
//! every epoch an evaluation, `metrics.jsonl`, an atomic checkpoint and an export.
//!
//! The loop has the shape of the data's way through it: a batch producer
//! ([`batches`], run ahead of the device by [`crate::prefetch`]) hands 8-bit pixels to the
//! device step ([`step`]), whose loss is read one step late so the device never idles waiting
//! for the host; at the end of each epoch the evaluation ([`evaluation`]) and the run folder
//! ([`run_folder`]) take over.
//!
//! A run is driven by [`run`] on the caller's thread or by [`spawn`] on one long-lived worker
//! thread; both report through one stream of [`TrainEvent`]s and obey a shared [`Control`]
//! (pause, resume, cancel within one step, evaluation included). Random streams are derived from
//! the seed, epoch and step, so a resumed run draws exactly what an uninterrupted one would.

pub(crate) mod batches;
pub mod checkpoint;
mod evaluation;
pub mod events;
pub mod optim;
mod run_folder;
pub mod runs;
pub(crate) mod step;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::prefetch;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentOps, Normalization};
use crate::data::{self, DataError, ImageSet, PixelCache};
use crate::device::{self, DeviceChoice, DeviceError};
use crate::eval::EvalError;
use crate::export::{ExportError, ExportedConfig};
use crate::method::{Method, MethodSettings, MethodState, NegativeSampling, Positive};
use crate::model::{EmbeddingNet, ModelConfig, Precision};
pub use events::{EpochMetrics, Neighbour, Phase, ProbeNeighbours, ScoredOn, TrainEvent};
pub use optim::{Schedule, Sgd};
use run_folder::RunFolder;
pub use run_folder::{METRICS_FILE, RUN_FILE, SKIPPED_FILE, read_metrics};

/// Hyper-parameters of a run. Defaults are the paper's (§4.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
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
    /// The objective: the paper's, or one of the methods it is compared with.
    #[serde(default)]
    pub method: Method,
    /// Settings of the comparison methods (memory momentum, NCE noise, triplet margin).
    #[serde(default)]
    pub method_settings: MethodSettings,
    /// Which negatives enter the spread-out loss.
    pub negatives: NegativeSampling,
    /// What each image's positive is in the spread-out loss (§4.2's nearest neighbour or the
    /// other view).
    #[serde(default)]
    pub positive: Positive,
    /// Neighbours of the weighted kNN evaluation.
    pub knn_k: usize,
    /// Temperature of the kNN vote weights exp(s/σ).
    pub knn_sigma: f32,
    /// The K of Recall@K (1, 2, 4, 8 as in the paper's CUB and Cars tables; 1, 10, 100 for
    /// Products).
    #[serde(default = "default_recall_k")]
    pub recall_k: Vec<usize>,
    /// Number format of the convolutions (runs recorded before it existed trained in f32).
    #[serde(default)]
    pub precision: Precision,
    /// Minutes between checkpoints within an epoch (one is also written at every epoch's end and
    /// when the run is stopped), so a crash or a power cut costs at most this much training.
    #[serde(default = "default_checkpoint_minutes")]
    pub checkpoint_minutes: f64,
}

fn default_checkpoint_minutes() -> f64 {
    10.0
}

/// Recall@1, 2, 4 and 8, the paper's CUB-200 and Cars-196 columns.
pub fn default_recall_k() -> Vec<usize> {
    vec![1, 2, 4, 8]
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
            method: Method::SpreadOut,
            method_settings: MethodSettings::default(),
            negatives: NegativeSampling::All,
            positive: Positive::Augmented,
            knn_k: 200,
            knn_sigma: 0.1,
            recall_k: default_recall_k(),
            precision: Precision::F32,
            checkpoint_minutes: default_checkpoint_minutes(),
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
        } else if self.recall_k.is_empty() || self.recall_k.contains(&0) {
            "Recall@K needs at least one K, each at least 1"
        } else if !(self.checkpoint_minutes.is_finite() && self.checkpoint_minutes > 0.0) {
            "the checkpoint interval must be a positive number of minutes"
        } else if self.method != Method::SpreadOut && self.negatives != NegativeSampling::All {
            "hard and easy negatives (Table 8) are an ablation of the spread-out method only"
        } else if self.positive == Positive::Nearest
            && (self.method != Method::SpreadOut || self.negatives != NegativeSampling::All)
        {
            "the nearest-neighbour positive (§4.2) is an option of the spread-out method with every negative kept"
        } else if !(0.0..1.0).contains(&self.method_settings.memory_momentum) {
            "the memory momentum must be at least 0 and below 1"
        } else if self.method_settings.nce_noise == 0 {
            "NCE needs at least one noise sample"
        } else if !(self.method_settings.triplet_margin.is_finite()
            && self.method_settings.triplet_margin >= 0.0)
        {
            "the triplet margin must be a number of at least 0"
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
    /// The training folder is not what the run was trained on.
    #[error(
        "{} changed since this run started: it had {before} image files, now {now}{}; resuming would train on different data. Pass --accept-changed-folder to continue on the folder as it is now",
        .dir.display(),
        if .before == .now { " (same count, but files were replaced, renamed or modified)" } else { "" }
    )]
    FolderChanged {
        /// The training folder.
        dir: PathBuf,
        /// Image files when the run was recorded.
        before: usize,
        /// Image files now.
        now: usize,
    },
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
    /// Folder of the preprocessed image cache; the per-user default when `None`.
    #[serde(default, with = "crate::paths::option")]
    pub cache_dir: Option<PathBuf>,
    /// On resume, continue even though the training folder changed since the run was recorded.
    #[serde(default)]
    pub accept_changed_folder: bool,
    /// Stop, as the Stop button does (the run stays resumable), once this many epochs are
    /// complete: how a comparison trains its runs side by side, an epoch of each in turn.
    #[serde(default)]
    pub stop_after_epoch: Option<usize>,
    /// Start a fresh run's backbone from these pretrained weights (torchvision ResNet-18 names,
    /// safetensors; §4.2's ImageNet start) instead of random ones; ignored on resume.
    #[serde(default, with = "crate::paths::option")]
    pub init_weights: Option<PathBuf>,
}

impl TrainRequest {
    /// The image cache this run reads through.
    pub fn pixel_cache(&self) -> PixelCache {
        self.cache_dir
            .as_ref()
            .map_or_else(PixelCache::default_location, PixelCache::at)
    }
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
    /// Steps of the next epoch already trained and checkpointed (a run stopped mid-epoch).
    #[serde(default)]
    pub steps_into_epoch: usize,
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
    device::check_precision(&selected, config.precision)?;
    if let Some(notice) = &selected.notice {
        emit(TrainEvent::Warning {
            message: notice.clone(),
        });
    }

    emit(TrainEvent::Phase {
        phase: Phase::LoadingData,
    });
    let cache = request.pixel_cache();
    let loaded = load_with_progress(&request.train_dir, config.image_size, &cache, control, emit)
        .and_then(|train| {
            let evals =
                evaluation::load_eval_sets(request, &train, config.image_size, control, emit)?;
            Ok((train, evals))
        });
    let cancelled = |epochs_completed, metrics, steps_into_epoch| RunSummary {
        epochs_completed,
        cancelled: true,
        metrics,
        steps_into_epoch,
    };
    let (train, evals) = match loaded {
        Err(DataError::Cancelled(_)) => {
            return Ok(cancelled(
                resumed.as_ref().map_or(0, |state| state.epochs_completed),
                Vec::new(),
                resumed.map_or(0, |state| state.steps_into_epoch),
            ));
        }
        other => other?,
    };
    if resumed.is_some() {
        check_folder_unchanged(request, &train, emit)?;
    }
    let folder = RunFolder::create(out)?;
    folder.write_skipped(&train.skipped)?;
    if !train.skipped.is_empty() {
        emit(TrainEvent::Warning {
            message: format!(
                "{} file(s) in {} could not be used and were skipped; see {}",
                train.skipped.len(),
                request.train_dir.display(),
                folder.skipped_path().display()
            ),
        });
    }

    let device = selected.device.clone().autodiff();
    let (
        mut net,
        mut sgd,
        mut method_state,
        normalization,
        first_epoch,
        mut steps,
        mut resume_at,
        last_lr,
    ) = match resumed {
        Some(_) => {
            let restored = checkpoint::load(out, &device)?;
            let state = restored.state;
            folder.start_metrics(Some(state.epochs_completed))?;
            (
                restored.net,
                restored.sgd,
                restored.method,
                state.normalization,
                state.epochs_completed,
                state.steps,
                (state.steps_into_epoch > 0)
                    .then_some((state.steps_into_epoch, state.epoch_loss_sum)),
                state.last_lr,
            )
        }
        None => {
            folder.start_metrics(None)?;
            let fresh = config.model_config().init_seeded(&device, config.seed);
            let net = match &request.init_weights {
                Some(file) => crate::export::load_pretrained_backbone(fresh, file)?,
                None => fresh,
            };
            (
                net,
                Sgd::new(config.momentum, config.weight_decay),
                MethodState::new(
                    config.method,
                    train.len(),
                    config.dim,
                    config.seed,
                    (config.momentum, config.weight_decay),
                    &device,
                ),
                train.normalization(),
                0,
                0,
                None,
                None,
            )
        }
    };
    folder.write_record(&runs::RunRecord {
        device: selected.name.clone(),
        train_dir: request.train_dir.clone(),
        eval_train_dir: request.eval_train_dir.clone(),
        eval_test_dir: request.eval_test_dir.clone(),
        images: train.len(),
        skipped: train.skipped.len(),
        labels: train.label_names.clone(),
        normalization,
        config: config.clone(),
        folder: Some(train.fingerprint.clone()),
        init_weights: request.init_weights.clone(),
    })?;

    // An extended run never raises the rate above the one it last trained at (see `lr_cap`).
    let extended = resumed
        .as_ref()
        .is_some_and(|state| config.epochs > state.config.epochs);
    let run = EpochRunner::new(&config, &train, normalization, &device, selected.is_wgpu)
        .with_lr_cap(last_lr.filter(|_| extended));
    let mut save_position =
        |position: &EpochPosition, net: &EmbeddingNet, sgd: &Sgd, method_state: &MethodState| {
            let state = checkpoint::RunState {
                config: config.clone(),
                normalization,
                epochs_completed: position.epoch,
                steps: position.steps,
                steps_into_epoch: position.step,
                epoch_loss_sum: position.loss_sum,
                last_lr: Some(position.lr),
                instances: train.len(),
            };
            folder.save_position(&state, net, sgd, method_state)
        };
    let steps_per_epoch = run.steps_per_epoch();
    emit(TrainEvent::Started {
        device: selected.name.clone(),
        images: train.len(),
        skipped: train.skipped.clone(),
        steps_per_epoch,
        epochs: config.epochs,
        first_epoch: first_epoch + 1,
    });

    let mut metrics = Vec::new();
    for epoch in first_epoch..config.epochs {
        let epoch_start = Instant::now();
        let trained = run.train_epoch(
            EpochStart {
                epoch,
                net,
                steps,
                resume_at: resume_at.take(),
                first_of_run: epoch == first_epoch,
            },
            &mut sgd,
            &mut method_state,
            control,
            Some(&mut save_position),
            emit,
        )?;
        let trained = match trained {
            EpochOutcome::Trained(trained) => *trained,
            EpochOutcome::Stopped { step } => return Ok(cancelled(epoch, metrics, step)),
        };
        net = trained.net;
        steps = trained.steps;
        emit(TrainEvent::Phase {
            phase: Phase::Evaluating,
        });
        let mut epoch_metrics = EpochMetrics {
            epoch: epoch + 1,
            loss: trained.loss_sum / steps_per_epoch as f64,
            lr: trained.lr,
            images_per_sec: trained.images_per_sec,
            data_wait_fraction: trained.data_wait_fraction,
            knn_accuracy: None,
            knn_classes_left_out: Vec::new(),
            recall_at: None,
            scored_on: None,
            nmi: None,
            similarity: None,
            probes: Vec::new(),
            seconds: 0.0,
        };
        // A Stop during evaluation keeps the epoch just trained: its checkpoint is written with
        // whatever was scored before the Stop.
        let evaluated = evaluation::evaluate(
            &config,
            &normalization,
            &net,
            &train,
            &evals,
            epoch,
            &mut epoch_metrics,
            selected.is_wgpu.then_some(&selected.device),
            &|| !control.is_cancelled(),
        )?;
        epoch_metrics.seconds = epoch_start.elapsed().as_secs_f64();
        let state = checkpoint::RunState {
            config: config.clone(),
            normalization,
            epochs_completed: epoch + 1,
            steps,
            steps_into_epoch: 0,
            epoch_loss_sum: 0.0,
            last_lr: Some(trained.lr),
            instances: train.len(),
        };
        let exported = ExportedConfig {
            model: config.model_config(),
            normalization,
            tau: config.tau,
            steps,
        };
        folder.end_epoch(&state, &net, &sgd, &method_state, &epoch_metrics, &exported)?;
        emit(TrainEvent::Epoch(epoch_metrics.clone()));
        metrics.push(epoch_metrics);
        if !evaluated
            || control.is_cancelled()
            || (request.stop_after_epoch == Some(epoch + 1) && epoch + 1 < config.epochs)
        {
            return Ok(cancelled(epoch + 1, metrics, 0));
        }
    }
    Ok(RunSummary {
        epochs_completed: config.epochs,
        cancelled: false,
        metrics,
        steps_into_epoch: 0,
    })
}

/// On resume: the folder must hold what the run was recorded with (count and a digest of paths,
/// sizes and modification times), unless the request accepts the change, which is then warned
/// about. Runs recorded before fingerprints existed are not checked.
fn check_folder_unchanged(
    request: &TrainRequest,
    train: &ImageSet,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<(), TrainError> {
    let Some(recorded) = runs::read_record(&request.out)?.folder else {
        return Ok(());
    };
    if recorded == train.fingerprint {
        return Ok(());
    }
    let error = TrainError::FolderChanged {
        dir: request.train_dir.clone(),
        before: recorded.images,
        now: train.fingerprint.images,
    };
    if !request.accept_changed_folder {
        return Err(error);
    }
    emit(TrainEvent::Warning {
        message: format!("continuing as asked although {error}"),
    });
    Ok(())
}

/// What the epochs of one run share.
pub(crate) struct EpochRunner<'a> {
    config: &'a TrainConfig,
    train: &'a ImageSet,
    device_step: step::DeviceStep,
    batch: usize,
    /// Rows the network sees per step: the batch times the method's views.
    rows: usize,
    total_steps: u64,
    /// Whether the first step compiles and tunes kernels (a wgpu device) and says so.
    warm_up: bool,
    lr_cap: f64,
}

/// Where an epoch starts: its number, the network and step count so far, and, when resuming
/// inside it, the step to start at and the loss summed over the steps before.
pub(crate) struct EpochStart {
    pub(crate) epoch: usize,
    pub(crate) net: EmbeddingNet,
    pub(crate) steps: u64,
    pub(crate) resume_at: Option<(usize, f64)>,
    pub(crate) first_of_run: bool,
}

/// A position inside an epoch, as a mid-epoch checkpoint records it.
pub(crate) struct EpochPosition {
    /// Epochs completed before this one.
    pub(crate) epoch: usize,
    /// Steps of this epoch done.
    pub(crate) step: usize,
    /// Optimiser steps of the run.
    pub(crate) steps: u64,
    /// Loss summed over this epoch's steps done.
    pub(crate) loss_sum: f64,
    /// Rate of the last step.
    pub(crate) lr: f64,
}

/// Writes a mid-epoch checkpoint.
pub(crate) type SavePosition<'s> =
    &'s mut dyn FnMut(&EpochPosition, &EmbeddingNet, &Sgd, &MethodState) -> Result<(), ExportError>;

/// How an epoch ended.
pub(crate) enum EpochOutcome {
    Trained(Box<TrainedEpoch>),
    /// Stopped by the user after `step` steps of it (checkpointed when a saver was given).
    Stopped {
        step: usize,
    },
}

impl EpochOutcome {
    /// The trained epoch, unless it was stopped.
    pub(crate) fn trained(self) -> Option<TrainedEpoch> {
        match self {
            Self::Trained(trained) => Some(*trained),
            Self::Stopped { .. } => None,
        }
    }
}

/// An epoch's training, done.
pub(crate) struct TrainedEpoch {
    pub(crate) net: EmbeddingNet,
    /// Optimiser steps of the run so far.
    pub(crate) steps: u64,
    pub(crate) loss_sum: f64,
    pub(crate) lr: f64,
    /// Throughput between the first and the last loss read (the first step, which may compile
    /// kernels, is not counted).
    pub(crate) images_per_sec: f64,
    /// Seconds from the epoch's start to its last loss read.
    pub(crate) seconds: f64,
    pub(crate) data_wait_fraction: f64,
}

/// A recorded step whose loss has not been read yet.
struct PendingLoss {
    step: usize,
    loss: burn::tensor::Tensor<1>,
    lr: f64,
}

impl<'a> EpochRunner<'a> {
    /// Epochs of `config` over `train` on `device` (an autodiff device); `warm_up` when the
    /// first step compiles and tunes GPU kernels, which the run then reports as its own phase.
    pub(crate) fn new(
        config: &'a TrainConfig,
        train: &'a ImageSet,
        normalization: Normalization,
        device: &burn::tensor::Device,
        warm_up: bool,
    ) -> Self {
        let batch = config.batch_size.min(train.len());
        Self {
            config,
            train,
            device_step: step::DeviceStep::new(config, normalization, batch, device),
            batch,
            rows: batch * config.method.views(),
            total_steps: (config.epochs * (train.len() / batch)) as u64,
            warm_up,
            lr_cap: f64::INFINITY,
        }
    }

    /// Caps every rate at the last one a resumed run trained with, for an extended run (`--resume --epochs 80` after
    /// 50) it is the rule that keeps the rate from jumping back up: the epochs already trained
    /// keep their rates, and each new epoch takes the schedule planned over the new length or the
    /// last rate used, whichever is lower. A finished 50-epoch step run thus continues at its
    /// final 0.01×; one stopped at epoch 20 of 50 reaches its milestones at 60 % and 80 % of 80.
    pub(crate) fn with_lr_cap(mut self, last_lr: Option<f64>) -> Self {
        self.lr_cap = last_lr.unwrap_or(f64::INFINITY);
        self
    }

    /// Optimiser steps in each epoch (full batches only).
    pub(crate) fn steps_per_epoch(&self) -> usize {
        self.train.len() / self.batch
    }

    /// Trains one epoch (from `start.resume_at`'s step when resuming inside it): batches come
    /// from the producer thread, each step is recorded on the device, and the previous step's
    /// loss is read once the next one is queued. With `save`, a checkpoint of the position is
    /// written every `checkpoint_minutes` and when the user stops the run.
    pub(crate) fn train_epoch(
        &self,
        start: EpochStart,
        sgd: &mut Sgd,
        method_state: &mut MethodState,
        control: &Control,
        mut save: Option<SavePosition<'_>>,
        emit: &mut dyn FnMut(TrainEvent),
    ) -> Result<EpochOutcome, TrainError> {
        let config = self.config;
        let EpochStart {
            epoch,
            net,
            steps,
            resume_at,
            first_of_run,
        } = start;
        let (first_step, loss_before) = resume_at.unwrap_or((0, 0.0));
        let plan = batches::epoch_batches(config.seed, epoch, self.train.len(), self.batch);
        let steps_per_epoch = plan.len();
        let first_step = first_step.min(steps_per_epoch);
        let produce = |i: usize| {
            let step = first_step + i;
            batches::prepare(config, self.train, &plan[step], epoch, step)
        };
        let interval = Duration::from_secs_f64(config.checkpoint_minutes * 60.0);
        let epoch_start = Instant::now();
        let remaining = steps_per_epoch - first_step;
        prefetch::scoped(batches::PREFETCH_DEPTH, remaining, produce, |queue| {
            let mut net = net;
            let mut steps = steps;
            let mut lr = config.lr.min(self.lr_cap);
            let mut loss_sum = loss_before;
            let mut last_checkpoint = Instant::now();
            let mut pending: Option<PendingLoss> = None;
            // Throughput is timed between loss reads, after the first: that one includes the
            // kernel compilation and autotuning of a fresh GPU run.
            let mut first_read: Option<Instant> = None;
            let mut last_read = epoch_start;
            let mut reads = 0usize;
            let mut report = |done: PendingLoss, emit: &mut dyn FnMut(TrainEvent)| {
                let loss = step::read_loss(done.loss);
                if !loss.is_finite() {
                    return Err(TrainError::NonFinite {
                        epoch: epoch + 1,
                        step: done.step + 1,
                        loss,
                    });
                }
                let now = Instant::now();
                last_read = now;
                if first_read.is_none() {
                    first_read = Some(now);
                    if first_of_run && self.warm_up {
                        emit(TrainEvent::Phase {
                            phase: Phase::Training,
                        });
                    }
                } else {
                    reads += 1;
                }
                // The epoch's rate so far: with reads a step late, the gap between two reads is
                // not one step's time (the last two come back to back).
                let (images, seconds) = match first_read {
                    Some(first) if reads > 0 => (reads, now.duration_since(first)),
                    _ => (1, now.duration_since(epoch_start)),
                };
                emit(TrainEvent::Step {
                    epoch: epoch + 1,
                    step: done.step + 1,
                    steps_per_epoch,
                    loss,
                    lr: done.lr,
                    images_per_sec: (images * self.rows) as f64 / seconds.as_secs_f64().max(1e-9),
                });
                Ok(loss)
            };
            if first_of_run && self.warm_up {
                emit(TrainEvent::Phase {
                    phase: Phase::WarmingUp,
                });
            }
            for (i, pixels) in queue.by_ref().enumerate() {
                let step = first_step + i;
                let pixels = pixels?;
                let stopping = !control.wait_while_paused();
                if let Some(save) = save.as_mut()
                    && (stopping || last_checkpoint.elapsed() >= interval)
                    && step > first_step
                {
                    // The position must include every step's loss: read the pending one first.
                    if let Some(done) = pending.take() {
                        loss_sum += report(done, emit)?;
                    }
                    let position = EpochPosition {
                        epoch,
                        step,
                        steps,
                        loss_sum,
                        lr,
                    };
                    save(&position, &net, sgd, method_state)?;
                    tracing::info!("checkpoint at epoch {}, step {step}", epoch + 1);
                    last_checkpoint = Instant::now();
                }
                if stopping {
                    let kept = if save.is_some() && step > first_step {
                        step
                    } else {
                        first_step
                    };
                    return Ok(EpochOutcome::Stopped { step: kept });
                }
                lr = config
                    .schedule
                    .lr(
                        config.lr,
                        epoch,
                        config.epochs,
                        steps as f64 / self.total_steps as f64,
                    )
                    .min(self.lr_cap);
                let (next, loss) = self.device_step.record(
                    net,
                    sgd,
                    method_state,
                    lr,
                    &pixels,
                    &plan[step],
                    step::StepPosition { epoch, step },
                );
                net = next;
                steps += 1;
                if let Some(done) = pending.replace(PendingLoss { step, loss, lr }) {
                    loss_sum += report(done, emit)?;
                }
            }
            if let Some(done) = pending.take() {
                loss_sum += report(done, emit)?;
            }
            let train_seconds = last_read.duration_since(epoch_start).as_secs_f64();
            let timed =
                first_read.map_or(0.0, |first| last_read.duration_since(first).as_secs_f64());
            Ok(EpochOutcome::Trained(Box::new(TrainedEpoch {
                net,
                steps,
                loss_sum,
                lr,
                images_per_sec: if timed > 0.0 {
                    (reads * self.rows) as f64 / timed
                } else {
                    0.0
                },
                seconds: train_seconds,
                data_wait_fraction: queue.waited().as_secs_f64() / train_seconds.max(1e-9),
            })))
        })
    }
}

pub(super) fn load_with_progress(
    dir: &Path,
    image_size: u32,
    cache: &PixelCache,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<ImageSet, DataError> {
    // The decoder reports from its worker threads; its counts come back through a channel so
    // that `emit` is only ever called on this thread.
    let (sender, receiver) = mpsc::channel();
    thread::scope(|scope| {
        let loader = scope.spawn(move || {
            data::load_folder(dir, cache, image_size, &|done, total| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{self, TensorValues};
    use crate::method::{LossMasks, spread_out_loss};
    use burn::optim::GradientsParams;
    use burn::tensor::Device;
    use image::RgbImage;
    use rand::Rng;

    fn config() -> TrainConfig {
        TrainConfig {
            epochs: 2,
            batch_size: 4,
            image_size: 8,
            width: 2,
            dim: 8,
            ..TrainConfig::default()
        }
    }

    fn noise_set(count: usize) -> ImageSet {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let images: Vec<RgbImage> = (0..count)
            .map(|_| RgbImage::from_fn(10, 12, |_, _| image::Rgb(rng.random())))
            .collect();
        let entries = (0..count)
            .map(|i| data::ImageEntry {
                path: format!("noise/{i}.png").into(),
                label: None,
                stamp: Default::default(),
            })
            .collect();
        ImageSet::in_memory("noise".into(), entries, images, Vec::new())
    }

    /// The loop as written before prefetching: each batch prepared on this thread, its loss
    /// computed and differentiated at once, nothing ahead and nothing deferred.
    fn serial_reference(config: &TrainConfig, set: &ImageSet) -> EmbeddingNet {
        let device = Device::flex().autodiff();
        let normalization = set.normalization();
        let mut net = config.model_config().init_seeded(&device, config.seed);
        let mut sgd = Sgd::new(config.momentum, config.weight_decay);
        let batch = config.batch_size;
        let masks = LossMasks::new(2 * batch, &device);
        let total = (config.epochs * (set.len() / batch)) as f64;
        let mut steps = 0;
        for epoch in 0..config.epochs {
            let plan = batches::epoch_batches(config.seed, epoch, set.len(), batch);
            for (step, indices) in plan.iter().enumerate() {
                let pixels = batches::prepare(config, set, indices, epoch, step).unwrap();
                // The device normalisation is checked against the host formula in `embed`; here
                // it is shared so the comparison isolates the loop (a tiny network amplifies a
                // 3e-7 input difference to 1e-3 in the weights within two steps).
                let input = pixels.to_device(&normalization, &device);
                let loss =
                    spread_out_loss(net.forward(input), config.tau, config.negatives, &masks);
                let lr = config
                    .schedule
                    .lr(config.lr, epoch, config.epochs, steps as f64 / total);
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = sgd.step(lr, net, grads);
                steps += 1;
            }
        }
        net
    }

    #[test]
    fn the_overlapped_loop_reaches_the_serial_reference_weights() {
        let config = config();
        let set = noise_set(13);
        let device = Device::flex().autodiff();
        let normalization = set.normalization();
        let runner = EpochRunner::new(&config, &set, normalization, &device, false);
        let mut net = config.model_config().init_seeded(&device, config.seed);
        let mut sgd = Sgd::new(config.momentum, config.weight_decay);
        let mut steps = 0;
        let mut events = Vec::new();
        for epoch in 0..config.epochs {
            let trained = runner
                .train_epoch(
                    EpochStart {
                        epoch,
                        net,
                        steps,
                        resume_at: None,
                        first_of_run: epoch == 0,
                    },
                    &mut sgd,
                    &mut MethodState::Stateless,
                    &Control::default(),
                    None,
                    &mut |e| events.push(e),
                )
                .unwrap()
                .trained()
                .expect("not cancelled");
            net = trained.net;
            steps = trained.steps;
            assert!((0.0..=1.0).contains(&trained.data_wait_fraction));
        }
        assert_eq!(steps, 6, "13 images in batches of 4: three steps an epoch");
        let reported: Vec<(usize, usize)> = events
            .iter()
            .filter_map(|e| match e {
                TrainEvent::Step { epoch, step, .. } => Some((*epoch, *step)),
                _ => None,
            })
            .collect();
        assert_eq!(
            reported,
            vec![(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
        );

        let reference = export::module_tensors(&serial_reference(&config, &set));
        let overlapped = export::module_tensors(&net);
        assert_eq!(reference.len(), overlapped.len());
        for (a, b) in reference.iter().zip(&overlapped) {
            assert_eq!(a.name, b.name);
            let (TensorValues::F32(x), TensorValues::F32(y)) = (&a.values, &b.values) else {
                panic!("{} is not f32", a.name);
            };
            for (p, q) in x.iter().zip(y) {
                assert!(
                    (p - q).abs() <= 1e-5 * (1.0 + p.abs()),
                    "{}: {p} vs {q}",
                    a.name
                );
            }
        }
    }

    #[test]
    fn a_cancel_while_batches_are_prefetched_ends_the_epoch_at_the_next_step() {
        let config = TrainConfig {
            epochs: 1,
            ..config()
        };
        let set = noise_set(40);
        let device = Device::flex().autodiff();
        let runner = EpochRunner::new(&config, &set, set.normalization(), &device, false);
        let control = Control::default();
        let mut steps_after_cancel = 0;
        let outcome = runner
            .train_epoch(
                EpochStart {
                    epoch: 0,
                    net: config.model_config().init_seeded(&device, 0),
                    steps: 0,
                    resume_at: None,
                    first_of_run: true,
                },
                &mut Sgd::new(0.9, 5e-4),
                &mut MethodState::Stateless,
                &control,
                None,
                &mut |event| {
                    if let TrainEvent::Step { .. } = event {
                        if control.is_cancelled() {
                            steps_after_cancel += 1;
                        }
                        control.cancel();
                    }
                },
            )
            .unwrap();
        assert!(outcome.trained().is_none(), "cancelled");
        assert_eq!(steps_after_cancel, 0, "no step is reported after the Stop");
    }
}
