//! Evaluation during training: which labelled sets score the network after each epoch, and the
//! scoring itself (weighted kNN, Recall@K, NMI, similarity histograms).

use std::path::Path;

use crate::augment::Normalization;
use crate::data::{DataError, ImageSet};
use crate::embed::{self, View};
use crate::eval::{self, Embeddings};
use crate::model::EmbeddingNet;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{
    Control, EpochMetrics, Neighbour, ProbeNeighbours, TrainConfig, TrainError, TrainEvent,
    TrainRequest, derive_seed, load_with_progress,
};

/// Evaluation sets with labels aligned to one list of class names.
pub(super) struct EvalSets {
    memory: Option<LabelledSet>,
    test: Option<LabelledSet>,
}

/// A labelled evaluation set: its own images, or the training images (already decoded, so not
/// loaded or held twice).
struct LabelledSet {
    images: Option<ImageSet>,
    labels: Vec<usize>,
}

impl LabelledSet {
    fn images<'a>(&'a self, train: &'a ImageSet) -> &'a [image::RgbImage] {
        &self.images.as_ref().unwrap_or(train).images
    }
}

pub(super) fn load_eval_sets(
    request: &TrainRequest,
    train: &ImageSet,
    image_size: u32,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<EvalSets, DataError> {
    let mut load_labelled = |dir: &Path| -> Result<Option<ImageSet>, DataError> {
        let set = load_with_progress(dir, image_size, control, emit)?;
        Ok(if set.labels().is_some() {
            Some(set)
        } else {
            None
        })
    };
    let memory = match &request.eval_train_dir {
        Some(dir) => load_labelled(dir)?,
        None => None,
    };
    let test = match &request.eval_test_dir {
        Some(dir) => load_labelled(dir)?,
        None => None,
    };
    for (dir, set) in [
        (&request.eval_train_dir, &memory),
        (&request.eval_test_dir, &test),
    ] {
        if let (Some(dir), None) = (dir, set) {
            emit(TrainEvent::Warning {
                message: format!(
                    "{} has no label folders (images in at least two first-level subfolders), so it cannot be scored",
                    dir.display()
                ),
            });
        }
    }
    // Both sets must use one label numbering: the memory's names, which default to the
    // training folder's own labels (never used for training).
    let names = match (&memory, &test) {
        (Some(memory), _) => memory.label_names.clone(),
        (None, _) if train.labels().is_some() => train.label_names.clone(),
        (None, Some(test)) => test.label_names.clone(),
        (None, None) => Vec::new(),
    };
    let aligned = |set: &ImageSet| -> Option<Vec<usize>> {
        set.labels()?
            .into_iter()
            .map(|label| {
                names
                    .iter()
                    .position(|name| *name == set.label_names[label])
            })
            .collect()
    };
    let memory = match memory {
        Some(set) => aligned(&set).map(|labels| LabelledSet {
            images: Some(set),
            labels,
        }),
        None => aligned(train).map(|labels| LabelledSet {
            images: None,
            labels,
        }),
    };
    let test_given = test.is_some();
    let evals = EvalSets {
        memory,
        test: test.and_then(|set| {
            aligned(&set).map(|labels| LabelledSet {
                images: Some(set),
                labels,
            })
        }),
    };
    if test_given && evals.test.is_none() {
        emit(TrainEvent::Warning {
            message: "the test folder's label folders do not all appear in the training labels; kNN is not scored".to_owned(),
        });
    }
    Ok(evals)
}

/// Scores the network on the evaluation sets (or, without labels, on two views of training
/// images) and fills `metrics`.
pub(super) fn evaluate(
    config: &TrainConfig,
    normalization: &Normalization,
    net: &EmbeddingNet,
    train: &ImageSet,
    evals: &EvalSets,
    epoch: usize,
    metrics: &mut EpochMetrics,
) -> Result<(), TrainError> {
    const BINS: usize = 50;
    const EVAL_BATCH: usize = 256;
    let embed_set = |set: &LabelledSet| {
        embed::embed_images(
            net,
            set.images(train),
            config.image_size,
            normalization,
            View::Center,
            EVAL_BATCH,
        )
    };
    let memory = evals
        .memory
        .as_ref()
        .map(|set| (embed_set(set), &set.labels));
    let test = evals.test.as_ref().map(|set| (embed_set(set), &set.labels));
    if let (Some((memory, memory_labels)), Some((test, test_labels))) = (&memory, &test) {
        let memory = Embeddings::new(memory, config.dim)?;
        let k = config.knn_k.min(memory.len());
        metrics.knn_accuracy = Some(eval::knn_accuracy(
            memory,
            memory_labels,
            Embeddings::new(test, config.dim)?,
            test_labels,
            k,
            config.knn_sigma,
        )?);
    }
    if let Some((features, labels)) = test.as_ref().or(memory.as_ref()) {
        let features = Embeddings::new(features, config.dim)?;
        metrics.recall_at = Some(eval::recall_at_k(features, labels, &[1, 2, 4, 8])?);
        metrics.nmi = Some(eval::clustering_nmi(features, labels, config.seed)?);
        metrics.similarity = Some(eval::labelled_similarity_distributions(
            features, labels, 5, BINS,
        )?);
    } else {
        // No labels: how close two views of one image are vs different images.
        let sample = &train.images[..train.images.len().min(512)];
        let seed = derive_seed(config.seed, epoch, u64::MAX - 1);
        let view = |offset: u64| {
            embed::embed_images(
                net,
                sample,
                config.image_size,
                normalization,
                View::Augmented {
                    ops: config.augment,
                    seed: seed.wrapping_add(offset),
                },
                EVAL_BATCH,
            )
        };
        let (a, b) = (view(0), view(1 << 32));
        metrics.similarity = Some(eval::view_similarity_distributions(
            Embeddings::new(&a, config.dim)?,
            Embeddings::new(&b, config.dim)?,
            BINS,
            seed,
        )?);
    }
    // When the kNN memory is the training set itself, its centre-view embeddings are the ones the
    // probes need: reuse them rather than embedding the gallery again.
    let train_features = match (&evals.memory, &memory) {
        (Some(set), Some((features, _))) if set.images.is_none() => Some(features.as_slice()),
        _ => None,
    };
    metrics.probes = probe_neighbours(config, normalization, net, train, train_features)?;
    Ok(())
}

/// Probe images shown with their neighbours after every epoch.
const PROBES: usize = 6;
/// Neighbours listed per probe.
const PROBE_NEIGHBOURS: usize = 5;
/// Training images searched for the probes' neighbours: a fixed sample keeps the cost per epoch
/// bounded on large folders.
const PROBE_GALLERY: usize = 1000;

/// The probes (the first images of a fixed, seeded sample of the training set) and their nearest
/// neighbours in that sample under the current network.
fn probe_neighbours(
    config: &TrainConfig,
    normalization: &Normalization,
    net: &EmbeddingNet,
    train: &ImageSet,
    train_features: Option<&[f32]>,
) -> Result<Vec<ProbeNeighbours>, TrainError> {
    let mut sample: Vec<usize> = (0..train.len()).collect();
    sample.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(
        config.seed,
        usize::MAX,
        0,
    )));
    sample.truncate(PROBE_GALLERY);
    let dim = config.dim;
    let features = match train_features {
        Some(all) => sample
            .iter()
            .flat_map(|&i| &all[i * dim..(i + 1) * dim])
            .copied()
            .collect(),
        None => {
            let images: Vec<&image::RgbImage> = sample.iter().map(|&i| &train.images[i]).collect();
            embed::embed_images(
                net,
                &images,
                config.image_size,
                normalization,
                View::Center,
                256,
            )
        }
    };
    let gallery = Embeddings::new(&features, config.dim)?;
    let probes = PROBES.min(sample.len());
    let queries = Embeddings::new(&features[..probes * config.dim], config.dim)?;
    let found = eval::top_k(queries, gallery, PROBE_NEIGHBOURS + 1, false)?;
    let entry = |row: usize| &train.entries[sample[row]];
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(probe, hits)| ProbeNeighbours {
            query: entry(probe).path.clone(),
            neighbours: hits
                .into_iter()
                .filter(|&(row, _)| row != probe)
                .take(PROBE_NEIGHBOURS)
                .map(|(row, score)| Neighbour {
                    path: entry(row).path.clone(),
                    score,
                    same_label: entry(probe)
                        .label
                        .zip(entry(row).label)
                        .map(|(a, b)| a == b),
                })
                .collect(),
        })
        .collect())
}
