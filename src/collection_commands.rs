//! The commands over a folder embedded with a model (`duplicates`, `clusters`) and the planted-
//! copies benchmark (`plant-copies`): parse, call [`spreadout::explore`] / [`spreadout::planted`],
//! print.

use std::path::{Path, PathBuf};

use anyhow::Result;
use spreadout::data::PixelCache;
use spreadout::device::{self, DeviceChoice};
use spreadout::explore::{Collection, tables};
use spreadout::planted;

use crate::progress;

/// A collection opened for a command, with its skipped files reported.
pub struct Opened(Collection);

impl Opened {
    pub fn new(model: &Path, dir: &Path, cache: &PixelCache, choice: DeviceChoice) -> Result<Self> {
        let selected = device::select(choice)?;
        let collection = Collection::build(
            model,
            dir,
            cache,
            &selected.device,
            &progress::loading_bar(),
        )?;
        progress::report_skipped(collection.skipped());
        Ok(Self(collection))
    }
}

pub fn duplicates(
    Opened(collection): &Opened,
    threshold: Option<f32>,
    json: bool,
    csv: Option<&Path>,
    truth: Option<&Path>,
) -> Result<()> {
    let threshold = match threshold {
        Some(threshold) => threshold,
        None => {
            let suggestion = collection.suggest_duplicate_threshold()?;
            eprintln!(
                "threshold {:.3}, suggested {}",
                suggestion.threshold, suggestion.how
            );
            suggestion.threshold
        }
    };
    let groups = collection.duplicates(threshold)?;
    let entries = collection.entries();
    if let Some(csv) = csv {
        tables::write(csv, &tables::duplicates_csv(&groups, entries))?;
    }
    if json {
        println!("{}", tables::duplicates_json(threshold, &groups, entries));
    } else {
        let images: usize = groups.iter().map(|g| g.members.len()).sum();
        println!(
            "{} groups of near-duplicates ({images} images) above cosine {threshold:.3}",
            groups.len()
        );
        for (g, group) in groups.iter().enumerate() {
            println!("group {} ({} images)", g + 1, group.members.len());
            for (&row, similarity) in group.members.iter().zip(&group.similarities) {
                println!("  {similarity:.4}\t{}", entries[row].path.display());
            }
        }
    }
    if let Some(truth) = truth {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
        let planted: Vec<planted::PlantedCopy> = planted::read_truth(truth)?
            .into_iter()
            .map(|row| planted::PlantedCopy {
                original: canonical(&row.original),
                copy: canonical(&row.copy),
                edit: row.edit,
            })
            .collect();
        let found: Vec<Vec<PathBuf>> = groups
            .iter()
            .map(|g| {
                g.members
                    .iter()
                    .map(|&row| canonical(&entries[row].path))
                    .collect()
            })
            .collect();
        let score = planted::score_pairs(&found, &planted);
        let per_edit: Vec<String> = score
            .recall_per_edit
            .iter()
            .map(|(edit, recall)| format!("{} {recall:.3}", edit.name()))
            .collect();
        eprintln!(
            "planted pairs: precision {:.3} ({} of {} found pairs), recall {:.3} ({} of {}); recall per edit: {}",
            score.precision,
            score.correct,
            score.found_pairs,
            score.recall,
            score.correct,
            score.planted_pairs,
            per_edit.join(", ")
        );
    }
    Ok(())
}

pub fn clusters(
    Opened(collection): &Opened,
    k: Option<usize>,
    csv: Option<&Path>,
    show: usize,
) -> Result<()> {
    let k = k.unwrap_or_else(|| collection.suggested_clusters());
    let clustering = collection.clusters(k, &progress::keep_going)?;
    let entries = collection.entries();
    if let Some(csv) = csv {
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

pub fn plant_copies(source: &Path, out: &Path, fraction: f64, seed: u64) -> Result<()> {
    let planted = planted::plant_copies(source, out, fraction, seed)?;
    println!(
        "copied {} into {} with {} edited copies; ground truth in {}",
        source.display(),
        out.display(),
        planted.len(),
        out.join(planted::TRUTH_FILE).display()
    );
    Ok(())
}
