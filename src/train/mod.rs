//! The training loop: Siamese batches of two augmented views, the spread-out loss, SGD, and after
//! every epoch an evaluation, `metrics.jsonl`, an atomic checkpoint and an export.
//!
//! The loop has the shape of the data's way through it: a batch producer
//! ([`batches`], run ahead of the device by [`crate::support::prefetch`]) hands 8-bit pixels to the
//! device step ([`step`]), whose loss is read one step late so the device never idles waiting
//! for the host ([`epoch`]); at the end of each epoch the evaluation ([`evaluation`]) and the run
//! folder ([`run_folder`]) take over.
//!
//! A run is driven by [`run`] on the caller's thread or by [`spawn`] on one long-lived worker
//! thread; both report through one stream of [`TrainEvent`]s and obey a shared [`Control`]
//! (pause, resume, cancel within one step, evaluation included). Random streams are derived from
//! the seed, epoch and step ([`crate::support::rng`]), so a resumed run draws exactly what an
//! uninterrupted one would.

pub(crate) mod batches;
mod config;
mod control;

mod epoch;
mod error;
mod evaluation;
pub mod events;
mod preview;
mod request;
mod resume;
pub mod run_folder;
mod served;
pub(crate) mod step;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use crate::augment::Normalization;
use crate::data::{self, DataError, ImageSet, PixelCache};
use crate::device::SelectedDevice;
use crate::method::MethodState;
use crate::model::EmbeddingNet;
use crate::model_files::ExportedConfig;
use crate::optim::Sgd;
use crate::support::panics::panic_message;
pub(crate) use batches::keep_images;
pub use config::{
    AugmentOn, LIMITS, Limit, SettingLimits, TrainConfig, TrainSettings, default_recall_k,
};
pub use control::Control;
use epoch::TrainedEpoch;
pub(crate) use epoch::{EpochOutcome, EpochPosition, EpochRunner, EpochStart};
pub use error::TrainError;
pub use events::{EpochMetrics, Phase, ProbeNeighbors, ScoredOn, TrainEvent};
pub use preview::{ViewsPreview, preview_views};
pub use request::{RunSummary, Start, TrainRequest};
pub use resume::{ResumeOverrides, ResumePoint, Resumption, SettingChange};
pub use run_folder::{METRICS_FILE, RUN_FILE, SKIPPED_FILE, read_metrics};
use run_folder::{RunFolder, checkpoint, runs};
use served::TrafficMeter;

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
                        code: error.kind(),
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

/// Runs a whole training request on this thread, emitting events; ends with `Finished` or
/// `Failed`.
pub fn run(
    request: &TrainRequest,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, TrainError> {
    let result =
        served::server_lost_as_error(&request.device, || run_inner(request, control, emit));
    match &result {
        Ok(summary) => emit(TrainEvent::Finished {
            canceled: summary.canceled,
            epochs_completed: summary.epochs_completed,
        }),
        Err(error) => emit(TrainEvent::Failed {
            code: error.kind(),
            message: error.to_string(),
        }),
    }
    result
}

/// A run's way: its settings (the checkpoint's, on a resume), device and images; its folder; its
/// state opened fresh or from the checkpoint; then its epochs, each ending in an evaluation and
/// the run folder's files.
fn run_inner(
    request: &TrainRequest,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, TrainError> {
    request.check_out()?;
    let resumed = resume::previous_state(request)?;
    // A resume's settings were decided by `TrainRequest::resume`, from the run's record. A rate
    // cap belongs to the run that was extended: a new run started from its settings (the app's
    // form after a resume) plans its own schedule.
    let mut config = request.config.clone();
    if !request.is_resume() {
        config.lr_cap = None;
    }
    config.validate()?;
    let selected = resume::select_device(request, &config, emit)?;
    // On a served device, each few steps' network traffic follows their step events.
    let mut meter = TrafficMeter::of(&selected);
    let outer = emit;
    let emit: &mut dyn FnMut(TrainEvent) = &mut |event| {
        let report = meter.as_mut().and_then(|meter| meter.after(&event));
        outer(event);
        if let Some(report) = report {
            outer(report);
        }
    };
    let (train, evals) = match load_data(request, &config, control, emit) {
        Err(DataError::Canceled(_)) => {
            return Ok(RunSummary::stopped(
                resumed.as_ref().map_or(0, |state| state.epochs_completed),
                Vec::new(),
                resumed.map_or(0, |state| state.steps_into_epoch),
            ));
        }
        other => other?,
    };
    if resumed.is_some() {
        resume::check_folder_unchanged(request, &train, emit)?;
    }
    set_aside_overwritten(request, emit)?;
    let folder = create_folder(request, &train, emit)?;
    let device = selected.device.clone().autodiff();
    let restored = open(
        request,
        &config,
        &train,
        &folder,
        &device,
        resumed.is_some(),
    )?;
    folder.write_record(&run_record(
        request,
        &config,
        &selected,
        &train,
        restored.normalization,
    ))?;

    let mut runner = EpochRunner::new(
        &config,
        &train,
        restored.normalization,
        &device,
        selected.defers_work(),
    );
    if resume::views_on_device(request, &selected, emit)? {
        // A served device builds views only of images kept there: none when they do not fit.
        let (cube, kept) = batches::keep_images(&selected, &train, config.device_data_mb)?;
        runner = runner.with_views_on(cube, kept);
    }
    emit(TrainEvent::Started {
        device: selected.name.clone(),
        images: train.len(),
        skipped: train.skipped.clone(),
        steps_per_epoch: runner.steps_per_epoch(),
        epochs: config.epochs,
        first_epoch: restored.first_epoch + 1,
        views_on: if runner.views_on_device() {
            AugmentOn::Device
        } else {
            AugmentOn::Cpu
        },
    });
    let opened = Opened {
        request,
        config: &config,
        train: &train,
        evals: &evals,
        folder: &folder,
        selected: &selected,
    };
    train_epochs(&opened, &runner, restored, control, emit)
}

/// A run started over another (`Start::Overwrite`) first moves that run's files aside, and says
/// where, so nothing of it is lost.
fn set_aside_overwritten(
    request: &TrainRequest,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<(), TrainError> {
    if request.start == Start::Overwrite
        && let Some(earlier) = runs::set_aside(&request.run_dir, std::time::SystemTime::now())?
    {
        emit(TrainEvent::Warning {
            message: format!(
                "starting again over the run in {}: its files were moved into {}",
                request.run_dir.display(),
                earlier.display()
            ),
        });
    }
    Ok(())
}

/// What the run folder records of the run: where it trains, on which images, with which settings.
fn run_record(
    request: &TrainRequest,
    config: &TrainConfig,
    selected: &SelectedDevice,
    train: &ImageSet,
    normalization: Normalization,
) -> runs::RunRecord {
    runs::RunRecord {
        device: selected.name.clone(),
        device_choice: Some(request.device.clone()),
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
    }
}

/// The training images, then the evaluation sets, both reporting their progress.
fn load_data(
    request: &TrainRequest,
    config: &TrainConfig,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<(ImageSet, evaluation::EvalSets), DataError> {
    emit(TrainEvent::Phase {
        phase: Phase::LoadingData,
    });
    let cache = request.pixel_cache();
    let train = load_with_progress(&request.train_dir, config.image_size, &cache, control, emit)?;
    let evals = evaluation::load_eval_sets(request, &train, config.image_size, control, emit)?;
    Ok((train, evals))
}

/// The run folder, with the list of the training files that were skipped (and a warning when
/// there are any).
fn create_folder(
    request: &TrainRequest,
    train: &ImageSet,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<RunFolder, TrainError> {
    let folder = RunFolder::create(&request.run_dir, train.instance_keys())?;
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
    Ok(folder)
}

/// Where training starts: a fresh network or everything a checkpoint restores; then, as the
/// epochs go, where it has got to.
struct Restored {
    net: EmbeddingNet,
    sgd: Sgd,
    method_state: MethodState,
    /// The input normalisation, estimated from the training images when the run began.
    normalization: Normalization,
    /// Epochs already completed: the first (0-based) to train.
    first_epoch: usize,
    /// Optimiser steps taken.
    steps: u64,
    /// When the run stopped inside an epoch: the steps of it done and their summed loss.
    resume_at: Option<(usize, f64)>,
}

/// Opens the run: from its checkpoint when `resuming`, keeping the metrics of the epochs it
/// holds; otherwise fresh from the seed (or `init_weights`), with the metrics started afresh.
fn open(
    request: &TrainRequest,
    config: &TrainConfig,
    train: &ImageSet,
    folder: &RunFolder,
    device: &burn::tensor::Device,
    resuming: bool,
) -> Result<Restored, TrainError> {
    if resuming {
        let restored = checkpoint::load(&request.run_dir, device, folder.instance_keys())?;
        let state = restored.state;
        folder.start_metrics(Some(state.epochs_completed))?;
        return Ok(Restored {
            net: restored.net,
            sgd: restored.sgd,
            method_state: restored.method,
            normalization: state.normalization,
            first_epoch: state.epochs_completed,
            steps: state.steps,
            resume_at: (state.steps_into_epoch > 0)
                .then_some((state.steps_into_epoch, state.epoch_loss_sum)),
        });
    }
    folder.start_metrics(None)?;
    let fresh = config.model_config().init_seeded(device, config.seed);
    let net = match &request.init_weights {
        Some(file) => crate::model_files::load_pretrained_backbone(fresh, file)?,
        None => fresh,
    };
    Ok(Restored {
        net,
        sgd: Sgd::new(config.momentum, config.weight_decay),
        method_state: MethodState::new(
            config.method,
            train.len(),
            config.dim,
            config.seed,
            (config.momentum, config.weight_decay),
            device,
        ),
        normalization: train.normalization(),
        first_epoch: 0,
        steps: 0,
        resume_at: None,
    })
}

/// What the epoch loop reads besides the network: the request, its settings, the images, the
/// run folder and the device.
struct Opened<'a> {
    request: &'a TrainRequest,
    config: &'a TrainConfig,
    train: &'a ImageSet,
    evals: &'a evaluation::EvalSets,
    folder: &'a RunFolder,
    selected: &'a SelectedDevice,
}

/// Trains the epochs from `start` to the configured number: each one trained, evaluated and
/// written to the run folder, until the last, a Stop, or the request's `stop_after_epoch`.
fn train_epochs(
    opened: &Opened<'_>,
    runner: &EpochRunner<'_>,
    start: Restored,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, TrainError> {
    let Opened {
        request,
        config,
        train,
        evals,
        folder,
        selected,
    } = *opened;
    let mut state = start;
    let normalization = state.normalization;
    let mut save_position =
        |position: &EpochPosition, net: &EmbeddingNet, sgd: &Sgd, method_state: &MethodState| {
            let run_state = opened.run_state(normalization, position);
            folder.save_position(&run_state, net, sgd, method_state)
        };
    let steps_per_epoch = runner.steps_per_epoch();
    let mut metrics = Vec::new();
    for epoch in state.first_epoch..config.epochs {
        let epoch_start = Instant::now();
        let trained = runner.train_epoch(
            EpochStart {
                epoch,
                net: state.net,
                steps: state.steps,
                resume_at: state.resume_at.take(),
                first_of_run: epoch == state.first_epoch,
            },
            &mut state.sgd,
            &mut state.method_state,
            control,
            Some(&mut save_position),
            emit,
        )?;
        let trained = match trained {
            EpochOutcome::Trained(trained) => *trained,
            EpochOutcome::Stopped { step } => return Ok(RunSummary::stopped(epoch, metrics, step)),
        };
        let mut epoch_metrics = trained_metrics(epoch, &trained, state.steps, steps_per_epoch);
        state.net = trained.net;
        state.steps = trained.steps;
        emit(TrainEvent::Phase {
            phase: Phase::Evaluating,
        });
        // A Stop or an error during evaluation keeps the epoch just trained: its checkpoint is
        // written with whatever was scored by then, before the error is reported.
        let evaluated = evaluation::evaluate(
            config,
            &normalization,
            &state.net,
            train,
            evals,
            epoch,
            &mut epoch_metrics,
            selected.is_wgpu,
            runner.kept(),
            &|| !control.is_canceled(),
        );
        epoch_metrics.seconds = epoch_start.elapsed().as_secs_f64();
        opened.end_epoch(&state, epoch, trained.lr, &epoch_metrics)?;
        emit(TrainEvent::Epoch(epoch_metrics.clone()));
        metrics.push(epoch_metrics);
        let evaluated = evaluated?;
        if !evaluated
            || control.is_canceled()
            || (request.stop_after_epoch == Some(epoch + 1) && epoch + 1 < config.epochs)
        {
            return Ok(RunSummary::stopped(epoch + 1, metrics, 0));
        }
    }
    Ok(RunSummary {
        epochs_completed: config.epochs,
        canceled: false,
        metrics,
        steps_into_epoch: 0,
    })
}

/// An epoch's metrics from its training, before its evaluation scores them.
fn trained_metrics(
    epoch: usize,
    trained: &TrainedEpoch,
    steps_before: u64,
    steps_per_epoch: usize,
) -> EpochMetrics {
    // The steps this epoch recorded (fewer than `steps_per_epoch` when it resumed inside).
    let recorded_steps = (trained.steps - steps_before).max(1);
    EpochMetrics {
        epoch: epoch + 1,
        loss: trained.loss_sum / steps_per_epoch as f64,
        lr: trained.lr,
        images_per_sec: trained.images_per_sec,
        data_wait_fraction: trained.data_wait_fraction,
        host_ms_per_step: 1000.0 * trained.record_seconds / recorded_steps as f64,
        knn_accuracy: None,
        knn_classes_left_out: Vec::new(),
        recall_at: None,
        scored_on: None,
        nmi: None,
        similarity: None,
        probes: Vec::new(),
        seconds: 0.0,
    }
}

impl Opened<'_> {
    /// What a checkpoint records of the run at `position`: `position.epoch` epochs completed
    /// and `position.step` steps into the next.
    fn run_state(
        &self,
        normalization: Normalization,
        position: &EpochPosition,
    ) -> checkpoint::RunState {
        checkpoint::RunState {
            config: self.config.clone(),
            normalization,
            epochs_completed: position.epoch,
            steps: position.steps,
            steps_into_epoch: position.step,
            epoch_loss_sum: position.loss_sum,
            last_lr: Some(position.lr),
            instances: self.train.len(),
        }
    }

    /// Writes `epoch`'s end to the run folder: the checkpoint of `state`, the model as exported
    /// and the epoch's metrics.
    fn end_epoch(
        &self,
        state: &Restored,
        epoch: usize,
        lr: f64,
        metrics: &EpochMetrics,
    ) -> Result<(), TrainError> {
        let position = EpochPosition {
            epoch: epoch + 1,
            step: 0,
            steps: state.steps,
            loss_sum: 0.0,
            lr,
        };
        let exported = ExportedConfig {
            model: self.config.model_config(),
            normalization: state.normalization,
            tau: self.config.tau,
            steps: state.steps,
        };
        self.folder.end_epoch(
            &self.run_state(state.normalization, &position),
            &state.net,
            &state.sgd,
            &state.method_state,
            metrics,
            &exported,
        )?;
        Ok(())
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
                !control.is_canceled()
            })
        });
        // The loop ends when the loader drops its sender.
        let mut told = false;
        for (done, total) in receiver {
            if done != data::WAITING {
                emit(TrainEvent::Loading { done, total });
            } else if !std::mem::replace(&mut told, true) {
                emit(TrainEvent::Warning {
                    message: format!(
                        "waiting for another fill of {} to finish (another Spreadout window or command is caching it)",
                        dir.display()
                    ),
                });
            }
        }
        // A panic in the loader is re-raised with its own message (the worker reports it).
        loader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
