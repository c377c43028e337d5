//! `spreadout demo`: a small synthetic labelled data set generated and trained on end to end
//! ([`spreadout::lab::demo`]), kept where a second `demo` resumes it.

use std::path::PathBuf;

use anyhow::Result;
use spreadout::lab::demo::DemoRun;
use spreadout::model_files;
use spreadout::train;

use super::Context;
use crate::args::DeviceArg;
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Where to put the data and the run (default: `demo` in the per-user data folder,
    /// ~/.local/share/spreadout/demo on Linux), kept afterwards.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Epochs.
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Network width (8 keeps the demo to a few minutes on a CPU).
    #[arg(long, default_value_t = 8)]
    width: usize,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: Args, context: &Context) -> Result<()> {
    let Args {
        out,
        epochs,
        width,
        device,
    } = args;
    // Kept where the person can find it again (and where a second `demo` resumes it), never in a
    // temporary folder that would vanish with the model the last line points to.
    let root = out.unwrap_or_else(|| spreadout::support::paths::default_data_dir().join("demo"));
    let DemoRun {
        spec,
        data_dir,
        request,
    } = DemoRun::prepare(&root, epochs, width, device.choice(), context.cache.root())?;
    println!(
        "demo data: {} classes × {} training + {} test images of {} px in {} (kept)",
        spec.classes,
        spec.train_per_class,
        spec.test_per_class,
        spec.size,
        data_dir.display()
    );
    let run_dir = request.run_dir.clone();
    progress::run_with_progress(request)?;
    let metrics = train::read_metrics(&run_dir)?;
    if let (Some(first), Some(last)) = (metrics.first(), metrics.last()) {
        println!(
            "kNN accuracy {:.1}% after epoch {} → {:.1}% after epoch {} (chance {:.1}%); model in {}",
            first.knn_accuracy.unwrap_or(f64::NAN),
            first.epoch,
            last.knn_accuracy.unwrap_or(f64::NAN),
            last.epoch,
            100.0 / spec.classes as f64,
            run_dir.join(model_files::MODEL_FILE).display()
        );
    }
    Ok(())
}
