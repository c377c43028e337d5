//! `spreadout`: the headless shell over the engine. Every subcommand (one module each in
//! `commands/`) parses its arguments, calls library functions and prints; no training or
//! evaluation logic lives here.

mod args;
mod commands;
mod progress;
mod remedies;

use std::path::PathBuf;

use anyhow::Result;
use args::Cli;
use clap::{CommandFactory, FromArgMatches};
use spreadout::data::PixelCache;
use spreadout::device;

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
    let context = commands::Context {
        cache: cache_dir
            .clone()
            .map_or_else(PixelCache::default_location, PixelCache::at),
        cache_dir,
        matches,
    };
    commands::run(cli.command, &context).map_err(remedies::with_remedy)
}
