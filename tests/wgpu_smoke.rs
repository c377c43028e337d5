//! Smoke test of the GPU path: a few training steps of a tiny network on a wgpu adapter (Mesa's
//! lavapipe on machines without a GPU) match the same steps on the CPU backend.
//!
//! lavapipe compiles kernels slowly (minutes for the first step), so the shapes are tiny.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use spreadout::device::{self, DeviceChoice};
use spreadout::loss::{NegativeSampling, spread_out_loss};
use spreadout::model::ModelConfig;
use spreadout::train::Sgd;

/// Losses of `steps` SGD steps on fixed inputs, then the final embeddings.
fn train_steps(
    device: &Device,
    inputs: &[Vec<f32>],
    rows: usize,
    size: usize,
) -> (Vec<f32>, Vec<f32>) {
    let device = device.clone().autodiff();
    let mut net = ModelConfig::resnet18(2, 8, size as u32).init_seeded(&device, 7);
    let mut sgd = Sgd::new(0.9, 5e-4);
    let batch = |values: &Vec<f32>| {
        Tensor::<4>::from_data(
            TensorData::new(values.clone(), [rows, 3, size, size]),
            &device,
        )
    };
    let mut losses = Vec::new();
    for input in inputs {
        let loss = spread_out_loss(net.forward(batch(input)), 0.1, NegativeSampling::All);
        losses.push(loss.clone().into_data().try_to_vec::<f32>().unwrap()[0]);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = sgd.step(0.03, net, grads);
    }
    let embeddings = net
        .forward(batch(&inputs[0]))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    (losses, embeddings)
}

#[test]
fn a_few_steps_on_wgpu_match_the_cpu_backend() {
    let adapters = device::list_adapters();
    let Some(adapter) = adapters.first() else {
        panic!(
            "no wgpu adapter: install Mesa's Vulkan drivers (apt-get install mesa-vulkan-drivers) so this test can run wgpu on the CPU"
        );
    };
    let gpu = device::select(DeviceChoice::Adapter(adapter.index)).expect("adapter selectable");
    eprintln!("wgpu adapter: {}", gpu.name);

    let (rows, size) = (8, 8);
    let inputs: Vec<Vec<f32>> = (0..3)
        .map(|step| {
            (0..rows * 3 * size * size)
                .map(|i| (((i * 7919 + step * 104729) % 1000) as f32 / 500.0) - 1.0)
                .collect()
        })
        .collect();
    let (cpu_losses, cpu_embeddings) = train_steps(&Device::flex(), &inputs, rows, size);
    let (gpu_losses, gpu_embeddings) = train_steps(&gpu.device, &inputs, rows, size);
    for (step, (c, g)) in cpu_losses.iter().zip(&gpu_losses).enumerate() {
        assert!(
            (c - g).abs() <= 1e-3 * c.abs().max(1.0),
            "step {step}: cpu loss {c} vs wgpu {g}"
        );
    }
    for (c, g) in cpu_embeddings.iter().zip(&gpu_embeddings) {
        assert!((c - g).abs() <= 2e-3, "embedding {c} vs {g}");
    }
}
