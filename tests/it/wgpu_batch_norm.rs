//! The fused batch-norm kernels (`spreadout_shaders::batch_norm`, through
//! `spreadout::batch_norm`) on the first wgpu adapter (lavapipe here and in CI) against the CPU
//! path that stays their reference (Burn's `BatchNorm` on flex, with the residual sum and ReLU as
//! tensor operations): the output, the gradients of the input, γ, β and the residual through
//! Burn's autodiff, and the running statistics after two batches, for each epilogue a ResNet
//! uses and for an input in channels-last memory (as a convolution hands it over). Tiny shapes:
//! lavapipe compiles each kernel variant once per process.

use crate::compare::{relative_error, values};
use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spreadout::batch_norm;
use spreadout::device::{self, DeviceChoice};

/// Shape of the test batch: odd sizes, more values per channel than a cube has units.
const SHAPE: [usize; 4] = [3, 5, 9, 11];

fn random(rng: &mut ChaCha8Rng, count: usize, low: f32, high: f32) -> Vec<f32> {
    (0..count).map(|_| rng.random_range(low..high)).collect()
}

/// What one case computes on a device, as host vectors.
#[derive(Debug)]
struct Outcome {
    output: Vec<f32>,
    x_grad: Vec<f32>,
    gamma_grad: Vec<f32>,
    beta_grad: Vec<f32>,
    residual_grad: Option<Vec<f32>>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
}

struct Case {
    x: Vec<f32>,
    residual: Option<Vec<f32>>,
    relu: bool,
    channels_last: bool,
    output_weights: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// Two training batches through `bn` on `device` (an autodiff device): the second's output and
/// gradients (of `Σ output ⊙ weights`), and the running statistics after both. `fused` says
/// whether the batch norm must take the fused path (the test fails if it does not).
fn run(case: &Case, device: &Device, fused: bool) -> Outcome {
    let channels = SHAPE[1];
    let mut bn: BatchNorm = BatchNormConfig::new(channels).init(device);
    let vector = |values: &[f32]| {
        Param::from_tensor(Tensor::from_data(
            TensorData::new(values.to_vec(), [channels]),
            device,
        ))
    };
    bn.gamma = vector(&case.gamma);
    bn.beta = vector(&case.beta);
    let tensor = |values: &[f32]| {
        let [n, c, h, w] = SHAPE;
        match case.channels_last {
            // NHWC memory behind NCHW indices, as a convolution's output is.
            true => {
                let mut nhwc = vec![0.0f32; values.len()];
                for (i, value) in values.iter().enumerate() {
                    let (sample, rest) = (i / (c * h * w), i % (c * h * w));
                    let (channel, pixel) = (rest / (h * w), rest % (h * w));
                    nhwc[(sample * h * w + pixel) * c + channel] = *value;
                }
                Tensor::<4>::from_data(TensorData::new(nhwc, [n, h, w, c]), device)
                    .permute([0, 3, 1, 2])
            }
            false => Tensor::<4>::from_data(TensorData::new(values.to_vec(), SHAPE), device),
        }
    };
    let mut last = None;
    for batch in 0..2 {
        let shifted: Vec<f32> = case.x.iter().map(|v| v + batch as f32 * 0.25).collect();
        let x = tensor(&shifted).require_grad();
        let residual = case.residual.as_ref().map(|r| tensor(r).require_grad());
        let output = match fused {
            true => batch_norm::fused_train(&bn, x.clone(), residual.clone(), case.relu)
                .expect("the fused path takes an f32 training batch norm on wgpu"),
            false => batch_norm::forward(&bn, x.clone(), residual.clone(), case.relu),
        };
        let weights =
            Tensor::<4>::from_data(TensorData::new(case.output_weights.clone(), SHAPE), device);
        let grads = (output.clone() * weights).sum().backward();
        let grad = |tensor: &Tensor<4>| values(tensor.grad(&grads).expect("a gradient"));
        last = Some(Outcome {
            output: values(output),
            x_grad: grad(&x),
            gamma_grad: values(bn.gamma.grad(&grads).expect("γ's gradient")),
            beta_grad: values(bn.beta.grad(&grads).expect("β's gradient")),
            residual_grad: residual.as_ref().map(grad),
            running_mean: Vec::new(),
            running_var: Vec::new(),
        });
    }
    let mut last = last.unwrap();
    last.running_mean = values(bn.running_mean.value());
    last.running_var = values(bn.running_var.value());
    last
}

#[test]
fn fused_batch_norm_on_wgpu_matches_the_cpu_path() {
    let adapter = device::list_adapters()
        .first()
        .expect("a wgpu adapter (lavapipe on machines without a GPU)")
        .index;
    let gpu = device::select(DeviceChoice::Adapter(adapter)).expect("adapter selectable");
    let gpu = gpu.device.autodiff();
    let cpu = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let count = SHAPE.iter().product();
    let mut failures = Vec::new();
    for (name, with_residual, relu, channels_last) in [
        ("plain", false, false, false),
        ("relu", false, true, false),
        ("residual+relu", true, true, false),
        ("plain, channels-last", false, false, true),
        ("residual+relu, channels-last", true, true, true),
    ] {
        let case = Case {
            // An offset and a spread per run, so the statistics are not the initial ones.
            x: random(&mut rng, count, -1.0, 3.0),
            residual: with_residual.then(|| random(&mut rng, count, -2.0, 2.0)),
            relu,
            channels_last,
            output_weights: random(&mut rng, count, -1.0, 1.0),
            gamma: random(&mut rng, SHAPE[1], 0.5, 1.5),
            beta: random(&mut rng, SHAPE[1], -0.5, 0.5),
        };
        let want = run(&case, &cpu, false);
        let got = run(&case, &gpu, true);
        let mut compare = |what: &str, got: &[f32], want: &[f32]| {
            let error = relative_error(got, want);
            eprintln!("{name}: {what} within {error:e}");
            if error > 1e-4 {
                failures.push(format!("{name}: {what} differs by {error:e} (relative)"));
            }
        };
        compare("output", &got.output, &want.output);
        compare("x gradient", &got.x_grad, &want.x_grad);
        compare("γ gradient", &got.gamma_grad, &want.gamma_grad);
        compare("β gradient", &got.beta_grad, &want.beta_grad);
        compare("running mean", &got.running_mean, &want.running_mean);
        compare("running variance", &got.running_var, &want.running_var);
        match (&got.residual_grad, &want.residual_grad) {
            (Some(got), Some(want)) => compare("residual gradient", got, want),
            (None, None) => {}
            _ => failures.push(format!("{name}: a residual gradient on one side only")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
