//! `spreadout train`: a new run, or the run in `--out` resumed through the engine's one rule
//! ([`TrainRequest::resume`]) with only the flags the person typed in place of its record; run
//! with progress bars.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use spreadout::method::{Method, Positive};
use spreadout::train::{self, TrainConfig, TrainRequest};

use super::Context;
use crate::args::{DeviceArg, EvalFolders, NegativesArg, TrainSettings};
use crate::{progress, remedies};

#[derive(clap::Args)]
pub struct Args {
    /// Folder of training images (searched recursively; first-level folder names are used only for evaluation).
    pub dir: PathBuf,
    /// Run folder for checkpoints, metrics and the exported model.
    #[arg(long)]
    pub out: PathBuf,
    /// Training method: the paper's (spreadout) or a baseline it is compared with. npsoftmax / nce:
    /// memory bank of Wu et al. 2018 (tau 0.07, memory momentum 0.5, nce: 4096 noise samples);
    /// exemplar: one classifier output per image (Dosovitskiy et al. 2014); triplet / triplet-hard:
    /// margin 0.5 on the two-view batch, all negatives or the hardest one.
    #[arg(long, value_enum, default_value_t = TrainConfig::default().method)]
    pub method: Method,
    /// Negatives used by the spread-out loss (paper Table 8).
    #[arg(long, value_enum, default_value_t = NegativesArg::All)]
    pub negatives: NegativesArg,
    /// Each image's positive: its other view (augmented), or with probability 1/2 per step its
    /// most similar other image in the batch (nearest, §4.2; meant for a pretrained network).
    #[arg(long, value_enum, default_value_t = TrainConfig::default().positive)]
    pub positive: Positive,
    /// Switch augmentations off: crop, color, gray, flip, or all ("no DA").
    #[arg(long = "no-aug", value_name = "OP", num_args = 1..)]
    pub no_aug: Vec<String>,
    /// Start the backbone from pretrained weights: torchvision's ResNet-18 state dict, as the
    /// .pth torchvision downloads (read without Python) or as safetensors (names conv1, bn1,
    /// layerN.M…, downsample; fc is replaced by a new embedding head). Needs --width 64 and --image-size above 64 (the ImageNet stem), §4.2's setting.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, as its run.json recorded it; only
    /// --epochs (to extend or shorten it), --augment-on, --device-data-mb, --checkpoint-minutes,
    /// --device and the folders can change, and each change is printed.
    #[arg(long)]
    pub resume: bool,
    /// Start a new run in an --out that holds a run: the earlier run's files are first moved into
    /// its trash/ folder, never deleted.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// With --resume: continue even if the training folder changed since the run started.
    #[arg(long, requires = "resume")]
    pub accept_changed_folder: bool,
    #[command(flatten)]
    pub eval: EvalFolders,
    #[command(flatten)]
    pub settings: TrainSettings,
    #[command(flatten)]
    pub device: DeviceArg,
}

/// The `train` arguments a resume takes; every other setting is the run's own (its `run.json`).
const RESUME_ARGS: [&str; 13] = [
    "dir",
    "out",
    "resume",
    "accept_changed_folder",
    "eval_train",
    "eval_test",
    "epochs",
    "augment_on",
    "device_data_mb",
    "checkpoint_minutes",
    "device",
    "token_file",
    "cache_dir",
];

pub fn run(args: Args, context: &Context) -> Result<()> {
    let cache_dir = context.cache_dir.clone();
    let request = if args.resume {
        let matches = context
            .matches
            .subcommand_matches("train")
            .expect("train's matches");
        let Some(request) = resume_request(args, matches, cache_dir)? else {
            return Ok(());
        };
        request
    } else {
        TrainRequest::new(
            args.settings
                .config(args.method, args.negatives, args.positive, &args.no_aug)?,
            args.dir,
            args.out,
        )
        .evaluated_on(args.eval.eval_train, args.eval.eval_test)
        .on(args.device.choice())
        .with_cache_dir(cache_dir)
        .overwriting(args.overwrite)
        .with_init_weights(args.init)
    };
    progress::run_with_progress(request)?;
    Ok(())
}

/// The resume of the run in `--out` as the engine decides it, with only the flags the person
/// typed in place of what the run recorded (a flag's default is no choice); each change printed.
/// `None` when the run is complete, which is said instead.
fn resume_request(
    args: Args,
    matches: &ArgMatches,
    cache_dir: Option<PathBuf>,
) -> Result<Option<TrainRequest>> {
    let typed = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    // The arguments themselves, not the groups clap makes of flattened structs.
    let fixed: Vec<String> = crate::args::Cli::command()
        .find_subcommand("train")
        .expect("train is a subcommand")
        .get_arguments()
        .map(|arg| arg.get_id().as_str().to_owned())
        .filter(|id| typed(id) && !RESUME_ARGS.contains(&id.as_str()))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if !fixed.is_empty() {
        bail!(
            "{} cannot change when a run resumes: it continues with the settings its run.json recorded. Leave {} out, or start a new run (another --out, or --overwrite)",
            fixed.join(", "),
            if fixed.len() == 1 { "it" } else { "them" }
        );
    }
    let resumption = TrainRequest::resume(
        &args.out,
        train::ResumeOverrides {
            epochs: typed("epochs").then_some(args.settings.epochs),
            train_dir: Some(args.dir),
            eval_train_dir: args.eval.eval_train,
            eval_test_dir: args.eval.eval_test,
            device: (typed("device") || typed("token_file")).then(|| args.device.choice()),
            augment_on: typed("augment_on").then_some(args.settings.augment_on),
            device_data_mb: typed("device_data_mb").then_some(args.settings.device_data_mb),
            checkpoint_minutes: typed("checkpoint_minutes")
                .then_some(args.settings.checkpoint_minutes),
            cache_dir,
            accept_changed_folder: args.accept_changed_folder,
        },
    )?;
    for change in &resumption.changes {
        let shown = remedies::flag(&change.setting).unwrap_or_else(|| change.setting.clone());
        eprintln!("resuming with {shown} {} → {}", change.recorded, change.now);
    }
    if resumption.is_complete() {
        println!(
            "the run in {} is complete: {} of {} epochs trained. To train it further, resume it with --epochs and a larger number",
            args.out.display(),
            resumption.epochs_completed,
            resumption.request.config.epochs
        );
        return Ok(None);
    }
    Ok(Some(resumption.request))
}
