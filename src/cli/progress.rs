//! Renders a training run's event stream in the terminal: a progress bar per epoch (on stderr,
//! only when it is a terminal) and one line of metrics per finished epoch on stdout, so piped
//! output and logs still show every epoch. Ctrl-C stops a run the way the app's Stop does: the
//! current step finishes, a checkpoint is written, and the command says how to resume.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use signal_hook::consts::SIGINT;
use spreadout::data::SkippedFile;
use spreadout::train::{
    self, AugmentOn, EpochMetrics, Phase, RunSummary, TrainEvent, TrainRequest,
};

/// Set by the first Ctrl-C once the handler is installed.
static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Makes Ctrl-C ask for a clean stop (the first press) or quit at once with status 130 (the
/// second). Where the handler cannot be installed, Ctrl-C keeps its default and the last
/// checkpoint (at most `checkpoint_minutes` old) is what a resume finds.
pub fn handle_interrupts() {
    // The shutdown hook goes first: it runs before the flag is set, so it only fires when an
    // earlier press has already set it.
    let installed =
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&INTERRUPTED))
            .and_then(|_| signal_hook::flag::register(SIGINT, Arc::clone(&INTERRUPTED)));
    if let Err(error) = installed {
        tracing::warn!(
            "Ctrl-C will quit without a checkpoint: the handler could not be set ({error})"
        );
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// For long library calls that ask whether to go on (k-means, maps): no after Ctrl-C.
pub fn keep_going() -> bool {
    !interrupted()
}

/// A progress callback for [`spreadout::data::load`]: a bar on stderr (when it is a terminal)
/// while images are decoded into the cache. Ctrl-C stops the fill; what was decoded stays cached.
pub fn loading_bar() -> impl Fn(usize, usize) -> bool + Sync {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "caching images [{bar:30}] {pos}/{len} · {elapsed_precise} < {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    move |done, total| {
        if done == spreadout::data::WAITING {
            bar.set_message("waiting for another fill of this folder to finish (Ctrl-C stops)");
            return !interrupted();
        }
        bar.set_message("");
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if done == total {
            bar.finish_and_clear();
        }
        !interrupted()
    }
}

/// Runs `request` on the training worker and draws its events until it ends.
pub fn run_with_progress(request: TrainRequest) -> Result<RunSummary> {
    let (train_dir, out) = (request.train_dir.clone(), request.run_dir.clone());
    let handle = train::spawn(request);
    let bar = ProgressBar::hidden();
    let mut stop_asked = false;
    let mut network = String::new();
    loop {
        match handle.events.recv_timeout(Duration::from_millis(100)) {
            Ok(event) => render(&bar, &event, &mut network),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if interrupted() && !stop_asked {
            stop_asked = true;
            handle.control.cancel();
            bar.suspend(|| {
                eprintln!("stopping: finishing the current step and writing a checkpoint (Ctrl-C again quits at once)")
            });
        }
    }
    bar.finish_and_clear();
    let summary = handle
        .worker
        .join()
        .map_err(|_| anyhow::anyhow!("the training thread could not be joined"))??;
    if summary.canceled {
        let position = if summary.steps_into_epoch > 0 {
            format!(
                "epoch {}, step {}",
                summary.epochs_completed + 1,
                summary.steps_into_epoch
            )
        } else {
            format!("the end of epoch {}", summary.epochs_completed)
        };
        eprintln!(
            "stopped at {position}; the checkpoint is in {}. Resume with:\n  spreadout train {} --out {} --resume",
            out.display(),
            train_dir.display(),
            out.display()
        );
    }
    Ok(summary)
}

/// Draws `event`; `network` keeps the last traffic report of a served device for the bar.
fn render(bar: &ProgressBar, event: &TrainEvent, network: &mut String) {
    match event {
        TrainEvent::Phase { phase } => match phase {
            Phase::LoadingData => bar.suspend(|| eprintln!("loading images…")),
            Phase::WarmingUp => bar.set_message("compiling GPU kernels (first steps are slow)"),
            Phase::Training => bar.set_message(""),
            Phase::Evaluating => bar.set_message("evaluating"),
        },
        TrainEvent::Loading { .. } => {}
        TrainEvent::Started {
            device,
            images,
            skipped,
            steps_per_epoch,
            epochs,
            first_epoch,
            views_on,
        } => {
            report_skipped(skipped);
            // The device is a GPU here or a served one ("… at ws://…"), which builds them from
            // the images kept there.
            let views = match views_on {
                AugmentOn::Device
                    if device.contains(" at ws://") || device.contains(" at iroh://") =>
                {
                    "views built on the server from the images kept there"
                }
                AugmentOn::Device => "views built on the GPU",
                _ => "views built on the CPU",
            };
            println!(
                "training on {device}: {images} images, {views}, {steps_per_epoch} steps per epoch, epochs {first_epoch}–{epochs}"
            );
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} · {elapsed_precise} < {eta} · {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_length(*steps_per_epoch as u64);
        }
        TrainEvent::Warning { message } => bar.suspend(|| eprintln!("warning: {message}")),
        TrainEvent::Step {
            epoch,
            step,
            loss,
            images_per_sec,
            ..
        } => {
            bar.set_prefix(epoch.to_string());
            bar.set_position(*step as u64);
            bar.set_message(format!(
                "loss {loss:.4} · {images_per_sec:.0} img/s{network}"
            ));
        }
        TrainEvent::Traffic {
            sent_per_step,
            received_per_step,
        } => {
            *network = format!(
                " · {:.0} KiB sent, {:.0} KiB received per step",
                sent_per_step / 1024.0,
                received_per_step / 1024.0
            );
        }
        TrainEvent::Epoch(metrics) => {
            bar.suspend(|| println!("{}", epoch_line(metrics)));
            bar.set_position(0);
        }
        TrainEvent::Finished { .. } => {}
        // The error itself is reported once, by `main`, when the run's result comes back.
        TrainEvent::Failed { .. } => {}
    }
}

fn epoch_line(m: &EpochMetrics) -> String {
    let mut line = format!(
        "epoch {:>3}  loss {:.4}  lr {:.4}  {:.0} img/s",
        m.epoch, m.loss, m.lr, m.images_per_sec
    );
    if let Some(knn) = m.knn_accuracy {
        line += &format!("  kNN {knn:.2}%");
    }
    if let Some(recall) = &m.recall_at {
        for (k, r) in recall {
            line += &format!("  R@{k} {r:.1}");
        }
    }
    if let Some(nmi) = m.nmi {
        line += &format!("  NMI {nmi:.3}");
    }
    match m.scored_on {
        Some(train::ScoredOn::TestFolder) if m.knn_accuracy.is_none() => {
            line += "  (R@K, NMI within the test folder: unseen classes)";
        }
        Some(train::ScoredOn::MemoryFolder) => line += "  (R@K, NMI on the kNN memory folder)",
        _ => {}
    }
    line + &format!("  ({:.1} s)", m.seconds)
}

/// Prints every skipped file with its reason.
pub fn report_skipped(skipped: &[SkippedFile]) {
    for file in skipped {
        eprintln!("skipped {}: {}", file.path.display(), file.reason);
    }
}
