//! The safetensors files themselves: tensors by name in plain host memory ([`NamedTensor`]), and
//! reading and writing them. Everything the engine keeps on disk as tensors (exported models,
//! checkpoints, embeddings) goes through here, so the format's parsing and validation is the
//! `safetensors` crate's in one place, and every write is atomic.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use safetensors::tensor::{Metadata, TensorView};
use safetensors::{Dtype, SafeTensors};

use super::FileError;

/// The safetensors format caps headers at 100 MB (the crate's own limit, which it does not
/// export); a larger length means the file is something else.
const MAX_HEADER_BYTES: u64 = 100_000_000;

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

/// Writes `bytes` to `path` atomically ([`crate::support::atomic_file::write`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    crate::support::atomic_file::write(path, bytes).map_err(FileError::io(path))
}

/// Serialises tensors and string metadata to a safetensors file, atomically.
pub fn write_tensors(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: BTreeMap<String, String>,
) -> Result<(), FileError> {
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
                .map_err(|error| FileError::format(path, error))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata: HashMap<String, String> = metadata.into_iter().collect();
    let serialized = safetensors::serialize(views, Some(metadata))
        .map_err(|error| FileError::format(path, error))?;
    write_atomically(path, &serialized)
}

/// Reads only the header of a safetensors file: its tensor names (sorted) and string metadata.
/// Cheap for any file size, for callers that need to know what a file is before (or instead of)
/// loading it. The crate parses only whole files, so the header's bytes are read here and handed
/// to its [`Metadata`] parser, which validates names, dtypes and offsets as a full read would.
pub fn read_header(path: &Path) -> Result<(Vec<String>, BTreeMap<String, String>), FileError> {
    use std::io::Read;
    let not_safetensors =
        |why: String| FileError::format(path, format!("not a safetensors file ({why})"));
    let mut file = fs::File::open(path).map_err(FileError::io(path))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|e| not_safetensors(e.to_string()))?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        return Err(not_safetensors(format!("header length {length}")));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header)
        .map_err(|e| not_safetensors(e.to_string()))?;
    let header: Metadata =
        serde_json::from_slice(&header).map_err(|e| not_safetensors(e.to_string()))?;
    let mut names: Vec<String> = header.tensors().into_keys().collect();
    names.sort_unstable();
    let metadata = string_metadata(&header);
    Ok((names, metadata))
}

/// A header's `__metadata__` strings, sorted by key (none when it has none).
fn string_metadata(header: &Metadata) -> BTreeMap<String, String> {
    header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Reads every tensor and the metadata of a safetensors file.
pub fn read_tensors(path: &Path) -> Result<(TensorsByName, BTreeMap<String, String>), FileError> {
    let bytes = fs::read(path).map_err(FileError::io(path))?;
    parse_tensors(path, &bytes)
}

/// [`read_tensors`] of bytes already read from `path` (named in errors).
pub fn parse_tensors(
    path: &Path,
    bytes: &[u8],
) -> Result<(TensorsByName, BTreeMap<String, String>), FileError> {
    let not_safetensors = |error: safetensors::SafeTensorError| {
        FileError::format(path, format!("not a safetensors file ({error})"))
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
    let metadata = string_metadata(&header);
    let file = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        // The format stores little-endian words whatever the host: collected as integers into
        // aligned storage (a tensor's data need not be aligned in the file), then read as
        // little-endian, which costs nothing on a little-endian host.
        let values = match view.dtype() {
            Dtype::F32 => TensorValues::F32(
                bytemuck::pod_collect_to_vec::<u8, u32>(view.data())
                    .into_iter()
                    .map(|word| f32::from_bits(u32::from_le(word)))
                    .collect(),
            ),
            Dtype::I64 => TensorValues::I64(
                bytemuck::pod_collect_to_vec::<u8, i64>(view.data())
                    .into_iter()
                    .map(i64::from_le)
                    .collect(),
            ),
            other => {
                return Err(FileError::format(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_alone_gives_what_the_whole_file_gives() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.safetensors");
        let tensors = [
            NamedTensor {
                name: "b".into(),
                shape: vec![2, 2],
                values: TensorValues::F32(vec![1.0, 2.0, 3.0, 4.0]),
            },
            NamedTensor {
                name: "a".into(),
                shape: Vec::new(),
                values: TensorValues::I64(vec![7]),
            },
        ];
        let metadata = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
        write_tensors(&file, &tensors, metadata.clone()).unwrap();
        let (names, header_metadata) = read_header(&file).unwrap();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(header_metadata, metadata);
        let (read, _) = read_tensors(&file).unwrap();
        assert_eq!(read["b"], tensors[0]);
        assert_eq!(read["a"], tensors[1]);
        // Something else (a JPEG, a pickle) is refused as not safetensors.
        fs::write(&file, b"\xff\xd8\xff\xe0 not a tensor file").unwrap();
        let error = read_header(&file).unwrap_err().to_string();
        assert!(error.contains("not a safetensors file"), "{error}");
    }
}
