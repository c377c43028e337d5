//! Evaluation during training: which labelled sets score the network after each epoch, and the
//! scoring itself (weighted kNN, Recall@K, NMI, similarity histograms).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::augment::Normalization;
use crate::data::{DataError, ImageSet, Subset};
use crate::embed::{self, View};
use crate::eval::{self, Embeddings, EvalError};
use crate::model::EmbeddingNet;

use rand::seq::SliceRandom;

use super::{
    Control, EpochMetrics, Neighbour, ProbeNeighbours, ScoredOn, TrainConfig, TrainError,
    TrainEvent, TrainRequest, load_with_progress,
};
use crate::rng::Stream;

/// Evaluation sets with labels aligned to one list of class names.
pub(super) struct EvalSets {
    memory: Option<LabelledSet>,
    test: Option<LabelledSet>,
    /// Whether the test folder's classes are among the memory's, so kNN can classify them; when
    /// not (the paper's unseen-category setting, §4.2) the test folder is scored on its own.
    test_classes_seen: bool,
}

/// A labelled evaluation set: its own images, or the training images (already decoded, so not
/// loaded or held twice).
struct LabelledSet {
    images: Option<ImageSet>,
    labels: Vec<usize>,
}

impl LabelledSet {
    fn images<'a>(&'a self, train: &'a ImageSet) -> &'a ImageSet {
        self.images.as_ref().unwrap_or(train)
    }
}

pub(super) fn load_eval_sets(
    request: &TrainRequest,
    train: &ImageSet,
    image_size: u32,
    control: &Control,
    emit: &mut dyn FnMut(TrainEvent),
) -> Result<EvalSets, DataError> {
    let cache = request.pixel_cache();
    let mut load_labelled = |dir: &Path| -> Result<Option<ImageSet>, DataError> {
        let set = load_with_progress(dir, image_size, &cache, control, emit)?;
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
    let (test, test_classes_seen) = match test {
        Some(set) => match aligned(&set) {
            Some(labels) => (
                Some(LabelledSet {
                    images: Some(set),
                    labels,
                }),
                true,
            ),
            None => {
                emit(TrainEvent::Warning {
                    message: "the test folder's classes are not all among the training labels (unseen categories): Recall@K and NMI are computed within the test folder, and kNN is not scored".to_owned(),
                });
                let labels = set.labels().expect("only labelled folders are kept");
                (
                    Some(LabelledSet {
                        images: Some(set),
                        labels,
                    }),
                    false,
                )
            }
        },
        None => (None, false),
    };
    Ok(EvalSets {
        memory,
        test,
        test_classes_seen,
    })
}

/// Scores the network on the evaluation sets (or, without labels, on two views of training
/// images) and fills `metrics`. Asks `keep_going` before every batch it embeds and between
/// scores; returns `false` when it said no (what was scored by then stays in `metrics`).
pub(super) fn evaluate(
    config: &TrainConfig,
    normalization: &Normalization,
    net: &EmbeddingNet,
    train: &ImageSet,
    evals: &EvalSets,
    epoch: usize,
    metrics: &mut EpochMetrics,
    scoring_device: Option<&Device>,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<bool, TrainError> {
    const BINS: usize = 50;
    let embed_set = |set: &LabelledSet| {
        embed::embed_images_until(
            net,
            set.images(train),
            config.image_size,
            normalization,
            View::Center,
            EVAL_BATCH,
            keep_going,
        )
    };
    let memory = match &evals.memory {
        Some(set) => match embed_set(set)? {
            Some(features) => Some((features, &set.labels)),
            None => return Ok(false),
        },
        None => None,
    };
    let test = match &evals.test {
        Some(set) => match embed_set(set)? {
            Some(features) => Some((features, &set.labels)),
            None => return Ok(false),
        },
        None => None,
    };
    if let (Some((memory, memory_labels)), Some((test, test_labels)), true) =
        (&memory, &test, evals.test_classes_seen)
    {
        let memory = Embeddings::new(memory, config.dim)?;
        let test = Embeddings::new(test, config.dim)?;
        let k = config.knn_k.min(memory.len());
        metrics.knn_accuracy = Some(match scoring_device {
            // The similarity search (test × memory × dim multiply-adds) on the GPU.
            Some(device) => {
                let neighbours = top_k_on(device, test, memory, k, keep_going);
                let Some(neighbours) = neighbours else {
                    return Ok(false);
                };
                let predictions = eval::knn_vote(&neighbours, memory_labels, config.knn_sigma);
                eval::accuracy(&predictions, test_labels)
            }
            None => eval::knn_accuracy(
                memory,
                memory_labels,
                test,
                test_labels,
                k,
                config.knn_sigma,
            )?,
        });
    }
    if !keep_going() {
        return Ok(false);
    }
    if let Some((features, labels)) = test.as_ref().or(memory.as_ref()) {
        metrics.scored_on = Some(if test.is_some() {
            ScoredOn::TestFolder
        } else {
            ScoredOn::MemoryFolder
        });
        let features = Embeddings::new(features, config.dim)?;
        metrics.recall_at = Some(eval::recall_at_k(features, labels, &config.recall_k)?);
        if !keep_going() {
            return Ok(false);
        }
        metrics.nmi = match eval::clustering_nmi(features, labels, config.seed, keep_going) {
            Err(EvalError::Stopped) => return Ok(false),
            other => Some(other?),
        };
        metrics.similarity = Some(eval::labelled_similarity_distributions(
            features, labels, 5, BINS,
        )?);
    } else {
        // No labels: how close two views of one image are vs different images.
        let first: Vec<usize> = (0..train.len().min(512)).collect();
        let sample = Subset {
            source: train,
            indices: &first,
        };
        let seed = Stream::EvaluationViews { epoch }.seed(config.seed);
        let view = |offset: u64| {
            embed::embed_images_until(
                net,
                &sample,
                config.image_size,
                normalization,
                View::Augmented {
                    ops: config.augment,
                    seed: seed.wrapping_add(offset),
                },
                EVAL_BATCH,
                keep_going,
            )
        };
        let (Some(a), Some(b)) = (view(0)?, view(1 << 32)?) else {
            return Ok(false);
        };
        metrics.scored_on = Some(ScoredOn::TrainingViews);
        metrics.similarity = Some(eval::view_similarity_distributions(
            Embeddings::new(&a, config.dim)?,
            Embeddings::new(&b, config.dim)?,
            BINS,
            seed,
        )?);
    }
    if !keep_going() {
        return Ok(false);
    }
    // When the kNN memory is the training set itself, its centre-view embeddings are the ones the
    // probes need: reuse them rather than embedding the gallery again.
    let train_features = match (&evals.memory, &memory) {
        (Some(set), Some((features, _))) if set.images.is_none() => Some(features.as_slice()),
        _ => None,
    };
    match probe_neighbours(
        config,
        normalization,
        net,
        train,
        train_features,
        keep_going,
    )? {
        Some(probes) => metrics.probes = probes,
        None => return Ok(false),
    }
    Ok(true)
}

/// Images embedded per batch during evaluation.
const EVAL_BATCH: usize = 256;
/// Queries scored per similarity matrix on the device: 1024 × 50 000 floats is 200 MB.
const QUERY_CHUNK: usize = 1024;

/// The `k` most similar `base` rows of each query, best first, found on `device` (a matrix
/// product and a top-k per chunk of queries; only the `k` winners come back). `None` when
/// `keep_going` said no. Ties may be ordered differently from [`eval::top_k`].
fn top_k_on(
    device: &Device,
    queries: Embeddings,
    base: Embeddings,
    k: usize,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Option<Vec<Vec<(usize, f32)>>> {
    let dim = base.dim();
    let upload = |rows: std::ops::Range<usize>, from: Embeddings| {
        let values: Vec<f32> = rows.clone().flat_map(|i| from.row(i)).copied().collect();
        Tensor::<2>::from_data(TensorData::new(values, [rows.len(), dim]), device)
    };
    let base_t = upload(0..base.len(), base).transpose();
    let mut found = Vec::with_capacity(queries.len());
    for start in (0..queries.len()).step_by(QUERY_CHUNK) {
        if !keep_going() {
            return None;
        }
        let rows = start..(start + QUERY_CHUNK).min(queries.len());
        let (scores, indices) = upload(rows.clone(), queries)
            .matmul(base_t.clone())
            .topk_with_indices(k, 1);
        let scores: Vec<f32> = scores
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("scores are floats");
        let indices: Vec<i64> = indices
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .expect("indices are integers");
        for (row_scores, row_indices) in scores.chunks(k).zip(indices.chunks(k)) {
            found.push(
                row_indices
                    .iter()
                    .map(|&i| i as usize)
                    .zip(row_scores.iter().copied())
                    .collect(),
            );
        }
    }
    Some(found)
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
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Vec<ProbeNeighbours>>, TrainError> {
    let mut sample: Vec<usize> = (0..train.len()).collect();
    sample.shuffle(&mut Stream::Probes.rng(config.seed));
    sample.truncate(PROBE_GALLERY);
    let dim = config.dim;
    let features = match train_features {
        Some(all) => sample
            .iter()
            .flat_map(|&i| &all[i * dim..(i + 1) * dim])
            .copied()
            .collect(),
        None => {
            let images = Subset {
                source: train,
                indices: &sample,
            };
            match embed::embed_images_until(
                net,
                &images,
                config.image_size,
                normalization,
                View::Center,
                EVAL_BATCH,
                keep_going,
            )? {
                Some(features) => features,
                None => return Ok(None),
            }
        }
    };
    let gallery = Embeddings::new(&features, config.dim)?;
    let probes = PROBES.min(sample.len());
    let queries = Embeddings::new(&features[..probes * config.dim], config.dim)?;
    let found = eval::top_k(queries, gallery, PROBE_NEIGHBOURS + 1, false)?;
    let entry = |row: usize| &train.entries[sample[row]];
    Ok(Some(
        found
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
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn device_top_k_finds_the_host_neighbours() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let dim = 6;
        let mut unit_rows = |n: usize| -> Vec<f32> {
            (0..n)
                .flat_map(|_| {
                    let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.into_iter().map(move |x| x / norm)
                })
                .collect()
        };
        let (base, queries) = (unit_rows(2500), unit_rows(1100));
        let base = Embeddings::new(&base, dim).unwrap();
        let queries = Embeddings::new(&queries, dim).unwrap();
        let host = eval::top_k(queries, base, 7, false).unwrap();
        let device = top_k_on(&Device::flex(), queries, base, 7, &|| true).unwrap();
        assert_eq!(device.len(), host.len());
        for (d, h) in device.iter().zip(&host) {
            let d_rows: Vec<usize> = d.iter().map(|&(row, _)| row).collect();
            let h_rows: Vec<usize> = h.iter().map(|&(row, _)| row).collect();
            assert_eq!(d_rows, h_rows);
            for (a, b) in d.iter().zip(h) {
                assert!((a.1 - b.1).abs() < 1e-5);
            }
        }
        assert!(top_k_on(&Device::flex(), queries, base, 7, &|| false).is_none());
    }
}
