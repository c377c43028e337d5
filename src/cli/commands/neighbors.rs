//! `spreadout neighbors`: an image's nearest neighbours with their cosine, from an embeddings
//! file or a model and a folder.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use spreadout::device;
use spreadout::embed::EmbeddingsFile;
use spreadout::explore::{PairScore, stored};

use super::Context;
use crate::args::DeviceArg;

#[derive(clap::Args)]
pub struct Args {
    /// An embeddings file from `spreadout embed`, or a model (run folder / model.safetensors) with --among.
    source: PathBuf,
    /// The query image: a file of the embedded set, or any image (it is embedded with the model).
    query: PathBuf,
    /// How many neighbours.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// With a model as SOURCE: the folder to search.
    #[arg(long)]
    among: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: Args, context: &Context) -> Result<()> {
    let Args {
        source,
        query,
        k,
        among,
        device,
    } = args;
    let choice = device.choice();
    let print = |neighbors: Vec<spreadout::eval::Neighbor>| {
        for neighbor in neighbors {
            println!("{:.4}\t{}", neighbor.score, neighbor.path.display());
        }
    };
    if EmbeddingsFile::is_one(&source) {
        let device = device::select(choice)?.device;
        print(stored::nearest_in_file(
            &EmbeddingsFile::read(&source)?,
            &query,
            k,
            &device,
        )?);
        return Ok(());
    }
    let among = among.context("with a model as SOURCE, pass --among DIR: the folder to search")?;
    let collection = super::open_collection(&source, &among, context, choice)?;
    print(collection.nearest_to(&query, k)?);
    // The lists rank by the whole images' embeddings: whether those tell copies from neighbours
    // yet (1000 edited copies embedded, not the near-duplicates' views), said after the list.
    let readiness = collection
        .scoring_pairs_by(PairScore::WholeImages)
        .readiness()?;
    if let Some(note) = readiness.note {
        eprintln!("{note}");
    }
    Ok(())
}
