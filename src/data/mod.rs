//! Finding, decoding, validating and caching the images of a folder.
//!
//! [`scan`] walks a folder and lists its image files (and, when the layout says so, their class
//! labels); [`load`] brings the folder's persistent cache ([`PixelCache`]) up to date, decoding
//! only files it has not seen (or that changed), and returns an [`ImageSet`] that reads images
//! from the cache on demand, so memory does not grow with the folder. Files that cannot be used
//! are never fatal on their own: they are collected in [`ImageSet::skipped`] with a reason the
//! user can act on.
//!
//! - [`scan`](mod@scan): walking the folder, labels, unsupported formats, file stamps;
//! - [`decode`]: one file to upright RGB pixels (DCT-domain JPEG scaling, limits, panics caught);
//! - [`cache`]: the on-disk cache per (folder, resolution).

mod cache;
mod decode;
mod raw_preview;
mod scan;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use rayon::prelude::*;

use crate::augment::{ChannelTotals, Normalization};
use crate::support::error_kind::ErrorKind;
pub use cache::{CachedFolder, PixelCache, WAITING, cached_side};
pub use scan::{FileStamp, FolderFingerprint, IMAGE_EXTENSIONS, ImageEntry, Scan, scan};
// The formats a camera writes, which the near-duplicates' choice of a copy to keep prefers.
pub(crate) use decode::heif::HEIF_EXTENSIONS;
pub(crate) use raw_preview::RAW_EXTENSIONS;

/// The version of libheif that HEIC, HEIF and AVIF files are read with; `None` in a build without
/// the `heic` feature, which skips them.
pub fn libheif_version() -> Option<String> {
    #[cfg(feature = "heic")]
    return Some(decode::heif::libheif_version());
    #[cfg(not(feature = "heic"))]
    None
}

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
    /// The preprocessed cache could not be written or read.
    #[error("the image cache {} failed: {reason}", .path.display())]
    Cache {
        /// The cache file or folder.
        path: PathBuf,
        /// What went wrong, in words.
        reason: String,
    },
    /// Clearing the cache deleted everything else but left these entries.
    #[error("{}", cache_left(*.freed, .left))]
    CacheLeft {
        /// Bytes freed by what was deleted.
        freed: u64,
        /// Each entry left, and why.
        left: Vec<(PathBuf, String)>,
    },
    /// Images cannot be resized to nothing.
    #[error("the image size (shorter side) must be at least 1 pixel, got {0}")]
    InvalidSize(u32),
    /// The caller asked to stop while images were being decoded.
    #[error("loading {} was cancelled", .0.display())]
    Canceled(PathBuf),
}

impl DataError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Cache { .. } | Self::CacheLeft { .. } => ErrorKind::Cache,
            Self::Canceled(_) => ErrorKind::Canceled,
            _ => ErrorKind::Data,
        }
    }
}

/// A file that could not be used, and why (shown to the user and written to the run folder).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, ts_rs::TS)]
pub struct SkippedFile {
    /// The file.
    #[serde(with = "crate::support::paths")]
    #[ts(type = "string")]
    pub path: PathBuf,
    /// What went wrong, in words.
    pub reason: String,
}

/// Images that can be read one at a time, in any order: an [`ImageSet`] (from the cache), a slice
/// of decoded images, or a [`Subset`] of either.
pub trait ImageSource: Sync {
    /// Number of images.
    fn image_count(&self) -> usize;
    /// Image `index`, borrowed where it is already in memory.
    ///
    /// # Errors
    /// [`DataError::Cache`] when the cache cannot be read.
    fn image(&self, index: usize) -> Result<Cow<'_, RgbImage>, DataError>;
}

impl ImageSource for [RgbImage] {
    fn image_count(&self) -> usize {
        self.len()
    }
    fn image(&self, index: usize) -> Result<Cow<'_, RgbImage>, DataError> {
        Ok(Cow::Borrowed(&self[index]))
    }
}

/// The images of `source` at `indices`, in that order.
pub struct Subset<'a, S: ImageSource + ?Sized> {
    /// Where the images come from.
    pub source: &'a S,
    /// Which of them, in order.
    pub indices: &'a [usize],
}

impl<S: ImageSource + ?Sized> ImageSource for Subset<'_, S> {
    fn image_count(&self) -> usize {
        self.indices.len()
    }
    fn image(&self, index: usize) -> Result<Cow<'_, RgbImage>, DataError> {
        self.source.image(self.indices[index])
    }
}

/// The usable images of a folder, read from its cache when needed. `entries[i]` describes image
/// `i`. Cloning shares the pixels.
#[derive(Clone)]
pub struct ImageSet {
    /// The folder the images came from.
    pub root: PathBuf,
    /// The files that decoded, in scan order.
    pub entries: Vec<ImageEntry>,
    /// Label names from the scan (empty when there are no labels).
    pub label_names: Vec<String>,
    /// The files that could not be used, and why.
    pub skipped: Vec<SkippedFile>,
    /// Number of files per extension found by the scan (skipped files included).
    pub formats: BTreeMap<String, usize>,
    /// Files decoded by this load; the others came from the cache.
    pub decoded: usize,
    /// Of those, files the cache had recorded as skipped by an older release's decoder, tried
    /// again since this one may read them.
    pub retried: usize,
    /// The scanned folder's identity (see [`Scan::fingerprint`]).
    pub fingerprint: FolderFingerprint,
    pixels: Pixels,
    /// Width and height of each file's own image, before the cache shrank it.
    originals: Arc<Vec<(u32, u32)>>,
    totals: ChannelTotals,
}

#[derive(Clone)]
enum Pixels {
    Memory(Arc<Vec<RgbImage>>),
    Cache {
        store: Arc<cache::Store>,
        locations: Arc<Vec<cache::Location>>,
    },
}

/// Summarises instead of dumping every entry.
impl std::fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSet")
            .field("root", &self.root)
            .field("images", &self.len())
            .field("label_names", &self.label_names)
            .field("skipped", &self.skipped)
            .field("formats", &self.formats)
            .finish_non_exhaustive()
    }
}

impl ImageSet {
    /// A set of images already in memory (generated data, tests); `entries[i]` describes
    /// `images[i]`.
    ///
    /// # Panics
    /// If the two lengths differ.
    pub fn in_memory(
        root: PathBuf,
        entries: Vec<ImageEntry>,
        images: Vec<RgbImage>,
        label_names: Vec<String>,
    ) -> Self {
        assert_eq!(entries.len(), images.len(), "one entry per image");
        let totals = ChannelTotals::of(&images);
        let fingerprint = FolderFingerprint::of(&root, &entries);
        let originals = images.iter().map(RgbImage::dimensions).collect();
        let mut formats = BTreeMap::new();
        formats.insert("memory".to_owned(), images.len());
        Self {
            root,
            entries,
            label_names,
            skipped: Vec::new(),
            formats,
            decoded: images.len(),
            retried: 0,
            fingerprint,
            pixels: Pixels::Memory(Arc::new(images)),
            originals: Arc::new(originals),
            totals,
        }
    }

    /// Number of usable images.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no usable images.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key of each image's per-instance rows (see [`scan::instance_keys`]).
    pub fn instance_keys(&self) -> Vec<i64> {
        scan::instance_keys(&self.root, &self.entries)
    }

    /// Labels of all entries when every entry has one.
    pub fn labels(&self) -> Option<Vec<usize>> {
        self.entries.iter().map(|entry| entry.label).collect()
    }

    /// The input normalisation of these images (channel mean and std over every pixel), from
    /// sums the cache keeps, so it costs no pass over the pixels.
    pub fn normalization(&self) -> Normalization {
        Normalization::from_totals(&self.totals)
    }

    /// Width and height of image `index`'s file (upright), before the cache shrank it.
    pub fn original_size(&self, index: usize) -> (u32, u32) {
        self.originals[index]
    }

    /// Images `indices`, read in parallel.
    ///
    /// # Errors
    /// [`DataError::Cache`] when the cache cannot be read.
    pub fn images(&self, indices: &[usize]) -> Result<Vec<RgbImage>, DataError> {
        indices
            .par_iter()
            .map(|&i| self.image(i).map(Cow::into_owned))
            .collect()
    }
}

impl ImageSource for ImageSet {
    fn image_count(&self) -> usize {
        self.len()
    }

    fn image(&self, index: usize) -> Result<Cow<'_, RgbImage>, DataError> {
        match &self.pixels {
            Pixels::Memory(images) => Ok(Cow::Borrowed(&images[index])),
            Pixels::Cache { store, locations } => store.read(&locations[index]).map(Cow::Owned),
        }
    }
}

/// Brings the cache of `scan`'s folder for training at `image_size` up to date (decoding, in
/// parallel, only the files it does not hold with the same size and modification time) and opens
/// it. Images are cached upright (EXIF orientation), in RGB, transparency over white, with the
/// shorter side at [`cached_side`]`(image_size)` or their own if smaller, shrunk with the
/// PIL-exact resampler torchvision uses.
///
/// Files that fail to open or decode, exceed the size limits, or decode to an empty image go to
/// [`ImageSet::skipped`] with the reason, as do files in formats read nowhere here (SVG, Photoshop,
/// …). `progress(done, total)` is called now and then, last with `done == total`, and with
/// `done ==` [`WAITING`] while another fill of the same folder holds it; when it returns `false`
/// the fill stops (what was decoded stays cached) and the load ends with
/// [`DataError::Cancelled`] (100 000 photos take minutes, and a person must be able to change
/// their mind). Fewer than two usable images is [`DataError::TooFewImages`].
///
/// # Errors
/// [`DataError::TooFewImages`], [`DataError::Cancelled`], [`DataError::Cache`] when the cache
/// cannot be written, and [`DataError::InvalidSize`] when `image_size` is 0.
pub fn load(
    scan: &Scan,
    cache: &PixelCache,
    image_size: u32,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<ImageSet, DataError> {
    if image_size == 0 {
        return Err(DataError::InvalidSize(image_size));
    }
    let filled = cache::fill(cache, scan, cached_side(image_size), progress)?;
    let mut entries = Vec::with_capacity(scan.entries.len());
    let mut locations = Vec::with_capacity(scan.entries.len());
    let mut originals = Vec::with_capacity(scan.entries.len());
    let mut skipped = scan.unsupported.clone();
    let mut totals = ChannelTotals::default();
    for (entry, result) in scan.entries.iter().zip(filled.results) {
        match result {
            Ok(image) => {
                entries.push(entry.clone());
                locations.push(image.location);
                originals.push(image.original);
                totals = totals.merge(image.totals);
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
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    if entries.len() < MIN_IMAGES {
        return Err(DataError::TooFewImages {
            dir: scan.root.clone(),
            usable: entries.len(),
            skipped,
        });
    }
    Ok(ImageSet {
        root: scan.root.clone(),
        entries,
        label_names: scan.label_names.clone(),
        skipped,
        formats: scan.formats.clone(),
        decoded: filled.decoded,
        retried: filled.retried,
        fingerprint: scan.fingerprint(),
        pixels: Pixels::Cache {
            store: filled.store,
            locations: Arc::new(locations),
        },
        originals: Arc::new(originals),
        totals,
    })
}

/// Convenience: [`scan`] + [`load`].
///
/// # Errors
/// Those of [`scan`] and [`load`].
pub fn load_folder(
    root: &Path,
    cache: &PixelCache,
    image_size: u32,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<ImageSet, DataError> {
    load(&scan(root)?, cache, image_size, progress)
}

/// Decodes a single image file (for querying with an outside image) as [`load`] caches it for
/// `image_size`; errors name the file.
///
/// # Errors
/// [`DataError::Unreadable`] with the reason, and [`DataError::InvalidSize`] when `image_size`
/// is 0.
pub fn load_image(path: &Path, image_size: u32) -> Result<RgbImage, DataError> {
    if image_size == 0 {
        return Err(DataError::InvalidSize(image_size));
    }
    decode_file(path, cached_side(image_size))
}

fn decode_file(path: &Path, short_side: u32) -> Result<RgbImage, DataError> {
    decode::decode(path, short_side)
        .map(|decoded| decoded.image)
        .map_err(|reason| DataError::Unreadable {
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
    if side == 0 {
        return Err(DataError::InvalidSize(side));
    }
    let image = decode_file(path, side)?;
    let (width, height) = image.dimensions();
    let shorter = width.min(height);
    let square = image::imageops::crop_imm(
        &image,
        (width - shorter) / 2,
        (height - shorter) / 2,
        shorter,
        shorter,
    )
    .to_image();
    // A file smaller than the thumbnail is enlarged to fill it, like any other.
    let square = if shorter == side {
        square
    } else {
        image::imageops::resize(&square, side, side, image::imageops::FilterType::Triangle)
    };
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(&square)
        .map_err(|error| DataError::Unreadable {
            path: path.to_path_buf(),
            reason: format!("cannot encode its thumbnail: {error}"),
        })?;
    Ok(bytes)
}

/// ".jpg, .jpeg, …" for messages.
fn extension_list() -> String {
    IMAGE_EXTENSIONS
        .iter()
        .map(|ext| format!(".{ext}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message of [`DataError::CacheLeft`]: what was freed, then every entry left and why (there
/// are few: one per folder being filled).
fn cache_left(freed: u64, left: &[(PathBuf, String)]) -> String {
    let entries: Vec<String> = left
        .iter()
        .map(|(path, reason)| format!("{}: {reason}", path.display()))
        .collect();
    format!(
        "cleared the image cache ({:.1} MiB freed) except {} {}: {}",
        freed as f64 / (1 << 20) as f64,
        left.len(),
        if left.len() == 1 { "entry" } else { "entries" },
        entries.join("; ")
    )
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
    use image::{DynamicImage, GrayAlphaImage, GrayImage, ImageBuffer, Rgb, RgbaImage};
    use std::fs;

    fn no_progress(_: usize, _: usize) -> bool {
        true
    }

    /// A cache inside the test folder; hidden, so the scan does not see it.
    fn cache_in(dir: &Path) -> PixelCache {
        PixelCache::at(dir.join(".cache"))
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
        let set = load_folder(dir.path(), &cache_in(dir.path()), 8, &no_progress).unwrap();
        assert!(set.skipped.is_empty(), "{:?}", set.skipped);
        assert_eq!(set.len(), 6);
        // Cached at 1.5× the training size: 24×16 becomes 18×12.
        assert!((0..set.len()).all(|i| set.image(i).unwrap().dimensions() == (18, 12)));
        let formats: Vec<&str> = set.formats.keys().map(String::as_str).collect();
        assert_eq!(formats, ["bmp", "gif", "jpg", "png", "tiff", "webp"]);
        assert!(set.formats.values().all(|&count| count == 1));
    }

    #[test]
    fn every_color_type_becomes_rgb8() {
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

        let image = decode_file(&path, 10).unwrap();
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
    fn decoding_shrinks_the_shorter_side_and_keeps_the_aspect() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ((100, 50), 20, (40, 20)),
            ((30, 90), 10, (10, 30)),
            // Never enlarged: later resizes work from the real pixels.
            ((5, 10), 20, (5, 10)),
            ((33, 33), 33, (33, 33)),
        ];
        for ((width, height), short_side, expected) in cases {
            let path = save(
                dir.path(),
                &format!("{width}x{height}.png"),
                ramp(width, height),
            );
            assert_eq!(
                decode_file(&path, short_side).unwrap().dimensions(),
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

        let set = load_folder(dir.path(), &cache_in(dir.path()), 8, &no_progress).unwrap();
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
        assert!(!decode::jpeg_is_truncated(&jpeg));
        assert!(!decode::jpeg_is_truncated(&with_exif_orientation_6(&jpeg)));
        // Data after the end marker (motion photos append a video) is not truncation.
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(&[0x12; 100]);
        assert!(!decode::jpeg_is_truncated(&trailing));
        assert!(decode::jpeg_is_truncated(&jpeg[..jpeg.len() - 2]));
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
        let set = load(&first, &cache_in(dir.path()), 4, &no_progress).unwrap();
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
        let set = load(&scan, &cache_in(dir.path()), 4, &no_progress).unwrap();
        assert_eq!(set.labels(), Some(vec![0, 1, 1]));
    }

    #[cfg(unix)]
    #[test]
    fn label_folders_whose_names_differ_only_in_bytes_that_are_not_utf8_stay_apart() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        // "café" in Latin-1 and "cafè" in Latin-1: both decode lossily to "caf\u{FFFD}".
        for folder in [b"caf\xe9".as_slice(), b"caf\xe8".as_slice()] {
            let folder = dir.path().join(std::ffi::OsStr::from_bytes(folder));
            std::fs::create_dir(&folder).unwrap();
            ramp(4, 4).save(folder.join("a.png")).unwrap();
        }
        let scan = scan(dir.path()).unwrap();
        assert_eq!(scan.label_names.len(), 2, "{:?}", scan.label_names);
        let labels: Vec<_> = scan.entries.iter().map(|e| e.label).collect();
        assert_eq!(labels, [Some(0), Some(1)]);
        // Each name converts back to its folder's exact bytes.
        for (entry, label) in scan.entries.iter().zip(labels) {
            let folder = entry.path.parent().unwrap().file_name().unwrap();
            let name = crate::support::paths::from_text(&scan.label_names[label.unwrap()]);
            assert_eq!(name.as_os_str(), folder);
        }
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
            assert_eq!(
                load(&scan, &cache_in(dir.path()), 4, &no_progress)
                    .unwrap()
                    .labels(),
                None
            );
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
        let err = load_folder(dir.path(), &cache_in(dir.path()), 8, &no_progress).unwrap_err();
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
        load_folder(dir.path(), &cache_in(dir.path()), 4, &|done, total| {
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
        let err =
            load_folder(dir.path(), &cache_in(dir.path()), 4, &|done, _| done < 10).unwrap_err();
        assert!(matches!(err, DataError::Canceled(_)), "{err}");
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
