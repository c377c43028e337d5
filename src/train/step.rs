//! The device step: one optimiser step recorded on the training device from a prepared batch of
//! pixels, with nothing read back to the host.
//!
//! Everything constant is built once: the loss masks of the batch shape stay on the device. The
//! loss comes back as a device tensor; the epoch loop reads it later, once the next step is
//! already queued (on a GPU sixteen steps' losses at once), so the device never drains waiting for
//! the host.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::TrainConfig;
use super::batches::StepInput;
use crate::augment::Normalization;
use crate::embed::DeviceNormalization;
use crate::method::{
    self, LossMasks, MemoryBank, Method, MethodSettings, MethodState, NegativeSampling, Positive,
    nce_loss, npsoftmax_loss, spread_out_loss, triplet_loss,
};
use crate::model::{EmbeddingNet, Precision};
use crate::optim::Sgd;
use crate::support::rng::Stream;

/// What every step of a run shares.
pub(crate) struct DeviceStep {
    device: Device,
    /// The input normalisation's constants, uploaded once.
    normalization: DeviceNormalization,
    /// The CubeCL device views are built on (`None`: the producer builds them).
    views_on: Option<cubecl::Device>,
    /// The two-view masks of the in-batch methods; `None` for one-view methods.
    masks: Option<LossMasks>,
    method: Method,
    settings: MethodSettings,
    tau: f32,
    negatives: NegativeSampling,
    positive: Positive,
    precision: Precision,
    seed: u64,
}

/// Where in the run a step is (NCE's noise draw derives from it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepPosition {
    pub(crate) epoch: usize,
    pub(crate) step: usize,
}

impl DeviceStep {
    /// Steps of `config` over batches of `batch` images on `device` (an autodiff device).
    pub(crate) fn new(
        config: &TrainConfig,
        normalization: Normalization,
        batch: usize,
        device: &Device,
    ) -> Self {
        Self {
            device: device.clone(),
            normalization: DeviceNormalization::new(&normalization, device),
            views_on: None,
            masks: (config.method.views() == 2).then(|| LossMasks::new(2 * batch, device)),
            method: config.method,
            settings: config.method_settings,
            tau: config.tau,
            negatives: config.negatives,
            positive: config.positive,
            precision: config.precision,
            seed: config.seed,
        }
    }

    /// Steps whose views are built on `views_on` (the CubeCL device of the training device).
    pub(crate) fn with_views_on(mut self, views_on: cubecl::Device) -> Self {
        self.views_on = Some(views_on);
        self
    }

    /// Whether these steps build their views on the device.
    pub(crate) fn builds_views(&self) -> bool {
        self.views_on.is_some()
    }

    /// Records forward, the method's loss, backward and the SGD update for `input` (the views
    /// of the training images `indices`: rows `0..m` the first views and, for two-view methods,
    /// `m..2m` the second). Updates the method's state (memory rows, classifier). Returns the
    /// updated network and the loss, still on the device.
    #[expect(
        clippy::too_many_arguments,
        reason = "the step's inputs, each owned by a different part of the epoch loop"
    )]
    pub(crate) fn record(
        &self,
        net: EmbeddingNet,
        sgd: &mut Sgd,
        state: &mut MethodState,
        lr: f64,
        input: StepInput,
        indices: &[usize],
        at: StepPosition,
    ) -> (EmbeddingNet, Tensor<1>) {
        let features = net.forward_at(
            input
                .views
                .to_device(&self.normalization, self.views_on.as_ref()),
            self.precision,
        );
        let loss = self.loss(features, state, input.nce_candidates, indices, at);
        // The value without its graph: kept to be read after the next step is queued.
        let value = loss.clone().inner();
        let mut gradients = loss.backward();
        if matches!(state, MethodState::Classifier { .. }) {
            let MethodState::Classifier {
                classifier,
                sgd: mut classifier_sgd,
            } = std::mem::replace(state, MethodState::Stateless)
            else {
                unreachable!("matched above")
            };
            let grads = GradientsParams::from_module(&mut gradients, &classifier);
            *state = MethodState::Classifier {
                classifier: classifier_sgd.step(lr, classifier, grads),
                sgd: classifier_sgd,
            };
        }
        let grads = GradientsParams::from_grads(gradients, &net);
        (sgd.step(lr, net, grads), value)
    }

    /// The method's loss over `features`, the embeddings of the training images `indices` (and,
    /// for NCE, its `nce_candidates`), updating the memory's rows where the method keeps one.
    fn loss(
        &self,
        features: Tensor<2>,
        state: &mut MethodState,
        nce_candidates: Option<TensorData>,
        indices: &[usize],
        at: StepPosition,
    ) -> Tensor<1> {
        let masks = || self.masks.as_ref().expect("two-view methods have masks");
        match (self.method, state) {
            (Method::SpreadOut, _) => match self.positive {
                Positive::Augmented => spread_out_loss(features, self.tau, self.negatives, masks()),
                Positive::Nearest => {
                    let rows = features.dims()[0];
                    let seed = Stream::NearestPositive {
                        epoch: at.epoch,
                        step: at.step,
                    }
                    .seed(self.seed);
                    let takes = method::nearest_positive_rows(rows, seed, &self.device);
                    method::spread_out_loss_nearest(features, self.tau, masks(), takes)
                }
            },
            (Method::Triplet | Method::TripletHard, _) => triplet_loss(
                features,
                self.settings.triplet_margin,
                self.method == Method::TripletHard,
                masks(),
            ),
            (Method::NpSoftmax | Method::Nce, MethodState::Memory(bank)) => {
                self.memory_loss(features, bank, nce_candidates, indices)
            }
            (Method::Exemplar, MethodState::Classifier { classifier, .. }) => {
                classifier.loss(features, method::index_tensor(indices, &self.device))
            }
            (method, _) => unreachable!("{method:?} was given another method's state"),
        }
    }

    /// NPSoftmax's or NCE's loss of `features` against the memory `bank`, whose rows of `indices`
    /// then move towards `features`. NCE's normalising constant is estimated at its first step.
    fn memory_loss(
        &self,
        features: Tensor<2>,
        bank: &mut MemoryBank,
        nce_candidates: Option<TensorData>,
        indices: &[usize],
    ) -> Tensor<1> {
        let targets = method::index_tensor(indices, &self.device);
        let loss = if self.method == Method::NpSoftmax {
            npsoftmax_loss(features.clone(), &bank.memory, targets.clone(), self.tau)
        } else {
            let instances = bank.instances();
            let candidates = Tensor::from_data(
                crate::support::uploads::counted(
                    nce_candidates.expect("the producer draws NCE's candidates"),
                ),
                &self.device,
            );
            let z = match bank.z {
                Some(z) => z,
                None => {
                    let z =
                        bank.estimate_z(features.clone().detach(), candidates.clone(), self.tau);
                    bank.z = Some(z);
                    z
                }
            };
            nce_loss(
                features.clone(),
                &bank.memory,
                candidates,
                self.tau,
                z,
                instances,
            )
        };
        bank.update(features.detach(), targets, self.settings.memory_momentum);
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::Input;
    use crate::tensor_files;
    use crate::tensor_files::TensorValues;
    use burn::tensor::FloatDType;
    use image::RgbImage;
    use rand::{Rng, SeedableRng};

    /// One step at `precision` from the same weights and batch; the loss and the updated weights.
    fn one_step(precision: Precision) -> (f64, Vec<f32>) {
        let config = TrainConfig {
            width: 2,
            dim: 8,
            image_size: 8,
            batch_size: 4,
            precision,
            ..TrainConfig::default()
        };
        let device = Device::flex().autodiff();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let images: Vec<RgbImage> = (0..8)
            .map(|_| RgbImage::from_fn(8, 8, |_, _| image::Rgb(rng.random())))
            .collect();
        let pixels =
            crate::embed::PixelBatch::prepare(images.as_slice(), 8, crate::embed::View::CENTER)
                .unwrap();
        let step = DeviceStep::new(&config, Normalization::from_images(&images), 4, &device);
        let net = config.model_config().init_seeded(&device, 2);
        let mut sgd = Sgd::new(0.9, 5e-4);
        let (net, loss) = step.record(
            net,
            &mut sgd,
            &mut MethodState::Stateless,
            0.1,
            StepInput {
                views: Input::Built(pixels),
                nce_candidates: None,
            },
            &[0, 1, 2, 3],
            StepPosition { epoch: 0, step: 0 },
        );
        let weights = tensor_files::module_tensors(&net)
            .into_iter()
            .find(|t| t.name == "conv1.weight")
            .map(|t| match t.values {
                TensorValues::F32(values) => values,
                TensorValues::I64(_) => unreachable!(),
            })
            .unwrap();
        (crate::method::scalar(loss), weights)
    }

    #[test]
    fn f16_convolutions_train_f32_master_weights_close_to_f32() {
        if !Device::flex().supports_dtype(FloatDType::F16) {
            return crate::skip::because("flex has no f16 here");
        }
        let (loss32, weights32) = one_step(Precision::F32);
        let (loss16, weights16) = one_step(Precision::F16);
        assert!(loss16.is_finite());
        assert!(
            (loss16 - loss32).abs() < 1e-2 * loss32.abs(),
            "loss f16 {loss16} vs f32 {loss32}"
        );
        // The gradient reached the f32 weights through the casts, and points the same way.
        let (_, initial) = {
            let config = TrainConfig {
                width: 2,
                dim: 8,
                image_size: 8,
                ..TrainConfig::default()
            };
            let net = config.model_config().init_seeded(&Device::flex(), 2);
            let t = tensor_files::module_tensors(&net)
                .into_iter()
                .find(|t| t.name == "conv1.weight")
                .unwrap();
            (
                (),
                match t.values {
                    TensorValues::F32(v) => v,
                    TensorValues::I64(_) => unreachable!(),
                },
            )
        };
        let delta = |w: &[f32]| {
            w.iter()
                .zip(&initial)
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>()
        };
        let (d32, d16) = (delta(&weights32), delta(&weights16));
        let dot: f32 = d32.iter().zip(&d16).map(|(a, b)| a * b).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(norm(&d16) > 0.0, "f16 step left the weights unchanged");
        assert!(dot / (norm(&d32) * norm(&d16)) > 0.95, "updates disagree");
    }
}
