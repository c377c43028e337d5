//! The GPU path on a wgpu adapter (Mesa's lavapipe on machines without a GPU), compared with the
//! flex CPU backend: a few plain steps; then the production run itself (pixels unpacked on the
//! device, the step of every method and option, f16, the evaluation's device top-k, the
//! checkpoint) against the same run on flex; and a checkpoint written on wgpu resumed on both.
//!
//! lavapipe compiles kernels slowly (minutes for the first step), so the shapes are tiny, and the
//! cases share one process (the `it` binary, with the other wgpu tests): the adapter and its
//! compiled kernels are made once.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use spreadout::device::{self, DeviceChoice};
use spreadout::method::{LossMasks, NegativeSampling, spread_out_loss};
use spreadout::model::ModelConfig;
use spreadout::optim::Sgd;

use crate::skip;

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

/// The first wgpu adapter (lavapipe on machines without a GPU), which every test here uses.
fn first_adapter() -> usize {
    device::list_adapters()
        .first()
        .expect("a wgpu adapter (lavapipe on machines without a GPU)")
        .index
}

/// One small run of `config` on `device` into `out`, on the generated folders `data`.
fn try_train_on(
    device: DeviceChoice,
    data: &spreadout::lab::demo::DemoFolders,
    out: &std::path::Path,
    config: spreadout::train::TrainConfig,
    resume: bool,
    stop_after_epoch: Option<usize>,
) -> Result<spreadout::train::RunSummary, spreadout::train::TrainError> {
    use spreadout::train::{self, Control, TrainRequest};
    let request = if resume {
        TrainRequest::resume(
            out,
            // The settings a resume may change, as the CLI's flags give them.
            train::ResumeOverrides {
                epochs: Some(config.epochs),
                device: Some(device),
                augment_on: Some(config.augment_on),
                device_data_mb: Some(config.device_data_mb),
                checkpoint_minutes: Some(config.checkpoint_minutes),
                cache_dir: Some(out.with_file_name("image-cache")),
                ..train::ResumeOverrides::default()
            },
        )?
        .request
    } else {
        TrainRequest::new(config, data.train.clone(), out.to_owned())
            .evaluated_on(None, Some(data.test.clone()))
            .on(device)
            .with_cache_dir(Some(out.with_file_name("image-cache")))
    }
    .stopping_after_epoch(stop_after_epoch);
    train::run(&request, &Control::default(), &mut |_| {})
}

/// [`try_train_on`] that must succeed.
fn train_on(
    device: DeviceChoice,
    data: &spreadout::lab::demo::DemoFolders,
    out: &std::path::Path,
    config: spreadout::train::TrainConfig,
    resume: bool,
    stop_after_epoch: Option<usize>,
) -> spreadout::train::RunSummary {
    try_train_on(device.clone(), data, out, config, resume, stop_after_epoch)
        .unwrap_or_else(|error| panic!("{device:?}: {error}"))
}

/// The largest difference between the exported weights of two runs, relative to the weight.
fn weights_apart(a: &std::path::Path, b: &std::path::Path) -> (String, f32) {
    use spreadout::tensor_files;
    use spreadout::tensor_files::TensorValues;
    let (a, _) = tensor_files::read_tensors(&a.join("model.safetensors")).unwrap();
    let (b, _) = tensor_files::read_tensors(&b.join("model.safetensors")).unwrap();
    let mut worst = (String::new(), 0.0f32);
    for (name, tensor) in &a {
        let (TensorValues::F32(x), TensorValues::F32(y)) = (&tensor.values, &b[name].values) else {
            continue;
        };
        for (p, q) in x.iter().zip(y) {
            let apart = (p - q).abs() / (1.0 + p.abs());
            if apart > worst.1 || apart.is_nan() {
                worst = (name.clone(), apart);
            }
        }
    }
    worst
}

/// Two classes of four 16 px images, and two test images each.
fn small_data(dir: &std::path::Path, seed: u64) -> spreadout::lab::demo::DemoFolders {
    spreadout::lab::demo::generate(
        &dir.join("data"),
        &spreadout::lab::demo::DemoSpec {
            classes: 2,
            train_per_class: 4,
            test_per_class: 2,
            size: 16,
            seed,
        },
    )
    .unwrap()
}

/// One epoch of two steps of 4 images: pixels unpacked on the device, the step, the method's
/// state, the evaluation's device top-k, the checkpoint and the export all run.
fn small_config() -> spreadout::train::TrainConfig {
    spreadout::train::TrainConfig {
        epochs: 1,
        batch_size: 4,
        image_size: 16,
        width: 2,
        dim: 8,
        knn_k: 3,
        recall_k: vec![1, 2],
        ..spreadout::train::TrainConfig::default()
    }
}

#[test]
fn the_production_run_on_wgpu_matches_flex_for_every_method_and_option() {
    use spreadout::method::{Method, Positive};
    use spreadout::train::TrainConfig;
    let base = small_config();
    let mut cases: Vec<(&str, TrainConfig, f32)> = Vec::new();
    for negatives in [
        NegativeSampling::All,
        NegativeSampling::HardestHalf,
        NegativeSampling::EasiestHalf,
    ] {
        cases.push((
            "spreadout",
            TrainConfig {
                negatives,
                ..base.clone()
            },
            2e-3,
        ));
    }
    cases.push((
        "spreadout, nearest positive",
        TrainConfig {
            positive: Positive::Nearest,
            ..base.clone()
        },
        2e-3,
    ));
    for method in [
        Method::NpSoftmax,
        Method::Nce,
        Method::Exemplar,
        Method::Triplet,
        Method::TripletHard,
    ] {
        cases.push((
            method.name(),
            TrainConfig {
                method,
                tau: method.default_tau(),
                ..base.clone()
            },
            2e-3,
        ));
    }
    compare_with_flex(cases);
}

/// f16 training on an adapter whose f16 convolutions sum weight gradients in half precision
/// (lavapipe's do: 1.8 % off on a 2 048-term sum where flex is 0.06 % off, and two steps ended
/// 0.32 away from flex's weights) is refused before training, naming the reason. Skipped on an
/// adapter that passes the check: there is nothing to refuse.
#[test]
fn f16_on_wgpu_is_refused_with_the_reason_where_gradients_sum_in_half_precision() {
    use spreadout::model::Precision;
    let adapter = first_adapter();
    let gpu = device::select(DeviceChoice::Adapter(adapter)).expect("adapter selectable");
    let Err(refused) = device::check_precision(&gpu, Precision::F16) else {
        return skip::because(&format!(
            "{} passes the f16 precision check: nothing to refuse",
            gpu.name
        ));
    };
    let message = refused.to_string();
    eprintln!("f16 refused: {message}");
    assert!(message.contains("half precision"), "{message}");
    // The run refuses it before training, with the same message.
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path(), 3);
    let out = dir.path().join("run");
    let config = spreadout::train::TrainConfig {
        precision: Precision::F16,
        ..small_config()
    };
    let error = try_train_on(
        DeviceChoice::Adapter(adapter),
        &data,
        &out,
        config,
        false,
        None,
    )
    .expect_err("an f16 run on this adapter is refused");
    assert!(error.to_string().contains("half precision"), "{error}");
    assert!(!dir.path().join("run/model.safetensors").exists());
}

/// f16 training on an adapter whose f16 convolutions pass the precision check (a GPU whose
/// kernels sum in f32) matches flex's f32 run within f16's rounding. Skipped, naming the refusal,
/// where the adapter is refused (lavapipe, so CI): the test above covers that branch.
#[test]
fn f16_on_wgpu_trains_like_flex_where_the_adapter_passes_the_precision_check() {
    use spreadout::model::Precision;
    let gpu = device::select(DeviceChoice::Adapter(first_adapter())).expect("adapter selectable");
    if let Err(refused) = device::check_precision(&gpu, Precision::F16) {
        return skip::because(&format!("no f16 adapter: {refused}"));
    }
    let config = spreadout::train::TrainConfig {
        precision: Precision::F16,
        ..small_config()
    };
    compare_with_flex(vec![("spreadout, f16", config, 5e-2)]);
}

/// Each case trained on flex (at f32) and on the wgpu adapter from the same seed; fails naming
/// every case whose weights end further apart than its tolerance.
fn compare_with_flex(cases: Vec<(&str, spreadout::train::TrainConfig, f32)>) {
    use spreadout::model::Precision;
    use spreadout::train::TrainConfig;
    let adapter = first_adapter();
    let gpu = DeviceChoice::Adapter(adapter);
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path(), 3);
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    for (i, (name, config, tolerance)) in cases.into_iter().enumerate() {
        let case = std::time::Instant::now();
        let flex = dir.path().join(format!("{i}-flex"));
        let wgpu = dir.path().join(format!("{i}-wgpu"));
        let flex_config = TrainConfig {
            precision: Precision::F32,
            ..config.clone()
        };
        let on_flex = train_on(DeviceChoice::Cpu, &data, &flex, flex_config, false, None);
        let on_wgpu = train_on(gpu.clone(), &data, &wgpu, config, false, None);
        // kNN is scored on the host on flex and on embeddings kept on the device on wgpu.
        let knn = |run: &spreadout::train::RunSummary| run.metrics[0].knn_accuracy;
        if knn(&on_flex) != knn(&on_wgpu) {
            failures.push(format!(
                "{name}: kNN {:?} on flex, {:?} on wgpu",
                knn(&on_flex),
                knn(&on_wgpu)
            ));
        }
        let (tensor, apart) = weights_apart(&flex, &wgpu);
        eprintln!(
            "{name}: weights within {apart:.1e} of flex (largest in {tensor}), {:.0} s",
            case.elapsed().as_secs_f64()
        );
        if apart.is_nan() || apart > tolerance {
            failures.push(format!("{name}: {tensor} differs by {apart:e}"));
        }
    }
    eprintln!(
        "every method and option on wgpu: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_checkpoint_written_on_wgpu_resumes_on_flex_and_on_wgpu() {
    use spreadout::train::TrainConfig;
    let adapter = first_adapter();
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path(), 4);
    let config = TrainConfig {
        epochs: 2,
        ..small_config()
    };
    let straight = dir.path().join("straight");
    train_on(
        DeviceChoice::Cpu,
        &data,
        &straight,
        config.clone(),
        false,
        None,
    );
    for (name, second) in [
        ("flex", DeviceChoice::Cpu),
        ("wgpu", DeviceChoice::Adapter(adapter)),
    ] {
        let run = dir.path().join(format!("then-{name}"));
        // The first epoch on wgpu, the second wherever the run is resumed.
        train_on(
            DeviceChoice::Adapter(adapter),
            &data,
            &run,
            config.clone(),
            false,
            Some(1),
        );
        let summary = train_on(second, &data, &run, config.clone(), true, None);
        assert_eq!(summary.epochs_completed, 2);
        let (tensor, apart) = weights_apart(&straight, &run);
        eprintln!("wgpu then {name}: within {apart:.1e} of flex throughout ({tensor})");
        assert!(
            apart <= 2e-3,
            "wgpu then {name}: {tensor} differs by {apart:e}"
        );
    }
}

#[test]
fn the_device_searches_on_wgpu_find_what_the_host_finds() {
    use spreadout::eval::{self, Embeddings};
    let adapter = first_adapter();
    let gpu = device::select(DeviceChoice::Adapter(adapter)).expect("adapter selectable");
    // 300 unit rows of 16 values, three of them planted copies (pairs far above the rest).
    let (n, dim) = (300, 16);
    let mut values: Vec<f32> = (0..n * dim)
        .map(|i| ((i * 7919 % 1009) as f32 / 504.5) - 1.0)
        .collect();
    for (copy, original) in [(10, 3), (299, 150), (151, 150)] {
        let row = values[original * dim..(original + 1) * dim].to_vec();
        values[copy * dim..(copy + 1) * dim].copy_from_slice(&row);
    }
    for row in values.chunks_mut(dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let features = Embeddings::new(&values, dim).unwrap();
    let queries = Embeddings::new(&values[..40 * dim], dim).unwrap();

    // The evaluation's kNN and Explore's neighbours: top-k on the device.
    let host = eval::top_k(queries, features, 7, false).unwrap();
    let device = eval::top_k_on(&gpu.device, queries, features, 7, &|| true).unwrap();
    for (q, (h, d)) in host.iter().zip(&device).enumerate() {
        let ids = |hits: &Vec<(usize, f32)>| hits.iter().map(|hit| hit.0).collect::<Vec<_>>();
        assert_eq!(ids(h), ids(d), "query {q}");
        for (a, b) in h.iter().zip(d) {
            assert!((a.1 - b.1).abs() < 1e-5, "query {q}: {} vs {}", a.1, b.1);
        }
    }

    // The evaluation's kNN over embeddings it keeps on the device: the queries picked there.
    let on_gpu = Tensor::<2>::from_data(TensorData::new(values.clone(), [n, dim]), &gpu.device);
    let picked = Tensor::<1, burn::tensor::Int>::from_data(
        TensorData::new((0..40).collect::<Vec<i32>>(), [40]),
        &gpu.device,
    );
    let kept =
        eval::top_k_of_tensors(on_gpu.clone().select(0, picked), on_gpu, 7, &|| true).unwrap();
    assert_eq!(kept, device);

    // Near-duplicates: the pairs above a threshold, found by `argwhere` on the device.
    let threshold = 0.9;
    let on_wgpu = eval::pairs_above(features, threshold, &gpu.device).unwrap();
    let on_flex = eval::pairs_above(features, threshold, &burn::tensor::Device::flex()).unwrap();
    let pairs =
        |found: &[(usize, usize, f32)]| found.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>();
    assert_eq!(pairs(&on_wgpu), pairs(&on_flex));
    for planted in [(3, 10), (150, 151), (150, 299), (151, 299)] {
        assert!(
            pairs(&on_wgpu).contains(&planted),
            "{planted:?} in {:?}",
            pairs(&on_wgpu)
        );
    }
}

#[test]
fn the_bench_counts_a_steps_launches_reads_and_host_time_on_wgpu() {
    use spreadout::lab::bench::{self, TrainingCase};
    use spreadout::model::Precision;
    let adapter = first_adapter();
    let gpu = device::select(DeviceChoice::Adapter(adapter)).expect("adapter selectable");
    let case = TrainingCase {
        width: 2,
        batch_size: 4,
        image_size: 16,
        precision: Precision::F32,
        augment_on: spreadout::train::AugmentOn::Auto,
    };
    let row = bench::training(&gpu, case, 1, 32).unwrap();
    let budget = row.budget.expect("a training row has a step budget");
    let launches = budget
        .launches_per_step
        .expect("CubeCL's launches are counted");
    eprintln!(
        "{}: {launches:.0} launches, {:.3} blocking reads, {:.1} host ms per step",
        row.detail, budget.blocking_reads_per_step, budget.host_ms_per_step
    );
    for (kernel, per_step) in &budget.launches {
        eprintln!("  {per_step:6.1} × {kernel}");
    }
    // A ResNet-18 step launches hundreds of kernels (forward, backward, update).
    assert!(launches > 100.0, "{launches}");
    let summed: f64 = budget.launches.iter().map(|(_, n)| n).sum();
    assert!((summed - launches).abs() < 1e-9);
    // Thirty-two steps, their losses read sixteen at a time.
    assert_eq!(budget.blocking_reads_per_step, 1.0 / 16.0);
    assert!(budget.host_ms_per_step > 0.0);
    // At least the two 8-bit views of the batch.
    assert!(budget.upload_bytes_per_step >= (2 * 4 * 3 * 16 * 16) as f64);
}

#[test]
fn half_precision_convolutions_on_wgpu_stay_close_to_f32() {
    use spreadout::model::Precision;
    let adapter = first_adapter();
    let gpu = device::select(DeviceChoice::Adapter(adapter)).expect("adapter selectable");
    if !gpu.device.supports_dtype(burn::tensor::FloatDType::F16) {
        panic!("{} offers no shader-f16, which lavapipe does", gpu.name);
    }
    let (rows, size) = (8, 16);
    let values: Vec<f32> = (0..rows * 3 * size * size)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let net = ModelConfig::resnet18(2, 8, size as u32).init_seeded(&gpu.device, 7);
    let images =
        Tensor::<4>::from_data(TensorData::new(values, [rows, 3, size, size]), &gpu.device);
    let at = |precision| -> Vec<f32> {
        net.forward_at(images.clone(), precision)
            .into_data()
            .try_to_vec()
            .unwrap()
    };
    let (full, half) = (at(Precision::F32), at(Precision::F16));
    let worst = full
        .iter()
        .zip(&half)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "f16 forward on {}: embeddings within {worst:e} of f32",
        gpu.name
    );
    assert!(worst < 2e-2, "f16 embeddings differ from f32 by {worst}");
}

#[test]
fn views_built_on_the_device_train_as_views_built_on_the_cpu_and_a_run_resumes_across_them() {
    use spreadout::train::{AugmentOn, TrainConfig};
    let adapter = first_adapter();
    let gpu = DeviceChoice::Adapter(adapter);
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path(), 5);
    // Two epochs of one step (eight images in one batch): beyond two steps, Eq. 7 on this tiny
    // folder's nearly collapsed features amplifies rounding past any useful tolerance.
    let config = |augment_on| TrainConfig {
        epochs: 2,
        batch_size: 8,
        augment_on,
        ..small_config()
    };
    let on_device = dir.path().join("device");
    let on_cpu = dir.path().join("cpu");
    let switched = dir.path().join("switched");
    let device_summary = train_on(
        gpu.clone(),
        &data,
        &on_device,
        config(AugmentOn::Device),
        false,
        None,
    );
    // The images above were kept on the device for the run (the default budget holds them);
    // here they are uploaded batch by batch.
    let uploaded = dir.path().join("uploaded");
    let batch_by_batch = TrainConfig {
        device_data_mb: 0,
        ..config(AugmentOn::Device)
    };
    train_on(gpu.clone(), &data, &uploaded, batch_by_batch, false, None);
    let cpu_summary = train_on(
        gpu.clone(),
        &data,
        &on_cpu,
        config(AugmentOn::Cpu),
        false,
        None,
    );
    // The evaluation embeds the training images (kNN's memory) from the images kept on the
    // device in the first run, and reads them on the host in this one: the same scores.
    for (device_epoch, cpu_epoch) in device_summary.metrics.iter().zip(&cpu_summary.metrics) {
        assert_eq!(device_epoch.knn_accuracy, cpu_epoch.knn_accuracy);
        assert_eq!(device_epoch.recall_at, cpu_epoch.recall_at);
        assert!(device_epoch.knn_accuracy.is_some());
    }
    // The first epoch's views on the device, the second's on the CPU after a resume.
    train_on(
        gpu.clone(),
        &data,
        &switched,
        config(AugmentOn::Device),
        false,
        Some(1),
    );
    train_on(
        gpu.clone(),
        &data,
        &switched,
        config(AugmentOn::Cpu),
        true,
        None,
    );
    for (name, run) in [
        ("images uploaded batch by batch", &uploaded),
        ("views on the CPU", &on_cpu),
        ("switched on resume", &switched),
    ] {
        let (tensor, apart) = weights_apart(&on_device, run);
        eprintln!("{name}: within {apart:.1e} of views on the device ({tensor})");
        assert!(apart < 1e-4, "{name}: {tensor} differs by {apart}");
    }
    let run = std::fs::read_to_string(switched.join("run.json")).unwrap();
    assert!(run.contains("\"augment_on\": \"cpu\""), "{run}");
    // The CPU backend has no device to build views on.
    let refused = try_train_on(
        DeviceChoice::Cpu,
        &data,
        &dir.path().join("refused"),
        config(AugmentOn::Device),
        false,
        None,
    )
    .expect_err("views on the device need a GPU");
    assert!(refused.to_string().contains("augment_on"), "{refused}");
}

#[test]
fn the_images_kept_on_the_device_follow_a_changed_folder_on_resume() {
    use spreadout::train::{self, AugmentOn, Control, TrainConfig, TrainEvent, TrainRequest};
    let adapter = first_adapter();
    let dir = tempfile::tempdir().unwrap();
    let data = small_data(dir.path(), 7);
    let out = dir.path().join("run");
    let config = TrainConfig {
        epochs: 2,
        batch_size: 8,
        augment_on: AugmentOn::Device,
        ..small_config()
    };
    train_on(
        DeviceChoice::Adapter(adapter),
        &data,
        &out,
        config.clone(),
        false,
        Some(1),
    );
    // Four more images: a set kept for the old folder would have no pixels for them.
    let class = std::fs::read_dir(&data.train)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.is_dir())
        .unwrap();
    let first = std::fs::read_dir(&class)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for k in 0..4 {
        std::fs::copy(&first, class.join(format!("zz-added-{k}.png"))).unwrap();
    }
    let mut images = None;
    let resumed = train::run(
        &TrainRequest {
            accept_changed_folder: true,
            ..TrainRequest::resume(
                &out,
                spreadout::train::ResumeOverrides {
                    device: Some(DeviceChoice::Adapter(adapter)),
                    cache_dir: Some(out.with_file_name("image-cache")),
                    ..spreadout::train::ResumeOverrides::default()
                },
            )
            .unwrap()
            .request
        },
        &Control::default(),
        &mut |event| {
            if let TrainEvent::Started { images: count, .. } = event {
                images = Some(count);
            }
        },
    )
    .expect("the resumed run trains on the changed folder");
    assert_eq!(
        images,
        Some(12),
        "the kept set has the folder's twelve images"
    );
    assert_eq!(resumed.epochs_completed, 2);
    assert!(out.join("model.safetensors").exists());
}
