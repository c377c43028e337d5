//! Explore screen: embed a folder with a run's model (or one of its snapshots), then query it:
//! neighbours, distributions, maps, near-duplicates and clusters.

use std::sync::Arc;

use serde::Serialize;
use spreadout::data::SkippedFile;
use spreadout::device::{self, DeviceChoice};
use spreadout::eval::Neighbor;
use spreadout::explore::{
    Clustering, Collection, Distributions, DuplicateGroup, HashedFolder, MapMethod, Readiness,
    ThresholdSuggestion, tables,
};
use tauri::State;
use tauri::ipc::Channel;

use super::{ImageList, Progress, UiPath, cancellable, cancellable_without_progress};
use crate::error::{CommandResult, blocking};
use crate::state::AppState;

/// A collection as the UI sees it.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct CollectionInfo {
    /// Key for later queries.
    pub key: String,
    /// Images in row order, with their labels.
    #[serde(flatten)]
    pub images: ImageList,
    /// Files that could not be used.
    pub skipped: Vec<SkippedFile>,
    /// The number of clusters to offer first.
    pub suggested_clusters: usize,
}

/// Embeds `folder` with `model` (a run folder, snapshot folder or model file); reuses an earlier
/// embedding of the same pair. Cancellable through `job`.
#[tauri::command]
pub async fn open_collection(
    state: State<'_, AppState>,
    model: UiPath,
    folder: UiPath,
    device: DeviceChoice,
    job: String,
    progress: Channel<Progress>,
) -> CommandResult<CollectionInfo> {
    let key = Collection::key(&model, &folder);
    let collection = match state.collection(&key) {
        Ok(existing) => existing,
        Err(_) => {
            state.allow(&folder);
            let cache = state.pixel_cache.clone();
            let device = state.with_kept_token(device)?;
            let built = cancellable(&state, &job, progress, move |report| {
                let selected = device::select(device)?;
                Ok(Collection::build(
                    &model,
                    &folder,
                    &cache,
                    &selected.device,
                    report,
                )?)
            })
            .await?;
            let collection = Arc::new(built);
            state.store_collection(key.clone(), collection.clone());
            collection
        }
    };
    Ok(CollectionInfo {
        key,
        images: ImageList::new(collection.entries(), collection.label_names()),
        skipped: collection.skipped().to_vec(),
        suggested_clusters: collection.suggested_clusters(),
    })
}

/// Opens `folder` without a model: its perceptual hashes only, for Explore's near-duplicates
/// before any training; the same commands as a collection's answer for its key.
#[tauri::command]
pub async fn open_hashed_folder(
    state: State<'_, AppState>,
    folder: UiPath,
    job: String,
    progress: Channel<Progress>,
) -> CommandResult<CollectionInfo> {
    let key = HashedFolder::key(&folder);
    let hashed = match state.hashed(&key) {
        Some(existing) => existing,
        None => {
            state.allow(&folder);
            let cache = state.pixel_cache.clone();
            let built = cancellable(&state, &job, progress, move |report| {
                Ok(HashedFolder::build(&folder, &cache, report)?)
            })
            .await?;
            let hashed = Arc::new(built);
            state.store_hashed(key.clone(), hashed.clone());
            hashed
        }
    };
    Ok(CollectionInfo {
        key,
        images: ImageList::new(hashed.entries(), hashed.label_names()),
        skipped: hashed.skipped().to_vec(),
        suggested_clusters: 0,
    })
}

/// The `k` nearest images of image `index`.
#[tauri::command]
pub async fn neighbors(
    state: State<'_, AppState>,
    key: String,
    index: usize,
    k: usize,
) -> CommandResult<Vec<Neighbor>> {
    let collection = state.collection(&key)?;
    blocking(move || Ok(collection.neighbors(index, k)?)).await
}

/// The `k` nearest images of an outside image file (dropped on the window).
#[tauri::command]
pub async fn query_file(
    state: State<'_, AppState>,
    key: String,
    path: UiPath,
    k: usize,
) -> CommandResult<Vec<Neighbor>> {
    let collection = state.collection(&key)?;
    state.allow(&path);
    blocking(move || Ok(collection.query_file(&path, k)?)).await
}

/// Similarity distributions (Fig. 5/6).
#[tauri::command]
pub async fn distributions(
    state: State<'_, AppState>,
    key: String,
) -> CommandResult<Distributions> {
    let collection = state.collection(&key)?;
    blocking(move || Ok(collection.distributions()?)).await
}

/// 2-D coordinates of every image (PCA, or UMAP with progress; cancellable through `job`).
#[tauri::command]
pub async fn embedding_map(
    state: State<'_, AppState>,
    key: String,
    method: MapMethod,
    job: String,
    progress: Channel<Progress>,
) -> CommandResult<Vec<[f32; 2]>> {
    let collection = state.collection(&key)?;
    cancellable(&state, &job, progress, move |report| {
        Ok(collection.map(method, report)?)
    })
    .await
}

/// The near-duplicate threshold the model suggests for the folder, with its distributions.
#[tauri::command]
pub async fn duplicate_threshold(
    state: State<'_, AppState>,
    key: String,
) -> CommandResult<ThresholdSuggestion> {
    if let Some(hashed) = state.hashed(&key) {
        return Ok(hashed.suggestion().clone());
    }
    let collection = state.collection(&key)?;
    blocking(move || Ok(collection.suggest_duplicate_threshold()?)).await
}

/// Whether the model separates copies from neighbours yet, with the note to show where not.
#[tauri::command]
pub async fn readiness(state: State<'_, AppState>, key: String) -> CommandResult<Readiness> {
    let opened = state.opened(&key)?;
    blocking(move || Ok(opened.readiness()?)).await
}

/// Groups of near-duplicates, largest first: linked by embeddings above the person's `threshold`
/// (none: the engine's [`DuplicateThreshold::Suggested`], which leaves the embedding out while the
/// model cannot separate copies) or by the hash stage at its suggested threshold.
#[tauri::command]
pub async fn find_duplicates(
    state: State<'_, AppState>,
    key: String,
    threshold: Option<f32>,
) -> CommandResult<Vec<DuplicateGroup>> {
    let opened = state.opened(&key)?;
    let decisions = state.decisions.clone();
    blocking(move || Ok(opened.duplicates(threshold, None, &decisions)?.groups)).await
}

/// Marks the group of rows `members` resolved, keeping row `keep`, or with `keep` null no
/// longer resolved; later searches (here and in the CLI) set a resolved group aside.
#[tauri::command]
pub async fn mark_duplicates_resolved(
    state: State<'_, AppState>,
    key: String,
    members: Vec<usize>,
    keep: Option<usize>,
) -> CommandResult<()> {
    let opened = state.opened(&key)?;
    let decisions = state.decisions.clone();
    blocking(move || Ok(opened.mark_resolved(&members, keep, &decisions)?)).await
}

/// A file format for the groups.
#[derive(Debug, Clone, Copy, serde::Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// `group,path,similarity,stage,hash_bits,keep,resolved`.
    Csv,
    /// `{"threshold": t, "hash_bits": b, "groups": [[path, …], …], "links": …, "keep": …,
    /// "resolved": …}`.
    Json,
}

/// Writes the groups [`find_duplicates`] gives for `threshold` to `destination` (atomically); the
/// images are not touched.
#[tauri::command]
pub async fn save_duplicates(
    state: State<'_, AppState>,
    key: String,
    threshold: Option<f32>,
    format: TableFormat,
    destination: UiPath,
) -> CommandResult<UiPath> {
    let opened = state.opened(&key)?;
    let decisions = state.decisions.clone();
    blocking(move || {
        let found = opened.duplicates(threshold, None, &decisions)?;
        let entries = opened.entries();
        let text = match format {
            TableFormat::Csv => tables::duplicates_csv(&found.groups, entries),
            TableFormat::Json => tables::duplicates_json(&found, entries),
        };
        tables::write(&destination, &text)?;
        Ok(destination)
    })
    .await
}

/// k-means clusters of the collection; cancellable through `job`. (k-means reports no progress:
/// it runs until it settles.)
#[tauri::command]
pub async fn cluster_collection(
    state: State<'_, AppState>,
    key: String,
    k: usize,
    job: String,
) -> CommandResult<Clustering> {
    let collection = state.collection(&key)?;
    cancellable_without_progress(&state, &job, move |keep_going| {
        Ok(collection.clusters(k, keep_going)?)
    })
    .await
}

/// Writes every image's cluster (the clustering with `k` that [`cluster_collection`] showed,
/// remembered by the collection) to `destination` as CSV.
#[tauri::command]
pub async fn save_clusters(
    state: State<'_, AppState>,
    key: String,
    k: usize,
    destination: UiPath,
) -> CommandResult<UiPath> {
    let collection = state.collection(&key)?;
    blocking(move || {
        let clustering = collection.clusters(k, &|| true)?;
        tables::write(
            &destination,
            &tables::clusters_csv(&clustering, collection.entries()),
        )?;
        Ok(destination)
    })
    .await
}
