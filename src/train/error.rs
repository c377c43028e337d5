//! Everything that can stop a run ([`TrainError`]), and the kind of each ([`ErrorKind`]) that a
//! shell words its remedy from.

use std::path::PathBuf;

use super::run_folder::{checkpoint, runs};
use crate::data::DataError;
use crate::device::DeviceError;
use crate::eval::EvalError;
use crate::support::error_kind::ErrorKind;
use crate::tensor_files::FileError;

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The images could not be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The requested device is not available.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The device cannot build these training views.
    #[error("training views on the device: {0}")]
    Views(#[from] spreadout_shaders::views::ViewError),
    /// A file of the run folder could not be written or read.
    #[error(transparent)]
    Files(#[from] FileError),
    /// Evaluation inputs were inconsistent.
    #[error("evaluation: {0}")]
    Eval(#[from] EvalError),
    /// A setting is out of range.
    #[error("invalid setting {setting}: {problem}")]
    Config {
        /// The setting's name in the configuration (`knn_k`, `lr`, …), which a shell words as
        /// its own control (a CLI flag, a field of the app).
        setting: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Starting fresh would overwrite a run.
    #[error(
        "{} already holds a run; resume it, start again over it (its files are first moved into {}), or choose another run folder",
        .0.display(), .0.join(runs::TRASH_DIR).display()
    )]
    ExistingRun(PathBuf),
    /// The run folder holds files that are not a run's: nothing is written there.
    #[error(
        "{} is not empty and holds no Spreadout run (it has {}); nothing was written. Choose a new or empty folder for the run",
        .dir.display(), .example.display()
    )]
    ForeignFolder {
        /// The run folder asked for.
        dir: PathBuf,
        /// One of the files or folders found there.
        example: PathBuf,
    },
    /// A resume asked for fewer epochs than the run has trained.
    #[error(
        "the run has already trained {trained} epochs, more than the {asked} asked for; give at least {trained}"
    )]
    EpochsBelowTrained {
        /// Epochs asked for.
        asked: usize,
        /// Epochs the checkpoint holds.
        trained: usize,
    },
    /// The run folder is a folder of images the run reads, or above one.
    #[error(
        "cannot write the run into {}: it is or holds {}, whose images this run reads. Choose a run folder apart from the images, so that the run's files never mix with them and deleting the run can never touch them",
        .out.display(), .images.display()
    )]
    OutHoldsImages {
        /// The run folder asked for.
        out: PathBuf,
        /// The training or evaluation folder at or inside it.
        images: PathBuf,
    },
    /// `--resume` without a checkpoint.
    #[error("nothing to resume: {} has no {}; start a new run instead", .0.display(), checkpoint::CHECKPOINT_FILE)]
    NothingToResume(PathBuf),
    /// The training folder is not what the run was trained on.
    #[error(
        "{} changed since this run started: it had {before} image files, now {now}{}; resuming would train on different data",
        .dir.display(),
        if .before == .now { " (same count, but files were replaced, renamed or modified)" } else { "" }
    )]
    FolderChanged {
        /// The training folder.
        dir: PathBuf,
        /// Image files when the run was recorded.
        before: usize,
        /// Image files now.
        now: usize,
    },
    /// The loss, or the weights about to be saved, became NaN or infinite.
    #[error(
        "training diverged at epoch {epoch}, step {step}: the loss or the weights became {loss}; the last good checkpoint is kept"
    )]
    NonFinite {
        /// Epoch (1-based).
        epoch: usize,
        /// Step (1-based).
        step: usize,
        /// The value.
        loss: f64,
    },
    /// The session with the machine serving the device broke off mid-run.
    #[error(
        "lost the training server at {address} ({reason}); the last checkpoint is kept: once the server runs again, resume the run"
    )]
    ServerLost {
        /// The server, `ws://HOST:PORT`.
        address: String,
        /// What broke.
        reason: String,
    },
    /// The worker thread panicked.
    #[error("training crashed: {0}; the last good checkpoint is kept")]
    Panicked(String),
}

impl TrainError {
    /// The configuration setting this error is about, where it is about one (a setting out of
    /// range, fewer epochs than the run trained): what a shell names its control for.
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            Self::Config { setting, .. } => Some(setting),
            Self::EpochsBelowTrained { .. } => Some("epochs"),
            _ => None,
        }
    }

    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Data(error) => error.kind(),
            Self::Device(error) => error.kind(),
            Self::Views(_) => ErrorKind::Device,
            Self::Files(error) => error.kind(),
            Self::Eval(error) => error.kind(),
            Self::Config { .. } | Self::EpochsBelowTrained { .. } => ErrorKind::Config,
            Self::ForeignFolder { .. } => ErrorKind::ForeignFolder,
            Self::ExistingRun(_) => ErrorKind::ExistingRun,
            Self::OutHoldsImages { .. } => ErrorKind::OutHoldsImages,
            Self::NothingToResume(_) => ErrorKind::NothingToResume,
            Self::FolderChanged { .. } => ErrorKind::ChangedFolder,
            Self::NonFinite { .. } => ErrorKind::Diverged,
            Self::Panicked(_) => ErrorKind::Crashed,
            Self::ServerLost { .. } => ErrorKind::ServerLost,
        }
    }
}
