//! Camera raw files read through the JPEG preview nearly every one embeds (the full-size image
//! the camera rendered, which is what its screen and most viewers show): the largest embedded
//! JPEG that is a photograph (8-bit, DCT-coded; the lossless JPEG some formats keep the sensor
//! data in is not), turned upright by the raw's own TIFF orientation where the format is
//! TIFF-based (DNG, CR2, NEF, ARW, ORF, RW2, PEF, SRW).
//!
//! Hand-written rather than through `rawler` (which reads these previews too): that crate is
//! LGPL-2.1, and adding it changes the features of crates Burn's own build uses (`backtrace`,
//! `num-complex`), rebuilding the whole engine; finding a JPEG in a file takes a few lines.

use std::io::Cursor;

use image::metadata::Orientation;

/// Extensions of the camera raw formats read here (lower case).
pub(crate) const RAW_EXTENSIONS: &[&str] = &[
    "dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "srw", "pef",
];

/// A raw file's preview: the embedded JPEG's bytes (from its start to the file's end; the
/// decoder stops at its end marker) and the orientation the raw records, if any.
pub(crate) struct Preview<'a> {
    pub(crate) jpeg: &'a [u8],
    pub(crate) orientation: Option<Orientation>,
}

/// The largest photograph among the JPEGs embedded in the raw file `bytes`.
///
/// # Errors
/// A reason for the person when the file holds no usable preview.
pub(crate) fn embedded_preview(bytes: &[u8]) -> Result<Preview<'_>, String> {
    let mut best: Option<(u64, usize)> = None;
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], &[0xFF, 0xD8, 0xFF]) {
        let start = from + found;
        from = start + 3;
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(&bytes[start..]));
        if decoder.read_info().is_err() {
            continue;
        }
        let Some(info) = decoder.info() else { continue };
        let photograph = info.coding_process != jpeg_decoder::CodingProcess::Lossless
            && matches!(
                info.pixel_format,
                jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
            );
        let area = u64::from(info.width) * u64::from(info.height);
        if photograph && best.is_none_or(|(largest, _)| area > largest) {
            best = Some((area, start));
        }
    }
    let (_, start) = best.ok_or(
        "a camera raw file without an embedded JPEG preview (Spreadout reads raw files through the preview the camera embeds; export a JPEG from your raw editor)",
    )?;
    Ok(Preview {
        jpeg: &bytes[start..],
        orientation: tiff_orientation(bytes),
    })
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The Orientation tag (0x0112) of the first IFD of a TIFF-based file (`II` or `MM`, whatever
/// its magic number: ORF and RW2 use their own), or `None` for other layouts (CR3, RAF).
fn tiff_orientation(bytes: &[u8]) -> Option<Orientation> {
    let little = match bytes.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let pair = [*bytes.get(at)?, *bytes.get(at + 1)?];
        Some(if little {
            u16::from_le_bytes(pair)
        } else {
            u16::from_be_bytes(pair)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let quad: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(quad)
        } else {
            u32::from_be_bytes(quad)
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let entries = u16_at(ifd)?;
    (0..usize::from(entries))
        .map(|i| ifd + 2 + 12 * i)
        .find(|&entry| u16_at(entry) == Some(0x0112))
        .and_then(|entry| u16_at(entry + 8))
        .and_then(|value| Orientation::from_exif(u8::try_from(value).ok()?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A JPEG of `width`×`height` filled with `color`.
    pub(crate) fn jpeg(width: u32, height: u32, color: [u8; 3]) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([color[0], color[1].wrapping_add((x + y) as u8), color[2]])
        });
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    /// A TIFF-based raw file as cameras lay them out: a little-endian header, a first IFD with
    /// its Orientation tag, sensor bytes, then a small thumbnail JPEG and the full-size preview.
    pub(crate) fn synthetic_raw(preview: &[u8], orientation: u16) -> Vec<u8> {
        let mut file = b"II*\0".to_vec();
        file.extend(8u32.to_le_bytes());
        file.extend(1u16.to_le_bytes());
        file.extend(0x0112u16.to_le_bytes());
        file.extend(3u16.to_le_bytes());
        file.extend(1u32.to_le_bytes());
        file.extend(u32::from(orientation).to_le_bytes());
        file.extend(0u32.to_le_bytes());
        // Sensor data holding a stray start-of-image pattern that is no JPEG.
        file.extend([0x10, 0x20, 0xFF, 0xD8, 0xFF, 0x00, 0x30].repeat(50));
        file.extend(jpeg(8, 6, [200, 10, 10]));
        file.extend(preview);
        file
    }

    #[test]
    fn the_largest_embedded_jpeg_is_the_preview_with_the_raws_orientation() {
        let preview = jpeg(40, 24, [10, 120, 200]);
        let raw = synthetic_raw(&preview, 6);
        let found = embedded_preview(&raw).unwrap();
        assert!(found.jpeg.starts_with(&preview));
        assert_eq!(found.orientation, Some(Orientation::Rotate90));
    }

    /// A folder of a JPEG, a raw file, a HEIC photo and a broken HEIC: the raw and the HEIC are
    /// images like the JPEG, counted by kind; the broken one is listed as skipped with its reason
    /// (in a build without libheif, both HEICs are, by the scan).
    #[test]
    fn raw_and_heic_files_are_scanned_loaded_and_counted_beside_jpegs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.jpg"), jpeg(40, 30, [5, 6, 7])).unwrap();
        std::fs::write(
            root.join("b.NEF"),
            synthetic_raw(&jpeg(48, 36, [9, 9, 9]), 1),
        )
        .unwrap();
        let heic =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/heif/photo.heic");
        std::fs::copy(heic, root.join("c.heic")).unwrap();
        std::fs::write(root.join("d.heic"), b"not an image").unwrap();
        let scan = crate::data::scan(&root).unwrap();
        assert_eq!(scan.raw_files(), 1);
        let cache = crate::data::PixelCache::at(dir.path().join("cache"));
        let set = crate::data::load(&scan, &cache, 16, &|_, _| true).unwrap();
        let skipped: Vec<_> = set
            .skipped
            .iter()
            .map(|file| file.path.file_name().unwrap().to_owned())
            .collect();
        if cfg!(feature = "heic") {
            assert_eq!((scan.entries.len(), scan.heif_files()), (4, 2));
            assert_eq!(set.len(), 3);
            assert_eq!(skipped, ["d.heic"]);
        } else {
            assert_eq!((scan.entries.len(), scan.heif_files()), (2, 0));
            assert_eq!(set.len(), 2);
            assert_eq!(skipped, ["c.heic", "d.heic"]);
        }
    }

    #[test]
    fn a_raw_without_a_preview_says_so() {
        let error = embedded_preview(&[0x4D; 4096]).err().unwrap();
        assert!(
            error.contains("without an embedded JPEG preview"),
            "{error}"
        );
        // A truncated preview's header still names its size; the decode then fails on the data.
        let raw = synthetic_raw(&jpeg(40, 24, [1, 2, 3]), 1);
        assert!(embedded_preview(&raw[..raw.len() - 200]).is_ok());
    }
}
