//! `spreadout plant-copies`: a folder copied with edited copies planted beside some of its
//! images, and their ground truth: the benchmark `duplicates` is measured on.

use std::path::PathBuf;

use anyhow::Result;
use spreadout::explore::planted;

#[derive(clap::Args)]
pub struct Args {
    /// Folder of images to copy.
    source: PathBuf,
    /// New (empty) folder for the copy.
    out: PathBuf,
    /// Fraction of the images that get an edited copy.
    #[arg(long, default_value_t = 0.2)]
    fraction: f64,
    /// Seed of the sample and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        source,
        out,
        fraction,
        seed,
    } = args;
    let planted = planted::plant_copies(&source, &out, fraction, seed)?;
    println!(
        "copied {} into {} with {} edited copies; ground truth in {}",
        source.display(),
        out.display(),
        planted.len(),
        out.join(planted::TRUTH_FILE).display()
    );
    Ok(())
}
