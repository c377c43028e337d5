//! Tauri commands: each a few lines over the `spreadout` library, grouped by screen.

pub mod data;
pub mod explore;
pub mod export;
pub mod train;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tauri::ipc::Channel;

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
