//! The triplet baselines of the seed paper's comparisons, on the same two-view batches as the
//! spread-out loss: row i's anchor is its view, the positive its other view, the negatives every
//! other row. Distances are Euclidean between unit vectors, `d = √(2 − 2·s)`.
//!
//! - Triplet: every (anchor, positive, negative) of the batch, `max(0, d_ap − d_an + margin)`
//!   averaged over all of them.
//! - Triplet (hard): each anchor's hardest negative only (the nearest, batch-hard mining as in
//!   Hermans et al. 2017), averaged over anchors.
//!
//! Unlike Eq. 7 nothing is detached: the gradient reaches both ends of every pair.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::LossMasks;

/// Below this squared distance the square root's gradient is cut off (two identical rows).
const MIN_SQUARED_DISTANCE: f32 = 1e-8;

/// The triplet loss of a `[2m, d]` batch of unit rows (rows `0..m` and `m..2m` the two views).
pub fn triplet_loss(features: Tensor<2>, margin: f32, hard: bool, masks: &LossMasks) -> Tensor<1> {
    let [rows, _] = features.dims();
    assert_eq!(rows, masks.rows(), "loss masks are for another batch shape");
    let similarity = features.clone().matmul(features.transpose());
    let distance = similarity
        .mul_scalar(-2.0)
        .add_scalar(2.0)
        .clamp_min(MIN_SQUARED_DISTANCE)
        .sqrt();
    let positive = (distance.clone() * masks.positives.clone()).sum_dim(1);
    if hard {
        let nearest_negative = distance
            .mask_fill(masks.not_negative.clone(), f32::INFINITY)
            .min_dim(1);
        relu((positive - nearest_negative).add_scalar(margin)).mean()
    } else {
        let hinges = relu((positive - distance).add_scalar(margin)) * masks.negatives.clone();
        hinges.sum().div_scalar((rows * (rows - 2)) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use rand::{Rng, SeedableRng};

    #[test]
    fn both_triplet_losses_match_their_equations() {
        let device = Device::flex();
        let (rows, dim, margin) = (6usize, 3usize, 0.5f64);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let features: Vec<Vec<f32>> = (0..rows)
            .map(|_| {
                let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / norm).collect()
            })
            .collect();
        let d = |a: usize, b: usize| {
            features[a]
                .iter()
                .zip(&features[b])
                .map(|(x, y)| f64::from(x - y).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let (mut all, mut all_count, mut hard) = (0.0, 0usize, 0.0);
        for a in 0..rows {
            let p = (a + rows / 2) % rows;
            let negatives: Vec<usize> = (0..rows).filter(|&j| j != a && j != p).collect();
            for &n in &negatives {
                all += (d(a, p) - d(a, n) + margin).max(0.0);
                all_count += 1;
            }
            let nearest = negatives
                .iter()
                .map(|&n| d(a, n))
                .fold(f64::INFINITY, f64::min);
            hard += (d(a, p) - nearest + margin).max(0.0);
        }
        let tensor =
            Tensor::<2>::from_data(TensorData::new(features.concat(), [rows, dim]), &device);
        let masks = LossMasks::new(rows, &device);
        let value = |hard| super::super::scalar(triplet_loss(tensor.clone(), 0.5, hard, &masks));
        let (expected_all, expected_hard) = (all / all_count as f64, hard / rows as f64);
        assert!(
            (value(false) - expected_all).abs() < 1e-5,
            "{} vs {expected_all}",
            value(false)
        );
        assert!(
            (value(true) - expected_hard).abs() < 1e-5,
            "{} vs {expected_hard}",
            value(true)
        );
        assert!(
            expected_hard > expected_all,
            "hard mining picks the larger hinges"
        );
    }
}
