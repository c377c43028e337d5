//! Exemplar CNN (Dosovitskiy et al., NeurIPS 2014) as the seed paper compares with it: every
//! training image is its own class, and a linear classifier with one output per image is trained
//! with the network by cross-entropy on augmented views. Here the classifier reads the
//! L2-normalised embedding that every method trains, so the kNN evaluation scores the same
//! output for all of them.

use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `logits = f · Wᵀ + b`, one row of W per training image.
#[derive(Module, Debug)]
pub struct InstanceClassifier {
    /// `[N, d]`.
    weight: Param<Tensor<2>>,
    /// `[N]`.
    bias: Param<Tensor<1>>,
}

impl InstanceClassifier {
    /// PyTorch's `nn.Linear` initialisation (uniform in ±1/√d for weight and bias), drawn from
    /// `seed` (the run's `rng::Stream::InstanceClassifier`).
    pub fn new_seeded(instances: usize, dim: usize, seed: u64, device: &Device) -> Self {
        let bound = 1.0 / (dim as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |count: usize| -> Vec<f32> {
            (0..count)
                .map(|_| rng.random_range(-bound..bound))
                .collect()
        };
        let weight = draw(instances * dim);
        let bias = draw(instances);
        Self {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(weight, [instances, dim]),
                device,
            )),
            bias: Param::from_tensor(Tensor::from_data(
                TensorData::new(bias, [instances]),
                device,
            )),
        }
    }

    /// The device the classifier lives on.
    pub fn device(&self) -> Device {
        self.weight.val().device()
    }

    /// Cross-entropy of `features` (`[m, d]`) classified as the images `targets`.
    pub fn loss(&self, features: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        let [rows, _] = features.dims();
        let logits =
            features.matmul(self.weight.val().transpose()) + self.bias.val().unsqueeze::<2>();
        log_softmax(logits, 1)
            .gather(1, targets.reshape([rows, 1]))
            .mean()
            .neg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_is_cross_entropy_over_instances() {
        let device = Device::flex();
        let classifier = InstanceClassifier::new_seeded(5, 3, 7, &device);
        let weight: Vec<f32> = classifier.weight.val().into_data().try_to_vec().unwrap();
        let bias: Vec<f32> = classifier.bias.val().into_data().try_to_vec().unwrap();
        let features = [[0.6f32, 0.0, 0.8], [0.0, 1.0, 0.0]];
        let targets = [3usize, 1];
        let loss = classifier.loss(
            Tensor::from_data(TensorData::new(features.concat(), [2, 3]), &device),
            super::super::index_tensor(&targets, &device),
        );
        let expected: f64 = features
            .iter()
            .zip(targets)
            .map(|(f, t)| {
                let logits: Vec<f64> = (0..5)
                    .map(|j| {
                        f64::from(bias[j])
                            + (0..3)
                                .map(|k| f64::from(f[k]) * f64::from(weight[j * 3 + k]))
                                .sum::<f64>()
                    })
                    .collect();
                let log_sum = logits.iter().map(|x| x.exp()).sum::<f64>().ln();
                log_sum - logits[t]
            })
            .sum::<f64>()
            / 2.0;
        let value = super::super::scalar(loss);
        assert!((value - expected).abs() < 1e-5, "{value} vs {expected}");
    }
}
