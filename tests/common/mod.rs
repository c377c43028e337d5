//! What the engine's two end-to-end test binaries (`tests/it/`, `tests/serving/`) share: small
//! generated data, a network small enough for the CPU backend to train in moments, and a run
//! request over them.

use std::path::Path;

use spreadout::demo::{self, DemoFolders, DemoSpec};
use spreadout::device::DeviceChoice;
use spreadout::train::{TrainConfig, TrainRequest};

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
    TrainRequest {
        config,
        train_dir: folders.train.clone(),
        eval_train_dir: None,
        eval_test_dir: Some(folders.test.clone()),
        out: out.to_owned(),
        start: spreadout::train::Start::Fresh,
        device: DeviceChoice::Cpu,
        cache_dir: Some(out.with_file_name("image-cache")),
        accept_changed_folder: false,
        stop_after_epoch: None,
        init_weights: None,
    }
}
