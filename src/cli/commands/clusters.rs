//! `spreadout clusters`: a folder clustered with k-means on the embedding, each cluster's size
//! and most typical images.

use std::path::PathBuf;

use anyhow::Result;
use spreadout::explore::tables;

use super::Context;
use crate::args::DeviceArg;
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Run folder or model.safetensors.
    model: PathBuf,
    /// Folder of images to cluster.
    dir: PathBuf,
    /// Number of clusters (default: one per label folder, else √(n/2) within 2–50).
    #[arg(long)]
    k: Option<usize>,
    /// Also write every image's cluster as CSV (path,cluster,similarity_to_center).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Typical images listed per cluster.
    #[arg(long, default_value_t = 5)]
    show: usize,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: Args, context: &Context) -> Result<()> {
    let Args {
        model,
        dir,
        k,
        csv,
        show,
        device,
    } = args;
    let collection = super::open_collection(&model, &dir, context, device.choice())?;
    let k = k.unwrap_or_else(|| collection.suggested_clusters());
    let clustering = collection.clusters(k, &progress::keep_going)?;
    let entries = collection.entries();
    if let Some(csv) = &csv {
        tables::write(csv, &tables::clusters_csv(&clustering, entries))?;
    }
    println!("{k} clusters of {} images", entries.len());
    for (c, cluster) in clustering.clusters.iter().enumerate() {
        println!(
            "cluster {} ({} images), most typical:",
            c + 1,
            cluster.members.len()
        );
        for (&row, similarity) in cluster.members.iter().zip(&cluster.similarities).take(show) {
            println!("  {similarity:.4}\t{}", entries[row].path.display());
        }
    }
    Ok(())
}
