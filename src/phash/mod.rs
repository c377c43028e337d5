//! Perceptual hashes, the near-duplicate finder's first stage: what an image looks like in 40
//! bytes, unchanged by re-encoding, resizing, brightening and mild noise, and needing no model.
//!
//! Two parts, both computed from an image's cached pixels (no second decode):
//! - a **DCT hash** of its structure (the classic pHash): the image in grey at 32×32, the 8×8
//!   lowest frequencies of its 2-D DCT-II, one bit per frequency for "above their median". Two
//!   hashes are compared by Hamming distance (0 to 64 bits).
//! - a **colour signature**: the chromaticity (r, g shares of r + g + b) of a 4×4 grid of the
//!   image, so that two photos of the same layout in different colours (a grey sky and a blue
//!   one) are not called copies. Shares do not change when an image is brightened.
//!
//! Hand-written rather than taken from `image_hasher`: that crate's DCT comes from `rustfft`,
//! which turns on `num-complex`'s `std` feature that CubeCL also uses, and so rebuilds the whole
//! engine; the hash needs only 64 of the 1 024 DCT outputs, a direct sum of 10 240 products.
//! [`multi_index`] finds every pair within a distance without comparing all pairs.

pub mod multi_index;

use image::RgbImage;
use image::imageops::{self, FilterType};

/// Side of the grey image the DCT is taken of.
const GREY_SIDE: usize = 32;
/// Side of the block of lowest frequencies kept: 8×8 = 64 bits.
const KEPT: usize = 8;
/// Bits of the DCT hash.
pub const DCT_BITS: u32 = (KEPT * KEPT) as u32;
/// Side of the colour grid.
const COLOR_GRID: u32 = 4;
/// Bytes of the colour signature: two shares per cell.
pub const COLOR_BYTES: usize = (COLOR_GRID * COLOR_GRID * 2) as usize;

/// The perceptual hash of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHash {
    /// One bit per low frequency of the DCT: whether it is above the median of the 64.
    pub dct: u64,
    /// The same for the image mirrored left to right: a picture that is surely no copy of any
    /// other image of its folder, which measures how close distinct pictures come (the hash
    /// stage's calibration) even in a folder full of copies.
    pub mirrored: u64,
    /// Red and green shares of each cell of a 4×4 grid, row by row, ×255.
    pub color: [u8; COLOR_BYTES],
}

impl ImageHash {
    /// Hashes `image` (any size; the cache's pixels).
    pub fn of(image: &RgbImage) -> Self {
        let (dct, mirrored) = dct_hashes(image);
        Self {
            dct,
            mirrored,
            color: color_signature(image),
        }
    }

    /// The hash of the image mirrored left to right.
    pub fn mirror(&self) -> Self {
        let mut color = [0u8; COLOR_BYTES];
        let side = COLOR_GRID as usize;
        for y in 0..side {
            for x in 0..side {
                let (from, to) = (2 * (y * side + x), 2 * (y * side + side - 1 - x));
                color[to..to + 2].copy_from_slice(&self.color[from..from + 2]);
            }
        }
        Self {
            dct: self.mirrored,
            mirrored: self.dct,
            color,
        }
    }

    /// Hamming distance between the two DCT hashes, 0 (same structure) to 64.
    pub fn distance(&self, other: &Self) -> u32 {
        (self.dct ^ other.dct).count_ones()
    }

    /// Mean absolute difference of the two colour signatures, 0 (same colours) to 1.
    pub fn color_difference(&self, other: &Self) -> f32 {
        let total: u32 = self
            .color
            .iter()
            .zip(&other.color)
            .map(|(a, b)| u32::from(a.abs_diff(*b)))
            .sum();
        total as f32 / (255.0 * COLOR_BYTES as f32)
    }
}

/// `cos((2x + 1) u π / 64)` for the kept frequencies `u` and every sample `x`: the DCT-II basis.
fn basis() -> [[f32; GREY_SIDE]; KEPT] {
    let mut table = [[0.0; GREY_SIDE]; KEPT];
    for (u, row) in table.iter_mut().enumerate() {
        for (x, value) in row.iter_mut().enumerate() {
            *value = ((2 * x + 1) as f32 * u as f32 * std::f32::consts::PI
                / (2 * GREY_SIDE) as f32)
                .cos();
        }
    }
    table
}

/// The 64-bit DCT hash of the image and of its mirror image: grey at 32×32 (Rec. 601 luma), the
/// 8×8 lowest DCT frequencies (the direct sum, rows then columns), one bit each for "above the
/// median of the 64". Mirroring negates the frequencies odd along x, so one DCT gives both.
fn dct_hashes(image: &RgbImage) -> (u64, u64) {
    let small = imageops::resize(
        image,
        GREY_SIDE as u32,
        GREY_SIDE as u32,
        FilterType::Triangle,
    );
    let grey: Vec<f32> = small
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let basis = basis();
    // rows[y][u]: frequency u along row y.
    let mut rows = [[0.0f32; KEPT]; GREY_SIDE];
    for (y, out) in rows.iter_mut().enumerate() {
        let line = &grey[y * GREY_SIDE..(y + 1) * GREY_SIDE];
        for (u, value) in out.iter_mut().enumerate() {
            *value = line.iter().zip(&basis[u]).map(|(a, b)| a * b).sum();
        }
    }
    let mut coefficients = [0.0f32; KEPT * KEPT];
    for v in 0..KEPT {
        for u in 0..KEPT {
            coefficients[v * KEPT + u] = (0..GREY_SIDE).map(|y| rows[y][u] * basis[v][y]).sum();
        }
    }
    let mut mirrored = coefficients;
    for (i, value) in mirrored.iter_mut().enumerate() {
        if i % KEPT % 2 == 1 {
            *value = -*value;
        }
    }
    (
        bits_above_median(&coefficients),
        bits_above_median(&mirrored),
    )
}

/// One bit per coefficient: whether it is above the median of all of them.
fn bits_above_median(coefficients: &[f32; KEPT * KEPT]) -> u64 {
    let mut sorted = *coefficients;
    sorted.sort_by(f32::total_cmp);
    let median = 0.5 * (sorted[KEPT * KEPT / 2 - 1] + sorted[KEPT * KEPT / 2]);
    coefficients
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > median)
        .fold(0u64, |bits, (i, _)| bits | (1 << i))
}

/// Red and green shares of a 4×4 grid of area averages; a black cell counts as grey (its shares
/// are noise).
fn color_signature(image: &RgbImage) -> [u8; COLOR_BYTES] {
    let grid = imageops::resize(image, COLOR_GRID, COLOR_GRID, FilterType::Triangle);
    let mut signature = [0u8; COLOR_BYTES];
    for (cell, pixel) in grid.pixels().enumerate() {
        // +1 per channel: near black, shares tend to a third instead of jumping about.
        let [r, g, b] = pixel.0.map(|c| f32::from(c) + 1.0);
        let total = r + g + b;
        signature[2 * cell] = (255.0 * r / total).round() as u8;
        signature[2 * cell + 1] = (255.0 * g / total).round() as u8;
    }
    signature
}

#[cfg(test)]
mod tests {
    use image::Rgb;
    use rand::SeedableRng;

    use super::*;
    use crate::explore::planted::Edit;

    /// A photo-like test picture: smooth gradients, a few shapes and some texture.
    fn picture(seed: u32) -> RgbImage {
        let s = seed as f32;
        RgbImage::from_fn(64, 48, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let disc = ((fx - 20.0 - 3.0 * s).powi(2) + (fy - 24.0).powi(2)).sqrt() < 10.0 + s;
            let stripe = ((fx + 2.0 * fy + 7.0 * s) / 9.0).sin() > 0.3;
            let base = 60.0 + 2.0 * fx + fy;
            let r = if disc { 220.0 } else { base };
            let g = if stripe { 150.0 + fy } else { base * 0.8 };
            let b = 90.0 + 40.0 * ((fx * 0.3 + s).sin());
            Rgb([r as u8, g as u8, b as u8])
        })
    }

    /// The mirrored hash is the hash of the mirrored image, colour grid included.
    #[test]
    fn the_mirrored_hash_is_that_of_the_mirror_image() {
        let original = picture(2);
        let mirrored = ImageHash::of(&imageops::flip_horizontal(&original));
        let hash = ImageHash::of(&original);
        assert!(
            hash.mirror().distance(&mirrored) <= 1,
            "{}",
            hash.mirror().distance(&mirrored)
        );
        assert!(hash.mirror().color_difference(&mirrored) < 0.005);
        assert!(
            hash.distance(&mirrored) > 14,
            "a mirror image is another picture to the hash"
        );
    }

    #[test]
    fn edited_copies_stay_close_and_other_pictures_do_not() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for seed in 0..4 {
            let original = picture(seed);
            let hash = ImageHash::of(&original);
            for edit in [Edit::Jpeg, Edit::Downscale, Edit::Brighten, Edit::Noise] {
                let copy = ImageHash::of(&edit.edited(&original, 1.0, &mut rng));
                assert!(
                    hash.distance(&copy) <= 8,
                    "{} copy of picture {seed}: {} bits",
                    edit.name(),
                    hash.distance(&copy)
                );
                assert!(
                    hash.color_difference(&copy) < 0.03,
                    "{} copy of picture {seed}: colour {}",
                    edit.name(),
                    hash.color_difference(&copy)
                );
            }
            for other in (0..4).filter(|&other| other != seed) {
                let distance = hash.distance(&ImageHash::of(&picture(other)));
                assert!(
                    distance > 14,
                    "pictures {seed} and {other}: {distance} bits"
                );
            }
        }
    }

    /// Two flat grey pictures with different faint detail (clouds in two grey skies) are not
    /// each other's copy: their structure differs although every pixel is within a few levels.
    #[test]
    fn flat_pictures_with_different_detail_differ() {
        let sky = |phase: f32| {
            RgbImage::from_fn(64, 48, |x, y| {
                let detail =
                    4.0 * ((x as f32 / 5.0 + phase).sin() + (y as f32 / 7.0 - phase).cos());
                let level = (128.0 + detail) as u8;
                Rgb([level, level, level])
            })
        };
        let a = ImageHash::of(&sky(0.0));
        let b = ImageHash::of(&sky(2.0));
        assert!(a.color_difference(&b) < 0.01, "both grey");
        assert!(a.distance(&b) > 14, "{} bits", a.distance(&b));
    }

    /// The same layout in other colours: the structure matches, the colour signature does not.
    #[test]
    fn the_same_layout_in_other_colors_is_told_apart_by_color() {
        let original = picture(1);
        let recolored = RgbImage::from_fn(original.width(), original.height(), |x, y| {
            let [r, g, b] = original.get_pixel(x, y).0;
            Rgb([b, r, g])
        });
        let (a, b) = (ImageHash::of(&original), ImageHash::of(&recolored));
        assert!(a.color_difference(&b) > 0.05, "{}", a.color_difference(&b));
    }
}
