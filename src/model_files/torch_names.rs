//! PyTorch's names and layout for the network's tensors: the keys of the module docs/pytorch.md
//! prints (`bn1.weight` for Burn's `bn1.gamma`, `layer2.0.shortcut.0.weight` for
//! `shortcut.conv.weight`, `linear.weight` transposed to `[out, in]`), so an export loads with
//! `strict=True`, and the same way back; and torchvision's ResNet-18 names (`downsample.*`), so
//! `--init` can start from its pretrained weights. Kept apart from the file format because these
//! rules follow the Python side, not safetensors.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::EmbeddingNet;
use crate::tensor_files::{
    FileError, NamedTensor, TensorValues, TensorsByName, is_pytorch_file, load_module_tensors,
    module_tensors, read_pytorch_tensors, read_tensors,
};

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
                .expect("a linear layer's weight is an f32 matrix")
        } else {
            NamedTensor { name, ..tensor }
        });
    }
    state
}

/// The tensors of a state dict under PyTorch keys (`torch`, read from `source`) under the Burn
/// paths of `net` and in Burn's layout, ready for [`load_module_tensors`]: the inverse of
/// [`torch_state_from`] (`num_batches_tracked` is not needed back).
pub(super) fn burn_tensors_from_torch(
    net: &EmbeddingNet,
    torch: &TensorsByName,
    source: &Path,
) -> Result<TensorsByName, FileError> {
    // Map PyTorch keys back to Burn paths by exporting the fresh model's names.
    let mut by_burn_path = BTreeMap::new();
    for tensor in module_tensors(net) {
        let key = torch_key(&tensor.name);
        let stored = torch
            .get(&key)
            .ok_or_else(|| FileError::format(source, format!("missing tensor '{key}'")))?;
        let stored = if key == "linear.weight" {
            // Before the shapes are compared: a file may hold anything under this name.
            transpose(stored.clone()).map_err(|message| FileError::format(source, message))?
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
    Ok(by_burn_path)
}

/// A matrix of f32 transposed (PyTorch's linear layers store `[out, in]`, Burn's `[in, out]`);
/// why not, for anything else.
fn transpose(tensor: NamedTensor) -> Result<NamedTensor, String> {
    let [rows, cols] = tensor.shape[..] else {
        return Err(format!(
            "tensor '{}' has shape {:?}; a linear layer's weight is a matrix",
            tensor.name, tensor.shape
        ));
    };
    let TensorValues::F32(values) = &tensor.values else {
        return Err(format!(
            "tensor '{}' is not f32; a linear layer's weight is",
            tensor.name
        ));
    };
    let transposed = (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect();
    Ok(NamedTensor {
        shape: vec![cols, rows],
        values: TensorValues::F32(transposed),
        ..tensor
    })
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
/// file or a PyTorch checkpoint (`.pth`, `.pt`, `.ckpt`: torchvision's own downloads): every backbone tensor is replaced, the embedding head keeps its fresh initialisation.
/// A file without one of the tensors, or with one of another shape (another architecture,
/// width or stem), is refused naming the first that does not fit.
pub fn load_pretrained_backbone(net: EmbeddingNet, file: &Path) -> Result<EmbeddingNet, FileError> {
    let stored = if is_pytorch_file(file) {
        read_pytorch_tensors(file)?
    } else {
        read_tensors(file)?.0
    };
    let mut replaced = BTreeMap::new();
    let fresh = module_tensors(&net);
    for tensor in &fresh {
        let Some(key) = torchvision_key(&tensor.name) else {
            replaced.insert(tensor.name.clone(), tensor.clone());
            continue;
        };
        let found = stored.get(&key).ok_or_else(|| {
            FileError::format(
                file,
                format!("no tensor '{key}': not a torchvision ResNet-18 state dict"),
            )
        })?;
        if found.shape != tensor.shape {
            return Err(FileError::format(
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use burn::tensor::Device;

    use super::*;
    use crate::model::ModelConfig;
    use crate::model_files::write_tensors;

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
        // A broken pickle checkpoint is named, not converted.
        let pth = dir.path().join("resnet18-f37072fd.pth");
        std::fs::write(&pth, b"PK").unwrap();
        let net = ModelConfig::resnet18(2, 8, 96).init(&device);
        let error = load_pretrained_backbone(net, &pth).unwrap_err().to_string();
        assert!(error.contains("resnet18-f37072fd.pth"), "{error}");
    }

    /// torchvision's layout written by PyTorch itself (`tests/fixtures/pytorch/make.py`: width 1,
    /// element `i` of the `k`-th tensor `(k · 1000 + i) / 4096`) starts the backbone.
    #[test]
    fn a_pytorch_checkpoint_starts_the_backbone() {
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch/resnet18-w1.pth");
        let stored = crate::tensor_files::read_pytorch_tensors(&file).unwrap();
        let device = Device::flex();
        let fresh = ModelConfig::resnet18(1, 8, 96).init_seeded(&device, 2);
        let loaded = module_tensors(&load_pretrained_backbone(fresh, &file).unwrap());
        let mut compared = 0;
        for tensor in &loaded {
            if let Some(key) = torchvision_key(&tensor.name) {
                // Burn's linear layers are transposed, but the backbone holds none.
                assert_eq!(tensor.values, stored[&key].values, "{}", tensor.name);
                compared += 1;
            }
        }
        assert!(compared > 60, "{compared} tensors compared");
    }
    #[test]
    fn a_linear_weight_that_is_not_an_f32_matrix_is_a_format_error() {
        let device = Device::flex();
        let net = ModelConfig::resnet18(4, 8, 16).init(&device);
        let file = Path::new("foreign/model.safetensors");
        let with_linear = |linear: NamedTensor| -> TensorsByName {
            torch_state_dict(&net, 0)
                .into_iter()
                .map(|t| {
                    if t.name == "linear.weight" {
                        linear.clone()
                    } else {
                        t
                    }
                })
                .map(|t| (t.name.clone(), t))
                .collect()
        };
        for (linear, why) in [
            (
                NamedTensor {
                    name: "linear.weight".into(),
                    shape: vec![2, 4, 8],
                    values: TensorValues::F32(vec![0.0; 64]),
                },
                "has shape [2, 4, 8]",
            ),
            (
                NamedTensor {
                    name: "linear.weight".into(),
                    shape: vec![8, 32],
                    values: TensorValues::I64(vec![0; 256]),
                },
                "is not f32",
            ),
        ] {
            let error = burn_tensors_from_torch(&net, &with_linear(linear), file).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, FileError::Format { .. }), "{message}");
            assert!(
                message.contains("foreign/model.safetensors") && message.contains(why),
                "{message}"
            );
        }
    }

    #[test]
    fn keys_follow_the_pytorch_module() {
        let model = ModelConfig::resnet18(4, 8, 16).init(&Device::flex());
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
}
