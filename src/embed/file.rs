//! The embeddings file: what `spreadout embed` writes ([`EmbeddedFolder::write`]) and what a query
//! or `spreadout eval` reads back ([`EmbeddingsFile`]), so the format has one home.

use std::path::{Path, PathBuf};

use super::EmbeddedFolder;
use crate::export::{self, ExportError};

/// The names an embeddings file is written under: tensor `embeddings` `[n, dim]`, metadata
/// `paths` (a JSON list of the files, row order) and `model` (the model file that made it), both
/// as [`crate::paths::to_text`] writes them.
const EMBEDDINGS: &str = "embeddings";
const PATHS: &str = "paths";
const MODEL: &str = "model";

impl EmbeddedFolder {
    /// Writes the embeddings as safetensors ([`EmbeddingsFile`] reads them back). Atomic: a
    /// failed write leaves any previous file intact.
    ///
    /// # Errors
    /// [`ExportError`] naming the file.
    pub fn write(&self, out: &Path, model: &Path) -> Result<(), ExportError> {
        let paths: Vec<String> = self
            .set
            .entries
            .iter()
            .map(|e| crate::paths::to_text(&e.path).into_owned())
            .collect();
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert(
            PATHS.to_owned(),
            serde_json::to_string(&paths).expect("paths serialise"),
        );
        // Absolute, so that a query from outside finds the model wherever it is run from.
        let model = crate::paths::real(model);
        metadata.insert(MODEL.to_owned(), crate::paths::to_text(&model).into_owned());
        export::write_tensors(
            out,
            &[export::NamedTensor {
                name: EMBEDDINGS.to_owned(),
                shape: vec![self.set.entries.len(), self.dim],
                values: export::TensorValues::F32(self.embeddings.clone()),
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
            && export::read_header(path)
                .is_ok_and(|(names, _)| names.iter().any(|name| name == EMBEDDINGS))
    }

    /// Reads an embeddings file.
    ///
    /// # Errors
    /// [`ExportError`] naming the file when it cannot be read or is not an embeddings file.
    pub fn read(path: &Path) -> Result<Self, ExportError> {
        let (mut tensors, metadata) = export::read_tensors(path)?;
        let missing =
            |what: &str| ExportError::format(path, format!("no {what}; not an embeddings file"));
        let stored = tensors
            .remove(EMBEDDINGS)
            .ok_or_else(|| missing("'embeddings' tensor"))?;
        let export::TensorValues::F32(embeddings) = stored.values else {
            return Err(ExportError::format(path, "the embeddings are not f32"));
        };
        let [rows, dim] = stored.shape[..] else {
            return Err(ExportError::format(path, "the embeddings are not a matrix"));
        };
        let paths: Vec<String> =
            serde_json::from_str(metadata.get(PATHS).ok_or_else(|| missing("file list"))?)
                .map_err(|error| ExportError::format(path, format!("the file list: {error}")))?;
        if paths.len() != rows {
            return Err(ExportError::format(
                path,
                format!("{} files listed for {rows} embeddings", paths.len()),
            ));
        }
        Ok(Self {
            embeddings,
            dim,
            paths: paths
                .iter()
                .map(|text| crate::paths::from_text(text))
                .collect(),
            model: crate::paths::from_text(metadata.get(MODEL).ok_or_else(|| missing("model"))?),
        })
    }
}
