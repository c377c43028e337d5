//! Run folders: what one holds besides the checkpoint (the run record, per-epoch model snapshots),
//! and reading a run back so a person can browse it, compare its epochs, or resume it.
//!
//! ```text
//! run/
//!   run.json                 RunRecord: data, device, configuration
//!   metrics.jsonl            one EpochMetrics per line
//!   checkpoint.safetensors   weights + momentum + RunState (resume)
//!   model.safetensors        latest export (PyTorch keys) + config.json
//!   snapshots/epoch-0004/    model.safetensors + config.json of chosen epochs
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{METRICS_FILE, RUN_FILE, SKIPPED_FILE, checkpoint, read_metrics};
use crate::augment::Normalization;
use crate::data::FolderFingerprint;
use crate::device::DeviceChoice;
use crate::model_files;
use crate::support::error_kind::ErrorKind;
use crate::support::paths::disk_use;
use crate::tensor_files::FileError;
use crate::train::{EpochMetrics, TrainConfig};

/// Folder of per-epoch model snapshots inside a run folder.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// What a run was started with; `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct RunRecord {
    /// Name of the device it trained on.
    pub device: String,
    /// The device as the person chose it (`auto`, `gpu`, an adapter, a server), which a resume
    /// without `--device` asks for again; runs recorded before it existed resume on `auto`.
    #[serde(default)]
    pub device_choice: Option<DeviceChoice>,
    /// Training images.
    #[serde(with = "crate::support::paths")]
    #[ts(type = "string")]
    pub train_dir: PathBuf,
    /// Labelled kNN memory folder, if one was given.
    #[serde(with = "crate::support::paths::option")]
    #[ts(type = "string | null")]
    pub eval_train_dir: Option<PathBuf>,
    /// Labelled test folder, if one was given.
    #[serde(with = "crate::support::paths::option")]
    #[ts(type = "string | null")]
    pub eval_test_dir: Option<PathBuf>,
    /// Usable training images.
    pub images: usize,
    /// Skipped training files.
    pub skipped: usize,
    /// Label folder names of the training folder (empty without labels).
    pub labels: Vec<String>,
    /// Input normalisation estimated from the training images.
    pub normalization: Normalization,
    /// Hyper-parameters.
    pub config: TrainConfig,
    /// What the training folder held (runs recorded before this existed have none).
    #[serde(default)]
    pub folder: Option<FolderFingerprint>,
    /// Pretrained weights the run started from (`--init`), if any.
    #[serde(default, with = "crate::support::paths::option")]
    #[ts(type = "string | null")]
    pub init_weights: Option<PathBuf>,
}

/// Reads a run folder's `run.json`.
///
/// # Errors
/// [`FileError`] naming the file when it is missing or unreadable.
pub fn read_record(run_dir: &Path) -> Result<RunRecord, FileError> {
    let record_path = run_dir.join(RUN_FILE);
    let bytes = fs::read(&record_path).map_err(FileError::io(&record_path))?;
    serde_json::from_slice(&bytes).map_err(|error| FileError::format(&record_path, error))
}

/// The folder for a new run on `train_dir` started at `now`, under `root`:
/// `<train folder's name>-YYYY-MM-DD-HHMMSS` in UTC, readable, sorting by start time, and safe in
/// a folder name on every platform (no colons).
pub fn new_run_dir(root: &Path, train_dir: &Path, now: SystemTime) -> PathBuf {
    let name = train_dir.file_name().map_or_else(
        || "images".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    root.join(format!("{name}-{}", utc_stamp(now)))
}

/// `now` as `YYYY-MM-DD-HHMMSS` in UTC.
fn utc_stamp(now: SystemTime) -> String {
    let utc = time::OffsetDateTime::from(now);
    format!(
        "{:04}-{:02}-{:02}-{:02}{:02}{:02}",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

/// Where the snapshot of `epoch` lives in `run_dir`.
pub fn snapshot_dir(run_dir: &Path, epoch: usize) -> PathBuf {
    run_dir
        .join(SNAPSHOTS_DIR)
        .join(format!("epoch-{epoch:04}"))
}

/// Whether the model after `epoch` (1-based) of `epochs` is kept as a snapshot. Short runs keep
/// every epoch; long ones keep powers of two and the last, so a 200-epoch ResNet-18 keeps 9
/// snapshots (~400 MB) rather than 200, and early epochs, where most change happens, stay
/// comparable.
pub fn keeps_snapshot(epoch: usize, epochs: usize) -> bool {
    epochs <= 16 || epoch.is_power_of_two() || epoch == epochs
}

/// A kept model snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Snapshot {
    /// Epoch after which it was taken (1-based).
    pub epoch: usize,
    /// Its folder (holds `model.safetensors` and `config.json`).
    pub dir: PathBuf,
}

/// The snapshots of `run_dir`, oldest first.
pub fn snapshots(run_dir: &Path) -> Vec<Snapshot> {
    let Ok(entries) = fs::read_dir(run_dir.join(SNAPSHOTS_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<Snapshot> = entries
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            let epoch = dir
                .file_name()?
                .to_str()?
                .strip_prefix("epoch-")?
                .parse()
                .ok()?;
            dir.join(model_files::MODEL_FILE)
                .is_file()
                .then_some(Snapshot { epoch, dir })
        })
        .collect();
    found.sort_by_key(|snapshot| snapshot.epoch);
    found
}

/// Everything the app shows about a run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct RunInfo {
    /// The run folder.
    pub dir: PathBuf,
    /// How it was started.
    pub record: RunRecord,
    /// Epochs finished and checkpointed.
    pub epochs_completed: usize,
    /// Metrics of every finished epoch.
    pub metrics: Vec<EpochMetrics>,
    /// Kept model snapshots.
    pub snapshots: Vec<Snapshot>,
    /// Whether the run stopped before its last epoch (closed, crashed or stopped, in its first
    /// epoch too) with a checkpoint, so it can be resumed.
    pub unfinished: bool,
    /// Bytes the run folder takes on disk (checkpoint, model, snapshots).
    pub bytes: u64,
}

/// Reads a run folder back.
///
/// # Errors
/// [`FileError`] naming the file when `run.json` is missing, or it, the checkpoint or the
/// metrics are unreadable. A run without metrics has not finished an epoch yet.
pub fn describe(run_dir: &Path) -> Result<RunInfo, FileError> {
    let record = read_record(run_dir)?;
    let resumable = checkpoint::path(run_dir).exists();
    let epochs_completed = if resumable {
        checkpoint::read_state(run_dir)?.epochs_completed
    } else {
        0
    };
    // A fresh run starts its metrics file at its first epoch's end: until then it has none.
    let metrics = if run_dir.join(METRICS_FILE).exists() {
        read_metrics(run_dir)?
    } else {
        Vec::new()
    };
    Ok(RunInfo {
        dir: run_dir.to_owned(),
        unfinished: resumable && epochs_completed < record.config.epochs,
        record,
        epochs_completed,
        metrics,
        snapshots: snapshots(run_dir),
        bytes: disk_use(run_dir),
    })
}

/// Why a run folder could not be renamed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    /// The folder holds no `run.json`: it is not a run, and is left alone.
    #[error("{} is not a run folder (it has no {RUN_FILE}); nothing was changed", .0.display())]
    NotARun(PathBuf),
    /// The new name is empty, has a path separator or starts with a dot.
    #[error(
        "\"{0}\" cannot name a run folder: use a plain name without / or \\ that does not start with a dot"
    )]
    BadName(String),
    /// A folder of that name exists already.
    #[error("{} exists already; choose another name", .0.display())]
    Taken(PathBuf),
    /// The file system refused.
    #[error("cannot change {}: {source}", .path.display())]
    Io {
        /// The run folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

impl RunFolderError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotARun(_) => ErrorKind::NotFound,
            Self::BadName(_) | Self::Taken(_) => ErrorKind::Config,
            Self::Io { .. } => ErrorKind::Files,
        }
    }
}

fn ensure_run(run_dir: &Path) -> Result<(), RunFolderError> {
    if run_dir.join(RUN_FILE).is_file() {
        Ok(())
    } else {
        Err(RunFolderError::NotARun(run_dir.to_owned()))
    }
}

/// Renames the run folder `run_dir` to `name` beside it; returns the new folder. Snapshot paths
/// are found afresh from the folder, so nothing inside needs rewriting.
///
/// # Errors
/// [`RunFolderError`]: not a run, a bad or taken name, or the rename failed.
pub fn rename(run_dir: &Path, name: &str) -> Result<PathBuf, RunFolderError> {
    ensure_run(run_dir)?;
    let name = name.trim();
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(RunFolderError::BadName(name.to_owned()));
    }
    let target = run_dir.with_file_name(name);
    if target.exists() {
        return Err(RunFolderError::Taken(target));
    }
    fs::rename(run_dir, &target).map_err(|source| RunFolderError::Io {
        path: run_dir.to_owned(),
        source,
    })?;
    Ok(target)
}

/// Folder of a run folder where starting again over the run (`--overwrite`) moves the earlier
/// run's files, one `YYYY-MM-DD-HHMMSS` folder per time; deleting the run deletes them too.
pub const TRASH_DIR: &str = "trash";

/// Files an operating system leaves in folders by itself; they do not make a folder someone's.
const OS_LITTER: [&str; 3] = [".DS_Store", "Thumbs.db", "desktop.ini"];

/// What a folder holds, for a new run there.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::train) enum FolderUse {
    /// Missing, or nothing but what the OS leaves.
    Empty,
    /// A run's (`run.json` or a checkpoint), maybe with other files.
    Run,
    /// Other files; one of them named.
    Foreign(PathBuf),
}

/// What `dir` holds ([`FolderUse`]).
///
/// # Errors
/// [`FileError`] when the folder exists but cannot be listed.
pub(in crate::train) fn folder_use(dir: &Path) -> Result<FolderUse, FileError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(FolderUse::Empty),
        Err(error) => return Err(FileError::io(dir)(error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(FileError::io(dir))?.file_name();
        if !OS_LITTER.iter().any(|litter| name == *litter) {
            names.push(name);
        }
    }
    names.sort();
    Ok(if names.is_empty() {
        FolderUse::Empty
    } else if dir.join(RUN_FILE).is_file() || checkpoint::path(dir).is_file() {
        FolderUse::Run
    } else {
        FolderUse::Foreign(dir.join(&names[0]))
    })
}

/// Moves the run files of `run_dir` (those [`delete`] would remove, snapshots included) into a
/// new folder of its [`TRASH_DIR`] named for `now`, and returns that folder (`None` when the
/// folder holds no run): starting again over a run never deletes the earlier one. Anything else
/// in the folder stays where it is.
///
/// # Errors
/// [`FileError`] naming the file that could not be moved.
pub(in crate::train) fn set_aside(
    run_dir: &Path,
    now: SystemTime,
) -> Result<Option<PathBuf>, FileError> {
    if folder_use(run_dir)? != FolderUse::Run {
        return Ok(None);
    }
    let trash = run_dir.join(TRASH_DIR);
    let stamp = utc_stamp(now);
    let target = (1..)
        .map(|n| match n {
            1 => trash.join(&stamp),
            n => trash.join(format!("{stamp}-{n}")),
        })
        .find(|candidate| fs::symlink_metadata(candidate).is_err())
        .expect("some numbered name is free");
    fs::create_dir_all(&target).map_err(FileError::io(&target))?;
    for name in RUN_FILES.iter().chain(&[SNAPSHOTS_DIR]) {
        let from = run_dir.join(name);
        if fs::symlink_metadata(&from).is_ok() {
            fs::rename(&from, target.join(name)).map_err(FileError::io(&from))?;
        }
    }
    Ok(Some(target))
}

/// What deleting a run removed and what it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct DeletedRun {
    /// Bytes the run's files took.
    pub bytes: u64,
    /// What the run folder held besides a run's own files, left where it was with the folder;
    /// empty when the folder itself is gone.
    #[serde(with = "crate::support::paths::list")]
    #[ts(type = "Array<string>")]
    pub kept: Vec<PathBuf>,
}

/// Files a run writes at the top of its folder ([`SNAPSHOTS_DIR`] holds the rest).
const RUN_FILES: [&str; 6] = [
    RUN_FILE,
    METRICS_FILE,
    SKIPPED_FILE,
    checkpoint::CHECKPOINT_FILE,
    model_files::MODEL_FILE,
    model_files::CONFIG_FILE,
];

/// Deletes the run in `run_dir`: the files a run writes (`run.json`, metrics, checkpoint, model,
/// `skipped.json`, snapshots), then the folder if that left it empty. Anything else in it (a run
/// folder can have been pointed at a folder of photos) is never touched and is listed in the
/// result; only a folder holding a `run.json` is changed at all.
///
/// # Errors
/// [`RunFolderError`]: not a run, or a removal failed.
pub fn delete(run_dir: &Path) -> Result<DeletedRun, RunFolderError> {
    ensure_run(run_dir)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RunFolderError::Io { path, source }
    };
    let before = disk_use(run_dir);
    remove_run_files(run_dir).map_err(io(run_dir))?;
    // Earlier runs moved aside by starting again over them are this run's files too.
    let trash = run_dir.join(TRASH_DIR);
    if is_real_dir(&trash) {
        for entry in fs::read_dir(&trash).map_err(io(&trash))? {
            let earlier = entry.map_err(io(&trash))?.path();
            if is_real_dir(&earlier) {
                remove_run_files(&earlier).map_err(io(&earlier))?;
                remove_if_empty(&earlier).map_err(io(&earlier))?;
            }
        }
        remove_if_empty(&trash).map_err(io(&trash))?;
    }
    remove_if_empty(run_dir).map_err(io(run_dir))?;
    let mut kept: Vec<PathBuf> = match fs::read_dir(run_dir) {
        Ok(entries) => entries
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()
            .map_err(io(run_dir))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io(run_dir)(error)),
    };
    kept.sort();
    Ok(DeletedRun {
        bytes: before.saturating_sub(disk_use(run_dir)),
        kept,
    })
}

/// Removes the files a run writes in `dir`: [`RUN_FILES`] and the snapshots' models.
fn remove_run_files(dir: &Path) -> std::io::Result<()> {
    let snapshots = dir.join(SNAPSHOTS_DIR);
    if is_real_dir(&snapshots) {
        for entry in fs::read_dir(&snapshots)? {
            let epoch_dir = entry?.path();
            let is_snapshot = epoch_dir
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("epoch-"));
            if is_snapshot && is_real_dir(&epoch_dir) {
                for name in [model_files::MODEL_FILE, model_files::CONFIG_FILE] {
                    remove_file(&epoch_dir.join(name))?;
                }
                remove_if_empty(&epoch_dir)?;
            }
        }
        remove_if_empty(&snapshots)?;
    }
    for name in RUN_FILES {
        remove_file(&dir.join(name))?;
    }
    Ok(())
}

/// Whether `path` is a folder itself, not a link to one (a link is never followed into).
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Removes the file (or link) `path` if there is one; a folder of that name is left alone.
fn remove_file(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Removes the folder `dir` when nothing is left in it.
fn remove_if_empty(dir: &Path) -> std::io::Result<()> {
    if fs::read_dir(dir)?.next().is_none() {
        fs::remove_dir(dir)?;
    }
    Ok(())
}

/// The run folders directly inside `root`, most recently changed first; folders that are not
/// runs (no `run.json`) are ignored, damaged runs are reported through `tracing` and left out.
pub fn list(root: &Path) -> Vec<RunInfo> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut runs: Vec<(std::time::SystemTime, RunInfo)> = entries
        .filter_map(|entry| {
            let dir = entry.ok()?.path();
            let modified = fs::metadata(dir.join(RUN_FILE)).ok()?.modified().ok()?;
            match describe(&dir) {
                Ok(info) => Some((modified, info)),
                Err(error) => {
                    tracing::warn!("ignoring run folder {}: {error}", dir.display());
                    None
                }
            }
        })
        .collect();
    runs.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    runs.into_iter().map(|(_, info)| info).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folder_times_are_utc_calendar_dates() {
        let at = |seconds| {
            new_run_dir(
                Path::new("runs"),
                Path::new("/data/photos"),
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
            )
        };
        assert_eq!(at(0), Path::new("runs/photos-1970-01-01-000000"));
        assert_eq!(
            at(951_782_400 + 3_723),
            Path::new("runs/photos-2000-02-29-010203")
        );
        assert_eq!(
            at(1_795_748_100),
            Path::new("runs/photos-2026-11-27-025500")
        );
        let unnamed = new_run_dir(Path::new("runs"), Path::new("/"), std::time::UNIX_EPOCH);
        assert_eq!(unnamed, Path::new("runs/images-1970-01-01-000000"));
    }

    #[test]
    fn short_runs_keep_every_epoch_long_runs_powers_of_two_and_the_last() {
        assert!((1..=12).all(|epoch| keeps_snapshot(epoch, 12)));
        let kept: Vec<usize> = (1..=200).filter(|&e| keeps_snapshot(e, 200)).collect();
        assert_eq!(kept, vec![1, 2, 4, 8, 16, 32, 64, 128, 200]);
    }

    #[test]
    fn snapshots_are_listed_by_epoch_and_need_a_model_file() {
        let run = tempfile::tempdir().unwrap();
        for epoch in [10, 2, 1] {
            let dir = snapshot_dir(run.path(), epoch);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(model_files::MODEL_FILE), b"x").unwrap();
        }
        fs::create_dir_all(snapshot_dir(run.path(), 3)).unwrap();
        let epochs: Vec<usize> = snapshots(run.path()).iter().map(|s| s.epoch).collect();
        assert_eq!(epochs, vec![1, 2, 10]);
    }

    #[test]
    fn runs_are_renamed_and_deleted_only_when_they_are_runs() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("photos-20261201");
        fs::create_dir_all(snapshot_dir(&run, 1)).unwrap();
        fs::write(run.join(RUN_FILE), b"{}").unwrap();
        fs::write(
            snapshot_dir(&run, 1).join(model_files::MODEL_FILE),
            [0u8; 100],
        )
        .unwrap();
        assert_eq!(disk_use(&run), 102);
        assert!(matches!(
            rename(&run, "a/b"),
            Err(RunFolderError::BadName(_))
        ));
        assert!(matches!(
            rename(&run, ".hidden"),
            Err(RunFolderError::BadName(_))
        ));
        fs::create_dir(root.path().join("taken")).unwrap();
        assert!(matches!(
            rename(&run, "taken"),
            Err(RunFolderError::Taken(_))
        ));
        let renamed = rename(&run, " holiday photos ").unwrap();
        assert_eq!(renamed, root.path().join("holiday photos"));
        assert_eq!(snapshots(&renamed).len(), 1);
        let not_a_run = root.path().join("taken");
        assert!(matches!(
            delete(&not_a_run),
            Err(RunFolderError::NotARun(_))
        ));
        assert!(
            not_a_run.exists(),
            "a folder that is not a run is never deleted"
        );
        assert_eq!(delete(&renamed).unwrap().bytes, 102);
        assert!(!renamed.exists());
    }

    #[test]
    fn deleting_a_run_leaves_what_it_did_not_write_and_then_the_folder() {
        // A run pointed at a folder of photos (`--out ~/Photos` before it was refused).
        let photos = tempfile::tempdir().unwrap();
        let run = photos.path();
        fs::write(run.join("beach.jpg"), [1u8; 7]).unwrap();
        fs::create_dir_all(run.join("2024")).unwrap();
        fs::write(run.join("2024/cat.jpg"), [2u8; 5]).unwrap();
        for name in RUN_FILES {
            fs::write(run.join(name), [0u8; 10]).unwrap();
        }
        let snapshot = snapshot_dir(run, 4);
        fs::create_dir_all(&snapshot).unwrap();
        fs::write(snapshot.join(model_files::MODEL_FILE), [0u8; 20]).unwrap();
        fs::write(snapshot.join(model_files::CONFIG_FILE), [0u8; 3]).unwrap();
        fs::write(run.join(SNAPSHOTS_DIR).join("notes.txt"), [3u8; 2]).unwrap();

        let deleted = delete(run).unwrap();
        assert_eq!(deleted.bytes, 6 * 10 + 20 + 3);
        assert_eq!(
            deleted.kept,
            vec![
                run.join("2024"),
                run.join("beach.jpg"),
                run.join(SNAPSHOTS_DIR)
            ]
        );
        assert_eq!(fs::read(run.join("beach.jpg")).unwrap(), [1u8; 7]);
        assert_eq!(fs::read(run.join("2024/cat.jpg")).unwrap(), [2u8; 5]);
        assert!(run.join(SNAPSHOTS_DIR).join("notes.txt").is_file());
        assert!(!snapshot.exists(), "the emptied snapshot folder goes");
        for name in RUN_FILES {
            assert!(!run.join(name).exists(), "{name} is a run's file");
        }

        // A run folder holding only a run's files goes entirely.
        let root = tempfile::tempdir().unwrap();
        let only = root.path().join("run");
        fs::create_dir_all(snapshot_dir(&only, 1)).unwrap();
        fs::write(only.join(RUN_FILE), b"{}").unwrap();
        fs::write(snapshot_dir(&only, 1).join(model_files::MODEL_FILE), b"x").unwrap();
        let deleted = delete(&only).unwrap();
        assert_eq!((deleted.bytes, deleted.kept), (3, Vec::new()));
        assert!(!only.exists());
    }

    #[test]
    fn a_run_without_metrics_has_no_epochs_yet_and_is_resumable_with_a_checkpoint() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        fs::create_dir_all(&run).unwrap();
        let record = RunRecord {
            device_choice: None,
            device: "CPU".to_owned(),
            train_dir: root.path().join("photos"),
            eval_train_dir: None,
            eval_test_dir: None,
            images: 10,
            skipped: 0,
            labels: Vec::new(),
            normalization: Normalization::IDENTITY,
            config: TrainConfig::default(),
            folder: None,
            init_weights: None,
        };
        fs::write(run.join(RUN_FILE), serde_json::to_vec(&record).unwrap()).unwrap();
        let info = describe(&run).unwrap();
        assert_eq!((info.epochs_completed, info.metrics.len()), (0, 0));
        assert!(
            !info.unfinished,
            "without a checkpoint there is nothing to resume"
        );
        assert_eq!(list(root.path()).len(), 1);
    }

    #[test]
    fn a_folder_without_a_run_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = describe(dir.path()).unwrap_err().to_string();
        assert!(error.contains(RUN_FILE), "{error}");
        assert!(list(dir.path()).is_empty());
    }
}
