//! What a run on a served device adds: its network traffic (after every few steps, the bytes
//! each step sent to and received from the server, as a [`TrainEvent::Traffic`] for the Train
//! screen), and the server's loss turned from Burn's panic into a failure that names it.

use std::sync::Arc;

use crate::device::{DeviceChoice, SelectedDevice};
use crate::remote::Traffic;
use crate::support::panics::panic_message;

use super::{TrainError, TrainEvent};

/// `run`, and on a served device a panic of Burn's remote client (it panics when a read finds the
/// session gone: the server stopped, the network failed) as [`TrainError::ServerLost`]: the run
/// ends like any failed run, its last checkpoint kept, with the server named. Any other panic is
/// left to unwind as it is (the worker reports it as a crash with its whole message), so that a
/// defect here never sends the person to a server that is fine.
pub(super) fn server_lost_as_error<T>(
    device: &DeviceChoice,
    run: impl FnOnce() -> Result<T, TrainError>,
) -> Result<T, TrainError> {
    let DeviceChoice::Remote(target) = device else {
        return run();
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let message = panic_message(panic.as_ref());
        if !is_session_lost(&message) {
            std::panic::resume_unwind(panic);
        }
        Err(TrainError::ServerLost {
            address: target.address.clone(),
            // Burn's message ends with the cause (e.g. "Failed to read tensor: RecvError").
            reason: message.lines().last().unwrap_or_default().trim().to_owned(),
        })
    })
}

/// Whether a panic's message is Burn's remote client finding its session gone: the texts of
/// burn-remote 0.22's client (`client/runner.rs`, `client/service.rs`, `client/base.rs`) and
/// burn-tensor's failed read (`Tensor::into_data`), the only ways a lost session surfaces.
fn is_session_lost(message: &str) -> bool {
    const SESSION_LOST: [&str; 4] = [
        "Failed to read tensor",
        "Service call failed",
        "Remote response channel closed",
        "Error while reading data",
    ];
    SESSION_LOST.iter().any(|marker| message.contains(marker))
}

/// Steps between two reports: a report averages the steps since the last one, so that the
/// one-off uploads (the weights, the handshake) fade from the figure after the first.
const STEPS_PER_REPORT: usize = 8;

/// Counts steps and turns the link's byte counts into bytes per step.
pub(super) struct TrafficMeter {
    traffic: Arc<Traffic>,
    /// Bytes sent and received at the last report.
    last: (u64, u64),
    /// Steps since the last report.
    steps: usize,
}

impl TrafficMeter {
    /// The meter of a served device (every link counts its bytes).
    pub(super) fn of(selected: &SelectedDevice) -> Option<Self> {
        let link = selected.remote.as_ref()?;
        Some(Self::new(link.traffic.clone()))
    }

    fn new(traffic: Arc<Traffic>) -> Self {
        let last = (traffic.sent(), traffic.received());
        Self {
            traffic,
            last,
            steps: 0,
        }
    }

    /// Notes `event`; after every [`STEPS_PER_REPORT`] steps, the report of their traffic.
    pub(super) fn after(&mut self, event: &TrainEvent) -> Option<TrainEvent> {
        if !matches!(event, TrainEvent::Step { .. }) {
            return None;
        }
        self.steps += 1;
        if self.steps < STEPS_PER_REPORT {
            return None;
        }
        let now = (self.traffic.sent(), self.traffic.received());
        let steps = self.steps as f64;
        let report = TrainEvent::Traffic {
            sent_per_step: (now.0 - self.last.0) as f64 / steps,
            received_per_step: (now.1 - self.last.1) as f64 / steps,
        };
        self.last = now;
        self.steps = 0;
        Some(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::RemoteTarget;

    fn served() -> DeviceChoice {
        DeviceChoice::Remote(RemoteTarget {
            address: "ws://gpu-box:3000".to_owned(),
            token_file: None,
        })
    }

    #[test]
    fn only_a_lost_session_is_reported_as_the_server_lost() {
        let lost = server_lost_as_error(&served(), || -> Result<(), TrainError> {
            panic!("Error while reading data: use `try_into_data` instead\nFailed to read tensor: RecvError")
        })
        .unwrap_err();
        assert!(
            matches!(&lost, TrainError::ServerLost { address, reason } if address == "ws://gpu-box:3000" && reason == "Failed to read tensor: RecvError"),
            "{lost}"
        );
        // A defect of the run itself keeps its own message, whole, for the worker to report.
        let defect = std::panic::catch_unwind(|| {
            server_lost_as_error(&served(), || -> Result<(), TrainError> {
                panic!("views on the device: index out of bounds")
            })
        })
        .unwrap_err();
        assert_eq!(
            panic_message(defect.as_ref()),
            "views on the device: index out of bounds"
        );
    }
}
