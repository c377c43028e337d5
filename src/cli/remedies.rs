//! CLI: how the library's errors and a resume's changes are worded on the command line, each
//! remedy keyed on the error's kind ([`ErrorKind`]) and worded as the flag that applies it (the
//! app words the same kinds as its own controls).

use spreadout::data::DataError;
use spreadout::device::DeviceError;
use spreadout::eval::EvalError;
use spreadout::explore::ExploreError;
use spreadout::explore::planted::PlantError;
use spreadout::lab::demo::DemoError;
use spreadout::remote::RemoteError;
use spreadout::score::ScoreError;
use spreadout::serve::ServeError;
use spreadout::support::error_kind::ErrorKind;
use spreadout::tensor_files::FileError;
use spreadout::train::TrainError;
use spreadout::train::run_folder::runs::RunFolderError;

/// `error` with the command line's remedy appended where there is one. The library says what went
/// wrong and leaves what to do to its shell, because the remedy is a control of the shell: a flag
/// here, a button or a field in the app.
pub fn with_remedy(error: anyhow::Error) -> anyhow::Error {
    match remedy(&error) {
        Some(remedy) => anyhow::anyhow!("{error:#}. {remedy}"),
        None => error,
    }
}

fn remedy(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        let (kind, setting) = kind_of(cause)?;
        remedy_for(kind, setting)
    })
}

/// The kind of `cause` where it is an engine error, with the setting it names (a setting out of
/// range); `None` for anything else, such as a context this shell added.
fn kind_of(cause: &(dyn std::error::Error + 'static)) -> Option<(ErrorKind, Option<&'static str>)> {
    if let Some(error) = cause.downcast_ref::<TrainError>() {
        return Some((error.kind(), error.setting()));
    }
    macro_rules! kind_of_any {
        ($($error:ty),+) => {$(
            if let Some(error) = cause.downcast_ref::<$error>() {
                return Some((error.kind(), None));
            }
        )+};
    }
    kind_of_any!(
        DeviceError,
        DataError,
        RemoteError,
        FileError,
        EvalError,
        ExploreError,
        ScoreError,
        PlantError,
        DemoError,
        RunFolderError,
        ServeError
    );
    None
}

/// What to type about an error of `kind`, where the command line has a way.
fn remedy_for(kind: ErrorKind, setting: Option<&str>) -> Option<String> {
    Some(match kind {
        ErrorKind::ChangedFolder => {
            "Pass --accept-changed-folder to continue on the folder as it is now".to_owned()
        }
        ErrorKind::Diverged => {
            // A resume keeps the run's own settings, so it would diverge again.
            "Start a new run with a lower learning rate (--lr) or a higher --tau".to_owned()
        }
        ErrorKind::ExistingRun => {
            "Pass --resume to continue it, --overwrite to start again over it, or choose another folder with --out".to_owned()
        }
        ErrorKind::NothingToResume => "Start without --resume".to_owned(),
        ErrorKind::ServerLost => {
            "Start `spreadout serve` on that machine again, then rerun this command with --resume"
                .to_owned()
        }
        ErrorKind::Config => format!("Set it with {}", flag(setting?)?),
        ErrorKind::Precision => "Use --precision f32".to_owned(),
        ErrorKind::NoGpu => "Use --device cpu to train on the CPU".to_owned(),
        ErrorKind::Cache => {
            "Pass another cache folder with --cache-dir if this one cannot be written".to_owned()
        }
        _ => return None,
    })
}

/// The `train` flag that sets the configuration's `setting`, where there is one.
pub fn flag(setting: &str) -> Option<String> {
    match setting {
        "train_dir" => return Some("DIR".to_owned()),
        "eval_train_dir" => return Some("--eval-train".to_owned()),
        "eval_test_dir" => return Some("--eval-test".to_owned()),
        _ => {}
    }
    const WITH_FLAGS: [&str; 18] = [
        "epochs",
        "batch_size",
        "image_size",
        "width",
        "dim",
        "tau",
        "lr",
        "knn_k",
        "recall_k",
        "checkpoint_minutes",
        "negatives",
        "positive",
        "augment_on",
        "device_data_mb",
        "precision",
        "schedule",
        "seed",
        "device",
    ];
    WITH_FLAGS
        .contains(&setting)
        .then(|| format!("--{}", setting.replace('_', "-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worded(error: impl Into<anyhow::Error>) -> String {
        with_remedy(error.into()).to_string()
    }

    #[test]
    fn the_command_line_words_each_remedy_as_its_own_flag() {
        let changed = worded(TrainError::FolderChanged {
            dir: "photos".into(),
            before: 3,
            now: 4,
        });
        assert!(changed.contains("--accept-changed-folder"), "{changed}");
        let setting = worded(TrainError::Config {
            setting: "knn_k",
            problem: "must be at least 1",
        });
        assert!(
            setting.contains("knn_k") && setting.ends_with("Set it with --knn-k"),
            "{setting}"
        );
        // A setting the command line has no flag for gets no made-up one.
        let unflagged = worded(TrainError::Config {
            setting: "knn_sigma",
            problem: "must be a positive number",
        });
        assert!(!unflagged.contains("--"), "{unflagged}");
        let precision = worded(TrainError::Device(DeviceError::Precision("no f16".into())));
        assert!(precision.ends_with("Use --precision f32"), "{precision}");
        // The remedy is found below a context the command added, too.
        let wrapped = worded(
            anyhow::Error::new(TrainError::NothingToResume("run".into())).context("resuming run"),
        );
        assert!(wrapped.ends_with("Start without --resume"), "{wrapped}");
    }
}
