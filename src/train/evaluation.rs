//! Evaluation during training: which labelled sets score the network after each epoch, and the
//! scoring itself (weighted kNN, Recall@K, NMI, similarity histograms).

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};

use crate::augment::{KeptImages, Normalization};
use crate::data::{DataError, ImageSet, Subset};
use crate::embed::{self, KeptEmbeddings, View};
use crate::eval::{self, AlignedLabels, Embeddings, EvalError, Neighbor};
use crate::model::EmbeddingNet;

use rand::seq::SliceRandom;

use super::{
    Control, EpochMetrics, ProbeNeighbors, ScoredOn, TrainConfig, TrainError, TrainEvent,
    TrainRequest, load_with_progress,
};
use crate::support::rng::Stream;

/// The labelled evaluation sets, each in its own label numbering, and the test images kNN classifies.
pub(super) struct EvalSets {
    memory: Option<LabeledSet>,
    test: Option<LabeledSet>,
    /// The test images kNN classifies against the memory ([`eval::align_labels`]: those whose
    /// class the memory has); `None` unless there are both.
    knn_queries: Option<AlignedLabels>,
}

/// A labelled evaluation set: its own images, or the training images (already decoded, so not
/// loaded or held twice).
struct LabeledSet {
    images: Option<ImageSet>,
    labels: Vec<usize>,
}

impl LabeledSet {
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
    let mut load_labeled = |dir: &Path| -> Result<Option<ImageSet>, DataError> {
        let set = load_with_progress(dir, image_size, &cache, control, emit)?;
        Ok(if set.labels().is_some() {
            Some(set)
        } else {
            None
        })
    };
    let memory = match &request.eval_train_dir {
        Some(dir) => load_labeled(dir)?,
        None => None,
    };
    let test = match &request.eval_test_dir {
        Some(dir) => load_labeled(dir)?,
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
    // The memory is the memory folder, or else the training folder when it has labels (they are
    // never used for training). Each set keeps its own label numbering; kNN's queries are
    // relabelled into the memory's.
    let memory = match memory {
        Some(set) => set.labels().map(|labels| LabeledSet {
            images: Some(set),
            labels,
        }),
        None => train.labels().map(|labels| LabeledSet {
            images: None,
            labels,
        }),
    };
    let test = test.map(|set| LabeledSet {
        labels: set.labels().expect("only labelled folders are kept"),
        images: Some(set),
    });
    let knn_queries = match (&memory, &test) {
        (Some(memory), Some(test)) => {
            let test_names = &test.images(train).label_names;
            let aligned =
                eval::align_labels(&memory.images(train).label_names, test_names, &test.labels);
            if let Some(message) = left_out_warning(&aligned.left_out, test_names.len()) {
                emit(TrainEvent::Warning { message });
            }
            Some(aligned)
        }
        _ => None,
    };
    Ok(EvalSets {
        memory,
        test,
        knn_queries,
    })
}

/// Test class names listed in a warning before the rest are counted.
const NAMED_CLASSES: usize = 5;

/// What the person is told when kNN must leave out test classes the memory lacks (`None` when it
/// has them all).
fn left_out_warning(left_out: &[String], test_classes: usize) -> Option<String> {
    if left_out.is_empty() {
        return None;
    }
    if left_out.len() == test_classes {
        return Some("none of the test folder's classes is among the kNN memory's (unseen categories): Recall@K and NMI are computed within the test folder, and kNN is not scored".to_owned());
    }
    let mut named = left_out[..left_out.len().min(NAMED_CLASSES)].join(", ");
    if left_out.len() > NAMED_CLASSES {
        named += &format!(" and {} more", left_out.len() - NAMED_CLASSES);
    }
    Some(format!(
        "{} of the test folder's {test_classes} classes are not among the kNN memory's ({named}): kNN is scored on the images of the other classes, Recall@K and NMI within the whole test folder",
        left_out.len()
    ))
}

/// Scores the network on the evaluation sets (or, without labels, on two views of training
/// images) and fills `metrics`. Asks `keep_going` before every batch it embeds and between
/// scores; returns `false` when it said no (what was scored by then stays in `metrics`).
#[expect(
    clippy::too_many_arguments,
    reason = "the epoch's network and the run's fixed sets, each borrowed from a different owner"
)]
pub(super) fn evaluate(
    config: &TrainConfig,
    normalization: &Normalization,
    net: &EmbeddingNet,
    train: &ImageSet,
    evals: &EvalSets,
    epoch: usize,
    metrics: &mut EpochMetrics,
    search_on_device: bool,
    kept: Option<&KeptImages>,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<bool, TrainError> {
    let scorer = Scorer {
        config,
        normalization,
        net,
        train,
        kept,
        keep_going,
    };
    let memory = match &evals.memory {
        Some(set) => match scorer.embed(set, search_on_device)? {
            Some(embedded) => Some(embedded),
            None => return Ok(false),
        },
        None => None,
    };
    let test = match &evals.test {
        Some(set) => match scorer.embed(set, search_on_device)? {
            Some(embedded) => Some(embedded),
            None => return Ok(false),
        },
        None => None,
    };
    if let (Some(memory), Some(test), Some(aligned)) = (&memory, &test, &evals.knn_queries) {
        metrics.knn_classes_left_out = aligned.left_out.clone();
        if !aligned.rows.is_empty() {
            match scorer.knn_accuracy(memory, &test.embedded, aligned)? {
                Some(accuracy) => metrics.knn_accuracy = Some(accuracy),
                None => return Ok(false),
            }
        }
    }
    if !keep_going() {
        return Ok(false);
    }
    let scored = match test.as_ref().or(memory.as_ref()) {
        Some(set) => {
            metrics.scored_on = Some(if test.is_some() {
                ScoredOn::TestFolder
            } else {
                ScoredOn::MemoryFolder
            });
            scorer.labeled_scores(set, metrics)?
        }
        None => scorer.view_scores(epoch, metrics)?,
    };
    if !scored || !keep_going() {
        return Ok(false);
    }
    // When the kNN memory is the training set itself, its centre-view embeddings are the ones the
    // probes need: reuse them rather than embedding the gallery again.
    let train_features = match (&evals.memory, &memory) {
        (Some(set), Some(embedded)) if set.images.is_none() => {
            Some(embedded.embedded.rows.as_slice())
        }
        _ => None,
    };
    match probe_neighbors(
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

/// Bins of the similarity histograms.
const BINS: usize = 50;

/// What an evaluation's scores borrow: the epoch's network and the run's fixed settings and sets.
struct Scorer<'a> {
    config: &'a TrainConfig,
    normalization: &'a Normalization,
    net: &'a EmbeddingNet,
    train: &'a ImageSet,
    /// The training images kept on the device, if the run keeps them.
    kept: Option<&'a KeptImages>,
    keep_going: &'a (dyn Fn() -> bool + Sync),
}

/// A labelled set's centre-view embeddings, with its labels.
struct EmbeddedSet<'s> {
    embedded: KeptEmbeddings,
    labels: &'s [usize],
}

impl Scorer<'_> {
    /// `set`'s centre-view embeddings, kept on the device too when the search runs there (so the
    /// kNN reads them there); `None` when `keep_going` said no. The training images' views are
    /// built where the run keeps them: on the device, when it does, so an evaluation reads no
    /// training pixel on the host.
    fn embed<'s>(
        &self,
        set: &'s LabeledSet,
        search_on_device: bool,
    ) -> Result<Option<EmbeddedSet<'s>>, TrainError> {
        let pass = embed::EmbedPass {
            images: set.images(self.train),
            kept: self.kept.filter(|_| set.images.is_none()),
            size: self.config.image_size,
            view: View::CENTER,
            batch_size: EVAL_BATCH,
        };
        let embedded = embed::embed_pass(
            self.net,
            &pass,
            self.normalization,
            search_on_device,
            self.keep_going,
        )?;
        Ok(embedded.map(|embedded| EmbeddedSet {
            embedded,
            labels: &set.labels,
        }))
    }

    /// The weighted kNN accuracy of `test`'s `aligned` rows against `memory`; `None` when
    /// `keep_going` said no.
    fn knn_accuracy(
        &self,
        memory: &EmbeddedSet,
        test: &KeptEmbeddings,
        aligned: &AlignedLabels,
    ) -> Result<Option<f64>, TrainError> {
        let config = self.config;
        let memory_rows = Embeddings::new(&memory.embedded.rows, config.dim)?;
        let test_rows = Embeddings::new(&test.rows, config.dim)?;
        let k = config.knn_k.min(memory_rows.len());
        Ok(Some(match (&memory.embedded.on_device, &test.on_device) {
            // The similarity search (test × memory × dim multiply-adds) on the GPU, over the
            // embeddings already there: only the aligned rows' indices go up.
            (Some(memory_kept), Some(test_kept)) => {
                let rows: Vec<i32> = aligned
                    .rows
                    .iter()
                    .copied()
                    .map(crate::method::index_value)
                    .collect();
                let rows = Tensor::<1, Int>::from_data(
                    TensorData::new(rows, [aligned.rows.len()]),
                    &test_kept.device(),
                );
                let device_queries = test_kept.clone().select(0, rows);
                let neighbors = match eval::top_k_of_tensors(
                    device_queries,
                    memory_kept.clone(),
                    k,
                    self.keep_going,
                ) {
                    Err(EvalError::Stopped) => return Ok(None),
                    other => other?,
                };
                let predictions = eval::knn_vote(&neighbors, memory.labels, config.knn_sigma);
                eval::accuracy(&predictions, &aligned.labels)
            }
            _ => eval::knn_accuracy(
                memory_rows,
                memory.labels,
                Embeddings::new(&test_rows.gather(&aligned.rows), config.dim)?,
                &aligned.labels,
                k,
                config.knn_sigma,
            )?,
        }))
    }

    /// Recall@K, NMI and the similarity histograms of a labelled set's embeddings; `false` when
    /// `keep_going` said no.
    fn labeled_scores(
        &self,
        set: &EmbeddedSet,
        metrics: &mut EpochMetrics,
    ) -> Result<bool, TrainError> {
        let config = self.config;
        let features = Embeddings::new(&set.embedded.rows, config.dim)?;
        metrics.recall_at = Some(eval::recall_at_k(features, set.labels, &config.recall_k)?);
        if !(self.keep_going)() {
            return Ok(false);
        }
        metrics.nmi = match eval::clustering_nmi(features, set.labels, config.seed, self.keep_going)
        {
            Err(EvalError::Stopped) => return Ok(false),
            other => Some(other?),
        };
        metrics.similarity = Some(eval::labeled_similarity_distributions(
            features, set.labels, 5, BINS,
        )?);
        Ok(true)
    }

    /// Without labels, how close two views of one image are against different images, over the
    /// training set's first images; `false` when `keep_going` said no.
    fn view_scores(&self, epoch: usize, metrics: &mut EpochMetrics) -> Result<bool, TrainError> {
        let config = self.config;
        let first: Vec<usize> = (0..self.train.len().min(512)).collect();
        let sample = Subset {
            source: self.train,
            indices: &first,
        };
        let seed = Stream::EvaluationViews { epoch }.seed(config.seed);
        // The sample is the training set's first images, so kept images are its rows too.
        let view = |offset: u64| {
            let pass = embed::EmbedPass {
                images: &sample,
                kept: self.kept,
                size: config.image_size,
                view: View::Augmented {
                    ops: config.augment,
                    seed: seed.wrapping_add(offset),
                },
                batch_size: EVAL_BATCH,
            };
            embed::embed_pass(self.net, &pass, self.normalization, false, self.keep_going)
        };
        let (Some(a), Some(b)) = (view(0)?, view(1 << 32)?) else {
            return Ok(false);
        };
        let (a, b) = (a.rows, b.rows);
        metrics.scored_on = Some(ScoredOn::TrainingViews);
        metrics.similarity = Some(eval::view_similarity_distributions(
            Embeddings::new(&a, config.dim)?,
            Embeddings::new(&b, config.dim)?,
            BINS,
            seed,
        )?);
        Ok(true)
    }
}

/// Images embedded per batch during evaluation.
const EVAL_BATCH: usize = 256;
/// Probe images shown with their neighbours after every epoch.
const PROBES: usize = 6;
/// Neighbours listed per probe.
const PROBE_NEIGHBORS: usize = 5;
/// Training images searched for the probes' neighbours: a fixed sample keeps the cost per epoch
/// bounded on large folders.
const PROBE_GALLERY: usize = 1000;

/// The probes (the first images of a fixed, seeded sample of the training set) and their nearest
/// neighbours in that sample under the current network.
fn probe_neighbors(
    config: &TrainConfig,
    normalization: &Normalization,
    net: &EmbeddingNet,
    train: &ImageSet,
    train_features: Option<&[f32]>,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Vec<ProbeNeighbors>>, TrainError> {
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
                View::CENTER,
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
    // Each probe is one of the gallery's rows and must not find itself.
    let skip: Vec<Option<usize>> = (0..probes).map(Some).collect();
    let found = eval::top_k_skipping(queries, gallery, PROBE_NEIGHBORS, &skip)?;
    let entry = |row: usize| &train.entries[sample[row]];
    Ok(Some(
        found
            .into_iter()
            .enumerate()
            .map(|(probe, hits)| ProbeNeighbors {
                query: entry(probe).path.clone(),
                neighbors: hits
                    .into_iter()
                    .map(|(row, score)| {
                        Neighbor::new(
                            entry(row).path.clone(),
                            score,
                            entry(probe).label,
                            entry(row).label,
                        )
                    })
                    .collect(),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_names_the_classes_knn_leaves_out() {
        let names = |n: usize| -> Vec<String> { (0..n).map(|i| format!("c{i}")).collect() };
        assert_eq!(left_out_warning(&[], 4), None);
        let some = left_out_warning(&names(2), 4).unwrap();
        assert!(
            some.starts_with("2 of the test folder's 4 classes"),
            "{some}"
        );
        assert!(some.contains("(c0, c1)"), "{some}");
        let many = left_out_warning(&names(8), 9).unwrap();
        assert!(many.contains("c4 and 3 more"), "{many}");
        let all = left_out_warning(&names(3), 3).unwrap();
        assert!(all.contains("unseen categories") && all.contains("kNN is not scored"));
    }
}
