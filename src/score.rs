//! Scoring a trained model on labelled folders: what `spreadout eval` reports, for both of the
//! paper's protocols.
//!
//! - Seen categories (§4.1, CIFAR-10, STL-10): the test folder's classes are the memory folder's;
//!   weighted kNN classifies test images against the memory, and a linear classifier fitted on
//!   the memory's embeddings can be scored too (Table 2).
//! - Unseen categories (§4.2, CUB-200, Cars-196, Products): the test classes are not in the
//!   memory folder; Recall@K and NMI are computed within the test folder (queries and gallery
//!   both from it, the query excluded), and kNN or a linear classifier, which need the classes in
//!   the memory, are reported only for the test images whose class the memory has.
//!
//! Recall@K and NMI are always computed on the test folder, whichever protocol applies.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::{DataError, PixelCache};
use crate::embed::{self, EmbeddedFolder};
use crate::eval::{self, Embeddings, EvalError, LinearSettings};
use crate::model_files::LoadedModel;
use crate::support::error_kind::ErrorKind;

/// What to compute.
#[derive(Debug, Clone)]
pub struct ScoreSettings {
    /// kNN neighbours.
    pub knn_k: usize,
    /// kNN vote temperature.
    pub knn_sigma: f32,
    /// The K of Recall@K.
    pub recall_k: Vec<usize>,
    /// Fit and score a linear classifier with these settings.
    pub linear: Option<LinearSettings>,
    /// Seed of the k-means seeding.
    pub seed: u64,
}

/// The scores of one model on a memory folder and a test folder.
#[derive(Debug, Clone, Serialize)]
pub struct FolderScores {
    /// Weighted kNN top-1 (%) of the test images whose class the memory folder has; `None` when
    /// it has none of them (unseen categories).
    pub knn_accuracy: Option<f64>,
    /// Neighbours used (the memory size when smaller than asked).
    pub knn_k: usize,
    /// Vote temperature.
    pub knn_sigma: f32,
    /// Linear classifier top-1 (%) on the same test images as kNN, when asked.
    pub linear_accuracy: Option<f64>,
    /// Test images scored by kNN and the linear classifier.
    pub classified_images: usize,
    /// Recall@K (%) within the test folder; `{"K": recall}` in JSON.
    #[serde(serialize_with = "recall_by_k")]
    pub recall_at: Vec<(usize, f64)>,
    /// NMI of a k-means clustering of the test folder with one cluster per test class.
    pub nmi: f64,
    /// Where Recall@K and NMI were computed: always the test folder.
    #[serde(serialize_with = "crate::support::paths::serialize")]
    pub retrieval_scored_on: PathBuf,
    /// Classes of the test folder, and how many of them the memory folder has.
    pub test_classes: usize,
    /// Test classes the memory folder has.
    pub test_classes_in_memory: usize,
    /// Test classes the memory folder lacks, whose images kNN and the linear classifier left out.
    pub test_classes_left_out: Vec<String>,
    /// Images of the memory folder.
    pub train_images: usize,
    /// Images of the test folder.
    pub test_images: usize,
}

/// Recall@K as a map from K, the shape `spreadout eval` reports it in.
fn recall_by_k<S: serde::Serializer>(
    recall: &[(usize, f64)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(recall.iter().map(|(k, r)| (k.to_string(), r)))
}

/// Why a folder could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// A folder could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The metrics could not be computed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A folder has no class folders.
    #[error("{} has no label folders (images in at least two first-level subfolders)", .0.display())]
    Unlabeled(PathBuf),
}

impl ScoreError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Data(error) => error.kind(),
            Self::Eval(error) => error.kind(),
            Self::Unlabeled(_) => ErrorKind::Data,
        }
    }
}

/// Embeds both folders with `model` (through the cache) and scores it; `progress` is the folder
/// loading's, each folder in turn.
pub fn score_folders(
    model: &LoadedModel,
    train_dir: &Path,
    test_dir: &Path,
    cache: &PixelCache,
    settings: &ScoreSettings,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
    on_skipped: &mut dyn FnMut(&EmbeddedFolder),
) -> Result<FolderScores, ScoreError> {
    let mut embed_labeled = |dir: &Path| -> Result<(EmbeddedFolder, Vec<usize>), ScoreError> {
        let folder = embed::embed_folder(model, dir, cache, progress)?;
        on_skipped(&folder);
        let labels = folder
            .set
            .labels()
            .ok_or_else(|| ScoreError::Unlabeled(dir.to_owned()))?;
        Ok((folder, labels))
    };
    let (memory, memory_labels) = embed_labeled(train_dir)?;
    let (test, test_labels) = embed_labeled(test_dir)?;
    let dim = memory.dim;
    let test_rows = Embeddings::new(&test.embeddings, dim)?;

    // The test images whose class the memory has, in the memory's label numbering: the rule
    // per-epoch evaluation follows too.
    let aligned = eval::align_labels(&memory.set.label_names, &test.set.label_names, &test_labels);
    let classified_rows = test_rows.gather(&aligned.rows);
    let memory_rows = Embeddings::new(&memory.embeddings, dim)?;
    let knn_k = settings.knn_k.min(memory_rows.len());
    let (knn_accuracy, linear_accuracy) = if aligned.rows.is_empty() {
        (None, None)
    } else {
        let queries = Embeddings::new(&classified_rows, dim)?;
        let knn = eval::knn_accuracy(
            memory_rows,
            &memory_labels,
            queries,
            &aligned.labels,
            knn_k,
            settings.knn_sigma,
        )?;
        let linear = settings
            .linear
            .as_ref()
            .map(|linear| {
                eval::linear_accuracy(
                    memory_rows,
                    &memory_labels,
                    queries,
                    &aligned.labels,
                    linear,
                )
            })
            .transpose()?;
        (Some(knn), linear)
    };
    Ok(FolderScores {
        knn_accuracy,
        knn_k,
        knn_sigma: settings.knn_sigma,
        linear_accuracy,
        classified_images: aligned.rows.len(),
        recall_at: eval::recall_at_k(test_rows, &test_labels, &settings.recall_k)?,
        nmi: eval::clustering_nmi(test_rows, &test_labels, settings.seed, &|| true)?,
        retrieval_scored_on: test_dir.to_owned(),
        test_classes: test.set.label_names.len(),
        test_classes_in_memory: test.set.label_names.len() - aligned.left_out.len(),
        test_classes_left_out: aligned.left_out,
        train_images: memory_rows.len(),
        test_images: test_rows.len(),
    })
}
