//! Decoding one file into an upright RGB image no larger than needed: EXIF orientation,
//! transparency over white, JPEG downscaling in the DCT domain (camera raw files through their
//! embedded JPEG preview, `raw_preview`; HEIC, HEIF and AVIF through libheif, [`heif`]), the
//! PIL-exact resize, size limits shared by the whole process, and a decoder that panics costing
//! only its own file.

pub(super) mod heif;

use std::fs;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Condvar, Mutex};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// Largest width or height accepted, both for a decoded file and for a resized image.
pub(super) const MAX_SIDE: u32 = 16_384;
/// Largest amount of memory a single decode may claim.
pub(super) const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;
/// Memory all decodes running at once may claim together: the bound holds however many cores
/// decode, so a folder of decompression bombs on a 64-core machine cannot take 32 GiB.
const PROCESS_DECODE_BYTES: u64 = 1024 * 1024 * 1024;
/// Each file is read whole into memory before decoding, so bigger ones are refused unread.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// The version of what [`decode`] reads and refuses, kept with every failure the image cache
/// records: a failure recorded under another version is tried again, since this decoder may read
/// what that one refused. Bump it with any change that lets a refused file through (a new format,
/// a fixed decoder). Version 0 stands for the releases that recorded none.
pub(crate) const DECODER_VERSION: u32 = 1;

/// A decoded file.
pub(crate) struct Decoded {
    /// Upright RGB pixels, shorter side at most the requested one.
    pub image: RgbImage,
    /// Width and height of the file's full-resolution (upright) image.
    pub original: (u32, u32),
}

/// Decodes, orients, flattens and shrinks one file so its shorter side is at most `short_side`
/// (never enlarged: later resizes work from the real pixels). The error is a reason for the user.
pub(crate) fn decode(path: &Path, short_side: u32) -> Result<Decoded, String> {
    guarded(|| decode_unguarded(path, short_side))
}

/// Runs a decode, turning a panic in a decoder (they do panic on some hostile files) into a reason.
fn guarded(decode: impl FnOnce() -> Result<Decoded, String>) -> Result<Decoded, String> {
    match catch_unwind(AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "the image decoder crashed on this file ({}); it is probably corrupt",
            crate::support::panics::panic_message(panic.as_ref())
        )),
    }
}

fn decode_unguarded(path: &Path, short_side: u32) -> Result<Decoded, String> {
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
    // By content, so a renamed iPhone photo is read; a `.heic` that is nothing else libheif
    // explains, where the `image` crate could only say it knows no such format.
    if heif::is_heif(&bytes)
        || (named_as(path, heif::HEIF_EXTENSIONS) && image::guess_format(&bytes).is_err())
    {
        return finish(flatten_over_white(heif::decode(&bytes)?), short_side);
    }
    if named_as(path, super::raw_preview::RAW_EXTENSIONS) {
        let preview = super::raw_preview::embedded_preview(&bytes)?;
        if jpeg_is_truncated(preview.jpeg) {
            return Err(
                "the raw file's JPEG preview stops before its end marker; the file is probably truncated"
                    .to_owned(),
            );
        }
        return decode_jpeg_scaled(preview.jpeg, short_side, preview.orientation)?
            .ok_or_else(|| "the raw file's JPEG preview is in CMYK, which is not read".to_owned());
    }
    if bytes.starts_with(&JPEG_SOI) {
        if jpeg_is_truncated(&bytes) {
            return Err(
                "the JPEG data stops before its end marker; the file is probably truncated (an interrupted copy or download?)"
                    .to_owned(),
            );
        }
        if let Some(decoded) = decode_jpeg_scaled(&bytes, short_side, None)? {
            return Ok(decoded);
        }
    }
    decode_any(bytes, path, short_side)
}

/// The `image` crate's decoders (every format, and JPEGs the DCT-domain path passes on).
fn decode_any(bytes: Vec<u8>, path: &Path, short_side: u32) -> Result<Decoded, String> {
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
    let _reserved = DECODE_MEMORY.reserve(decoder.total_bytes());
    let mut image = DynamicImage::from_decoder(decoder).map_err(explain)?;
    image.apply_orientation(orientation);
    finish(flatten_over_white(image), short_side)
}

/// Whether `path`'s extension (in any case) is one of `extensions` (lower case).
fn named_as(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| extensions.contains(&ext.to_ascii_lowercase().as_str()))
}

/// JPEGs decoded straight to 1/2, 1/4 or 1/8 of their size where the target is that much smaller:
/// the inverse DCT then computes only the coefficients it keeps, the main cost of a 12 MP photo
/// that becomes a 336 px cache entry. `None` for layouts it does not convert to RGB itself
/// (CMYK), which [`decode_any`] handles. `orientation`, where given, replaces the JPEG's own
/// (a raw file's preview is turned by the raw's tag).
fn decode_jpeg_scaled(
    bytes: &[u8],
    short_side: u32,
    orientation: Option<Orientation>,
) -> Result<Option<Decoded>, String> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(MAX_DECODE_BYTES as usize);
    decoder.read_info().map_err(|err| describe_jpeg(&err))?;
    let info = decoder.info().ok_or("the JPEG has no frame header")?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if width == 0 || height == 0 {
        return Err(format!("it decodes to an empty {width}×{height} image"));
    }
    if !matches!(
        info.pixel_format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    ) {
        return Ok(None);
    }
    let orientation = orientation
        .or_else(|| decoder.exif_data().and_then(Orientation::from_exif_chunk))
        .unwrap_or(Orientation::NoTransforms);
    // `scale` picks the smallest of the 1/8 … 8/8 sizes that covers the request; the shorter
    // side is the same before and after any rotation.
    let short = width.min(height);
    let wanted = |side: u32| {
        u16::try_from((u64::from(side) * u64::from(short_side)).div_ceil(u64::from(short)))
            .unwrap_or(u16::MAX)
    };
    let (scaled_width, scaled_height) = if short > short_side {
        decoder
            .scale(wanted(width), wanted(height))
            .map_err(|err| describe_jpeg(&err))?
    } else {
        (info.width, info.height)
    };
    // Progressive files keep every coefficient of the full image until the last scan.
    let coefficients = if info.coding_process == jpeg_decoder::CodingProcess::DctProgressive {
        u64::from(width) * u64::from(height) * 3 * 2
    } else {
        0
    };
    let _reserved = DECODE_MEMORY
        .reserve(u64::from(scaled_width) * u64::from(scaled_height) * 3 + coefficients);
    let pixels = decoder.decode().map_err(|err| describe_jpeg(&err))?;
    let (w, h) = (u32::from(scaled_width), u32::from(scaled_height));
    let image = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
        }
        _ => RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8),
    }
    .ok_or("the JPEG decoder returned fewer pixels than its header promises")?;
    let mut image = image;
    image.apply_orientation(orientation);
    let original = match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    };
    let mut decoded = finish(image.into_rgb8(), short_side)?;
    decoded.original = original;
    Ok(Some(decoded))
}

/// Checks the result and shrinks it to `short_side` with the resampler training uses.
fn finish(image: RgbImage, short_side: u32) -> Result<Decoded, String> {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return Err(format!("it decodes to an empty {width}×{height} image"));
    }
    let short = width.min(height);
    let long = width.max(height);
    if u64::from(long) * u64::from(short_side.min(short)) / u64::from(short) > u64::from(MAX_SIDE) {
        return Err(format!(
            "its {width}×{height} shape is too elongated: with its shorter side at {short_side} px its longer side would exceed {MAX_SIDE} px"
        ));
    }
    let image = if short > short_side {
        crate::resample::resize_shorter_side(&image, short_side)
    } else {
        image
    };
    Ok(Decoded {
        image,
        original: (width, height),
    })
}

/// Start-of-image marker that opens every JPEG file.
const JPEG_SOI: [u8; 2] = [0xFF, 0xD8];

/// Whether JPEG `bytes` stop before their end-of-image marker. JPEG decoders fill the missing
/// part of a cut-off file with grey instead of failing, and such half-grey photos (from
/// interrupted copies and downloads, common in real folders) would quietly pollute training.
pub(super) fn jpeg_is_truncated(bytes: &[u8]) -> bool {
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
        image::ImageError::Limits(_) => limits_reason(err),
        _ => err.to_string(),
    }
}

fn describe_jpeg(err: &jpeg_decoder::Error) -> String {
    match err {
        jpeg_decoder::Error::Io(_) => format!(
            "{err} while reading it as JPEG (the file may be cut short, or not really an image)"
        ),
        jpeg_decoder::Error::Format(message) if message.contains("buffer") => limits_reason(err),
        _ => format!("not a readable JPEG: {err}"),
    }
}

fn limits_reason(err: &dyn std::fmt::Display) -> String {
    format!(
        "{err} (images may be at most {MAX_SIDE}×{MAX_SIDE} pixels and need at most {} MiB to decode)",
        MAX_DECODE_BYTES >> 20
    )
}

/// Converts any colour type to RGB8, compositing transparency over white: transparent pixels
/// often hold arbitrary (frequently black) colour values that no viewer shows, and white is what
/// most viewers show behind them.
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

/// Memory claimed by the decodes running in this process.
static DECODE_MEMORY: DecodeMemory = DecodeMemory {
    claimed: Mutex::new(0),
    released: Condvar::new(),
};

/// A process-wide budget for decode buffers: a decode waits until its estimate fits beside the
/// others (one that alone exceeds the budget runs when nothing else does).
struct DecodeMemory {
    claimed: Mutex<u64>,
    released: Condvar,
}

impl DecodeMemory {
    fn reserve(&'static self, bytes: u64) -> Reservation {
        let bytes = bytes.min(PROCESS_DECODE_BYTES);
        let mut claimed = self
            .claimed
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while *claimed > 0 && *claimed + bytes > PROCESS_DECODE_BYTES {
            claimed = self
                .released
                .wait(claimed)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        *claimed += bytes;
        Reservation {
            budget: self,
            bytes,
        }
    }
}

/// Memory held by one decode, given back when dropped (also when the decoder panics).
struct Reservation {
    budget: &'static DecodeMemory,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut claimed = self
            .budget
            .claimed
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *claimed -= self.bytes;
        self.budget.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw file (here a synthetic TIFF-based one, named `.nef`) decodes as its embedded
    /// preview, turned by the raw's Orientation tag; a cut-off or empty one is refused with a
    /// reason, never a panic.
    #[test]
    fn raw_files_decode_as_their_embedded_preview_upright() {
        use crate::data::raw_preview::tests::{jpeg, synthetic_raw};
        let dir = tempfile::tempdir().unwrap();
        let preview = jpeg(40, 24, [10, 120, 200]);
        let file = dir.path().join("photo.NEF");
        fs::write(&file, synthetic_raw(&preview, 6)).unwrap();
        let decoded = decode(&file, 100).unwrap();
        let reference = image::load_from_memory(&preview)
            .unwrap()
            .rotate90()
            .into_rgb8();
        assert_eq!(decoded.original, (24, 40));
        assert_eq!(decoded.image.dimensions(), reference.dimensions());
        // Another JPEG decoder (the `image` crate's) as the reference: IDCTs round differently.
        let worst = decoded
            .image
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(worst <= Some(2), "{worst:?}");
        let cut = dir.path().join("cut.cr2");
        let whole = synthetic_raw(&preview, 1);
        fs::write(&cut, &whole[..whole.len() - 10]).unwrap();
        let error = decode(&cut, 100).err().unwrap();
        assert!(error.contains("truncated"), "{error}");
        let empty = dir.path().join("empty.arw");
        fs::write(&empty, b"").unwrap();
        assert!(decode(&empty, 100).err().unwrap().contains("empty"));
        let garbage = dir.path().join("garbage.dng");
        fs::write(&garbage, b"II*\0 not a raw at all".repeat(30)).unwrap();
        assert!(decode(&garbage, 100).err().unwrap().contains("preview"));
        for ext in crate::data::raw_preview::RAW_EXTENSIONS {
            assert!(crate::data::IMAGE_EXTENSIONS.contains(ext), "{ext}");
        }
    }

    #[test]
    fn large_jpegs_decode_scaled_in_the_dct_domain_close_to_a_full_decode() {
        // Smooth content, so the 1/4-scale DCT decode and the full decode + resize agree closely.
        let big = RgbImage::from_fn(800, 600, |x, y| {
            image::Rgb([
                (x * 255 / 800) as u8,
                (y * 255 / 600) as u8,
                ((x + y) % 256) as u8 / 2 + 60,
            ])
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jpg");
        big.save(&path).unwrap();
        let scaled = decode(&path, 120).unwrap();
        assert_eq!(scaled.original, (800, 600));
        assert_eq!(scaled.image.dimensions(), (160, 120));
        let reference = crate::resample::resize_shorter_side(&big, 120);
        let mean_difference: f64 = scaled
            .image
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .map(|(&a, &b)| f64::from(a.abs_diff(b)))
            .sum::<f64>()
            / reference.as_raw().len() as f64;
        assert!(mean_difference < 3.0, "mean difference {mean_difference}");
    }

    #[test]
    fn a_panicking_decoder_costs_only_its_file() {
        let reason = guarded(|| panic!("boom in the decoder")).err().unwrap();
        assert!(
            reason.contains("crashed") && reason.contains("boom in the decoder"),
            "{reason}"
        );
    }

    #[test]
    fn the_decode_budget_is_shared_and_given_back() {
        let first = DECODE_MEMORY.reserve(PROCESS_DECODE_BYTES / 2);
        let second = DECODE_MEMORY.reserve(PROCESS_DECODE_BYTES / 4);
        let waiter = std::thread::spawn(|| {
            let _third = DECODE_MEMORY.reserve(PROCESS_DECODE_BYTES / 2);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a decode over the budget must wait");
        drop(first);
        waiter.join().unwrap();
        drop(second);
    }
}
