//! `spreadout cache`: what the preprocessed image cache holds, filling it for a folder ahead of
//! time, or clearing it.

use std::path::PathBuf;

use anyhow::Result;
use spreadout::data;

use super::Context;
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Delete every folder's cache (rebuilt on the next use).
    #[arg(long, conflicts_with = "fill")]
    clear: bool,
    /// Decode this folder into the cache now (only new or changed files are decoded).
    #[arg(long, value_name = "DIR")]
    fill: Option<PathBuf>,
    /// Training size the folder is cached for (with --fill).
    #[arg(long, default_value_t = 32, requires = "fill")]
    image_size: u32,
}

pub fn run(args: Args, context: &Context) -> Result<()> {
    let Args {
        clear,
        fill,
        image_size,
    } = args;
    let cache = &context.cache;
    if let Some(dir) = fill.as_deref() {
        let start = std::time::Instant::now();
        let set = data::load_folder(dir, cache, image_size, &progress::loading_bar())?;
        progress::report_skipped(&set.skipped);
        println!(
            "{} images of {} cached for {image_size} px ({} decoded, {} skipped) in {:.1} s",
            set.len(),
            dir.display(),
            set.decoded,
            set.skipped.len(),
            start.elapsed().as_secs_f64()
        );
        match set.retried {
            0 => {}
            1 => println!("1 file an earlier release had skipped was tried again"),
            retried => println!("{retried} files an earlier release had skipped were tried again"),
        }
        return Ok(());
    }
    if clear {
        let freed = cache.clear()?;
        println!(
            "cleared {} ({:.1} MiB freed)",
            cache.root().display(),
            freed as f64 / (1 << 20) as f64
        );
        return Ok(());
    }
    let folders = cache.usage();
    let total = cache.disk_bytes();
    println!(
        "image cache in {}: {:.1} MiB",
        cache.root().display(),
        total as f64 / (1 << 20) as f64
    );
    for folder in folders {
        println!(
            "{:>10.1} MiB  {:>7} files at {:>4} px  {}",
            folder.bytes as f64 / (1 << 20) as f64,
            folder.files,
            folder.side,
            folder.folder.display()
        );
    }
    Ok(())
}
