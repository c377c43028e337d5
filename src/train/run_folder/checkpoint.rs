//! Checkpoints: the model, the optimiser's momentum, the method's state and the run's position, written atomically
//! into one safetensors file after every epoch, every few minutes inside one, and when a run is
//! stopped, so `--resume` continues exactly where it was.
//!
//! This module owns the file's layout: the owners of the state (`optim`, `method`, `export`)
//! hand over and take back tensors named within themselves, and only here do those names get
//! the prefixes that place them in the file:
//!
//! ```text
//! model/<module path>               the network's weights and batch-norm statistics
//! momentum/<module path>            the network's SGD momentum
//! method/memory, method/nce_z       NPSoftmax and NCE's memory bank (and NCE's Z)
//! method/classifier.<module path>   the Exemplar classifier
//! method/momentum/<module path>     the Exemplar classifier's SGD momentum
//! method/instance_keys              the image each of those rows belongs to (i64 keys)
//! metadata spreadout_state          RunState as JSON
//! ```
//!
//! Random streams are derived from the seed, the epoch and the step (see `rng::Stream`), so the
//! position in the run is all the generator state a resume needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::augment::Normalization;
use crate::method::{self, MethodState, instances};
use crate::model::EmbeddingNet;
use crate::optim::Sgd;
use crate::tensor_files;
use crate::tensor_files::{FileError, NamedTensor, TensorValues};
use crate::train::TrainConfig;

/// File name of the checkpoint inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

const MODEL_PREFIX: &str = "model/";
const MOMENTUM_PREFIX: &str = "momentum/";
const METHOD_PREFIX: &str = "method/";
/// Within the method's tensors: the Exemplar classifier and its momentum.
const CLASSIFIER_PREFIX: &str = "classifier.";
const CLASSIFIER_MOMENTUM_PREFIX: &str = "momentum/";
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
/// `model_tensors` are the network's, read once with [`tensor_files::module_tensors`] for the
/// checkpoint and the exports alike; `instance_keys` name the training images in row order
/// (kept only for a method with per-instance rows).
pub fn save(
    run_dir: &Path,
    state: &RunState,
    model_tensors: &[NamedTensor],
    sgd: &Sgd,
    method: &MethodState,
    instance_keys: &[i64],
) -> Result<(), FileError> {
    let mut tensors = prefixed(MODEL_PREFIX, model_tensors.to_vec());
    tensors.extend(prefixed(MOMENTUM_PREFIX, sgd.momentum_tensors()));
    let mut method_tensors = method_tensors(method);
    if !method_tensors.is_empty() {
        method_tensors.push(NamedTensor {
            name: instances::KEYS.to_owned(),
            shape: vec![instance_keys.len()],
            values: TensorValues::I64(instance_keys.to_vec()),
        });
    }
    tensors.extend(prefixed(METHOD_PREFIX, method_tensors));
    let mut metadata = BTreeMap::new();
    metadata.insert(
        STATE_KEY.to_owned(),
        serde_json::to_string(state).expect("run state serialises"),
    );
    tensor_files::write_tensors(&path(run_dir), &tensors, metadata)
}

/// The method's state as tensors named within `method/` (one device read each).
fn method_tensors(method: &MethodState) -> Vec<NamedTensor> {
    match method {
        MethodState::Stateless => Vec::new(),
        MethodState::Memory(bank) => bank.tensors(),
        MethodState::Classifier { classifier, sgd } => {
            let mut tensors = prefixed(CLASSIFIER_PREFIX, tensor_files::module_tensors(classifier));
            tensors.extend(prefixed(CLASSIFIER_MOMENTUM_PREFIX, sgd.momentum_tensors()));
            tensors
        }
    }
}

/// Reads only the run state of a checkpoint (cheap: only the file's header is read).
pub fn read_state(run_dir: &Path) -> Result<RunState, FileError> {
    let file = path(run_dir);
    let (_, metadata) = tensor_files::read_header(&file)?;
    parse_state(&file, &metadata)
}

fn parse_state(file: &Path, metadata: &BTreeMap<String, String>) -> Result<RunState, FileError> {
    let json = metadata.get(STATE_KEY).ok_or_else(|| FileError::Format {
        path: file.to_owned(),
        message: "not a Spreadout checkpoint (no run state)".to_owned(),
    })?;
    serde_json::from_str(json).map_err(|error| FileError::Format {
        path: file.to_owned(),
        message: format!("unreadable run state: {error}"),
    })
}

/// Loads the checkpoint of `run_dir` onto `device` (an autodiff device for training), for the
/// training images `instance_keys` (see `data::scan::instance_keys`): a method's per-instance
/// rows saved for other images (a folder that changed, accepted by the person) are rearranged to
/// follow them, see [`method::instances`].
pub fn load(
    run_dir: &Path,
    device: &Device,
    instance_keys: &[i64],
) -> Result<Checkpoint, FileError> {
    let file = path(run_dir);
    let (mut tensors, metadata) = tensor_files::read_tensors(&file)?;
    let mut state = parse_state(&file, &metadata)?;
    let config = &state.config;
    let fresh = MethodState::new(
        config.method,
        instance_keys.len(),
        config.dim,
        config.seed,
        (config.momentum, config.weight_decay),
        device,
    );
    let saved = follow_images(
        take_prefixed(&mut tensors, METHOD_PREFIX),
        state.instances,
        instance_keys,
        &fresh,
        &file,
    )?;
    let method = restore_method(fresh, saved, &file)?;
    state.instances = instance_keys.len();
    let config = &state.config;
    let mut sgd = Sgd::new(config.momentum, config.weight_decay);
    sgd.restore_momentum(
        &take_prefixed(&mut tensors, MOMENTUM_PREFIX),
        &file,
        &device.clone().without_autodiff(),
    )?;
    let net = config.model_config().init(device);
    let net =
        tensor_files::load_module_tensors(net, &take_prefixed(&mut tensors, MODEL_PREFIX), &file)?;
    Ok(Checkpoint {
        state,
        net,
        sgd,
        method,
    })
}

/// The method's saved tensors (`saved_rows` rows each) with their rows following the images
/// `now`: unchanged when the saved keys are the same, rearranged by key otherwise. A checkpoint
/// written before keys were kept can only continue on as many images as it has rows.
fn follow_images(
    mut saved: BTreeMap<String, NamedTensor>,
    saved_rows: usize,
    now: &[i64],
    fresh: &MethodState,
    file: &Path,
) -> Result<BTreeMap<String, NamedTensor>, FileError> {
    let format = |message: String| FileError::Format {
        path: file.to_owned(),
        message,
    };
    let keys = match saved.remove(instances::KEYS).map(|keys| keys.values) {
        Some(TensorValues::I64(keys)) => keys,
        Some(TensorValues::F32(_)) => return Err(format("its image keys are not integers".into())),
        None if saved.is_empty() || saved_rows == now.len() => return Ok(saved),
        None => {
            return Err(format(format!(
                "its method keeps a row per training image, {saved_rows} of them, and was saved before Spreadout recorded which image each row belongs to, so its rows cannot follow a folder that now has {} images. Restore the folder as it was to resume, or start a new run",
                now.len()
            )));
        }
    };
    if keys == now {
        return Ok(saved);
    }
    let fresh: BTreeMap<String, NamedTensor> = method_tensors(fresh)
        .into_iter()
        .map(|tensor| (tensor.name.clone(), tensor))
        .collect();
    let rows = instances::rows_by_key(&keys, now);
    instances::rearrange(saved, keys.len(), &rows, &fresh, method::NCE_Z).map_err(|name| {
        format(format!(
            "the method's '{name}' is not one row per training image ({} rows)",
            keys.len()
        ))
    })
}

/// `state` (fresh from [`MethodState::new`] with the run's settings) filled from the method's
/// tensors, named within `method/`; errors name `file`.
fn restore_method(
    state: MethodState,
    mut tensors: BTreeMap<String, NamedTensor>,
    file: &Path,
) -> Result<MethodState, FileError> {
    let missing = |what: &str| FileError::Format {
        path: file.to_owned(),
        message: format!("the checkpoint lacks the method's {what}"),
    };
    Ok(match state {
        MethodState::Stateless => MethodState::Stateless,
        MethodState::Memory(bank) => MethodState::Memory(Box::new(
            bank.restore(&tensors, file)?
                .ok_or_else(|| missing("memory bank"))?,
        )),
        MethodState::Classifier {
            classifier,
            mut sgd,
        } => {
            let weights = take_prefixed(&mut tensors, CLASSIFIER_PREFIX);
            if weights.is_empty() {
                return Err(missing("instance classifier"));
            }
            let classifier = tensor_files::load_module_tensors(classifier, &weights, file)?;
            sgd.restore_momentum(
                &take_prefixed(&mut tensors, CLASSIFIER_MOMENTUM_PREFIX),
                file,
                &classifier.device().without_autodiff(),
            )?;
            MethodState::Classifier { classifier, sgd }
        }
    })
}

/// `tensors` renamed `<prefix><name>`, to place them in the file.
fn prefixed(prefix: &str, tensors: Vec<NamedTensor>) -> Vec<NamedTensor> {
    tensors
        .into_iter()
        .map(|tensor| NamedTensor {
            name: format!("{prefix}{}", tensor.name),
            ..tensor
        })
        .collect()
}

/// Takes the tensors named `<prefix><name>` out of `tensors`, keyed and named `<name>`: the
/// inverse of [`prefixed`].
fn take_prefixed(
    tensors: &mut BTreeMap<String, NamedTensor>,
    prefix: &str,
) -> BTreeMap<String, NamedTensor> {
    let (inside, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(tensors)
        .into_iter()
        .partition(|(name, _)| name.starts_with(prefix));
    *tensors = rest;
    inside
        .into_iter()
        .map(|(name, tensor)| {
            let name = name[prefix.len()..].to_owned();
            (name.clone(), NamedTensor { name, ..tensor })
        })
        .collect()
}
