//! The one classification of the engine's errors ([`ErrorKind`]), as `std::io::ErrorKind` is
//! std's: every engine error says its kind (`kind()`), and each shell keys what it does on the
//! kind alone: the CLI's remedies (a flag), the app's error codes and the UI's messages (a
//! control). The engine says what happened; the kind lets a shell say what to do about it.

use serde::{Deserialize, Serialize};

/// What kind of thing went wrong, in words a shell can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The images could not be read.
    Data,
    /// The image cache could not be written.
    Cache,
    /// The device is missing, cannot be reached or cannot train this way.
    Device,
    /// A GPU was asked for and none is usable.
    NoGpu,
    /// The device cannot compute at the precision asked for.
    Precision,
    /// A file could not be written or read.
    Files,
    /// The evaluation could not be done.
    Eval,
    /// A near-duplicate threshold so low that the pairs above it would not fit in memory.
    ThresholdTooLow,
    /// A setting is out of range.
    Config,
    /// What was asked for is not there (a run folder, an image of the collection).
    NotFound,
    /// The person cancelled it.
    Canceled,
    /// A new run was asked for where a run already is.
    ExistingRun,
    /// The run folder holds files that are not a run's.
    ForeignFolder,
    /// The run folder is or holds the images.
    OutHoldsImages,
    /// A resume was asked for where there is no checkpoint.
    NothingToResume,
    /// The training folder changed since the run started; it can be accepted.
    ChangedFolder,
    /// The loss or the weights stopped being finite.
    Diverged,
    /// The work crashed.
    Crashed,
    /// The machine serving the device stopped answering; the run resumes once it serves again.
    ServerLost,
}

impl ErrorKind {
    /// The kind as the app's IPC and JSON write it (`no_gpu`, `existing_run`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Cache => "cache",
            Self::Device => "device",
            Self::NoGpu => "no_gpu",
            Self::Precision => "precision",
            Self::Files => "files",
            Self::Eval => "eval",
            Self::ThresholdTooLow => "threshold_too_low",
            Self::Config => "config",
            Self::NotFound => "not_found",
            Self::Canceled => "canceled",
            Self::ExistingRun => "existing_run",
            Self::ForeignFolder => "foreign_folder",
            Self::OutHoldsImages => "out_holds_images",
            Self::NothingToResume => "nothing_to_resume",
            Self::ChangedFolder => "changed_folder",
            Self::Diverged => "diverged",
            Self::Crashed => "crashed",
            Self::ServerLost => "server_lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn each_code_is_the_name_serde_writes() {
        let kinds = [
            ErrorKind::Data,
            ErrorKind::Cache,
            ErrorKind::Device,
            ErrorKind::NoGpu,
            ErrorKind::Precision,
            ErrorKind::Files,
            ErrorKind::Eval,
            ErrorKind::ThresholdTooLow,
            ErrorKind::Config,
            ErrorKind::NotFound,
            ErrorKind::Canceled,
            ErrorKind::ExistingRun,
            ErrorKind::ForeignFolder,
            ErrorKind::OutHoldsImages,
            ErrorKind::NothingToResume,
            ErrorKind::ChangedFolder,
            ErrorKind::Diverged,
            ErrorKind::Crashed,
            ErrorKind::ServerLost,
        ];
        for kind in kinds {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.code())
            );
        }
    }
}
