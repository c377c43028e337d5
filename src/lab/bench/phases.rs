//! Where a training step's time goes on the CPU backend: `spreadout bench --phases`.
//!
//! The CPU backend runs each operation when it is called, so the wall-clock time between two
//! calls is the work between them. A step is timed in its four phases (forward, Eq. 7, backward,
//! the SGD update) on random views: the data path is excluded, its rows are `data_path`'s.
//! Forward and backward are split by layer kind by replaying each convolution and each batch norm
//! of the network alone at the step's shapes, timing each way; what the replays do not cover
//! (ReLU, residual sums, pooling, the head and the loss's own graph) is the remainder.
//! A GPU queues its work, so time between calls is not its compute: there the phases are not
//! timed (its launches are `--launches`'s).

use std::time::Instant;

use burn::nn::BatchNormConfig;
use burn::optim::GradientsParams;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};

use super::{BenchError, BenchRow, TrainingCase};
use crate::device::{self, SelectedDevice};
use crate::method::{LossMasks, NegativeSampling, spread_out_loss};
use crate::model::ConvLayer;
use crate::optim::Sgd;

/// Seconds per step of each phase, the medians over the timed steps.
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    forward: f64,
    loss: f64,
    backward: f64,
    sgd: f64,
}

/// The rows of `case`'s step on `device` by phase, after one untimed step: forward and backward
/// (each with its convolutions, its batch norms and the rest), loss, SGD, and the whole step.
///
/// # Errors
/// [`BenchError::Queued`] on a device that queues its work (a GPU, a server).
pub fn step_phases(
    device: &SelectedDevice,
    case: TrainingCase,
    steps: usize,
) -> Result<Vec<BenchRow>, BenchError> {
    if device.is_wgpu || device.remote.is_some() {
        return Err(BenchError::Queued(device.name.clone()));
    }
    device::check_precision(device, case.precision)?;
    let config = case.config();
    let model = config.model_config();
    let autodiff = device.device.clone().autodiff();
    let rows = 2 * case.batch_size;
    let side = case.image_size as usize;
    let views = Tensor::<4>::random(
        [rows, 3, side, side],
        Distribution::Normal(0.0, 1.0),
        &autodiff,
    );
    let masks = LossMasks::new(rows, &autodiff);
    let mut net = model.init_seeded(&autodiff, 0);
    let mut sgd = Sgd::new(config.momentum, config.weight_decay);
    let mut timed: Vec<Phases> = Vec::new();
    for _ in 0..=steps.max(1) {
        let mut phases = Phases::default();
        let start = Instant::now();
        let features = net.forward_at(views.clone(), case.precision);
        phases.forward = lap(start);
        let start = Instant::now();
        let loss = spread_out_loss(features, config.tau, NegativeSampling::All, &masks);
        phases.loss = lap(start);
        let start = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        phases.backward = lap(start);
        let start = Instant::now();
        net = sgd.step(config.lr, net, grads);
        phases.sgd = lap(start);
        timed.push(phases);
    }
    // The first step allocates the momentum buffers and warms the allocator.
    let timed = &timed[1..];
    let median = |phase: fn(&Phases) -> f64| median(timed.iter().map(phase).collect());
    let phases = Phases {
        forward: median(|p| p.forward),
        loss: median(|p| p.loss),
        backward: median(|p| p.backward),
        sgd: median(|p| p.sgd),
    };
    let layers = model.convolutions(case.batch_size * 2);
    let (convolutions, batch_norms) = replay_layers(&layers, steps, &autodiff);
    let step = phases.forward + phases.loss + phases.backward + phases.sgd;
    let row = |name: &str, seconds: f64| phase_row(device, case, name, seconds, step);
    let count = layers.len();
    let rest = |whole: f64, parts: f64| (whole - parts).max(0.0);
    Ok(vec![
        row("forward", phases.forward),
        row(
            &format!("  the {count} convolutions (replayed)"),
            convolutions.forward,
        ),
        row(
            &format!("  the {count} batch norms (replayed)"),
            batch_norms.forward,
        ),
        row(
            "  the rest (ReLU, sums, pooling, head)",
            rest(phases.forward, convolutions.forward + batch_norms.forward),
        ),
        row("loss (Eq. 7)", phases.loss),
        row("backward", phases.backward),
        row(
            &format!("  the {count} convolutions (replayed)"),
            convolutions.backward,
        ),
        row(
            &format!("  the {count} batch norms (replayed)"),
            batch_norms.backward,
        ),
        row(
            "  the rest (ReLU, sums, pooling, head, loss)",
            rest(
                phases.backward,
                convolutions.backward + batch_norms.backward,
            ),
        ),
        row("SGD update", phases.sgd),
        row("step", step),
    ])
}

/// The network's convolutions and its batch norms, each replayed alone: their total seconds each
/// way, the medians over `steps` runs.
fn replay_layers(layers: &[ConvLayer], steps: usize, device: &Device) -> (Lap, Lap) {
    // The stem's input is the images, which need no gradient.
    let convolutions = replayed(steps, || {
        layers
            .iter()
            .enumerate()
            .map(|(k, layer)| convolution(layer, k > 0, device))
            .fold(Lap::default(), Lap::add)
    });
    let batch_norms = replayed(steps, || {
        layers
            .iter()
            .map(|layer| batch_norm(layer.output(), device))
            .fold(Lap::default(), Lap::add)
    });
    (convolutions, batch_norms)
}

/// Seconds one replayed layer took each way.
#[derive(Debug, Clone, Copy, Default)]
struct Lap {
    forward: f64,
    backward: f64,
}

impl Lap {
    fn add(self, other: Lap) -> Lap {
        Lap {
            forward: self.forward + other.forward,
            backward: self.backward + other.backward,
        }
    }

    /// Forward from `start` to `middle`, backward from `middle` to now.
    fn between(start: Instant, middle: Instant) -> Lap {
        Lap {
            forward: (middle - start).as_secs_f64(),
            backward: middle.elapsed().as_secs_f64(),
        }
    }
}

fn lap(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The medians of `steps` runs of `measure`, after one untimed run.
fn replayed(steps: usize, measure: impl Fn() -> Lap) -> Lap {
    measure();
    let laps: Vec<Lap> = (0..steps.max(1)).map(|_| measure()).collect();
    Lap {
        forward: median(laps.iter().map(|l| l.forward).collect()),
        backward: median(laps.iter().map(|l| l.backward).collect()),
    }
}

/// `layer`'s convolution alone, forward and then backward: its weight's gradient and, where
/// `input_grad`, its input's.
fn convolution(layer: &ConvLayer, input_grad: bool, device: &Device) -> Lap {
    let input = Tensor::<4>::random(layer.input, Distribution::Normal(0.0, 1.0), device);
    let input = if input_grad {
        input.require_grad()
    } else {
        input
    };
    let weight =
        Tensor::<4>::random(layer.weight, Distribution::Normal(0.0, 0.1), device).require_grad();
    let padding = layer.weight[2] / 2;
    let options = ConvOptions::new([layer.stride; 2], [padding; 2], [1, 1], 1);
    let start = Instant::now();
    let output = conv2d(input, weight, None, options);
    let middle = Instant::now();
    drop(output.backward());
    Lap::between(start, middle)
}

/// A training-mode batch norm over `shape` alone, forward and then backward.
fn batch_norm(shape: [usize; 4], device: &Device) -> Lap {
    let norm = BatchNormConfig::new(shape[1]).init(device);
    let input = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device).require_grad();
    let start = Instant::now();
    let output = norm.forward(input);
    let middle = Instant::now();
    drop(output.backward());
    Lap::between(start, middle)
}

/// The row of one phase: its seconds per step and its share of the step's.
fn phase_row(
    device: &SelectedDevice,
    case: TrainingCase,
    name: &str,
    seconds: f64,
    step: f64,
) -> BenchRow {
    BenchRow {
        task: "phase".to_owned(),
        detail: format!(
            "ResNet-18 w{}, {} px, batch {}×2, {}: {name}, {:.1} % of the step",
            case.width,
            case.image_size,
            case.batch_size,
            case.precision,
            100.0 * seconds / step
        ),
        device: device.name.clone(),
        backend: device.backend.to_owned(),
        compiler: super::compiler_of(device),
        precision: case.precision.to_string(),
        width: Some(case.width),
        batch: case.batch_size,
        image_size: case.image_size,
        images_per_sec: (2 * case.batch_size) as f64 / seconds,
        seconds,
        data_wait_fraction: None,
        budget: None,
    }
}
