//! One module per subcommand, as cargo's `src/bin/cargo/commands/` has it: each holds its
//! arguments (`Args`) and its `run`, which parses, calls the engine and prints. What they share,
//! the invocation's cache and matches, is the [`Context`].

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::ArgMatches;
use spreadout::data::PixelCache;
use spreadout::device::{self, DeviceChoice};
use spreadout::explore::Collection;

use crate::args::Command;
use crate::progress;

pub mod bench;
pub mod cache;
pub mod clusters;
pub mod compare;
pub mod demo;
pub mod devices;
pub mod duplicates;
pub mod embed;
pub mod eval;
pub mod neighbors;
pub mod plant_copies;
pub mod serve;
pub mod train;

/// What every subcommand may use besides its own arguments.
pub struct Context {
    /// The cache folder given (`--cache-dir` or `$SPREADOUT_CACHE_DIR`), for requests that
    /// record it; `None` for the per-user default.
    pub cache_dir: Option<PathBuf>,
    /// The image cache itself.
    pub cache: PixelCache,
    /// Clap's matches, for where a value came from (a resume takes only typed flags).
    pub matches: ArgMatches,
}

/// Runs the subcommand.
pub fn run(command: Command, context: &Context) -> Result<()> {
    match command {
        Command::Train(args) => train::run(args, context),
        Command::Compare(args) => compare::run(args, context),
        Command::Cache(args) => cache::run(args, context),
        Command::Embed(args) => embed::run(args, context),
        Command::Neighbors(args) => neighbors::run(args, context),
        Command::Eval(args) => eval::run(args, context),
        Command::Duplicates(args) => duplicates::run(args, context),
        Command::Clusters(args) => clusters::run(args, context),
        Command::PlantCopies(args) => plant_copies::run(args),
        Command::Demo(args) => demo::run(args, context),
        Command::Devices(args) => devices::run(args),
        Command::Serve(args) => serve::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}

/// The collection of `dir` embedded with `model` on the device chosen, its skipped files
/// reported: what `neighbors`, `duplicates` and `clusters` open.
fn open_collection(
    model: &Path,
    dir: &Path,
    context: &Context,
    choice: DeviceChoice,
) -> Result<Collection> {
    let selected = device::select(choice)?;
    let collection = Collection::build(
        model,
        dir,
        &context.cache,
        &selected.device,
        &progress::loading_bar(),
    )?;
    progress::report_skipped(collection.skipped());
    Ok(collection)
}
