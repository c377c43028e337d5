//! Near-duplicates: groups of images in which every two embeddings are more alike than a
//! threshold, and the threshold a run's own distributions suggest.
//!
//! The embedding is trained to be invariant to crops, colour changes and flips while spreading
//! distinct images apart, so an edited copy of an image lands next to it. Two distributions
//! measured on the folder itself place the threshold: how similar the model finds an image and a
//! mildly edited version of it (its *copy* distribution), and how similar each image is to its
//! nearest other image (mostly distinct images). The suggestion is where the first's low tail
//! meets the second's high tail.

use burn::tensor::Device;
use rayon::prelude::*;

use crate::eval::{self, Embeddings, EvalError, Histogram, dot};

/// Bins of the two threshold histograms over [−1, 1]: steps of 0.001, fine enough for the
/// crowded top of a young model's similarities (16 KB each in the IPC).
pub const THRESHOLD_BINS: usize = 2000;

/// A group of near-duplicate images.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct DuplicateGroup {
    /// Row indices, the most central member first (highest total similarity to the others),
    /// then by similarity to it.
    pub members: Vec<usize>,
    /// Cosine similarity of each member to the first (1 for the first itself).
    pub similarities: Vec<f32>,
    /// The lowest similarity of two members (above the threshold: every pair of a group is).
    pub weakest_link: f32,
}

/// Groups in which every two rows are linked: complete-linkage agglomeration of the `pairs`
/// (visited from the most similar down, ties by row), where two groups merge only if `linked`
/// holds for every row of one with every row of the other. Unlike connected components, a chain
/// of distinct images, each a little like the next, never becomes one group. Groups of at least
/// two rows, each sorted; largest first, then by first row.
pub fn complete_linkage_groups(
    n: usize,
    pairs: &[(usize, usize, f32)],
    linked: impl Fn(usize, usize) -> bool,
) -> Vec<Vec<usize>> {
    let mut order: Vec<&(usize, usize, f32)> = pairs.iter().collect();
    order.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    // `group[i]` names the group of row `i`; `members[g]` lists group g (empty once merged).
    let mut group: Vec<usize> = (0..n).collect();
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    for &&(a, b, _) in &order {
        let (ga, gb) = (group[a], group[b]);
        if ga == gb {
            continue;
        }
        let all_linked = members[ga]
            .iter()
            .all(|&i| members[gb].iter().all(|&j| linked(i, j)));
        if all_linked {
            let (keep, gone) = (ga.min(gb), ga.max(gb));
            let moved = std::mem::take(&mut members[gone]);
            for &row in &moved {
                group[row] = keep;
            }
            members[keep].extend(moved);
        }
    }
    let mut groups: Vec<Vec<usize>> = members
        .into_iter()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort_unstable();
            g
        })
        .collect();
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
}

/// Groups of rows in which every two have cosine similarity above `threshold`
/// ([`complete_linkage_groups`]), largest first; the pairs come from [`eval::pairs_above`] on
/// `device`.
///
/// # Errors
/// [`EvalError::Empty`] for no rows.
pub fn find_duplicates(
    features: Embeddings,
    threshold: f32,
    device: &Device,
) -> Result<Vec<DuplicateGroup>, EvalError> {
    let pairs = eval::pairs_above(features, threshold, device)?;
    let dot = |a: usize, b: usize| dot(features.row(a), features.row(b));
    let groups = complete_linkage_groups(features.len(), &pairs, |a, b| dot(a, b) > threshold);
    Ok(groups
        .into_par_iter()
        .map(|rows| {
            let weakest_link = rows
                .iter()
                .enumerate()
                .flat_map(|(k, &a)| rows[k + 1..].iter().map(move |&b| (a, b)))
                .map(|(a, b)| dot(a, b))
                .fold(f32::INFINITY, f32::min);
            // The member most similar to all others stands for the group; groups are small, so
            // the quadratic sum is cheap.
            let center = *rows
                .iter()
                .max_by(|&&a, &&b| {
                    let total = |i: usize| rows.iter().map(|&j| dot(i, j)).sum::<f32>();
                    total(a).total_cmp(&total(b)).then(b.cmp(&a))
                })
                .expect("groups have two rows or more");
            let mut members: Vec<(usize, f32)> = rows
                .iter()
                .map(|&i| (i, if i == center { 1.0 } else { dot(center, i) }))
                .collect();
            members.sort_by(|a, b| {
                (b.0 == center)
                    .cmp(&(a.0 == center))
                    .then(b.1.total_cmp(&a.1))
                    .then(a.0.cmp(&b.0))
            });
            DuplicateGroup {
                members: members.iter().map(|m| m.0).collect(),
                similarities: members.iter().map(|m| m.1).collect(),
                weakest_link,
            }
        })
        .collect())
}

/// The threshold [`suggest_threshold`] chose and the distributions it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct ThresholdSuggestion {
    /// The suggested cosine threshold.
    pub threshold: f32,
    /// How it was chosen, in a sentence for the person.
    pub how: String,
    /// Similarity of each (sampled) image to a mildly edited version of itself.
    pub copies: Histogram,
    /// Similarity of each (sampled) image to its nearest other image in the folder.
    pub nearest: Histogram,
}

/// The threshold where a copy is as likely to fall below it as an image's nearest other image is
/// to lie above it: the `t` minimising `P(copy < t) + P(nearest ≥ t)` over the two samples (their
/// equal-error point), the midpoint of the lowest interval of values reaching that minimum.
///
/// # Errors
/// [`EvalError::Empty`] when either sample is empty.
pub fn suggest_threshold(
    copies: &[f32],
    nearest: &[f32],
) -> Result<ThresholdSuggestion, EvalError> {
    if copies.is_empty() {
        return Err(EvalError::Empty("copy similarities"));
    }
    if nearest.is_empty() {
        return Err(EvalError::Empty("nearest-image similarities"));
    }
    let mut copies_sorted = copies.to_vec();
    copies_sorted.sort_by(f32::total_cmp);
    let mut nearest_sorted = nearest.to_vec();
    nearest_sorted.sort_by(f32::total_cmp);
    // The error only changes at sample values; try each candidate cut (between consecutive
    // distinct values of the pooled samples) and keep the lowest error.
    let mut candidates: Vec<f32> = copies_sorted
        .iter()
        .chain(&nearest_sorted)
        .copied()
        .collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let below = |sorted: &[f32], t: f32| sorted.partition_point(|&v| v < t);
    let error = |t: f32| {
        below(&copies_sorted, t) as f64 / copies.len() as f64
            + (nearest.len() - below(&nearest_sorted, t)) as f64 / nearest.len() as f64
    };
    let mut best = (f64::INFINITY, 0.0f32, 0.0f32);
    for window in candidates.windows(2) {
        // Any t in (window[0], window[1]] gives the same error; its cut is the upper end.
        let e = error(window[1]);
        if e < best.0 - 1e-12 {
            best = (e, window[0], window[1]);
        }
    }
    let threshold = if best.0.is_finite() {
        0.5 * (best.1 + best.2)
    } else {
        candidates[0]
    };
    let missed = below(&copies_sorted, threshold) as f64 / copies.len() as f64;
    let crowded = (nearest.len() - below(&nearest_sorted, threshold)) as f64 / nearest.len() as f64;
    let histogram = |values: &[f32]| {
        let mut h = Histogram::new(THRESHOLD_BINS).expect("bins > 0");
        values.iter().for_each(|&v| h.add(v));
        h
    };
    Ok(ThresholdSuggestion {
        threshold,
        how: format!(
            "where edited copies of {} images stop being more similar than images' nearest \
             neighbours ({} images): {:.1} % of those copies fall below it, {:.1} % of nearest \
             neighbours lie above it",
            copies.len(),
            nearest.len(),
            100.0 * missed,
            100.0 * crowded
        ),
        copies: histogram(copies),
        nearest: histogram(nearest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_holds_only_rows_linked_to_every_other_and_a_chain_is_cut() {
        let linked_by = |pairs: &'static [(usize, usize, f32)]| {
            move |a: usize, b: usize| {
                pairs
                    .iter()
                    .any(|&(i, j, _)| (i, j) == (a.min(b), a.max(b)))
            }
        };
        // 0, 4 and 7 are all alike; 2 and 3 too.
        const CLIQUES: &[(usize, usize, f32)] =
            &[(0, 4, 0.9), (4, 7, 0.95), (2, 3, 0.99), (0, 7, 0.91)];
        let groups = complete_linkage_groups(9, CLIQUES, linked_by(CLIQUES));
        assert_eq!(groups, vec![vec![0, 4, 7], vec![2, 3]]);
        // A chain 0 ~ 1 ~ 2 ~ 3 where 0 and 2 are not alike: the closest pairs pair up and
        // connected components would have made one group of four.
        const CHAIN: &[(usize, usize, f32)] = &[(0, 1, 0.97), (1, 2, 0.95), (2, 3, 0.96)];
        let groups = complete_linkage_groups(4, CHAIN, linked_by(CHAIN));
        assert_eq!(groups, vec![vec![0, 1], vec![2, 3]]);
        assert!(complete_linkage_groups(3, &[], |_, _| false).is_empty());
    }

    #[test]
    fn duplicates_group_planted_copies_with_the_central_member_first() {
        // Rows 0 and 1 are near copies of each other, row 2 a weaker copy of row 0 and row 3
        // unrelated; 2-d unit vectors at known angles.
        let angle = |degrees: f32| {
            let r = degrees.to_radians();
            [r.cos(), r.sin()]
        };
        let rows: Vec<f32> = [0.0, 5.0, 20.0, 120.0]
            .into_iter()
            .flat_map(angle)
            .collect();
        let features = Embeddings::new(&rows, 2).unwrap();
        let device = crate::device::cpu().device;
        let groups = find_duplicates(features, 0.9, &device).unwrap();
        assert_eq!(groups.len(), 1);
        let group = &groups[0];
        // 5° lies between 0° and 20°: the highest total similarity, so the centre.
        assert_eq!(group.members, vec![1, 0, 2]);
        assert_eq!(group.similarities[0], 1.0);
        assert!((group.similarities[1] - 5f32.to_radians().cos()).abs() < 1e-6);
        assert!((group.weakest_link - 20f32.to_radians().cos()).abs() < 1e-6);
        // A stricter threshold drops the weaker copy.
        let strict = find_duplicates(features, 0.99, &device).unwrap();
        assert_eq!(strict[0].members.len(), 2);
    }

    #[test]
    fn the_suggested_threshold_separates_the_two_samples() {
        let copies = [0.97, 0.95, 0.99, 0.93, 0.96];
        let nearest = [0.5, 0.7, 0.8, 0.85, 0.6, 0.94];
        let suggestion = suggest_threshold(&copies, &nearest).unwrap();
        // Errors: t in (0.85, 0.93] misses no copy and admits one nearest (0.94), error 1/6;
        // t in (0.94, 0.95] misses one copy of five, error 1/5: the first wins.
        assert!(
            (suggestion.threshold - 0.89).abs() < 1e-6,
            "{}",
            suggestion.threshold
        );
        assert_eq!(suggestion.copies.total(), 5);
        assert_eq!(suggestion.nearest.total(), 6);
        assert!(suggestion.how.contains("5 images"), "{}", suggestion.how);
        assert!(suggest_threshold(&[], &nearest).is_err());
    }
}
