//! The training objective: Eq. 7 of Ye et al. (CVPR 2019), the instance spread-out loss.
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

use burn::tensor::{Bool, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Which negatives enter the loss (paper Table 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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

/// Eq. 7 over a `[2m, d]` batch of L2-normalised features, as a one-element tensor.
///
/// Panics if the batch has an odd number of rows or fewer than four (two instances), which the
/// training loop never produces.
pub fn spread_out_loss(features: Tensor<2>, tau: f32, sampling: NegativeSampling) -> Tensor<1> {
    let [rows, _] = features.dims();
    assert!(
        rows >= 4 && rows % 2 == 0,
        "the loss needs an even number of rows (two views per image) and at least two images, got {rows}"
    );
    let device = features.device();
    let similarity = features
        .clone()
        .matmul(features.detach().transpose())
        .div_scalar(tau);

    let negatives = match sampling {
        NegativeSampling::All => negative_mask(rows, None),
        NegativeSampling::HardestHalf | NegativeSampling::EasiestHalf => {
            // Selecting by similarity needs the values; the selection itself carries no gradient.
            let values: Vec<f32> = similarity
                .clone()
                .inner()
                .into_data()
                .try_to_vec()
                .expect("similarity matrix is f32");
            negative_mask(
                rows,
                Some((&values, sampling == NegativeSampling::HardestHalf)),
            )
        }
    };
    let positives = positive_mask(rows);
    let in_denominator: Vec<bool> = negatives
        .iter()
        .zip(&positives)
        .map(|(&n, &p)| n || p)
        .collect();

    let negatives = float_mask(&negatives, rows, &device);
    let positives = float_mask(&positives, rows, &device);
    let excluded = Tensor::<2, Bool>::from_data(
        TensorData::new(in_denominator.iter().map(|&k| !k).collect(), [rows, rows]),
        &device,
    );

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

/// Every row other than itself and its positive; with `selection = Some((similarities, hardest))`
/// only the most (or least) similar half of those, rounded up.
fn negative_mask(rows: usize, selection: Option<(&[f32], bool)>) -> Vec<bool> {
    let half = rows / 2;
    let is_candidate = |i: usize, j: usize| j != i && j != (i + half) % rows;
    let mut mask = vec![false; rows * rows];
    for i in 0..rows {
        let mut candidates: Vec<usize> = (0..rows).filter(|&j| is_candidate(i, j)).collect();
        if let Some((similarity, hardest)) = selection {
            let row = &similarity[i * rows..(i + 1) * rows];
            candidates.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            if !hardest {
                candidates.reverse();
            }
            candidates.truncate(candidates.len().div_ceil(2));
        }
        for j in candidates {
            mask[i * rows + j] = true;
        }
    }
    mask
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
        let negatives = negative_mask(rows, None);
        for i in 0..rows {
            assert_eq!(
                (0..rows).filter(|&j| negatives[i * rows + j]).count(),
                rows - 2
            );
            assert!(!negatives[i * rows + i]);
        }
    }

    #[test]
    fn hard_and_easy_halves_split_the_negatives_by_similarity() {
        let rows = 6;
        // Row 0's negatives are columns 1, 2, 4, 5 with similarities 0.9, 0.1, 0.5, -0.3.
        let mut similarity = vec![0.0f32; rows * rows];
        similarity[..rows].copy_from_slice(&[1.0, 0.9, 0.1, 0.8, 0.5, -0.3]);
        let hard = negative_mask(rows, Some((&similarity, true)));
        let easy = negative_mask(rows, Some((&similarity, false)));
        let chosen = |mask: &[bool]| (0..rows).filter(|&j| mask[j]).collect::<Vec<_>>();
        assert_eq!(chosen(&hard), vec![1, 4]);
        assert_eq!(chosen(&easy), vec![2, 5]);
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
        let spread: f32 = spread_out_loss(features, 0.1, NegativeSampling::All).into_scalar();
        let same: f32 = spread_out_loss(collapsed, 0.1, NegativeSampling::All).into_scalar();
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
            let loss = spread_out_loss(features.clone(), tau, NegativeSampling::All);
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
