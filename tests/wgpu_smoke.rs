//! Smoke test of the GPU path: a tiny network on a wgpu adapter (Mesa's lavapipe on machines
//! without a GPU) computes the same embeddings and training losses as the CPU backend.
//!
//! lavapipe compiles kernels slowly (minutes for the first step), so the shapes are tiny.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use spreadout::device::{self, DeviceChoice};
use spreadout::method::{LossMasks, NegativeSampling, spread_out_loss};
use spreadout::model::ModelConfig;
use spreadout::optim::Sgd;

/// Embeddings of the first input before training, then the loss of one SGD step per input.
fn run(device: &Device, inputs: &[Vec<f32>], rows: usize, size: usize) -> (Vec<f32>, Vec<f32>) {
    let device = device.clone().autodiff();
    let mut net = ModelConfig::resnet18(2, 8, size as u32).init_seeded(&device, 7);
    let mut sgd = Sgd::new(0.9, 5e-4);
    let batch = |values: &Vec<f32>| {
        Tensor::<4>::from_data(
            TensorData::new(values.clone(), [rows, 3, size, size]),
            &device,
        )
    };
    let embeddings = net
        .forward(batch(&inputs[0]))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let masks = LossMasks::new(rows, &device);
    let mut losses = Vec::new();
    for input in inputs {
        let loss = spread_out_loss(
            net.forward(batch(input)),
            0.1,
            NegativeSampling::All,
            &masks,
        );
        losses.push(loss.clone().into_data().try_to_vec::<f32>().unwrap()[0]);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = sgd.step(0.03, net, grads);
    }
    (embeddings, losses)
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
    // What `spreadout devices` says of it: the compiler Burn picked for this adapter.
    let compute = gpu.compute().expect("the adapter opens");
    eprintln!("wgpu adapter: {} — {}", gpu.name, compute.summary());
    // lavapipe may or may not qualify for the SPIR-V compiler; either way it is named.
    assert!(
        ["SPIR-V", "MSL", "WGSL"].contains(&compute.compiler.as_str()),
        "{compute:?}"
    );

    let (rows, size) = (8, 8);
    let inputs: Vec<Vec<f32>> = (0..3)
        .map(|step| {
            (0..rows * 3 * size * size)
                .map(|i| (((i * 7919 + step * 104_729) % 1000) as f32 / 500.0) - 1.0)
                .collect()
        })
        .collect();
    let (cpu_embeddings, cpu_losses) = run(&Device::flex(), &inputs, rows, size);
    let (gpu_embeddings, gpu_losses) = run(&gpu.device, &inputs, rows, size);
    eprintln!("losses: cpu {cpu_losses:?}, wgpu {gpu_losses:?}");
    let worst = cpu_embeddings
        .iter()
        .zip(&gpu_embeddings)
        .map(|(c, g)| (c - g).abs())
        .fold(0.0f32, f32::max);
    eprintln!("largest embedding difference before training: {worst:e}");
    assert!(
        worst <= 1e-3,
        "same weights and input, embeddings differ by {worst}"
    );
    for (step, (c, g)) in cpu_losses.iter().zip(&gpu_losses).enumerate() {
        assert!(
            (c - g).abs() <= 1e-3 * c.abs().max(1.0),
            "step {step}: cpu loss {c} vs wgpu {g}"
        );
    }
}
