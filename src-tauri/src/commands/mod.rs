//! Tauri commands: each a few lines over the `spreadout` library, grouped by screen.

pub mod data;
pub mod explore;
pub mod export;
pub mod train;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use spreadout::data::ImageEntry;
use tauri::ipc::Channel;

use crate::error::{CommandResult, blocking};
use crate::state::AppState;

/// A path crossing the IPC in either direction, as text in which each byte that is not UTF-8 is
/// escaped (see `spreadout::support::paths`): commands take and return this instead of a bare `PathBuf`,
/// whose own serde support fails on such a name going out and would keep its escapes coming in,
/// so a folder with a Latin-1 name opens, trains and exports like any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(transparent)]
#[ts(type = "string")]
pub struct UiPath(#[serde(with = "spreadout::support::paths")] pub PathBuf);

impl std::ops::Deref for UiPath {
    type Target = std::path::Path;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<PathBuf> for UiPath {
    fn from(path: PathBuf) -> Self {
        Self(path)
    }
}

/// Images in row order with their label folders, as the grids show them.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct ImageList {
    /// The files (names that are not UTF-8 escaped, see `spreadout::support::paths`).
    #[serde(with = "spreadout::support::paths::list")]
    #[ts(type = "string[]")]
    pub files: Vec<PathBuf>,
    /// Label index of each file, when the layout defines labels.
    pub labels: Vec<Option<usize>>,
    /// Label folder names (empty without labels).
    pub label_names: Vec<String>,
}

impl ImageList {
    /// The list of `entries`, labelled by `label_names`.
    pub fn new(entries: &[ImageEntry], label_names: &[String]) -> Self {
        Self {
            files: entries.iter().map(|entry| entry.path.clone()).collect(),
            labels: entries.iter().map(|entry| entry.label).collect(),
            label_names: label_names.to_vec(),
        }
    }
}

/// Progress of a long job, as the UI draws it.
#[derive(Debug, Clone, Copy, Serialize, ts_rs::TS)]
pub struct Progress {
    /// Items done.
    pub done: usize,
    /// Items in all.
    pub total: usize,
    /// Waiting for another fill of the same folder (another window or command) to finish.
    pub waiting: bool,
}

impl Progress {
    /// A library report (`data::WAITING` as `done` while it waits) as the UI draws it.
    fn of(done: usize, total: usize) -> Self {
        let waiting = done == spreadout::data::WAITING;
        Self {
            done: if waiting { 0 } else { done },
            total,
            waiting,
        }
    }
}

/// Runs `work` off the async runtime as the cancellable job `job` (an id chosen by the UI):
/// `work` gets a library progress callback that reports on `progress` and answers `false` once
/// the UI cancels the job.
pub async fn cancellable<T: Send + 'static>(
    state: &AppState,
    job: &str,
    progress: Channel<Progress>,
    work: impl FnOnce(&(dyn Fn(usize, usize) -> bool + Sync)) -> CommandResult<T> + Send + 'static,
) -> CommandResult<T> {
    cancellable_without_progress(state, job, move |keep_going| {
        work(&move |done, total| {
            // A closed window only stops the reports; the job itself decides when to stop.
            let _ = progress.send(Progress::of(done, total));
            keep_going()
        })
    })
    .await
}

/// [`cancellable`] for work with nothing to report on the way: `work` gets only whether to keep
/// going, so polling it sends nothing to the UI.
pub async fn cancellable_without_progress<T: Send + 'static>(
    state: &AppState,
    job: &str,
    work: impl FnOnce(&(dyn Fn() -> bool + Sync)) -> CommandResult<T> + Send + 'static,
) -> CommandResult<T> {
    let cancel = state.start_job(job);
    let result = blocking(move || work(&move || !cancel.load(Ordering::SeqCst))).await;
    state.finish_job(job);
    result
}

// Unix only: a name that is not UTF-8 is a Unix byte string (Windows's lone surrogates are
// `support::paths`'s own test).
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_utf8_crosses_the_ipc_both_ways_with_its_exact_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(b"/photos/caf\xe9/a.jpg"));
        let json = serde_json::to_string(&UiPath(path.clone())).unwrap();
        let back: UiPath = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, path);
        // What the UI sends to start a run carries its folders the same way.
        let request: train::StartTraining = serde_json::from_value(serde_json::json!({
            "config": spreadout::train::TrainConfig::default(),
            "train_dir": serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            "eval_test_dir": null,
            "device": "cpu",
        }))
        .unwrap();
        assert_eq!(request.train_dir, path);
    }
}
