//! Data and Augmentations screens: open a folder (or the demo set), check every file, preview the
//! training views.

use std::io::Cursor;
use std::path::PathBuf;

use base64::Engine;
use serde::Serialize;
use spreadout::augment::AugmentOps;
use spreadout::data::{self, SkippedFile};
use spreadout::device::DeviceChoice;
use spreadout::lab::demo::{self, DemoSpec};
use spreadout::train::{self, AugmentOn};
use tauri::State;
use tauri::ipc::Channel;

use super::{ImageList, Progress, UiPath, cancellable};
use crate::error::{CommandResult, blocking};
use crate::state::AppState;

/// What the Data screen shows about a folder before decoding anything.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct FolderSummary {
    /// The folder.
    #[serde(with = "spreadout::support::paths")]
    #[ts(type = "string")]
    pub root: PathBuf,
    /// Image files, sorted by path, with their labels.
    #[serde(flatten)]
    pub images: ImageList,
    /// Files per extension.
    pub formats: std::collections::BTreeMap<String, usize>,
    /// Camera raw files among the images, read through the JPEG preview each embeds.
    pub raw_files: usize,
    /// HEIC, HEIF and AVIF files among the images.
    pub heif_files: usize,
    /// The libheif version they are read with; `None` in a build without it (they are skipped).
    pub libheif: Option<String>,
}

/// Lists a folder's images and detects label folders.
#[tauri::command]
pub async fn scan_folder(state: State<'_, AppState>, path: UiPath) -> CommandResult<FolderSummary> {
    let scan = blocking(move || Ok(data::scan(&path)?)).await?;
    state.allow(&scan.root);
    Ok(FolderSummary {
        images: ImageList::new(&scan.entries, &scan.label_names),
        raw_files: scan.raw_files(),
        heif_files: scan.heif_files(),
        libheif: data::libheif_version(),
        root: scan.root,
        formats: scan.formats,
    })
}

/// Result of decoding every file of a folder the way training will.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct FolderCheck {
    /// Files that decode.
    pub usable: usize,
    /// Files that do not, with reasons.
    pub skipped: Vec<SkippedFile>,
    /// Files an earlier release had skipped, tried again by this check (its decoder may read
    /// them); those still unread are among `skipped`.
    pub retried: usize,
}

/// Decodes every file at the training size, reporting progress; cancellable through `job`.
#[tauri::command]
pub async fn check_folder(
    state: State<'_, AppState>,
    path: UiPath,
    image_size: u32,
    job: String,
    progress: Channel<Progress>,
) -> CommandResult<FolderCheck> {
    let cache = state.pixel_cache.clone();
    cancellable(&state, &job, progress, move |report| {
        let set = data::load_folder(&path, &cache, image_size, report)?;
        Ok(FolderCheck {
            usable: set.len(),
            skipped: set.skipped,
            retried: set.retried,
        })
    })
    .await
}

/// What the preprocessed image cache holds, for the Data screen.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct CacheSummary {
    /// The cache folder.
    #[serde(with = "spreadout::support::paths")]
    #[ts(type = "string")]
    pub root: PathBuf,
    /// Disk space of the whole cache (folder caches, embeddings, thumbnails).
    pub bytes: u64,
    /// One row per cached (folder, resolution), largest first.
    pub folders: Vec<data::CachedFolder>,
}

/// Where the image cache is and what it takes.
#[tauri::command]
pub async fn cache_summary(state: State<'_, AppState>) -> CommandResult<CacheSummary> {
    let cache = state.pixel_cache.clone();
    blocking(move || {
        let folders = cache.usage();
        Ok(CacheSummary {
            root: cache.root().to_owned(),
            bytes: cache.disk_bytes(),
            folders,
        })
    })
    .await
}

/// Deletes the image cache (each folder is decoded again when next used); returns bytes freed.
#[tauri::command]
pub async fn clear_cache(state: State<'_, AppState>) -> CommandResult<u64> {
    let cache = state.pixel_cache.clone();
    blocking(move || Ok(cache.clear()?)).await
}

/// Stops a running job (folder check, embedding).
#[tauri::command]
pub fn cancel_job(state: State<'_, AppState>, job: String) {
    state.cancel_job(&job);
}

/// The built-in demo data set: six procedural shape classes, generated once into the app's data
/// folder. Returns its `train` and `test` folders.
#[tauri::command]
pub async fn demo_folders(state: State<'_, AppState>) -> CommandResult<(UiPath, UiPath)> {
    let root = state.demo_root.clone();
    let folders = blocking(move || Ok(demo::generate(&root, &DemoSpec::default())?)).await?;
    state.allow(&state.demo_root);
    Ok((folders.train.into(), folders.test.into()))
}

/// One image and two training views of it, as PNG data URLs.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct ViewPair {
    /// The file.
    #[serde(with = "spreadout::support::paths")]
    #[ts(type = "string")]
    pub path: PathBuf,
    /// The image as training loads it: from the cache, shorter side 1.5 × the image size (room for
    /// the crops).
    pub original: String,
    /// Two random views, exactly as a training batch makes them.
    pub views: [String; 2],
}

/// Training views of a few images, and where they were built.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct ViewsPreview {
    /// Each image and two views of it.
    pub pairs: Vec<ViewPair>,
    /// Where a run with these settings builds its views, and these were built: the GPU
    /// adapter's name, or "CPU".
    pub built_on: String,
}

/// Training views of `paths` with the given operations, built where a run on `device` with
/// `augment_on` builds them; `seed` changes the draw. A served device's views are previewed on
/// this machine without reaching its server, so no token is read for it here.
#[tauri::command]
pub async fn augment_preview(
    paths: Vec<UiPath>,
    ops: AugmentOps,
    image_size: u32,
    seed: u64,
    device: DeviceChoice,
    augment_on: AugmentOn,
) -> CommandResult<ViewsPreview> {
    blocking(move || {
        let paths = paths.into_iter().map(|UiPath(path)| path).collect();
        let preview = train::preview_views(paths, image_size, &ops, seed, device, augment_on)?;
        Ok(ViewsPreview {
            pairs: preview
                .pairs
                .into_iter()
                .map(|(path, image, views)| ViewPair {
                    original: png_data_url(&image),
                    views: views.each_ref().map(png_data_url),
                    path,
                })
                .collect(),
            built_on: preview.built_on,
        })
    })
    .await
}

fn png_data_url(image: &image::RgbImage) -> String {
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("PNG encoding into memory cannot fail");
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes.into_inner())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_png_data_urls() {
        let url = png_data_url(&image::RgbImage::new(4, 4));
        assert!(url.starts_with("data:image/png;base64,iVBOR"), "{url}");
    }
}
