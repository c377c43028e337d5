//! Batch normalisation in training as two kernels: [`forward`] computes a channel's batch
//! statistics and normalises it in one launch, [`backward`] gives the input's, γ's and β's
//! gradients in one more. Burn's wgpu backend decomposes the same operation into layout copies,
//! reductions and element-wise products (about twelve launches a layer each way); a ResNet-18 has
//! twenty of them. The outputs keep the input's memory layout when it is dense (a convolution's
//! output is channels-last memory behind NCHW indices, and the next convolution then reads it
//! without a copy). The CPU path (burn-flex's batch norm) is the reference the engine's tests
//! compare these with (`tests/it/wgpu_batch_norm.rs`).

mod kernel;

use burn::tensor::{DType, Shape};
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::tensor::CubeTensor;
use burn_fusion::FusionTensor;
use cubecl::prelude::*;

use crate::burn_glue::fusion_tensors_from_kernel;

/// A float tensor of Burn's wgpu backend (fusion over CubeCL), as its autodiff records it.
pub type FusionFloat = FusionTensor<FusionCubeRuntime>;

/// Units per cube: the units of a cube share one channel's values.
const UNITS: u32 = 256;

/// The running statistics a training batch norm moves towards each batch's: `(1 − momentum) r +
/// momentum s` for the mean and the biased variance alike (as Burn's `BatchNorm` does).
#[derive(Debug, Clone)]
pub struct Running<T> {
    pub mean: T,
    pub variance: T,
    pub momentum: f64,
}

/// What follows the normalisation in the same kernel: a residual added (same shape as the
/// input), then a ReLU. A ResNet's batch norms are followed by nothing, by a ReLU, or by the
/// block's sum and its ReLU.
#[derive(Debug, Clone)]
pub struct Epilogue<T> {
    pub residual: Option<T>,
    pub relu: bool,
}

/// What [`forward`] returns: the output, the batch mean and biased variance per channel
/// (`[channels]` each), and the running statistics after this batch.
#[derive(Debug)]
pub struct Normalized {
    pub output: CubeTensor,
    pub mean: CubeTensor,
    pub variance: CubeTensor,
    pub running_mean: CubeTensor,
    pub running_variance: CubeTensor,
}

/// What [`backward`] returns: the gradients of the input, γ and β, and of the residual where the
/// forward added one (else a one-value placeholder the kernel was handed and left unwritten).
#[derive(Debug)]
pub struct Gradients {
    pub input: CubeTensor,
    pub gamma: CubeTensor,
    pub beta: CubeTensor,
    pub residual: CubeTensor,
}

/// Whether the kernels take `input`: f32, four dimensions (NCHW indices, any strides).
pub fn supports(input: &CubeTensor) -> bool {
    input.dtype == DType::F32 && input.meta.shape().num_dims() == 4
}

/// Batch norm of `input` (`[N, C, H, W]`, f32, see [`supports`]) with its batch statistics, scaled
/// by `gamma` and shifted by `beta` (`[C]`), then the `epilogue`; the `running` statistics updated.
pub fn forward(
    input: CubeTensor,
    gamma: CubeTensor,
    beta: CubeTensor,
    running: Running<CubeTensor>,
    epilogue: Epilogue<CubeTensor>,
    epsilon: f64,
) -> Normalized {
    let channels = input.meta.shape()[1];
    let output = empty_like(&input);
    let [mean, variance, running_mean, running_variance] =
        [(); 4].map(|()| empty_channels(&input, channels));
    let add_residual = epilogue.residual.is_some();
    // Without a residual the kernel's residual argument is bound to the input and never read.
    let residual = epilogue.residual.unwrap_or_else(|| input.clone());
    kernel::forward_kernel::launch(
        &input.client.clone(),
        CubeCount::Static(channels as u32, 1, 1),
        CubeDim::new_1d(UNITS),
        input.into_tensor_arg(),
        residual.into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        running.mean.into_tensor_arg(),
        running.variance.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        mean.clone().into_tensor_arg(),
        variance.clone().into_tensor_arg(),
        running_mean.clone().into_tensor_arg(),
        running_variance.clone().into_tensor_arg(),
        epsilon as f32,
        running.momentum as f32,
        add_residual,
        epilogue.relu,
    );
    Normalized {
        output,
        mean,
        variance,
        running_mean,
        running_variance,
    }
}

/// What [`backward`] needs of its forward: the input, γ, the batch statistics, and the output and
/// epilogue (the ReLU's mask is read from the output).
#[derive(Debug, Clone)]
pub struct Saved<T> {
    pub input: T,
    pub gamma: T,
    pub mean: T,
    pub variance: T,
    pub output: T,
    pub add_residual: bool,
    pub relu: bool,
    pub epsilon: f64,
}

/// The gradients of [`forward`] given the gradient of its output.
pub fn backward(saved: Saved<CubeTensor>, output_grad: CubeTensor) -> Gradients {
    let Saved {
        input,
        gamma,
        mean,
        variance,
        output,
        add_residual,
        relu,
        epsilon,
    } = saved;
    let channels = input.meta.shape()[1];
    let input_grad = empty_like(&input);
    let gamma_grad = empty_channels(&input, channels);
    let beta_grad = empty_channels(&input, channels);
    // Without a residual the kernel writes none; its argument is a buffer of one channel's size.
    let residual_grad = match add_residual {
        true => empty_like(&output_grad),
        false => empty_channels(&input, 1),
    };
    kernel::backward_kernel::launch(
        &input.client.clone(),
        CubeCount::Static(channels as u32, 1, 1),
        CubeDim::new_1d(UNITS),
        input.into_tensor_arg(),
        output.into_tensor_arg(),
        output_grad.into_tensor_arg(),
        gamma.into_tensor_arg(),
        mean.into_tensor_arg(),
        variance.into_tensor_arg(),
        input_grad.clone().into_tensor_arg(),
        gamma_grad.clone().into_tensor_arg(),
        beta_grad.clone().into_tensor_arg(),
        residual_grad.clone().into_tensor_arg(),
        epsilon as f32,
        add_residual,
        relu,
    );
    Gradients {
        input: input_grad,
        gamma: gamma_grad,
        beta: beta_grad,
        residual: residual_grad,
    }
}

/// [`forward`] as one operation of Burn's fusion stream, on the device of `input`: the output,
/// the batch mean and biased variance, and the running mean and variance.
pub fn record_forward(
    input: FusionFloat,
    gamma: FusionFloat,
    beta: FusionFloat,
    running: Running<FusionFloat>,
    epilogue: Epilogue<FusionFloat>,
    epsilon: f64,
) -> [FusionFloat; 5] {
    let channels = Shape::new([input.shape[1]]);
    let device = input.client.device().clone();
    let Running { momentum, .. } = running;
    let Epilogue { relu, .. } = epilogue;
    let mut inputs = vec![input.clone(), gamma, beta, running.mean, running.variance];
    inputs.extend(epilogue.residual);
    fusion_tensors_from_kernel(
        "batch_norm_forward",
        [
            input.shape.clone(),
            channels.clone(),
            channels.clone(),
            channels.clone(),
            channels,
        ],
        &device,
        inputs,
        move |inputs: &[CubeTensor], _: &[Shape; 5]| {
            let [input, gamma, beta, mean, variance] = [0, 1, 2, 3, 4].map(|k| inputs[k].clone());
            let running = Running {
                mean,
                variance,
                momentum,
            };
            let epilogue = Epilogue {
                residual: inputs.get(5).cloned(),
                relu,
            };
            let normalized = forward(input, gamma, beta, running, epilogue, epsilon);
            [
                normalized.output,
                normalized.mean,
                normalized.variance,
                normalized.running_mean,
                normalized.running_variance,
            ]
        },
    )
}

/// [`backward`] as one operation of Burn's fusion stream: the gradients of the input, γ and β,
/// and of the residual where the forward added one.
pub fn record_backward(
    saved: Saved<FusionFloat>,
    output_grad: FusionFloat,
) -> (FusionFloat, FusionFloat, FusionFloat, Option<FusionFloat>) {
    let shape = saved.input.shape.clone();
    let channels = Shape::new([shape[1]]);
    let device = saved.input.client.device().clone();
    let flags = (saved.add_residual, saved.relu, saved.epsilon);
    let inputs = vec![
        saved.input,
        saved.gamma,
        saved.mean,
        saved.variance,
        saved.output,
        output_grad,
    ];
    let launch = move |inputs: &[CubeTensor]| {
        let [input, gamma, mean, variance, output, output_grad] =
            [0, 1, 2, 3, 4, 5].map(|k| inputs[k].clone());
        let (add_residual, relu, epsilon) = flags;
        let saved = Saved {
            input,
            gamma,
            mean,
            variance,
            output,
            add_residual,
            relu,
            epsilon,
        };
        backward(saved, output_grad)
    };
    // Without a residual the fourth output is the kernel's one-channel placeholder, dropped here.
    let residual_shape = match flags.0 {
        true => shape.clone(),
        false => Shape::new([1]),
    };
    let [input, gamma, beta, residual] = fusion_tensors_from_kernel(
        "batch_norm_backward",
        [shape, channels.clone(), channels, residual_shape],
        &device,
        inputs,
        move |inputs: &[CubeTensor], _: &[Shape; 4]| {
            let gradients = launch(inputs);
            [
                gradients.input,
                gradients.gamma,
                gradients.beta,
                gradients.residual,
            ]
        },
    );
    (input, gamma, beta, flags.0.then_some(residual))
}

/// An f32 tensor of `like`'s shape on its device, in `like`'s memory layout when that is dense (a
/// permutation of a contiguous one, as a convolution's channels-last output is), otherwise
/// contiguous.
fn empty_like(like: &CubeTensor) -> CubeTensor {
    let bytes = like.meta.shape().num_elements() * size_of::<f32>();
    let handle = like.client.empty(bytes);
    if like.is_nonoverlapping() && like.is_contiguous_buffer() {
        CubeTensor::new(
            like.client.clone(),
            handle,
            (*like.meta).clone(),
            like.device.clone(),
            DType::F32,
        )
    } else {
        CubeTensor::new_contiguous(
            like.client.clone(),
            like.device.clone(),
            like.meta.shape().clone(),
            handle,
            DType::F32,
        )
    }
}

/// A contiguous f32 vector of `channels` values on `like`'s device.
fn empty_channels(like: &CubeTensor, channels: usize) -> CubeTensor {
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        Shape::new([channels]),
        like.client.empty(channels * size_of::<f32>()),
        DType::F32,
    )
}
