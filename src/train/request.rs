//! What a run is asked to do ([`TrainRequest`]), built afresh from settings or, for a resume,
//! from the run folder's own record, so the CLI and the app continue a run the same way; and how
//! a run ended ([`RunSummary`]).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{EpochMetrics, TrainConfig, TrainError, checkpoint, runs};
use crate::data::PixelCache;
use crate::device::DeviceChoice;

/// What to train on, where to write, and on what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainRequest {
    /// Hyper-parameters (ignored on resume except `epochs`, which may extend the run).
    pub config: TrainConfig,
    /// Folder of training images (labels, if any, are never used for training).
    pub train_dir: PathBuf,
    /// Labelled folder whose embeddings are the kNN memory; defaults to `train_dir` when that is
    /// labelled.
    pub eval_train_dir: Option<PathBuf>,
    /// Labelled folder scored each epoch (kNN, Recall@K, NMI, similarity histograms).
    pub eval_test_dir: Option<PathBuf>,
    /// Run folder.
    pub out: PathBuf,
    /// Continue the run in `out` from its checkpoint.
    pub resume: bool,
    /// Device to train on.
    pub device: DeviceChoice,
    /// Folder of the preprocessed image cache; the per-user default when `None`.
    #[serde(default, with = "crate::paths::option")]
    pub cache_dir: Option<PathBuf>,
    /// On resume, continue even though the training folder changed since the run was recorded.
    #[serde(default)]
    pub accept_changed_folder: bool,
    /// Stop, as the Stop button does (the run stays resumable), once this many epochs are
    /// complete: how a comparison trains its runs side by side, an epoch of each in turn.
    #[serde(default)]
    pub stop_after_epoch: Option<usize>,
    /// Start a fresh run's backbone from these pretrained weights (torchvision ResNet-18 names,
    /// safetensors; §4.2's ImageNet start) instead of random ones; on resume only recorded again
    /// in `run.json` (see [`TrainRequest::resume`]).
    #[serde(default, with = "crate::paths::option")]
    pub init_weights: Option<PathBuf>,
}

impl TrainRequest {
    /// The image cache this run reads through.
    pub fn pixel_cache(&self) -> PixelCache {
        self.cache_dir
            .as_ref()
            .map_or_else(PixelCache::default_location, PixelCache::at)
    }

    /// The request that continues the run in `run_dir` from its checkpoint: the training and
    /// evaluation folders, the settings and the pretrained start recorded in its `run.json`,
    /// with what `overrides` gives in their place. The pretrained start cannot be overridden: it
    /// says how the run began.
    ///
    /// # Errors
    /// [`TrainError::NothingToResume`] when `run_dir` has no checkpoint; [`TrainError::Files`]
    /// when its `run.json` is missing or unreadable.
    pub fn resume(run_dir: &Path, overrides: ResumeOverrides) -> Result<Self, TrainError> {
        if !checkpoint::path(run_dir).exists() {
            return Err(TrainError::NothingToResume(run_dir.to_owned()));
        }
        let record = runs::read_record(run_dir)?;
        Ok(Self {
            config: TrainConfig {
                epochs: overrides.epochs.unwrap_or(record.config.epochs),
                ..record.config
            },
            train_dir: overrides.train_dir.unwrap_or(record.train_dir),
            eval_train_dir: overrides.eval_train_dir.or(record.eval_train_dir),
            eval_test_dir: overrides.eval_test_dir.or(record.eval_test_dir),
            out: run_dir.to_owned(),
            resume: true,
            device: overrides.device,
            cache_dir: overrides.cache_dir,
            accept_changed_folder: overrides.accept_changed_folder,
            stop_after_epoch: None,
            init_weights: record.init_weights,
        })
    }
}

impl TrainRequest {
    /// Refuses a run folder that is, or is above, a folder of images the run reads: its files
    /// would mix with the photos, and deleting the run would be deleting in the photos' folder.
    /// Paths are compared with links and `..` resolved; `out` need not exist yet.
    ///
    /// # Errors
    /// [`TrainError::OutHoldsImages`] naming both folders.
    pub(super) fn check_out(&self) -> Result<(), TrainError> {
        let Some(out) = resolved(&self.out) else {
            return Ok(());
        };
        let image_folders = [
            Some(&self.train_dir),
            self.eval_train_dir.as_ref(),
            self.eval_test_dir.as_ref(),
        ];
        for images in image_folders.into_iter().flatten() {
            // A folder that cannot be resolved does not exist; loading it reports that.
            if let Ok(resolved_images) = images.canonicalize()
                && resolved_images.starts_with(&out)
            {
                return Err(TrainError::OutHoldsImages {
                    out: self.out.clone(),
                    images: images.clone(),
                });
            }
        }
        Ok(())
    }
}

/// `path` absolute with links, `.` and `..` resolved, also when its last components do not exist
/// yet: its nearest existing ancestor canonicalised, then the rest (which cannot be links)
/// applied by name.
fn resolved(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let components: Vec<Component> = absolute.components().collect();
    (0..=components.len()).rev().find_map(|existing| {
        let mut found = components[..existing]
            .iter()
            .collect::<PathBuf>()
            .canonicalize()
            .ok()?;
        for component in &components[existing..] {
            match component {
                Component::ParentDir => {
                    found.pop();
                }
                Component::Normal(name) => found.push(name),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        Some(found)
    })
}

/// What a resume sets itself ([`TrainRequest::resume`]): the options of this invocation, and in
/// place of the run's record where given, its length and folders.
#[derive(Debug, Clone, Default)]
pub struct ResumeOverrides {
    /// Epochs in total; more than recorded extends the run (never fewer than the checkpoint's).
    pub epochs: Option<usize>,
    /// The training folder, where it is now elsewhere (its contents are still checked).
    pub train_dir: Option<PathBuf>,
    /// The labelled kNN memory folder.
    pub eval_train_dir: Option<PathBuf>,
    /// The labelled test folder.
    pub eval_test_dir: Option<PathBuf>,
    /// Device to continue on.
    pub device: DeviceChoice,
    /// Folder of the preprocessed image cache; the per-user default when `None`.
    pub cache_dir: Option<PathBuf>,
    /// Continue even though the training folder changed since the run was recorded.
    pub accept_changed_folder: bool,
}

/// How a run ended without error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Epochs completed in total.
    pub epochs_completed: usize,
    /// Whether the user stopped it.
    #[serde(alias = "cancelled")]
    pub canceled: bool,
    /// Metrics of every epoch of this invocation.
    pub metrics: Vec<EpochMetrics>,
    /// Steps of the next epoch already trained and checkpointed (a run stopped mid-epoch).
    #[serde(default)]
    pub steps_into_epoch: usize,
}

impl RunSummary {
    /// A run stopped by the user (or by `stop_after_epoch`) with `epochs_completed` epochs and
    /// `steps_into_epoch` steps of the next one checkpointed.
    pub(super) fn stopped(
        epochs_completed: usize,
        metrics: Vec<EpochMetrics>,
        steps_into_epoch: usize,
    ) -> Self {
        Self {
            epochs_completed,
            canceled: true,
            metrics,
            steps_into_epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Normalization;

    /// A run folder as a run leaves it: `run.json` and a checkpoint (only its presence matters).
    fn run_folder(root: &Path) -> PathBuf {
        let run = root.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let record = runs::RunRecord {
            device: "CPU".to_owned(),
            train_dir: root.join("photos"),
            eval_train_dir: Some(root.join("memory")),
            eval_test_dir: Some(root.join("test")),
            images: 10,
            skipped: 0,
            labels: Vec::new(),
            normalization: Normalization::IDENTITY,
            config: TrainConfig {
                epochs: 50,
                seed: 3,
                ..TrainConfig::default()
            },
            folder: None,
            init_weights: Some(root.join("resnet18.safetensors")),
        };
        std::fs::write(
            run.join(crate::train::RUN_FILE),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        std::fs::write(checkpoint::path(&run), b"").unwrap();
        run
    }

    #[test]
    fn a_resume_keeps_what_the_run_recorded_unless_told_otherwise() {
        let root = tempfile::tempdir().unwrap();
        let run = run_folder(root.path());
        let kept = TrainRequest::resume(&run, ResumeOverrides::default()).unwrap();
        assert!(kept.resume);
        assert_eq!(kept.out, run);
        assert_eq!(kept.config.epochs, 50);
        assert_eq!(kept.config.seed, 3);
        assert_eq!(kept.train_dir, root.path().join("photos"));
        assert_eq!(kept.eval_train_dir, Some(root.path().join("memory")));
        assert_eq!(kept.eval_test_dir, Some(root.path().join("test")));
        assert_eq!(
            kept.init_weights,
            Some(root.path().join("resnet18.safetensors")),
            "the pretrained start stays in the record"
        );

        let told = TrainRequest::resume(
            &run,
            ResumeOverrides {
                epochs: Some(80),
                train_dir: Some(root.path().join("moved")),
                eval_test_dir: Some(root.path().join("other test")),
                device: DeviceChoice::Cpu,
                accept_changed_folder: true,
                ..ResumeOverrides::default()
            },
        )
        .unwrap();
        assert_eq!(told.config.epochs, 80);
        assert_eq!(told.train_dir, root.path().join("moved"));
        assert_eq!(told.eval_train_dir, Some(root.path().join("memory")));
        assert_eq!(told.eval_test_dir, Some(root.path().join("other test")));
        assert_eq!(told.device, DeviceChoice::Cpu);
        assert!(told.accept_changed_folder);
        assert!(told.init_weights.is_some());
    }

    #[test]
    fn a_folder_without_a_checkpoint_has_nothing_to_resume() {
        let root = tempfile::tempdir().unwrap();
        let run = run_folder(root.path());
        std::fs::remove_file(checkpoint::path(&run)).unwrap();
        let error = TrainRequest::resume(&run, ResumeOverrides::default()).unwrap_err();
        assert!(matches!(error, TrainError::NothingToResume(_)), "{error}");
    }
}
