//! What the engine's two end-to-end test binaries (`tests/it/`, `tests/serving/`) share: small
//! generated data, a network small enough for the CPU backend to train in moments, and a run
//! request over them.

use std::path::Path;

use spreadout::device::DeviceChoice;
use spreadout::lab::demo::{self, DemoFolders, DemoSpec};
use spreadout::train::{ResumeOverrides, TrainConfig, TrainRequest};

/// Small 16 px data and a width-4 network: fast runs for tests about the loop's mechanics.
pub fn tiny_data(dir: &Path, classes: usize, train_per_class: usize, seed: u64) -> DemoFolders {
    let spec = DemoSpec {
        classes,
        train_per_class,
        test_per_class: 4,
        size: 16,
        seed,
    };
    demo::generate(&dir.join("data"), &spec).expect("demo data")
}

pub fn tiny_config(epochs: usize, batch_size: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size,
        image_size: 16,
        width: 4,
        dim: 16,
        knn_k: 5,
        ..TrainConfig::default()
    }
}

/// A fresh run of `config` on the CPU, on `folders`, into `out`.
pub fn request(folders: &DemoFolders, out: &Path, config: TrainConfig) -> TrainRequest {
    TrainRequest::new(config, folders.train.clone(), out.to_owned())
        .evaluated_on(None, Some(folders.test.clone()))
        .on(DeviceChoice::Cpu)
        .with_cache_dir(Some(out.with_file_name("image-cache")))
}

/// The run in `out` resumed as the CLI and the app resume it ([`TrainRequest::resume`]), on
/// `device` and through [`request`]'s cache.
pub fn resumed_on(out: &Path, device: DeviceChoice) -> TrainRequest {
    TrainRequest::resume(
        out,
        ResumeOverrides {
            device: Some(device),
            cache_dir: Some(out.with_file_name("image-cache")),
            ..ResumeOverrides::default()
        },
    )
    .unwrap_or_else(|error| panic!("resuming {}: {error}", out.display()))
    .request
}
