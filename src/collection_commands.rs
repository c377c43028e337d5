//! The commands over a folder embedded with a model (`embed`, `neighbors`, `eval`, `duplicates`
//! (which also runs without one), `clusters`) and the planted-copies benchmark (`plant-copies`): parse, call
//! [`spreadout::explore`], [`spreadout::score`] or [`spreadout::explore::planted`], print.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use spreadout::data::{ImageEntry, PixelCache};
use spreadout::device::{self, DeviceChoice};
use spreadout::embed::{self, EmbeddingsFile};
use spreadout::explore::planted;
use spreadout::explore::{
    Collection, DuplicateThreshold, Duplicates, HashedFolder, PairScore, stored, tables,
};
use spreadout::model_files;
use spreadout::score::{self, FolderScores};

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

/// What `spreadout duplicates` was asked for besides the folder.
pub struct DuplicateOptions<'a> {
    pub threshold: Option<f32>,
    pub hash_bits: Option<u32>,
    pub whole_images: bool,
    pub json: bool,
    pub csv: Option<&'a Path>,
    pub truth: Option<&'a Path>,
}

/// Near-duplicates of `dir`: with a model, by both stages (the embedding's threshold as
/// [`DuplicateThreshold`] decides it); without one, by the hash stage alone.
pub fn duplicates(
    model: Option<(&Path, DeviceChoice)>,
    dir: &Path,
    cache: &PixelCache,
    options: &DuplicateOptions<'_>,
) -> Result<()> {
    if let Some((model, choice)) = model {
        let Opened(collection) = Opened::new(model, dir, cache, choice)?;
        let collection = collection.scoring_pairs_by(if options.whole_images {
            PairScore::WholeImages
        } else {
            PairScore::BestOfViews
        });
        collection.embed_views(&progress::keep_going)?;
        if let Some(note) = &collection.readiness()?.note {
            eprintln!("{note}");
        }
        let threshold = DuplicateThreshold::from(options.threshold);
        let found = collection.duplicates(threshold, options.hash_bits)?;
        if let (DuplicateThreshold::Suggested, Some(suggested)) = (threshold, found.threshold) {
            eprintln!(
                "embedding ({}): threshold {suggested:.3}, suggested {}",
                if options.whole_images {
                    "whole images"
                } else {
                    "best of whole, zoomed and mirrored views"
                },
                collection.suggest_duplicate_threshold()?.how
            );
        }
        if options.hash_bits.is_none() {
            eprintln!(
                "hashes: at most {} differing bits of 64, suggested {}",
                found.hash_bits,
                collection.hash_stage()?.1.how
            );
        }
        let heading = match found.threshold {
            Some(threshold) => format!(
                "above cosine {threshold:.3} or within {} hash bits",
                found.hash_bits
            ),
            None => format!("within {} hash bits (the hashes alone)", found.hash_bits),
        };
        return report_duplicates(&found, collection.entries(), &heading, options);
    }
    if options.threshold.is_some() || options.whole_images {
        anyhow::bail!(
            "--threshold and --whole-images are about the embedding and need a model: spreadout duplicates MODEL DIR"
        );
    }
    let folder = HashedFolder::build(dir, cache, &progress::loading_bar())
        .with_context(|| format!("cannot read {}", dir.display()))?;
    progress::report_skipped(folder.skipped());
    let found = folder.duplicates(options.hash_bits)?;
    eprintln!(
        "no model: perceptual hashes alone (re-encoded, resized, brightened and noisy copies; a trained model also finds crops); at most {} differing bits of 64, suggested {}",
        folder.max_bits(),
        folder.suggestion().how
    );
    let heading = format!("within {} hash bits", found.hash_bits);
    report_duplicates(&found, folder.entries(), &heading, options)
}

/// Prints (or writes) the groups and, with `--truth`, their score on planted copies.
fn report_duplicates(
    found: &Duplicates,
    entries: &[ImageEntry],
    heading: &str,
    options: &DuplicateOptions<'_>,
) -> Result<()> {
    let groups = &found.groups;
    if let Some(csv) = options.csv {
        tables::write(csv, &tables::duplicates_csv(groups, entries))?;
    }
    if options.json {
        println!("{}", tables::duplicates_json(found, entries));
    } else {
        let images: usize = groups.iter().map(|g| g.members.len()).sum();
        println!(
            "{} groups of near-duplicates ({images} images) {heading}",
            groups.len()
        );
        for (g, group) in groups.iter().enumerate() {
            println!("group {} ({} images)", g + 1, group.members.len());
            for (&row, similarity) in group.members.iter().zip(&group.similarities) {
                let found_by =
                    group
                        .link_to_first(row)
                        .map_or(String::new(), |link| match link.hash_bits {
                            Some(bits) => format!("\t{} ({bits} bits)", link.stage.name()),
                            None => format!("\t{}", link.stage.name()),
                        });
                println!(
                    "  {similarity:.4}\t{}{found_by}",
                    entries[row].path.display()
                );
            }
        }
    }
    if let Some(truth) = options.truth {
        let found: Vec<Vec<PathBuf>> = groups
            .iter()
            .map(|g| {
                g.members
                    .iter()
                    .map(|&row| entries[row].path.clone())
                    .collect()
            })
            .collect();
        let score = planted::score_groups(&found, truth)?;
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

pub fn embed(
    model: &Path,
    dir: &Path,
    out: &Path,
    cache: &PixelCache,
    choice: DeviceChoice,
) -> Result<()> {
    let selected = device::select(choice)?;
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

pub fn neighbors(
    source: &Path,
    query: &Path,
    k: usize,
    among: Option<&Path>,
    cache: &PixelCache,
    choice: DeviceChoice,
) -> Result<()> {
    let print = |neighbors: Vec<spreadout::eval::Neighbor>| {
        for neighbor in neighbors {
            println!("{:.4}\t{}", neighbor.score, neighbor.path.display());
        }
    };
    if EmbeddingsFile::is_one(source) {
        let device = device::select(choice)?.device;
        print(stored::nearest_in_file(
            &EmbeddingsFile::read(source)?,
            query,
            k,
            &device,
        )?);
        return Ok(());
    }
    let among = among.context("with a model as SOURCE, pass --among DIR: the folder to search")?;
    let Opened(collection) = Opened::new(source, among, cache, choice)?;
    print(collection.nearest_to(query, k)?);
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

/// What `eval` prints: the model, then its scores.
#[derive(Serialize)]
struct EvalReport<'a> {
    #[serde(serialize_with = "spreadout::support::paths::serialize")]
    model: &'a Path,
    #[serde(flatten)]
    scores: &'a FolderScores,
}

pub fn eval(
    model: &Path,
    train_dir: &Path,
    test_dir: &Path,
    settings: &score::ScoreSettings,
    cache: &PixelCache,
    choice: DeviceChoice,
) -> Result<()> {
    let selected = device::select(choice)?;
    let loaded = model_files::load_model(model, &selected.device)?;
    let scores = score::score_folders(
        &loaded,
        train_dir,
        test_dir,
        cache,
        settings,
        &progress::loading_bar(),
        &mut |folder| progress::report_skipped(&folder.set.skipped),
    )?;
    if scores.knn_accuracy.is_none() {
        eprintln!(
            "none of the {} classes of {} is in {}: unseen categories (paper §4.2), so kNN is not scored; Recall@K and NMI are computed within {}",
            scores.test_classes,
            test_dir.display(),
            train_dir.display(),
            test_dir.display()
        );
    } else if scores.test_classes_in_memory < scores.test_classes {
        eprintln!(
            "{} of the {} classes of {} are not in {}: kNN scores only the {} test images of the other classes",
            scores.test_classes - scores.test_classes_in_memory,
            scores.test_classes,
            test_dir.display(),
            train_dir.display(),
            scores.classified_images
        );
    }
    let report = EvalReport {
        model,
        scores: &scores,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eval_report_names_paths_that_are_not_utf8() {
        #[cfg(unix)]
        let odd = {
            use std::os::unix::ffi::OsStrExt;
            PathBuf::from(std::ffi::OsStr::from_bytes(b"runs/caf\xe9"))
        };
        #[cfg(not(unix))]
        let odd = PathBuf::from("runs/café");
        let scores = FolderScores {
            knn_accuracy: Some(50.0),
            knn_k: 200,
            knn_sigma: 0.1,
            linear_accuracy: None,
            classified_images: 10,
            recall_at: vec![(1, 40.0), (10, 90.0)],
            nmi: 0.5,
            retrieval_scored_on: odd.join("test"),
            test_classes: 2,
            test_classes_in_memory: 2,
            test_classes_left_out: Vec::new(),
            train_images: 20,
            test_images: 10,
        };
        let json: serde_json::Value = serde_json::to_value(EvalReport {
            model: &odd,
            scores: &scores,
        })
        .unwrap();
        let text = |path: &Path| spreadout::support::paths::to_text(path).into_owned();
        assert_eq!(json["model"], text(&odd));
        assert_eq!(json["retrieval_scored_on"], text(&odd.join("test")));
        assert_eq!(json["recall_at"]["10"], 90.0);
        assert_eq!(json["knn_accuracy"], 50.0);
    }
}
