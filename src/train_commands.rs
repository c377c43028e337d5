//! CLI: `train`, `compare` and `demo`, the commands that run training: each builds its request
//! (a resume through the engine's one rule, `TrainRequest::resume`), runs it with progress bars
//! and prints where its results are.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use spreadout::data;
use spreadout::device::DeviceChoice;
use spreadout::lab::compare;
use spreadout::lab::demo::DemoRun;
use spreadout::method::{Method, Positive};
use spreadout::model_files;
use spreadout::train::{self, TrainRequest};

use crate::cli::{self, CompareArgs, NegativesArg, TrainArgs};
use crate::{progress, remedies};

pub fn train(args: TrainArgs, matches: &ArgMatches, cache_dir: Option<PathBuf>) -> Result<()> {
    let request = if args.resume {
        let Some(request) = resume_request(args, matches, cache_dir)? else {
            return Ok(());
        };
        request
    } else {
        TrainRequest {
            config: args.settings.config(
                args.method,
                args.negatives,
                args.positive,
                &args.no_aug,
            )?,
            train_dir: args.dir,
            eval_train_dir: args.eval.eval_train,
            eval_test_dir: args.eval.eval_test,
            out: args.out,
            start: if args.overwrite {
                train::Start::Overwrite
            } else {
                train::Start::Fresh
            },
            device: args.device.choice(),
            cache_dir,
            accept_changed_folder: false,
            stop_after_epoch: None,
            init_weights: args.init,
        }
    };
    progress::run_with_progress(request)?;
    Ok(())
}

/// The resume of the run in `--out` as the engine decides it, with only the flags the person
/// typed in place of what the run recorded (a flag's default is no choice); each change printed.
/// `None` when the run is complete, which is said instead.
fn resume_request(
    args: TrainArgs,
    matches: &ArgMatches,
    cache_dir: Option<PathBuf>,
) -> Result<Option<TrainRequest>> {
    let typed = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    // The arguments themselves, not the groups clap makes of flattened structs.
    let fixed: Vec<String> = cli::Cli::command()
        .find_subcommand("train")
        .expect("train is a subcommand")
        .get_arguments()
        .map(|arg| arg.get_id().as_str().to_owned())
        .filter(|id| typed(id) && !cli::RESUME_ARGS.contains(&id.as_str()))
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

pub fn compare(args: CompareArgs, cache_dir: Option<PathBuf>) -> Result<()> {
    let variants = compare::Variant::parse_list(&args.variants)?;
    let base = TrainRequest {
        config: args.settings.config(
            Method::SpreadOut,
            NegativesArg::All,
            Positive::Augmented,
            &[],
        )?,
        train_dir: args.dir,
        eval_train_dir: args.eval.eval_train,
        eval_test_dir: args.eval.eval_test,
        out: args.out.clone(),
        start: train::Start::Fresh,
        device: args.device.choice(),
        cache_dir,
        accept_changed_folder: false,
        stop_after_epoch: None,
        init_weights: None,
    };
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

pub fn demo(
    out: Option<PathBuf>,
    epochs: usize,
    width: usize,
    cache: &data::PixelCache,
    choice: DeviceChoice,
) -> Result<()> {
    // Kept where the person can find it again (and where a second `demo` resumes it), never in a
    // temporary folder that would vanish with the model the last line points to.
    let root = out.unwrap_or_else(|| spreadout::support::paths::default_data_dir().join("demo"));
    let DemoRun {
        spec,
        data_dir,
        request,
    } = DemoRun::prepare(&root, epochs, width, choice, cache.root())?;
    println!(
        "demo data: {} classes × {} training + {} test images of {} px in {} (kept)",
        spec.classes,
        spec.train_per_class,
        spec.test_per_class,
        spec.size,
        data_dir.display()
    );
    let run_dir = request.out.clone();
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
