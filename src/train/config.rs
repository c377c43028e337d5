//! A run's settings: the hyper-parameters with the paper's defaults, and the one check of their
//! ranges that every way of starting a run (CLI, app, comparison, demo) goes through before any
//! image is read. [`TrainSettings`] gathers the defaults, the number settings' limits and each
//! method's values for a shell to offer, so that no shell keeps a copy of them.

use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::augment::AugmentOps;
use crate::device::SelectedDevice;
use crate::method::{Method, MethodInfo, MethodSettings, NegativeSampling, Positive};
use crate::model::{ModelConfig, Precision};
use crate::optim::Schedule;

/// Hyper-parameters of a run. Defaults are the paper's (§4.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct TrainConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per batch (m); each contributes two views, so the network sees 2m rows.
    pub batch_size: usize,
    /// Square training input side in pixels.
    pub image_size: u32,
    /// ResNet-18 base width (64 in the paper).
    pub width: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Softmax temperature τ.
    pub tau: f32,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed of every random choice (initialisation, order, augmentation).
    pub seed: u64,
    /// Augmentations in use.
    pub augment: AugmentOps,
    /// The objective: the paper's, or one of the methods it is compared with.
    #[serde(default)]
    pub method: Method,
    /// Settings of the comparison methods (memory momentum, NCE noise, triplet margin).
    #[serde(default)]
    pub method_settings: MethodSettings,
    /// Which negatives enter the spread-out loss.
    pub negatives: NegativeSampling,
    /// What each image's positive is in the spread-out loss (§4.2's nearest neighbour or the
    /// other view).
    #[serde(default)]
    pub positive: Positive,
    /// Neighbours of the weighted kNN evaluation.
    pub knn_k: usize,
    /// Temperature of the kNN vote weights exp(s/σ).
    pub knn_sigma: f32,
    /// The K of Recall@K (1, 2, 4, 8 as in the paper's CUB and Cars tables; 1, 10, 100 for
    /// Products).
    #[serde(default = "default_recall_k")]
    pub recall_k: Vec<usize>,
    /// Number format of the convolutions (runs recorded before it existed trained in f32).
    #[serde(default)]
    pub precision: Precision,
    /// Where the training views are built; not part of the model (the views are the same either
    /// way), so a resumed run takes the request's.
    #[serde(default)]
    pub augment_on: AugmentOn,
    /// With views built on the device, the MiB of training images (8-bit, at the cache's size)
    /// kept there for the whole run; a folder above it (or above one buffer of the device) is
    /// uploaded batch by batch instead. 0: never kept.
    #[serde(default = "default_device_data_mb")]
    pub device_data_mb: u32,
    /// Minutes between checkpoints within an epoch (one is also written at every epoch's end and
    /// when the run is stopped), so a crash or a power cut costs at most this much training.
    #[serde(default = "default_checkpoint_minutes")]
    pub checkpoint_minutes: f64,
    /// The highest rate this run may train at: set when a resume extends the run to the rate it
    /// last trained at, and kept in `run.json` and the checkpoint from then on, so no later resume
    /// can raise the rate above it again (a new length would otherwise re-plan the schedule from
    /// an earlier, higher point). `None` for a run never extended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub lr_cap: Option<f64>,
}

/// Where a run's training views are built.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum AugmentOn {
    /// On the device when it is a GPU, this machine's or a served one, else on the CPU.
    #[default]
    Auto,
    /// On the device: a GPU adapter's, by `spreadout_shaders::views`, or a served device's (refused
    /// on this machine's CPU backend).
    Device,
    /// On the CPU, by the batch producer's threads.
    Cpu,
}

impl AugmentOn {
    /// Whether a run on `device` builds its views there. A served CPU builds them only when
    /// asked (`Device`): it would build them between the steps' operations, where this machine's
    /// producer builds them while the server computes, so it trades time for traffic.
    ///
    /// # Errors
    /// [`TrainError::Config`] for `Device` on this machine's CPU backend.
    pub fn on_device(self, device: &SelectedDevice) -> Result<bool, TrainError> {
        match self {
            Self::Auto => Ok(device.is_gpu()),
            Self::Cpu => Ok(false),
            // A GPU adapter's kernel, or a server's custom operation, builds them.
            Self::Device if device.is_wgpu || device.remote.is_some() => Ok(true),
            Self::Device => Err(TrainError::Config {
                setting: "augment_on",
                problem: "device needs a GPU adapter or a served device; on the CPU backend the views are built on the CPU (cpu or auto)",
            }),
        }
    }
}

/// 1 GiB: CIFAR-10's 50 000 training images at 32 px take 330 MiB in the cache's 48 px; WebGPU
/// reports no memory size to take a share of.
fn default_device_data_mb() -> u32 {
    1024
}

fn default_checkpoint_minutes() -> f64 {
    10.0
}

/// Recall@1, 2, 4 and 8, the paper's CUB-200 and Cars-196 columns.
pub fn default_recall_k() -> Vec<usize> {
    vec![1, 2, 4, 8]
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 200,
            batch_size: 128,
            image_size: 32,
            width: 64,
            dim: 128,
            tau: 0.1,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: Schedule::Step,
            seed: 0,
            augment: AugmentOps::default(),
            method: Method::SpreadOut,
            method_settings: MethodSettings::default(),
            negatives: NegativeSampling::All,
            positive: Positive::Augmented,
            knn_k: 200,
            knn_sigma: 0.1,
            recall_k: default_recall_k(),
            precision: Precision::F32,
            augment_on: AugmentOn::Auto,
            device_data_mb: default_device_data_mb(),
            checkpoint_minutes: default_checkpoint_minutes(),
            lr_cap: None,
        }
    }
}

/// The values a number setting may take: at least `min` (above it where `inclusive` is false),
/// and whole where the setting counts something.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ts_rs::TS)]
pub struct Limit {
    pub min: f64,
    /// Whether `min` itself is allowed.
    pub inclusive: bool,
    pub whole: bool,
}

impl Limit {
    /// A count of at least `min`.
    const fn count(min: f64) -> Self {
        Self {
            min,
            inclusive: true,
            whole: true,
        }
    }

    /// A number of at least `min`.
    const fn at_least(min: f64) -> Self {
        Self {
            min,
            inclusive: true,
            whole: false,
        }
    }

    /// A number above `min`.
    const fn above(min: f64) -> Self {
        Self {
            min,
            inclusive: false,
            whole: false,
        }
    }
}

/// The limit of each number setting of [`TrainConfig`]: what [`TrainConfig::validate`] holds it
/// to (a test keeps the two in step), for a shell to refuse a value before a run starts.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct SettingLimits {
    pub epochs: Limit,
    pub batch_size: Limit,
    pub image_size: Limit,
    pub width: Limit,
    pub dim: Limit,
    pub tau: Limit,
    pub lr: Limit,
    pub momentum: Limit,
    pub weight_decay: Limit,
    pub seed: Limit,
    pub knn_k: Limit,
    pub knn_sigma: Limit,
    pub device_data_mb: Limit,
    pub checkpoint_minutes: Limit,
}

/// Every number setting's limit.
pub const LIMITS: SettingLimits = SettingLimits {
    epochs: Limit::count(1.0),
    // Each image needs other images as negatives.
    batch_size: Limit::count(2.0),
    image_size: Limit::count(8.0),
    width: Limit::count(1.0),
    dim: Limit::count(1.0),
    tau: Limit::above(0.0),
    lr: Limit::above(0.0),
    momentum: Limit::at_least(0.0),
    weight_decay: Limit::at_least(0.0),
    seed: Limit::count(0.0),
    knn_k: Limit::count(1.0),
    knn_sigma: Limit::above(0.0),
    device_data_mb: Limit::count(0.0),
    checkpoint_minutes: Limit::above(0.0),
};

/// What a shell offers a new run from: the engine's defaults, the limits of the number settings,
/// and each method's published temperature and views per step.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct TrainSettings {
    pub defaults: TrainConfig,
    pub limits: SettingLimits,
    pub methods: Vec<MethodInfo>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            defaults: TrainConfig::default(),
            limits: LIMITS,
            methods: MethodInfo::all(),
        }
    }
}

impl TrainConfig {
    /// The network this configuration trains.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig::resnet18(self.width, self.dim, self.image_size)
    }

    /// The rate of `step` (0-based) of 0-based `epoch`, with `steps_per_epoch` steps in each:
    /// the schedule at that fraction of the run's epochs, never above the run's cap. Progress is
    /// counted in epochs, not in optimiser steps, so a folder that shrank or grew since the run
    /// began (`--accept-changed-folder`) neither ends the schedule early nor makes it climb again.
    pub fn lr_at(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        let progress = (epoch as f64 + step as f64 / steps_per_epoch.max(1) as f64)
            / self.epochs.max(1) as f64;
        self.schedule
            .lr(self.lr, epoch, self.epochs, progress)
            .min(self.lr_cap.unwrap_or(f64::INFINITY))
    }

    /// Checks every setting, so that none fails only after an epoch was trained (the
    /// evaluation's among them); the error names the setting, which each shell words as its own
    /// control (the CLI as its flag).
    pub(super) fn validate(&self) -> Result<(), TrainError> {
        let (setting, problem) = if self.epochs == 0 {
            ("epochs", "must be at least 1")
        } else if self.batch_size < 2 {
            (
                "batch_size",
                "must be at least 2 (each image needs other images as negatives)",
            )
        } else if self.image_size < 8 {
            ("image_size", "must be at least 8 pixels")
        } else if self.width == 0 {
            ("width", "must be positive")
        } else if self.dim == 0 {
            ("dim", "must be positive")
        } else if !(self.tau.is_finite() && self.tau > 0.0) {
            ("tau", "must be a positive number")
        } else if !(self.lr.is_finite() && self.lr > 0.0) {
            ("lr", "must be a positive number")
        } else if !(self.momentum.is_finite() && self.momentum >= 0.0) {
            ("momentum", "must be a number of at least 0")
        } else if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            ("weight_decay", "must be a number of at least 0")
        } else if self.knn_k == 0 {
            (
                "knn_k",
                "must be at least 1: the kNN evaluation votes with that many neighbours",
            )
        } else if !(self.knn_sigma.is_finite() && self.knn_sigma > 0.0) {
            ("knn_sigma", "must be a positive number")
        } else if self.recall_k.is_empty() || self.recall_k.contains(&0) {
            ("recall_k", "needs at least one K, each at least 1")
        } else if !(self.checkpoint_minutes.is_finite() && self.checkpoint_minutes > 0.0) {
            ("checkpoint_minutes", "must be a positive number of minutes")
        } else if self.method != Method::SpreadOut && self.negatives != NegativeSampling::All {
            (
                "negatives",
                "hard and easy negatives (Table 8) are an ablation of the spread-out method only",
            )
        } else if self.positive == Positive::Nearest
            && (self.method != Method::SpreadOut || self.negatives != NegativeSampling::All)
        {
            (
                "positive",
                "the nearest-neighbour positive (§4.2) is an option of the spread-out method with every negative kept",
            )
        } else if !(0.0..1.0).contains(&self.method_settings.memory_momentum) {
            ("memory_momentum", "must be at least 0 and below 1")
        } else if self.method_settings.nce_noise == 0 {
            ("nce_noise", "must be at least 1")
        } else if !(self.method_settings.triplet_margin.is_finite()
            && self.method_settings.triplet_margin >= 0.0)
        {
            ("triplet_margin", "must be a number of at least 0")
        } else {
            return Ok(());
        };
        Err(TrainError::Config { setting, problem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(config: TrainConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn the_rate_never_climbs_again_when_the_folder_shrinks_mid_run() {
        let config = TrainConfig {
            epochs: 4,
            lr: 0.1,
            schedule: Schedule::Cosine,
            ..TrainConfig::default()
        };
        // 10 steps an epoch for the first two epochs, then an accepted smaller folder (3 steps):
        // counted in optimiser steps over a horizon planned for 10, the schedule once passed its
        // end before the last epoch and climbed back towards half the base rate.
        let mut last = f64::INFINITY;
        for (epoch, steps_per_epoch) in [(0, 10), (1, 10), (2, 3), (3, 3)] {
            for step in 0..steps_per_epoch {
                let lr = config.lr_at(epoch, step, steps_per_epoch);
                assert!(lr <= last, "epoch {epoch} step {step}: {lr} after {last}");
                last = lr;
            }
        }
        assert!(last < 0.1 * 0.05, "the run ends near zero: {last}");
        // And a progress past the end (an old checkpoint's step count) is the end, not a climb.
        assert_eq!(Schedule::Cosine.lr(0.1, 3, 4, 1.5), 0.0);
    }

    #[test]
    fn a_capped_run_never_trains_above_its_cap() {
        let capped = TrainConfig {
            epochs: 8,
            lr: 0.1,
            lr_cap: Some(0.001),
            ..TrainConfig::default()
        };
        for epoch in 0..8 {
            assert!(capped.lr_at(epoch, 0, 10) <= 0.001);
        }
        assert!((capped.lr_at(7, 0, 10) - 0.001).abs() < 1e-15);
    }

    #[test]
    fn the_evaluation_settings_are_refused_up_front_naming_their_setting() {
        let base = TrainConfig::default;
        assert!(refusal(TrainConfig { knn_k: 0, ..base() }).contains("knn_k"));
        for sigma in [0.0, -0.1, f32::NAN, f32::INFINITY] {
            let message = refusal(TrainConfig {
                knn_sigma: sigma,
                ..base()
            });
            assert!(message.contains("knn_sigma"), "{sigma}: {message}");
        }
        for recall_k in [vec![], vec![1, 0]] {
            assert!(refusal(TrainConfig { recall_k, ..base() }).contains("recall_k"));
        }
        assert!(base().validate().is_ok());
    }

    /// Sets one number setting of a configuration to a value.
    type Setter = fn(&mut TrainConfig, f64);

    #[test]
    fn validation_holds_each_number_setting_to_its_published_limit() {
        let settings: [(&str, Limit, Setter); 14] = [
            ("epochs", LIMITS.epochs, |c, v| c.epochs = v as usize),
            ("batch_size", LIMITS.batch_size, |c, v| {
                c.batch_size = v as usize
            }),
            ("image_size", LIMITS.image_size, |c, v| {
                c.image_size = v as u32
            }),
            ("width", LIMITS.width, |c, v| c.width = v as usize),
            ("dim", LIMITS.dim, |c, v| c.dim = v as usize),
            ("tau", LIMITS.tau, |c, v| c.tau = v as f32),
            ("lr", LIMITS.lr, |c, v| c.lr = v),
            ("momentum", LIMITS.momentum, |c, v| c.momentum = v),
            ("weight_decay", LIMITS.weight_decay, |c, v| {
                c.weight_decay = v
            }),
            ("seed", LIMITS.seed, |c, v| c.seed = v as u64),
            ("knn_k", LIMITS.knn_k, |c, v| c.knn_k = v as usize),
            ("knn_sigma", LIMITS.knn_sigma, |c, v| c.knn_sigma = v as f32),
            ("device_data_mb", LIMITS.device_data_mb, |c, v| {
                c.device_data_mb = v as u32
            }),
            ("checkpoint_minutes", LIMITS.checkpoint_minutes, |c, v| {
                c.checkpoint_minutes = v
            }),
        ];
        for (name, limit, set) in settings {
            let with = |value: f64| {
                let mut config = TrainConfig::default();
                set(&mut config, value);
                config.validate()
            };
            // The smallest value allowed, and the nearest one below it that the type can hold.
            let (lowest, below) = match (limit.whole, limit.inclusive) {
                (true, _) => (limit.min, (limit.min >= 1.0).then_some(limit.min - 1.0)),
                (false, true) => (limit.min, Some(limit.min - 1e-3)),
                (false, false) => (limit.min + 1e-3, Some(limit.min)),
            };
            assert!(with(lowest).is_ok(), "{name} = {lowest} is allowed");
            if let Some(below) = below {
                let message = with(below).unwrap_err().to_string();
                assert!(message.contains(name), "{name} = {below}: {message}");
            }
        }
    }

    #[test]
    fn the_settings_a_shell_offers_are_the_engines() {
        let settings = TrainSettings::default();
        assert_eq!(settings.defaults, TrainConfig::default());
        let methods: Vec<Method> = settings.methods.iter().map(|info| info.method).collect();
        assert_eq!(methods, Method::ALL);
        for info in settings.methods {
            assert_eq!(
                (info.tau, info.views),
                (info.method.default_tau(), info.method.views())
            );
        }
    }
}
