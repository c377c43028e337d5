//! Resuming a run, decided in one place for every shell: the request that continues the run in
//! a folder, built from its `run.json` and its checkpoint's header, read once
//! ([`TrainRequest::resume`]), with only what the person changed in place of the record; and how
//! the run, once started, meets what it starts from: the state in its folder (or a folder a new
//! run may use), the device and where its views are built, each with the fallback a resumed run
//! takes where this machine differs from the one it was recorded on, and its training folder
//! checked against its record.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::run_folder::{checkpoint, runs};
use super::{AugmentOn, Start, TrainConfig, TrainError, TrainEvent, TrainRequest};
use crate::data::{FolderFingerprint, ImageSet};
use crate::device::{self, DeviceChoice, SelectedDevice};

/// Where a resumed run stands, as [`TrainRequest::resume`] read it: its checkpoint's header and
/// the training folder its `run.json` recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    /// The run's position, settings and normalisation (the checkpoint's header).
    pub state: checkpoint::RunState,
    /// What the training folder held (runs recorded before fingerprints existed have none).
    pub folder: Option<FolderFingerprint>,
}

impl TrainRequest {
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
        // The run's record and its checkpoint's header, read once here: the run itself starts
        // from what the request carries (its position and its folder's fingerprint).
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
        let epochs_completed = state.epochs_completed;
        let steps_into_epoch = state.steps_into_epoch;
        let mut request = Self::new(config, train_dir_now, run_dir.to_owned())
            .evaluated_on(eval_train_now, eval_test_now)
            .on(device_choice)
            .with_cache_dir(cache_dir)
            .with_init_weights(record.init_weights);
        request.start = Start::Resume(Box::new(ResumePoint {
            state,
            folder: record.folder,
        }));
        request.accept_changed_folder = accept_changed_folder;
        Ok(Resumption {
            request,
            changes,
            epochs_completed,
            steps_into_epoch,
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

/// The device the request asks for, able to train at the configuration's precision; its notice
/// (a fallback to the CPU) becomes a warning. A resumed run whose recorded adapter is not on
/// this machine (another computer, a removed GPU) goes on with what `auto` finds, saying why.
pub(super) fn select_device(
    request: &TrainRequest,
    config: &TrainConfig,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<SelectedDevice, TrainError> {
    let local_adapter = matches!(request.device, DeviceChoice::Gpu | DeviceChoice::Adapter(_));
    let selected = match device::select(request.device.clone()) {
        Err(error) if request.is_resume() && local_adapter => {
            let selected = device::select(DeviceChoice::Auto)?;
            emit(TrainEvent::Warning {
                message: format!(
                    "the run trained on device {}, which is not available here ({error}); it continues on {}",
                    request.device, selected.name
                ),
            });
            selected
        }
        other => other?,
    };
    device::check_precision(&selected, config.precision)?;
    if let Some(notice) = &selected.notice {
        emit(TrainEvent::Warning {
            message: notice.clone(),
        });
    }
    Ok(selected)
}

/// Whether the run builds its views on `selected`. A resumed run recorded with views on the
/// device, continuing where there is no device to build them (the CPU backend), builds them on
/// the CPU instead, saying so: the views are the same either way.
pub(super) fn views_on_device(
    request: &TrainRequest,
    selected: &SelectedDevice,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<bool, TrainError> {
    match request.config.augment_on.on_device(selected) {
        Err(error) if request.is_resume() => {
            emit(TrainEvent::Warning {
                message: format!(
                    "the run built its views on the device; on {} they are built on the CPU instead ({error})",
                    selected.name
                ),
            });
            Ok(false)
        }
        other => other,
    }
}

/// The state of the run in `request.out` when it is resumed (as [`TrainRequest::resume`] read
/// it from the checkpoint's header), `None` for a new run. Before anything is written: a new run is refused over a run
/// unless it starts again over it, and anywhere that holds files that are not a run's.
pub(super) fn previous_state(
    request: &TrainRequest,
) -> Result<Option<checkpoint::RunState>, TrainError> {
    let out = &request.run_dir;
    if let Start::Resume(point) = &request.start {
        return Ok(Some(point.state.clone()));
    }
    match runs::folder_use(out)? {
        runs::FolderUse::Empty => Ok(None),
        runs::FolderUse::Run if request.start == Start::Overwrite => Ok(None),
        runs::FolderUse::Run => Err(TrainError::ExistingRun(out.clone())),
        runs::FolderUse::Foreign(example) => Err(TrainError::ForeignFolder {
            dir: out.clone(),
            example,
        }),
    }
}

/// On resume: the training folder must hold what the run was recorded with (count and a digest of paths,
/// sizes and modification times), unless the request accepts the change, which is then warned
/// about. Runs recorded before fingerprints existed are not checked.
pub(super) fn check_folder_unchanged(
    request: &TrainRequest,
    train: &ImageSet,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<(), TrainError> {
    let Start::Resume(point) = &request.start else {
        return Ok(());
    };
    let Some(recorded) = &point.folder else {
        return Ok(());
    };
    if *recorded == train.fingerprint {
        return Ok(());
    }
    let error = TrainError::FolderChanged {
        dir: request.train_dir.clone(),
        before: recorded.images,
        now: train.fingerprint.images,
    };
    if !request.accept_changed_folder {
        return Err(error);
    }
    emit(TrainEvent::Warning {
        message: format!("continuing as asked although {error}"),
    });
    Ok(())
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
        assert_eq!(kept.run_dir, run);
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
