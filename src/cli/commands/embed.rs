//! `spreadout embed`: every image of a folder embedded with a trained model, written as an
//! embeddings file ([`spreadout::embed`]).

use std::path::PathBuf;

use anyhow::Result;
use spreadout::device;
use spreadout::embed;
use spreadout::model_files;

use super::Context;
use crate::args::DeviceArg;
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Run folder or model.safetensors (with config.json beside it).
    model: PathBuf,
    /// Folder of images to embed.
    dir: PathBuf,
    /// Output file (.safetensors): tensor `embeddings` [n, dim], metadata `paths` (JSON list).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: Args, context: &Context) -> Result<()> {
    let Args {
        model,
        dir,
        out,
        device,
    } = args;
    let (model, dir, out, cache) = (&model, &dir, &out, &context.cache);
    let selected = device::select(device.choice())?;
    let loaded = model_files::load_model(model, &selected.device)?;
    let folder = embed::embed_folder(&loaded, dir, cache, &progress::loading_bar())?;
    progress::report_skipped(&folder.set.skipped);
    folder.write(out, model)?;
    let (set, dim) = (&folder.set, folder.dim);
    println!(
        "embedded {} images ({} skipped) into {} [{} × {dim}]",
        set.len(),
        set.skipped.len(),
        out.display(),
        set.len()
    );
    Ok(())
}
