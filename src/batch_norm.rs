//! Batch normalisation as the network trains it, with what follows it in a ResNet (nothing, a
//! ReLU, or the block's residual sum and its ReLU). On Burn's wgpu backend a training batch norm
//! and its epilogue are one autodiff operation over the fused kernels of
//! `spreadout_shaders::batch_norm`: one launch forward (the running statistics updated in it, as
//! Burn's `BatchNorm` updates them) and one backward, where Burn's decomposition issues about a
//! dozen each way, and the output keeps the convolution's channels-last memory so the next
//! convolution reads it without a copy. Every other case (the CPU, a served device, evaluation, a
//! half-precision input) is Burn's `BatchNorm` and tensor operations, which stay the reference
//! the fused path is tested against (`tests/it/wgpu_batch_norm.rs`).

use burn::module::RunningState;
use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::BackendTypes;
use burn_cubecl::Cube;
use spreadout_shaders::batch_norm::{
    Epilogue, FusionFloat, Running, Saved, record_backward, record_forward,
};

/// Burn's wgpu backend under autodiff, as a training device's tensors hold it.
type Trained = Autodiff<Cube, NoCheckpointing>;

/// A float tensor of [`Trained`]: a fusion tensor and its autodiff node.
type AutodiffTensor = <Trained as BackendTypes>::FloatTensorPrimitive;

/// `bn` applied to `input`, then `residual` added where given, then a ReLU where `relu`: the
/// fused kernels where [`fused_train`] takes it, Burn's operations otherwise.
pub fn forward(
    bn: &BatchNorm,
    input: Tensor<4>,
    residual: Option<Tensor<4>>,
    relu_after: bool,
) -> Tensor<4> {
    if let Some(output) = fused_train(bn, input.clone(), residual.clone(), relu_after) {
        return output;
    }
    let mut output = bn.forward(input);
    if let Some(residual) = residual {
        output = output + residual;
    }
    match relu_after {
        true => relu(output),
        false => output,
    }
}

/// [`forward`] in training through the fused kernels, with `bn`'s running statistics updated;
/// `None` where they do not apply (not training, not on Burn's wgpu backend, or not f32).
pub fn fused_train(
    bn: &BatchNorm,
    input: Tensor<4>,
    residual: Option<Tensor<4>>,
    relu_after: bool,
) -> Option<Tensor<4>> {
    let device = input.device();
    let f32s =
        input.dtype() == DType::F32 && residual.as_ref().is_none_or(|r| r.dtype() == DType::F32);
    if !(device.is_autodiff() && bn.training.is_enabled() && f32s) {
        return None;
    }
    let float = |tensor: Tensor<4>| tensor.try_into_primitive::<Trained>().ok();
    let vector = |tensor: Tensor<1>| {
        tensor
            .try_into_primitive::<Trained>()
            .ok()
            .filter(|t| t.primitive().dtype == DType::F32)
    };
    let x = float(input)?;
    let residual = match residual {
        Some(residual) => Some(float(residual)?),
        None => None,
    };
    let gamma = vector(bn.gamma.val())?;
    let beta = vector(bn.beta.val())?;
    let running = |state: &RunningState<Tensor<1>>| {
        vector(state.value_sync().to_device(&device)).map(AutodiffTensor::into_primitive)
    };
    let running = Running {
        mean: running(&bn.running_mean)?,
        variance: running(&bn.running_var)?,
        momentum: bn.momentum,
    };
    let [output, running_mean, running_variance] =
        train(x, gamma, beta, residual, running, relu_after, bn.epsilon);
    let detached = |value| Tensor::<1>::from_primitive::<Trained>(value).detach();
    bn.running_mean.update(detached(running_mean));
    bn.running_var.update(detached(running_variance));
    Some(Tensor::from_primitive::<Trained>(output))
}

/// The autodiff operation: the forward kernel now, the backward kernel when gradients flow back.
/// Returns the output and the updated running mean and variance.
fn train(
    x: AutodiffTensor,
    gamma: AutodiffTensor,
    beta: AutodiffTensor,
    residual: Option<AutodiffTensor>,
    running: Running<FusionFloat>,
    relu_after: bool,
    epsilon: f64,
) -> [AutodiffTensor; 3] {
    let (x_value, gamma_value) = (x.primitive().clone(), gamma.primitive().clone());
    let nodes = [x.node(), gamma.node(), beta.node()];
    let residual_node = residual.as_ref().map(AutodiffTensor::node);
    let epilogue = Epilogue {
        residual: residual.map(AutodiffTensor::into_primitive),
        relu: relu_after,
    };
    let add_residual = epilogue.residual.is_some();
    let [output, mean, variance, running_mean, running_variance] = record_forward(
        x.into_primitive(),
        gamma.into_primitive(),
        beta.into_primitive(),
        running,
        epilogue,
        epsilon,
    );
    let saved = Saved {
        input: x_value,
        gamma: gamma_value,
        mean,
        variance,
        output: output.clone(),
        add_residual,
        relu: relu_after,
        epsilon,
    };
    let output = match residual_node {
        None => match FusedBatchNorm
            .prepare::<NoCheckpointing>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        },
        Some(residual) => {
            let [x, gamma, beta] = nodes;
            match FusedBatchNormResidual
                .prepare::<NoCheckpointing>([x, gamma, beta, residual])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(saved, output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    };
    [
        output,
        AutodiffTensor::new(running_mean),
        AutodiffTensor::new(running_variance),
    ]
}

/// The backward of a batch norm without a residual: parents input, γ, β.
#[derive(Debug)]
struct FusedBatchNorm;

/// The backward of a batch norm with a residual: parents input, γ, β, residual.
#[derive(Debug)]
struct FusedBatchNormResidual;

/// Runs the backward kernel on the gradient of `node` and registers each parent's gradient.
fn register_gradients<const N: usize>(ops: Ops<Saved<FusionFloat>, N>, grads: &mut Gradients) {
    let output_grad = grads.consume::<Cube>(&ops.node);
    let (x, gamma, beta, residual) = record_backward(ops.state, output_grad);
    let gradients = [Some(x), Some(gamma), Some(beta), residual];
    for (parent, grad) in ops.parents.into_iter().zip(gradients) {
        if let (Some(node), Some(grad)) = (parent, grad) {
            grads.register::<Cube>(node.id, grad);
        }
    }
}

impl Backward<Cube, 3> for FusedBatchNorm {
    type State = Saved<FusionFloat>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        register_gradients(ops, grads);
    }
}

impl Backward<Cube, 4> for FusedBatchNormResidual {
    type State = Saved<FusionFloat>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        register_gradients(ops, grads);
    }
}
