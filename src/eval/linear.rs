//! Linear evaluation (the paper's Table 2 "Linear" column): a linear classifier trained on the
//! frozen embeddings of a labelled training folder, scored by top-1 accuracy on a test folder.
//!
//! The classifier is multinomial logistic regression: features standardised per dimension with
//! the training set's mean and standard deviation, softmax over classes, cross-entropy with a
//! small L2 penalty, minibatch SGD with momentum and a cosine rate. It is written out here rather
//! than taken from a crate because it is a few dozen lines, deterministic for a seed, and needs no
//! BLAS; at 50 000 × 128 × 10 the whole fit takes seconds.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::error::check_same_count;
use super::{Embeddings, EvalError};

/// How the classifier is fitted.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LinearSettings {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per update.
    pub batch_size: usize,
    /// Initial learning rate (cosine-decayed to zero).
    pub lr: f32,
    /// Momentum of the updates.
    pub momentum: f32,
    /// L2 penalty on the weights.
    pub weight_decay: f32,
    /// Seed of the row order.
    pub seed: u64,
}

impl Default for LinearSettings {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 256,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            seed: 0,
        }
    }
}

/// A fitted classifier over standardised features.
#[derive(Debug, Clone)]
pub struct LinearClassifier {
    classes: usize,
    dim: usize,
    mean: Vec<f32>,
    inverse_std: Vec<f32>,
    /// `[classes, dim]` then `classes` biases.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl LinearClassifier {
    /// Fits the classifier to `train` rows labelled `labels` (`0..classes`).
    pub fn fit(
        train: Embeddings,
        labels: &[usize],
        settings: &LinearSettings,
    ) -> Result<Self, EvalError> {
        check_same_count(
            "train embeddings",
            train.len(),
            "train labels",
            labels.len(),
        )?;
        if train.is_empty() {
            return Err(EvalError::Empty("train embeddings"));
        }
        if settings.epochs == 0 || settings.batch_size == 0 {
            return Err(EvalError::ZeroParameter(
                "linear classifier epochs and batch size",
            ));
        }
        let (n, dim) = (train.len(), train.dim());
        let classes = labels.iter().max().map_or(0, |&l| l + 1);
        let mut mean = vec![0.0f64; dim];
        let mut square = vec![0.0f64; dim];
        for i in 0..n {
            for (d, &x) in train.row(i).iter().enumerate() {
                mean[d] += f64::from(x);
                square[d] += f64::from(x) * f64::from(x);
            }
        }
        let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
        let inverse_std: Vec<f32> = square
            .iter()
            .zip(&mean)
            .map(|(s, &m)| {
                let variance = (s / n as f64 - f64::from(m) * f64::from(m)).max(0.0);
                (1.0 / variance.sqrt().max(1e-6)) as f32
            })
            .collect();
        let mut model = Self {
            classes,
            dim,
            mean,
            inverse_std,
            weights: vec![0.0; classes * dim],
            bias: vec![0.0; classes],
        };
        let standardized: Vec<f32> = (0..n)
            .flat_map(|i| model.standardize(train.row(i)))
            .collect();
        let mut velocity_w = vec![0.0f32; classes * dim];
        let mut velocity_b = vec![0.0f32; classes];
        let mut gradient_w = vec![0.0f32; classes * dim];
        let mut gradient_b = vec![0.0f32; classes];
        let mut probabilities = vec![0.0f32; classes];
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let steps_per_epoch = n.div_ceil(settings.batch_size);
        let total_steps = (settings.epochs * steps_per_epoch) as f32;
        let mut step = 0usize;
        for _ in 0..settings.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(settings.batch_size) {
                gradient_w.fill(0.0);
                gradient_b.fill(0.0);
                for &i in batch {
                    let x = &standardized[i * dim..(i + 1) * dim];
                    model.softmax_into(x, &mut probabilities);
                    probabilities[labels[i]] -= 1.0;
                    for (c, &p) in probabilities.iter().enumerate() {
                        gradient_b[c] += p;
                        for (g, &v) in gradient_w[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                            *g += p * v;
                        }
                    }
                }
                let lr = settings.lr
                    * 0.5
                    * (1.0 + (std::f32::consts::PI * step as f32 / total_steps).cos());
                let scale = 1.0 / batch.len() as f32;
                for ((w, v), g) in model
                    .weights
                    .iter_mut()
                    .zip(&mut velocity_w)
                    .zip(&gradient_w)
                {
                    *v = settings.momentum * *v + g * scale + settings.weight_decay * *w;
                    *w -= lr * *v;
                }
                for ((b, v), g) in model.bias.iter_mut().zip(&mut velocity_b).zip(&gradient_b) {
                    *v = settings.momentum * *v + g * scale;
                    *b -= lr * *v;
                }
                step += 1;
            }
        }
        Ok(model)
    }

    fn standardize(&self, row: &[f32]) -> Vec<f32> {
        row.iter()
            .zip(&self.mean)
            .zip(&self.inverse_std)
            .map(|((x, m), s)| (x - m) * s)
            .collect()
    }

    /// Class probabilities of one standardised row, written into `out`.
    fn softmax_into(&self, x: &[f32], out: &mut [f32]) {
        for (c, o) in out.iter_mut().enumerate() {
            *o = self.bias[c]
                + self.weights[c * self.dim..(c + 1) * self.dim]
                    .iter()
                    .zip(x)
                    .map(|(w, v)| w * v)
                    .sum::<f32>();
        }
        let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for o in out.iter_mut() {
            *o = (*o - max).exp();
            total += *o;
        }
        for o in out.iter_mut() {
            *o /= total;
        }
    }

    /// The most probable class of each row (ties: the smaller class).
    pub fn predict(&self, rows: Embeddings) -> Vec<usize> {
        let mut probabilities = vec![0.0f32; self.classes];
        (0..rows.len())
            .map(|i| {
                self.softmax_into(&self.standardize(rows.row(i)), &mut probabilities);
                probabilities
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (c, &p)| {
                        if p > best.1 { (c, p) } else { best }
                    })
                    .0
            })
            .collect()
    }
}

/// Top-1 accuracy (%) on `test` of a linear classifier fitted on `train`.
pub fn linear_accuracy(
    train: Embeddings,
    train_labels: &[usize],
    test: Embeddings,
    test_labels: &[usize],
    settings: &LinearSettings,
) -> Result<f64, EvalError> {
    check_same_count(
        "test embeddings",
        test.len(),
        "test labels",
        test_labels.len(),
    )?;
    let classifier = LinearClassifier::fit(train, train_labels, settings)?;
    Ok(super::accuracy(&classifier.predict(test), test_labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three noisy but linearly separable classes: a constant predictor scores a third.
    #[test]
    fn a_linearly_separable_set_is_learned_deterministically() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..600 {
            let label = i % 3;
            let center = [[1.0f32, 0.0], [-0.5, 0.8], [-0.5, -0.8]][label];
            let noise: [f32; 2] = [
                rand::Rng::random_range(&mut rng, -0.4..0.4),
                rand::Rng::random_range(&mut rng, -0.4..0.4),
            ];
            rows.extend([center[0] + noise[0], center[1] + noise[1]]);
            labels.push(label);
        }
        let (train, test) = rows.split_at(400 * 2);
        let fit = || {
            linear_accuracy(
                Embeddings::new(train, 2).unwrap(),
                &labels[..400],
                Embeddings::new(test, 2).unwrap(),
                &labels[400..],
                &LinearSettings {
                    epochs: 20,
                    ..LinearSettings::default()
                },
            )
            .unwrap()
        };
        let accuracy = fit();
        assert!(accuracy > 95.0, "accuracy {accuracy}");
        // The fit is deterministic for a seed.
        let again = fit();
        assert_eq!(accuracy, again);
    }
}
