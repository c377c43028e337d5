//! What a trained model learned about a folder: every image's embedding, its nearest neighbours
//! (paper Fig. 4/7), queries with an outside image, similarity distributions (Fig. 5, and per
//! label folder Fig. 6), near-duplicates (`duplicates`), clusters (`clusters`) and 2-D maps of
//! the embedding (PCA, UMAP).

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::data::{DataError, ImageEntry, PixelCache, SkippedFile};
use crate::embed::{self, EmbeddedFolder};
use crate::eval::{self, Embeddings, EvalError, Histogram, Neighbor, SimilarityDistributions};
use crate::model_files::{self, LoadedModel};
use crate::support::error_kind::ErrorKind;
use crate::tensor_files::FileError;

pub mod best_copy;
pub mod clusters;
pub mod duplicates;
pub mod embedding_stage;
pub mod hash_stage;
mod opened;
pub mod planted;
pub mod resolved;
pub mod stored;
pub mod tables;
pub mod threshold;

pub use best_copy::KeepSuggestion;
pub use clusters::{Cluster, Clustering, suggested_clusters};
pub use duplicates::{
    DuplicateGroup, DuplicateLink, DuplicateThreshold, Duplicates, HashedFolder, Stage,
};
pub use embedding_stage::PairScore;
pub use hash_stage::HashStage;
pub use opened::Opened;
pub use resolved::{ResolvedError, ResolvedStore};
pub use threshold::ThresholdSuggestion;

/// Bins of the similarity histograms.
const BINS: usize = 50;
/// Same- and other-label neighbours per image in the labelled distributions (as in training).
const DISTRIBUTION_NEIGHBORS: usize = 5;
/// Random pairs in the all-pairs distribution: enough for a smooth histogram at any folder size.
const RANDOM_PAIRS: usize = 200_000;
/// Images whose neighbours make the labelled distributions.
const DISTRIBUTION_SAMPLE: usize = 5000;
/// Where the model cannot tell copies from neighbours yet: at its best threshold, the missed
/// copies and the crowding neighbours add up to this much (0 is a clean cut, 1 what any threshold
/// gets on identical distributions). A new user's wallpapers after a short CPU run: 0.68.
const OVERLAP_LIMIT: f32 = 0.4;
/// ... or this share of random pairs lies above [`COLLAPSED_COSINE`]: the embedding has not
/// spread the images out yet.
const COLLAPSED_SHARE: f64 = 0.9;
const COLLAPSED_COSINE: f32 = 0.95;

/// Images whose nearest other image calibrates the duplicate threshold.
const NEAREST_SAMPLE: usize = 5000;
/// Images given an edited copy to calibrate the duplicate threshold (embedding them costs a
/// little inference).
const COPY_SAMPLE: usize = 1000;
/// Strength of the calibration copies' edits: half that of the planted copies
/// ([`crate::explore::planted`]), so the suggestion is not fitted to the benchmark's own edits.
const COPY_STRENGTH: f32 = 0.5;

/// `0..n` when `n <= most`, else a seeded sorted sample of `most` of them.
fn sample_rows(n: usize, most: usize) -> Vec<usize> {
    if n <= most {
        return (0..n).collect();
    }
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut rows = rand::seq::index::sample(&mut rng, n, most).into_vec();
    rows.sort_unstable();
    rows
}

/// Why a collection could not be built or queried.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] FileError),
    /// The folder or a query image could not be used.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Scoring failed (inconsistent sizes).
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// An image index past the end of the collection.
    #[error("there is no image number {index}; the collection holds {len}")]
    NoSuchImage {
        /// The index asked for.
        index: usize,
        /// Images in the collection.
        len: usize,
    },
    /// The decisions about the folder's near-duplicates could not be read or written.
    #[error(transparent)]
    Resolved(#[from] ResolvedError),
    /// A group to mark resolved that is not one: fewer than two images, or a copy to keep that
    /// is not among them.
    #[error("cannot mark these images resolved: {0}")]
    NotAGroup(&'static str),
}

impl ExploreError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Model(error) => error.kind(),
            Self::Data(error) => error.kind(),
            Self::Eval(error) => error.kind(),
            Self::NoSuchImage { .. } => ErrorKind::NotFound,
            Self::Resolved(error) => error.kind(),
            Self::NotAGroup(_) => ErrorKind::Config,
        }
    }
}

/// A folder embedded with one model, ready for queries. It keeps the file list, labels and
/// embeddings; pixels stay in the cache.
pub struct Collection {
    /// The model file that made the embeddings.
    pub model_path: PathBuf,
    model: LoadedModel,
    folder: EmbeddedFolder,
    /// The last duplicate search (by the thresholds it ran at) and clustering (by k), so that
    /// exporting what is on screen does not compute it again.
    last_duplicates: Memo<(Option<u32>, u32), Vec<DuplicateGroup>>,
    last_clusters: Memo<usize, Clustering>,
    /// Where the hash stage keeps its hashes.
    cache: PixelCache,
    /// How the embedding stage scores a pair ([`PairScore`]).
    pair_score: PairScore,
    /// The zoomed and mirrored views' embeddings, made on first use where pairs are scored by
    /// them.
    view_rows: std::sync::OnceLock<[Vec<f32>; 2]>,
    /// The embedding's suggested duplicate threshold, measured on first use (it embeds 1000
    /// edited copies).
    suggestion: Memo<(), ThresholdSuggestion>,
    /// Whether the model separates copies yet (asked by both Explore views of one collection).
    readiness: Memo<(), Readiness>,
    /// The hash stage and its suggested threshold, made on first use.
    hash_stage: Memo<(), std::sync::Arc<(HashStage, ThresholdSuggestion)>>,
}

/// The most recent answer of one computation and the argument it was for.
struct Memo<K, V>(std::sync::Mutex<Option<(K, V)>>);

impl<K: PartialEq + Copy, V: Clone> Memo<K, V> {
    fn new() -> Self {
        Self(std::sync::Mutex::new(None))
    }

    /// The remembered answer for `key`, or `compute`'s (remembered when it succeeds).
    fn get_or_try<E>(&self, key: K, compute: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        if let Some((known, value)) = &*self.0.lock().expect("lock")
            && *known == key
        {
            return Ok(value.clone());
        }
        let value = compute()?;
        *self.0.lock().expect("lock") = Some((key, value.clone()));
        Ok(value)
    }
}

/// Whether the model tells copies from neighbours yet, and what to say where it does not.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Readiness {
    /// Whether the embedding separates edited copies from nearest neighbours well enough to
    /// find duplicates by.
    pub separates: bool,
    /// Why not, and what to do, for the person (`None` where it does).
    pub note: Option<String>,
}

impl Readiness {
    /// The verdict on an embedding where `collapsed` is the share of random pairs above
    /// [`COLLAPSED_COSINE`] and `suggestion` its duplicate threshold (needed only where it has not
    /// collapsed).
    fn judge(collapsed: f64, suggestion: Option<&ThresholdSuggestion>) -> Self {
        const WHAT_FOLLOWS: &str = "Near-duplicates come from the perceptual hashes alone unless you set a threshold yourself, and neighbour lists may rank unrelated images close.";
        let note = if collapsed >= COLLAPSED_SHARE {
            Some(format!(
                "The model cannot tell copies from neighbours yet: {:.0} % of random pairs of images are more similar than {COLLAPSED_COSINE}, so it has not spread them apart (train longer or wider). {WHAT_FOLLOWS}",
                100.0 * collapsed
            ))
        } else {
            suggestion
                .filter(|s| s.missed + s.crowded >= OVERLAP_LIMIT)
                .map(|s| {
                    format!(
                        "The model cannot tell copies from neighbours yet: at its best threshold ({:.3}) {:.1} % of edited copies fall below it and {:.1} % of nearest neighbours lie above it (train longer or wider). {WHAT_FOLLOWS}",
                        s.threshold,
                        100.0 * s.missed,
                        100.0 * s.crowded
                    )
                })
        };
        Self {
            separates: note.is_none(),
            note,
        }
    }
}

/// The distributions the Explore screen plots.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Distributions {
    /// Cosine similarity of random pairs of images: how spread out the embedding is.
    pub random_pairs: Histogram,
    /// Same-label vs other-label neighbours (Fig. 5), when the folder has labels.
    pub labeled: Option<SimilarityDistributions>,
    /// The same split by the query's label folder (Fig. 6), in label order.
    pub per_label: Vec<(String, SimilarityDistributions)>,
}

impl Collection {
    /// What identifies the collection of `folder` embedded with `model` among those an app keeps:
    /// xxh3-128 (hex) of both paths' exact bytes (two names that display alike stay apart) and
    /// the model file's modification time, so that a run that trained further since is embedded
    /// again rather than served from memory.
    pub fn key(model: &Path, folder: &Path) -> String {
        let modified = std::fs::metadata(model_files::weights_file(model))
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            // No time (a file that is gone): a value no existing file has.
            .map_or(u128::MAX, |since| since.as_nanos());
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for path in [model, folder] {
            let bytes = crate::support::paths::os_bytes(path.as_os_str());
            // Length first, so that no two pairs of paths hash the same bytes.
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
        hasher.update(&modified.to_le_bytes());
        format!("{:032x}", hasher.digest128())
    }
}

impl Collection {
    /// Loads `model` (a `model.safetensors` or a folder holding one) onto `device` and embeds
    /// every image of `folder`. `progress` is that of [`data::load`] (return `false` to cancel).
    ///
    /// # Errors
    /// [`ExploreError`] naming the model file or the folder.
    pub fn build(
        model: &Path,
        folder: &Path,
        cache: &PixelCache,
        device: &Device,
        progress: &(dyn Fn(usize, usize) -> bool + Sync),
    ) -> Result<Self, ExploreError> {
        let loaded = model_files::load_model(model, device)?;
        let folder = embed::embed_folder(&loaded, folder, cache, progress)?;
        Ok(Self {
            model_path: model.to_owned(),
            model: loaded,
            folder,
            last_duplicates: Memo::new(),
            last_clusters: Memo::new(),
            cache: cache.clone(),
            pair_score: PairScore::default(),
            view_rows: std::sync::OnceLock::new(),
            suggestion: Memo::new(),
            readiness: Memo::new(),
            hash_stage: Memo::new(),
        })
    }

    /// The images, in row order.
    pub fn entries(&self) -> &[ImageEntry] {
        &self.folder.set.entries
    }

    /// Label folder names (empty without labels).
    pub fn label_names(&self) -> &[String] {
        &self.folder.set.label_names
    }

    /// Files that could not be used.
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.folder.set.skipped
    }

    /// The embeddings with their file list, for export.
    pub fn embedded(&self) -> &EmbeddedFolder {
        &self.folder
    }

    fn embeddings(&self) -> Result<Embeddings<'_>, EvalError> {
        Embeddings::new(&self.folder.embeddings, self.folder.dim)
    }

    /// The `k` images most similar to image `index` (itself excluded), best first.
    ///
    /// # Errors
    /// [`ExploreError::NoSuchImage`] for an index out of range.
    pub fn neighbors(&self, index: usize, k: usize) -> Result<Vec<Neighbor>, ExploreError> {
        let all = self.embeddings()?;
        if index >= all.len() {
            return Err(ExploreError::NoSuchImage {
                index,
                len: all.len(),
            });
        }
        let hits = eval::nearest(all.row(index), all, k, Some(index))?;
        Ok(self.describe(hits, self.entries()[index].label))
    }

    /// The `k` images most similar to an image file from anywhere (decoded and centre-cropped the
    /// way training data is), best first.
    ///
    /// # Errors
    /// [`ExploreError::Data`] naming the file when it cannot be decoded.
    pub fn query_file(&self, path: &Path, k: usize) -> Result<Vec<Neighbor>, ExploreError> {
        let features = embed::embed_file(&self.model, path)?;
        let hits = eval::nearest(&features, self.embeddings()?, k, None)?;
        Ok(self.describe(hits, None))
    }

    fn describe(&self, hits: Vec<(usize, f32)>, query_label: Option<usize>) -> Vec<Neighbor> {
        hits.into_iter()
            .map(|(row, score)| {
                let entry = &self.entries()[row];
                Neighbor::new(entry.path.clone(), score, query_label, entry.label)
            })
            .collect()
    }

    /// Similarity distributions of the collection.
    ///
    /// # Errors
    /// [`ExploreError::Eval`] when the collection has fewer than two images.
    pub fn distributions(&self) -> Result<Distributions, ExploreError> {
        let all = self.embeddings()?;
        let random_pairs = eval::random_pair_histogram(all, RANDOM_PAIRS, BINS, 0)?;
        let Some(labels) = self.folder.set.labels() else {
            return Ok(Distributions {
                random_pairs,
                labeled: None,
                per_label: Vec::new(),
            });
        };
        // Neighbour search is quadratic: a seeded sample keeps 100 000 images to seconds.
        let rows = sample_rows(all.len(), DISTRIBUTION_SAMPLE);
        let features: Vec<f32> = rows.iter().flat_map(|&row| all.row(row)).copied().collect();
        let labels: Vec<usize> = rows.iter().map(|&row| labels[row]).collect();
        let per_label = eval::similarity_distributions_per_label(
            Embeddings::new(&features, all.dim())?,
            &labels,
            DISTRIBUTION_NEIGHBORS,
            BINS,
        )?;
        Ok(Distributions {
            random_pairs,
            labeled: Some(eval::merge_distributions(&per_label, BINS)?),
            per_label: self.label_names().iter().cloned().zip(per_label).collect(),
        })
    }

    /// Whether the model separates copies from neighbours yet ([`Readiness`]): not where, at
    /// its suggested threshold, the missed copies and crowding neighbours add up to
    /// [`OVERLAP_LIMIT`], nor where nearly all random pairs lie above [`COLLAPSED_COSINE`]. Where
    /// it does not, [`Collection::duplicates`] at [`DuplicateThreshold::Suggested`] uses the
    /// hashes alone, and Explore shows the note beside groups and neighbour lists.
    ///
    /// # Errors
    /// As [`Collection::suggest_duplicate_threshold`].
    pub fn readiness(&self) -> Result<Readiness, ExploreError> {
        self.readiness.get_or_try((), || self.measure_readiness())
    }

    fn measure_readiness(&self) -> Result<Readiness, ExploreError> {
        let random = eval::random_pair_histogram(
            self.embeddings()?,
            RANDOM_PAIRS,
            threshold::THRESHOLD_BINS,
            0,
        )?;
        let above: u64 = (0..random.bins())
            .filter(|&i| random.bin_center(i) > COLLAPSED_COSINE)
            .map(|i| random.counts[i])
            .sum();
        let collapsed = above as f64 / random.total().max(1) as f64;
        // A collapsed embedding needs no calibration to be judged (it embeds 1000 copies).
        if collapsed >= COLLAPSED_SHARE {
            return Ok(Readiness::judge(collapsed, None));
        }
        let suggestion = self.suggest_duplicate_threshold()?;
        Ok(Readiness::judge(collapsed, Some(&suggestion)))
    }

    /// The hash stage over the collection's cached pixels ([`HashStage`], its hashes kept in the
    /// cache) with the threshold the folder suggests for it; made on first use.
    ///
    /// # Errors
    /// As [`HashStage::build`] and [`HashStage::suggest_threshold`].
    pub fn hash_stage(
        &self,
    ) -> Result<std::sync::Arc<(HashStage, ThresholdSuggestion)>, ExploreError> {
        self.hash_stage.get_or_try((), || {
            let set = &self.folder.set;
            let size = self.model.config.model.image_size;
            let stage = HashStage::build(set, &self.cache, size)?;
            let suggestion = stage.suggest_threshold(set)?;
            Ok(std::sync::Arc::new((stage, suggestion)))
        })
    }

    /// The most differing bits the hash stage's suggested threshold allows.
    ///
    /// # Errors
    /// As [`Collection::hash_stage`].
    pub fn hash_bits(&self) -> Result<u32, ExploreError> {
        Ok(hash_stage::max_bits(self.hash_stage()?.1.threshold))
    }

    /// k-means clusters of the collection ([`clusters::cluster`], seeded); stops with
    /// [`EvalError::Stopped`] when `keep_going` says so. The last clustering is remembered, so
    /// exporting it does not run k-means again.
    ///
    /// # Errors
    /// [`ExploreError::Eval`] for `k` of 0 or above the number of images, or when stopped.
    pub fn clusters(
        &self,
        k: usize,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Clustering, ExploreError> {
        self.last_clusters.get_or_try(k, || {
            Ok(clusters::cluster(self.embeddings()?, k, 0, keep_going)?)
        })
    }

    /// The number of clusters to offer first ([`suggested_clusters`]).
    pub fn suggested_clusters(&self) -> usize {
        suggested_clusters(self.entries().len(), self.label_names().len())
    }

    /// Each image's position on a 2-D map of the embedding. `progress(done, total)` reports
    /// UMAP's epochs; returning `false` stops it with [`EvalError::Stopped`].
    ///
    /// # Errors
    /// [`ExploreError::Eval`] for an empty collection (or below 3 images for UMAP), or when
    /// stopped.
    pub fn map(
        &self,
        method: MapMethod,
        progress: &dyn Fn(usize, usize) -> bool,
    ) -> Result<Vec<[f32; 2]>, ExploreError> {
        let all = self.embeddings()?;
        Ok(match method {
            MapMethod::Pca => eval::pca_2d(all)?,
            MapMethod::Umap => eval::umap_2d(all, 0, progress)?,
        })
    }
}

/// How [`Collection::map`] flattens the embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum MapMethod {
    /// The first two principal components: global directions, instant.
    Pca,
    /// UMAP: each image's neighbourhood kept, seconds for 10 000 images.
    Umap,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Normalization;
    use crate::lab::demo::{self, DemoSpec};
    use crate::model::ModelConfig;
    use crate::model_files::ExportedConfig;

    fn tiny_collection() -> (tempfile::TempDir, Collection) {
        collection_with(|_| {})
    }

    /// Three generated classes of six 16-pixel images, `plant` given the folder before it is
    /// embedded with a seeded width-4 network.
    fn collection_with(plant: impl FnOnce(&Path)) -> (tempfile::TempDir, Collection) {
        let dir = tempfile::tempdir().unwrap();
        let spec = DemoSpec {
            classes: 3,
            train_per_class: 6,
            test_per_class: 0,
            size: 16,
            seed: 1,
        };
        let folders = demo::generate(&dir.path().join("data"), &spec).unwrap();
        plant(&folders.train);
        let device = crate::device::cpu().device;
        let model = ModelConfig::resnet18(4, 8, 16);
        let net = model.init_seeded(&device, 0);
        let run = dir.path().join("run");
        model_files::export_model(
            &run,
            &net,
            &ExportedConfig {
                model,
                normalization: Normalization::IDENTITY,
                tau: 0.1,
                steps: 0,
            },
        )
        .unwrap();
        let collection = Collection::build(
            &run,
            &folders.train,
            &PixelCache::at(dir.path().join("cache")),
            &device,
            &|_, _| true,
        )
        .unwrap();
        (dir, collection)
    }

    #[test]
    fn neighbors_exclude_the_query_and_come_best_first_with_label_agreement() {
        let (_dir, collection) = tiny_collection();
        assert_eq!(collection.entries().len(), 18);
        let hits = collection.neighbors(4, 5).unwrap();
        assert_eq!(hits.len(), 5);
        assert!(
            hits.iter()
                .all(|hit| hit.path != collection.entries()[4].path)
        );
        assert!(hits.windows(2).all(|pair| pair[0].score >= pair[1].score));
        assert!(hits.iter().all(|hit| hit.same_label.is_some()));
        let error = collection.neighbors(18, 5).unwrap_err();
        assert!(matches!(
            error,
            ExploreError::NoSuchImage { index: 18, len: 18 }
        ));
    }

    #[test]
    fn a_crop_is_found_by_the_best_of_the_views_where_the_whole_images_differ() {
        // A copy of one image's middle 13×13 (its zoomed view's region), saved beside it.
        let mut original = PathBuf::new();
        let (dir, collection) = collection_with(|train| {
            let class = std::fs::read_dir(train)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let mut files: Vec<PathBuf> = std::fs::read_dir(&class)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
            files.sort();
            original = files[0].clone();
            let image = image::open(&original).unwrap().to_rgb8();
            let middle = image::imageops::crop_imm(&image, 1, 1, 13, 13).to_image();
            middle.save(class.join("zz-crop.png")).unwrap();
        });
        let row = |path: &Path| {
            collection
                .entries()
                .iter()
                .position(|entry| entry.path == path)
                .unwrap()
        };
        let (a, crop) = (row(&original), row(&original.with_file_name("zz-crop.png")));
        let views = collection.views().unwrap();
        assert_eq!(views.len(), 3);
        assert!(views.iter().all(|view| view.len() == 19));
        let products = embedding_stage::view_products(&views, &views);
        let whole = eval::best_of(&products[..1], a, crop);
        let best = eval::best_of(&products, a, crop);
        eprintln!(
            "crop: whole images 1 − {:.1e}, best of the views 1 − {:.1e}",
            1.0 - whole,
            1.0 - best
        );
        // An untrained network puts all 16-pixel images close; the crop's own region is closer
        // by far (the same pixels, up to resampling).
        assert!((1.0 - best) * 10.0 < 1.0 - whole, "{whole} {best}");
        let nearest_other = (0..19)
            .filter(|&b| b != a && b != crop)
            .map(|b| eval::best_of(&products, crop, b))
            .fold(f32::MIN, f32::max);
        assert!(best > nearest_other, "{best} {nearest_other}");
        assert_eq!(best, eval::best_of(&products, crop, a), "symmetric");
        // Asked to stop, nothing more is embedded: the views are there already.
        collection.embed_views(&|| false).unwrap();
        // The views are kept in the cache: asking again embeds nothing (a refusal to embed
        // still answers).
        let kept = embed::embed_set(
            &collection.model,
            &collection.folder.set,
            &collection.cache,
            crate::augment::FixedView::Zoomed,
            &|| false,
        )
        .unwrap()
        .expect("kept");
        assert_eq!(kept.as_slice(), views[1].data());
        // The threshold is measured with the same score; the whole images alone give one view.
        let suggestion = collection.suggest_duplicate_threshold().unwrap();
        assert_eq!(suggestion.copies.total(), 19);
        let whole_only = collection.scoring_pairs_by(PairScore::WholeImages);
        assert_eq!(whole_only.views().unwrap().len(), 1);
        drop(dir);
        // A Ctrl-C before the views of a fresh collection are embedded stops with the folder named.
        let (_dir, fresh) = tiny_collection();
        let stopped = fresh.embed_views(&|| false).unwrap_err();
        assert!(
            matches!(&stopped, ExploreError::Data(DataError::Canceled(root)) if *root == fresh.folder.set.root),
            "{stopped}"
        );
    }

    #[test]
    fn an_untrained_model_is_said_not_to_separate_copies_and_overlap_is_judged_too() {
        // A seeded width-4 network before any training puts every 16-pixel image close.
        let (_dir, collection) = tiny_collection();
        let readiness = collection.readiness().unwrap();
        assert!(!readiness.separates);
        let note = readiness.note.unwrap();
        assert!(
            note.contains("% of random pairs") && note.contains("train longer"),
            "{note}"
        );
        // Where it has spread images out, the overlap of copies and neighbours decides.
        let apart = threshold::suggest_threshold(&[0.97, 0.98, 0.99], &[0.5, 0.6, 0.7]).unwrap();
        assert_eq!(
            Readiness::judge(0.1, Some(&apart)),
            Readiness {
                separates: true,
                note: None
            }
        );
        let overlapping =
            threshold::suggest_threshold(&[0.6, 0.8, 0.9, 0.95], &[0.7, 0.85, 0.92, 0.97]).unwrap();
        assert!(overlapping.missed + overlapping.crowded >= OVERLAP_LIMIT);
        let judged = Readiness::judge(0.1, Some(&overlapping));
        assert!(!judged.separates);
        assert!(
            judged
                .note
                .unwrap()
                .contains("of edited copies fall below it"),
            "the overlap is named"
        );
    }

    #[test]
    fn the_suggested_threshold_leaves_the_embedding_out_until_the_model_separates_copies() {
        let (_dir, collection) = tiny_collection();
        let cosines = |found: &Duplicates| -> Vec<Option<f32>> {
            found
                .groups
                .iter()
                .flat_map(|group| &group.links)
                .map(|link| link.cosine)
                .collect()
        };
        // An untrained model does not separate copies: the hashes alone, at their suggestion.
        assert!(!collection.readiness().unwrap().separates);
        let suggested = collection
            .duplicates(DuplicateThreshold::Suggested, None)
            .unwrap();
        assert_eq!(suggested.threshold, None);
        assert_eq!(suggested.hash_bits, collection.hash_bits().unwrap());
        assert!(cosines(&suggested).iter().all(Option::is_none));
        // A threshold the person chose is used all the same: every image of the untrained
        // network lies above 0.5 to every other.
        let chosen = collection
            .duplicates(DuplicateThreshold::from(Some(0.5)), Some(3))
            .unwrap();
        assert_eq!((chosen.threshold, chosen.hash_bits), (Some(0.5), 3));
        assert_eq!(chosen.groups.len(), 1);
        assert!(cosines(&chosen).iter().all(|c| c.is_some_and(|c| c > 0.5)));
        // Where the model separates copies, the suggestion.
        let ready = collection.scoring_pairs_by(PairScore::WholeImages);
        let separates = Readiness {
            separates: true,
            note: None,
        };
        ready
            .readiness
            .get_or_try((), || Ok::<_, ExploreError>(separates))
            .unwrap();
        let suggested = ready
            .duplicates(DuplicateThreshold::from(None), None)
            .unwrap();
        let suggestion = ready.suggest_duplicate_threshold().unwrap().threshold;
        assert_eq!(suggested.threshold, Some(suggestion));
    }

    #[test]
    fn a_file_of_the_collection_finds_itself_first() {
        let (_dir, collection) = tiny_collection();
        let path = collection.entries()[7].path.clone();
        let hits = collection.query_file(&path, 3).unwrap();
        assert_eq!(hits[0].path, path);
        assert!((hits[0].score - 1.0).abs() < 1e-4, "{}", hits[0].score);
        let error = collection
            .query_file(Path::new("/no/such.png"), 3)
            .unwrap_err();
        assert!(error.to_string().contains("/no/such.png"), "{error}");
    }

    #[test]
    fn the_last_answer_is_remembered_for_its_argument_only() {
        let memo: Memo<u32, u32> = Memo::new();
        let calls = std::cell::Cell::new(0);
        let square = |k: u32| {
            calls.set(calls.get() + 1);
            Ok::<_, ()>(k * k)
        };
        assert_eq!(memo.get_or_try(3, || square(3)), Ok(9));
        assert_eq!(memo.get_or_try(3, || square(3)), Ok(9));
        assert_eq!(calls.get(), 1, "the same argument is answered from memory");
        assert_eq!(memo.get_or_try(4, || square(4)), Ok(16));
        assert_eq!(memo.get_or_try(5, || Err(())), Err(()));
        assert_eq!(memo.get_or_try(4, || square(4)), Ok(16));
        assert_eq!(
            calls.get(),
            2,
            "a failure is not remembered, the last success stays"
        );
    }

    #[test]
    fn large_collections_are_sampled_for_the_distributions() {
        assert_eq!(sample_rows(5, 10), vec![0, 1, 2, 3, 4]);
        let rows = sample_rows(100_000, 5000);
        assert_eq!(rows.len(), 5000);
        assert!(rows.windows(2).all(|pair| pair[0] < pair[1]) && rows[4999] < 100_000);
        assert_eq!(rows, sample_rows(100_000, 5000), "seeded");
    }

    #[test]
    fn distributions_and_map_cover_the_collection() {
        let (_dir, collection) = tiny_collection();
        let distributions = collection.distributions().unwrap();
        assert!(distributions.random_pairs.total() > 0);
        assert_eq!(distributions.per_label.len(), 3);
        assert_eq!(distributions.per_label[0].0, collection.label_names()[0]);
        assert_eq!(
            collection.map(MapMethod::Pca, &|_, _| true).unwrap().len(),
            18
        );
        assert_eq!(
            collection.map(MapMethod::Umap, &|_, _| true).unwrap().len(),
            18
        );
    }

    #[test]
    fn keys_tell_apart_names_that_display_alike_and_a_model_trained_further() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.safetensors");
        std::fs::write(&model, b"weights").unwrap();
        let folder = dir.path().join("photos");
        let key = Collection::key(&model, &folder);
        assert_eq!(key, Collection::key(&model, &folder));
        assert_ne!(key, Collection::key(&model, &dir.path().join("photo")));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            // Both display as "a\u{FFFD}".
            let a = dir.path().join(std::ffi::OsStr::from_bytes(b"a\xfe"));
            let b = dir.path().join(std::ffi::OsStr::from_bytes(b"a\xff"));
            assert_eq!(a.display().to_string(), b.display().to_string());
            assert_ne!(Collection::key(&model, &a), Collection::key(&model, &b));
        }
        let file = std::fs::File::options().write(true).open(&model).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        assert_ne!(key, Collection::key(&model, &folder));
    }
}
