//! The run folder's files, owned by one type: `run.json`, `skipped.json`, `metrics.jsonl`, the
//! checkpoint, the exported model and the per-epoch snapshots. The end of an epoch writes them
//! in one place ([`RunFolder::end_epoch`]), from one read of the weights. The checkpoint's own
//! layout is [`checkpoint`]'s, and reading runs back (listing, describing, renaming, deleting
//! them) is [`runs`]'s.

pub mod checkpoint;
pub mod runs;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use serde::Serialize;

use crate::data::SkippedFile;
use crate::method::MethodState;
use crate::model::EmbeddingNet;
use crate::model_files::{self, ExportedConfig};
use crate::optim::Sgd;
use crate::tensor_files;
use crate::tensor_files::FileError;
use crate::train::EpochMetrics;
use checkpoint::RunState;

/// File of per-epoch metrics in a run folder, one JSON object per line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File listing the training files that were skipped, with reasons.
pub const SKIPPED_FILE: &str = "skipped.json";
/// File describing the run: device, data and configuration.
pub const RUN_FILE: &str = "run.json";

/// One run's folder.
pub(super) struct RunFolder {
    dir: PathBuf,
    /// The training images' keys in row order, saved with a method's per-instance rows.
    instance_keys: Vec<i64>,
}

impl RunFolder {
    /// The folder at `dir`, created if needed, for a run on the images `instance_keys`.
    pub(super) fn create(dir: &Path, instance_keys: Vec<i64>) -> Result<Self, FileError> {
        fs::create_dir_all(dir).map_err(|source| FileError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            instance_keys,
        })
    }

    /// The training images' keys in row order.
    pub(super) fn instance_keys(&self) -> &[i64] {
        &self.instance_keys
    }

    /// Where `skipped.json` is.
    pub(super) fn skipped_path(&self) -> PathBuf {
        self.dir.join(SKIPPED_FILE)
    }

    /// Writes `skipped.json`.
    pub(super) fn write_skipped(&self, skipped: &[SkippedFile]) -> Result<(), FileError> {
        write_json(&self.skipped_path(), &skipped)
    }

    /// Writes `run.json`.
    pub(super) fn write_record(&self, record: &runs::RunRecord) -> Result<(), FileError> {
        write_json(&self.dir.join(RUN_FILE), record)
    }

    /// Starts `metrics.jsonl` afresh, or, on a resume, keeps its first `epochs_completed` lines:
    /// an epoch whose checkpoint was never written will be trained again.
    pub(super) fn start_metrics(&self, epochs_completed: Option<usize>) -> Result<(), FileError> {
        let path = self.dir.join(METRICS_FILE);
        let Some(epochs) = epochs_completed else {
            let _ = fs::remove_file(&path);
            return Ok(());
        };
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(());
        };
        let kept: String = parse_metrics(&text, &path)
            .into_iter()
            .take(epochs)
            .map(|metrics| serde_json::to_string(&metrics).expect("metrics serialise") + "\n")
            .collect();
        tensor_files::write_atomically(&path, kept.as_bytes())
    }

    /// Everything an epoch leaves behind, in the order a crash can interrupt safely: its metrics
    /// line, the checkpoint (weights, momentum, position), the exported model and, for the
    /// epochs [`runs::keeps_snapshot`] names, a snapshot. The weights are read from the device
    /// once for all of them.
    pub(super) fn end_epoch(
        &self,
        state: &RunState,
        net: &EmbeddingNet,
        sgd: &Sgd,
        method: &MethodState,
        metrics: &EpochMetrics,
        exported: &ExportedConfig,
    ) -> Result<(), FileError> {
        self.append_metrics(metrics)?;
        let tensors = tensor_files::module_tensors(net);
        checkpoint::save(&self.dir, state, &tensors, sgd, method, &self.instance_keys)?;
        let torch_state = model_files::torch_state_from(tensors, exported.steps);
        model_files::write_model(&self.dir, &torch_state, exported)?;
        if runs::keeps_snapshot(state.epochs_completed, state.config.epochs) {
            model_files::write_model(
                &runs::snapshot_dir(&self.dir, state.epochs_completed),
                &torch_state,
                exported,
            )?;
        }
        Ok(())
    }

    /// A checkpoint inside an epoch: the weights, momentum and position only (metrics and exports
    /// wait for the epoch's end).
    pub(super) fn save_position(
        &self,
        state: &RunState,
        net: &EmbeddingNet,
        sgd: &Sgd,
        method: &MethodState,
    ) -> Result<(), FileError> {
        // Burn's batch-norm running statistics are read one update behind until synced, which
        // `valid()` does (at an epoch's end the evaluation already has).
        let _ = net.valid();
        checkpoint::save(
            &self.dir,
            state,
            &tensor_files::module_tensors(net),
            sgd,
            method,
            &self.instance_keys,
        )
    }

    fn append_metrics(&self, metrics: &EpochMetrics) -> Result<(), FileError> {
        let path = self.dir.join(METRICS_FILE);
        let io = |source| FileError::Io {
            path: path.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let line = serde_json::to_string(metrics).expect("metrics serialise");
        writeln!(file, "{line}").map_err(io)
    }
}

/// Reads a run folder's `metrics.jsonl`.
pub fn read_metrics(run_dir: &Path) -> Result<Vec<EpochMetrics>, FileError> {
    let path = run_dir.join(METRICS_FILE);
    let text = fs::read_to_string(&path).map_err(|source| FileError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(parse_metrics(&text, &path))
}

/// The epochs of a `metrics.jsonl`. A line that does not parse is skipped with a warning: the
/// last one is torn when a crash or a full disk cut an append short, and one damaged line must
/// not cost the whole run (it stays resumable; the checkpoint says which epochs are done).
fn parse_metrics(text: &str, path: &Path) -> Vec<EpochMetrics> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(metrics) => Some(metrics),
            Err(error) => {
                tracing::warn!("{}: skipping an unreadable line ({error})", path.display());
                None
            }
        })
        .collect()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), FileError> {
    let json = serde_json::to_vec_pretty(value).expect("serialisable");
    tensor_files::write_atomically(path, &json)
}
