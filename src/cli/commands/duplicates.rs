//! `spreadout duplicates`: near-duplicate groups of a folder, by the perceptual hashes alone or,
//! given a model, by both stages ([`spreadout::explore`]), and with `--truth` their score on
//! planted copies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use spreadout::data::ImageEntry;
use spreadout::device::DeviceChoice;
use spreadout::explore::planted;
use spreadout::explore::{
    DuplicateGroup, Duplicates, HashedFolder, Opened, PairScore, ResolvedStore, tables,
};

use super::Context;
use crate::args::DeviceArg;
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// `[MODEL] DIR`: a run folder or model.safetensors (optional: without one, the hash
    /// stage alone), then the folder of images to search.
    #[arg(num_args = 1..=2, required = true, value_names = ["MODEL", "DIR"])]
    paths: Vec<PathBuf>,
    /// Cosine similarity above which two embeddings are near-duplicates (needs a model).
    #[arg(long)]
    threshold: Option<f32>,
    /// Most differing bits (of 64) two perceptual hashes may have to be near-duplicates.
    #[arg(long)]
    hash_bits: Option<u32>,
    /// Score a pair by the cosine of the two whole images alone, not the best over their
    /// zoomed and mirrored views too (finds fewer crops; embeds each image once).
    #[arg(long)]
    whole_images: bool,
    /// Print {"threshold": t, "hash_bits": b, "groups": [[path, …], …], "links": …, "keep":
    /// [{"path", "reason"}, …], "resolved": [bool, …]} (each member's link to its group's first,
    /// each group's copy to keep, and whether it was marked resolved) instead of a listing.
    #[arg(long)]
    json: bool,
    /// Also write the groups as CSV (group,path,similarity,stage,hash_bits,keep,resolved).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Mark these groups (numbers as listed) resolved, keeping the copy the listing names: later
    /// searches, here and in the app, set them aside until a new copy joins them.
    #[arg(long, value_name = "N", value_delimiter = ',', num_args = 1..)]
    resolve: Vec<usize>,
    /// Mark these groups (numbers as listed with --show-resolved) unresolved again.
    #[arg(long, value_name = "N", value_delimiter = ',', num_args = 1..)]
    reopen: Vec<usize>,
    /// List the groups marked resolved too (the JSON and CSV always hold them, flagged).
    #[arg(long)]
    show_resolved: bool,
    /// A planted-copies.csv (from `spreadout plant-copies`): also print the precision and
    /// recall of the groups on its planted pairs (to stderr with --json).
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArg,
}

pub fn run(args: Args, context: &Context) -> Result<()> {
    let (model, dir) = match args.paths.as_slice() {
        [dir] => (None, dir),
        [model, dir] => (Some(model), dir),
        _ => unreachable!("clap takes one or two paths"),
    };
    duplicates(
        model.map(|model| (model.as_path(), args.device.choice())),
        dir,
        context,
        &DuplicateOptions {
            threshold: args.threshold,
            hash_bits: args.hash_bits,
            whole_images: args.whole_images,
            json: args.json,
            csv: args.csv.as_deref(),
            truth: args.truth.as_deref(),
            resolve: &args.resolve,
            reopen: &args.reopen,
            show_resolved: args.show_resolved,
        },
    )
}

/// What `spreadout duplicates` was asked for besides the folder.
struct DuplicateOptions<'a> {
    threshold: Option<f32>,
    hash_bits: Option<u32>,
    whole_images: bool,
    json: bool,
    csv: Option<&'a Path>,
    truth: Option<&'a Path>,
    resolve: &'a [usize],
    reopen: &'a [usize],
    show_resolved: bool,
}

/// Near-duplicates of `dir` as [`Opened::duplicates`] finds them: with a model, by both stages;
/// without one, by the hash stage alone. What each stage's threshold was, and why, goes to
/// stderr before the groups.
fn duplicates(
    model: Option<(&Path, DeviceChoice)>,
    dir: &Path,
    context: &Context,
    options: &DuplicateOptions<'_>,
) -> Result<()> {
    let opened = match model {
        Some((model, choice)) => {
            let collection = super::open_collection(model, dir, context, choice)?.scoring_pairs_by(
                if options.whole_images {
                    PairScore::WholeImages
                } else {
                    PairScore::BestOfViews
                },
            );
            collection.embed_views(&progress::keep_going)?;
            Opened::Embedded(Arc::new(collection))
        }
        None => {
            if options.threshold.is_some() || options.whole_images {
                anyhow::bail!(
                    "--threshold and --whole-images are about the embedding and need a model: spreadout duplicates MODEL DIR"
                );
            }
            let folder = HashedFolder::build(dir, &context.cache, &progress::loading_bar())
                .with_context(|| format!("cannot read {}", dir.display()))?;
            progress::report_skipped(folder.skipped());
            Opened::Hashed(Arc::new(folder))
        }
    };
    let decisions = ResolvedStore::default_location();
    let mut found = opened.duplicates(options.threshold, options.hash_bits, &decisions)?;
    mark_resolved(&opened, &mut found, options, &decisions)?;
    let heading = match &opened {
        Opened::Embedded(collection) => {
            if let Some(note) = &collection.readiness()?.note {
                eprintln!("{note}");
            }
            if let (None, Some(suggested)) = (options.threshold, found.threshold) {
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
            match found.threshold {
                Some(threshold) => format!(
                    "above cosine {threshold:.3} or within {} hash bits",
                    found.hash_bits
                ),
                None => format!("within {} hash bits (the hashes alone)", found.hash_bits),
            }
        }
        Opened::Hashed(folder) => {
            eprintln!(
                "no model: perceptual hashes alone (re-encoded, resized, brightened and noisy copies; a trained model also finds crops); at most {} differing bits of 64, suggested {}",
                folder.max_bits(),
                folder.suggestion().how
            );
            format!("within {} hash bits", found.hash_bits)
        }
    };
    report_duplicates(&found, opened.entries(), &heading, options)
}

/// Marks the groups `--resolve` and `--reopen` name (by their number in the listing), and shows
/// it in `found`.
fn mark_resolved(
    opened: &Opened,
    found: &mut Duplicates,
    options: &DuplicateOptions<'_>,
    decisions: &ResolvedStore,
) -> Result<()> {
    let marks = options.resolve.iter().map(|&n| (n, true));
    for (number, resolve) in marks.chain(options.reopen.iter().map(|&n| (n, false))) {
        let count = found.groups.len();
        let group = number
            .checked_sub(1)
            .and_then(|g| found.groups.get_mut(g))
            .with_context(|| {
                format!("there is no group {number}: this search found {count} (numbered from 1)")
            })?;
        let keep = group.keep.as_ref().map(|keep| keep.row);
        opened.mark_resolved(&group.members, keep.filter(|_| resolve), decisions)?;
        group.resolved = resolve;
        let entries = opened.entries();
        match keep.filter(|_| resolve) {
            Some(row) => eprintln!(
                "group {number} marked resolved, keeping {}",
                entries[row].path.display()
            ),
            None => eprintln!("group {number} is no longer marked resolved"),
        }
    }
    Ok(())
}

/// The groups as a listing: numbered as found, those marked resolved left out unless
/// `show_resolved`, each with the copy to keep and each member's link to the first.
fn print_listing(
    groups: &[DuplicateGroup],
    entries: &[ImageEntry],
    heading: &str,
    show_resolved: bool,
) {
    let listed = |g: &&DuplicateGroup| show_resolved || !g.resolved;
    let images: usize = groups.iter().filter(listed).map(|g| g.members.len()).sum();
    let hidden = groups.iter().filter(|g| !listed(g)).count();
    println!(
        "{} groups of near-duplicates ({images} images) {heading}",
        groups.len() - hidden
    );
    if hidden > 0 {
        println!("{hidden} more marked resolved, not listed (--show-resolved lists them)");
    }
    for (g, group) in groups.iter().enumerate().filter(|(_, g)| listed(g)) {
        let resolved = if group.resolved { ", resolved" } else { "" };
        let keep = group.keep.as_ref().map_or(String::new(), |keep| {
            format!(
                "; keep {} ({})",
                entries[keep.row]
                    .path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
                keep.reason
            )
        });
        println!(
            "group {} ({} images{resolved}){keep}",
            g + 1,
            group.members.len()
        );
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
        print_listing(groups, entries, heading, options.show_resolved);
    }
    if let Some(truth) = options.truth {
        let found: Vec<(Vec<PathBuf>, Option<PathBuf>)> = groups
            .iter()
            .map(|g| {
                let paths = g.members.iter().map(|&row| entries[row].path.clone());
                let keep = g.keep.as_ref().map(|keep| entries[keep.row].path.clone());
                (paths.collect(), keep)
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
        let kept: Vec<String> = score
            .kept_original_per_edit
            .iter()
            .map(|(edit, keeping, all)| format!("{} {keeping}/{all}", edit.name()))
            .collect();
        eprintln!(
            "copy to keep: the original in {} of {} planted pairs found; per edit: {}",
            score
                .kept_original_per_edit
                .iter()
                .map(|k| k.1)
                .sum::<usize>(),
            score
                .kept_original_per_edit
                .iter()
                .map(|k| k.2)
                .sum::<usize>(),
            kept.join(", ")
        );
    }
    Ok(())
}
