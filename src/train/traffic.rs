//! A run's network traffic on a served device: after every few steps, the bytes each step sent to
//! and received from the server, as a [`TrainEvent::Traffic`] for the Train screen.

use std::sync::Arc;

use crate::remote::Traffic;

use super::TrainEvent;

/// Steps between two reports: a report averages the steps since the last one, so that the
/// one-off uploads (the weights, the handshake) fade from the figure after the first.
const STEPS_PER_REPORT: usize = 8;

/// Counts steps and turns the relay's byte counts into bytes per step.
pub(super) struct TrafficMeter {
    traffic: Arc<Traffic>,
    /// Bytes sent and received at the last report.
    last: (u64, u64),
    /// Steps since the last report.
    steps: usize,
}

impl TrafficMeter {
    pub(super) fn new(traffic: Arc<Traffic>) -> Self {
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
