//! The one typed event stream a training run emits; the CLI renders it as a progress bar and the
//! desktop app forwards it to the UI unchanged.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::AugmentOn;
use crate::data::SkippedFile;
use crate::eval::Neighbor;
use crate::eval::SimilarityDistributions;
use crate::support::error_kind::ErrorKind;

/// What the run is doing right now, for status lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Decoding and resizing images.
    LoadingData,
    /// The first steps, while the GPU backend compiles and autotunes its kernels; slow but not hung.
    WarmingUp,
    /// Optimising.
    Training,
    /// Embedding the evaluation sets and scoring them.
    Evaluating,
}

/// Metrics of one finished epoch; one line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub loss: f64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Training throughput over the epoch (both views counted), images per second.
    pub images_per_sec: f64,
    /// Share of the epoch's training time the device waited for the batch producer: near 0 when
    /// augmentation keeps up, near 1 when the host is the bottleneck.
    #[serde(default)]
    pub data_wait_fraction: f64,
    /// Milliseconds the training thread spent recording each step (building its work for the
    /// device): the host's share of a step besides the batch producer's.
    #[serde(default)]
    pub host_ms_per_step: f64,
    /// Weighted kNN top-1 accuracy in percent, when labelled evaluation folders were given.
    pub knn_accuracy: Option<f64>,
    /// Test classes the kNN memory lacks, whose images kNN left out (empty when it has them all).
    #[serde(default)]
    pub knn_classes_left_out: Vec<String>,
    /// Recall@1/2/4/8 in percent on the labelled evaluation set.
    pub recall_at: Option<Vec<(usize, f64)>>,
    /// Which images Recall@K, NMI and the histograms were computed on.
    #[serde(default)]
    pub scored_on: Option<ScoredOn>,
    /// NMI of k-means on the labelled evaluation set.
    pub nmi: Option<f64>,
    /// Positive vs negative cosine-similarity histograms (paper Fig. 5).
    pub similarity: Option<SimilarityDistributions>,
    /// Fixed probe images of the training set and their nearest training images this epoch.
    #[serde(default)]
    pub probes: Vec<ProbeNeighbors>,
    /// Seconds the epoch took, training and evaluation included.
    pub seconds: f64,
}

/// The images an epoch's retrieval metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ScoredOn {
    /// The labelled test folder (its own classes; queries and gallery both from it, as in the
    /// paper's unseen-category protocol when its classes differ from the training folder's).
    TestFolder,
    /// The kNN memory folder (the training folder itself unless another was given).
    MemoryFolder,
    /// Two augmented views of training images (no labels anywhere).
    TrainingViews,
}

/// One probe image and its nearest neighbours in a fixed sample of the training images, so a
/// person can watch retrieval improve epoch by epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ProbeNeighbors {
    /// The probe image.
    #[serde(with = "crate::support::paths")]
    #[ts(type = "string")]
    pub query: PathBuf,
    /// Nearest other images, best first.
    #[serde(alias = "neighbours")]
    // as run folders written before identifiers took one spelling say
    pub neighbors: Vec<Neighbor>,
}

/// Everything a consumer of a training run is told, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrainEvent {
    /// The run's phase changed.
    Phase {
        /// The new phase.
        phase: Phase,
    },
    /// Progress while decoding images.
    Loading {
        /// Files done.
        done: usize,
        /// Files in all.
        total: usize,
    },
    /// Data is loaded and the device chosen; training is about to start.
    Started {
        /// The device's name, e.g. "NVIDIA H100 (Vulkan, discrete GPU)".
        device: String,
        /// Usable training images.
        images: usize,
        /// Files that were skipped, with reasons.
        skipped: Vec<SkippedFile>,
        /// Optimiser steps per epoch.
        steps_per_epoch: usize,
        /// Epochs in the whole run.
        epochs: usize,
        /// First epoch this run will train (1 unless resumed).
        first_epoch: usize,
        /// Where the training views are built: `device` or `cpu` (`auto` resolved).
        views_on: AugmentOn,
    },
    /// Something the user should know that does not stop the run.
    Warning {
        /// What happened and what to do.
        message: String,
    },
    /// One optimiser step finished.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// Steps in this epoch.
        steps_per_epoch: usize,
        /// The step's loss.
        loss: f64,
        /// Learning rate used.
        lr: f64,
        /// Training throughput so far this epoch (both views counted), images per second.
        images_per_sec: f64,
    },
    /// On a served device, the network's share of the last few steps.
    Traffic {
        /// Bytes sent to the server per step.
        sent_per_step: f64,
        /// Bytes received from it per step.
        received_per_step: f64,
    },
    /// An epoch finished, was evaluated and checkpointed.
    Epoch(EpochMetrics),
    /// The run ended; `cancelled` when stopped by the user (the last checkpoint is kept).
    Finished {
        /// Whether the user stopped it.
        canceled: bool,
        /// Epochs completed in total, resumed ones included.
        epochs_completed: usize,
    },
    /// The run failed; the last good checkpoint is kept.
    Failed {
        /// The kind of failure, for the shell's remedy.
        code: ErrorKind,
        /// What went wrong.
        message: String,
    },
}
