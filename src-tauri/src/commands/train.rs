//! Train screen: devices, start, pause, unpause, resume (a stopped run) and stop, and the event stream to the UI.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spreadout::device::{self, Adapter, DeviceChoice};
use spreadout::remote::{self, RemoteDevice};
use spreadout::train::run_folder::runs::{self, RunInfo};
use spreadout::train::{self, TrainConfig, TrainEvent, TrainRequest};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, State};

use super::UiPath;
use crate::error::{CommandResult, blocking};
use crate::state::AppState;

/// The adapters and what "auto" would pick, so the picker can say honestly when training would
/// fall back to the CPU.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Devices {
    /// wgpu adapters, in driver order.
    pub adapters: Vec<Adapter>,
    /// Name of the device "auto" selects.
    pub auto_name: String,
    /// Why auto is not a GPU, when it is not.
    pub auto_notice: Option<String>,
    /// The graphics APIs a GPU is reached through on this platform, e.g. "Vulkan or DX12".
    pub graphics_apis: String,
}

/// Lists the adapters.
#[tauri::command]
pub async fn list_devices() -> CommandResult<Devices> {
    blocking(|| {
        let adapters = device::describe_compute(device::list_adapters());
        let auto = device::select_from(DeviceChoice::Auto, &adapters)?;
        Ok(Devices {
            adapters,
            auto_name: auto.name,
            auto_notice: auto.notice,
            graphics_apis: device::GRAPHICS_APIS.to_owned(),
        })
    })
    .await
}

/// "Another machine…": connects to the server at `address` with `token`, the text of the token
/// file `spreadout serve` wrote (or the token kept before, when null), keeps a token that
/// connected in the app's data folder, readable by this user only, and says what it serves.
#[tauri::command]
pub async fn connect_remote(
    state: State<'_, AppState>,
    address: String,
    token: Option<String>,
) -> CommandResult<RemoteDevice> {
    let servers = state.servers.clone();
    blocking(move || Ok(remote::remember(&servers, &address, token.as_deref())?)).await
}

/// What the UI sends to start a run.
#[derive(Debug, Deserialize, ts_rs::TS)]
pub struct StartTraining {
    /// Hyper-parameters.
    pub config: TrainConfig,
    /// Training images.
    #[serde(with = "spreadout::support::paths")]
    #[ts(type = "string")]
    pub train_dir: PathBuf,
    /// Labelled test folder scored each epoch, if any.
    #[serde(with = "spreadout::support::paths::option")]
    #[ts(type = "string | null")]
    pub eval_test_dir: Option<PathBuf>,
    /// Device.
    pub device: DeviceChoice,
    /// Pretrained backbone to start from (safetensors, torchvision names); random when absent.
    #[serde(default, with = "spreadout::support::paths::option")]
    #[ts(type = "string | null")]
    pub init_weights: Option<PathBuf>,
}

/// Starts a new run in a fresh folder under the app's runs folder; returns that folder. Events
/// arrive on `events`, the last always `finished` or `failed`.
#[tauri::command]
pub async fn start_training(
    app: AppHandle,
    request: StartTraining,
    events: Channel<TrainEvent>,
) -> CommandResult<UiPath> {
    // Off the UI thread: the run folder's name is checked against the disk.
    blocking(move || {
        let state = app.state::<AppState>();
        let out = runs::new_run_dir(
            &state.runs_root,
            &request.train_dir,
            std::time::SystemTime::now(),
        );
        launch(
            app.clone(),
            &state,
            TrainRequest::new(request.config, request.train_dir, out.clone())
                .evaluated_on(None, request.eval_test_dir)
                .on(state.with_kept_token(request.device)?)
                .with_cache_dir(Some(state.pixel_cache.root().to_owned()))
                .with_init_weights(request.init_weights),
            events,
        )?;
        Ok(out.into())
    })
    .await
}

/// What a resume did before its run started: the settings it changed from the run's record,
/// and whether the run was already complete (then nothing was started).
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Resumed {
    /// Each setting that differs from what the run recorded (e.g. the device).
    pub changes: Vec<train::SettingChange>,
    /// The run has trained every epoch asked of it: no run was started.
    pub complete: bool,
    /// Epochs the run has completed.
    pub epochs_completed: usize,
    /// Epochs in the whole run.
    pub epochs: usize,
}

/// Continues an interrupted run from its checkpoint as its record says, through the engine's
/// one resume rule; `epochs`, `device` and `accept_changed_folder` are what the person chose
/// (`null`: as recorded). Events arrive on `events` unless the run was already complete.
#[tauri::command]
pub async fn resume_training(
    app: AppHandle,
    run_dir: UiPath,
    epochs: Option<usize>,
    device: Option<DeviceChoice>,
    accept_changed_folder: Option<bool>,
    events: Channel<TrainEvent>,
) -> CommandResult<Resumed> {
    // Off the UI thread: the run's record and checkpoint header are read from disk.
    blocking(move || {
        let state = app.state::<AppState>();
        let device = device
            .map(|device| state.with_kept_token(device))
            .transpose()?;
        let mut resumption = resume_request(
            &run_dir,
            epochs,
            device,
            accept_changed_folder.unwrap_or(false),
            state.pixel_cache.root(),
        )?;
        let answer = Resumed {
            changes: resumption.changes.clone(),
            complete: resumption.is_complete(),
            epochs_completed: resumption.epochs_completed,
            epochs: resumption.request.config.epochs,
        };
        if !answer.complete {
            // The device the run recorded as well: its record names a token file, and the app
            // reaches a server only with the token it keeps.
            resumption.request.device = state.with_kept_token(resumption.request.device)?;
            launch(app.clone(), &state, resumption.request, events)?;
        }
        Ok(answer)
    })
    .await
}

/// The app's resume: [`TrainRequest::resume`] with what the person chose and the app's cache.
fn resume_request(
    run_dir: &std::path::Path,
    epochs: Option<usize>,
    device: Option<DeviceChoice>,
    accept_changed_folder: bool,
    cache: &std::path::Path,
) -> CommandResult<train::Resumption> {
    TrainRequest::resume(
        run_dir,
        train::ResumeOverrides {
            epochs,
            device,
            cache_dir: Some(cache.to_owned()),
            accept_changed_folder,
            ..Default::default()
        },
    )
    .map_err(|error| crate::error::CommandError::new("files", error.to_string()))
}

fn launch(
    app: AppHandle,
    state: &AppState,
    request: TrainRequest,
    events: Channel<TrainEvent>,
) -> CommandResult<()> {
    state.allow(&request.train_dir);
    state.allow(&request.run_dir);
    if let Some(test) = &request.eval_test_dir {
        state.allow(test);
    }
    let out = request.run_dir.clone();
    let handle = state.begin_training(&out, || {
        let handle = train::spawn(request);
        let control = handle.control.clone();
        (handle, control)
    })?;
    let run_name = out.file_name().map_or_else(
        || out.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let started = std::time::Instant::now();
    std::thread::Builder::new()
        .name("spreadout-events".to_owned())
        .spawn(move || {
            forward(&handle.events, STEP_INTERVAL, |event| {
                if started.elapsed() >= crate::notify::LONG_RUN
                    && let Some((title, body)) = crate::notify::ending(&event, &run_name)
                {
                    crate::notify::tell(&app, &title, &body);
                }
                // The run's last event comes after its last write: the slot is free before the
                // UI hears of the end, so a Start clicked at once is not refused as busy.
                if matches!(
                    event,
                    TrainEvent::Finished { .. } | TrainEvent::Failed { .. }
                ) {
                    app.state::<AppState>().end_training(&out);
                }
                // A closed window only stops the updates; the run keeps its checkpoints.
                let _ = events.send(event);
            });
            // The worker already turned a panic into a `failed` event; joining only reaps it.
            // After that final event the slot is already free and this is a no-op; it frees the
            // slot should the stream ever end without one, so Start is never refused for good.
            let _ = handle.worker.join();
            app.state::<AppState>().end_training(&out);
        })
        .map_err(|error| crate::error::CommandError::new("app", error.to_string()))?;
    Ok(())
}

/// Holds the run before its next step.
#[tauri::command]
pub fn pause_training(state: State<'_, AppState>) -> CommandResult<()> {
    state.with_training(train::Control::pause)
}

/// Lets a paused run continue.
#[tauri::command]
pub fn unpause_training(state: State<'_, AppState>) -> CommandResult<()> {
    state.with_training(train::Control::unpause)
}

/// Stops the run after the current step; its last checkpoint is kept.
#[tauri::command]
pub fn stop_training(state: State<'_, AppState>) -> CommandResult<()> {
    state.with_training(train::Control::cancel)
}

/// Runs in the app's runs folder, newest first.
#[tauri::command]
pub async fn list_runs(state: State<'_, AppState>) -> CommandResult<Vec<RunInfo>> {
    let root = state.runs_root.clone();
    let found = blocking(move || Ok(runs::list(&root))).await?;
    for run in &found {
        state.allow(&run.record.train_dir);
    }
    Ok(found)
}

/// Reads a run folder chosen by the person (anywhere on disk).
#[tauri::command]
pub async fn open_run(state: State<'_, AppState>, run_dir: UiPath) -> CommandResult<RunInfo> {
    let info = blocking(move || Ok(runs::describe(&run_dir)?)).await?;
    state.allow(&info.dir);
    state.allow(&info.record.train_dir);
    Ok(info)
}

/// Renames a run folder (beside where it is); returns it as read back from its new place.
#[tauri::command]
pub async fn rename_run(app: AppHandle, run_dir: UiPath, name: String) -> CommandResult<RunInfo> {
    let run_dir = run_dir.0;
    // No run can start in the folder while it is renamed (the training slot is held).
    blocking(move || {
        let state = app.state::<AppState>();
        let info = state.while_idle(&run_dir, || {
            let renamed = runs::rename(&run_dir, &name)?;
            Ok(runs::describe(&renamed)?)
        })?;
        state.allow(&info.dir);
        Ok(info)
    })
    .await
}

/// Deletes a run's files (never its images, nor anything else in its folder); resolves to the
/// bytes freed and what was left.
#[tauri::command]
pub async fn delete_run(app: AppHandle, run_dir: UiPath) -> CommandResult<runs::DeletedRun> {
    let run_dir = run_dir.0;
    // No run can start in the folder while it is deleted (the training slot is held).
    blocking(move || {
        app.state::<AppState>()
            .while_idle(&run_dir, || Ok(runs::delete(&run_dir)?))
    })
    .await
}

/// Step events arrive at most this often; a GPU can finish hundreds of steps a second and the UI
/// only needs to redraw a few times a second.
const STEP_INTERVAL: Duration = Duration::from_millis(150);

/// Forwards `events` to `send` until the stream ends, passing every event except `step`s through
/// at once and coalescing `step`s to the latest one per `interval` (measured between steps sent).
/// A pending step is always flushed before any other event, so the UI sees the last step of an
/// epoch, and the final event always arrives.
fn forward(events: &Receiver<TrainEvent>, interval: Duration, mut send: impl FnMut(TrainEvent)) {
    let mut pending: Option<TrainEvent> = None;
    let mut last_sent = Instant::now() - interval;
    loop {
        let wait = interval.saturating_sub(last_sent.elapsed());
        match events.recv_timeout(if pending.is_some() {
            wait
        } else {
            Duration::from_secs(3600)
        }) {
            Ok(step @ TrainEvent::Step { .. }) => {
                if last_sent.elapsed() >= interval {
                    send(step);
                    last_sent = Instant::now();
                    pending = None;
                } else {
                    pending = Some(step);
                }
            }
            Ok(other) => {
                if let Some(step) = pending.take() {
                    send(step);
                    last_sent = Instant::now();
                }
                send(other);
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(step) = pending.take() {
                    send(step);
                    last_sent = Instant::now();
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(step) = pending.take() {
                    send(step);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The app's resume is the engine's: a run stopped after its first epoch resumes as recorded
    /// (its device, its length) when the person chose nothing, lists what they did choose, and
    /// trains on to the end.
    #[test]
    fn the_apps_resume_continues_the_run_as_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spreadout::lab::demo::DemoSpec {
            classes: 2,
            train_per_class: 4,
            test_per_class: 2,
            size: 16,
            seed: 1,
        };
        let data = spreadout::lab::demo::generate(&dir.path().join("data"), &spec).unwrap();
        let run = dir.path().join("run");
        let cache = dir.path().join("cache");
        let first = TrainRequest::new(
            TrainConfig {
                epochs: 2,
                batch_size: 4,
                image_size: 16,
                width: 2,
                dim: 4,
                knn_k: 3,
                ..TrainConfig::default()
            },
            data.train.clone(),
            run.clone(),
        )
        .evaluated_on(None, Some(data.test.clone()))
        .on(DeviceChoice::Cpu)
        .with_cache_dir(Some(cache.clone()))
        .stopping_after_epoch(Some(1));
        train::run(&first, &train::Control::default(), &mut |_| {}).unwrap();

        let as_recorded = resume_request(&run, None, None, false, &cache).unwrap();
        assert!(as_recorded.changes.is_empty(), "{:?}", as_recorded.changes);
        assert_eq!(
            as_recorded.request.device,
            DeviceChoice::Cpu,
            "the recorded device"
        );
        assert_eq!(as_recorded.request.config, first.config);
        assert!(!as_recorded.is_complete());

        let longer = resume_request(&run, Some(3), Some(DeviceChoice::Cpu), false, &cache).unwrap();
        let changes: Vec<String> = longer.changes.iter().map(ToString::to_string).collect();
        assert_eq!(changes, ["epochs 2 → 3"]);
        let summary = train::run(&longer.request, &train::Control::default(), &mut |_| {}).unwrap();
        assert_eq!(summary.epochs_completed, 3);
        assert!(
            resume_request(&run, None, None, false, &cache)
                .unwrap()
                .is_complete()
        );
    }

    fn step(step: usize) -> TrainEvent {
        TrainEvent::Step {
            epoch: 1,
            step,
            steps_per_epoch: 1000,
            loss: 1.0,
            lr: 0.1,
            images_per_sec: 1.0,
        }
    }

    #[test]
    fn steps_are_coalesced_and_everything_else_passes_with_the_last_step_first() {
        let (sender, receiver) = std::sync::mpsc::channel();
        for i in 1..=500 {
            sender.send(step(i)).unwrap();
        }
        sender
            .send(TrainEvent::Finished {
                canceled: false,
                epochs_completed: 1,
            })
            .unwrap();
        drop(sender);
        let mut seen = Vec::new();
        forward(&receiver, Duration::from_secs(10), |event| seen.push(event));
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0], step(1));
        assert_eq!(seen[1], step(500));
        assert!(matches!(seen[2], TrainEvent::Finished { .. }));
    }

    #[test]
    fn a_pending_step_is_sent_when_the_stream_goes_quiet() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            sender.send(step(1)).unwrap();
            sender.send(step(2)).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            sender.send(step(3)).unwrap();
        });
        let mut seen = Vec::new();
        forward(&receiver, Duration::from_millis(50), |event| {
            seen.push(event)
        });
        worker.join().unwrap();
        assert_eq!(seen, vec![step(1), step(2), step(3)]);
    }
}
