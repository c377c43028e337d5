//! How a run meets what it starts from, before its first step: the state in its folder (a
//! resume's checkpoint, or a folder a new run may use), the device it trains on and where its
//! views are built, each with the fallback a resumed run takes where this machine differs from
//! the one it was recorded on, and a resumed run's training folder checked against its record.

use super::{Start, TrainConfig, TrainError, TrainEvent, TrainRequest, checkpoint, runs};
use crate::data::ImageSet;
use crate::device::{self, DeviceChoice, SelectedDevice};

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

/// The state of the run in `request.out` when it is resumed (read from the checkpoint's header
/// only), `None` for a new run. Before anything is written: a new run is refused over a run
/// unless it starts again over it, and anywhere that holds files that are not a run's.
pub(super) fn previous_state(
    request: &TrainRequest,
) -> Result<Option<checkpoint::RunState>, TrainError> {
    let out = &request.out;
    if request.is_resume() {
        if !checkpoint::path(out).exists() {
            return Err(TrainError::NothingToResume(out.clone()));
        }
        return Ok(Some(checkpoint::read_state(out)?));
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

/// On resume: the folder must hold what the run was recorded with (count and a digest of paths,
/// sizes and modification times), unless the request accepts the change, which is then warned
/// about. Runs recorded before fingerprints existed are not checked.
pub(super) fn check_folder_unchanged(
    request: &TrainRequest,
    train: &ImageSet,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<(), TrainError> {
    let Some(recorded) = runs::read_record(&request.out)?.folder else {
        return Ok(());
    };
    if recorded == train.fingerprint {
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
