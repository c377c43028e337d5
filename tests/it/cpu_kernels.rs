//! The CPU backend's own convolution and batch norm (vendor/burn-flex's patch), through Burn's
//! autodiff as training reaches them. Convolution outputs and gradients: against PyTorch's on
//! every convolution shape of a ResNet-18 (`tests/fixtures/pytorch/conv-gradients.safetensors`), and
//! against the path Burn takes without the patch (a convolution whose kernel is the output
//! gradient, and a transposed convolution) on every layer of the paper's width-64 network at
//! 32 px. Batch norm: against its formula written with tensor operations, as Burn's default is.

use crate::compare::{relative_error, values};
use burn::nn::BatchNormConfig;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use safetensors::SafeTensors;
use spreadout::model::ModelConfig;

/// `(x grad, weight grad)` of `conv2d(x, weight)` with `output_grad` flowing back, by autodiff.
fn autodiff_gradients(
    x: Tensor<4>,
    weight: Tensor<4>,
    output_grad: Tensor<4>,
    options: ConvOptions<2>,
) -> (Vec<f32>, Vec<f32>) {
    let (x, weight) = (x.require_grad(), weight.require_grad());
    let grads = (conv2d(x.clone(), weight.clone(), None, options) * output_grad)
        .sum()
        .backward();
    (
        values(x.grad(&grads).unwrap()),
        values(weight.grad(&grads).unwrap()),
    )
}

#[test]
fn convolutions_and_their_gradients_match_pytorch() {
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pytorch/conv-gradients.safetensors"),
    )
    .unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let device = Device::flex().autodiff();
    let tensor = |name: &str| {
        let view = file.tensor(name).unwrap();
        let floats: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let shape: [usize; 4] = view.shape().try_into().unwrap();
        (
            Tensor::<4>::from_data(TensorData::new(floats.clone(), shape), &device),
            floats,
        )
    };
    let layers = metadata.keys().filter(|k| k.ends_with(".stride")).count();
    assert_eq!(layers, 12, "one per convolution shape");
    for k in 0..layers {
        let number = |key: &str| metadata[&format!("{k}.{key}")].parse::<usize>().unwrap();
        let (stride, padding) = (number("stride"), number("padding"));
        let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
        let (x, _) = tensor(&format!("{k}.x"));
        let (weight, _) = tensor(&format!("{k}.weight"));
        let (output_grad, _) = tensor(&format!("{k}.output_grad"));
        let (_, output) = tensor(&format!("{k}.output"));
        let (_, x_grad) = tensor(&format!("{k}.x_grad"));
        let (_, weight_grad) = tensor(&format!("{k}.weight_grad"));
        let got_output = values(conv2d(x.clone(), weight.clone(), None, options.clone()));
        let (got_x, got_weight) = autodiff_gradients(x, weight, output_grad, options);
        for (name, got, want) in [
            ("output", got_output, output),
            ("x gradient", got_x, x_grad),
            ("weight gradient", got_weight, weight_grad),
        ] {
            let error = relative_error(&got, &want);
            assert!(error < 1e-5, "convolution {k}, {name}: {error}");
        }
    }
}

/// Burn's default backward, as burn-backend computes it for a backend without its own, written
/// with public tensor operations.
fn default_gradients(
    x: Tensor<4>,
    weight: Tensor<4>,
    output_grad: Tensor<4>,
    stride: usize,
    padding: usize,
) -> (Vec<f32>, Vec<f32>) {
    let [_, _, size_in, _] = x.dims();
    let [_, _, size_out, _] = output_grad.dims();
    let [out, input, kernel, _] = weight.dims();
    let padding_out = size_in.saturating_sub((size_out - 1) * stride + kernel - 2 * padding);
    let x_grad = conv_transpose2d(
        output_grad.clone(),
        weight,
        None,
        ConvTransposeOptions::new([stride; 2], [padding; 2], [padding_out; 2], [1, 1], 1),
    );
    let weight_grad = conv2d(
        x.swap_dims(0, 1),
        output_grad.swap_dims(0, 1),
        None,
        ConvOptions::new([1, 1], [padding; 2], [stride; 2], 1),
    )
    .swap_dims(0, 1)
    .slice([0..out, 0..input, 0..kernel, 0..kernel]);
    (values(x_grad), values(weight_grad))
}

#[test]
fn gradients_match_burns_default_on_every_layer_at_the_papers_width() {
    let device = Device::flex();
    let autodiff = device.clone().autodiff();
    let layers = ModelConfig::resnet18(64, 128, 32).convolutions(4);
    assert_eq!(layers.len(), 20);
    for (k, layer) in layers.iter().enumerate() {
        let padding = layer.weight[2] / 2;
        let random = |shape: [usize; 4]| {
            Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).into_data()
        };
        let (x, weight, output_grad) = (
            random(layer.input),
            random(layer.weight),
            random(layer.output()),
        );
        let on = |data: &TensorData, device: &Device| Tensor::<4>::from_data(data.clone(), device);
        let (got_x, got_weight) = autodiff_gradients(
            on(&x, &autodiff),
            on(&weight, &autodiff),
            on(&output_grad, &autodiff),
            ConvOptions::new([layer.stride; 2], [padding; 2], [1, 1], 1),
        );
        let (want_x, want_weight) = default_gradients(
            on(&x, &device),
            on(&weight, &device),
            on(&output_grad, &device),
            layer.stride,
            padding,
        );
        for (name, got, want) in [("x", got_x, want_x), ("weight", got_weight, want_weight)] {
            let error = relative_error(&got, &want);
            assert!(
                error <= 1e-5,
                "layer {k} {layer:?}, {name} gradient: {error}"
            );
        }
    }
}

#[test]
fn batch_norm_matches_its_formula_on_every_layer_at_the_papers_width() {
    let device = Device::flex().autodiff();
    let mut shapes: Vec<[usize; 4]> = ModelConfig::resnet18(64, 128, 32)
        .convolutions(4)
        .iter()
        .map(|layer| layer.output())
        .collect();
    shapes.dedup();
    for shape in shapes {
        let channels = shape[1];
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.5, 2.0), &device);
        let upstream = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let norm = BatchNormConfig::new(channels).init(&device);
        let gamma = Tensor::<1>::random([channels], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<1>::random([channels], Distribution::Normal(0.0, 1.0), &device);
        let norm = burn::nn::BatchNorm {
            gamma: burn::module::Param::from_tensor(gamma.clone()),
            beta: burn::module::Param::from_tensor(beta.clone()),
            ..norm
        };
        // The patched operation.
        let x_in = x.clone().require_grad();
        let grads = (norm.forward(x_in.clone()) * upstream.clone())
            .sum()
            .backward();
        let got = [
            values(x_in.grad(&grads).unwrap()),
            values(norm.gamma.val().grad(&grads).unwrap()),
            values(norm.beta.val().grad(&grads).unwrap()),
        ];
        // The formula, every step a tensor operation.
        let (x_in, gamma, beta) = (x.require_grad(), gamma.require_grad(), beta.require_grad());
        let per_channel = |t: Tensor<1>| t.reshape([1, channels, 1, 1]);
        let mean = x_in.clone().mean_dim(0).mean_dim(2).mean_dim(3);
        let centered = x_in.clone() - mean;
        let variance = centered
            .clone()
            .square()
            .mean_dim(0)
            .mean_dim(2)
            .mean_dim(3);
        let output = centered / (variance + 1e-5).sqrt() * per_channel(gamma.clone())
            + per_channel(beta.clone());
        let grads = (output * upstream).sum().backward();
        let want = [
            values(x_in.grad(&grads).unwrap()),
            values(gamma.grad(&grads).unwrap()),
            values(beta.grad(&grads).unwrap()),
        ];
        for ((name, got), want) in ["x", "gamma", "beta"].into_iter().zip(got).zip(want) {
            let error = relative_error(&got, &want);
            assert!(error <= 1e-5, "{shape:?}, {name} gradient: {error}");
        }
    }
}
