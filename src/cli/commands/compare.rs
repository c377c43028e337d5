//! `spreadout compare`: several methods or ablations trained on one folder, an epoch of each in
//! turn ([`spreadout::lab::compare`]), then the table of kNN per epoch.

use std::path::PathBuf;

use anyhow::{Result, bail};
use spreadout::lab::compare;
use spreadout::method::{Method, Positive};
use spreadout::train::TrainRequest;

use super::Context;
use crate::args::{DeviceArg, EvalFolders, NegativesArg, TrainSettings};
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Folder of training images.
    pub dir: PathBuf,
    /// Folder holding one run folder per variant (existing runs are resumed or reused) and compare.md.
    #[arg(long)]
    pub out: PathBuf,
    /// Variants to train: methods (spreadout, npsoftmax, nce, exemplar, triplet, triplet-hard),
    /// ablations of spreadout (no-crop, no-color, no-gray, no-flip, no-aug, hard, easy), or the
    /// presets fig3 (spreadout, npsoftmax, nce, exemplar), table1 (every method), table7
    /// (spreadout and each augmentation removed) and table8 (spreadout, no-aug, hard, easy).
    #[arg(long, value_delimiter = ',', default_value = "fig3")]
    pub variants: Vec<String>,
    /// Train nothing: print the table of the runs as they are now (a comparison still going, or stopped).
    #[arg(long)]
    pub report: bool,
    #[command(flatten)]
    pub eval: EvalFolders,
    #[command(flatten)]
    pub settings: TrainSettings,
    #[command(flatten)]
    pub device: DeviceArg,
}

pub fn run(args: Args, context: &Context) -> Result<()> {
    let variants = compare::Variant::parse_list(&args.variants)?;
    let base = TrainRequest::new(
        args.settings.config(
            Method::SpreadOut,
            NegativesArg::All,
            Positive::Augmented,
            &[],
        )?,
        args.dir,
        args.out.clone(),
    )
    .evaluated_on(args.eval.eval_train, args.eval.eval_test)
    .on(args.device.choice())
    .with_cache_dir(context.cache_dir.clone());
    let epochs = args.settings.epochs;
    let plan = if args.report {
        Vec::new()
    } else {
        compare::plan(&args.out, &variants, epochs)
    };
    for (index, &(variant, epoch)) in plan.iter().enumerate() {
        eprintln!(
            "── {}, epoch {epoch} of {epochs} (run {} of {}) ──",
            variant.name(),
            index + 1,
            plan.len()
        );
        let request = variant.request(&base, &args.out, args.settings.tau, epoch)?;
        let summary = progress::run_with_progress(request)?;
        if summary.epochs_completed < epoch {
            bail!("stopped; run the same command again to continue where it was");
        }
    }
    print!(
        "{}",
        compare::write_report(&args.out, &variants, &base.train_dir)?
    );
    eprintln!(
        "table written to {}",
        args.out.join(compare::REPORT_FILE).display()
    );
    Ok(())
}
