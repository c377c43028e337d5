//! The batch-norm kernels: one cube per channel, which reads its channel's values in passes (the
//! statistics, then the values written), so a training step's batch norm is one launch forward
//! and one backward. The input may have any strides (a convolution's output is channels-last
//! memory behind NCHW indices); outputs are written through their own strides. The Rust wrapper
//! is the parent module.

use cubecl::prelude::*;

use super::UNITS;

/// Where value `i` of `channel` lives (`i` counts the channel's `N × H × W` values in NCHW
/// order) in a tensor of `width` columns and `plane` values a sample, with these strides.
#[cube]
#[allow(clippy::too_many_arguments)]
fn nchw_offset(
    channel: usize,
    i: usize,
    width: usize,
    plane: usize,
    sample_stride: usize,
    channel_stride: usize,
    row_stride: usize,
    column_stride: usize,
) -> usize {
    let within = i % plane;
    (i / plane) * sample_stride
        + channel * channel_stride
        + (within / width) * row_stride
        + (within % width) * column_stride
}

/// [`nchw_offset`] in a tensor the kernel reads (NCHW indices, any strides).
#[cube]
fn offset(tensor: &Tensor<f32>, channel: usize, i: usize) -> usize {
    let width = tensor.shape(3);
    nchw_offset(
        channel,
        i,
        width,
        tensor.shape(2) * width,
        tensor.stride(0),
        tensor.stride(1),
        tensor.stride(2),
        tensor.stride(3),
    )
}

/// [`nchw_offset`] in a tensor the kernel writes (CubeCL passes those as `&mut`).
#[cube]
fn offset_mut(tensor: &mut Tensor<f32>, channel: usize, i: usize) -> usize {
    let width = tensor.shape(3);
    nchw_offset(
        channel,
        i,
        width,
        tensor.shape(2) * width,
        tensor.stride(0),
        tensor.stride(1),
        tensor.stride(2),
        tensor.stride(3),
    )
}

/// The cube's total of `partial` (one per unit), the same in every unit: each adds the partial
/// sums in the same order (a tree of in-place additions would be shorter, but CubeCL 0.11's IR
/// verifier rejects a read-modify-write of shared memory in a loop). The second barrier keeps a
/// unit's next write from landing before every unit has read.
#[cube]
fn cube_total(sums: &mut Shared<[f32]>, partial: f32) -> f32 {
    sums[UNIT_POS as usize] = partial;
    sync_cube();
    let mut total = 0.0f32;
    for k in 0..UNITS {
        total += sums[k as usize];
    }
    sync_cube();
    total
}

/// Batch norm of one channel (`CUBE_POS`) with its batch statistics: the mean, then the biased
/// variance of the centred values (two passes, as the CPU reference does, rather than a sum of
/// squares that cancels), then `output = γ (x − μ) / √(σ² + ε) + β`; `mean` and `variance`
/// receive the statistics, and `running_mean_out` and `running_variance_out` the running ones
/// moved towards them by `momentum` (`(1 − m) r + m s`, as Burn's `BatchNorm` does). With
/// `add_residual` the output is `residual` plus the normalised value, with `relu` it is clamped at
/// zero (the residual block's epilogue, which would otherwise be launches of its own and write a
/// contiguous copy the next convolution reorders again).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_kernel(
    input: &Tensor<f32>,
    residual: &Tensor<f32>,
    gamma: &Tensor<f32>,
    beta: &Tensor<f32>,
    running_mean: &Tensor<f32>,
    running_variance: &Tensor<f32>,
    output: &mut Tensor<f32>,
    mean: &mut Tensor<f32>,
    variance: &mut Tensor<f32>,
    running_mean_out: &mut Tensor<f32>,
    running_variance_out: &mut Tensor<f32>,
    epsilon: f32,
    momentum: f32,
    #[comptime] add_residual: bool,
    #[comptime] relu: bool,
) {
    let channel = CUBE_POS;
    let unit = UNIT_POS as usize;
    let count = input.shape(0) * input.shape(2) * input.shape(3);
    let mut sums = Shared::<[f32]>::new_slice(UNITS as usize);

    let mut partial = 0.0f32;
    for i in range_stepped(unit, count, UNITS as usize) {
        partial += input[offset(input, channel, i)];
    }
    let mu = cube_total(&mut sums, partial) / f32::cast_from(count);

    partial = 0.0f32;
    for i in range_stepped(unit, count, UNITS as usize) {
        let centred = input[offset(input, channel, i)] - mu;
        partial += centred * centred;
    }
    let sigma2 = cube_total(&mut sums, partial) / f32::cast_from(count);

    let inv_std = 1.0f32 / f32::sqrt(sigma2 + epsilon);
    let scale = gamma[channel * gamma.stride(0)] * inv_std;
    let shift = beta[channel * beta.stride(0)];
    for i in range_stepped(unit, count, UNITS as usize) {
        let mut value = (input[offset(input, channel, i)] - mu) * scale + shift;
        if add_residual {
            value += residual[offset(residual, channel, i)];
        }
        if relu {
            value = f32::max(value, 0.0f32);
        }
        let at = offset_mut(output, channel, i);
        output[at] = value;
    }
    if unit == 0 {
        mean[channel] = mu;
        variance[channel] = sigma2;
        running_mean_out[channel] =
            running_mean[channel * running_mean.stride(0)] * (1.0f32 - momentum) + mu * momentum;
        running_variance_out[channel] = running_variance[channel * running_variance.stride(0)]
            * (1.0f32 - momentum)
            + sigma2 * momentum;
    }
}

/// The output's gradient as it reaches the normalised value: zero where the ReLU clamped the
/// forward's `output`.
#[cube]
fn reaching(
    output_grad: &Tensor<f32>,
    output: &Tensor<f32>,
    channel: usize,
    i: usize,
    #[comptime] relu: bool,
) -> f32 {
    let mut g = output_grad[offset(output_grad, channel, i)];
    if relu {
        g = select(output[offset(output, channel, i)] > 0.0f32, g, 0.0f32);
    }
    g
}

/// The gradients of [`forward_kernel`] for one channel, from its input, statistics, output and
/// the output's gradient, `g` where it reaches the normalised value: `∂β = Σ g`, `∂γ = Σ g x̂`
/// (one pass, both sums), then `∂x = γ / √(σ² + ε) · (g − ∂β / M − x̂ ∂γ / M)` over the channel's
/// `M` values, and `g` itself for the residual when the forward added one.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_kernel(
    input: &Tensor<f32>,
    output: &Tensor<f32>,
    output_grad: &Tensor<f32>,
    gamma: &Tensor<f32>,
    mean: &Tensor<f32>,
    variance: &Tensor<f32>,
    input_grad: &mut Tensor<f32>,
    gamma_grad: &mut Tensor<f32>,
    beta_grad: &mut Tensor<f32>,
    residual_grad: &mut Tensor<f32>,
    epsilon: f32,
    #[comptime] add_residual: bool,
    #[comptime] relu: bool,
) {
    let channel = CUBE_POS;
    let unit = UNIT_POS as usize;
    let count = input.shape(0) * input.shape(2) * input.shape(3);
    let mut sums = Shared::<[f32]>::new_slice(UNITS as usize);
    let mu = mean[channel * mean.stride(0)];
    let inv_std = 1.0f32 / f32::sqrt(variance[channel * variance.stride(0)] + epsilon);

    let mut grad_sum = 0.0f32;
    let mut projected_sum = 0.0f32;
    for i in range_stepped(unit, count, UNITS as usize) {
        let g = reaching(output_grad, output, channel, i, relu);
        grad_sum += g;
        projected_sum += g * (input[offset(input, channel, i)] - mu);
    }
    let beta_total = cube_total(&mut sums, grad_sum);
    let gamma_total = cube_total(&mut sums, projected_sum) * inv_std;

    let per_value = 1.0f32 / f32::cast_from(count);
    let scale = gamma[channel * gamma.stride(0)] * inv_std;
    for i in range_stepped(unit, count, UNITS as usize) {
        let normalized = (input[offset(input, channel, i)] - mu) * inv_std;
        let g = reaching(output_grad, output, channel, i, relu);
        let at = offset_mut(input_grad, channel, i);
        input_grad[at] =
            scale * (g - beta_total * per_value - normalized * gamma_total * per_value);
        if add_residual {
            let at = offset_mut(residual_grad, channel, i);
            residual_grad[at] = g;
        }
    }
    if unit == 0 {
        gamma_grad[channel] = gamma_total;
        beta_grad[channel] = beta_total;
    }
}
