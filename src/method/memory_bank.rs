//! The memory-bank baselines of Wu et al., *Unsupervised Feature Learning via Non-Parametric
//! Instance Discrimination* (CVPR 2018), as the seed paper compares with them (Table 1, Fig. 3).
//!
//! A memory holds one d-dimensional row per training image. Each step classifies the batch's
//! features against it, then writes them in with momentum:
//! `v_i ← normalise(μ·v_i + (1 − μ)·f_i)`, μ = 0.5. The memory carries no gradient.
//!
//! - NPSoftmax: `P(i | f) = exp(v_i·f/τ) / Σ_j exp(v_j·f/τ)` over all N rows; loss −log P(i | f_i).
//! - NCE: K noise rows drawn uniformly (P_n = 1/N) per image; `P(i | f) = exp(v_i·f/τ) / Z` with Z
//!   estimated once, on the first batch, as N · mean(exp(v·f/τ)) over its drawn rows; with
//!   `h(i, f) = P(i|f) / (P(i|f) + K·P_n)` the loss per image is
//!   `−log h(i, f_i) − Σ_k log(1 − h(k, f_i))`, summed over the noise rows and averaged over images.
//!
//! Both are transcribed from the authors' released code (`lemniscate.pytorch`): its memory
//! initialisation (uniform in ±1/√(d/3)), τ = 0.07, momentum 0.5, K = 4096, ε = 1e-7.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::index_value;
use crate::model::l2_normalize;
use crate::tensor_files::{FileError, NamedTensor, TensorValues};

/// Name of NCE's normalising constant among the bank's tensors.
pub const NCE_Z: &str = "nce_z";

/// Added to NCE's denominators, as in the released code.
const NCE_EPSILON: f32 = 1e-7;

/// One row per training image, and NCE's normalising constant once estimated.
#[derive(Debug)]
pub struct MemoryBank {
    /// `[N, d]`, on the training device, never requiring a gradient.
    pub memory: Tensor<2>,
    /// NCE's Z, fixed after the first batch; `None` before it (and for NPSoftmax).
    pub z: Option<f64>,
}

impl MemoryBank {
    /// The released code's initial memory: uniform in ±1/√(d/3), drawn from `seed` (the run's
    /// `rng::Stream::MemoryBank`).
    pub fn new_seeded(instances: usize, dim: usize, seed: u64, device: &Device) -> Self {
        let bound = 1.0 / (dim as f32 / 3.0).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..instances * dim)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Self {
            memory: Tensor::from_data(TensorData::new(values, [instances, dim]), device),
            z: None,
        }
    }

    /// Rows of the memory (training images).
    pub fn instances(&self) -> usize {
        self.memory.dims()[0]
    }

    /// Writes the batch's features (detached) into the rows of `targets` with momentum.
    pub fn update(&mut self, features: Tensor<2>, targets: Tensor<1, Int>, momentum: f32) {
        let old = self.memory.clone().select(0, targets.clone());
        let new =
            l2_normalize(old.clone().mul_scalar(momentum) + features.mul_scalar(1.0 - momentum));
        // Each image appears once in a batch, so adding the difference replaces the row.
        self.memory = self
            .memory
            .clone()
            .select_assign(0, targets, new - old, IndexingUpdateOp::Add)
            .detach();
    }

    /// Z from the first batch: N · mean over its drawn rows of exp(v·f/τ) (one host read, once a
    /// run).
    pub fn estimate_z(&self, features: Tensor<2>, candidates: Tensor<2, Int>, tau: f32) -> f64 {
        let exponentials = candidate_scores(features, &self.memory, candidates)
            .div_scalar(tau)
            .exp();
        super::scalar(exponentials.mean()) * self.instances() as f64
    }

    /// The bank as a checkpoint keeps it: `memory` and, once estimated, `nce_z`.
    pub fn tensors(&self) -> Vec<NamedTensor> {
        let shape = self.memory.dims().to_vec();
        let values: Vec<f32> = self
            .memory
            .clone()
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("memory is f32");
        let mut tensors = vec![NamedTensor {
            name: "memory".to_owned(),
            shape,
            values: TensorValues::F32(values),
        }];
        if let Some(z) = self.z {
            tensors.push(NamedTensor {
                name: NCE_Z.to_owned(),
                shape: vec![1],
                values: TensorValues::F32(vec![z as f32]),
            });
        }
        tensors
    }

    /// This bank filled from the tensors [`MemoryBank::tensors`] names; `None` when they hold no
    /// memory. A memory of another shape (the folder or the dimension changed) is refused.
    pub fn restore(
        self,
        tensors: &BTreeMap<String, NamedTensor>,
        file: &Path,
    ) -> Result<Option<Self>, FileError> {
        let Some(saved) = tensors.get("memory") else {
            return Ok(None);
        };
        let expected = self.memory.dims().to_vec();
        let (TensorValues::F32(values), true) = (&saved.values, saved.shape == expected) else {
            return Err(FileError::Format {
                path: file.to_owned(),
                message: format!(
                    "the memory bank is {:?}, this run needs {expected:?} (one row per training image)",
                    saved.shape
                ),
            });
        };
        let z = match tensors.get(NCE_Z).map(|t| &t.values) {
            Some(TensorValues::F32(z)) => z.first().map(|&z| f64::from(z)),
            _ => None,
        };
        Ok(Some(Self {
            memory: Tensor::from_data(
                TensorData::new(values.clone(), [expected[0], expected[1]]),
                &self.memory.device(),
            ),
            z,
        }))
    }
}

/// NPSoftmax: −mean_i log softmax(f_i · Mᵀ / τ)[target_i] over all N memory rows.
pub fn npsoftmax_loss(
    features: Tensor<2>,
    memory: &Tensor<2>,
    targets: Tensor<1, Int>,
    tau: f32,
) -> Tensor<1> {
    let [rows, _] = features.dims();
    let logits = features.matmul(memory.clone().transpose()).div_scalar(tau);
    log_softmax(logits, 1)
        .gather(1, targets.reshape([rows, 1]))
        .mean()
        .neg()
}

/// For each image, the noise rows NCE compares it with: column 0 its own index, then `noise`
/// indices drawn uniformly from all `instances` (with replacement, as the released code's alias
/// sampler over a uniform distribution), from `seed` (the step's `rng::Stream::NceNoise`). Host
/// data, `[targets, 1 + noise]` i32 (the device's index type): the batch producer draws it off the
/// training thread, and at 4 096 noise rows it is the largest upload of an NCE step after the
/// pixels.
pub fn nce_candidates(targets: &[usize], noise: usize, instances: usize, seed: u64) -> TensorData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(targets.len() * (noise + 1));
    for &target in targets {
        values.push(index_value(target));
        values.extend((0..noise).map(|_| index_value(rng.random_range(0..instances))));
    }
    TensorData::new(values, [targets.len(), noise + 1])
}

/// NCE's loss for `features` against the memory rows `candidates` (column 0 the positive), with
/// the fixed constant `z` and P_n = 1/`instances`.
pub fn nce_loss(
    features: Tensor<2>,
    memory: &Tensor<2>,
    candidates: Tensor<2, Int>,
    tau: f32,
    z: f64,
    instances: usize,
) -> Tensor<1> {
    let [rows, columns] = candidates.dims();
    let noise = (columns - 1) as f32 / instances as f32; // K · P_n
    let p = candidate_scores(features, memory, candidates)
        .div_scalar(tau)
        .exp()
        .div_scalar(z as f32);
    let data = p.clone().slice([0..rows, 0..1]);
    let drawn = p.slice([0..rows, 1..columns]);
    let log_data = (data.clone() / (data.add_scalar(noise + NCE_EPSILON))).log();
    let log_noise = drawn
        .add_scalar(noise + NCE_EPSILON)
        .recip()
        .mul_scalar(noise)
        .log();
    (log_data.sum() + log_noise.sum())
        .div_scalar(rows as f32)
        .neg()
}

/// `[m, K + 1]` inner products of each feature with its candidate memory rows.
fn candidate_scores(
    features: Tensor<2>,
    memory: &Tensor<2>,
    candidates: Tensor<2, Int>,
) -> Tensor<2> {
    let [rows, columns] = candidates.dims();
    let [_, dim] = features.dims();
    let weights = memory
        .clone()
        .select(0, candidates.reshape([rows * columns]))
        .reshape([rows, columns, dim]);
    weights
        .matmul(features.reshape([rows, dim, 1]))
        .reshape([rows, columns])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_rows(rows: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows)
            .map(|_| {
                let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    fn tensor(rows: &[Vec<f32>], device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(rows.concat(), [rows.len(), rows[0].len()]),
            device,
        )
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    #[test]
    fn npsoftmax_matches_its_equation() {
        let device = Device::flex();
        let (features, memory) = (unit_rows(3, 4, 1), unit_rows(7, 4, 2));
        let targets = [4usize, 0, 6];
        let tau = 0.07;
        let loss = npsoftmax_loss(
            tensor(&features, &device),
            &tensor(&memory, &device),
            super::super::index_tensor(&targets, &device),
            tau,
        );
        let expected: f64 = features
            .iter()
            .zip(targets)
            .map(|(f, t)| {
                let s: Vec<f64> = memory.iter().map(|v| dot(f, v) / f64::from(tau)).collect();
                let log_sum = s.iter().map(|x| x.exp()).sum::<f64>().ln();
                -(s[t] - log_sum)
            })
            .sum::<f64>()
            / 3.0;
        let value = super::super::scalar(loss);
        assert!(
            (value - expected).abs() < 1e-4 * expected,
            "{value} vs {expected}"
        );
    }

    #[test]
    fn nce_matches_its_equation() {
        let device = Device::flex();
        let (features, memory) = (unit_rows(2, 4, 3), unit_rows(9, 4, 4));
        let (tau, z, n) = (0.07f32, 2500.0f64, 9usize);
        let candidates = [[5usize, 1, 1, 8], [2, 0, 7, 3]];
        let flat: Vec<i64> = candidates.iter().flatten().map(|&i| i as i64).collect();
        let loss = nce_loss(
            tensor(&features, &device),
            &tensor(&memory, &device),
            Tensor::from_data(TensorData::new(flat, [2, 4]), &device),
            tau,
            z,
            n,
        );
        let k_pn = 3.0 / n as f64;
        let eps = f64::from(NCE_EPSILON);
        let expected: f64 = features
            .iter()
            .zip(candidates)
            .map(|(f, rows)| {
                let p = |row: usize| (dot(f, &memory[row]) / f64::from(tau)).exp() / z;
                let data = p(rows[0]);
                let mut term = (data / (data + k_pn + eps)).ln();
                for &row in &rows[1..] {
                    term += (k_pn / (p(row) + k_pn + eps)).ln();
                }
                -term
            })
            .sum::<f64>()
            / 2.0;
        let value = super::super::scalar(loss);
        assert!(
            (value - expected).abs() < 1e-4 * expected.abs(),
            "{value} vs {expected}"
        );
    }

    #[test]
    fn the_memory_takes_new_features_with_momentum_and_stays_unit_length() {
        let device = Device::flex();
        let mut bank = MemoryBank::new_seeded(5, 3, 0, &device);
        let before: Vec<f32> = bank.memory.clone().into_data().try_to_vec().unwrap();
        let feature = vec![vec![0.0f32, 1.0, 0.0]];
        bank.update(
            tensor(&feature, &device),
            super::super::index_tensor(&[2], &device),
            0.5,
        );
        let after: Vec<f32> = bank.memory.clone().into_data().try_to_vec().unwrap();
        let old = &before[6..9];
        let mixed: Vec<f32> = old
            .iter()
            .zip(&feature[0])
            .map(|(o, f)| 0.5 * o + 0.5 * f)
            .collect();
        let norm = mixed.iter().map(|x| x * x).sum::<f32>().sqrt();
        for (a, m) in after[6..9].iter().zip(&mixed) {
            assert!((a - m / norm).abs() < 1e-6);
        }
        assert_eq!(&after[..6], &before[..6], "other rows are untouched");
        assert_eq!(&after[9..], &before[9..]);
    }
}
