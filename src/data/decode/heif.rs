//! HEIC, HEIF and AVIF images (the iPhone's default format since 2017, and AV1 in the same
//! container) through libheif, behind the `heic` cargo feature: the container's primary image,
//! turned upright, ten- and twelve-bit pictures reduced to eight bits, transparency over white.
//!
//! Orientation: HEIF records it as the `irot`/`imir` properties of the image, which libheif
//! applies while decoding. The EXIF Orientation tag such files also carry (iPhones write both,
//! agreeing) is deliberately not applied on top: the HEIF standard makes the properties the
//! authority, and applying both would turn every portrait photo twice.
//!
//! What a file is comes from its content, not its name: an iPhone photo renamed `.jpg` (some
//! transfer tools do that) is still read as HEIC. Builds without the feature say so for such files.

/// Extensions (lower case) of HEIF files: HEIC and HEIF, Fujifilm's `.hif`, and AVIF.
pub(crate) const HEIF_EXTENSIONS: &[&str] = &["heic", "heif", "hif", "avif"];

/// Whether `bytes` open an ISO base media file branded as a HEIF still image (HEVC, AV1 or the
/// generic MIAF brand).
pub(crate) fn is_heif(bytes: &[u8]) -> bool {
    const BRANDS: &[&[u8; 4]] = &[
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis",
    ];
    bytes.get(4..8) == Some(b"ftyp")
        && bytes
            .get(8..12)
            .is_some_and(|brand| BRANDS.iter().any(|b| b[..] == *brand))
}

#[cfg(feature = "heic")]
pub(crate) use with_libheif::{decode, libheif_version};

#[cfg(not(feature = "heic"))]
pub(super) fn decode(_bytes: &[u8]) -> Result<image::DynamicImage, String> {
    Err(NOT_BUILT.to_owned())
}

/// Why a HEIF file is skipped by a build without the `heic` feature, and what to do.
#[cfg(not(feature = "heic"))]
pub(crate) const NOT_BUILT: &str = "unsupported format: HEIC/HEIF/AVIF, and this build of Spreadout was made without the `heic` feature (libheif); use a release build, rebuild with `--features heic-embedded` (needs cmake and libde265), or convert these to JPEG";

#[cfg(feature = "heic")]
mod with_libheif {
    use std::sync::OnceLock;

    use image::{DynamicImage, RgbImage, RgbaImage};
    use libheif_rs::{
        ColorSpace, HeifContext, HeifError, HeifErrorCode, HeifErrorSubCode, LibHeif, RgbChroma,
    };

    use super::super::{DECODE_MEMORY, MAX_SIDE, limits_reason};

    /// libheif, initialised once for the process (its decoders are registered at start-up).
    pub(super) fn library() -> &'static LibHeif {
        static LIBRARY: OnceLock<LibHeif> = OnceLock::new();
        LIBRARY.get_or_init(LibHeif::new)
    }

    /// The version of the libheif this build runs, e.g. "1.23.1".
    pub(crate) fn libheif_version() -> String {
        let [major, minor, patch] = library().version();
        format!("{major}.{minor}.{patch}")
    }

    /// Decodes the primary image of the HEIF file `bytes`, upright, at full size.
    pub(crate) fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
        let mut context =
            HeifContext::read_from_bytes(bytes).map_err(|err| describe(&err, bytes))?;
        // Files are decoded in parallel already, one per core; libheif's own threads (one per
        // tile of an iPhone photo's grid) would only compete with them.
        context.set_max_decoding_threads(0);
        let handle = context
            .primary_image_handle()
            .map_err(|err| describe(&err, bytes))?;
        let (width, height) = (handle.width(), handle.height());
        if width == 0 || height == 0 {
            return Err(format!("it decodes to an empty {width}×{height} image"));
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(limits_reason(&format!(
                "its {width}×{height} image is larger than allowed"
            )));
        }
        let alpha = handle.has_alpha_channel();
        let channels = if alpha { 4 } else { 3 };
        // The decoder's planes (up to 16 bits for each of Y, Cb, Cr) beside the RGB output.
        let _reserved =
            DECODE_MEMORY.reserve(u64::from(width) * u64::from(height) * (channels + 6));
        let chroma = if alpha {
            RgbChroma::Rgba
        } else {
            RgbChroma::Rgb
        };
        // An 8-bit interleaved layout is asked for, so libheif reduces deeper images itself.
        let image = library()
            .decode(&handle, ColorSpace::Rgb(chroma), None)
            .map_err(|err| describe(&err, bytes))?;
        let plane = image
            .planes()
            .interleaved
            .ok_or("libheif returned no interleaved RGB plane")?;
        let (width, height) = (plane.width, plane.height);
        let row = width as usize * channels as usize;
        let mut pixels = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            let start = y * plane.stride;
            pixels.extend_from_slice(
                plane
                    .data
                    .get(start..start + row)
                    .ok_or("libheif returned fewer pixels than the image's size")?,
            );
        }
        let image = if alpha {
            RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8)
        } else {
            RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
        };
        image.ok_or_else(|| "libheif returned fewer pixels than the image's size".to_owned())
    }

    /// libheif's message, with what the person can do where the cause is this build or a cut-off
    /// file.
    fn describe(err: &HeifError, bytes: &[u8]) -> String {
        // libheif's messages may end in a full stop or a line break.
        let message = err.message.trim().trim_end_matches('.');
        if matches!(
            err.code,
            HeifErrorCode::UnsupportedFeature | HeifErrorCode::DecoderPluginError
        ) && message.contains("decod")
        {
            let codec = if bytes
                .get(8..12)
                .is_some_and(|brand| brand.starts_with(b"avi"))
            {
                "AV1 (dav1d or libaom)"
            } else {
                "HEVC (libde265)"
            };
            return format!(
                "not decodable by this build's libheif {}, which has no {codec} decoder ({message}); convert the file to JPEG, or rebuild with that library installed",
                libheif_version()
            );
        }
        if matches!(err.sub_code, HeifErrorSubCode::EndOfData)
            || message.contains("Insufficient input data")
        {
            return format!(
                "the HEIF data stops before its end ({message}); the file is probably truncated (an interrupted copy or download?)"
            );
        }
        format!("not a readable HEIF image: {message}")
    }
}

#[cfg(all(test, feature = "heic"))]
mod tests {
    use std::path::{Path, PathBuf};

    use image::RgbImage;

    use super::super::decode as decode_file;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/heif")
            .join(name)
    }

    fn png(name: &str) -> RgbImage {
        image::open(fixture(name)).unwrap().into_rgb8()
    }

    /// Largest and mean per-channel difference, in levels of 255.
    fn differences(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
        assert_eq!(a.dimensions(), b.dimensions());
        let pairs = a.as_raw().iter().zip(b.as_raw());
        let worst = pairs.clone().map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        let mean =
            pairs.map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.as_raw().len() as f64;
        (worst, mean)
    }

    /// Each fixture decodes to libheif's own decode of it (pillow-heif's, written by `make.py`)
    /// within one level (YCbCr → RGB rounding may differ between libheif builds), and to the
    /// picture it was encoded from within the loss of a quality-90 encode (mean under 5 levels;
    /// edges lose more to 4:2:0 chroma).
    #[test]
    fn heic_fixtures_decode_like_libheifs_reference_upright_at_eight_bits() {
        let source = png("source.png");
        for (file, reference) in [
            ("photo.heic", "photo.decoded.png"),
            ("ten-bit.heic", "ten-bit.decoded.png"),
            ("rotated.heic", "rotated.decoded.png"),
        ] {
            let decoded = decode_file(&fixture(file), 1000).unwrap();
            let (worst, _) = differences(&decoded.image, &png(reference));
            assert!(
                worst <= 1,
                "{file}: {worst} levels from libheif's reference decode"
            );
            let upright = if file == "rotated.heic" {
                // EXIF Orientation 6, stored as the irot property: turned 90° clockwise.
                image::imageops::rotate90(&source)
            } else {
                source.clone()
            };
            assert_eq!(decoded.original, upright.dimensions(), "{file}");
            let (_, mean) = differences(&decoded.image, &upright);
            assert!(
                mean < 5.0,
                "{file}: {mean} levels from the picture it was made from"
            );
        }
    }

    /// Transparency is composited over white, as for PNGs.
    #[test]
    fn transparent_heic_is_flattened_over_white() {
        let decoded = decode_file(&fixture("alpha.heic"), 1000).unwrap();
        let rgba = image::open(fixture("alpha.decoded.png"))
            .unwrap()
            .into_rgba8();
        let reference = RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let [r, g, b, a] = rgba.get_pixel(x, y).0;
            let over = |c: u8| {
                ((u32::from(c) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255) as u8
            };
            image::Rgb([over(r), over(g), over(b)])
        });
        let (worst, _) = differences(&decoded.image, &reference);
        assert!(worst <= 1, "{worst}");
        // The right-hand column is fully transparent: white.
        assert_eq!(decoded.image.get_pixel(89, 30).0, [255, 255, 255]);
    }

    /// AVIF goes through the same library (dav1d); the reference is Debian's `heif-convert`.
    #[test]
    fn avif_decodes_through_the_same_library() {
        let decoded = decode_file(&fixture("photo.avif"), 1000).unwrap();
        let (worst, _) = differences(&decoded.image, &png("photo.avif.decoded.png"));
        assert!(worst <= 2, "{worst}");
    }

    /// What a file is comes from its content: a HEIC named `.jpg` is read, and shrunk to the
    /// cache's side like any photo.
    #[test]
    fn a_renamed_heic_is_read_by_its_content_and_shrunk() {
        let dir = tempfile::tempdir().unwrap();
        let renamed = dir.path().join("IMG_0001.JPG");
        std::fs::copy(fixture("photo.heic"), &renamed).unwrap();
        let decoded = decode_file(&renamed, 30).unwrap();
        assert_eq!(decoded.original, (90, 60));
        assert_eq!(decoded.image.dimensions(), (45, 30));
    }

    /// `libheif-sys` turns on every codec it finds on the build machine, and x265 and x264 are
    /// GPL: linked in, they would make the whole binary GPL. Spreadout only decodes; this fails a
    /// build that picked up either (install no `libx265-dev`/`libx264-dev` where it is built). The
    /// two decoders the formats need must be there.
    #[test]
    fn the_hevc_and_av1_decoders_are_linked_and_no_gpl_encoder_is() {
        let library = super::with_libheif::library();
        let encoders: Vec<String> = library
            .encoder_descriptors(64, None, None)
            .iter()
            .map(|encoder| encoder.name())
            .collect();
        assert!(
            !encoders
                .iter()
                .any(|name| name.contains("x265") || name.contains("x264")),
            "GPL encoder linked: {encoders:?}"
        );
        let decoders: Vec<String> = library
            .decoder_descriptors(64, None)
            .iter()
            .map(|decoder| decoder.name())
            .collect();
        for wanted in ["libde265", "dav1d"] {
            assert!(
                decoders.iter().any(|name| name.contains(wanted)),
                "{wanted} missing from {decoders:?}"
            );
        }
    }

    /// Cut-off, empty and garbage files give a reason naming the problem, never a panic.
    #[test]
    fn hostile_heic_files_give_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let whole = std::fs::read(fixture("photo.heic")).unwrap();
        let cases: [(&str, &[u8], &str); 4] = [
            ("empty.heic", b"", "empty"),
            ("cut.heic", &whole[..whole.len() / 2], "truncated"),
            ("header-only.heic", &whole[..40], "truncated"),
            (
                "garbage.heic",
                b"plain text, not a picture",
                "not a readable HEIF image",
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let reason = decode_file(&path, 100).err().unwrap();
            assert!(reason.contains(expected), "{name}: {reason}");
        }
    }
}
