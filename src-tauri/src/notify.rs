//! Telling a person who switched to other work that a long run has ended: the window asks for
//! attention (taskbar flash, dock bounce) and the desktop shows a notification where the system
//! has a command for it (`notify-send` on Linux desktops, `osascript` on macOS). Nothing is said
//! while the window has the focus or after a short run: the person is looking at it already.

use std::time::Duration;

use spreadout::train::TrainEvent;
use tauri::{AppHandle, Manager, UserAttentionType};

/// Runs shorter than this end while the person is still watching.
pub const LONG_RUN: Duration = Duration::from_secs(60);

/// The notification for a run's last event, or `None` for events that do not end it.
pub fn ending(event: &TrainEvent, run_name: &str) -> Option<(String, String)> {
    match event {
        TrainEvent::Finished {
            canceled: false,
            epochs_completed,
        } => Some((
            "Training finished".to_owned(),
            format!(
                "{run_name}: {epochs_completed} epochs done; its model is ready to explore and export."
            ),
        )),
        TrainEvent::Finished {
            canceled: true,
            epochs_completed,
        } => Some((
            "Training stopped".to_owned(),
            format!("{run_name}: stopped after {epochs_completed} epochs; it can be resumed."),
        )),
        TrainEvent::Failed { message, .. } => Some((
            "Training failed".to_owned(),
            format!("{run_name}: {message}"),
        )),
        _ => None,
    }
}

/// Asks for the person's attention with `title` and `body` unless the main window has the focus.
pub fn tell(app: &AppHandle, title: &str, body: &str) {
    let window = app.webview_windows().into_values().next();
    if window.as_ref().and_then(|w| w.is_focused().ok()) == Some(true) {
        return;
    }
    if let Some(window) = window {
        let _ = window.request_user_attention(Some(UserAttentionType::Informational));
    }
    let spawned = if cfg!(target_os = "linux") {
        std::process::Command::new("notify-send")
            .args(["--app-name=Spreadout", title, body])
            .spawn()
    } else if cfg!(target_os = "macos") {
        std::process::Command::new("osascript")
            .args([
                "-e",
                &format!("display notification {body:?} with title {title:?}"),
            ])
            .spawn()
    } else {
        // Windows: the taskbar button flashes (above); a toast needs an installed app identity.
        return;
    };
    if let Err(error) = spawned {
        tracing::info!("no desktop notification ({error}); the window asked for attention");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_event_of_a_run_is_announced() {
        let (title, body) = ending(
            &TrainEvent::Finished {
                canceled: false,
                epochs_completed: 200,
            },
            "photos",
        )
        .unwrap();
        assert_eq!(title, "Training finished");
        assert!(body.starts_with("photos: 200 epochs done"), "{body}");
        let failed = ending(
            &TrainEvent::Failed {
                code: spreadout::support::error_kind::ErrorKind::Device,
                message: "device lost".to_owned(),
            },
            "photos",
        );
        assert_eq!(failed.unwrap().1, "photos: device lost");
        assert!(
            ending(
                &TrainEvent::Warning {
                    message: "x".to_owned()
                },
                "photos"
            )
            .is_none()
        );
    }
}
