//! Cosine-similarity distributions (paper Fig. 5 and 6): positive against negative pairs, with
//! labels (same-class against other-class neighbours) or without (two views of one image), and of
//! random pairs. Histograms are what the UI plots and what `metrics.jsonl` keeps.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::error::{check_same_count, check_same_dim};
use super::scan::{Best, Collector, dot, scan};
use super::{Embeddings, EvalError};

/// A histogram of cosine similarities over `[lo, hi] = [-1, 1]` in equal bins.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, ts_rs::TS)]
pub struct Histogram {
    /// Lower edge of the first bin.
    pub lo: f32,
    /// Upper edge of the last bin.
    pub hi: f32,
    /// Number of values in each bin.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// An empty histogram of `bins` equal bins over `[-1, 1]`.
    pub fn new(bins: usize) -> Result<Self, EvalError> {
        if bins == 0 {
            return Err(EvalError::ZeroParameter("number of histogram bins"));
        }
        Ok(Self {
            lo: -1.0,
            hi: 1.0,
            counts: vec![0; bins],
        })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// Counts `value`. Values outside `[lo, hi]` (a cosine of 1.0000001 from rounding) go to the
    /// nearest end bin; the upper edge belongs to the last bin. NaN has no bin and is not counted.
    pub fn add(&mut self, value: f32) {
        if value.is_nan() {
            return;
        }
        let position = (value - self.lo) / (self.hi - self.lo) * self.bins() as f32;
        // A float-to-int cast saturates, so negative positions land in bin 0.
        let bin = (position as usize).min(self.bins() - 1);
        self.counts[bin] += 1;
    }

    /// Number of values counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Centre of bin `i`.
    pub fn bin_center(&self, i: usize) -> f32 {
        let width = (self.hi - self.lo) / self.bins() as f32;
        self.lo + (i as f32 + 0.5) * width
    }

    /// Mean of the counted values, approximated by bin centres; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| {
            let weighted: f64 = (0..self.bins())
                .map(|i| f64::from(self.bin_center(i)) * self.counts[i] as f64)
                .sum();
            weighted / total as f64
        })
    }

    /// Adds the counts of a histogram with the same bins (used to combine per-thread partials).
    fn absorb(&mut self, other: &Self) {
        debug_assert_eq!(self.counts.len(), other.counts.len());
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }
}

/// How the positive pairs of a [`SimilarityDistributions`] were formed.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq, ts_rs::TS)]
pub enum PairKind {
    /// Positives are a row's nearest neighbours of the same class, negatives its nearest of other
    /// classes (paper Fig. 5; needs labels).
    #[serde(alias = "SameClassNeighbours")]
    // as run folders written before identifiers took one spelling say
    SameClassNeighbors,
    /// Positives are two augmented views of one image, negatives views of different images.
    TwoViews,
}

/// Cosine-similarity distributions of positive and negative pairs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, ts_rs::TS)]
pub struct SimilarityDistributions {
    /// Similarities of positive pairs.
    pub positive: Histogram,
    /// Similarities of negative pairs.
    pub negative: Histogram,
    /// How the pairs were formed.
    pub kind: PairKind,
}

/// Collector for Fig. 5: one query's nearest neighbours of its own class and of other classes.
struct ClassSplit<'l> {
    query: usize,
    labels: &'l [usize],
    same: Best,
    other: Best,
}

impl Collector for ClassSplit<'_> {
    #[inline]
    fn floor(&self) -> f32 {
        self.same.floor.min(self.other.floor)
    }

    #[inline]
    fn offer(&mut self, base_index: usize, score: f32) {
        if base_index == self.query {
            return;
        }
        if self.labels[base_index] == self.labels[self.query] {
            self.same.offer(base_index, score);
        } else {
            self.other.offer(base_index, score);
        }
    }
}

/// Paper Fig. 5: for each row, its `neighbours` nearest rows of the same class (itself excluded)
/// give positive similarities and its `neighbours` nearest rows of other classes give negative
/// ones. A class with too few members contributes the ones it has.
pub fn labeled_similarity_distributions(
    features: Embeddings,
    labels: &[usize],
    neighbors: usize,
    bins: usize,
) -> Result<SimilarityDistributions, EvalError> {
    let per_label = similarity_distributions_per_label(features, labels, neighbors, bins)?;
    merge_distributions(&per_label, bins)
}

/// The distributions of all `parts` together (e.g. the per-label ones of
/// [`similarity_distributions_per_label`]); `bins` must be theirs.
pub fn merge_distributions(
    parts: &[SimilarityDistributions],
    bins: usize,
) -> Result<SimilarityDistributions, EvalError> {
    let mut total = SimilarityDistributions {
        positive: Histogram::new(bins)?,
        negative: Histogram::new(bins)?,
        kind: PairKind::SameClassNeighbors,
    };
    for part in parts {
        total.positive.absorb(&part.positive);
        total.negative.absorb(&part.negative);
    }
    Ok(total)
}

/// [`labelled_similarity_distributions`] split by the query's label (paper Fig. 6): element `l`
/// holds the pairs whose query has label `l`.
pub fn similarity_distributions_per_label(
    features: Embeddings,
    labels: &[usize],
    neighbors: usize,
    bins: usize,
) -> Result<Vec<SimilarityDistributions>, EvalError> {
    check_same_count("features", features.len(), "labels", labels.len())?;
    if neighbors == 0 {
        return Err(EvalError::ZeroParameter("number of neighbours"));
    }
    if features.len() < 2 {
        return Err(EvalError::TooFewRows {
            what: "similarity distributions",
            needed: 2,
            got: features.len(),
        });
    }
    let empty = SimilarityDistributions {
        positive: Histogram::new(bins)?,
        negative: Histogram::new(bins)?,
        kind: PairKind::SameClassNeighbors,
    };
    let classes = labels.iter().max().map_or(0, |&max| max + 1);
    let mut per_label = vec![empty; classes];
    let mut collectors: Vec<ClassSplit> = (0..features.len())
        .map(|query| ClassSplit {
            query,
            labels,
            same: Best::new(neighbors),
            other: Best::new(neighbors),
        })
        .collect();
    scan(features, features, &mut collectors);
    for c in collectors {
        let target = &mut per_label[labels[c.query]];
        c.same
            .into_sorted()
            .iter()
            .for_each(|&(_, s)| target.positive.add(s));
        c.other
            .into_sorted()
            .iter()
            .for_each(|&(_, s)| target.negative.add(s));
    }
    Ok(per_label)
}

/// Cosine similarities of `pairs` random pairs of distinct rows (or of every pair, when there
/// are fewer), seeded: how spread out an embedding is, with or without labels.
pub fn random_pair_histogram(
    features: Embeddings,
    pairs: usize,
    bins: usize,
    seed: u64,
) -> Result<Histogram, EvalError> {
    let n = features.len();
    if n < 2 {
        return Err(EvalError::TooFewRows {
            what: "pair similarities",
            needed: 2,
            got: n,
        });
    }
    let mut histogram = Histogram::new(bins)?;
    if n * (n - 1) / 2 <= pairs {
        for i in 0..n {
            for j in i + 1..n {
                histogram.add(dot(features.row(i), features.row(j)));
            }
        }
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..pairs {
            let i = rng.random_range(0..n);
            let j = (i + rng.random_range(1..n)) % n;
            histogram.add(dot(features.row(i), features.row(j)));
        }
    }
    Ok(histogram)
}

/// Negatives sampled per row in [`view_similarity_distributions`] once all pairs would cost more.
const NEGATIVES_PER_ROW: usize = 50;

/// Distributions without labels: row `i` of `view_a` and row `i` of `view_b` are two augmentations
/// of one image (a positive pair); `view_a[i] . view_b[j]` for `j != i` are negatives. Every
/// negative pair is used when a row has at most 50 of them, otherwise a seeded sample of 50 per
/// row, which bounds the cost at O(50 n) instead of O(n^2).
pub fn view_similarity_distributions(
    view_a: Embeddings,
    view_b: Embeddings,
    bins: usize,
    seed: u64,
) -> Result<SimilarityDistributions, EvalError> {
    check_same_dim("view_a", view_a, "view_b", view_b)?;
    check_same_count("view_a", view_a.len(), "view_b", view_b.len())?;
    let empty = Histogram::new(bins)?;
    let n = view_a.len();
    if n < 2 {
        return Err(EvalError::TooFewRows {
            what: "view similarity distributions",
            needed: 2,
            got: n,
        });
    }
    let (positive, negative) = (0..n)
        .into_par_iter()
        .fold(
            || (empty.clone(), empty.clone()),
            |(mut positive, mut negative), i| {
                let a = view_a.row(i);
                positive.add(dot(a, view_b.row(i)));
                // Candidates are 0..n-1 with i skipped by shifting indices at or above it.
                let mut add_negative = |j: usize| {
                    let j = if j >= i { j + 1 } else { j };
                    negative.add(dot(a, view_b.row(j)));
                };
                if n - 1 <= NEGATIVES_PER_ROW {
                    (0..n - 1).for_each(&mut add_negative);
                } else {
                    // One ChaCha stream per row: the sample does not depend on thread scheduling.
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(i as u64);
                    rand::seq::index::sample(&mut rng, n - 1, NEGATIVES_PER_ROW)
                        .into_iter()
                        .for_each(&mut add_negative);
                }
                (positive, negative)
            },
        )
        .reduce(
            || (empty.clone(), empty.clone()),
            |(mut p1, mut n1), (p2, n2)| {
                p1.absorb(&p2);
                n1.absorb(&n2);
                (p1, n1)
            },
        );
    Ok(SimilarityDistributions {
        positive,
        negative,
        kind: PairKind::TwoViews,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::random_unit_rows;
    use crate::eval::testing::{blobs, emb};

    #[test]
    fn histogram_places_values_and_summarizes() {
        let mut h = Histogram::new(4).unwrap();
        for v in [-1.0, -0.75, -0.5, 0.0, 0.49, 0.5, 1.0, 1.000_001, -1.5] {
            h.add(v);
        }
        h.add(f32::NAN);
        assert_eq!(h.counts, vec![3, 1, 2, 3]);
        assert_eq!(h.total(), 9);
        assert_eq!(h.bin_center(0), -0.75);
        assert!(Histogram::new(10).unwrap().mean().is_none());
        let mut single = Histogram::new(10).unwrap();
        single.add(0.31);
        assert!((single.mean().unwrap() - 0.3).abs() < 1e-6);
    }

    #[test]
    fn labeled_distributions_count_every_pair() {
        let (data, labels) = blobs(8, 3);
        let features = emb(&data, 8);
        let dists = labeled_similarity_distributions(features, &labels, 5, 20).unwrap();
        assert_eq!(dists.kind, PairKind::SameClassNeighbors);
        assert_eq!(dists.positive.total(), 120 * 5);
        assert_eq!(dists.negative.total(), 120 * 5);
        // Tight blobs: same-class pairs are near 1, other-class pairs near 0.
        assert!(dists.positive.mean().unwrap() > 0.9);
        assert!(dists.negative.mean().unwrap().abs() < 0.2);
        // A class smaller than `neighbours` contributes what it has: 30 - 1 others each.
        let few = labeled_similarity_distributions(features, &labels, 100, 20).unwrap();
        assert_eq!(few.positive.total(), 120 * 29);
        assert_eq!(few.negative.total(), 120 * 90);
        let json = serde_json::to_string(&dists).unwrap();
        let back: SimilarityDistributions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, dists);
    }

    #[test]
    fn view_distributions_count_every_pair_and_are_seeded() {
        let small_a = random_unit_rows(20, 16, 1);
        let small_b = random_unit_rows(20, 16, 2);
        let all =
            view_similarity_distributions(emb(&small_a, 16), emb(&small_b, 16), 10, 0).unwrap();
        assert_eq!(all.kind, PairKind::TwoViews);
        assert_eq!(all.positive.total(), 20);
        assert_eq!(all.negative.total(), 20 * 19);
        let (a, b) = (random_unit_rows(300, 16, 3), random_unit_rows(300, 16, 4));
        let sampled = view_similarity_distributions(emb(&a, 16), emb(&b, 16), 10, 7).unwrap();
        assert_eq!(sampled.positive.total(), 300);
        assert_eq!(sampled.negative.total(), 300 * NEGATIVES_PER_ROW as u64);
        let again = view_similarity_distributions(emb(&a, 16), emb(&b, 16), 10, 7).unwrap();
        assert_eq!(sampled, again);
        // Identical views: every positive is exactly 1, in the top bin.
        let same = view_similarity_distributions(emb(&a, 16), emb(&a, 16), 10, 7).unwrap();
        assert_eq!(same.positive.counts[9], 300);
    }

    #[test]
    fn per_label_distributions_add_up_to_the_overall_ones() {
        let features = random_unit_rows(30, 8, 3);
        let labels: Vec<usize> = (0..30).map(|i| i % 3).collect();
        let features = Embeddings::new(&features, 8).unwrap();
        let total = labeled_similarity_distributions(features, &labels, 4, 20).unwrap();
        let parts = similarity_distributions_per_label(features, &labels, 4, 20).unwrap();
        assert_eq!(parts.len(), 3);
        let positive: u64 = parts.iter().map(|p| p.positive.total()).sum();
        assert_eq!(positive, total.positive.total());
        assert_eq!(parts[0].negative.total(), 10 * 4);
    }

    #[test]
    fn invalid_inputs_are_reported() {
        let data = [1.0, 0.0, 0.0, 1.0];
        let set = emb(&data, 2);
        let wide = [1.0, 0.0, 0.0];
        let wide = emb(&wide, 3);
        let message = |e: EvalError| e.to_string();

        assert!(message(Histogram::new(0).unwrap_err()).contains("bins"));
        assert!(labeled_similarity_distributions(set, &[0, 1], 0, 10).is_err());
        assert!(labeled_similarity_distributions(set, &[0, 1], 5, 0).is_err());
        assert!(view_similarity_distributions(set, wide, 10, 0).is_err());
        assert!(
            view_similarity_distributions(emb(&data[..2], 2), emb(&data[..2], 2), 10, 0).is_err()
        );
    }
}
