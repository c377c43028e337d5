//! One epoch of training ([`EpochRunner::train_epoch`]): batches from the producer thread, each
//! step recorded on the device, its loss read later (on a GPU sixteen steps' losses at once, one
//! step late) so the device never idles waiting for the host, and a checkpoint of the position on
//! a timer or a Stop. The run (`train::run`) and
//! the benchmark (`bench`) both train through it, so what is measured is what trains.

use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, Transaction};

use super::{Control, Phase, TrainConfig, TrainError, TrainEvent, batches, step};
use crate::augment::{KeptImages, Normalization};
use crate::data::{DataError, ImageSet};
use crate::method::MethodState;
use crate::model::EmbeddingNet;
use crate::optim::Sgd;
use crate::support::prefetch;
use crate::tensor_files::FileError;

/// What the epochs of one run share.
pub(crate) struct EpochRunner<'a> {
    config: &'a TrainConfig,
    train: &'a ImageSet,
    device_step: step::DeviceStep,
    batch: usize,
    /// Rows the network sees per step: the batch times the method's views.
    rows: usize,
    /// Whether the device is a wgpu adapter: its first step compiles and tunes kernels (said as
    /// a phase of its own), and it runs behind the recording thread.
    on_gpu: bool,
    /// Steps whose losses are read together ([`LOSS_WINDOW`] on a GPU, 1 on the CPU backend).
    loss_window: usize,
    /// The run's images kept on the device, when views are built there and the images fit.
    kept: Option<KeptImages>,
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
    &'s mut dyn FnMut(&EpochPosition, &EmbeddingNet, &Sgd, &MethodState) -> Result<(), FileError>;

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
    /// Seconds this thread spent recording the steps (building their work for the device).
    pub(crate) record_seconds: f64,
    /// Times this thread waited for the device's data (the loss reads).
    pub(crate) blocking_reads: usize,
    /// Bytes this thread uploaded to the device for the steps (see `crate::support::uploads`).
    pub(crate) uploaded_bytes: u64,
}

/// Steps whose losses a GPU run reads together, in one wait on the device: a read drains the
/// device's queue up to that step, so reading every loss at once would stall the device at every
/// step, and the app would gain nothing it shows (its curve and counters move in bursts of
/// sixteen steps, a fraction of a second at the paper's setting on a GPU). The CPU backend has
/// run each step by the time it is recorded, so there every loss is read at once.
pub(crate) const LOSS_WINDOW: usize = 16;

/// A recorded step whose loss has not been read yet.
struct PendingLoss {
    step: usize,
    loss: Tensor<1>,
    lr: f64,
}

impl PendingLoss {
    /// This loss made non-finite when any parameter of `net` or of the method's state is: read
    /// before a checkpoint, so weights that the last update overflowed (while the loss it was
    /// computed from was still finite) are never saved as "the last good checkpoint". The check
    /// costs one sum per parameter, on the device, and travels in the loss's read.
    fn with_weights_check(self, net: &EmbeddingNet, method: &MethodState) -> Self {
        let mut sums = ParameterSums::default();
        net.visit(&mut sums);
        match method {
            MethodState::Stateless => {}
            MethodState::Memory(bank) => sums.sums.push(bank.memory.clone().inner().sum()),
            MethodState::Classifier { classifier, .. } => classifier.visit(&mut sums),
        }
        let Some(total) = sums.sums.into_iter().reduce(|a, b| a + b) else {
            return self;
        };
        // 0 · x is 0 for every finite x and NaN for ±∞ and NaN, so the loss is unchanged unless
        // a parameter is not finite (or so large that its sum overflows, a divergence too).
        Self {
            loss: self.loss + total.mul_scalar(0.0),
            ..self
        }
    }
}

/// `window` with the weights check of [`PendingLoss::with_weights_check`] in its last loss.
fn with_weights_check(
    mut window: Vec<PendingLoss>,
    net: &EmbeddingNet,
    method: &MethodState,
) -> Vec<PendingLoss> {
    if let Some(last) = window.pop() {
        window.push(last.with_weights_check(net, method));
    }
    window
}

/// The losses of `window`, read in one transaction (one wait on the device, no copy into one
/// buffer).
fn read_losses(window: &[PendingLoss]) -> Vec<f64> {
    window
        .iter()
        .fold(Transaction::default(), |read, pending| {
            read.register(pending.loss.clone())
        })
        .execute()
        .into_iter()
        .map(|data| {
            data.convert::<f64>()
                .try_to_vec::<f64>()
                .expect("a float tensor")[0]
        })
        .collect()
}

/// The training rate an epoch reports, timed over the steps whose work surely ran between the
/// first loss read and the latest: those recorded after the first read returned. A read can wait
/// for steps queued behind its own (a device that runs a submission whole), so a step recorded
/// before it may be done when it returns, and counting it would credit its work to no time: a
/// two-step epoch on lavapipe showed 44 661 img/s where the device managed 81. The first read
/// starts the clock (it also waits for a fresh GPU's kernel compilation); until a step recorded
/// after it has been read, the rate is the whole epoch's so far.
struct Throughput {
    start: Instant,
    first_step: usize,
    /// Rows per step: the batch times the method's views.
    rows: usize,
    /// When the first read returned, and how many steps had been recorded by then.
    first_read: Option<(Instant, usize)>,
}

impl Throughput {
    /// Images per second at a read returning `now` with the losses of steps up to
    /// `read_through` (exclusive index), `recorded` steps recorded so far.
    fn read(&mut self, now: Instant, read_through: usize, recorded: usize) -> f64 {
        let (first, recorded_then) = *self.first_read.get_or_insert((now, recorded));
        let timed = read_through.saturating_sub(recorded_then);
        let (steps, since) = if timed > 0 {
            (timed, first)
        } else {
            (read_through - self.first_step, self.start)
        };
        (steps * self.rows) as f64 / now.duration_since(since).as_secs_f64().max(1e-9)
    }
}

/// The sum of each float parameter of a module, on its device, outside autodiff (as the loss
/// it joins is, so that both travel in one transaction).
#[derive(Default)]
struct ParameterSums {
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for ParameterSums {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.sums.push(param.val().inner().sum());
    }
}

impl<'a> EpochRunner<'a> {
    /// Epochs of `config` over `train` on `device` (an autodiff device); `on_gpu` when it is a
    /// wgpu adapter (see the fields of the same names).
    pub(crate) fn new(
        config: &'a TrainConfig,
        train: &'a ImageSet,
        normalization: Normalization,
        device: &burn::tensor::Device,
        on_gpu: bool,
    ) -> Self {
        let batch = config.batch_size.min(train.len());
        Self {
            config,
            train,
            device_step: step::DeviceStep::new(config, normalization, batch, device),
            batch,
            rows: batch * config.method.views(),
            on_gpu,
            loss_window: if on_gpu { LOSS_WINDOW } else { 1 },
            kept: None,
        }
    }

    /// Builds the training views on the device rather than on the producer's threads, which
    /// then only draw the views: from the images `kept` there, or, without, from each batch's
    /// images uploaded to `views_on` (the training device's CubeCL device).
    pub(crate) fn with_views_on(
        mut self,
        views_on: Option<cubecl::Device>,
        kept: Option<KeptImages>,
    ) -> Self {
        if let Some(views_on) = views_on {
            self.device_step = self.device_step.with_views_on(views_on);
        }
        self.kept = kept;
        self
    }

    /// Whether the training views are built on the device (from kept images or from each
    /// batch's own) rather than by the producer.
    pub(crate) fn views_on_device(&self) -> bool {
        self.kept.is_some() || self.device_step.builds_views()
    }

    /// The run's images kept on the device, if any.
    pub(crate) fn kept(&self) -> Option<&KeptImages> {
        self.kept.as_ref()
    }

    /// Optimiser steps in each epoch (full batches only).
    pub(crate) fn steps_per_epoch(&self) -> usize {
        self.train.len() / self.batch
    }

    /// Trains one epoch (from `start.resume_at`'s step when resuming inside it): batches come
    /// from the producer thread, each step is recorded on the device, and the losses of the
    /// last `loss_window` steps are read together once the next step is queued (and before a
    /// checkpoint and at the epoch's end). With `save`, a checkpoint of the position is
    /// written every `checkpoint_minutes` and when the user stops the run.
    pub(crate) fn train_epoch(
        &self,
        start: EpochStart,
        sgd: &mut Sgd,
        method_state: &mut MethodState,
        control: &Control,
        save: Option<SavePosition<'_>>,
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
        let produce = |i: usize| self.prepare(&plan, epoch, first_step + i);
        let interval = Duration::from_secs_f64(config.checkpoint_minutes * 60.0);
        let epoch_start = Instant::now();
        let remaining = steps_per_epoch - first_step;
        prefetch::scoped(batches::PREFETCH_DEPTH, remaining, produce, |queue| {
            let mut net = net;
            let mut progress = EpochProgress {
                epoch,
                first_step,
                steps,
                lr: config.lr_at(epoch, first_step, steps_per_epoch),
                loss_sum: loss_before,
                checkpoints: Checkpoints {
                    save,
                    interval,
                    last: Instant::now(),
                },
                pending: Vec::with_capacity(self.loss_window),
                loss_window: self.loss_window,
                reader: LossReader {
                    epoch,
                    steps_per_epoch,
                    announces_training: first_of_run && self.on_gpu,
                    throughput: Throughput {
                        start: epoch_start,
                        first_step,
                        rows: self.rows,
                        first_read: None,
                    },
                    last_read: epoch_start,
                    rate: 0.0,
                    blocking_reads: 0,
                },
                recorded: first_step,
                record_seconds: 0.0,
                uploaded_before: crate::support::uploads::uploaded(),
            };
            if first_of_run && self.on_gpu {
                emit(TrainEvent::Phase {
                    phase: Phase::WarmingUp,
                });
            }
            for (i, pixels) in queue.by_ref().enumerate() {
                let step = first_step + i;
                let pixels = pixels?;
                if let Some(kept) =
                    progress.before_step(step, &net, sgd, method_state, control, emit)?
                {
                    return Ok(EpochOutcome::Stopped { step: kept });
                }
                progress.lr = config.lr_at(epoch, step, steps_per_epoch);
                let recording = Instant::now();
                let (next, loss) = self.device_step.record(
                    net,
                    sgd,
                    method_state,
                    progress.lr,
                    pixels,
                    &plan[step],
                    step::StepPosition { epoch, step },
                );
                progress.record_seconds += recording.elapsed().as_secs_f64();
                net = next;
                progress.step_recorded(step, loss, emit)?;
            }
            let trained = progress.finish(net, method_state, queue.waited(), emit)?;
            Ok(EpochOutcome::Trained(Box::new(trained)))
        })
    }

    /// The input of `step` of `epoch`'s `plan`, prepared on the producer thread and left where
    /// the step builds its views.
    fn prepare(
        &self,
        plan: &[Vec<usize>],
        epoch: usize,
        step: usize,
    ) -> Result<batches::StepInput, DataError> {
        let place = match (&self.kept, self.device_step.builds_views()) {
            (Some(kept), _) => batches::ViewsPlace::Kept(kept),
            (None, true) => batches::ViewsPlace::Device,
            (None, false) => batches::ViewsPlace::Cpu,
        };
        batches::prepare(self.config, self.train, &plan[step], (epoch, step), place)
    }
}

/// The loss read-back of an epoch: reads a window of recorded losses in one wait on the device,
/// reports each step with the rate so far, and keeps what the epoch's summary says of the reads.
struct LossReader {
    epoch: usize,
    steps_per_epoch: usize,
    /// Whether the first read says the Training phase has begun: on a GPU run's first epoch,
    /// whose first step compiled and tuned kernels under the WarmingUp phase.
    announces_training: bool,
    throughput: Throughput,
    /// When the latest read returned: the end of the epoch's timed training.
    last_read: Instant,
    /// The rate at the latest read.
    rate: f64,
    blocking_reads: usize,
}

impl LossReader {
    /// Reads `window`'s losses, reports each step and returns their sum; stops at the first
    /// non-finite one. `recorded` steps have been recorded so far (for the throughput's clock).
    fn read(
        &mut self,
        window: Vec<PendingLoss>,
        recorded: usize,
        emit: &mut dyn FnMut(TrainEvent),
    ) -> Result<f64, TrainError> {
        let Some(last) = window.last().map(|done| done.step) else {
            return Ok(0.0);
        };
        let losses = read_losses(&window);
        self.blocking_reads += 1;
        let now = Instant::now();
        self.last_read = now;
        if self.throughput.first_read.is_none() && self.announces_training {
            emit(TrainEvent::Phase {
                phase: Phase::Training,
            });
        }
        self.rate = self.throughput.read(now, last + 1, recorded);
        let mut sum = 0.0;
        for (done, loss) in window.iter().zip(losses) {
            if !loss.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch: self.epoch + 1,
                    step: done.step + 1,
                    loss,
                });
            }
            emit(TrainEvent::Step {
                epoch: self.epoch + 1,
                step: done.step + 1,
                steps_per_epoch: self.steps_per_epoch,
                loss,
                lr: done.lr,
                images_per_sec: self.rate,
            });
            sum += loss;
        }
        Ok(sum)
    }
}

/// Where an epoch's position is written: with the run's saver, every `interval` and when the
/// user pauses or stops.
struct Checkpoints<'s> {
    save: Option<SavePosition<'s>>,
    interval: Duration,
    /// When the position was last written (or the epoch began).
    last: Instant,
}

/// An epoch's loop between its steps: the counts a checkpoint records, the losses recorded but
/// not read yet, and the timings the epoch's summary reports.
struct EpochProgress<'s> {
    epoch: usize,
    /// The step the epoch started (or resumed) at.
    first_step: usize,
    /// Optimiser steps of the run.
    steps: u64,
    /// Rate of the last step recorded.
    lr: f64,
    loss_sum: f64,
    checkpoints: Checkpoints<'s>,
    pending: Vec<PendingLoss>,
    /// Steps whose losses are read together.
    loss_window: usize,
    reader: LossReader,
    /// Steps recorded so far (through this index), for the throughput's clock.
    recorded: usize,
    /// Seconds spent recording the steps.
    record_seconds: f64,
    /// The upload counter when the epoch began.
    uploaded_before: u64,
}

impl EpochProgress<'_> {
    /// The checkpoints and the Stop before `step`: a pause writes the position before it waits,
    /// so that quitting while paused loses nothing, as does the timer every interval; a Stop
    /// writes it unless that was just done. On a Stop, the step the epoch's kept work reaches.
    fn before_step(
        &mut self,
        step: usize,
        net: &EmbeddingNet,
        sgd: &Sgd,
        method_state: &MethodState,
        control: &Control,
        emit: &mut dyn FnMut(TrainEvent),
    ) -> Result<Option<usize>, TrainError> {
        let pausing = control.is_paused() && !control.is_canceled();
        let mut written = false;
        if pausing || self.checkpoints.last.elapsed() >= self.checkpoints.interval {
            written = self.write_position(step, net, sgd, method_state, emit)?;
        }
        let stopping = !control.wait_while_paused();
        if stopping && !written {
            written = self.write_position(step, net, sgd, method_state, emit)?;
        }
        if written {
            self.checkpoints.last = Instant::now();
        }
        if !stopping {
            return Ok(None);
        }
        let saved = self.checkpoints.save.is_some() && step > self.first_step;
        Ok(Some(if saved { step } else { self.first_step }))
    }

    /// Writes the position before `step` with the saver, if there is one and the epoch has
    /// trained since it began; whether it was written.
    fn write_position(
        &mut self,
        step: usize,
        net: &EmbeddingNet,
        sgd: &Sgd,
        method_state: &MethodState,
        emit: &mut dyn FnMut(TrainEvent),
    ) -> Result<bool, TrainError> {
        let first_step = self.first_step;
        let Some(save) = self.checkpoints.save.as_mut().filter(|_| step > first_step) else {
            return Ok(false);
        };
        // The position must include every step's loss: read the pending ones first, with the
        // check that the weights about to be saved are finite.
        let window = with_weights_check(std::mem::take(&mut self.pending), net, method_state);
        self.loss_sum += self.reader.read(window, self.recorded, emit)?;
        let position = EpochPosition {
            epoch: self.epoch,
            step,
            steps: self.steps,
            loss_sum: self.loss_sum,
            lr: self.lr,
        };
        save(&position, net, sgd, method_state)?;
        tracing::info!("checkpoint at epoch {}, step {step}", self.epoch + 1);
        Ok(true)
    }

    /// Counts `step` as recorded and queues its `loss` for reading, first reading the window
    /// before it when that is full.
    fn step_recorded(
        &mut self,
        step: usize,
        loss: Tensor<1>,
        emit: &mut dyn FnMut(TrainEvent),
    ) -> Result<(), TrainError> {
        self.steps += 1;
        self.recorded = step + 1;
        if self.pending.len() >= self.loss_window {
            let window = std::mem::take(&mut self.pending);
            self.loss_sum += self.reader.read(window, self.recorded, emit)?;
        }
        self.pending.push(PendingLoss {
            step,
            loss,
            lr: self.lr,
        });
        Ok(())
    }

    /// Reads the last losses, with the check that the weights the epoch's end checkpoints are
    /// finite, and sums the epoch up; `waited` is the time spent waiting for the producer.
    fn finish(
        mut self,
        net: EmbeddingNet,
        method_state: &MethodState,
        waited: Duration,
        emit: &mut dyn FnMut(TrainEvent),
    ) -> Result<TrainedEpoch, TrainError> {
        let window = with_weights_check(std::mem::take(&mut self.pending), &net, method_state);
        self.loss_sum += self.reader.read(window, self.recorded, emit)?;
        let reader = self.reader;
        let train_seconds = reader
            .last_read
            .duration_since(reader.throughput.start)
            .as_secs_f64();
        Ok(TrainedEpoch {
            net,
            steps: self.steps,
            loss_sum: self.loss_sum,
            lr: self.lr,
            images_per_sec: reader.rate,
            seconds: train_seconds,
            data_wait_fraction: waited.as_secs_f64() / train_seconds.max(1e-9),
            record_seconds: self.record_seconds,
            blocking_reads: reader.blocking_reads,
            uploaded_bytes: crate::support::uploads::uploaded() - self.uploaded_before,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data;
    use crate::method::{LossMasks, spread_out_loss};
    use crate::tensor_files;
    use crate::tensor_files::TensorValues;
    use burn::optim::GradientsParams;
    use burn::tensor::Device;
    use image::RgbImage;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

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
                let crate::embed::Input::Built(pixels) = batches::prepare(
                    config,
                    set,
                    indices,
                    (epoch, step),
                    batches::ViewsPlace::Cpu,
                )
                .unwrap()
                .views
                else {
                    unreachable!("views built on the host")
                };
                // The device normalisation is checked against the host formula in `embed`; here
                // it is shared so the comparison isolates the loop (a tiny network amplifies a
                // 3e-7 input difference to 1e-3 in the weights within two steps).
                let input = pixels.to_device(&crate::embed::DeviceNormalization::new(
                    &normalization,
                    &device,
                ));
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
    fn the_rate_counts_only_steps_whose_work_ran_while_it_was_timed() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // Two steps of 8 rows: the first read returns once both ran (1 s), the last at once.
        let mut two = Throughput {
            start,
            first_step: 0,
            rows: 8,
            first_read: None,
        };
        assert_eq!(two.read(at(1000), 1, 2), 8.0);
        let rate = two.read(at(1001), 2, 2);
        assert!(
            (rate - 16.0 / 1.001).abs() < 1e-9,
            "{rate}, not 8 rows in 1 ms"
        );
        // A long epoch resumed at step 4: after the first read, 8 steps recorded and read in 2 s.
        let mut long = Throughput {
            start,
            first_step: 4,
            rows: 8,
            first_read: None,
        };
        assert_eq!(long.read(at(1000), 5, 6), 8.0);
        assert_eq!(long.read(at(3000), 14, 15), 32.0);
    }

    #[test]
    fn the_weights_check_makes_the_loss_non_finite_exactly_when_a_weight_is() {
        let device = Device::flex();
        let net = config().model_config().init_seeded(&device, 1);
        let loss = || Tensor::<1>::from_floats([0.5], &device);
        let pending = |net: &EmbeddingNet, method: &MethodState| {
            let checked = PendingLoss {
                step: 0,
                loss: loss(),
                lr: 0.1,
            }
            .with_weights_check(net, method);
            crate::method::scalar(checked.loss)
        };
        assert_eq!(pending(&net, &MethodState::Stateless), 0.5);
        let mut tensors = tensor_files::module_tensors(&net);
        let TensorValues::F32(values) = &mut tensors[3].values else {
            panic!("f32 weights");
        };
        values[0] = f32::INFINITY;
        let named = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        let broken =
            tensor_files::load_module_tensors(net.clone(), &named, "test".as_ref()).unwrap();
        assert!(pending(&broken, &MethodState::Stateless).is_nan());
        // The method's state counts too: a memory bank that overflowed.
        let mut bank = crate::method::MemoryBank::new_seeded(4, 8, 1, &device);
        bank.memory = bank.memory.mul_scalar(f32::INFINITY);
        assert!(pending(&net, &MethodState::Memory(Box::new(bank))).is_nan());
    }

    #[test]
    fn a_checkpoint_after_an_overflowing_update_is_refused_not_written() {
        // A rate beyond f32's range makes the first update's weights infinite, while the loss
        // read before the next checkpoint (the first step's, computed before that update) is
        // still finite; with a checkpoint due at every step, that checkpoint must be refused.
        let config = TrainConfig {
            lr: 1e39,
            checkpoint_minutes: 1e-9,
            ..config()
        };
        let set = noise_set(16);
        let device = Device::flex().autodiff();
        let runner = EpochRunner::new(&config, &set, set.normalization(), &device, false);
        let mut saved = 0;
        let mut save = |_: &EpochPosition, net: &EmbeddingNet, _: &Sgd, _: &MethodState| {
            for tensor in tensor_files::module_tensors(net) {
                if let TensorValues::F32(values) = &tensor.values {
                    assert!(
                        values.iter().all(|v| v.is_finite()),
                        "{} was saved with a non-finite value",
                        tensor.name
                    );
                }
            }
            saved += 1;
            Ok(())
        };
        let outcome = runner.train_epoch(
            EpochStart {
                epoch: 0,
                net: config.model_config().init_seeded(&device, config.seed),
                steps: 0,
                resume_at: None,
                first_of_run: true,
            },
            &mut Sgd::new(config.momentum, config.weight_decay),
            &mut MethodState::Stateless,
            &Control::default(),
            Some(&mut save),
            &mut |_| {},
        );
        assert!(
            matches!(outcome, Err(TrainError::NonFinite { step: 1, .. })),
            "the run stops at the first step's read"
        );
        assert_eq!(saved, 0);
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

        let reference = tensor_files::module_tensors(&serial_reference(&config, &set));
        let overlapped = tensor_files::module_tensors(&net);
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

    /// One epoch of `config` over `set` from the seed's weights, its losses read `window` steps
    /// at a time: the events, the outcome and the reads it waited for.
    fn epoch_in_windows(
        config: &TrainConfig,
        set: &ImageSet,
        window: usize,
    ) -> (Vec<TrainEvent>, Result<TrainedEpoch, TrainError>) {
        let device = Device::flex().autodiff();
        let mut runner = EpochRunner::new(config, set, set.normalization(), &device, false);
        runner.loss_window = window;
        let mut events = Vec::new();
        let outcome = runner
            .train_epoch(
                EpochStart {
                    epoch: 0,
                    net: config.model_config().init_seeded(&device, config.seed),
                    steps: 0,
                    resume_at: None,
                    first_of_run: true,
                },
                &mut Sgd::new(config.momentum, config.weight_decay),
                &mut MethodState::Stateless,
                &Control::default(),
                None,
                &mut |event| events.push(event),
            )
            .map(|outcome| outcome.trained().expect("not cancelled"));
        (events, outcome)
    }

    #[test]
    fn a_window_of_losses_is_read_at_once_and_reported_step_by_step() {
        let config = TrainConfig {
            epochs: 1,
            ..config()
        };
        let set = noise_set(44);
        let losses = |events: &[TrainEvent]| -> Vec<(usize, f64)> {
            events
                .iter()
                .filter_map(|e| match e {
                    TrainEvent::Step { step, loss, .. } => Some((*step, *loss)),
                    _ => None,
                })
                .collect()
        };
        let (each, one) = epoch_in_windows(&config, &set, 1);
        let (four, windowed) = epoch_in_windows(&config, &set, 4);
        let (one, windowed) = (one.unwrap(), windowed.unwrap());
        // Eleven steps: every step read on its own, or windows of steps 1-4 and 5-8 (each read
        // once the next step is queued) and the epoch's last three.
        assert_eq!(one.blocking_reads, 11);
        assert_eq!(windowed.blocking_reads, 3);
        assert_eq!(
            losses(&four),
            losses(&each),
            "the same losses, step by step"
        );
        assert_eq!(losses(&four).len(), 11);
        assert_eq!(windowed.loss_sum, one.loss_sum);

        // An update that overflows the weights: step 1's loss (computed before it) is finite,
        // step 2's is not, and the run stops there, naming it, though it was read with step 3's.
        let diverging = TrainConfig { lr: 1e39, ..config };
        let (events, outcome) = epoch_in_windows(&diverging, &set, 4);
        assert!(
            matches!(
                outcome,
                Err(TrainError::NonFinite {
                    epoch: 1,
                    step: 2,
                    ..
                })
            ),
            "stopped at the first non-finite step"
        );
        assert_eq!(losses(&events).len(), 1, "only step 1 was reported");
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
                        if control.is_canceled() {
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
