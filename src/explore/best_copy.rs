//! Which copy of a near-duplicate group to keep: the one a careful person would pick by hand,
//! and why. Copies lose pixels (a resized export, a screenshot, a messenger's re-encode), leave
//! the camera's format (a raw or HEIC original becomes a JPEG or a PNG) and soften (every
//! re-encode and resize blurs a little), so the suggestion compares, in that order: pixels of the
//! file's own image, the format, sharpness, the file's size, its age (the original was there
//! first) and, where all tie, the path. Sharpness is read from the cached pixels, so it costs no
//! decoding; it is compared only between copies cached at the same size.

use std::cmp::Ordering;
use std::path::Path;

use image::RgbImage;

use crate::data::ImageEntry;

/// The copy of a group to keep and the first thing that set it above the next best.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct KeepSuggestion {
    /// The row to keep, one of the group's members.
    pub row: usize,
    /// Why, for a person: "most pixels (4032×3024)", "camera format (raw)", "sharpest", …
    pub reason: String,
}

/// What the suggestion weighs of one copy.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFacts {
    /// Width and height of the file's own image.
    pub pixels: (u32, u32),
    /// File size in bytes.
    pub bytes: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: i128,
    /// [`format_rank`] of the file.
    pub format: FormatRank,
    /// [`sharpness`] of its cached pixels, with the cached image's size.
    pub sharpness: (f64, (u32, u32)),
}

impl CopyFacts {
    /// The facts of `entry`, whose file is `original` pixels and whose cached image is `cached`.
    pub fn of(entry: &ImageEntry, original: (u32, u32), cached: &RgbImage) -> Self {
        Self {
            pixels: original,
            bytes: entry.stamp.size,
            modified_ns: entry.stamp.modified_ns,
            format: format_rank(&entry.path),
            sharpness: (sharpness(cached), cached.dimensions()),
        }
    }
}

/// How close to a camera's output a file format is: what a copy rarely is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FormatRank {
    /// Formats copies are made in: screenshots and web images (PNG, WebP, GIF, BMP).
    Derived,
    /// JPEG: what most cameras write and most copies are re-encoded to.
    Jpeg,
    /// What phones and scanners write and copies seldom are (HEIC, HEIF, AVIF, TIFF).
    Camera,
    /// A camera's raw file.
    Raw,
}

impl FormatRank {
    fn name(self) -> &'static str {
        match self {
            Self::Derived => "derived",
            Self::Jpeg => "JPEG",
            Self::Camera => "camera format",
            Self::Raw => "raw",
        }
    }
}

/// The rank of `path`'s format, by its extension.
pub fn format_rank(path: &Path) -> FormatRank {
    let extension = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if crate::data::RAW_EXTENSIONS.contains(&extension.as_str()) {
        FormatRank::Raw
    } else if crate::data::HEIF_EXTENSIONS.contains(&extension.as_str())
        || matches!(extension.as_str(), "tif" | "tiff")
    {
        FormatRank::Camera
    } else if matches!(extension.as_str(), "jpg" | "jpeg" | "jpe" | "jfif") {
        FormatRank::Jpeg
    } else {
        FormatRank::Derived
    }
}

/// Variance of the Laplacian of the image's luma over the variance of the luma itself: high where
/// edges are crisp, lower for a blurred, resized or heavily compressed copy of the same picture.
/// Divided by the luma's variance so that a brightened or contrast-stretched copy, whose edges
/// are steeper only because everything is, does not pass for a sharper one.
pub fn sharpness(image: &RgbImage) -> f64 {
    let (width, height) = image.dimensions();
    if width < 3 || height < 3 {
        return 0.0;
    }
    let luma = |x: u32, y: u32| {
        let [r, g, b] = image.get_pixel(x, y).0;
        0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b)
    };
    let variance = |values: &mut dyn Iterator<Item = f64>| {
        let (mut sum, mut squares, mut count) = (0.0, 0.0, 0.0);
        for value in values {
            sum += value;
            squares += value * value;
            count += 1.0;
        }
        let mean = sum / count;
        squares / count - mean * mean
    };
    let inner = || (1..height - 1).flat_map(move |y| (1..width - 1).map(move |x| (x, y)));
    let laplacian = variance(&mut inner().map(|(x, y)| {
        luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1) - 4.0 * luma(x, y)
    }));
    let spread = variance(&mut inner().map(|(x, y)| luma(x, y)));
    // A flat image has no edges to be sharp or soft.
    if spread < 1e-9 {
        0.0
    } else {
        laplacian / spread
    }
}

/// Relative margins below which two copies count as equal on a measure: a re-encode at the same
/// size moves the Laplacian's variance a few per cent either way.
const SHARPNESS_MARGIN: f64 = 0.05;

/// What set one copy above another.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    Pixels,
    Format,
    Sharpness,
    Bytes,
    Age,
}

/// Compares two copies, better first, with the measure that decided (none where they tie on
/// all and the path must).
fn compare(a: &CopyFacts, b: &CopyFacts) -> (Ordering, Option<Measure>) {
    let area = |facts: &CopyFacts| u64::from(facts.pixels.0) * u64::from(facts.pixels.1);
    let by_pixels = area(b).cmp(&area(a));
    if by_pixels.is_ne() {
        return (by_pixels, Some(Measure::Pixels));
    }
    let by_format = b.format.cmp(&a.format);
    if by_format.is_ne() {
        return (by_format, Some(Measure::Format));
    }
    if a.sharpness.1 == b.sharpness.1 {
        let (sa, sb) = (a.sharpness.0, b.sharpness.0);
        if (sa - sb).abs() > SHARPNESS_MARGIN * sa.max(sb) {
            return (sb.total_cmp(&sa), Some(Measure::Sharpness));
        }
    }
    let by_bytes = b.bytes.cmp(&a.bytes);
    if by_bytes.is_ne() {
        return (by_bytes, Some(Measure::Bytes));
    }
    let by_age = a.modified_ns.cmp(&b.modified_ns);
    if by_age.is_ne() {
        return (by_age, Some(Measure::Age));
    }
    (Ordering::Equal, None)
}

/// The copy of `members` to keep, given each one's path and facts (in member order), with the
/// measure that set it above the runner-up.
///
/// # Panics
/// If `members` is empty or the lengths differ.
pub fn suggest_keep(members: &[usize], paths: &[&Path], facts: &[CopyFacts]) -> KeepSuggestion {
    assert!(!members.is_empty() && members.len() == facts.len() && paths.len() == facts.len());
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&i, &j| compare(&facts[i], &facts[j]).0.then(paths[i].cmp(paths[j])));
    let best = order[0];
    let facts_of_best = &facts[best];
    let reason = match order.get(1) {
        None => "the only copy".to_owned(),
        Some(&next) => match compare(facts_of_best, &facts[next]).1 {
            Some(Measure::Pixels) => format!(
                "most pixels ({}×{})",
                facts_of_best.pixels.0, facts_of_best.pixels.1
            ),
            Some(Measure::Format) => format!("original format ({})", facts_of_best.format.name()),
            Some(Measure::Sharpness) => "sharpest".to_owned(),
            Some(Measure::Bytes) => "largest file".to_owned(),
            Some(Measure::Age) => "oldest file".to_owned(),
            None => "first by name (alike in all else)".to_owned(),
        },
    };
    KeepSuggestion {
        row: members[best],
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pixels: (u32, u32), format: FormatRank, sharp: f64, bytes: u64) -> CopyFacts {
        CopyFacts {
            pixels,
            bytes,
            modified_ns: 0,
            format,
            sharpness: (sharp, (48, 48)),
        }
    }

    #[test]
    fn pixels_then_format_then_sharpness_then_size_then_age_then_name() {
        let paths = [Path::new("b.jpg"), Path::new("a.png")];
        let pick = |a: CopyFacts, b: CopyFacts| suggest_keep(&[7, 9], &paths, &[a, b]);
        let big = facts((4032, 3024), FormatRank::Jpeg, 10.0, 100);
        let small = facts((2016, 1512), FormatRank::Raw, 99.0, 900);
        let keep = pick(small.clone(), big.clone());
        assert_eq!(
            (keep.row, keep.reason.as_str()),
            (9, "most pixels (4032×3024)")
        );
        let raw = facts((4032, 3024), FormatRank::Raw, 10.0, 100);
        assert_eq!(
            pick(big.clone(), raw).reason,
            "original format (raw)",
            "same pixels: the raw"
        );
        let sharp = facts((4032, 3024), FormatRank::Jpeg, 20.0, 50);
        let keep = pick(big.clone(), sharp);
        assert_eq!((keep.row, keep.reason.as_str()), (9, "sharpest"));
        // Within the margin sharpness ties, and the larger file wins.
        let nearly = facts((4032, 3024), FormatRank::Jpeg, 10.4, 200);
        let keep = pick(big.clone(), nearly);
        assert_eq!((keep.row, keep.reason.as_str()), (9, "largest file"));
        let mut older = big.clone();
        older.modified_ns = -5;
        assert_eq!(pick(big.clone(), older).reason, "oldest file");
        let keep = pick(big.clone(), big);
        assert_eq!(keep.row, 9, "a.png sorts first");
        assert!(keep.reason.starts_with("first by name"));
    }

    #[test]
    fn sharpness_falls_when_an_image_is_blurred() {
        let sharp = RgbImage::from_fn(32, 32, |x, y| {
            let v = if (x / 4 + y / 4) % 2 == 0 { 250 } else { 5 };
            image::Rgb([v, v, v])
        });
        let blurred = image::imageops::blur(&sharp, 1.5);
        assert!(sharpness(&sharp) > 2.0 * sharpness(&blurred));
        assert_eq!(sharpness(&RgbImage::new(2, 2)), 0.0);
        assert_eq!(sharpness(&RgbImage::new(9, 9)), 0.0, "flat");
        // Less contrast is not less sharp.
        let faint = RgbImage::from_fn(32, 32, |x, y| {
            let v = sharp.get_pixel(x, y).0[0] / 2 + 60;
            image::Rgb([v, v, v])
        });
        let (a, b) = (sharpness(&sharp), sharpness(&faint));
        assert!((a - b).abs() < 0.02 * a, "{a} vs {b}");
    }

    #[test]
    fn formats_rank_by_extension_in_any_case() {
        assert_eq!(format_rank(Path::new("x/IMG_1.CR2")), FormatRank::Raw);
        assert_eq!(format_rank(Path::new("x/IMG_1.HEIC")), FormatRank::Camera);
        assert_eq!(format_rank(Path::new("scan.tiff")), FormatRank::Camera);
        assert_eq!(format_rank(Path::new("a.JPG")), FormatRank::Jpeg);
        assert_eq!(format_rank(Path::new("shot.png")), FormatRank::Derived);
        assert_eq!(format_rank(Path::new("noext")), FormatRank::Derived);
    }
}
