//! Export screen: copy a run's model and write a collection's embeddings where the person chose,
//! then read what was written back to prove it loads.

use std::path::PathBuf;

use serde::Serialize;
use spreadout::export::{self, CONFIG_FILE, MODEL_FILE};
use tauri::State;

use crate::error::{CommandError, CommandResult, blocking};
use crate::state::AppState;

/// What was written and checked.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Exported {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// What reading them back found, for a person.
    pub verified: String,
}

/// Copies `model.safetensors` and `config.json` of `model_dir` (a run or snapshot folder) into
/// `destination`, then loads the copy back. Each file is replaced atomically, so a failed export
/// leaves an earlier one intact.
#[tauri::command]
pub async fn export_model(model_dir: PathBuf, destination: PathBuf) -> CommandResult<Exported> {
    blocking(move || {
        let mut files = Vec::new();
        for name in [MODEL_FILE, CONFIG_FILE] {
            let source = model_dir.join(name);
            let bytes = std::fs::read(&source).map_err(|error| {
                CommandError::new(
                    "files",
                    format!("cannot read {}: {error}", source.display()),
                )
            })?;
            let target = destination.join(name);
            export::write_atomically(&target, &bytes)?;
            files.push(target);
        }
        let loaded = export::load_model(&destination, &spreadout::device::cpu().device)?;
        let (tensors, _) = export::read_header(&files[0])?;
        Ok(Exported {
            verified: format!(
                "loads back: ResNet-18 width {}, {}-d embedding, {} tensors, {} training steps",
                loaded.config.model.width,
                loaded.config.model.dim,
                tensors.len(),
                loaded.config.steps
            ),
            files,
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
    destination: PathBuf,
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
            files: vec![destination],
        })
    })
    .await
}
