//! Finding, decoding, validating and caching the images of a folder.
//!
//! [`scan`] walks a folder and lists its image files (and, when the layout says so, their class
//! labels); [`load`] decodes them once, in parallel, into small RGB images that stay in memory for
//! the whole training run. Files that cannot be used are never fatal on their own: they are
//! collected in [`ImageSet::skipped`] with a reason the user can act on.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use rayon::prelude::*;

/// File extensions (lower case, without the dot) that are treated as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

/// Largest width or height accepted, both for a decoded file and for a resized image.
const MAX_SIDE: u32 = 16_384;
/// Largest amount of memory a single decode may claim; with one decode per core this bounds the
/// peak memory of [`load`] even when a folder holds a decompression bomb.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;
/// Each file is read whole into memory before decoding, so bigger ones are refused unread.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// Training contrasts every image with the others, so it needs at least two.
const MIN_IMAGES: usize = 2;

/// Why a folder or file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The path given as the image folder is a file (or something else that is not a folder).
    #[error("{} is not a folder; pass the folder that contains your images", .0.display())]
    NotADirectory(PathBuf),
    /// The file system refused to give something up (missing folder, no permission, …).
    #[error("cannot read {}: {source}; check that it exists and that you may read it", .path.display())]
    Io {
        /// The file or folder that could not be read.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The folder (and its subfolders) held no file with an image extension.
    #[error(
        "no images found in {} (looked for {} files in it and its subfolders; hidden files are ignored)",
        .0.display(),
        extension_list()
    )]
    NoImages(PathBuf),
    /// Too few of the folder's images could be decoded to train on.
    #[error(
        "only {usable} usable {} in {}; training needs at least {MIN_IMAGES}{}",
        if *.usable == 1 { "image" } else { "images" },
        .dir.display(),
        skipped_summary(.skipped)
    )]
    TooFewImages {
        /// The folder that was loaded.
        dir: PathBuf,
        /// How many images decoded successfully.
        usable: usize,
        /// The files that could not be used, and why.
        skipped: Vec<SkippedFile>,
    },
    /// A single image file could not be opened or decoded.
    #[error("cannot use image {}: {reason}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong, in words.
        reason: String,
    },
    /// Images cannot be resized to nothing.
    #[error("the image size (shorter side) must be at least 1 pixel, got {0}")]
    InvalidSize(u32),
    /// The caller asked to stop while images were being decoded.
    #[error("loading {} was cancelled", .0.display())]
    Cancelled(PathBuf),
}

/// One image file found by the scan. `label` is the index of its first-level subfolder in
/// `Scan::label_names`, if labels were detected.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ImageEntry {
    /// Path of the file: the scanned root joined with the file's path below it.
    pub path: PathBuf,
    /// Index into the label names, when the folder layout defines labels.
    pub label: Option<usize>,
}

/// The result of walking a folder, before any decoding.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Scan {
    /// The folder that was walked, as given.
    pub root: PathBuf,
    /// Every image file found, sorted by path.
    pub entries: Vec<ImageEntry>,
    /// Sorted names of the first-level subfolders when they act as labels; empty otherwise.
    pub label_names: Vec<String>,
    /// Number of files per (lower-case) extension.
    pub formats: BTreeMap<String, usize>,
}

/// Walk `root` recursively (following symbolic links but never around a loop; skipping hidden
/// files and folders, whose names start with '.'), keep files with an image extension
/// (case-insensitive), sorted by path for a deterministic order.
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
            } else if meta.is_file() && image_extension(&path).is_some() {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        return Err(DataError::NoImages(root.to_path_buf()));
    }
    files.sort();

    let mut formats = BTreeMap::new();
    for path in &files {
        if let Some(ext) = image_extension(path) {
            *formats.entry(ext).or_insert(0) += 1;
        }
    }
    let (entries, label_names) = assign_labels(root, files);
    Ok(Scan {
        root: root.to_path_buf(),
        entries,
        label_names,
        formats,
    })
}

/// The lower-case extension of `path` if it is one of [`IMAGE_EXTENSIONS`].
fn image_extension(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    IMAGE_EXTENSIONS.contains(&ext.as_str()).then_some(ext)
}

/// Turns first-level folder names into labels when the layout is unambiguous (see [`scan`]).
fn assign_labels(root: &Path, files: Vec<PathBuf>) -> (Vec<ImageEntry>, Vec<String>) {
    let top_folders: Option<Vec<String>> = files
        .iter()
        .map(|path| {
            let mut parts = path.strip_prefix(root).ok()?.components();
            let first = parts.next()?;
            // An image directly in the root has nothing after its first component.
            parts.next()?;
            Some(first.as_os_str().to_string_lossy().into_owned())
        })
        .collect();
    let unlabelled = |files: Vec<PathBuf>| {
        let entries = files
            .into_iter()
            .map(|path| ImageEntry { path, label: None })
            .collect();
        (entries, Vec::new())
    };
    let Some(folders) = top_folders else {
        return unlabelled(files);
    };
    let label_names: Vec<String> = folders
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // A single folder is just where the images happen to live, not a class.
    if label_names.len() < 2 {
        return unlabelled(files);
    }
    let entries = files
        .into_iter()
        .zip(&folders)
        .map(|(path, folder)| ImageEntry {
            path,
            label: label_names.binary_search(folder).ok(),
        })
        .collect();
    (entries, label_names)
}

/// A file that could not be used, and why (shown to the user and written to the run folder).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// What went wrong, in words.
    pub reason: String,
}

/// Decoded images, resized for training and kept in memory so epochs after the first never
/// decode again. `entries[i]` describes `images[i]`.
#[derive(Clone)]
pub struct ImageSet {
    /// The folder the images came from.
    pub root: PathBuf,
    /// The files that decoded, in scan order.
    pub entries: Vec<ImageEntry>,
    /// The decoded, resized images.
    pub images: Vec<RgbImage>,
    /// Label names from the scan (empty when there are no labels).
    pub label_names: Vec<String>,
    /// The files that could not be used, and why.
    pub skipped: Vec<SkippedFile>,
    /// Number of files per extension found by the scan (skipped files included).
    pub formats: BTreeMap<String, usize>,
}

/// Summarises instead of dumping every pixel.
impl std::fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSet")
            .field("root", &self.root)
            .field("images", &self.images.len())
            .field("label_names", &self.label_names)
            .field("skipped", &self.skipped)
            .field("formats", &self.formats)
            .finish_non_exhaustive()
    }
}

impl ImageSet {
    /// Number of usable images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are no usable images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Labels of all entries when every entry has one.
    pub fn labels(&self) -> Option<Vec<usize>> {
        self.entries.iter().map(|entry| entry.label).collect()
    }
}

/// Decode every entry of `scan` in parallel, honouring EXIF orientation, converting any colour
/// type to RGB8 and resizing (triangle filter, aspect kept) so the SHORTER side is exactly
/// `short_side`; small images are upscaled.
///
/// Transparency is composited over white: transparent pixels often hold arbitrary (frequently
/// black) colour values that no viewer shows, and white is what most viewers show behind them.
///
/// Files that fail to open or decode, exceed the size limits, or decode to an empty image go to
/// [`ImageSet::skipped`] with the reason. `progress(done, total)` is called now and then from any
/// thread, and once more from the calling thread with `done == total` at the end; when it returns
/// `false` the remaining files are not decoded and the load ends with [`DataError::Cancelled`]
/// (100 000 photos take minutes, and a person must be able to change their mind). Fewer than two
/// usable images is [`DataError::TooFewImages`].
///
/// # Errors
/// [`DataError::TooFewImages`], [`DataError::Cancelled`], and [`DataError::InvalidSize`] when
/// `short_side` is 0.
pub fn load(
    scan: &Scan,
    short_side: u32,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<ImageSet, DataError> {
    if short_side == 0 {
        return Err(DataError::InvalidSize(short_side));
    }
    let total = scan.entries.len();
    // About a hundred updates are plenty for a progress bar and cost nothing next to decoding.
    let step = (total / 100).max(1);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let decoded: Vec<Result<RgbImage, String>> = scan
        .entries
        .par_iter()
        .map(|entry| {
            if stop.load(Ordering::Relaxed) {
                return Err(String::new());
            }
            let result = decode(&entry.path, short_side);
            let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
            if finished.is_multiple_of(step) && finished < total && !progress(finished, total) {
                stop.store(true, Ordering::Relaxed);
            }
            result
        })
        .collect();
    if stop.load(Ordering::Relaxed) || !progress(total, total) {
        return Err(DataError::Cancelled(scan.root.clone()));
    }

    let mut entries = Vec::with_capacity(total);
    let mut images = Vec::with_capacity(total);
    let mut skipped = Vec::new();
    for (entry, result) in scan.entries.iter().zip(decoded) {
        match result {
            Ok(image) => {
                entries.push(entry.clone());
                images.push(image);
            }
            Err(reason) => {
                tracing::debug!("skipping {}: {reason}", entry.path.display());
                skipped.push(SkippedFile {
                    path: entry.path.clone(),
                    reason,
                });
            }
        }
    }
    if images.len() < MIN_IMAGES {
        return Err(DataError::TooFewImages {
            dir: scan.root.clone(),
            usable: images.len(),
            skipped,
        });
    }
    Ok(ImageSet {
        root: scan.root.clone(),
        entries,
        images,
        label_names: scan.label_names.clone(),
        skipped,
        formats: scan.formats.clone(),
    })
}

/// Convenience: [`scan`] + [`load`].
///
/// # Errors
/// Those of [`scan`] and [`load`].
pub fn load_folder(
    root: &Path,
    short_side: u32,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<ImageSet, DataError> {
    load(&scan(root)?, short_side, progress)
}

/// Decode a single image file (for querying with an external image) with the same conversion as
/// [`load`]; errors name the file.
///
/// # Errors
/// [`DataError::Unreadable`] with the reason, and [`DataError::InvalidSize`] when `short_side`
/// is 0.
pub fn load_image(path: &Path, short_side: u32) -> Result<RgbImage, DataError> {
    if short_side == 0 {
        return Err(DataError::InvalidSize(short_side));
    }
    decode(path, short_side).map_err(|reason| DataError::Unreadable {
        path: path.to_path_buf(),
        reason,
    })
}

/// A square `side`×`side` JPEG of the centre of `path`, for browsing large folders: the same
/// decoding as [`load`] (EXIF orientation, transparency over white), so what a person sees is what
/// training sees.
///
/// # Errors
/// As [`load_image`].
pub fn thumbnail_jpeg(path: &Path, side: u32) -> Result<Vec<u8>, DataError> {
    let image = load_image(path, side)?;
    let (width, height) = image.dimensions();
    let square = image::imageops::crop_imm(
        &image,
        (width - side.min(width)) / 2,
        (height - side.min(height)) / 2,
        side.min(width),
        side.min(height),
    )
    .to_image();
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(&square)
        .map_err(|error| DataError::Unreadable {
            path: path.to_path_buf(),
            reason: format!("cannot encode its thumbnail: {error}"),
        })?;
    Ok(bytes)
}

/// Decodes, orients, flattens and resizes one file; the error is a reason for the user.
fn decode(path: &Path, short_side: u32) -> Result<RgbImage, String> {
    let size = fs::metadata(path).map_err(|err| err.to_string())?.len();
    if size == 0 {
        return Err("the file is empty (0 bytes)".to_owned());
    }
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "the file is {} MiB, more than the {} MiB limit",
            size >> 20,
            MAX_FILE_BYTES >> 20
        ));
    }
    let bytes = fs::read(path).map_err(|err| err.to_string())?;
    if bytes.starts_with(&JPEG_SOI) && jpeg_is_truncated(&bytes) {
        return Err(
            "the JPEG data stops before its end marker; the file is probably truncated (an interrupted copy or download?)"
                .to_owned(),
        );
    }
    let mut reader = ImageReader::new(Cursor::new(bytes));
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    // The content decides over the extension: renamed files are common.
    let mut reader = reader
        .with_guessed_format()
        .map_err(|err| err.to_string())?;
    reader.limits(decode_limits());
    let format = reader.format();
    let explain = |err: image::ImageError| describe(&err, format);
    let mut decoder = reader.into_decoder().map_err(explain)?;
    // Broken metadata should not cost an otherwise good image: treat it as "no rotation".
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(explain)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err(format!(
            "it decodes to an empty {}×{} image",
            image.width(),
            image.height()
        ));
    }
    resize_short_side(flatten_over_white(image), short_side)
}

/// Start-of-image marker that opens every JPEG file.
const JPEG_SOI: [u8; 2] = [0xFF, 0xD8];

/// Whether JPEG `bytes` stop before their end-of-image marker. The JPEG decoder behind `image`
/// fills the missing part of a cut-off file with grey instead of failing, and such half-grey
/// photos (from interrupted copies and downloads, common in real folders) would quietly pollute
/// training.
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    const START_OF_SCAN: u8 = 0xDA;
    const END_OF_IMAGE: u8 = 0xD9;
    let mut pos = JPEG_SOI.len();
    // Hop over the length-prefixed segments up to the first scan: metadata before it (an EXIF
    // thumbnail, say) may hold an end marker of its own, while the coded data after it cannot.
    while let [0xFF, marker, len_hi, len_lo, ..] = bytes[pos.min(bytes.len())..] {
        match marker {
            // Fill byte before a marker.
            0xFF => pos += 1,
            END_OF_IMAGE => return false,
            _ => {
                pos += 2 + usize::from(u16::from_be_bytes([len_hi, len_lo]));
                if marker == START_OF_SCAN {
                    let rest = bytes.get(pos..).unwrap_or_default();
                    return !rest.windows(2).any(|pair| pair == [0xFF, END_OF_IMAGE]);
                }
            }
        }
    }
    // Cut inside the header, or laid out oddly: the decoder gives the better message.
    false
}

fn decode_limits() -> Limits {
    // `Limits` is non-exhaustive, so it can only be built by changing a default.
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// The decoder's message, with context where it alone would puzzle the user.
fn describe(err: &image::ImageError, format: Option<ImageFormat>) -> String {
    match err {
        image::ImageError::IoError(_) => format!(
            "{err} while reading it as {} (the file may be cut short, or not really an image)",
            format.map_or("an image".to_owned(), |format| format!("{format:?}")
                .to_uppercase())
        ),
        image::ImageError::Limits(_) => format!(
            "{err} (images may be at most {MAX_SIDE}×{MAX_SIDE} pixels and need at most {} MiB to decode)",
            MAX_DECODE_BYTES >> 20
        ),
        _ => err.to_string(),
    }
}

/// Converts any colour type to RGB8, compositing transparency over white.
fn flatten_over_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over_white = |c: u8| {
            let (c, a) = (u32::from(c), u32::from(a));
            // Rounded integer blend; the result is at most 255, so the cast is lossless.
            ((c * a + 255 * (255 - a) + 127) / 255) as u8
        };
        image::Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

/// Resizes so the shorter side is exactly `short_side`, keeping the aspect ratio.
fn resize_short_side(image: RgbImage, short_side: u32) -> Result<RgbImage, String> {
    let (width, height) = image.dimensions();
    let short = width.min(height);
    if short == short_side {
        return Ok(image);
    }
    let long = width.max(height);
    let scaled_long = (f64::from(long) * f64::from(short_side) / f64::from(short)).round();
    if scaled_long > f64::from(MAX_SIDE) {
        return Err(format!(
            "its {width}×{height} shape is too elongated: with its shorter side at {short_side} px its longer side would exceed {MAX_SIDE} px"
        ));
    }
    // In range by the check above, and at least `short_side` because `long >= short`.
    let scaled_long = scaled_long as u32;
    let (new_width, new_height) = if width <= height {
        (short_side, scaled_long)
    } else {
        (scaled_long, short_side)
    };
    Ok(image::imageops::resize(
        &image,
        new_width,
        new_height,
        FilterType::Triangle,
    ))
}

/// ".jpg, .jpeg, …" for messages.
fn extension_list() -> String {
    IMAGE_EXTENSIONS
        .iter()
        .map(|ext| format!(".{ext}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// " (3 files skipped: a.jpg: reason; …)" for [`DataError::TooFewImages`], empty when none were.
fn skipped_summary(skipped: &[SkippedFile]) -> String {
    // Enough to spot a pattern (all HEIC renamed, all truncated, …) without flooding the terminal.
    const SHOWN: usize = 3;
    if skipped.is_empty() {
        return String::new();
    }
    let mut summary = format!(
        " ({} {} skipped: ",
        skipped.len(),
        if skipped.len() == 1 { "file" } else { "files" }
    );
    let shown: Vec<String> = skipped
        .iter()
        .take(SHOWN)
        .map(|file| format!("{}: {}", file.path.display(), file.reason))
        .collect();
    summary.push_str(&shown.join("; "));
    if skipped.len() > SHOWN {
        summary += &format!("; and {} more", skipped.len() - SHOWN);
    }
    summary.push(')');
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayAlphaImage, GrayImage, ImageBuffer, Rgb, RgbaImage};

    fn no_progress(_: usize, _: usize) -> bool {
        true
    }

    /// A smooth colour ramp, so every format has real content to encode.
    fn ramp(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
        })
    }

    /// Saves `image` at `dir/name` (format from the extension), creating folders as needed.
    fn save(dir: &Path, name: &str, image: impl Into<DynamicImage>) -> PathBuf {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        image.into().save(&path).unwrap();
        path
    }

    fn jpeg_bytes(image: &RgbImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
            .encode_image(image)
            .unwrap();
        bytes
    }

    /// A JPEG whose EXIF block (APP1, spliced in right after SOI) says "rotate 90° clockwise".
    fn with_exif_orientation_6(jpeg: &[u8]) -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"II*\0"); // little-endian TIFF header
        tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
        tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes()); // one value
        tiff.extend_from_slice(&6u16.to_le_bytes()); // rotate 90° clockwise
        tiff.extend_from_slice(&[0, 0]); // value padding
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(&tiff);
        let segment_len = u16::try_from(payload.len() + 2).unwrap();
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&segment_len.to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    fn skipped_names(set: &ImageSet) -> Vec<String> {
        set.skipped
            .iter()
            .map(|file| {
                file.path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn every_supported_format_loads() {
        let dir = tempfile::tempdir().unwrap();
        for ext in ["jpg", "png", "webp", "bmp", "gif", "tiff"] {
            save(dir.path(), &format!("image.{ext}"), ramp(24, 16));
        }
        let set = load_folder(dir.path(), 8, &no_progress).unwrap();
        assert!(set.skipped.is_empty(), "{:?}", set.skipped);
        assert_eq!(set.len(), 6);
        assert!(set.images.iter().all(|image| image.dimensions() == (12, 8)));
        let formats: Vec<&str> = set.formats.keys().map(String::as_str).collect();
        assert_eq!(formats, ["bmp", "gif", "jpg", "png", "tiff", "webp"]);
        assert!(set.formats.values().all(|&count| count == 1));
    }

    #[test]
    fn every_colour_type_becomes_rgb8() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let pixel = |name: &str| load_image(&path(name), 4).unwrap().get_pixel(0, 0).0;
        save(
            dir.path(),
            "grey.png",
            GrayImage::from_pixel(4, 4, [100].into()),
        );
        save(
            dir.path(),
            "grey-alpha.png",
            GrayAlphaImage::from_pixel(4, 4, [100, 0].into()),
        );
        save(
            dir.path(),
            "opaque.png",
            RgbaImage::from_pixel(4, 4, [10, 20, 30, 255].into()),
        );
        save(
            dir.path(),
            "clear.png",
            RgbaImage::from_pixel(4, 4, [0, 0, 0, 0].into()),
        );
        save(
            dir.path(),
            "half.png",
            RgbaImage::from_pixel(4, 4, [0, 0, 0, 128].into()),
        );
        let deep: ImageBuffer<Rgb<u16>, Vec<u16>> =
            ImageBuffer::from_pixel(4, 4, Rgb([65535, 0, 32896]));
        save(dir.path(), "deep.png", deep);
        // GIF stores a palette, so this also covers indexed colour.
        save(
            dir.path(),
            "palette.gif",
            RgbImage::from_pixel(4, 4, Rgb([200, 40, 40])),
        );

        assert_eq!(pixel("grey.png"), [100, 100, 100]);
        assert_eq!(
            pixel("grey-alpha.png"),
            [255, 255, 255],
            "transparent goes to white"
        );
        assert_eq!(pixel("opaque.png"), [10, 20, 30]);
        assert_eq!(pixel("clear.png"), [255, 255, 255]);
        assert_eq!(pixel("half.png"), [127, 127, 127]);
        assert_eq!(pixel("deep.png"), [255, 0, 128]);
        let [r, g, b] = pixel("palette.gif");
        assert!(
            r.abs_diff(200) <= 8 && g.abs_diff(40) <= 8 && b.abs_diff(40) <= 8,
            "{r} {g} {b}"
        );
    }

    #[test]
    fn exif_orientation_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        // Left half red, right half blue; turned 90° clockwise, red ends up on top.
        let landscape = RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let path = dir.path().join("rotated.jpg");
        fs::write(&path, with_exif_orientation_6(&jpeg_bytes(&landscape))).unwrap();

        let image = load_image(&path, 10).unwrap();
        assert_eq!(
            image.dimensions(),
            (10, 20),
            "a 40×20 image with orientation 6 is portrait"
        );
        let top = image.get_pixel(5, 2).0;
        let bottom = image.get_pixel(5, 17).0;
        assert!(top[0] > 200 && top[2] < 60, "top should be red: {top:?}");
        assert!(
            bottom[2] > 200 && bottom[0] < 60,
            "bottom should be blue: {bottom:?}"
        );
    }

    #[test]
    fn resize_sets_the_shorter_side_and_keeps_the_aspect() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ((100, 50), 20, (40, 20)),
            ((30, 90), 10, (10, 30)),
            ((5, 10), 20, (20, 40)),
            ((33, 33), 33, (33, 33)),
        ];
        for ((width, height), short_side, expected) in cases {
            let path = save(
                dir.path(),
                &format!("{width}x{height}.png"),
                ramp(width, height),
            );
            assert_eq!(
                load_image(&path, short_side).unwrap().dimensions(),
                expected
            );
        }
    }

    #[test]
    fn broken_files_are_skipped_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "good-1.png", ramp(16, 16));
        save(dir.path(), "good-2.jpg", ramp(16, 16));
        let jpeg = jpeg_bytes(&ramp(64, 64));
        fs::write(dir.path().join("cut.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
        fs::write(dir.path().join("notes.png"), "this is not a picture").unwrap();
        fs::write(dir.path().join("empty.jpg"), "").unwrap();
        // Claims 20000×20000 pixels: must be refused by the limits, not allocated.
        let mut bomb = b"BM".to_vec();
        bomb.extend_from_slice(&(54u32 + 3).to_le_bytes()); // file size (a lie)
        bomb.extend_from_slice(&[0; 4]);
        bomb.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
        bomb.extend_from_slice(&40u32.to_le_bytes()); // BITMAPINFOHEADER
        bomb.extend_from_slice(&20_000i32.to_le_bytes());
        bomb.extend_from_slice(&20_000i32.to_le_bytes());
        bomb.extend_from_slice(&1u16.to_le_bytes()); // planes
        bomb.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
        bomb.extend_from_slice(&[0; 24]); // no compression, defaults
        bomb.extend_from_slice(&[0; 3]);
        fs::write(dir.path().join("bomb.bmp"), bomb).unwrap();

        let set = load_folder(dir.path(), 8, &no_progress).unwrap();
        assert_eq!(set.len(), 2);
        let loaded: Vec<_> = set
            .entries
            .iter()
            .map(|e| e.path.file_name().unwrap())
            .collect();
        assert_eq!(loaded, ["good-1.png", "good-2.jpg"]);
        assert_eq!(
            skipped_names(&set),
            ["bomb.bmp", "cut.jpg", "empty.jpg", "notes.png"]
        );
        assert!(
            set.skipped
                .iter()
                .all(|file| file.path.starts_with(dir.path()) && !file.reason.is_empty())
        );
        let reason = |name: &str| {
            &set.skipped
                .iter()
                .find(|f| f.path.ends_with(name))
                .unwrap()
                .reason
        };
        assert!(
            reason("bomb.bmp").contains("16384"),
            "{}",
            reason("bomb.bmp")
        );
        assert!(
            reason("cut.jpg").contains("truncated"),
            "{}",
            reason("cut.jpg")
        );
        assert!(
            reason("empty.jpg").contains("empty"),
            "{}",
            reason("empty.jpg")
        );
    }

    #[test]
    fn jpeg_truncation_check_accepts_complete_files() {
        let jpeg = jpeg_bytes(&ramp(32, 32));
        assert!(!jpeg_is_truncated(&jpeg));
        assert!(!jpeg_is_truncated(&with_exif_orientation_6(&jpeg)));
        // Data after the end marker (motion photos append a video) is not truncation.
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(&[0x12; 100]);
        assert!(!jpeg_is_truncated(&trailing));
        assert!(jpeg_is_truncated(&jpeg[..jpeg.len() - 2]));
    }

    #[test]
    fn order_is_deterministic_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["m.png", "b/z.png", "a.png", "b/c.png", "k.png"] {
            save(dir.path(), name, ramp(4, 4));
        }
        let first = scan(dir.path()).unwrap();
        let second = scan(dir.path()).unwrap();
        assert_eq!(first.entries, second.entries);
        let names: Vec<_> = first
            .entries
            .iter()
            .map(|e| e.path.strip_prefix(dir.path()).unwrap())
            .collect();
        let expected: Vec<_> = ["a.png", "b/c.png", "b/z.png", "k.png", "m.png"]
            .iter()
            .map(Path::new)
            .collect();
        assert_eq!(names, expected);
        let set = load(&first, 4, &no_progress).unwrap();
        assert_eq!(set.entries, first.entries);
    }

    #[test]
    fn upper_case_extensions_count_and_hidden_files_do_not() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "A.JPG", ramp(4, 4));
        save(dir.path(), "b.Png", ramp(4, 4));
        save(dir.path(), ".hidden.png", ramp(4, 4));
        save(dir.path(), ".thumbnails/c.png", ramp(4, 4));
        fs::write(dir.path().join("readme.txt"), "not an image").unwrap();
        let scan = scan(dir.path()).unwrap();
        let names: Vec<_> = scan
            .entries
            .iter()
            .map(|e| e.path.file_name().unwrap())
            .collect();
        assert_eq!(names, ["A.JPG", "b.Png"]);
        assert_eq!(
            scan.formats,
            BTreeMap::from([("jpg".to_owned(), 1), ("png".to_owned(), 1)])
        );
    }

    #[test]
    fn first_level_folders_become_labels() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["dogs/b.png", "cats/a.png", "dogs/puppies/c.png"] {
            save(dir.path(), name, ramp(4, 4));
        }
        let scan = scan(dir.path()).unwrap();
        assert_eq!(scan.label_names, ["cats", "dogs"]);
        let labels: Vec<_> = scan.entries.iter().map(|e| e.label).collect();
        assert_eq!(labels, [Some(0), Some(1), Some(1)]);
        let set = load(&scan, 4, &no_progress).unwrap();
        assert_eq!(set.labels(), Some(vec![0, 1, 1]));
    }

    #[test]
    fn no_labels_unless_every_image_is_in_one_of_several_folders() {
        let with_root_image = tempfile::tempdir().unwrap();
        for name in ["cats/a.png", "dogs/b.png", "loose.png"] {
            save(with_root_image.path(), name, ramp(4, 4));
        }
        let one_folder = tempfile::tempdir().unwrap();
        for name in ["cats/a.png", "cats/b.png"] {
            save(one_folder.path(), name, ramp(4, 4));
        }
        for dir in [&with_root_image, &one_folder] {
            let scan = scan(dir.path()).unwrap();
            assert!(scan.label_names.is_empty());
            assert!(scan.entries.iter().all(|e| e.label.is_none()));
            assert_eq!(load(&scan, 4, &no_progress).unwrap().labels(), None);
        }
    }

    #[test]
    fn folder_without_images_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = scan(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::NoImages(_)));
        fs::write(dir.path().join("notes.txt"), "no pictures here").unwrap();
        let message = scan(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains(&dir.path().display().to_string()) && message.contains(".jpg"),
            "{message}"
        );
    }

    #[test]
    fn one_usable_image_is_too_few() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "good.png", ramp(8, 8));
        fs::write(dir.path().join("bad-1.jpg"), "garbage").unwrap();
        fs::write(dir.path().join("bad-2.png"), "garbage").unwrap();
        let err = load_folder(dir.path(), 8, &no_progress).unwrap_err();
        let message = err.to_string();
        let DataError::TooFewImages {
            dir: folder,
            usable,
            skipped,
        } = err
        else {
            panic!("expected TooFewImages, got {message}");
        };
        assert_eq!(
            (folder.as_path(), usable, skipped.len()),
            (dir.path(), 1, 2)
        );
        assert!(
            message.contains("only 1 usable image in") && message.contains("2 files skipped"),
            "{message}"
        );
        assert!(message.contains("bad-1.jpg"), "{message}");
    }

    #[test]
    fn a_file_or_missing_path_is_not_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = save(dir.path(), "a.png", ramp(4, 4));
        let err = scan(&file).unwrap_err();
        assert!(matches!(err, DataError::NotADirectory(_)));
        assert!(err.to_string().contains(&file.display().to_string()));
        let missing = dir.path().join("nowhere");
        let err = scan(&missing).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));
    }

    #[test]
    fn single_image_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.webp");
        fs::write(&path, "nope").unwrap();
        let message = load_image(&path, 8).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        let good = save(dir.path(), "good.png", ramp(4, 4));
        assert!(matches!(
            load_image(&good, 0),
            Err(DataError::InvalidSize(0))
        ));
    }

    #[test]
    fn progress_ends_with_the_total() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            save(dir.path(), &format!("{i}.png"), ramp(4, 4));
        }
        let calls = std::sync::Mutex::new(Vec::new());
        load_folder(dir.path(), 4, &|done, total| {
            calls.lock().unwrap().push((done, total));
            true
        })
        .unwrap();
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.last(), Some(&(5, 5)));
        assert!(calls.iter().all(|&(done, total)| total == 5 && done <= 5));
    }

    #[test]
    fn a_load_stops_when_progress_says_so() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300 {
            save(dir.path(), &format!("{i}.png"), ramp(4, 4));
        }
        let err = load_folder(dir.path(), 4, &|done, _| done < 10).unwrap_err();
        assert!(matches!(err, DataError::Cancelled(_)), "{err}");
    }

    #[test]
    fn thumbnails_are_square_jpegs_of_the_requested_side() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "wide.png", ramp(40, 20));
        let bytes = thumbnail_jpeg(&dir.path().join("wide.png"), 16).unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (16, 16));
        let err = thumbnail_jpeg(&dir.path().join("missing.png"), 16).unwrap_err();
        assert!(err.to_string().contains("missing.png"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), "sub/a.png", ramp(4, 4));
        save(dir.path(), "b.png", ramp(4, 4));
        std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).unwrap();
        let scan = scan(dir.path()).unwrap();
        assert_eq!(scan.entries.len(), 2);
    }
}
