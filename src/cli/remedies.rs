//! CLI: how the library's errors and a resume's changes are worded on the command line, each
//! remedy as the flag that applies it (the app words the same failures as its own controls).

use spreadout::data::DataError;
use spreadout::device::DeviceError;
use spreadout::train::TrainError;

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
        if let Some(error) = cause.downcast_ref::<TrainError>() {
            train_remedy(error)
        } else if let Some(error) = cause.downcast_ref::<DeviceError>() {
            device_remedy(error)
        } else {
            cause.downcast_ref::<DataError>().and_then(data_remedy)
        }
    })
}

fn train_remedy(error: &TrainError) -> Option<String> {
    Some(match error {
        TrainError::FolderChanged { .. } => {
            "Pass --accept-changed-folder to continue on the folder as it is now".to_owned()
        }
        TrainError::NonFinite { .. } => {
            // A resume keeps the run's own settings, so it would diverge again.
            "Start a new run with a lower learning rate (--lr) or a higher --tau".to_owned()
        }
        TrainError::ExistingRun(_) => {
            "Pass --resume to continue it, --overwrite to start again over it, or choose another folder with --out".to_owned()
        }
        TrainError::EpochsBelowTrained { .. } => "Set it with --epochs".to_owned(),
        TrainError::NothingToResume(_) => "Start without --resume".to_owned(),
        TrainError::ServerLost { .. } => {
            "Start `spreadout serve` on that machine again, then rerun this command with --resume"
                .to_owned()
        }
        TrainError::Config { setting, .. } => format!("Set it with {}", flag(setting)?),
        TrainError::Device(error) => return device_remedy(error),
        TrainError::Data(error) => return data_remedy(error),
        _ => return None,
    })
}

fn device_remedy(error: &DeviceError) -> Option<String> {
    match error {
        DeviceError::Precision(_) => Some("Use --precision f32".to_owned()),
        DeviceError::NoGpu(_) => Some("Use --device cpu to train on the CPU".to_owned()),
        _ => None,
    }
}

fn data_remedy(error: &DataError) -> Option<String> {
    matches!(error, DataError::Cache { .. }).then(|| {
        "Pass another cache folder with --cache-dir if this one cannot be written".to_owned()
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
