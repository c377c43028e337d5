//! The one error shape every command returns: `{code, message}`, where `code` is a stable
//! machine-readable kind the UI can branch on and `message` says what went wrong and what to do.

use serde::Serialize;

/// An error as the UI receives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct CommandError {
    /// Stable kind: an engine error's `ErrorKind` (`data`, `device`, `files`, `not_found`,
    /// `canceled`, `threshold_too_low`, …), or one of the app's own: `busy`, `forbidden`, `app`,
    /// `crashed`.
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

/// Each engine error becomes a [`CommandError`] of its own kind (`ErrorKind`): the engine
/// classifies, the app only carries the kind to the UI.
macro_rules! engine_errors {
    ($($error:ty),+ $(,)?) => {$(
        impl From<$error> for CommandError {
            fn from(error: $error) -> Self {
                Self::new(error.kind().code(), error.to_string())
            }
        }
    )+};
}

engine_errors!(
    spreadout::data::DataError,
    spreadout::device::DeviceError,
    spreadout::remote::RemoteError,
    spreadout::train::TrainError,
    spreadout::tensor_files::FileError,
    spreadout::eval::EvalError,
    spreadout::train::run_folder::runs::RunFolderError,
    spreadout::explore::tables::TableError,
    spreadout::lab::demo::DemoError,
    spreadout::explore::ExploreError,
);

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
