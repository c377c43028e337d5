//! PyTorch's own checkpoint files (`.pth`, `.pt`: `torch.save`'s pickle in a ZIP, the legacy
//! stream or the old TAR), read without Python through `pytorch-reader` (Burn's reader, without
//! Burn), which refuses pickles that would run code and checks every size a file declares. Only
//! the float tensors come out, as [`NamedTensor`]s under their state-dict keys: what a pretrained
//! start takes.

use std::path::Path;

use pytorch_reader::{DType, PytorchReader};

use super::{FileError, NamedTensor, TensorValues, TensorsByName};

/// Keys training scripts nest a state dict under (`{"epoch": …, "state_dict": …}`), and
/// DataParallel's prefix: leading segments every key shares and that are one of these are dropped.
const NESTING_KEYS: [&str; 4] = ["state_dict", "model", "model_state_dict", "module"];

/// Whether `file` is named as a PyTorch checkpoint.
pub fn is_pytorch_file(file: &Path) -> bool {
    file.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "pth" | "pt" | "ckpt"))
}

/// The float tensors of the PyTorch checkpoint `file`, as f32, by state-dict key, with the
/// nesting training scripts add dropped (`state_dict.`, `model.`, DataParallel's `module.`, when
/// every key starts with it). Integer tensors (`num_batches_tracked`) are left out.
///
/// # Errors
/// [`FileError::Format`] naming the file when it is not a checkpoint, is truncated or hostile,
/// or holds no tensor.
pub fn read_pytorch_tensors(file: &Path) -> Result<TensorsByName, FileError> {
    let reader = PytorchReader::new(file).map_err(|error| {
        FileError::format(file, format!("not a readable PyTorch checkpoint: {error}"))
    })?;
    if reader.is_empty() {
        return Err(FileError::format(
            file,
            "a PyTorch checkpoint without tensors",
        ));
    }
    let tensors = reader.into_tensors();
    let mut nesting = 0;
    while let Some(first) = tensors
        .keys()
        .next()
        .and_then(|key| key.split('.').nth(nesting))
        && NESTING_KEYS.contains(&first)
        && tensors
            .keys()
            .all(|key| key.split('.').nth(nesting) == Some(first))
    {
        nesting += 1;
    }
    let mut out = TensorsByName::new();
    for (key, tensor) in tensors {
        let bytes = tensor
            .read()
            .map_err(|error| FileError::format(file, format!("tensor '{key}': {error}")))?;
        // pytorch-reader hands the values over in the host's byte order, so they are the host's
        // words as they stand; `pod_collect_to_vec` copies them into aligned storage.
        let values: Vec<f32> = match tensor.dtype() {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(&bytes)
                .into_iter()
                .map(|value| value as f32)
                .collect(),
            DType::F16 => bytemuck::pod_collect_to_vec::<u8, u16>(&bytes)
                .into_iter()
                .map(|bits| burn::tensor::f16::from_bits(bits).to_f32())
                .collect(),
            DType::BF16 => bytemuck::pod_collect_to_vec::<u8, u16>(&bytes)
                .into_iter()
                .map(|bits| burn::tensor::bf16::from_bits(bits).to_f32())
                .collect(),
            _ => continue,
        };
        let name = key
            .splitn(nesting + 1, '.')
            .last()
            .unwrap_or_default()
            .to_owned();
        out.insert(
            name.clone(),
            NamedTensor {
                name,
                shape: tensor.shape().to_vec(),
                values: TensorValues::F32(values),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pytorch")
            .join(name)
    }

    /// Each float tensor of the fixtures holds `(k · 1000 + i) / 4096` at element `i`, `k` its
    /// position in the state dict (`tests/fixtures/pytorch/make.py`).
    fn expected_first_values(tensors: &TensorsByName) {
        assert!(tensors.contains_key("conv1.weight"), "{:?}", tensors.keys());
        let conv1 = &tensors["conv1.weight"];
        assert_eq!(conv1.shape, vec![1, 3, 7, 7]);
        let TensorValues::F32(values) = &conv1.values else {
            panic!("floats")
        };
        // conv1.weight is the first key: k = 0.
        for (i, value) in values.iter().enumerate() {
            assert_eq!(*value, i as f32 / 4096.0);
        }
        // bn1.weight is the second: k = 1.
        assert_eq!(
            tensors["bn1.weight"].values,
            TensorValues::F32(vec![1000.0 / 4096.0])
        );
        assert!(!tensors.contains_key("bn1.num_batches_tracked"));
        assert_eq!(tensors["fc.weight"].shape, vec![10, 8]);
    }

    #[test]
    fn zip_legacy_and_nested_checkpoints_read_the_same_tensors() {
        let zip = read_pytorch_tensors(&fixture("resnet18-w1.pth")).unwrap();
        expected_first_values(&zip);
        let legacy = read_pytorch_tensors(&fixture("resnet18-w1-legacy.pth")).unwrap();
        assert_eq!(legacy, zip);
        let nested = read_pytorch_tensors(&fixture("nested.pth")).unwrap();
        assert_eq!(nested, zip);
    }

    #[test]
    fn hostile_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let whole = std::fs::read(fixture("resnet18-w1.pth")).unwrap();
        // A pickle that would call os.system: GLOBAL 'os system', then REDUCE.
        let code =
            b"\x80\x02cos\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.".to_vec();
        for (name, bytes) in [
            ("empty.pth", Vec::new()),
            ("truncated.pth", whole[..whole.len() / 2].to_vec()),
            ("garbage.pth", b"this is not a checkpoint at all".repeat(40)),
            ("code.pth", code),
        ] {
            let file = dir.path().join(name);
            std::fs::write(&file, bytes).unwrap();
            let error = read_pytorch_tensors(&file).unwrap_err().to_string();
            assert!(error.contains(name), "{name}: {error}");
        }
    }
}
