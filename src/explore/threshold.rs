//! Where a near-duplicate stage draws its line: the threshold that separates, on the folder
//! itself, how similar an image and a mildly edited copy of it are (the *copy* distribution) from
//! how similar each image is to its nearest other image (mostly distinct images). The suggestion
//! is where the first's low tail meets the second's high tail. Both stages use it, the
//! embedding's cosine and the hashes' similarity.

use crate::eval::{EvalError, Histogram};

/// Bins of the two threshold histograms over [−1, 1]: steps of 0.001, fine enough for the
/// crowded top of a young model's similarities (16 KB each in the IPC).
pub const THRESHOLD_BINS: usize = 2000;

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
    /// Fraction of the copies below the threshold.
    pub missed: f32,
    /// Fraction of the nearest other images above it.
    pub crowded: f32,
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
        missed: missed as f32,
        crowded: crowded as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
