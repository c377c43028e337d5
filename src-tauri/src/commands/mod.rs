//! Tauri commands: each a few lines over the `spreadout` library, grouped by screen.

pub mod data;
pub mod explore;
pub mod export;
pub mod train;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use spreadout::data::ImageEntry;
use tauri::ipc::Channel;

/// Images in row order with their label folders, as the grids show them.
#[derive(Debug, Serialize)]
pub struct ImageList {
    /// The files.
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
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Progress {
    /// Items done.
    pub done: usize,
    /// Items in all.
    pub total: usize,
}

/// A library progress callback that reports through `channel` and stops when `cancel` is set.
pub fn reporter(
    channel: Channel<Progress>,
    cancel: Arc<AtomicBool>,
) -> impl Fn(usize, usize) -> bool + Sync {
    move |done, total| {
        // A closed window only stops the reports; the job itself decides when to stop.
        let _ = channel.send(Progress { done, total });
        !cancel.load(Ordering::SeqCst)
    }
}
