//! Export screen: copy a run's model and write a collection's embeddings where the person chose,
//! then read what was written back to prove it loads.

use std::path::{Path, PathBuf};

use serde::Serialize;
use spreadout::embed::EmbeddingsFile;
use spreadout::model_files;
use spreadout::tensor_files::FileError;
use tauri::State;

use super::UiPath;
use crate::error::{CommandResult, blocking};
use crate::state::AppState;

/// What was written and checked.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Exported {
    /// Files written.
    #[serde(with = "spreadout::support::paths::list")]
    #[ts(type = "string[]")]
    pub files: Vec<PathBuf>,
    /// Files and folders already in the destination folder, left as they were (a model exported
    /// into a folder); `None` where one file was written where the person named it.
    pub others_kept: Option<usize>,
    /// What reading them back found, for a person.
    pub verified: String,
}

/// Copies `model.safetensors` and `config.json` of `model_dir` (a run or snapshot folder) into
/// `destination`, then loads the copy back ([`model_files::copy_model`]: only those two names are
/// written, never over files Spreadout did not write, and a failed export leaves an earlier one
/// intact).
#[tauri::command]
pub async fn export_model(model_dir: UiPath, destination: UiPath) -> CommandResult<Exported> {
    blocking(move || {
        let verified = model_files::copy_model(&model_dir, &destination)?;
        Ok(Exported {
            verified: verified.to_string(),
            others_kept: Some(verified.others),
            files: verified.files.into(),
        })
    })
    .await
}

/// Writes a collection's embeddings and file list to `destination` (.safetensors), then reads
/// the file back as an embeddings file.
#[tauri::command]
pub async fn export_embeddings(
    state: State<'_, AppState>,
    key: String,
    destination: UiPath,
) -> CommandResult<Exported> {
    let collection = state.collection(&key)?;
    blocking(move || {
        collection
            .embedded()
            .write(&destination, &collection.model_path)?;
        Ok(Exported {
            verified: read_back(&destination)?,
            others_kept: None,
            files: vec![destination.0],
        })
    })
    .await
}

/// What reading `file` back as an embeddings file ([`EmbeddingsFile::read`], which checks the
/// rows against the file list) found, for a person.
fn read_back(file: &Path) -> Result<String, FileError> {
    let read = EmbeddingsFile::read(file)?;
    Ok(format!(
        "loads back: embeddings [{}, {}] with {} file paths",
        read.paths.len(),
        read.dim,
        read.paths.len()
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use spreadout::tensor_files::{NamedTensor, TensorValues, write_tensors};

    use super::*;

    #[test]
    fn embeddings_without_their_file_list_fail_the_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("embeddings.safetensors");
        let embeddings = NamedTensor {
            name: "embeddings".into(),
            shape: vec![2, 3],
            values: TensorValues::F32(vec![0.0; 6]),
        };
        let model = BTreeMap::from([("model".to_owned(), "/runs/a/model.safetensors".to_owned())]);
        write_tensors(&file, std::slice::from_ref(&embeddings), model.clone()).unwrap();
        let error = read_back(&file).unwrap_err().to_string();
        assert!(error.contains("no file list"), "{error}");
        // With the list, it reads back.
        let mut listed = model;
        listed.insert("paths".into(), r#"["a.jpg", "b.jpg"]"#.into());
        write_tensors(&file, &[embeddings], listed).unwrap();
        assert_eq!(
            read_back(&file).unwrap(),
            "loads back: embeddings [2, 3] with 2 file paths"
        );
    }
}
