//! Files that leave the engine: trained weights in PyTorch's layout with their `config.json`,
//! and reading them back for inference. Every write lands in a temporary file in the destination
//! folder and is renamed over the target ([`crate::support::atomic_file`]), so a failure leaves the
//! previous file whole. A model is written only over a model Spreadout wrote: a folder may hold
//! someone else's `config.json` (a Hugging Face model's), which is refused, never replaced.
//!
//! The tensor files themselves (safetensors, PyTorch's checkpoints, Burn's module tree) are
//! [`crate::tensor_files`]'s; the PyTorch/torchvision naming is `torch_names`'s. This module puts
//! them together into the model files a run folder and an export hold.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::augment::Normalization;
use crate::model::{EmbeddingNet, ModelConfig};

use crate::tensor_files::{
    FileError, NamedTensor, load_module_tensors, parse_tensors, read_header, write_atomically,
    write_tensors,
};

mod torch_names;

use torch_names::burn_tensors_from_torch;
pub use torch_names::{load_pretrained_backbone, torch_key, torch_state_dict, torch_state_from};

/// File name of exported weights inside a run folder.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the model's description inside a run folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights' metadata key holding the model's description: every model Spreadout has written
/// carries it, so it tells Spreadout's weights from anyone else's.
const CONFIG_METADATA: &str = "spreadout_config";

/// What `config.json` says about an exported model: enough to rebuild and feed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedConfig {
    /// Network shape.
    #[serde(flatten)]
    pub model: ModelConfig,
    /// Per-channel normalisation applied to RGB pixels in [0, 1] before the network.
    pub normalization: Normalization,
    /// Temperature the model was trained with.
    pub tau: f32,
    /// How many optimiser steps the weights have seen.
    pub steps: u64,
}

/// Writes `model.safetensors` and `config.json` into `directory`, each atomically, and nothing
/// else: other files there are left as they are.
///
/// # Errors
/// [`FileError::Foreign`] before anything is written where either name holds a file
/// Spreadout did not write ([`ensure_replaceable`]); [`FileError::Io`] naming the file that
/// could not be written.
pub fn export_model(
    directory: &Path,
    model: &EmbeddingNet,
    config: &ExportedConfig,
) -> Result<PathBuf, FileError> {
    write_model(directory, &torch_state_dict(model, config.steps), config)
}

/// [`export_model`] of a state dict already made with [`torch_state_from`].
pub fn write_model(
    directory: &Path,
    state: &[NamedTensor],
    config: &ExportedConfig,
) -> Result<PathBuf, FileError> {
    ensure_replaceable(directory)?;
    let weights = directory.join(MODEL_FILE);
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_owned(), "pt".to_owned());
    metadata.insert(
        CONFIG_METADATA.to_owned(),
        serde_json::to_string(config).expect("config serialises"),
    );
    write_tensors(&weights, state, metadata)?;
    let json = serde_json::to_vec_pretty(config).expect("config serialises");
    write_atomically(&directory.join(CONFIG_FILE), &json)?;
    Ok(weights)
}

/// Checks that writing a model into `directory` replaces nothing but a model Spreadout wrote: its
/// [`CONFIG_FILE`] is absent or reads as an [`ExportedConfig`], its [`MODEL_FILE`] is absent or
/// carries [`CONFIG_METADATA`]. Both have been so since the first release, so every earlier
/// export and run folder passes.
///
/// # Errors
/// [`FileError::Foreign`] naming the first file that is someone else's;
/// [`FileError::Io`] where one cannot be read.
pub fn ensure_replaceable(directory: &Path) -> Result<(), FileError> {
    let absent = |error: &std::io::Error| error.kind() == std::io::ErrorKind::NotFound;
    let config = directory.join(CONFIG_FILE);
    match fs::read(&config) {
        Ok(bytes) if serde_json::from_slice::<ExportedConfig>(&bytes).is_ok() => {}
        Err(error) if absent(&error) => {}
        Err(error) => return Err(FileError::io(&config)(error)),
        Ok(_) => return Err(FileError::Foreign { path: config }),
    }
    // The header alone: the weights can be large, and a run checks before every epoch's write.
    let weights = directory.join(MODEL_FILE);
    match read_header(&weights) {
        Ok((_, metadata)) if metadata.contains_key(CONFIG_METADATA) => Ok(()),
        Err(FileError::Io { source, .. }) if absent(&source) => Ok(()),
        Err(error @ FileError::Io { .. }) => Err(error),
        Ok(_) | Err(_) => Err(FileError::Foreign { path: weights }),
    }
}

/// A model read back from an export, ready for inference.
pub struct LoadedModel {
    /// The network, on the device it was loaded to.
    pub net: EmbeddingNet,
    /// Its `config.json`.
    pub config: ExportedConfig,
    /// xxh3-128 of the weights and the configuration, in hex: what embeddings made with it are
    /// cached under.
    pub digest: String,
}

/// The weights file `path` names: `path` itself, or the `model.safetensors` in it when it is a
/// folder (a run or snapshot folder).
pub fn weights_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.to_owned()
    }
}

/// Loads `model.safetensors` (or a run folder holding one) with the `config.json` beside it.
pub fn load_model(path: &Path, device: &Device) -> Result<LoadedModel, FileError> {
    let files = ModelFiles::read(&weights_file(path))?;
    files.load(device)
}

/// The two files of an exported model, as bytes, with the paths they were read from (named in
/// errors).
struct ModelFiles {
    weights: PathBuf,
    weight_bytes: Vec<u8>,
    config_path: PathBuf,
    config_bytes: Vec<u8>,
}

impl ModelFiles {
    /// Reads the weights file `weights` and the `config.json` beside it.
    fn read(weights: &Path) -> Result<Self, FileError> {
        let config_path = weights.with_file_name(CONFIG_FILE);
        let config_bytes = fs::read(&config_path).map_err(FileError::io(&config_path))?;
        // Read once: parsed for the weights, hashed for the digest.
        let weight_bytes = fs::read(weights).map_err(FileError::io(weights))?;
        Ok(Self {
            weights: weights.to_owned(),
            weight_bytes,
            config_path,
            config_bytes,
        })
    }

    /// The network these files describe, on `device`.
    fn load(&self, device: &Device) -> Result<LoadedModel, FileError> {
        let config: ExportedConfig = serde_json::from_slice(&self.config_bytes)
            .map_err(|error| FileError::format(&self.config_path, error))?;
        let (torch, _) = parse_tensors(&self.weights, &self.weight_bytes)?;
        let net = config.model.init(device);
        let by_burn_path = burn_tensors_from_torch(&net, &torch, &self.weights)?;
        let net = load_module_tensors(net, &by_burn_path, &self.weights)?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.weight_bytes);
        hasher.update(&self.config_bytes);
        Ok(LoadedModel {
            net,
            config,
            digest: format!("{:032x}", hasher.digest128()),
        })
    }
}

/// What reading an exported model back found: proof for a person that the copy is whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The files written: the weights, then `config.json`.
    pub files: [PathBuf; 2],
    /// Files and folders beside them in the destination, left as they were.
    pub others: usize,
    /// The network's shape.
    pub model: ModelConfig,
    /// Tensors in the weights file (with PyTorch's `num_batches_tracked`).
    pub tensors: usize,
    /// Optimiser steps the weights have seen.
    pub steps: u64,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loads back: ResNet-18 width {}, {}-d embedding, {} tensors, {} training steps",
            self.model.width, self.model.dim, self.tensors, self.steps
        )
    }
}

/// Copies the model of `from` (a run or snapshot folder, or a `model.safetensors` with its
/// `config.json` beside it) into the folder `to`, then loads the copy back. Only those two names
/// are written; whatever else `to` holds is left as it was (and counted, for the person).
///
/// The source is read and loaded, and `to` checked ([`ensure_replaceable`]), before anything is
/// written, so a source that is not a whole model leaves an earlier export in `to` as it was, and
/// someone else's `config.json` there is never replaced; each file is then replaced atomically.
/// The check runs on the CPU: it needs no GPU and must not compete with a training run for one.
///
/// # Errors
/// [`FileError::Foreign`] naming a file of `to` that Spreadout did not write; otherwise
/// [`FileError`] naming the file that could not be read, written or loaded.
pub fn copy_model(from: &Path, to: &Path) -> Result<Verified, FileError> {
    let source = ModelFiles::read(&weights_file(from))?;
    let device = Device::flex();
    source.load(&device)?;
    ensure_replaceable(to)?;
    let files = [to.join(MODEL_FILE), to.join(CONFIG_FILE)];
    write_atomically(&files[0], &source.weight_bytes)?;
    write_atomically(&files[1], &source.config_bytes)?;
    let loaded = load_model(&files[0], &device)?;
    let (tensors, _) = read_header(&files[0])?;
    let others = fs::read_dir(to)
        .map_err(FileError::io(to))?
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            name != MODEL_FILE && name != CONFIG_FILE
        })
        .count();
    Ok(Verified {
        files,
        others,
        model: loaded.config.model,
        tensors: tensors.len(),
        steps: loaded.config.steps,
    })
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tensor;

    use super::*;
    use crate::tensor_files::{TensorValues, read_tensors};

    fn config() -> ExportedConfig {
        ExportedConfig {
            model: ModelConfig::resnet18(4, 8, 16),
            normalization: Normalization {
                mean: [0.5, 0.4, 0.3],
                std: [0.2, 0.25, 0.3],
            },
            tau: 0.1,
            steps: 7,
        }
    }

    #[test]
    fn export_then_load_gives_the_same_embeddings() {
        let device = Device::flex();
        let config = config();
        let model = config.model.init(&device);
        let dir = tempfile::tempdir().unwrap();
        export_model(dir.path(), &model, &config).unwrap();
        let loaded = load_model(dir.path(), &device).unwrap();
        assert_eq!(loaded.config, config);
        let (names, metadata) = read_header(&dir.path().join(MODEL_FILE)).unwrap();
        let (tensors, full_metadata) = read_tensors(&dir.path().join(MODEL_FILE)).unwrap();
        assert_eq!(names, tensors.keys().cloned().collect::<Vec<_>>());
        assert_eq!(metadata, full_metadata);
        let images =
            Tensor::<4>::random([2, 3, 16, 16], burn::tensor::Distribution::Default, &device);
        let a: Vec<f32> = model
            .forward(images.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = loaded.net.forward(images).into_data().try_to_vec().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn a_failed_write_leaves_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        // A name of 240 bytes is a valid file, but its temporary sibling (`.NAME.XXXXXX.partial`)
        // passes the 255-byte limit of a name: the write fails before anything is renamed.
        let target = dir.path().join(format!("{}.safetensors", "m".repeat(228)));
        fs::write(&target, b"previous").unwrap();
        assert!(write_atomically(&target, b"new").is_err());
        assert_eq!(fs::read(&target).unwrap(), b"previous");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn loading_rejects_wrong_shapes_and_names_the_file() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let small = config();
        export_model(dir.path(), &small.model.init(&device), &small).unwrap();
        let mut wider = small.clone();
        wider.model.width = 8;
        let json = serde_json::to_vec(&wider).unwrap();
        fs::write(dir.path().join(CONFIG_FILE), json).unwrap();
        let error = load_model(dir.path(), &device)
            .err()
            .expect("shape mismatch");
        let message = error.to_string();
        assert!(
            message.contains("model.safetensors") && message.contains("shape"),
            "{message}"
        );
    }

    #[test]
    fn a_copied_model_loads_back_and_a_bad_source_leaves_the_earlier_copy() {
        let device = Device::flex();
        let config = config();
        let run = tempfile::tempdir().unwrap();
        export_model(run.path(), &config.model.init(&device), &config).unwrap();
        let out = tempfile::tempdir().unwrap();
        let verified = copy_model(run.path(), out.path()).unwrap();
        assert_eq!(
            verified.files,
            [out.path().join(MODEL_FILE), out.path().join(CONFIG_FILE)]
        );
        assert_eq!(
            verified.to_string(),
            "loads back: ResNet-18 width 4, 8-d embedding, 122 tensors, 7 training steps"
        );
        let earlier = fs::read(out.path().join(MODEL_FILE)).unwrap();
        // A source whose weights are not a model: refused before anything is replaced.
        fs::write(run.path().join(MODEL_FILE), b"not weights").unwrap();
        assert!(copy_model(run.path(), out.path()).is_err());
        assert_eq!(fs::read(out.path().join(MODEL_FILE)).unwrap(), earlier);
    }

    #[test]
    fn an_export_replaces_only_files_spreadout_wrote_and_leaves_the_others() {
        let device = Device::flex();
        let config = config();
        let model = config.model.init(&device);
        let run = tempfile::tempdir().unwrap();
        export_model(run.path(), &model, &config).unwrap();
        let refused = |error: FileError, path: PathBuf| {
            let message = error.to_string();
            assert!(
                matches!(&error, FileError::Foreign { path: named } if *named == path),
                "{message}"
            );
            assert!(message.contains("choose an empty folder"), "{message}");
        };

        // A Hugging Face model's folder: its config.json is refused, and nothing is written.
        let hub = tempfile::tempdir().unwrap();
        let foreign = br#"{"architectures": ["BertModel"], "model_type": "bert"}"#;
        fs::write(hub.path().join(CONFIG_FILE), foreign).unwrap();
        refused(
            copy_model(run.path(), hub.path()).unwrap_err(),
            hub.path().join(CONFIG_FILE),
        );
        assert_eq!(fs::read(hub.path().join(CONFIG_FILE)).unwrap(), foreign);
        assert!(!hub.path().join(MODEL_FILE).exists());
        // Weights without Spreadout's description of the model: refused the same way, by the
        // writes a run folder makes too.
        fs::remove_file(hub.path().join(CONFIG_FILE)).unwrap();
        let weights = hub.path().join(MODEL_FILE);
        let scalar = NamedTensor {
            name: "pooler.dense.bias".into(),
            shape: Vec::new(),
            values: TensorValues::F32(vec![0.5]),
        };
        let pt = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
        write_tensors(&weights, &[scalar], pt).unwrap();
        let foreign_weights = fs::read(&weights).unwrap();
        refused(
            export_model(hub.path(), &model, &config).unwrap_err(),
            weights.clone(),
        );
        assert_eq!(fs::read(&weights).unwrap(), foreign_weights);
        assert!(!hub.path().join(CONFIG_FILE).exists());

        // A folder holding other things: only the model's two names are written, the rest
        // counted and left as they were.
        let shared = tempfile::tempdir().unwrap();
        fs::write(shared.path().join("notes.txt"), b"mine").unwrap();
        fs::create_dir(shared.path().join("photos")).unwrap();
        let verified = copy_model(run.path(), shared.path()).unwrap();
        assert_eq!(verified.others, 2);
        let mut names: Vec<_> = fs::read_dir(shared.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["config.json", "model.safetensors", "notes.txt", "photos"]
        );
        assert_eq!(fs::read(shared.path().join("notes.txt")).unwrap(), b"mine");
        // Its own earlier export is replaced, by another copy or by a run's epoch-end write.
        copy_model(run.path(), shared.path()).unwrap();
        export_model(shared.path(), &model, &config).unwrap();
        // So is a run folder written by an old release (its config and metadata have the same
        // shape).
        let old_run = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-bd697c5");
        ensure_replaceable(&old_run).unwrap();
    }
}
