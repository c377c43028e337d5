//! Export screen: copy a run's model and write a collection's embeddings where the person chose,
//! then read what was written back to prove it loads.

use std::path::PathBuf;

use serde::Serialize;
use spreadout::export;
use tauri::State;

use super::UiPath;
use crate::error::{CommandResult, blocking};
use crate::state::AppState;

/// What was written and checked.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Exported {
    /// Files written.
    #[serde(with = "spreadout::paths::list")]
    #[ts(type = "string[]")]
    pub files: Vec<PathBuf>,
    /// What reading them back found, for a person.
    pub verified: String,
}

/// Copies `model.safetensors` and `config.json` of `model_dir` (a run or snapshot folder) into
/// `destination`, then loads the copy back ([`export::copy_model`]: a failed export leaves an
/// earlier one intact).
#[tauri::command]
pub async fn export_model(model_dir: UiPath, destination: UiPath) -> CommandResult<Exported> {
    blocking(move || {
        let verified = export::copy_model(&model_dir, &destination)?;
        Ok(Exported {
            verified: verified.to_string(),
            files: verified.files.into(),
        })
    })
    .await
}

/// Writes a collection's embeddings and file list to `destination` (.safetensors), then reads
/// its header back.
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
        let (tensors, metadata) = export::read_tensors(&destination)?;
        let shape = tensors
            .get("embeddings")
            .map(|tensor| tensor.shape.clone())
            .unwrap_or_default();
        let paths: Vec<PathBuf> = metadata
            .get("paths")
            .and_then(|paths| serde_json::from_str(paths).ok())
            .unwrap_or_default();
        Ok(Exported {
            verified: format!(
                "loads back: embeddings {shape:?} with {} file paths",
                paths.len()
            ),
            files: vec![destination.0],
        })
    })
    .await
}
