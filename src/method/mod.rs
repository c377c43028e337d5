//! Training methods: the paper's spread-out objective and the baselines its Table 1 and Fig. 3
//! compare it with, all trained by the same loop on the same network and data.
//!
//! Each method owns its loss and whatever state it keeps beside the network between steps (a
//! memory of every instance, a classifier with one output per instance). That state is part of
//! the checkpoint (whose layout `train::run_folder::checkpoint` owns), so a stopped run of any method resumes
//! exactly. Its random draws come from the run's streams in `rng`.
//!
//! | method | file | batch | state |
//! |---|---|---|---|
//! | spread-out (Ye et al. 2019, Eq. 7) | `spread_out.rs` | two views of m images | none |
//! | NPSoftmax, NCE (Wu et al. 2018) | `memory_bank.rs` | one view of m images | memory N × d |
//! | Exemplar CNN (Dosovitskiy et al. 2014) | `exemplar.rs` | one view of m images | classifier N × d |
//! | Triplet, Triplet (hard) | `triplet.rs` | two views of m images | none |

mod exemplar;
pub mod instances;
mod memory_bank;
mod spread_out;
mod triplet;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use exemplar::InstanceClassifier;
pub use memory_bank::{MemoryBank, NCE_Z, nce_candidates, nce_loss, npsoftmax_loss};
pub use spread_out::{
    LossMasks, NegativeSampling, nearest_positive_rows, spread_out_loss, spread_out_loss_nearest,
};
pub use triplet::triplet_loss;

use crate::optim::Sgd;
use crate::support::rng::Stream;

/// The objective a run trains with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum, ts_rs::TS,
)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Ye et al. 2019 (Eq. 7): the two augmented views of an image are pulled together and every
    /// other row of the batch pushed away, τ = 0.1.
    #[default]
    #[serde(rename = "spreadout")]
    #[value(name = "spreadout")]
    SpreadOut,
    /// Wu et al. 2018, non-parametric softmax over a memory of every training image: each image's
    /// feature is classified against all N memory rows, τ = 0.07, memory momentum 0.5.
    #[serde(rename = "npsoftmax")]
    #[value(name = "npsoftmax")]
    NpSoftmax,
    /// Wu et al. 2018, the same memory with noise-contrastive estimation: 4096 noise rows drawn
    /// uniformly per image, normalising constant Z estimated on the first batch, τ = 0.07.
    Nce,
    /// Dosovitskiy et al. 2014, Exemplar CNN: a linear classifier with one output per training
    /// image on the embedding, cross-entropy, trained with the network by the same SGD.
    Exemplar,
    /// Triplet loss over the two-view batch: each row's other view is its positive, every other
    /// row a negative, all triplets averaged; Euclidean distance of unit vectors, margin 0.5.
    Triplet,
    /// Triplet loss with in-batch hard mining: each row's most similar negative only, margin 0.5.
    TripletHard,
}

impl Method {
    /// Every method, in the order of the paper's comparisons.
    pub const ALL: [Method; 6] = [
        Method::SpreadOut,
        Method::NpSoftmax,
        Method::Nce,
        Method::Exemplar,
        Method::Triplet,
        Method::TripletHard,
    ];

    /// Augmented views of each image in a batch: the instance methods of Wu et al. and
    /// Dosovitskiy et al. see one view per step, as published; the in-batch methods need two.
    pub fn views(self) -> usize {
        match self {
            Method::SpreadOut | Method::Triplet | Method::TripletHard => 2,
            Method::NpSoftmax | Method::Nce | Method::Exemplar => 1,
        }
    }

    /// The temperature each method was published with (Exemplar and the triplets have none; the
    /// value is then unused).
    pub fn default_tau(self) -> f32 {
        match self {
            Method::NpSoftmax | Method::Nce => 0.07,
            _ => 0.1,
        }
    }

    /// The name used on the command line, in run files and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::SpreadOut => "spreadout",
            Method::NpSoftmax => "npsoftmax",
            Method::Nce => "nce",
            Method::Exemplar => "exemplar",
            Method::Triplet => "triplet",
            Method::TripletHard => "triplet-hard",
        }
    }
}

/// What a shell needs to know of a method to offer it: the temperature it was published with
/// (which choosing it brings) and its views of each image per step (which a throughput in views
/// per second turns into steps).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ts_rs::TS)]
pub struct MethodInfo {
    pub method: Method,
    /// [`Method::default_tau`].
    pub tau: f32,
    /// [`Method::views`].
    pub views: usize,
}

impl MethodInfo {
    /// Every method's, in the order of [`Method::ALL`].
    pub fn all() -> Vec<MethodInfo> {
        Method::ALL
            .iter()
            .map(|&method| MethodInfo {
                method,
                tau: method.default_tau(),
                views: method.views(),
            })
            .collect()
    }
}

/// What each image's positive is in the spread-out loss.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum, ts_rs::TS,
)]
#[serde(rename_all = "kebab-case")]
pub enum Positive {
    /// Its other augmented view (§3, the method as published for training from scratch).
    #[default]
    Augmented,
    /// Randomly, with probability ½ per row and step, its other view or its most similar other
    /// image in the batch (§4.2, meant for a pretrained start).
    Nearest,
}

/// The settings of the comparison methods, from their papers where the seed paper does not fix
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct MethodSettings {
    /// Weight of a memory row's old value when its image's new feature is written (Wu et al.: 0.5).
    pub memory_momentum: f32,
    /// Noise rows per image for NCE (Wu et al.: 4096; capped at N − 1 for small folders).
    pub nce_noise: usize,
    /// Margin of the triplet losses on the Euclidean distance of unit vectors (Ye et al.: 0.5).
    pub triplet_margin: f32,
}

impl Default for MethodSettings {
    fn default() -> Self {
        Self {
            memory_momentum: 0.5,
            nce_noise: 4096,
            triplet_margin: 0.5,
        }
    }
}

/// What a method keeps between steps besides the network.
#[derive(Debug)]
pub enum MethodState {
    /// Spread-out and the triplets: nothing.
    Stateless,
    /// NPSoftmax and NCE: the memory of every instance (boxed: its tensors are large values, and
    /// the other variants should not carry their size).
    Memory(Box<MemoryBank>),
    /// Exemplar CNN: the instance classifier and its own momentum buffers.
    Classifier {
        /// One output per training image.
        classifier: InstanceClassifier,
        /// Its SGD state (same settings as the network's).
        sgd: Sgd,
    },
}

impl MethodState {
    /// The fresh state of `method` for `instances` training images of `dim`-d embeddings, drawn
    /// from the streams of the run seeded with `seed`, on `device` (the training device).
    pub fn new(
        method: Method,
        instances: usize,
        dim: usize,
        seed: u64,
        sgd: (f64, f64),
        device: &Device,
    ) -> Self {
        match method {
            Method::SpreadOut | Method::Triplet | Method::TripletHard => MethodState::Stateless,
            Method::NpSoftmax | Method::Nce => MethodState::Memory(Box::new(
                MemoryBank::new_seeded(instances, dim, Stream::MemoryBank.seed(seed), device),
            )),
            Method::Exemplar => MethodState::Classifier {
                classifier: InstanceClassifier::new_seeded(
                    instances,
                    dim,
                    Stream::InstanceClassifier.seed(seed),
                    device,
                ),
                sgd: Sgd::new(sgd.0, sgd.1),
            },
        }
    }
}

/// An instance index as the device's index type: i32, the integer wgpu's shaders have (an i64
/// upload is converted on arrival, at twice the bytes). Training sets stay far below 2³¹ images.
pub(crate) fn index_value(index: usize) -> i32 {
    i32::try_from(index).expect("fewer than 2³¹ training images")
}

/// The instance indices of a batch as a device tensor.
pub(crate) fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i32> = indices.iter().copied().map(index_value).collect();
    Tensor::from_data(
        crate::support::uploads::counted(TensorData::new(values, [indices.len()])),
        device,
    )
}

/// A one-element f32 tensor's value as f64, waiting for the device: a step's loss, NCE's Z.
pub(crate) fn scalar(tensor: Tensor<1>) -> f64 {
    tensor
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("a float tensor")[0]
}
