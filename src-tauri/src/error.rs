//! The one error shape every command returns: `{code, message}`, where `code` is a stable
//! machine-readable kind the UI can branch on and `message` says what went wrong and what to do.

use serde::Serialize;

/// An error as the UI receives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct CommandError {
    /// Stable kind: `data`, `device`, `files`, `eval`, `config`, `busy`, `not_found`, `crashed`,
    /// `canceled`, `forbidden`, `threshold_too_low` (a near-duplicate search found too many pairs).
    pub code: &'static str,
    /// What went wrong and what to do, for a person.
    pub message: String,
}

impl CommandError {
    /// An error of kind `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<spreadout::data::DataError> for CommandError {
    fn from(error: spreadout::data::DataError) -> Self {
        let code = match error {
            spreadout::data::DataError::Canceled(_) => "canceled",
            _ => "data",
        };
        Self::new(code, error.to_string())
    }
}

impl From<spreadout::device::DeviceError> for CommandError {
    fn from(error: spreadout::device::DeviceError) -> Self {
        Self::new("device", error.to_string())
    }
}

impl From<spreadout::remote::RemoteError> for CommandError {
    fn from(error: spreadout::remote::RemoteError) -> Self {
        Self::new("device", error.to_string())
    }
}

/// A training error outside a run (the Augmentations preview): its kind where the UI knows one.
impl From<spreadout::train::TrainError> for CommandError {
    fn from(error: spreadout::train::TrainError) -> Self {
        use spreadout::train::Failure;
        let code = match error.failure() {
            Failure::Data => "data",
            Failure::Device => "device",
            Failure::Files => "files",
            Failure::Eval => "eval",
            Failure::Config => "config",
            _ => "crashed",
        };
        Self::new(code, error.to_string())
    }
}

impl From<spreadout::tensor_files::FileError> for CommandError {
    fn from(error: spreadout::tensor_files::FileError) -> Self {
        Self::new("files", error.to_string())
    }
}

impl From<spreadout::eval::EvalError> for CommandError {
    fn from(error: spreadout::eval::EvalError) -> Self {
        let code = match error {
            spreadout::eval::EvalError::Stopped => "canceled",
            spreadout::eval::EvalError::TooManyPairs { .. } => "threshold_too_low",
            _ => "eval",
        };
        Self::new(code, error.to_string())
    }
}

impl From<spreadout::train::runs::RunFolderError> for CommandError {
    fn from(error: spreadout::train::runs::RunFolderError) -> Self {
        use spreadout::train::runs::RunFolderError;
        let code = match error {
            RunFolderError::NotARun(_) => "not_found",
            RunFolderError::BadName(_) | RunFolderError::Taken(_) => "config",
            RunFolderError::Io { .. } => "files",
        };
        Self::new(code, error.to_string())
    }
}

impl From<spreadout::explore::tables::TableError> for CommandError {
    fn from(error: spreadout::explore::tables::TableError) -> Self {
        Self::new("files", error.to_string())
    }
}

impl From<spreadout::lab::demo::DemoError> for CommandError {
    fn from(error: spreadout::lab::demo::DemoError) -> Self {
        Self::new("files", error.to_string())
    }
}

impl From<spreadout::explore::ExploreError> for CommandError {
    fn from(error: spreadout::explore::ExploreError) -> Self {
        use spreadout::explore::ExploreError;
        match error {
            ExploreError::Data(error) => error.into(),
            ExploreError::Model(error) => error.into(),
            ExploreError::Eval(error) => error.into(),
            other @ ExploreError::NoSuchImage { .. } => Self::new("not_found", other.to_string()),
        }
    }
}

impl From<tauri::Error> for CommandError {
    fn from(error: tauri::Error) -> Self {
        Self::new("app", error.to_string())
    }
}

/// Result of a command.
pub type CommandResult<T> = Result<T, CommandError>;

/// Runs blocking work (decoding, embedding) off the UI's async runtime; a panic inside becomes a
/// `crashed` error instead of taking the app down.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> CommandResult<T> + Send + 'static,
) -> CommandResult<T> {
    tauri::async_runtime::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
            let message = spreadout::support::panics::panic_message(panic.as_ref());
            Err(CommandError::new(
                "crashed",
                format!("the operation crashed ({message}); nothing was changed, please try again"),
            ))
        })
    })
    .await
    .map_err(|error| CommandError::new("crashed", error.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_as_code_and_message() {
        let error: CommandError =
            spreadout::data::DataError::NotADirectory("/tmp/x.png".into()).into();
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["code"], "data");
        assert!(json["message"].as_str().unwrap().contains("/tmp/x.png"));
    }

    #[test]
    fn a_panic_in_blocking_work_is_an_error_not_a_crash() {
        let result: CommandResult<()> = tauri::async_runtime::block_on(blocking(|| panic!("boom")));
        let error = result.unwrap_err();
        assert_eq!(error.code, "crashed");
        assert!(error.message.contains("boom"));
    }
}
