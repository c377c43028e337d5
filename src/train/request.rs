//! What a run is asked to do ([`TrainRequest`]), built afresh from settings or, for a resume,
//! from the run folder's own record, so the CLI and the app continue a run the same way; and how
//! a run ended ([`RunSummary`]).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::resume::ResumePoint;
use super::{EpochMetrics, TrainConfig, TrainError};
use crate::data::PixelCache;
use crate::device::DeviceChoice;

/// How a run meets its folder.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Start {
    /// A new run in a folder that is missing or empty; a folder holding a run, or anything
    /// else, is refused before anything is written.
    #[default]
    Fresh,
    /// A new run in a folder holding an earlier run, whose files are first moved into the
    /// folder's `trash/` (never deleted); a folder holding anything but a run is refused.
    Overwrite,
    /// The run in the folder, continued from its checkpoint where [`TrainRequest::resume`]
    /// found it (the one way to build it).
    Resume(Box<ResumePoint>),
}

/// What to train on, where to write, and on what.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Hyper-parameters; on a resume, the run's own as [`TrainRequest::resume`] read them.
    pub config: TrainConfig,
    /// Folder of training images (labels, if any, are never used for training).
    pub train_dir: PathBuf,
    /// Labelled folder whose embeddings are the kNN memory; defaults to `train_dir` when that is
    /// labelled.
    pub eval_train_dir: Option<PathBuf>,
    /// Labelled folder scored each epoch (kNN, Recall@K, NMI, similarity histograms).
    pub eval_test_dir: Option<PathBuf>,
    /// Run folder.
    pub run_dir: PathBuf,
    /// A new run, a new run over an old one, or the continuation of the run in `run_dir`.
    pub start: Start,
    /// Device to train on.
    pub device: DeviceChoice,
    /// Folder of the preprocessed image cache; the per-user default when `None`.
    pub cache_dir: Option<PathBuf>,
    /// On resume, continue even though the training folder changed since the run was recorded.
    pub accept_changed_folder: bool,
    /// Stop, as the Stop button does (the run stays resumable), once this many epochs are
    /// complete: how a comparison trains its runs side by side, an epoch of each in turn.
    pub stop_after_epoch: Option<usize>,
    /// Start a fresh run's backbone from these pretrained weights (torchvision ResNet-18 names,
    /// safetensors; §4.2's ImageNet start) instead of random ones; on resume only recorded again
    /// in `run.json` (see [`TrainRequest::resume`]).
    pub init_weights: Option<PathBuf>,
}

impl TrainRequest {
    /// A new run of `config` on the images of `train_dir`, written to the run folder `run_dir`: the
    /// one constructor every shell and the comparison build a request with (a resume through
    /// [`TrainRequest::resume`], which calls it too). The rest starts as a new run needs it (no
    /// labelled folders, the automatic device, the per-user cache, random weights) and changes
    /// through the methods below.
    pub fn new(config: TrainConfig, train_dir: PathBuf, run_dir: PathBuf) -> Self {
        Self {
            config,
            train_dir,
            eval_train_dir: None,
            eval_test_dir: None,
            run_dir,
            start: Start::Fresh,
            device: DeviceChoice::default(),
            cache_dir: None,
            accept_changed_folder: false,
            stop_after_epoch: None,
            init_weights: None,
        }
    }

    /// Scored after every epoch on these labelled folders (the kNN memory, the test set).
    #[must_use]
    pub fn evaluated_on(
        mut self,
        eval_train_dir: Option<PathBuf>,
        eval_test_dir: Option<PathBuf>,
    ) -> Self {
        self.eval_train_dir = eval_train_dir;
        self.eval_test_dir = eval_test_dir;
        self
    }

    /// Trained on `device`.
    #[must_use]
    pub fn on(mut self, device: DeviceChoice) -> Self {
        self.device = device;
        self
    }

    /// Read through the image cache in `cache_dir` (the per-user one when `None`).
    #[must_use]
    pub fn with_cache_dir(mut self, cache_dir: Option<PathBuf>) -> Self {
        self.cache_dir = cache_dir;
        self
    }

    /// With `overwrite`, a new run over an earlier one in `run_dir` ([`Start::Overwrite`]).
    #[must_use]
    pub fn overwriting(mut self, overwrite: bool) -> Self {
        self.start = if overwrite {
            Start::Overwrite
        } else {
            Start::Fresh
        };
        self
    }

    /// The backbone started from these pretrained weights instead of random ones.
    #[must_use]
    pub fn with_init_weights(mut self, init_weights: Option<PathBuf>) -> Self {
        self.init_weights = init_weights;
        self
    }

    /// Stopped, resumable, once `epoch` epochs are complete.
    #[must_use]
    pub fn stopping_after_epoch(mut self, epoch: Option<usize>) -> Self {
        self.stop_after_epoch = epoch;
        self
    }

    /// The image cache this run reads through.
    pub fn pixel_cache(&self) -> PixelCache {
        self.cache_dir
            .as_ref()
            .map_or_else(PixelCache::default_location, PixelCache::at)
    }

    /// Whether this request continues a run.
    pub fn is_resume(&self) -> bool {
        matches!(self.start, Start::Resume(_))
    }
}

impl TrainRequest {
    /// Refuses a run folder that is, or is above, a folder of images the run reads: its files
    /// would mix with the photos, and deleting the run would be deleting in the photos' folder.
    /// Paths are compared with links and `..` resolved; `run_dir` need not exist yet.
    ///
    /// # Errors
    /// [`TrainError::OutHoldsImages`] naming both folders.
    pub(super) fn check_out(&self) -> Result<(), TrainError> {
        let Some(out) = resolved(&self.run_dir) else {
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
                    out: self.run_dir.clone(),
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
