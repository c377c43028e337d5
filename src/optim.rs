//! SGD with momentum and weight decay exactly as PyTorch's `torch.optim.SGD` (no dampening, no
//! Nesterov), and the learning-rate schedules.
//!
//! Burn ships an SGD, but its state is keyed by parameter ids that do not survive a reload; this
//! one keys each momentum buffer by the parameter's module path, so a checkpoint restores it
//! exactly. It sits below `method` and `train`, which both step with it (the network and the
//! Exemplar classifier); where its buffers go in a checkpoint is the checkpoint's business.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use serde::{Deserialize, Serialize};

use crate::tensor_files::{FileError, NamedTensor, TensorValues};

/// How the learning rate changes over a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The paper's steps (×0.1 at epoch 120 of 200, ×0.01 at 160) scaled to the run: ×0.1 from
    /// 60 % of the epochs, ×0.01 from 80 %.
    #[default]
    Step,
    /// Cosine decay from the base rate to zero over all steps.
    Cosine,
}

impl Schedule {
    /// The rate for 0-based `epoch` of `epochs`, at `progress` ∈ [0, 1) of the whole run. A
    /// progress outside that range is clamped: past the end the cosine would climb again.
    pub fn lr(self, base: f64, epoch: usize, epochs: usize, progress: f64) -> f64 {
        let progress = progress.clamp(0.0, 1.0);
        match self {
            Schedule::Step => {
                let fraction = epoch as f64 / epochs as f64;
                if fraction >= 0.8 {
                    base * 0.01
                } else if fraction >= 0.6 {
                    base * 0.1
                } else {
                    base
                }
            }
            Schedule::Cosine => base * 0.5 * (1.0 + (PI * progress).cos()),
        }
    }
}

/// SGD state: one momentum buffer per parameter, flattened, keyed by module path.
#[derive(Debug, Clone)]
pub struct Sgd {
    /// Momentum factor (0.9 in the paper).
    pub momentum: f64,
    /// L2 weight decay added to every gradient (5e-4 in the paper).
    pub weight_decay: f64,
    /// Momentum buffers.
    pub velocity: BTreeMap<String, Tensor<1>>,
}

impl Sgd {
    /// A fresh optimiser with no momentum yet.
    pub fn new(momentum: f64, weight_decay: f64) -> Self {
        Self {
            momentum,
            weight_decay,
            velocity: BTreeMap::new(),
        }
    }

    /// One update of every parameter that has a gradient in `grads`:
    /// `g += wd·p; v = μ·v + g (v = g at first); p -= lr·v`.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        let mut mapper = SgdMapper {
            sgd: self,
            grads: &mut grads,
            lr,
            path: Vec::new(),
        };
        module.map(&mut mapper)
    }

    /// The momentum buffers as tensors named by their parameter's module path, read from the
    /// device at once (one transaction: one submission, no copy into one buffer).
    pub fn momentum_tensors(&self) -> Vec<NamedTensor> {
        if self.velocity.is_empty() {
            return Vec::new();
        }
        let read = self
            .velocity
            .values()
            .fold(Transaction::default(), |read, velocity| {
                read.register(velocity.clone())
            })
            .execute();
        self.velocity
            .keys()
            .zip(read)
            .map(|(key, data)| {
                let values: Vec<f32> = data.convert::<f32>().try_to_vec().expect("momentum is f32");
                NamedTensor {
                    name: key.clone(),
                    shape: vec![values.len()],
                    values: TensorValues::F32(values),
                }
            })
            .collect()
    }

    /// Takes the buffers in `tensors`, keyed by module path as [`Sgd::momentum_tensors`] names
    /// them, onto `device`; `file` is named in errors.
    pub fn restore_momentum(
        &mut self,
        tensors: &BTreeMap<String, NamedTensor>,
        file: &Path,
        device: &Device,
    ) -> Result<(), FileError> {
        for (key, tensor) in tensors {
            let TensorValues::F32(values) = &tensor.values else {
                return Err(FileError::Format {
                    path: file.to_owned(),
                    message: format!("momentum '{key}' is not f32"),
                });
            };
            let velocity =
                Tensor::from_data(TensorData::new(values.clone(), [values.len()]), device);
            self.velocity.insert(key.to_owned(), velocity);
        }
        Ok(())
    }
}

struct SgdMapper<'a> {
    sgd: &'a mut Sgd,
    grads: &'a mut GradientsParams,
    lr: f64,
    path: Vec<String>,
}

impl ModuleMapper for SgdMapper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return param;
        };
        let key = self.path.join(".");
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let value = tensor.inner();
        let dims = value.dims();
        let count = dims.iter().product::<usize>();
        // One element-wise expression over the flattened parameter, which Burn's fusion runs as
        // one kernel: the flattening comes first, where it costs nothing (a reshape to fewer
        // dimensions ends a fused kernel in Burn 0.22, and the buffers are stored flat).
        let flat = value.reshape([count]);
        let grad = grad.inner().to_device(&flat.device()).reshape([count]);
        let mut velocity = grad + flat.clone().mul_scalar(self.sgd.weight_decay);
        if let Some(previous) = self.sgd.velocity.remove(&key) {
            velocity = previous.mul_scalar(self.sgd.momentum) + velocity;
        }
        let updated = (flat - velocity.clone().mul_scalar(self.lr)).reshape(dims);
        self.sgd.velocity.insert(key, velocity);
        let mut updated = Tensor::from_inner(updated);
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    #[test]
    fn step_schedule_follows_the_paper_scaled() {
        let lr = |epoch| Schedule::Step.lr(0.03, epoch, 200, 0.0);
        assert_eq!(lr(0), 0.03);
        assert_eq!(lr(119), 0.03);
        assert!((lr(120) - 0.003).abs() < 1e-12);
        assert!((lr(160) - 0.0003).abs() < 1e-12);
        assert!((Schedule::Cosine.lr(0.03, 0, 10, 0.5) - 0.015).abs() < 1e-12);
    }

    #[test]
    fn matches_pytorch_sgd_on_a_quadratic() {
        // loss = sum(W) with W 1×1: grad 1 every step. PyTorch SGD(lr .1, momentum .9, wd .5)
        // from w = 2: w1 = 2 - .1(1 + 1) = 1.8; v1 = 2;
        // g2 = 1 + .9 = 1.9, v2 = .9·2 + 1.9 = 3.7, w2 = 1.8 - .37 = 1.43.
        let device = Device::flex().autodiff();
        let mut layer: Linear = LinearConfig::new(1, 1).with_bias(false).init(&device);
        layer.weight = layer.weight.map(|_| {
            Tensor::from_data(TensorData::new(vec![2.0f32], [1, 1]), &device).require_grad()
        });
        let mut sgd = Sgd::new(0.9, 0.5);
        for expected in [1.8f32, 1.43] {
            let loss = layer.weight.val().sum();
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = sgd.step(0.1, layer, grads);
            let w: Vec<f32> = layer.weight.val().into_data().try_to_vec().unwrap();
            assert!((w[0] - expected).abs() < 1e-6, "{} vs {expected}", w[0]);
        }
        assert_eq!(sgd.velocity.keys().collect::<Vec<_>>(), vec!["weight"]);
    }
}
