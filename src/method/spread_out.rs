//! The paper's objective: Eq. 7 of Ye et al. (CVPR 2019), the instance spread-out loss.
//!
//! A batch holds `2m` L2-normalised rows: rows `0..m` are the first views of `m` images and rows
//! `m..2m` the second views of the same images. For each row `i` with positive `p(i)` (its other
//! view) and negatives `j` (every other row),
//!
//! ```text
//! P(p(i) | i) = exp(f_i·f_p/τ) / Σ_{k≠i} exp(f_i·f_k/τ)
//! P(j | i)    = exp(f_i·f_j/τ) / Σ_{k≠i} exp(f_i·f_k/τ)
//! J = −(1/2m) Σ_i [ log P(p(i)|i) + Σ_{j negative} log(1 − P(j|i)) ]
//! ```
//!
//! As in the paper's released code the right-hand factor of every inner product is detached
//! (stop-gradient), and the sum is averaged over the `2m` rows. The Table 8 ablations restrict the
//! negatives of each row to the most or least similar half; the denominator then runs over the
//! positive and the kept negatives only.

use burn::tensor::{Bool, Device, IndexingUpdateOp, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Which negatives enter the loss (paper Table 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum NegativeSampling {
    /// All `2m − 2` other rows (the method as published).
    #[default]
    All,
    /// Only the most similar half of the negatives of each row ("Hard").
    HardestHalf,
    /// Only the least similar half of the negatives of each row ("Easy").
    EasiestHalf,
}

/// The constant masks of one batch shape, built once on the device and reused by every step of
/// that shape (a run has one shape; a smaller last batch would get its own).
#[derive(Debug, Clone)]
pub struct LossMasks {
    rows: usize,
    /// 1 where column j is row i's other view.
    pub(super) positives: Tensor<2>,
    /// 1 where column j is a negative of row i: neither itself nor its other view.
    pub(super) negatives: Tensor<2>,
    /// Where a column is outside row i's denominator when every negative is kept: the row itself.
    not_in_denominator: Tensor<2, Bool>,
    /// Where a column cannot be a negative (the row itself and its other view).
    pub(super) not_negative: Tensor<2, Bool>,
}

impl LossMasks {
    /// The masks of a `[rows, d]` batch on `device`.
    ///
    /// # Panics
    /// If `rows` is odd or below four (two instances), which the training loop never produces.
    pub fn new(rows: usize, device: &Device) -> Self {
        assert!(
            rows >= 4 && rows.is_multiple_of(2),
            "the loss needs an even number of rows (two views per image) and at least two images, got {rows}"
        );
        let positives = positive_mask(rows);
        let negatives = negative_mask(rows);
        let bool_mask = |values: Vec<bool>| {
            Tensor::<2, Bool>::from_data(TensorData::new(values, [rows, rows]), device)
        };
        Self {
            rows,
            not_in_denominator: bool_mask((0..rows * rows).map(|k| k / rows == k % rows).collect()),
            not_negative: bool_mask(negatives.iter().map(|&n| !n).collect()),
            positives: float_mask(&positives, rows, device),
            negatives: float_mask(&negatives, rows, device),
        }
    }

    /// Rows of the batch shape these masks are for.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Eq. 7 over a `[2m, d]` batch of L2-normalised features, as a one-element tensor. Everything
/// runs on the features' device, the Table 8 negative selection included, so recording a step
/// never waits for the device.
///
/// Panics if `masks` are for another number of rows.
pub fn spread_out_loss(
    features: Tensor<2>,
    tau: f32,
    sampling: NegativeSampling,
    masks: &LossMasks,
) -> Tensor<1> {
    let [rows, _] = features.dims();
    assert_eq!(
        rows, masks.rows,
        "loss masks are for {} rows, the batch has {rows}",
        masks.rows
    );
    let similarity = scaled_similarity(features, tau);
    let positives = masks.positives.clone();
    let (negatives, excluded) = match sampling {
        NegativeSampling::All => (masks.negatives.clone(), masks.not_in_denominator.clone()),
        NegativeSampling::HardestHalf | NegativeSampling::EasiestHalf => {
            // The kept half of each row's 2m − 2 negatives (rounded up), chosen on the device by
            // top-k; the selection itself carries no gradient.
            let keep = (rows - 2).div_ceil(2);
            let scores = similarity.clone().detach();
            let scores = match sampling {
                NegativeSampling::HardestHalf => scores,
                _ => scores.neg(),
            };
            let (_, kept) = scores
                .mask_fill(masks.not_negative.clone(), f32::NEG_INFINITY)
                .topk_with_indices(keep, 1);
            let device = similarity.device();
            let negatives = Tensor::<2>::zeros([rows, rows], &device).scatter(
                1,
                kept,
                Tensor::ones([rows, keep], &device),
                IndexingUpdateOp::Add,
            );
            let excluded = (negatives.clone() + positives.clone()).equal_elem(0.0);
            (negatives, excluded)
        }
    };
    eq7(similarity, positives, negatives, excluded)
}

/// The positive choice of the paper's §4.2 (a pretrained start, where nearest neighbours are
/// already meaningful): row `i` whose `takes_nearest[i]` is 1 takes as its positive its most
/// similar row of another image in the batch instead of its other view; that row then is not
/// one of its negatives, and the other view stays in the denominator only. All other rows are
/// as in [`spread_out_loss`] with every negative kept. `takes_nearest` is `[2m, 1]` of 0 and 1.
pub fn spread_out_loss_nearest(
    features: Tensor<2>,
    tau: f32,
    masks: &LossMasks,
    takes_nearest: Tensor<2>,
) -> Tensor<1> {
    let [rows, _] = features.dims();
    assert_eq!(rows, masks.rows, "loss masks are for another batch shape");
    let similarity = scaled_similarity(features, tau);
    let device = similarity.device();
    let nearest = similarity
        .clone()
        .detach()
        .mask_fill(masks.not_negative.clone(), f32::NEG_INFINITY)
        .argmax(1);
    let chosen = Tensor::<2>::zeros([rows, rows], &device).scatter(
        1,
        nearest,
        Tensor::ones([rows, 1], &device),
        IndexingUpdateOp::Add,
    ) * takes_nearest.clone();
    let positives = masks.positives.clone() * takes_nearest.neg().add_scalar(1.0) + chosen.clone();
    let negatives = masks.negatives.clone() - chosen;
    eq7(
        similarity,
        positives,
        negatives,
        masks.not_in_denominator.clone(),
    )
}

/// Which rows of a `rows`-row batch take their nearest neighbour as positive: each with
/// probability ½ ("we randomly select the augmented instance and its corresponding nearest
/// instance as positive", §4.2), drawn from `seed` (the step's `rng::Stream::NearestPositive`),
/// as a `[rows, 1]` tensor of 0 and 1.
pub fn nearest_positive_rows(rows: usize, seed: u64, device: &Device) -> Tensor<2> {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let values: Vec<f32> = (0..rows)
        .map(|_| f32::from(u8::from(rand::Rng::random_bool(&mut rng, 0.5))))
        .collect();
    Tensor::from_data(
        crate::support::uploads::counted(TensorData::new(values, [rows, 1])),
        device,
    )
}

/// `f_i · f_jᵀ / τ` with the right-hand factor detached, as in the paper's released code.
fn scaled_similarity(features: Tensor<2>, tau: f32) -> Tensor<2> {
    features
        .clone()
        .matmul(features.detach().transpose())
        .div_scalar(tau)
}

/// Eq. 7 for the given positive and negative masks; `excluded` marks the columns outside each
/// row's denominator.
fn eq7(
    similarity: Tensor<2>,
    positives: Tensor<2>,
    negatives: Tensor<2>,
    excluded: Tensor<2, Bool>,
) -> Tensor<1> {
    let [rows, _] = similarity.dims();
    // e_ik = exp(s_ik − max_k s_ik) over the denominator's columns (0 elsewhere): the shift keeps
    // every exponential ≤ 1, and it cancels out of every probability.
    let row_max = similarity
        .clone()
        .mask_fill(excluded.clone(), f32::NEG_INFINITY)
        .max_dim(1)
        .detach();
    let shifted = similarity - row_max;
    let exponentials = shifted.clone().mask_fill(excluded, f32::NEG_INFINITY).exp();
    let denominator = exponentials.clone().sum_dim(1);
    let log_denominator = denominator.log();

    let log_p_positive = (shifted * positives).sum_dim(1) - log_denominator.clone();
    // 1 − P(j|i) = Σ_{k≠j} e_ik / Σ_k e_ik. Summing the other terms directly, instead of
    // subtracting e_ij from the total, keeps the gradient accurate in f32 when one negative
    // dominates a row (small τ); `leave_one_out_sums` does it with two exclusive prefix sums.
    let log_not_negative = (leave_one_out_sums(exponentials)
        .clamp_min(f32::MIN_POSITIVE)
        .log()
        - log_denominator)
        * negatives;

    let per_row = log_p_positive + log_not_negative.sum_dim(1);
    per_row.sum().neg().div_scalar(rows as f32)
}

/// For each row, `out[i][j] = Σ_{k≠j} x[i][k]`, computed without subtraction: the exclusive
/// prefix sum from the left plus the exclusive prefix sum from the right.
fn leave_one_out_sums(x: Tensor<2>) -> Tensor<2> {
    let exclusive_prefix = |x: Tensor<2>| {
        let [rows, cols] = x.dims();
        let zeros = Tensor::<2>::zeros([rows, 1], &x.device());
        Tensor::cat(vec![zeros, x.slice([0..rows, 0..cols - 1])], 1).cumsum(1)
    };
    exclusive_prefix(x.clone()) + exclusive_prefix(x.flip([1])).flip([1])
}

/// Row `i`'s positive is the other view of the same image.
fn positive_mask(rows: usize) -> Vec<bool> {
    let half = rows / 2;
    (0..rows * rows)
        .map(|index| (index / rows + half) % rows == index % rows)
        .collect()
}

/// Every row other than itself and its positive.
fn negative_mask(rows: usize) -> Vec<bool> {
    let half = rows / 2;
    (0..rows * rows)
        .map(|index| {
            let (i, j) = (index / rows, index % rows);
            j != i && j != (i + half) % rows
        })
        .collect()
}

fn float_mask(mask: &[bool], rows: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
    Tensor::from_data(TensorData::new(values, [rows, rows]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_pair_each_row_with_its_other_view() {
        let rows = 6;
        let positives = positive_mask(rows);
        for i in 0..rows {
            let row: Vec<usize> = (0..rows).filter(|&j| positives[i * rows + j]).collect();
            assert_eq!(row, vec![(i + 3) % rows]);
        }
        let negatives = negative_mask(rows);
        for i in 0..rows {
            assert_eq!(
                (0..rows).filter(|&j| negatives[i * rows + j]).count(),
                rows - 2
            );
            assert!(!negatives[i * rows + i]);
        }
    }

    /// Eq. 7 over the chosen negatives, written out row by row in f64: the reference the device
    /// selection is checked against.
    fn reference_loss(features: &[Vec<f32>], tau: f64, sampling: NegativeSampling) -> f64 {
        let rows = features.len();
        let dot =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum::<f64>();
        let mut total = 0.0;
        for i in 0..rows {
            let positive = (i + rows / 2) % rows;
            let s: Vec<f64> = (0..rows)
                .map(|j| dot(&features[i], &features[j]) / tau)
                .collect();
            let mut negatives: Vec<usize> =
                (0..rows).filter(|&j| j != i && j != positive).collect();
            negatives.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
            if sampling == NegativeSampling::EasiestHalf {
                negatives.reverse();
            }
            if sampling != NegativeSampling::All {
                negatives.truncate(negatives.len().div_ceil(2));
            }
            let denominator: f64 =
                s[positive].exp() + negatives.iter().map(|&j| s[j].exp()).sum::<f64>();
            total += (s[positive].exp() / denominator).ln();
            for &j in &negatives {
                total += (1.0 - s[j].exp() / denominator).ln();
            }
        }
        -total / rows as f64
    }

    /// `rows` random unit vectors of `dim` entries, drawn from `seed`.
    fn unit_rows(rows: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        (0..rows)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    #[test]
    fn hard_and_easy_halves_match_a_row_by_row_reference() {
        let device = Device::flex();
        let (rows, dim) = (8, 5);
        let features = unit_rows(rows, dim, 3);
        let masks = LossMasks::new(rows, &device);
        let tensor =
            Tensor::<2>::from_data(TensorData::new(features.concat(), [rows, dim]), &device);
        let mut values = Vec::new();
        for sampling in [
            NegativeSampling::All,
            NegativeSampling::HardestHalf,
            NegativeSampling::EasiestHalf,
        ] {
            let loss: f32 = spread_out_loss(tensor.clone(), 0.5, sampling, &masks).into_scalar();
            let expected = reference_loss(&features, 0.5, sampling);
            assert!(
                (f64::from(loss) - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                "{sampling:?}: {loss} vs {expected}"
            );
            values.push(loss);
        }
        assert!(
            values[0] != values[1] && values[1] != values[2],
            "{values:?}"
        );
    }

    /// §4.2's nearest-neighbour positive, written out row by row in f64.
    #[test]
    fn nearest_positives_match_a_row_by_row_reference() {
        let device = Device::flex();
        let (rows, dim, tau) = (8usize, 4usize, 0.3f64);
        let features = unit_rows(rows, dim, 5);
        let coins = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        let dot =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum::<f64>();
        let mut total = 0.0;
        for i in 0..rows {
            let view = (i + rows / 2) % rows;
            let s: Vec<f64> = (0..rows)
                .map(|j| dot(&features[i], &features[j]) / tau)
                .collect();
            let others: Vec<usize> = (0..rows).filter(|&j| j != i && j != view).collect();
            let nearest = *others
                .iter()
                .max_by(|&&a, &&b| s[a].total_cmp(&s[b]))
                .unwrap();
            let positive = if coins[i] == 1.0 { nearest } else { view };
            let denominator: f64 = (0..rows).filter(|&k| k != i).map(|k| s[k].exp()).sum();
            total += (s[positive].exp() / denominator).ln();
            for &j in others.iter().filter(|&&j| j != positive) {
                total += (1.0 - s[j].exp() / denominator).ln();
            }
        }
        let expected = -total / rows as f64;
        let masks = LossMasks::new(rows, &device);
        let tensor =
            Tensor::<2>::from_data(TensorData::new(features.concat(), [rows, dim]), &device);
        let takes = Tensor::<2>::from_data(TensorData::new(coins.to_vec(), [rows, 1]), &device);
        let loss: f32 =
            spread_out_loss_nearest(tensor.clone(), tau as f32, &masks, takes).into_scalar();
        assert!(
            (f64::from(loss) - expected).abs() <= 1e-4 * expected.abs(),
            "{loss} vs {expected}"
        );
        // With no row taking its nearest neighbour it is Eq. 7 itself.
        let none = Tensor::<2>::zeros([rows, 1], &device);
        let plain: f32 = spread_out_loss(tensor.clone(), tau as f32, NegativeSampling::All, &masks)
            .into_scalar();
        let same: f32 = spread_out_loss_nearest(tensor, tau as f32, &masks, none).into_scalar();
        assert!((plain - same).abs() < 1e-6);
        let drawn: f32 = nearest_positive_rows(1000, 3, &device).sum().into_scalar();
        assert!((400.0f32..600.0).contains(&drawn), "{drawn} of 1000 rows");
    }

    #[test]
    fn perfectly_spread_features_give_a_small_loss() {
        // Two instances whose views coincide and are orthogonal to the other instance.
        let device = Device::flex();
        let features = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0], [4, 2]),
            &device,
        );
        let collapsed = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [4, 2]),
            &device,
        );
        let masks = LossMasks::new(4, &device);
        let spread: f32 =
            spread_out_loss(features, 0.1, NegativeSampling::All, &masks).into_scalar();
        let same: f32 =
            spread_out_loss(collapsed, 0.1, NegativeSampling::All, &masks).into_scalar();
        assert!(spread < 0.01, "spread loss {spread}");
        assert!(same > 1.0, "collapsed loss {same}");
    }

    /// Reference values from an independent float64 PyTorch implementation (../shared/fixtures).
    #[test]
    fn reproduces_the_reference_loss_and_gradient() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/reference_metrics.json"
        );
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("reference fixtures {path}: {error}"));
        let fixtures: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cases = fixtures["loss_cases"].as_array().expect("loss_cases");
        assert!(!cases.is_empty());
        let device = Device::flex().autodiff();
        for (index, case) in cases.iter().enumerate() {
            let rows: Vec<Vec<f32>> = serde_json::from_value(case["features"].clone()).unwrap();
            let expected_grad: Vec<Vec<f64>> =
                serde_json::from_value(case["grad"].clone()).unwrap();
            let expected_loss = case["loss"].as_f64().unwrap();
            let tau = case["tau"].as_f64().unwrap() as f32;
            let (n, d) = (rows.len(), rows[0].len());
            let features = Tensor::<2>::from_data(TensorData::new(rows.concat(), [n, d]), &device)
                .require_grad();
            let masks = LossMasks::new(n, &device);
            let loss = spread_out_loss(features.clone(), tau, NegativeSampling::All, &masks);
            let value: f32 = loss.clone().into_data().try_to_vec::<f32>().unwrap()[0];
            let relative = ((value as f64 - expected_loss) / expected_loss).abs();
            assert!(
                relative <= 1e-4,
                "case {index}: loss {value} vs {expected_loss}"
            );
            let grads = loss.backward();
            let grad: Vec<f32> = features
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec()
                .unwrap();
            let expected: Vec<f64> = expected_grad.concat();
            // Relative to the largest component (entries near zero carry f32 rounding noise),
            // and as a whole vector.
            let scale = expected.iter().map(|g| g.abs()).fold(0.0, f64::max);
            for (i, (&g, &e)) in grad.iter().zip(&expected).enumerate() {
                let error = (g as f64 - e).abs() / scale;
                assert!(error <= 1e-4, "case {index}, element {i}: grad {g} vs {e}");
            }
            let difference: f64 = grad
                .iter()
                .zip(&expected)
                .map(|(&g, &e)| (g as f64 - e).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm = expected.iter().map(|e| e * e).sum::<f64>().sqrt();
            assert!(
                difference / norm <= 1e-4,
                "case {index}: gradient relative error {}",
                difference / norm
            );
        }
    }
}
