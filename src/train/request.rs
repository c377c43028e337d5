//! What a run is asked to do ([`TrainRequest`]), built afresh from settings or, for a resume,
//! from the run folder's own record, so the CLI and the app continue a run the same way; and how
//! a run ended ([`RunSummary`]).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AugmentOn, EpochMetrics, TrainConfig, TrainError, checkpoint, runs};
use crate::data::PixelCache;
use crate::device::DeviceChoice;

/// How a run meets its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// A new run in a folder that is missing or empty; a folder holding a run, or anything
    /// else, is refused before anything is written.
    #[default]
    Fresh,
    /// A new run in a folder holding an earlier run, whose files are first moved into the
    /// folder's `trash/` (never deleted); a folder holding anything but a run is refused.
    Overwrite,
    /// The run in the folder, continued from its checkpoint: built by [`TrainRequest::resume`].
    Resume,
}

/// What to train on, where to write, and on what.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub out: PathBuf,
    /// A new run, a new run over an old one, or the continuation of the run in `out`.
    pub start: Start,
    /// Device to train on.
    pub device: DeviceChoice,
    /// Folder of the preprocessed image cache; the per-user default when `None`.
    #[serde(default, with = "crate::support::paths::option")]
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
    #[serde(default, with = "crate::support::paths::option")]
    pub init_weights: Option<PathBuf>,
}

impl TrainRequest {
    /// A new run of `config` on the images of `train_dir`, written to the run folder `out`: the
    /// one constructor every shell and the comparison build a request with (a resume through
    /// [`TrainRequest::resume`], which calls it too). The rest starts as a new run needs it (no
    /// labelled folders, the automatic device, the per-user cache, random weights) and changes
    /// through the methods below.
    pub fn new(config: TrainConfig, train_dir: PathBuf, out: PathBuf) -> Self {
        Self {
            config,
            train_dir,
            eval_train_dir: None,
            eval_test_dir: None,
            out,
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

    /// With `overwrite`, a new run over an earlier one in `out` ([`Start::Overwrite`]).
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
        self.start == Start::Resume
    }

    /// The one place a resume is decided, for every shell: the run in `run_dir` continued as its
    /// `run.json` recorded it (folders, settings, schedule and its cap, device, where views are
    /// built, checkpoint interval, pretrained start), with only what `overrides` gives in its
    /// place, each such change listed in the result. A longer run keeps the rate it last trained
    /// at as its cap ([`TrainConfig::lr_cap`]), so the schedule re-planned over the new length
    /// never raises the rate; the cap stays in `run.json` for every later resume. The pretrained
    /// start cannot be overridden: it says how the run began.
    ///
    /// # Errors
    /// [`TrainError::NothingToResume`] when `run_dir` has no checkpoint; [`TrainError::Files`]
    /// when its `run.json` or checkpoint is unreadable; [`TrainError::EpochsBelowTrained`] for
    /// fewer epochs than the run has trained.
    pub fn resume(run_dir: &Path, overrides: ResumeOverrides) -> Result<Resumption, TrainError> {
        if !checkpoint::path(run_dir).exists() {
            return Err(TrainError::NothingToResume(run_dir.to_owned()));
        }
        let record = runs::read_record(run_dir)?;
        let state = checkpoint::read_state(run_dir)?;
        let mut config = record.config;
        let mut changes = Vec::new();
        if let Some(epochs) = overrides.epochs {
            if epochs < state.epochs_completed {
                return Err(TrainError::EpochsBelowTrained {
                    asked: epochs,
                    trained: state.epochs_completed,
                });
            }
            if epochs > config.epochs
                && let Some(last) = state.last_lr
            {
                config.lr_cap = Some(config.lr_cap.map_or(last, |cap| cap.min(last)));
            }
        }
        let ResumeOverrides {
            epochs,
            train_dir,
            eval_train_dir,
            eval_test_dir,
            device,
            augment_on,
            device_data_mb,
            checkpoint_minutes,
            cache_dir,
            accept_changed_folder,
        } = overrides;
        override_with(&mut changes, "epochs", &mut config.epochs, epochs);
        override_with(
            &mut changes,
            "augment_on",
            &mut config.augment_on,
            augment_on,
        );
        override_with(
            &mut changes,
            "device_data_mb",
            &mut config.device_data_mb,
            device_data_mb,
        );
        override_with(
            &mut changes,
            "checkpoint_minutes",
            &mut config.checkpoint_minutes,
            checkpoint_minutes,
        );
        let mut device_choice = record.device_choice.unwrap_or_default();
        override_with(&mut changes, "device", &mut device_choice, device);
        let mut train_dir_now = record.train_dir;
        override_with(&mut changes, "train_dir", &mut train_dir_now, train_dir);
        let mut eval_train_now = record.eval_train_dir;
        override_with(
            &mut changes,
            "eval_train_dir",
            &mut eval_train_now,
            eval_train_dir.map(Some),
        );
        let mut eval_test_now = record.eval_test_dir;
        override_with(
            &mut changes,
            "eval_test_dir",
            &mut eval_test_now,
            eval_test_dir.map(Some),
        );
        let mut request = Self::new(config, train_dir_now, run_dir.to_owned())
            .evaluated_on(eval_train_now, eval_test_now)
            .on(device_choice)
            .with_cache_dir(cache_dir)
            .with_init_weights(record.init_weights);
        request.start = Start::Resume;
        request.accept_changed_folder = accept_changed_folder;
        Ok(Resumption {
            request,
            changes,
            epochs_completed: state.epochs_completed,
            steps_into_epoch: state.steps_into_epoch,
        })
    }
}

/// A resume as [`TrainRequest::resume`] decided it: the request, what it changed from the run's
/// record, and where the run stands.
#[derive(Debug, Clone)]
pub struct Resumption {
    /// The request that continues the run.
    pub request: TrainRequest,
    /// Each setting the person changed from what the run recorded, in the order above.
    pub changes: Vec<SettingChange>,
    /// Epochs the run has completed.
    pub epochs_completed: usize,
    /// Steps of the next epoch already trained.
    pub steps_into_epoch: usize,
}

impl Resumption {
    /// Whether the run has trained every epoch asked of it: resuming it would train nothing.
    pub fn is_complete(&self) -> bool {
        self.steps_into_epoch == 0 && self.epochs_completed >= self.request.config.epochs
    }
}

/// One setting a resume changed from the run's record, e.g. `epochs 30 → 50`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct SettingChange {
    /// The setting's name in the configuration (a shell words it as its own control).
    pub setting: String,
    /// The value the run recorded.
    pub recorded: String,
    /// The value it continues with.
    pub now: String,
}

impl std::fmt::Display for SettingChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} → {}", self.setting, self.recorded, self.now)
    }
}

/// `slot` replaced by `given` when there is one, the change listed when the value differs.
fn override_with<T: PartialEq + Shows>(
    changes: &mut Vec<SettingChange>,
    setting: &str,
    slot: &mut T,
    given: Option<T>,
) {
    let Some(given) = given else { return };
    if *slot != given {
        changes.push(SettingChange {
            setting: setting.to_owned(),
            recorded: slot.shown(),
            now: given.shown(),
        });
        *slot = given;
    }
}

/// How a setting's value reads in a [`SettingChange`].
trait Shows {
    fn shown(&self) -> String;
}

macro_rules! shown_by_display {
    ($($type:ty),*) => {$(
        impl Shows for $type {
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_by_display!(usize, u32, f64, DeviceChoice);

impl Shows for AugmentOn {
    fn shown(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Shows for PathBuf {
    fn shown(&self) -> String {
        self.display().to_string()
    }
}

impl Shows for Option<PathBuf> {
    fn shown(&self) -> String {
        self.as_ref()
            .map_or_else(|| "none".to_owned(), |path| path.display().to_string())
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

/// What the person gave when resuming ([`TrainRequest::resume`]): each `Some` replaces what the
/// run recorded, each `None` keeps it. A shell sets only what the person actually gave (the CLI
/// asks clap where each value came from), never a default.
#[derive(Debug, Clone, Default)]
pub struct ResumeOverrides {
    /// Epochs in total; more than recorded extends the run, fewer shortens it (never below the
    /// epochs it has trained).
    pub epochs: Option<usize>,
    /// The training folder, where it is now elsewhere (its contents are still checked).
    pub train_dir: Option<PathBuf>,
    /// The labelled kNN memory folder.
    pub eval_train_dir: Option<PathBuf>,
    /// The labelled test folder.
    pub eval_test_dir: Option<PathBuf>,
    /// Device to continue on.
    pub device: Option<DeviceChoice>,
    /// Where the training views are built.
    pub augment_on: Option<AugmentOn>,
    /// MiB of training images kept on the device.
    pub device_data_mb: Option<u32>,
    /// Minutes between checkpoints inside an epoch.
    pub checkpoint_minutes: Option<f64>,
    /// Folder of the preprocessed image cache for this invocation (not a setting of the run);
    /// the per-user default when `None`.
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
    use crate::method::MethodState;
    use crate::optim::Sgd;

    /// A run folder as a run leaves it after `epochs_completed` epochs of 50 at `last_lr`:
    /// `run.json` and a checkpoint holding the position (no tensors).
    fn run_folder(root: &Path, epochs_completed: usize, last_lr: f64) -> PathBuf {
        let run = root.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let config = TrainConfig {
            epochs: 50,
            seed: 3,
            augment_on: AugmentOn::Device,
            ..TrainConfig::default()
        };
        let record = runs::RunRecord {
            device: "CPU".to_owned(),
            device_choice: Some(DeviceChoice::Gpu),
            train_dir: root.join("photos"),
            eval_train_dir: Some(root.join("memory")),
            eval_test_dir: Some(root.join("test")),
            images: 10,
            skipped: 0,
            labels: Vec::new(),
            normalization: Normalization::IDENTITY,
            config: config.clone(),
            folder: None,
            init_weights: Some(root.join("resnet18.safetensors")),
        };
        std::fs::write(
            run.join(crate::train::RUN_FILE),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        let state = checkpoint::RunState {
            config,
            normalization: Normalization::IDENTITY,
            epochs_completed,
            steps: 10 * epochs_completed as u64,
            steps_into_epoch: 0,
            epoch_loss_sum: 0.0,
            last_lr: Some(last_lr),
            instances: 10,
        };
        checkpoint::save(
            &run,
            &state,
            &[],
            &Sgd::new(0.9, 5e-4),
            &MethodState::Stateless,
            &[],
        )
        .unwrap();
        run
    }

    /// `request`'s configuration written back as the run's record, as the resumed run does
    /// when it starts.
    fn record_config(run: &Path, config: &TrainConfig) {
        let mut record = runs::read_record(run).unwrap();
        record.config = config.clone();
        std::fs::write(
            run.join(crate::train::RUN_FILE),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn a_resume_keeps_what_the_run_recorded_unless_told_otherwise() {
        let root = tempfile::tempdir().unwrap();
        let run = run_folder(root.path(), 20, 0.03);
        let kept = TrainRequest::resume(&run, ResumeOverrides::default()).unwrap();
        assert!(kept.changes.is_empty(), "{:?}", kept.changes);
        assert!(!kept.is_complete());
        assert_eq!((kept.epochs_completed, kept.steps_into_epoch), (20, 0));
        let kept = kept.request;
        assert!(kept.is_resume());
        assert_eq!(kept.out, run);
        assert_eq!(kept.config.epochs, 50, "no flag given: the recorded length");
        assert_eq!(kept.config.seed, 3);
        assert_eq!(kept.config.augment_on, AugmentOn::Device);
        assert_eq!(kept.config.lr_cap, None);
        assert_eq!(kept.device, DeviceChoice::Gpu, "the recorded device");
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
                device: Some(DeviceChoice::Cpu),
                augment_on: Some(AugmentOn::Cpu),
                device_data_mb: Some(1024),
                checkpoint_minutes: Some(2.5),
                accept_changed_folder: true,
                ..ResumeOverrides::default()
            },
        )
        .unwrap();
        let changed: Vec<String> = told.changes.iter().map(ToString::to_string).collect();
        let photos = root.path().join("photos");
        let moved = root.path().join("moved");
        let test = root.path().join("test");
        let other = root.path().join("other test");
        assert_eq!(
            changed,
            [
                "epochs 50 → 80".to_owned(),
                "augment_on device → cpu".to_owned(),
                "checkpoint_minutes 10 → 2.5".to_owned(),
                "device gpu → cpu".to_owned(),
                format!("train_dir {} → {}", photos.display(), moved.display()),
                format!("eval_test_dir {} → {}", test.display(), other.display()),
            ],
            "each change listed, the device data budget given as recorded not among them"
        );
        let told = told.request;
        assert_eq!(told.config.epochs, 80);
        assert_eq!(told.config.augment_on, AugmentOn::Cpu);
        assert_eq!(told.config.checkpoint_minutes, 2.5);
        assert_eq!(told.train_dir, moved);
        assert_eq!(told.eval_train_dir, Some(root.path().join("memory")));
        assert_eq!(told.eval_test_dir, Some(other));
        assert_eq!(told.device, DeviceChoice::Cpu);
        assert!(told.accept_changed_folder);
        assert!(told.init_weights.is_some());
    }

    #[test]
    fn an_extension_caps_the_rate_and_every_later_resume_keeps_the_cap() {
        let root = tempfile::tempdir().unwrap();
        // Finished at 0.0003 (a step schedule's last hundredth of 0.03).
        let run = run_folder(root.path(), 50, 0.0003);
        let finished = TrainRequest::resume(&run, ResumeOverrides::default()).unwrap();
        assert!(finished.is_complete(), "no flags: the run is complete");
        let extended = TrainRequest::resume(
            &run,
            ResumeOverrides {
                epochs: Some(80),
                ..ResumeOverrides::default()
            },
        )
        .unwrap();
        assert!(!extended.is_complete());
        assert_eq!(extended.request.config.lr_cap, Some(0.0003));
        // The extended run starts (its record now says 80 epochs and the cap), is stopped, and
        // is resumed with no flags: the cap stays although no length changes this time.
        record_config(&run, &extended.request.config);
        let again = TrainRequest::resume(&run, ResumeOverrides::default()).unwrap();
        assert_eq!(again.request.config.epochs, 80);
        assert_eq!(again.request.config.lr_cap, Some(0.0003));
        assert!(again.changes.is_empty());
        // The rate it trains at is the cap, wherever the re-planned schedule stands.
        assert_eq!(again.request.config.lr_at(60, 0, 10), 0.0003);
    }

    #[test]
    fn fewer_epochs_than_trained_are_refused_and_fewer_than_planned_are_not() {
        let root = tempfile::tempdir().unwrap();
        let run = run_folder(root.path(), 20, 0.03);
        let asked = |epochs| {
            TrainRequest::resume(
                &run,
                ResumeOverrides {
                    epochs: Some(epochs),
                    ..ResumeOverrides::default()
                },
            )
        };
        let error = asked(10).unwrap_err();
        assert!(
            matches!(
                error,
                TrainError::EpochsBelowTrained {
                    asked: 10,
                    trained: 20
                }
            ),
            "{error}"
        );
        let shorter = asked(30).unwrap();
        assert_eq!(shorter.request.config.epochs, 30);
        assert_eq!(
            shorter.request.config.lr_cap, None,
            "a shorter run never raises the rate"
        );
        assert!(asked(20).unwrap().is_complete());
    }

    #[test]
    fn a_folder_without_a_checkpoint_has_nothing_to_resume() {
        let root = tempfile::tempdir().unwrap();
        let run = run_folder(root.path(), 20, 0.03);
        std::fs::remove_file(checkpoint::path(&run)).unwrap();
        let error = TrainRequest::resume(&run, ResumeOverrides::default()).unwrap_err();
        assert!(matches!(error, TrainError::NothingToResume(_)), "{error}");
    }
}
