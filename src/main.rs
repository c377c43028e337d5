//! `spreadout`: the headless shell over the engine. Every subcommand parses its arguments, calls
//! library functions and prints; no training or evaluation logic lives here.

mod cli;
mod collection_commands;
mod progress;
mod remedies;
mod system_commands;
mod train_commands;

use std::path::PathBuf;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command};
use spreadout::data;
use spreadout::device;
use spreadout::eval;
use spreadout::score;

/// Warnings, and `serve`'s log of its clients. Burn's remote client warns once per dropped
/// message when a server goes away; the run's own error says so once, naming the server.
const DEFAULT_LOG: &str = "warn,burn_remote=error,spreadout::serve=info,spreadout::link=info";

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    progress::handle_interrupts();
    // Before any device opens: a second launch then finds its tuned and compiled kernels.
    device::configure_kernel_cache(&spreadout::support::paths::default_cache_dir());
    let cache_dir = cli
        .cache_dir
        .clone()
        .or_else(|| std::env::var_os("SPREADOUT_CACHE_DIR").map(PathBuf::from));
    let cache = cache_dir
        .clone()
        .map_or_else(data::PixelCache::default_location, data::PixelCache::at);
    let cache = &cache;
    let result = match cli.command {
        Command::Train(args) => train_commands::train(
            args,
            matches
                .subcommand_matches("train")
                .expect("train's matches"),
            cache_dir,
        ),
        Command::Compare(args) => train_commands::compare(args, cache_dir),
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
        } => train_commands::demo(out, epochs, width, cache, device.choice()),
        Command::Devices { remote, token_file } => system_commands::devices(remote, token_file),
        Command::Serve(args) => system_commands::serve(&args),
        Command::Bench(args) => system_commands::bench(&args),
    };
    result.map_err(remedies::with_remedy)
}
