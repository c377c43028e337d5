//! Walking a folder: which files are images, which look like images but cannot be read here, and
//! what each file's size and modification time are (the cache's and the resume check's key).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{DataError, SkippedFile};

/// File extensions (lower case, without the dot) that are treated as images: the formats the
/// `image` crate reads, camera raw files (read through their embedded JPEG preview) and, in builds
/// with the `heic` feature, HEIC, HEIF and AVIF (through libheif).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg",
    "jpeg",
    "png",
    "webp",
    "bmp",
    "gif",
    "tif",
    "tiff",
    "dng",
    "cr2",
    "cr3",
    "nef",
    "arw",
    "orf",
    "rw2",
    "raf",
    "srw",
    "pef",
    #[cfg(feature = "heic")]
    "heic",
    #[cfg(feature = "heic")]
    "heif",
    #[cfg(feature = "heic")]
    "hif",
    #[cfg(feature = "heic")]
    "avif",
];

/// Image formats people keep beside their photos that no decoder built into Spreadout reads,
/// with what to do about them. They are listed as skipped rather than passed over in silence.
const UNSUPPORTED_FORMATS: &[(&[&str], &str)] = &[
    #[cfg(not(feature = "heic"))]
    (
        super::decode::heif::HEIF_EXTENSIONS,
        super::decode::heif::NOT_BUILT,
    ),
    (
        &["jxl"],
        "unsupported format: JPEG XL is not decoded here; convert it to JPEG or PNG",
    ),
    (
        &["svg", "svgz"],
        "unsupported format: SVG is a vector drawing, not pixels; export it as PNG",
    ),
    (
        &["psd"],
        "unsupported format: Photoshop documents are not decoded here; export a flattened JPEG or PNG",
    ),
];

/// What identifies a file's content without reading it: a file whose size or modification time
/// changed is decoded again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 where the system has none).
    pub modified_ns: i128,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        let modified_ns =
            meta.modified()
                .ok()
                .map_or(0, |time| match time.duration_since(UNIX_EPOCH) {
                    Ok(after) => after.as_nanos() as i128,
                    Err(before) => -(before.duration().as_nanos() as i128),
                });
        Self {
            size: meta.len(),
            modified_ns,
        }
    }
}

/// One image file found by the scan. `label` is the index of its first-level subfolder in
/// `Scan::label_names`, if labels were detected.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ImageEntry {
    /// Path of the file: the scanned root joined with the file's path below it.
    #[serde(with = "crate::support::paths")]
    pub path: PathBuf,
    /// Index into the label names, when the folder layout defines labels.
    pub label: Option<usize>,
    /// Size and modification time when scanned (not serialised: only this process uses it).
    #[serde(skip)]
    pub stamp: FileStamp,
}

/// The result of walking a folder, before any decoding.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Scan {
    /// The folder that was walked, as given.
    #[serde(with = "crate::support::paths")]
    pub root: PathBuf,
    /// Every image file found, sorted by path.
    pub entries: Vec<ImageEntry>,
    /// Sorted names of the first-level subfolders when they act as labels; empty otherwise.
    pub label_names: Vec<String>,
    /// Number of files per (lower-case) extension, unsupported formats included.
    pub formats: BTreeMap<String, usize>,
    /// Files in image formats that cannot be read here, with the reason.
    #[serde(default)]
    pub unsupported: Vec<SkippedFile>,
}

impl Scan {
    /// Camera raw files among the images (read through their embedded JPEG preview).
    pub fn raw_files(&self) -> usize {
        self.files_named(super::raw_preview::RAW_EXTENSIONS)
    }

    /// HEIC, HEIF and AVIF files among the images (read through libheif), by extension; 0 in a
    /// build without libheif, where they are skipped.
    pub fn heif_files(&self) -> usize {
        if cfg!(feature = "heic") {
            self.files_named(super::decode::heif::HEIF_EXTENSIONS)
        } else {
            0
        }
    }

    /// Files found with one of `extensions` (lower case).
    fn files_named(&self, extensions: &[&str]) -> usize {
        self.formats
            .iter()
            .filter(|(ext, _)| extensions.contains(&ext.as_str()))
            .map(|(_, count)| count)
            .sum()
    }

    /// Identity of the folder's content: the number of images and a digest of their paths
    /// (relative to the root), sizes and modification times, in scan order.
    pub fn fingerprint(&self) -> FolderFingerprint {
        FolderFingerprint::of(&self.root, &self.entries)
    }
}

impl FolderFingerprint {
    /// The fingerprint of `entries` found below `root` (see [`Scan::fingerprint`]).
    pub fn of(root: &Path, entries: &[ImageEntry]) -> Self {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for entry in entries {
            let relative = entry.path.strip_prefix(root).unwrap_or(&entry.path);
            let bytes = crate::support::paths::os_bytes(relative.as_os_str());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
            hasher.update(&entry.stamp.size.to_le_bytes());
            hasher.update(&entry.stamp.modified_ns.to_le_bytes());
        }
        Self {
            images: entries.len(),
            digest: format!("{:032x}", hasher.digest128()),
        }
    }
}

/// A key per image naming it by its path below `root`: the xxh3-64 of the path's bytes. A
/// method's per-instance rows (memory bank, instance classifier) are saved with these keys, so a
/// run resumed on a changed folder finds each image's row by its path. Two of a million paths
/// share a key with odds of about 1 in 37 million; such a pair would share one row's history.
pub fn instance_keys(root: &Path, entries: &[ImageEntry]) -> Vec<i64> {
    entries
        .iter()
        .map(|entry| {
            let relative = entry.path.strip_prefix(root).unwrap_or(&entry.path);
            // The key is a bit pattern; i64 is the integer type safetensors files carry.
            xxhash_rust::xxh3::xxh3_64(&crate::support::paths::os_bytes(relative.as_os_str()))
                as i64
        })
        .collect()
}

/// What a run records about its training folder, to tell on resume whether it changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct FolderFingerprint {
    /// Image files found.
    pub images: usize,
    /// xxh3-128 of every file's relative path, size and modification time, in scan order.
    pub digest: String,
}

/// Walk `root` recursively (following symbolic links but never around a loop; skipping hidden
/// files and folders, whose names start with '.'), keep files with an image extension
/// (case-insensitive), sorted by path for a deterministic order. Files in image formats that
/// cannot be decoded here (SVG, Photoshop, …) are listed in [`Scan::unsupported`].
///
/// Labels: if EVERY image lies inside a first-level subfolder and there are at least 2 such
/// subfolders, the first-level folder name is the label (`label_names` sorted); otherwise there
/// are no labels. Labels are only ever used for evaluation.
///
/// Subfolders that cannot be read are left out with a warning rather than failing the scan, so
/// one locked folder does not stop a run on everything else.
///
/// # Errors
/// [`DataError::NotADirectory`], [`DataError::Io`] if `root` itself cannot be read, and
/// [`DataError::NoImages`].
pub fn scan(root: &Path) -> Result<Scan, DataError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    let meta = fs::metadata(root).map_err(io_error(root))?;
    if !meta.is_dir() {
        return Err(DataError::NotADirectory(root.to_path_buf()));
    }

    let mut visited = HashSet::new();
    visited.insert(fs::canonicalize(root).map_err(io_error(root))?);
    let mut pending = vec![root.to_path_buf()];
    let mut files = Vec::new();
    let mut unsupported = Vec::new();
    let mut formats = BTreeMap::new();
    while let Some(dir) = pending.pop() {
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(source) if dir == root => return Err(io_error(root)(source)),
            Err(err) => {
                tracing::warn!("skipping folder {}: {err}", dir.display());
                continue;
            }
        };
        for item in listing {
            let item = match item {
                Ok(item) => item,
                Err(err) => {
                    tracing::warn!("skipping an entry of {}: {err}", dir.display());
                    continue;
                }
            };
            if item.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = item.path();
            // `fs::metadata` follows symbolic links, so a linked folder or image counts like a real one.
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(err) => {
                    tracing::warn!("skipping {}: {err}", path.display());
                    continue;
                }
            };
            if meta.is_dir() {
                match fs::canonicalize(&path) {
                    Ok(real) => {
                        if visited.insert(real) {
                            pending.push(path);
                        }
                    }
                    Err(err) => tracing::warn!("skipping folder {}: {err}", path.display()),
                }
            } else if meta.is_file() {
                let Some(ext) = lower_extension(&path) else {
                    continue;
                };
                if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                    *formats.entry(ext).or_insert(0) += 1;
                    files.push((path, FileStamp::of(&meta)));
                } else if let Some(reason) = unsupported_reason(&ext) {
                    *formats.entry(ext).or_insert(0) += 1;
                    unsupported.push(SkippedFile {
                        path,
                        reason: reason.to_owned(),
                    });
                }
            }
        }
    }
    if files.is_empty() {
        return Err(match unsupported.first() {
            Some(file) => DataError::Unreadable {
                path: file.path.clone(),
                reason: format!(
                    "{} (and no readable image in {})",
                    file.reason,
                    root.display()
                ),
            },
            None => DataError::NoImages(root.to_path_buf()),
        });
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    unsupported.sort_by(|a, b| a.path.cmp(&b.path));
    let (entries, label_names) = assign_labels(root, files);
    Ok(Scan {
        root: root.to_path_buf(),
        entries,
        label_names,
        formats,
        unsupported,
    })
}

/// The lower-case extension of `path`, when it has one that is text.
fn lower_extension(path: &Path) -> Option<String> {
    Some(path.extension()?.to_str()?.to_ascii_lowercase())
}

/// Why files with extension `ext` are skipped, if it is a known image format that is not read.
fn unsupported_reason(ext: &str) -> Option<&'static str> {
    UNSUPPORTED_FORMATS
        .iter()
        .find(|(extensions, _)| extensions.contains(&ext))
        .map(|&(_, reason)| reason)
}

/// Turns first-level folder names into labels when the layout is unambiguous (see [`scan`]).
fn assign_labels(root: &Path, files: Vec<(PathBuf, FileStamp)>) -> (Vec<ImageEntry>, Vec<String>) {
    let top_folders: Option<Vec<String>> = files
        .iter()
        .map(|(path, _)| {
            let mut parts = path.strip_prefix(root).ok()?.components();
            let first = parts.next()?;
            // An image directly in the root has nothing after its first component.
            parts.next()?;
            // The escaped text keeps every byte (a lossy name would merge two folders whose
            // names differ only in bytes that are not UTF-8).
            Some(crate::support::paths::to_text(Path::new(first.as_os_str())).into_owned())
        })
        .collect();
    let unlabeled = |files: Vec<(PathBuf, FileStamp)>| {
        let entries = files
            .into_iter()
            .map(|(path, stamp)| ImageEntry {
                path,
                label: None,
                stamp,
            })
            .collect();
        (entries, Vec::new())
    };
    let Some(folders) = top_folders else {
        return unlabeled(files);
    };
    let label_names: Vec<String> = folders
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // A single folder is just where the images happen to live, not a class.
    if label_names.len() < 2 {
        return unlabeled(files);
    }
    let entries = files
        .into_iter()
        .zip(&folders)
        .map(|((path, stamp), folder)| ImageEntry {
            path,
            label: label_names.binary_search(folder).ok(),
            stamp,
        })
        .collect();
    (entries, label_names)
}
