//! Files that leave the engine: trained weights in PyTorch's layout, their `config.json`,
//! embeddings, and the atomic write every one of them goes through.
//!
//! Weights are walked out of the Burn module tree and renamed to the keys of the PyTorch module
//! the README prints (`bn1.weight` for Burn's `bn1.gamma`, `layer2.0.shortcut.0.weight` for
//! `shortcut.conv.weight`, `linear.weight` transposed to `[out, in]`), so the file loads with
//! `strict=True`. Reading goes the same way back. Every write lands in a temporary file in the
//! destination folder and is renamed over the target, so a failure leaves the previous file
//! whole.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::augment::Normalization;
use crate::model::{EmbeddingNet, ModelConfig};

/// File name of exported weights inside a run folder.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the model's description inside a run folder.
pub const CONFIG_FILE: &str = "config.json";

/// Why a file could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not what it should be.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl ExportError {
    pub(crate) fn format(path: &Path, message: impl ToString) -> Self {
        ExportError::Format {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| ExportError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

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

/// A tensor by name, as stored in a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Key in the file.
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Values.
    pub values: TensorValues,
}

/// Element storage of a [`NamedTensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValues {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit integers (PyTorch's `num_batches_tracked`).
    I64(Vec<i64>),
}

impl NamedTensor {
    fn bytes(&self) -> Vec<u8> {
        match &self.values {
            TensorValues::F32(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            TensorValues::I64(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Tensors of a safetensors file by name.
pub type TensorsByName = BTreeMap<String, NamedTensor>;

/// Writes `bytes` to `path` atomically ([`crate::atomic_file::write`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    crate::atomic_file::write(path, bytes).map_err(|source| ExportError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Serialises tensors and string metadata to a safetensors file, atomically.
pub fn write_tensors(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: BTreeMap<String, String>,
) -> Result<(), ExportError> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(NamedTensor::bytes).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(tensor, bytes)| {
            let dtype = match tensor.values {
                TensorValues::F32(_) => Dtype::F32,
                TensorValues::I64(_) => Dtype::I64,
            };
            TensorView::new(dtype, tensor.shape.clone(), bytes)
                .map(|view| (tensor.name.clone(), view))
                .map_err(|error| ExportError::format(path, error))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata: HashMap<String, String> = metadata.into_iter().collect();
    let serialized = safetensors::serialize(views, Some(metadata))
        .map_err(|error| ExportError::format(path, error))?;
    write_atomically(path, &serialized)
}

/// Reads only the header of a safetensors file: its tensor names and string metadata. Cheap for
/// any file size, for callers that need to know what a file is before (or instead of) loading it.
pub fn read_header(path: &Path) -> Result<(Vec<String>, BTreeMap<String, String>), ExportError> {
    use std::io::Read;
    let not_safetensors =
        |why: String| ExportError::format(path, format!("not a safetensors file ({why})"));
    let mut file = fs::File::open(path).map_err(ExportError::io(path))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|e| not_safetensors(e.to_string()))?;
    let length = u64::from_le_bytes(length);
    // The format caps headers at 100 MB; a larger length means this is some other file.
    if length > 100_000_000 {
        return Err(not_safetensors(format!("header length {length}")));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header)
        .map_err(|e| not_safetensors(e.to_string()))?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| not_safetensors(e.to_string()))?;
    let mut names = Vec::new();
    let mut metadata = BTreeMap::new();
    for (key, value) in header {
        if key == "__metadata__" {
            metadata = serde_json::from_value(value).map_err(|e| not_safetensors(e.to_string()))?;
        } else {
            names.push(key);
        }
    }
    Ok((names, metadata))
}

/// Reads every tensor and the metadata of a safetensors file.
pub fn read_tensors(path: &Path) -> Result<(TensorsByName, BTreeMap<String, String>), ExportError> {
    let bytes = fs::read(path).map_err(ExportError::io(path))?;
    parse_tensors(path, &bytes)
}

/// [`read_tensors`] of bytes already read from `path` (named in errors).
fn parse_tensors(
    path: &Path,
    bytes: &[u8],
) -> Result<(TensorsByName, BTreeMap<String, String>), ExportError> {
    let not_safetensors = |error: safetensors::SafeTensorError| {
        ExportError::format(path, format!("not a safetensors file ({error})"))
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
    let metadata = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let file = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let values = match view.dtype() {
            Dtype::F32 => TensorValues::F32(
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            Dtype::I64 => TensorValues::I64(
                view.data()
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("chunk of 8")))
                    .collect(),
            ),
            other => {
                return Err(ExportError::format(
                    path,
                    format!("tensor '{name}' has dtype {other:?}; only F32 and I64 are supported"),
                ));
            }
        };
        let shape = view.shape().to_vec();
        tensors.insert(
            name.clone(),
            NamedTensor {
                name,
                shape,
                values,
            },
        );
    }
    Ok((tensors, metadata))
}

/// The model's parameters and batch-norm statistics under their Burn module paths
/// (`bn1.gamma`, `layer1.0.shortcut.conv.weight`, …), in Burn's own layout.
pub fn module_tensors<M: Module>(module: &M) -> Vec<NamedTensor> {
    let mut collector = Collector::default();
    module.visit(&mut collector);
    if collector.flat.is_empty() {
        return Vec::new();
    }
    // One read from the device for the whole module instead of one per tensor.
    let values: Vec<f32> = Tensor::cat(collector.flat, 0)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("parameters are floats");
    let mut rest = values.as_slice();
    collector
        .named
        .into_iter()
        .map(|(name, shape)| {
            let (values, tail) = rest.split_at(shape.iter().product());
            rest = tail;
            NamedTensor {
                name,
                shape,
                values: TensorValues::F32(values.to_vec()),
            }
        })
        .collect()
}

/// Replaces the module's tensors by the ones named in `tensors` (Burn paths, Burn layout).
/// Every tensor of the module must be present with the right shape.
pub fn load_module_tensors<M: Module>(
    module: M,
    tensors: &BTreeMap<String, NamedTensor>,
    source: &Path,
) -> Result<M, ExportError> {
    let mut loader = Loader {
        tensors,
        path: Vec::new(),
        error: None,
    };
    let module = module.map(&mut loader);
    match loader.error {
        Some(message) => Err(ExportError::format(source, message)),
        None => Ok(module),
    }
}

/// PyTorch key for a Burn module path of [`EmbeddingNet`].
pub fn torch_key(burn_path: &str) -> String {
    burn_path
        .split('.')
        .map(|part| match part {
            "gamma" => "weight",
            "beta" => "bias",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(".")
        .replace("shortcut.conv.", "shortcut.0.")
        .replace("shortcut.bn.", "shortcut.1.")
}

/// The network's weights under PyTorch keys and in PyTorch's layout, with
/// `num_batches_tracked` = `steps` for every batch norm.
pub fn torch_state_dict(model: &EmbeddingNet, steps: u64) -> Vec<NamedTensor> {
    torch_state_from(module_tensors(model), steps)
}

/// [`torch_state_dict`] of tensors already read from the device with [`module_tensors`].
pub fn torch_state_from(module_tensors: Vec<NamedTensor>, steps: u64) -> Vec<NamedTensor> {
    let mut state = Vec::new();
    for tensor in module_tensors {
        let name = torch_key(&tensor.name);
        if let Some(prefix) = name.strip_suffix(".running_var") {
            state.push(NamedTensor {
                name: format!("{prefix}.num_batches_tracked"),
                shape: Vec::new(),
                values: TensorValues::I64(vec![steps as i64]),
            });
        }
        state.push(if name == "linear.weight" {
            transpose(NamedTensor { name, ..tensor })
        } else {
            NamedTensor { name, ..tensor }
        });
    }
    state
}

fn transpose(tensor: NamedTensor) -> NamedTensor {
    let [rows, cols] = tensor.shape[..] else {
        panic!("transpose expects a matrix, got shape {:?}", tensor.shape);
    };
    let TensorValues::F32(values) = &tensor.values else {
        panic!("transpose expects f32 values");
    };
    let transposed = (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect();
    NamedTensor {
        shape: vec![cols, rows],
        values: TensorValues::F32(transposed),
        ..tensor
    }
}

/// The key torchvision's ResNet-18 gives the tensor of Burn path `burn_path`, or `None` for the
/// embedding head (torchvision's `fc` is a classifier; a pretrained start replaces it).
fn torchvision_key(burn_path: &str) -> Option<String> {
    let key = torch_key(burn_path);
    (!key.starts_with("linear.")).then(|| {
        key.replace("shortcut.0.", "downsample.0.")
            .replace("shortcut.1.", "downsample.1.")
    })
}

/// Starts `net` from pretrained weights under torchvision's ResNet-18 names (`conv1`, `bn1`,
/// `layerN.M.…`, `downsample.0/1`; `fc` and `num_batches_tracked` are ignored) in a safetensors
/// file: every backbone tensor is replaced, the embedding head keeps its fresh initialisation.
/// A file without one of the tensors, or with one of another shape (another architecture,
/// width or stem), is refused naming the first that does not fit.
pub fn load_pretrained_backbone(
    net: EmbeddingNet,
    file: &Path,
) -> Result<EmbeddingNet, ExportError> {
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if matches!(extension, "pth" | "pt" | "bin" | "ckpt") {
        return Err(ExportError::format(
            file,
            "a PyTorch pickle checkpoint; Spreadout reads the same weights as safetensors: python -c \"import torch, safetensors.torch as st; st.save_file(torch.load('FILE.pth'), 'FILE.safetensors')\"",
        ));
    }
    let (stored, _) = read_tensors(file)?;
    let mut replaced = BTreeMap::new();
    let fresh = module_tensors(&net);
    for tensor in &fresh {
        let Some(key) = torchvision_key(&tensor.name) else {
            replaced.insert(tensor.name.clone(), tensor.clone());
            continue;
        };
        let found = stored.get(&key).ok_or_else(|| {
            ExportError::format(
                file,
                format!("no tensor '{key}': not a torchvision ResNet-18 state dict"),
            )
        })?;
        if found.shape != tensor.shape {
            return Err(ExportError::format(
                file,
                format!(
                    "'{key}' is {:?} but this network needs {:?}: another architecture, width or stem (torchvision's ResNet-18 is width 64 with the ImageNet stem, i.e. --width 64 and --image-size above 64)",
                    found.shape, tensor.shape
                ),
            ));
        }
        replaced.insert(
            tensor.name.clone(),
            NamedTensor {
                name: tensor.name.clone(),
                ..found.clone()
            },
        );
    }
    load_module_tensors(net, &replaced, file)
}

/// Writes `model.safetensors` and `config.json` into `directory`, each atomically.
pub fn export_model(
    directory: &Path,
    model: &EmbeddingNet,
    config: &ExportedConfig,
) -> Result<PathBuf, ExportError> {
    write_model(directory, &torch_state_dict(model, config.steps), config)
}

/// [`export_model`] of a state dict already made with [`torch_state_from`].
pub fn write_model(
    directory: &Path,
    state: &[NamedTensor],
    config: &ExportedConfig,
) -> Result<PathBuf, ExportError> {
    let weights = directory.join(MODEL_FILE);
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_owned(), "pt".to_owned());
    metadata.insert(
        "spreadout_config".to_owned(),
        serde_json::to_string(config).expect("config serialises"),
    );
    write_tensors(&weights, state, metadata)?;
    let json = serde_json::to_vec_pretty(config).expect("config serialises");
    write_atomically(&directory.join(CONFIG_FILE), &json)?;
    Ok(weights)
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

/// Loads `model.safetensors` (or a run folder holding one) with the `config.json` beside it.
pub fn load_model(path: &Path, device: &Device) -> Result<LoadedModel, ExportError> {
    let weights = if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.to_owned()
    };
    let config_path = weights.with_file_name(CONFIG_FILE);
    let config_bytes = fs::read(&config_path).map_err(ExportError::io(&config_path))?;
    let config: ExportedConfig = serde_json::from_slice(&config_bytes)
        .map_err(|error| ExportError::format(&config_path, error))?;
    // Read once: parsed for the weights, hashed for the digest.
    let weight_bytes = fs::read(&weights).map_err(ExportError::io(&weights))?;
    let (torch, _) = parse_tensors(&weights, &weight_bytes)?;
    let net = config.model.init(device);
    // Map PyTorch keys back to Burn paths by exporting the fresh model's names.
    let mut by_burn_path = BTreeMap::new();
    for tensor in module_tensors(&net) {
        let key = torch_key(&tensor.name);
        let stored = torch
            .get(&key)
            .ok_or_else(|| ExportError::format(&weights, format!("missing tensor '{key}'")))?;
        let stored = if key == "linear.weight" {
            transpose(stored.clone())
        } else {
            stored.clone()
        };
        by_burn_path.insert(
            tensor.name.clone(),
            NamedTensor {
                name: tensor.name,
                ..stored
            },
        );
    }
    let net = load_module_tensors(net, &by_burn_path, &weights)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&weight_bytes);
    hasher.update(&config_bytes);
    Ok(LoadedModel {
        net,
        config,
        digest: format!("{:032x}", hasher.digest128()),
    })
}

#[derive(Default)]
struct Collector {
    path: Vec<String>,
    /// Name and shape of each tensor, in visiting order.
    named: Vec<(String, Vec<usize>)>,
    /// The same tensors, flattened, still on their device.
    flat: Vec<Tensor<1>>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val().detach();
        let shape = tensor.dims().to_vec();
        self.flat
            .push(tensor.reshape([shape.iter().product::<usize>()]));
        self.named.push((self.path.join("."), shape));
    }
}

struct Loader<'a> {
    tensors: &'a BTreeMap<String, NamedTensor>,
    path: Vec<String>,
    error: Option<String>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        let stored = match self.tensors.get(&name) {
            Some(stored) => stored,
            None => {
                self.error.get_or_insert(format!("missing tensor '{name}'"));
                return param;
            }
        };
        let TensorValues::F32(values) = &stored.values else {
            self.error
                .get_or_insert(format!("tensor '{name}' is not f32"));
            return param;
        };
        let expected = param.val().dims().to_vec();
        if stored.shape != expected {
            self.error.get_or_insert(format!(
                "tensor '{name}' has shape {:?}, the model needs {expected:?}",
                stored.shape
            ));
            return param;
        }
        let data = TensorData::new(values.clone(), stored.shape.clone());
        param.map(|current| {
            let loaded = Tensor::from_data(data, &current.device());
            if current.is_require_grad() {
                loaded.require_grad()
            } else {
                loaded
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A torchvision-style ResNet-18 state dict of a `width` network with the ImageNet stem, as
    /// torchvision names it: `downsample.*`, an `fc` classifier, `num_batches_tracked`.
    fn torchvision_file(dir: &Path, width: usize, seed: u64) -> (PathBuf, Vec<NamedTensor>) {
        let device = Device::flex();
        let net = ModelConfig::resnet18(width, 8, 96).init_seeded(&device, seed);
        let mut state: Vec<NamedTensor> = torch_state_dict(&net, 7)
            .into_iter()
            .filter(|t| !t.name.starts_with("linear."))
            .map(|t| NamedTensor {
                name: t.name.replace("shortcut.", "downsample."),
                ..t
            })
            .collect();
        state.push(NamedTensor {
            name: "fc.weight".into(),
            shape: vec![1000, 8 * width],
            values: TensorValues::F32(vec![0.5; 1000 * 8 * width]),
        });
        let file = dir.join(format!("resnet18-w{width}.safetensors"));
        write_tensors(&file, &state, BTreeMap::new()).unwrap();
        (file, module_tensors(&net))
    }

    #[test]
    fn a_torchvision_state_dict_starts_the_backbone_and_a_fresh_head() {
        let dir = tempfile::tempdir().unwrap();
        let (file, source) = torchvision_file(dir.path(), 2, 1);
        let device = Device::flex();
        let fresh = ModelConfig::resnet18(2, 8, 96).init_seeded(&device, 2);
        let fresh_head: Vec<NamedTensor> = module_tensors(&fresh)
            .into_iter()
            .filter(|t| t.name.starts_with("linear."))
            .collect();
        let loaded = module_tensors(&load_pretrained_backbone(fresh, &file).unwrap());
        for tensor in &loaded {
            let expected = if tensor.name.starts_with("linear.") {
                fresh_head.iter().find(|t| t.name == tensor.name).unwrap()
            } else {
                source.iter().find(|t| t.name == tensor.name).unwrap()
            };
            assert_eq!(tensor.values, expected.values, "{}", tensor.name);
        }

        // Another width: refused, naming the first tensor that does not fit.
        let wider = ModelConfig::resnet18(4, 8, 96).init(&device);
        let error = load_pretrained_backbone(wider, &file)
            .unwrap_err()
            .to_string();
        assert!(error.contains("'conv1.weight' is [2, 3, 7, 7]"), "{error}");
        // The CIFAR stem (3×3) does not take ImageNet weights either.
        let cifar = ModelConfig::resnet18(2, 8, 32).init(&device);
        let error = load_pretrained_backbone(cifar, &file)
            .unwrap_err()
            .to_string();
        assert!(error.contains("conv1.weight"), "{error}");
        // A pickle checkpoint gets the conversion command.
        let pth = dir.path().join("resnet18-f37072fd.pth");
        std::fs::write(&pth, b"PK").unwrap();
        let net = ModelConfig::resnet18(2, 8, 96).init(&device);
        let error = load_pretrained_backbone(net, &pth).unwrap_err().to_string();
        assert!(error.contains("safetensors"), "{error}");
    }
    use crate::augment::Normalization;

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
    fn keys_follow_the_pytorch_module() {
        let model = config().model.init(&Device::flex());
        let state = torch_state_dict(&model, 3);
        let names: Vec<&str> = state.iter().map(|t| t.name.as_str()).collect();
        for expected in [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "bn1.num_batches_tracked",
            "layer1.0.conv1.weight",
            "layer1.1.bn2.running_var",
            "layer2.0.shortcut.0.weight",
            "layer2.0.shortcut.1.weight",
            "layer4.1.conv2.weight",
            "linear.weight",
            "linear.bias",
        ] {
            assert!(names.contains(&expected), "missing {expected} in {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("gamma") || n.contains("layer1.0.shortcut"))
        );
        // 20 convolutions, 20 batch norms × 5 entries, linear weight and bias.
        assert_eq!(names.len(), 20 + 20 * 5 + 2);
        let linear = state.iter().find(|t| t.name == "linear.weight").unwrap();
        assert_eq!(linear.shape, vec![8, 32], "PyTorch stores [out, in]");
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
        let target = dir.path().join("model.safetensors");
        write_atomically(&target, b"previous").unwrap();
        // A directory where the temporary file should go makes the write fail midway.
        let blocker = dir
            .path()
            .join(format!(".model.safetensors.{}.partial", std::process::id()));
        fs::create_dir(&blocker).unwrap();
        assert!(write_atomically(&target, b"new").is_err());
        assert_eq!(fs::read(&target).unwrap(), b"previous");
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
}
