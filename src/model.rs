//! The embedding network: ResNet-18 with a linear head to `dim` and L2 normalisation.
//!
//! This module owns the architecture and nothing else. Inputs up to [`CIFAR_STEM_MAX_SIZE`]
//! pixels use the CIFAR stem of the paper's released code (one 3×3 convolution, no max-pool);
//! larger inputs use the ImageNet stem (7×7 stride-2 convolution and a 3×3 stride-2 max-pool).
//! Field names follow the PyTorch reference module `docs/pytorch.md` prints, so that
//! [`crate::model_files`] can write PyTorch key names by walking the module tree.

use burn::module::{Module, ModuleMapper, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch_norm;

/// Largest input side that still uses the CIFAR (3×3, no max-pool) stem.
pub const CIFAR_STEM_MAX_SIZE: u32 = 64;

/// Which first layers the network has; chosen from the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// 3×3 stride-1 convolution, no max-pool (paper §4.1, 32×32 CIFAR images).
    Cifar,
    /// 7×7 stride-2 convolution followed by a 3×3 stride-2 max-pool.
    Imagenet,
}

impl Stem {
    /// The stem the paper's setup implies for square inputs of `image_size` pixels.
    pub fn for_image_size(image_size: u32) -> Self {
        if image_size <= CIFAR_STEM_MAX_SIZE {
            Stem::Cifar
        } else {
            Stem::Imagenet
        }
    }
}

/// The number format the convolutions compute in. Weights, batch norm, the head, the
/// normalisation and the loss always stay `f32`: `f16` is mixed precision made by hand (Burn
/// has no autocast), casting each convolution's input and weight to `f16` and its output back,
/// which is where a GPU's matrix units (NVIDIA's Vulkan cooperative matrices take `f16`) pay off.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in 32-bit floats.
    #[default]
    F32,
    /// Convolutions in 16-bit floats, everything else in 32-bit.
    F16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

/// Everything needed to rebuild the network; stored in `config.json` next to the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Always `"resnet18"`: recorded so a reader of `config.json` needs no other source.
    pub architecture: String,
    /// Channels of the first stage; later stages have 2×, 4× and 8× this (64 in the paper).
    pub width: usize,
    /// Embedding dimension (128 in the paper).
    pub dim: usize,
    /// Square input side in pixels.
    pub image_size: u32,
    /// The stem, derived from `image_size` when the config is created.
    pub stem: Stem,
}

impl ModelConfig {
    /// A ResNet-18 of the given width and embedding size for `image_size`-pixel inputs.
    pub fn resnet18(width: usize, dim: usize, image_size: u32) -> Self {
        Self {
            architecture: "resnet18".to_owned(),
            width,
            dim,
            image_size,
            stem: Stem::for_image_size(image_size),
        }
    }

    /// Builds a network on `device` initialised from `seed` alone, identically on every backend
    /// and independent of any global generator: weights are drawn as PyTorch's defaults
    /// (uniform ±1/√fan_in for convolutions and the linear layer, batch norm γ=1, β=0).
    pub fn init_seeded(&self, device: &Device, seed: u64) -> EmbeddingNet {
        let mut init = SeededInit {
            rng: ChaCha8Rng::seed_from_u64(seed),
            path: Vec::new(),
            linear_fan_in: 0,
        };
        self.init(device).map(&mut init)
    }

    /// Builds a network on `device` with Burn's own initialisation (to be overwritten by a load).
    pub fn init(&self, device: &Device) -> EmbeddingNet {
        let stem_conv = match self.stem {
            Stem::Cifar => conv(3, self.width, 3, 1, 1, device),
            Stem::Imagenet => conv(3, self.width, 7, 2, 3, device),
        };
        let stage = |input: usize, output: usize, stride: usize| {
            vec![
                BasicBlock::new(input, output, stride, device),
                BasicBlock::new(output, output, 1, device),
            ]
        };
        let w = self.width;
        EmbeddingNet {
            conv1: stem_conv,
            bn1: BatchNormConfig::new(w).init(device),
            max_pool: (self.stem == Stem::Imagenet).then(|| {
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init()
            }),
            layer1: stage(w, w, 1),
            layer2: stage(w, 2 * w, 2),
            layer3: stage(2 * w, 4 * w, 2),
            layer4: stage(4 * w, 8 * w, 2),
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            linear: LinearConfig::new(8 * w, self.dim).init(device),
        }
    }
}

/// One convolution of the network as a batch meets it: what a profile replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayer {
    /// `[batch, channels, height, width]` of its input.
    pub input: [usize; 4],
    /// `[out, in, kernel, kernel]` of its weight; it pads by half the kernel.
    pub weight: [usize; 4],
    /// Its stride (both directions).
    pub stride: usize,
}

impl ConvLayer {
    fn new(input: [usize; 4], output: usize, kernel: usize, stride: usize) -> Self {
        Self {
            input,
            weight: [output, input[1], kernel, kernel],
            stride,
        }
    }

    /// The shape of its output, which the batch norm after it sees.
    pub fn output(&self) -> [usize; 4] {
        let [batch, _, height, width] = self.input;
        let [out, _, kernel, _] = self.weight;
        let side = |size: usize| (size + 2 * (kernel / 2) - kernel) / self.stride + 1;
        [batch, out, side(height), side(width)]
    }
}

impl ModelConfig {
    /// Every convolution of [`Self::init`]'s network in forward order, for a batch of `batch`
    /// images: the stem, then per block its two 3×3 convolutions and its shortcut, if any.
    /// Each is followed by a batch norm over its output.
    pub fn convolutions(&self, batch: usize) -> Vec<ConvLayer> {
        let side = self.image_size as usize;
        let stem = match self.stem {
            Stem::Cifar => ConvLayer::new([batch, 3, side, side], self.width, 3, 1),
            Stem::Imagenet => ConvLayer::new([batch, 3, side, side], self.width, 7, 2),
        };
        let [_, _, mut side, _] = stem.output();
        if self.stem == Stem::Imagenet {
            // The 3×3 stride-2 max-pool, padded by one.
            side = (side - 1) / 2 + 1;
        }
        let mut layers = vec![stem];
        let mut channels = self.width;
        for (output, stride) in [
            (self.width, 1),
            (2 * self.width, 2),
            (4 * self.width, 2),
            (8 * self.width, 2),
        ] {
            for block_stride in [stride, 1] {
                let input = [batch, channels, side, side];
                let first = ConvLayer::new(input, output, 3, block_stride);
                let [_, _, out_side, _] = first.output();
                layers.push(first);
                layers.push(ConvLayer::new(
                    [batch, output, out_side, out_side],
                    output,
                    3,
                    1,
                ));
                if block_stride != 1 || channels != output {
                    layers.push(ConvLayer::new(input, output, 1, block_stride));
                }
                (channels, side) = (output, out_side);
            }
        }
        layers
    }
}

fn conv(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    device: &Device,
) -> Conv2d {
    // Bias-free like torchvision's ResNet: every convolution is followed by batch norm.
    Conv2dConfig::new([input, output], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .init(device)
}

/// The projection shortcut of a block that changes resolution or width (`shortcut.0`/`.1` in PyTorch).
#[derive(Module, Debug)]
pub struct Shortcut {
    /// 1×1 strided convolution.
    pub conv: Conv2d,
    /// Batch norm after it.
    pub bn: BatchNorm,
}

/// Two 3×3 convolutions with a residual connection.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<Shortcut>,
}

impl BasicBlock {
    fn new(input: usize, output: usize, stride: usize, device: &Device) -> Self {
        let shortcut = (stride != 1 || input != output).then(|| Shortcut {
            conv: conv(input, output, 1, stride, 0, device),
            bn: BatchNormConfig::new(output).init(device),
        });
        Self {
            conv1: conv(input, output, 3, stride, 1, device),
            bn1: BatchNormConfig::new(output).init(device),
            conv2: conv(output, output, 3, 1, 1, device),
            bn2: BatchNormConfig::new(output).init(device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<4>, precision: Precision) -> Tensor<4> {
        let conv1 = convolve(&self.conv1, x.clone(), precision);
        let out = batch_norm::forward(&self.bn1, conv1, None, true);
        let identity = match &self.shortcut {
            Some(shortcut) => {
                let projected = convolve(&shortcut.conv, x, precision);
                batch_norm::forward(&shortcut.bn, projected, None, false)
            }
            None => x,
        };
        let conv2 = convolve(&self.conv2, out, precision);
        batch_norm::forward(&self.bn2, conv2, Some(identity), true)
    }
}

/// ResNet-18 backbone, linear head and L2 normalisation: images in, unit vectors out.
#[derive(Module, Debug)]
pub struct EmbeddingNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    max_pool: Option<MaxPool2d>,
    layer1: Vec<BasicBlock>,
    layer2: Vec<BasicBlock>,
    layer3: Vec<BasicBlock>,
    layer4: Vec<BasicBlock>,
    pool: AdaptiveAvgPool2d,
    linear: Linear,
}

impl EmbeddingNet {
    /// `[batch, 3, size, size]` normalised images → `[batch, dim]` L2-normalised embeddings.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_at(images, Precision::F32)
    }

    /// [`Self::forward`] with the convolutions computed at `precision`; the output is `f32`.
    pub fn forward_at(&self, images: Tensor<4>, precision: Precision) -> Tensor<2> {
        let stem = convolve(&self.conv1, images, precision);
        let mut x = batch_norm::forward(&self.bn1, stem, None, true);
        if let Some(pool) = &self.max_pool {
            x = pool.forward(x);
        }
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x, precision);
        }
        let [batch, channels, _, _] = x.dims();
        let features = self.pool.forward(x).reshape([batch, channels]);
        l2_normalize(self.linear.forward(features))
    }
}

/// One bias-free convolution of this network at `precision`. In `f16` the input and the weight
/// are cast (differentiably, so the `f32` weight receives the gradient) and the output is cast
/// back for batch norm.
fn convolve(conv: &Conv2d, x: Tensor<4>, precision: Precision) -> Tensor<4> {
    match precision {
        Precision::F32 => conv.forward(x),
        Precision::F16 => {
            // Every convolution here pads by half its (odd) kernel, as `conv` builds them.
            let padding = [conv.kernel_size[0] / 2, conv.kernel_size[1] / 2];
            let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
            half_convolution(x, conv.weight.val(), options)
        }
    }
}

/// A convolution computed in `f16` between `f32` tensors: the casts are differentiable.
fn half_convolution(x: Tensor<4>, weight: Tensor<4>, options: ConvOptions<2>) -> Tensor<4> {
    conv2d(
        x.cast(FloatDType::F16),
        weight.cast(FloatDType::F16),
        None,
        options,
    )
    .cast(FloatDType::F32)
}

/// The largest relative error that f16 training may show in [`half_precision_gradient_error`].
pub const HALF_GRADIENT_TOLERANCE: f32 = 0.01;

/// How far the weight gradient of an f16 convolution on `device` (one offering f16) is from the
/// same gradient at f32: the largest difference over the largest value. A weight gradient sums a
/// product per pixel of the batch (4 096 here, hundreds of thousands at a real batch): summed in
/// f32, as cuDNN and PyTorch do, it is off by about the inputs' own rounding (0.05 %); summed in
/// f16, whose 11 bits stop resolving a small product once the sum is large, it is off by tens of
/// percent, and training follows a different path (lavapipe's kernels do this: two steps ended
/// 0.32 away from f32's weights). Positive inputs, as after a ReLU, make the sums grow as they do
/// in the network.
pub fn half_precision_gradient_error(device: &Device) -> f32 {
    let device = device.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut positive = |shape: [usize; 4]| {
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        Tensor::<4>::from_data(TensorData::new(values, shape), &device)
    };
    let (x, weight, upstream) = (
        positive([16, 2, 16, 16]),
        positive([2, 2, 3, 3]),
        positive([16, 2, 16, 16]),
    );
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let gradient = |half: bool| -> Vec<f32> {
        let weight = weight.clone().require_grad();
        let y = if half {
            half_convolution(x.clone(), weight.clone(), options.clone())
        } else {
            conv2d(x.clone(), weight.clone(), None, options.clone())
        };
        let gradients = (y * upstream.clone()).sum().backward();
        weight
            .grad(&gradients)
            .expect("the weight takes part")
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("a float tensor")
    };
    let (full, half) = (gradient(false), gradient(true));
    let largest = full.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let apart = full
        .iter()
        .zip(&half)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    apart / largest.max(f32::MIN_POSITIVE)
}

/// Redraws convolution and linear parameters from a seeded generator.
struct SeededInit {
    rng: ChaCha8Rng,
    path: Vec<String>,
    /// Inputs of the linear layer, seen at its weight and reused for its bias.
    linear_fan_in: usize,
}

impl ModuleMapper for SeededInit {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dims = param.val().dims();
        let in_linear = self.path.first().is_some_and(|p| p == "linear");
        let fan_in = match (D, in_linear) {
            // Convolution [out, in, kh, kw].
            (4, _) => dims[1] * dims[2] * dims[3],
            // Burn stores the linear weight as [in, out]; the bias (visited after it) shares its
            // bound, as in PyTorch.
            (2, true) => {
                self.linear_fan_in = dims[0];
                dims[0]
            }
            (1, true) => self.linear_fan_in,
            // Batch-norm parameters and statistics keep their defaults.
            _ => return param,
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let count = dims.iter().product::<usize>();
        let values: Vec<f32> = (0..count)
            .map(|_| self.rng.random_range(-bound..bound))
            .collect();
        param.map(|current| {
            let fresh = Tensor::from_data(TensorData::new(values, dims), &current.device());
            if current.is_require_grad() {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

/// Rows scaled to unit length; the epsilon keeps an all-zero row finite (as F.normalize does).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Training normalises with the batch's own statistics (the spread of the 2m rows matters,
    /// so the same image comes out differently beside other images); evaluation with the running
    /// statistics (an image's embedding does not depend on its batch), which training updates.
    #[test]
    fn batch_norm_uses_batch_statistics_in_training_and_running_ones_in_evaluation() {
        let device = Device::flex().autodiff();
        let net = ModelConfig::resnet18(2, 4, 8).init_seeded(&device, 1);
        let image = Tensor::<4>::random([1, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let company =
            |seed: f64| Tensor::<4>::random([3, 3, 8, 8], Distribution::Normal(seed, 2.0), &device);
        let first_row = |net: &EmbeddingNet, others: Tensor<4>| -> Vec<f32> {
            net.forward(Tensor::cat(vec![image.clone(), others], 0))
                .slice([0..1, 0..4])
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .unwrap()
        };
        let differ = |a: &[f32], b: &[f32]| a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-4);
        let before = net.valid();
        let evaluated = |net: &EmbeddingNet| {
            let inner = image.clone().inner();
            let rows = |others: Tensor<4>| -> Vec<f32> {
                net.forward(Tensor::cat(vec![inner.clone(), others.inner()], 0))
                    .slice([0..1, 0..4])
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec()
                    .unwrap()
            };
            (rows(company(0.0)), rows(company(3.0)))
        };
        let (alone, beside) = evaluated(&before);
        assert!(!differ(&alone, &beside), "evaluation depends on the batch");
        let (a, b) = (first_row(&net, company(0.0)), first_row(&net, company(3.0)));
        assert!(differ(&a, &b), "training ignores the batch's statistics");
        // The training forwards above moved the running statistics.
        let (after, _) = evaluated(&net.valid());
        assert!(
            differ(&alone, &after),
            "training left the running statistics unchanged"
        );
    }

    /// The replayed layers are the network's: the same weights in the same order, and the
    /// shapes the forward pass produces (the pooled features have the last one's channels).
    #[test]
    fn the_listed_convolutions_are_the_networks() {
        let device = Device::flex();
        for size in [16u32, 72] {
            let config = ModelConfig::resnet18(2, 4, size);
            let net = config.init(&device);
            let weights: Vec<Vec<usize>> = crate::tensor_files::module_tensors(&net)
                .into_iter()
                .filter(|t| t.shape.len() == 4)
                .map(|t| t.shape)
                .collect();
            let layers = config.convolutions(3);
            let listed: Vec<Vec<usize>> = layers.iter().map(|l| l.weight.to_vec()).collect();
            assert_eq!(listed.len(), 20);
            assert_eq!(weights, listed, "{size} px");
            let last = layers.last().unwrap().output();
            let features = net.forward(Tensor::<4>::zeros(
                [3, 3, size as usize, size as usize],
                &device,
            ));
            assert_eq!(features.dims(), [3, 4]);
            let final_side = if size == 16 { 2 } else { 3 };
            assert_eq!(last, [3, 16, final_side, final_side], "{size} px");
        }
    }

    #[test]
    fn stem_follows_image_size() {
        assert_eq!(Stem::for_image_size(32), Stem::Cifar);
        assert_eq!(Stem::for_image_size(64), Stem::Cifar);
        assert_eq!(Stem::for_image_size(96), Stem::Imagenet);
    }

    #[test]
    fn seeded_init_is_reproducible_and_pytorch_scaled() {
        let device = Device::flex();
        let config = ModelConfig::resnet18(4, 8, 16);
        let weights =
            |seed| crate::tensor_files::module_tensors(&config.init_seeded(&device, seed));
        let (a, b, c) = (weights(3), weights(3), weights(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let conv = a.iter().find(|t| t.name == "conv1.weight").unwrap();
        let crate::tensor_files::TensorValues::F32(values) = &conv.values else {
            panic!()
        };
        let bound = 1.0 / 27f32.sqrt();
        assert!(values.iter().all(|v| v.abs() <= bound));
        assert!(values.iter().any(|v| v.abs() > bound * 0.9));
        let gamma = a.iter().find(|t| t.name == "bn1.gamma").unwrap();
        assert_eq!(
            gamma.values,
            crate::tensor_files::TensorValues::F32(vec![1.0; 4])
        );
    }

    #[test]
    fn half_precision_convolutions_stay_close_to_f32() {
        let device = Device::flex();
        if !device.supports_dtype(FloatDType::F16) {
            return crate::skip::because("flex has no f16 here");
        }
        let model = ModelConfig::resnet18(4, 8, 16).init_seeded(&device, 1);
        let images = Tensor::<4>::random([4, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
        let full: Vec<f32> = model
            .forward(images.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let half: Vec<f32> = model
            .forward_at(images, Precision::F16)
            .into_data()
            .try_to_vec()
            .unwrap();
        let worst = full
            .iter()
            .zip(&half)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst > 0.0, "f16 should round somewhere");
        assert!(worst < 2e-2, "f16 embeddings differ from f32 by {worst}");
    }

    #[test]
    fn an_f16_weight_gradient_summed_in_f32_passes_the_check() {
        let device = Device::flex();
        if !device.supports_dtype(FloatDType::F16) {
            return crate::skip::because("flex has no f16 here");
        }
        // Flex sums in f32: only the inputs' rounding remains, well within the tolerance, and
        // not nothing (the check compares two different computations).
        let error = half_precision_gradient_error(&device);
        assert!(
            error > 0.0 && error < HALF_GRADIENT_TOLERANCE / 4.0,
            "{error}"
        );
    }

    #[test]
    fn forward_gives_unit_rows_of_dim() {
        let device = Device::flex();
        for size in [16u32, 72] {
            let model = ModelConfig::resnet18(4, 8, size).init(&device);
            let images = Tensor::<4>::random(
                [3, 3, size as usize, size as usize],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let out = model.forward(images);
            assert_eq!(out.dims(), [3, 8]);
            let norms: Vec<f32> = out.square().sum_dim(1).into_data().try_to_vec().unwrap();
            for norm in norms {
                assert!((norm - 1.0).abs() < 1e-4, "squared norm {norm}");
            }
        }
    }
}
