//! Closing the app, or quitting it, while a run trains: the run is stopped the way Stop stops it
//! (its current step finishes and a checkpoint is written), the UI is told why the window stays
//! a moment, and only then does the window close or the app exit. Without this, closing would end
//! the process mid-step and a resume would start from the last timed checkpoint, up to
//! `checkpoint_minutes` of training lost.

use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager};

use crate::state::AppState;

/// How long closing waits for the run's checkpoint: a step on a slow device and the checkpoint of
/// a large memory bank fit well within it, and a person closing the app does not wait forever.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Event the UI receives when closing waits for the run's checkpoint.
pub const EVENT: &str = "closing";

/// When a run is active: asks it to stop, tells the UI, and calls `then` on another thread once
/// the run has ended (or [`LIMIT`] has passed); returns whether it did, in which case the caller
/// must hold the close or exit it was asked for until `then` does it.
pub fn stop_training_first(app: &AppHandle, then: impl FnOnce() + Send + 'static) -> bool {
    let state = app.state::<AppState>();
    if !state.stop_training() {
        return false;
    }
    let _ = app.emit(EVENT, ());
    let app = app.clone();
    std::thread::spawn(move || {
        if !app.state::<AppState>().wait_until_idle(LIMIT) {
            tracing::warn!(
                "closing without the run's last checkpoint: it did not stop within {} s",
                LIMIT.as_secs()
            );
        }
        then();
    });
    true
}
