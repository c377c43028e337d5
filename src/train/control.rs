//! Pause, unpause and cancel: the flags the worker checks before every step (and the evaluation
//! between batches), set from whichever thread drives the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// Pause, unpause and cancel, shared between the worker and whoever drives it.
#[derive(Debug, Default)]
pub struct Control {
    cancel: AtomicBool,
    pause: AtomicBool,
}

impl Control {
    /// Asks the run to stop after the current step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    /// Holds the run before its next step.
    pub fn pause(&self) {
        self.pause.store(true, Ordering::SeqCst);
    }
    /// Lets a paused run continue.
    pub fn unpause(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }
    /// Whether a pause was requested (and not yet lifted).
    pub(super) fn is_paused(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }
    /// Whether a cancel was requested.
    pub fn is_canceled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
    /// Blocks while paused; returns whether the run should go on.
    pub(super) fn wait_while_paused(&self) -> bool {
        while self.pause.load(Ordering::SeqCst) && !self.is_canceled() {
            thread::sleep(Duration::from_millis(50));
        }
        !self.is_canceled()
    }
}
