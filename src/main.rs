//! `spreadout`: the headless shell over the engine. Every subcommand parses its arguments, calls
//! library functions and prints; no training or evaluation logic lives here.

mod cli;
mod collection_commands;
mod progress;
mod system_commands;

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Parser;
use cli::{Cli, Command, CompareArgs, NegativesArg, TrainArgs};
use spreadout::compare;
use spreadout::data;
use spreadout::demo::DemoRun;
use spreadout::device::{self, DeviceChoice};
use spreadout::eval;
use spreadout::export;
use spreadout::method::{Method, Positive};
use spreadout::score;
use spreadout::train::{self, TrainRequest};

/// Warnings, and `serve`'s log of its clients. Burn's remote client warns once per dropped
/// message when a server goes away; the run's own error says so once, naming the server.
const DEFAULT_LOG: &str = "warn,burn_remote=error,spreadout::serve=info";

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    progress::handle_interrupts();
    // Before any device opens: a second launch then finds its tuned and compiled kernels.
    device::configure_kernel_cache(&spreadout::paths::default_cache_dir());
    let cache_dir = cli
        .cache_dir
        .clone()
        .or_else(|| std::env::var_os("SPREADOUT_CACHE_DIR").map(PathBuf::from));
    let cache = cache_dir
        .clone()
        .map_or_else(data::PixelCache::default_location, data::PixelCache::at);
    let cache = &cache;
    let result = match cli.command {
        Command::Train(args) => train_command(args, cache_dir),
        Command::Compare(args) => compare_command(args, cache_dir),
        Command::Cache {
            clear,
            fill,
            image_size,
        } => system_commands::cache(cache, clear, fill.as_deref(), image_size),
        Command::Embed {
            model,
            dir,
            out,
            device,
        } => collection_commands::embed(&model, &dir, &out, cache, device.choice()),
        Command::Neighbors {
            source,
            query,
            k,
            among,
            device,
        } => collection_commands::neighbors(
            &source,
            &query,
            k,
            among.as_deref(),
            cache,
            device.choice(),
        ),
        Command::Eval {
            model,
            train,
            test,
            k,
            sigma,
            recall_k,
            linear,
            device,
        } => collection_commands::eval(
            &model,
            &train,
            &test,
            &score::ScoreSettings {
                knn_k: k,
                knn_sigma: sigma,
                recall_k,
                linear: linear.then(eval::LinearSettings::default),
                seed: 0,
            },
            cache,
            device.choice(),
        ),
        Command::Duplicates {
            paths,
            threshold,
            hash_bits,
            whole_images,
            json,
            csv,
            truth,
            device,
        } => {
            let (model, dir) = match paths.as_slice() {
                [dir] => (None, dir),
                [model, dir] => (Some(model), dir),
                _ => unreachable!("clap takes one or two paths"),
            };
            collection_commands::duplicates(
                model.map(|model| (model.as_path(), device.choice())),
                dir,
                cache,
                &collection_commands::DuplicateOptions {
                    threshold,
                    hash_bits,
                    whole_images,
                    json,
                    csv: csv.as_deref(),
                    truth: truth.as_deref(),
                },
            )
        }
        Command::Clusters {
            model,
            dir,
            k,
            csv,
            show,
            device,
        } => collection_commands::clusters(
            &collection_commands::Opened::new(&model, &dir, cache, device.choice())?,
            k,
            csv.as_deref(),
            show,
        ),
        Command::PlantCopies {
            source,
            out,
            fraction,
            seed,
        } => collection_commands::plant_copies(&source, &out, fraction, seed),
        Command::Demo {
            out,
            epochs,
            width,
            device,
        } => demo_command(out, epochs, width, cache, device.choice()),
        Command::Devices { remote, token_file } => system_commands::devices(remote, token_file),
        Command::Serve(args) => system_commands::serve(&args),
        Command::Bench(args) => system_commands::bench(&args),
    };
    result.map_err(cli::with_remedy)
}

fn train_command(args: TrainArgs, cache_dir: Option<PathBuf>) -> Result<()> {
    // A resume continues the run as its folder recorded it; the flags given here take precedence.
    let request = if args.resume {
        TrainRequest::resume(
            &args.out,
            train::ResumeOverrides {
                epochs: Some(args.settings.epochs),
                train_dir: Some(args.dir),
                eval_train_dir: args.eval.eval_train,
                eval_test_dir: args.eval.eval_test,
                device: args.device.choice(),
                cache_dir,
                accept_changed_folder: args.accept_changed_folder,
            },
        )?
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
            resume: false,
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

fn compare_command(args: CompareArgs, cache_dir: Option<PathBuf>) -> Result<()> {
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
        resume: false,
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
        let request = variant.request(&base, &args.out, args.settings.tau, epoch);
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

fn demo_command(
    out: Option<PathBuf>,
    epochs: usize,
    width: usize,
    cache: &data::PixelCache,
    choice: DeviceChoice,
) -> Result<()> {
    // Kept where the person can find it again (and where a second `demo` resumes it), never in a
    // temporary folder that would vanish with the model the last line points to.
    let root = out.unwrap_or_else(|| spreadout::paths::default_data_dir().join("demo"));
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
            run_dir.join(export::MODEL_FILE).display()
        );
    }
    Ok(())
}
