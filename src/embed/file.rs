//! The embeddings file: what `spreadout embed` writes ([`EmbeddedFolder::write`]) and what a query
//! or `spreadout eval` reads back ([`EmbeddingsFile`]), so the format has one home.

use std::path::{Path, PathBuf};

use super::EmbeddedFolder;
use crate::tensor_files;
use crate::tensor_files::FileError;

/// The names an embeddings file is written under: tensor `embeddings` `[n, dim]`, metadata
/// `paths` (a JSON list of the files, row order) and `model` (the model file that made it), both
/// as [`crate::support::paths::to_text`] writes them.
const EMBEDDINGS: &str = "embeddings";
const PATHS: &str = "paths";
const MODEL: &str = "model";

impl EmbeddedFolder {
    /// Writes the embeddings as safetensors ([`EmbeddingsFile`] reads them back). Atomic: a
    /// failed write leaves any previous file intact.
    ///
    /// # Errors
    /// [`FileError`] naming the file.
    pub fn write(&self, out: &Path, model: &Path) -> Result<(), FileError> {
        let paths: Vec<String> = self
            .set
            .entries
            .iter()
            .map(|e| crate::support::paths::to_text(&e.path).into_owned())
            .collect();
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert(
            PATHS.to_owned(),
            serde_json::to_string(&paths).expect("paths serialise"),
        );
        // Absolute, so that a query from outside finds the model wherever it is run from.
        let model = crate::support::paths::real(model);
        metadata.insert(
            MODEL.to_owned(),
            crate::support::paths::to_text(&model).into_owned(),
        );
        tensor_files::write_tensors(
            out,
            &[tensor_files::NamedTensor {
                name: EMBEDDINGS.to_owned(),
                shape: vec![self.set.entries.len(), self.dim],
                values: tensor_files::TensorValues::F32(self.embeddings.clone()),
            }],
            metadata,
        )
    }
}

/// An embeddings file read back: what [`EmbeddedFolder::write`] wrote, without the images.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsFile {
    /// Row-major `paths.len() × dim` embeddings.
    pub embeddings: Vec<f32>,
    /// Embedding dimension.
    pub dim: usize,
    /// The file of each row.
    pub paths: Vec<PathBuf>,
    /// The model file that made the embeddings.
    pub model: PathBuf,
}

impl EmbeddingsFile {
    /// Whether `path` is a safetensors file holding embeddings (rather than, say, a model).
    pub fn is_one(path: &Path) -> bool {
        path.is_file()
            && tensor_files::read_header(path)
                .is_ok_and(|(names, _)| names.iter().any(|name| name == EMBEDDINGS))
    }

    /// Reads an embeddings file.
    ///
    /// # Errors
    /// [`FileError`] naming the file when it cannot be read or is not an embeddings file.
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let (mut tensors, metadata) = tensor_files::read_tensors(path)?;
        let missing =
            |what: &str| FileError::format(path, format!("no {what}; not an embeddings file"));
        let stored = tensors
            .remove(EMBEDDINGS)
            .ok_or_else(|| missing("'embeddings' tensor"))?;
        let tensor_files::TensorValues::F32(embeddings) = stored.values else {
            return Err(FileError::format(path, "the embeddings are not f32"));
        };
        let [rows, dim] = stored.shape[..] else {
            return Err(FileError::format(path, "the embeddings are not a matrix"));
        };
        let paths: Vec<String> =
            serde_json::from_str(metadata.get(PATHS).ok_or_else(|| missing("file list"))?)
                .map_err(|error| FileError::format(path, format!("the file list: {error}")))?;
        if paths.len() != rows {
            return Err(FileError::format(
                path,
                format!("{} files listed for {rows} embeddings", paths.len()),
            ));
        }
        Ok(Self {
            embeddings,
            dim,
            paths: paths
                .iter()
                .map(|text| crate::support::paths::from_text(text))
                .collect(),
            model: crate::support::paths::from_text(
                metadata.get(MODEL).ok_or_else(|| missing("model"))?,
            ),
        })
    }
}
