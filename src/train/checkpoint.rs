//! Checkpoints: the model, the optimiser's momentum, the method's state and the run's position, written atomically
//! into one safetensors file after every epoch, every few minutes inside one, and when a run is
//! stopped, so `--resume` continues exactly where it was.
//!
//! Random streams are derived from the seed, the epoch and the step (see `train::rng_for`), so the
//! position in the run is all the generator state a resume needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::TrainConfig;
use super::optim::Sgd;
use crate::augment::Normalization;
use crate::export::{self, ExportError, NamedTensor};
use crate::method::MethodState;
use crate::model::EmbeddingNet;

/// File name of the checkpoint inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

const MODEL_PREFIX: &str = "model/";
const MOMENTUM_PREFIX: &str = "momentum/";
const STATE_KEY: &str = "spreadout_state";

/// Where a run stands, stored as JSON metadata in the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The configuration the run was started with.
    pub config: TrainConfig,
    /// Normalisation computed from the training images.
    pub normalization: Normalization,
    /// Epochs completed.
    pub epochs_completed: usize,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Steps of the epoch after `epochs_completed` already trained (a checkpoint written inside
    /// an epoch, on a timer or a Stop); 0 at an epoch's end.
    #[serde(default)]
    pub steps_into_epoch: usize,
    /// Loss summed over those steps, so the epoch's mean loss comes out as if uninterrupted.
    #[serde(default)]
    pub epoch_loss_sum: f64,
    /// Learning rate of the last step trained (the cap of an extended run's schedule).
    #[serde(default)]
    pub last_lr: Option<f64>,
    /// Training images, the rows of a method's per-instance state.
    #[serde(default)]
    pub instances: usize,
}

/// A checkpoint read back from disk.
pub struct Checkpoint {
    /// Where the run stood.
    pub state: RunState,
    /// The network with its weights and batch-norm statistics.
    pub net: EmbeddingNet,
    /// The optimiser with its momentum.
    pub sgd: Sgd,
    /// The method's own state (memory bank, instance classifier).
    pub method: MethodState,
}

/// Path of the checkpoint in `run_dir`.
pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINT_FILE)
}

/// Writes the checkpoint atomically: an interrupted write keeps the previous one.
/// `model_tensors` are the network's, read once with [`export::module_tensors`] for the
/// checkpoint and the exports alike.
pub fn save(
    run_dir: &Path,
    state: &RunState,
    model_tensors: &[NamedTensor],
    sgd: &Sgd,
    method: &MethodState,
) -> Result<(), ExportError> {
    let mut tensors: Vec<NamedTensor> = model_tensors
        .iter()
        .map(|t| NamedTensor {
            name: format!("{MODEL_PREFIX}{}", t.name),
            ..t.clone()
        })
        .collect();
    tensors.extend(sgd.momentum_tensors(MOMENTUM_PREFIX));
    tensors.extend(method.tensors());
    let mut metadata = BTreeMap::new();
    metadata.insert(
        STATE_KEY.to_owned(),
        serde_json::to_string(state).expect("run state serialises"),
    );
    export::write_tensors(&path(run_dir), &tensors, metadata)
}

/// Reads only the run state of a checkpoint (cheap: only the file's header is read).
pub fn read_state(run_dir: &Path) -> Result<RunState, ExportError> {
    let file = path(run_dir);
    let (_, metadata) = export::read_header(&file)?;
    parse_state(&file, &metadata)
}

fn parse_state(file: &Path, metadata: &BTreeMap<String, String>) -> Result<RunState, ExportError> {
    let json = metadata.get(STATE_KEY).ok_or_else(|| ExportError::Format {
        path: file.to_owned(),
        message: "not a Spreadout checkpoint (no run state)".to_owned(),
    })?;
    serde_json::from_str(json).map_err(|error| ExportError::Format {
        path: file.to_owned(),
        message: format!("unreadable run state: {error}"),
    })
}

/// Loads the checkpoint of `run_dir` onto `device` (an autodiff device for training).
pub fn load(run_dir: &Path, device: &Device) -> Result<Checkpoint, ExportError> {
    let file = path(run_dir);
    let (mut tensors, metadata) = export::read_tensors(&file)?;
    let state = parse_state(&file, &metadata)?;
    let config = &state.config;
    let method = MethodState::new(
        config.method,
        state.instances,
        config.dim,
        config.seed,
        (config.momentum, config.weight_decay),
        device,
    )
    .restore(&mut tensors, &file)?;
    let mut sgd = Sgd::new(config.momentum, config.weight_decay);
    sgd.restore_momentum(
        &tensors,
        MOMENTUM_PREFIX,
        &file,
        &device.clone().without_autodiff(),
    )?;
    let model_tensors: BTreeMap<String, NamedTensor> = tensors
        .into_iter()
        .filter_map(|(name, tensor)| {
            let key = name.strip_prefix(MODEL_PREFIX)?.to_owned();
            Some((
                key.clone(),
                NamedTensor {
                    name: key,
                    ..tensor
                },
            ))
        })
        .collect();
    let net = config.model_config().init(device);
    let net = export::load_module_tensors(net, &model_tensors, &file)?;
    Ok(Checkpoint {
        state,
        net,
        sgd,
        method,
    })
}
