//! Training augmentations and the deterministic evaluation view; input normalisation, the
//! pipeline's last step, is in `normalization`, and the resampling both views cut their pixels
//! with in [`crate::resample`] (the data cache uses it too).
//!
//! The training view follows torchvision semantics as used by the paper (Ye et al., CVPR 2019,
//! §4.1): `RandomResizedCrop(scale 0.2–1)`, `ColorJitter(0.4, 0.4, 0.4, 0.4)`,
//! `RandomGrayscale(p 0.2)` and `RandomHorizontalFlip`, applied in the order of the paper's
//! released code (crop → jitter → grayscale → flip → to `[0, 1]` float → `Normalize`).
//! Both Siamese branches go through [`augment_image`] / [`augment_into`]; evaluation uses
//! [`center_view`] / [`fixed_view_into`], which also gives the near-duplicate finder's zoomed and
//! mirrored views.
//!
//! Between the crop and the final output, pixels are kept as `f32` in `[0, 1]` so that the
//! successive colour adjustments do not quantise; the output is 8-bit, as PIL's is, and is
//! normalised on the training device. Each operation draws from the rng only when it
//! is switched on, always in the same order, so a seeded rng reproduces a view exactly.

mod normalization;

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::resample::{FloatImage, PixelRect, check_inputs, resize_region, resized_shorter_side};

mod kernel_input;
mod on_device;
mod served;
pub(crate) use normalization::ChannelTotals;
pub use normalization::Normalization;
pub use on_device::{DeviceViews, KeepOn, KeptImages, two_views_on};
pub use served::{VIEWS_OP, views_on_cpu, views_on_gpu};

/// `RandomResizedCrop` area range, as a fraction of the source area.
const CROP_SCALE: (f64, f64) = (0.2, 1.0);
/// `RandomResizedCrop` aspect-ratio (width / height) range.
const CROP_RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);
/// torchvision gives up on random crops after this many rejected samples.
const CROP_ATTEMPTS: usize = 10;
/// Brightness, contrast, saturation and hue all use the same jitter strength in the paper.
const JITTER_STRENGTH: f32 = 0.4;
const GRAYSCALE_PROBABILITY: f64 = 0.2;
const FLIP_PROBABILITY: f64 = 0.5;
/// ITU-R 601 luma weights, as used by PIL's `convert("L")`; they sum to 1, so grey stays grey.
const LUMA_WEIGHTS: [f32; 3] = [0.299, 0.587, 0.114];
/// Names accepted by [`AugmentOps::disable`].
const DISABLE_NAMES: &str = "crop, color, gray, flip, all";

/// Which of the four operations are on (paper Table 7 ablation). Default: all on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct AugmentOps {
    /// `RandomResizedCrop`; when off, the deterministic [`center_view`] geometry is used.
    pub crop: bool,
    /// `ColorJitter(0.4, 0.4, 0.4, 0.4)`.
    pub color_jitter: bool,
    /// `RandomGrayscale(p = 0.2)`.
    pub grayscale: bool,
    /// `RandomHorizontalFlip(p = 0.5)`.
    pub flip: bool,
}

impl Default for AugmentOps {
    fn default() -> Self {
        Self {
            crop: true,
            color_jitter: true,
            grayscale: true,
            flip: true,
        }
    }
}

impl AugmentOps {
    /// "No DA": every operation off, so a training view is exactly the [`center_view`].
    pub fn none() -> Self {
        Self {
            crop: false,
            color_jitter: false,
            grayscale: false,
            flip: false,
        }
    }

    /// Whether every operation is off.
    pub fn is_none(&self) -> bool {
        *self == Self::none()
    }

    /// Switches one op off by its CLI name: "crop" | "color" | "gray" | "flip" | "all".
    ///
    /// # Errors
    /// For any other name, with a message listing the valid names; `self` is then unchanged.
    pub fn disable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "crop" => self.crop = false,
            "color" => self.color_jitter = false,
            "gray" => self.grayscale = false,
            "flip" => self.flip = false,
            "all" => *self = Self::none(),
            unknown => {
                return Err(format!(
                    "unknown augmentation {unknown:?}; expected one of: {DISABLE_NAMES}"
                ));
            }
        }
        Ok(())
    }
}

/// One random training view of `src` (any size/aspect), `size`×`size`, as displayable pixels.
///
/// # Panics
/// If `size` is 0 or `src` has no pixels.
pub fn augment_image(src: &RgbImage, size: u32, ops: &AugmentOps, rng: &mut impl Rng) -> RgbImage {
    random_view(src, size, ops, rng).to_rgb8()
}

/// Two training views of `src`, as a training batch makes them: one generator per view, seeded
/// `seed` and `seed + 1` (a batch seeds image `i`'s views `seed + i` and `seed + m + i`). For
/// showing a person what the augmentations do.
pub fn two_views(src: &RgbImage, size: u32, ops: &AugmentOps, seed: u64) -> [RgbImage; 2] {
    [seed, seed.wrapping_add(1)].map(|view_seed| {
        augment_image(
            src,
            size,
            ops,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(view_seed),
        )
    })
}

/// Same random view written as planar (CHW) `u8` into `out` (len 3*size*size): exactly the
/// pixels of [`augment_image`], in the layout the network reads. The device normalises them
/// ([`crate::embed::PixelBatch`]), so a batch crosses to it at a quarter of the bytes of `f32`.
///
/// # Panics
/// If `size` is 0, `src` has no pixels, or `out.len() != 3 * size * size`.
pub fn augment_into(
    src: &RgbImage,
    size: u32,
    ops: &AugmentOps,
    rng: &mut impl Rng,
    out: &mut [u8],
) {
    random_view(src, size, ops, rng).write_planar_u8(out);
}

/// The deterministic evaluation view: resize so the shorter side is `size` (bilinear/triangle,
/// aspect kept), then centre-crop size×size.
///
/// # Panics
/// If `size` is 0 or `src` has no pixels.
///
/// The engine writes the view straight into a batch ([`fixed_view_into`]); this image form is
/// what the tests compare against.
#[cfg(test)]
pub fn center_view(src: &RgbImage, size: u32) -> RgbImage {
    check_inputs(src, size);
    FixedView::Center
        .draw(src.width(), src.height())
        .apply(src, size)
        .to_rgb8()
}

/// A deterministic view of an image: evaluation's centre view, and the test-time views the
/// near-duplicate finder also scores a pair by (`explore::views`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedView {
    /// [`center_view`]: the shorter side resized to the input size, the middle square kept.
    Center,
    /// The middle [`ZOOMED_SIDE`] of the centre view's square, enlarged to the input size: what
    /// a crop of the picture shows.
    Zoomed,
    /// The centre view mirrored left to right.
    Mirrored,
}

/// The side of [`FixedView::Zoomed`]'s square, as a fraction of the centre view's: the middle
/// 64 % of its area, about what a light crop keeps.
pub const ZOOMED_SIDE: f64 = 0.8;

impl FixedView {
    /// The view's draw on a `width`×`height` source: no colour change, a fixed crop or flip.
    pub(crate) fn draw(self, width: u32, height: u32) -> ViewDraw {
        let mut draw = ViewDraw {
            crop: None,
            jitter: None,
            grayscale: false,
            flip: false,
        };
        match self {
            FixedView::Center => {}
            FixedView::Zoomed => {
                // A square, so that resizing it to the input does not stretch the picture.
                let side = ((f64::from(width.min(height)) * ZOOMED_SIDE).round() as u32).max(1);
                draw.crop = Some(PixelRect {
                    left: (width - side) / 2,
                    top: (height - side) / 2,
                    width: side,
                    height: side,
                });
            }
            FixedView::Mirrored => draw.flip = true,
        }
        draw
    }
}

/// `view` of `src` written as planar (CHW) `u8` into `out` (len 3*size*size), as a batch holds it.
///
/// # Panics
/// If `size` is 0, `src` has no pixels, or `out.len() != 3 * size * size`.
pub fn fixed_view_into(src: &RgbImage, size: u32, view: FixedView, out: &mut [u8]) {
    check_inputs(src, size);
    view.draw(src.width(), src.height())
        .apply(src, size)
        .write_planar_u8(out);
}

/// The single implementation behind [`augment_image`] and [`augment_into`].
fn random_view(src: &RgbImage, size: u32, ops: &AugmentOps, rng: &mut impl Rng) -> FloatImage {
    check_inputs(src, size);
    ViewDraw::sample(src.width(), src.height(), ops, rng).apply(src, size)
}

/// The random draws of one training view, in torchvision's order: RandomResizedCrop's box,
/// ColorJitter's parameters, RandomGrayscale, RandomHorizontalFlip. Drawn once on the host from
/// the view's seeded generator and applied by the CPU path here or by the device's kernel
/// ([`on_device`]), so both build the same view and a run resumes exactly on either.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ViewDraw {
    /// The crop box; `None` without the crop (the centre view's geometry).
    pub(crate) crop: Option<PixelRect>,
    /// ColorJitter's draw, when it is on.
    pub(crate) jitter: Option<ColorJitter>,
    /// Whether the view turns grey.
    pub(crate) grayscale: bool,
    /// Whether the view is mirrored.
    pub(crate) flip: bool,
}

/// Where a view's pixels come from: the `region` of the source resampled to `resized`, of which
/// the `window` is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Geometry {
    pub(crate) region: PixelRect,
    pub(crate) resized: (u32, u32),
    pub(crate) window: PixelRect,
}

impl ViewDraw {
    /// The draws of `ops` for a `width`×`height` source (each operation that is off draws
    /// nothing, as before).
    pub(crate) fn sample(width: u32, height: u32, ops: &AugmentOps, rng: &mut impl Rng) -> Self {
        let crop = ops.crop.then(|| sample_crop_rect(width, height, rng));
        let jitter = ops.color_jitter.then(|| ColorJitter::sample(rng));
        let grayscale = ops.grayscale && rng.random_bool(GRAYSCALE_PROBABILITY);
        let flip = ops.flip && rng.random_bool(FLIP_PROBABILITY);
        Self {
            crop,
            jitter,
            grayscale,
            flip,
        }
    }

    /// The view's geometry on a `width`×`height` source at `size`×`size`.
    pub(crate) fn geometry(&self, width: u32, height: u32, size: u32) -> Geometry {
        match self.crop {
            Some(region) => Geometry {
                region,
                resized: (size, size),
                window: PixelRect {
                    left: 0,
                    top: 0,
                    width: size,
                    height: size,
                },
            },
            None => center_geometry(width, height, size),
        }
    }

    /// The view of `src` on the CPU (its pixels owned, or borrowed from a served device's kept
    /// buffer).
    fn apply<C: std::ops::Deref<Target = [u8]>>(
        &self,
        src: &image::ImageBuffer<image::Rgb<u8>, C>,
        size: u32,
    ) -> FloatImage {
        let Geometry {
            region,
            resized,
            window,
        } = self.geometry(src.width(), src.height(), size);
        let mut view = resize_region(src, region, resized, window);
        if let Some(jitter) = self.jitter {
            jitter.apply(&mut view);
        }
        if self.grayscale {
            view.make_grayscale();
        }
        if self.flip {
            view.mirror_horizontally();
        }
        view
    }
}

/// The centre view's geometry: the whole source, its shorter side resized to `size`, the centred
/// `size`×`size` window.
fn center_geometry(width: u32, height: u32, size: u32) -> Geometry {
    let resized = resized_shorter_side(width, height, size);
    // CenterCrop uses Python's round(), which rounds halves to even.
    let centered_offset =
        |resized_len: u32| (f64::from(resized_len - size) / 2.0).round_ties_even() as u32;
    Geometry {
        region: PixelRect {
            left: 0,
            top: 0,
            width,
            height,
        },
        resized,
        window: PixelRect {
            left: centered_offset(resized.0),
            top: centered_offset(resized.1),
            width: size,
            height: size,
        },
    }
}

/// torchvision `RandomResizedCrop.get_params(scale=(0.2, 1), ratio=(3/4, 4/3))` for a
/// `width`×`height` source, including its centre-crop fallback after 10 rejected samples.
pub(crate) fn sample_crop_rect(width: u32, height: u32, rng: &mut impl Rng) -> PixelRect {
    let area = f64::from(width) * f64::from(height);
    let log_ratio = (CROP_RATIO.0.ln(), CROP_RATIO.1.ln());
    for _ in 0..CROP_ATTEMPTS {
        let target_area = area * rng.random_range(CROP_SCALE.0..CROP_SCALE.1);
        let aspect_ratio = rng.random_range(log_ratio.0..log_ratio.1).exp();
        // Python's round() rounds halves to even; the cast saturates, and oversize is rejected below.
        let crop_width = (target_area * aspect_ratio).sqrt().round_ties_even() as u32;
        let crop_height = (target_area / aspect_ratio).sqrt().round_ties_even() as u32;
        if (1..=width).contains(&crop_width) && (1..=height).contains(&crop_height) {
            // torchvision draws the top before the left.
            let top = rng.random_range(0..=height - crop_height);
            let left = rng.random_range(0..=width - crop_width);
            return PixelRect {
                left,
                top,
                width: crop_width,
                height: crop_height,
            };
        }
    }
    let input_ratio = f64::from(width) / f64::from(height);
    let (crop_width, crop_height) = if input_ratio < CROP_RATIO.0 {
        (
            width,
            (f64::from(width) / CROP_RATIO.0).round_ties_even() as u32,
        )
    } else if input_ratio > CROP_RATIO.1 {
        (
            (f64::from(height) * CROP_RATIO.1).round_ties_even() as u32,
            height,
        )
    } else {
        (width, height)
    };
    PixelRect {
        left: (width - crop_width) / 2,
        top: (height - crop_height) / 2,
        width: crop_width,
        height: crop_height,
    }
}

/// The photometric operations of a view, on the resampler's float pixels (kept there so that
/// resampling does not depend on augmentation).
impl FloatImage {
    fn make_grayscale(&mut self) {
        for pixel in &mut self.pixels {
            *pixel = [luma(*pixel); 3];
        }
    }

    fn mirror_horizontally(&mut self) {
        for row in self.pixels.chunks_exact_mut(self.width as usize) {
            row.reverse();
        }
    }

    fn scale_brightness(&mut self, factor: f32) {
        for pixel in &mut self.pixels {
            *pixel = pixel.map(|value| (value * factor).clamp(0.0, 1.0));
        }
    }

    /// Blends towards the image's mean luma, a single scalar over the whole image.
    fn scale_contrast(&mut self, factor: f32) {
        let luma_sum: f64 = self
            .pixels
            .iter()
            .map(|&pixel| f64::from(luma(pixel)))
            .sum();
        let mean_luma = (luma_sum / self.pixels.len() as f64) as f32;
        for pixel in &mut self.pixels {
            *pixel = pixel.map(|value| blend(value, mean_luma, factor));
        }
    }

    /// Blends each pixel towards its own luma.
    fn scale_saturation(&mut self, factor: f32) {
        for pixel in &mut self.pixels {
            let gray = luma(*pixel);
            *pixel = pixel.map(|value| blend(value, gray, factor));
        }
    }

    fn shift_hue(&mut self, shift: f32) {
        for pixel in &mut self.pixels {
            let [hue, saturation, value] = rgb_to_hsv(*pixel);
            *pixel = hsv_to_rgb([(hue + shift).rem_euclid(1.0), saturation, value]);
        }
    }
}

fn luma([red, green, blue]: [f32; 3]) -> f32 {
    LUMA_WEIGHTS[0] * red + LUMA_WEIGHTS[1] * green + LUMA_WEIGHTS[2] * blue
}

/// torchvision's `_blend`: `factor` 1 keeps `value`, 0 gives `toward`, beyond 1 extrapolates.
fn blend(value: f32, toward: f32, factor: f32) -> f32 {
    (factor * value + (1.0 - factor) * toward).clamp(0.0, 1.0)
}

/// torchvision's `_rgb2hsv`: hue in `[0, 1)`, with hue and saturation 0 for greys.
fn rgb_to_hsv([red, green, blue]: [f32; 3]) -> [f32; 3] {
    let max = red.max(green).max(blue);
    let min = red.min(green).min(blue);
    let chroma = max - min;
    if chroma == 0.0 {
        return [0.0, 0.0, max];
    }
    let saturation = chroma / max;
    let red_distance = (max - red) / chroma;
    let green_distance = (max - green) / chroma;
    let blue_distance = (max - blue) / chroma;
    let sextant = if max == red {
        blue_distance - green_distance
    } else if max == green {
        2.0 + red_distance - blue_distance
    } else {
        4.0 + green_distance - red_distance
    };
    [(sextant / 6.0 + 1.0) % 1.0, saturation, max]
}

/// torchvision's `_hsv2rgb`; a hue of exactly 1 wraps to the same colour as 0.
fn hsv_to_rgb([hue, saturation, value]: [f32; 3]) -> [f32; 3] {
    let scaled_hue = hue * 6.0;
    let sextant = scaled_hue.floor();
    let fraction = scaled_hue - sextant;
    let p = (value * (1.0 - saturation)).clamp(0.0, 1.0);
    let q = (value * (1.0 - saturation * fraction)).clamp(0.0, 1.0);
    let t = (value * (1.0 - saturation * (1.0 - fraction))).clamp(0.0, 1.0);
    match (sextant as i32).rem_euclid(6) {
        0 => [value, t, p],
        1 => [q, value, p],
        2 => [p, value, t],
        3 => [p, q, value],
        4 => [t, p, value],
        _ => [value, p, q],
    }
}

/// One of the four `ColorJitter` adjustments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JitterOp {
    Brightness,
    Contrast,
    Saturation,
    Hue,
}

/// The random parameters of one `ColorJitter` call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ColorJitter {
    order: [JitterOp; 4],
    brightness: f32,
    contrast: f32,
    saturation: f32,
    hue_shift: f32,
}

impl ColorJitter {
    /// Same draw order as torchvision's `ColorJitter.get_params`: permutation, then brightness,
    /// contrast, saturation and hue.
    fn sample(rng: &mut impl Rng) -> Self {
        let mut order = [
            JitterOp::Brightness,
            JitterOp::Contrast,
            JitterOp::Saturation,
            JitterOp::Hue,
        ];
        order.shuffle(rng);
        let factor_range = (1.0 - JITTER_STRENGTH)..(1.0 + JITTER_STRENGTH);
        Self {
            order,
            brightness: rng.random_range(factor_range.clone()),
            contrast: rng.random_range(factor_range.clone()),
            saturation: rng.random_range(factor_range),
            hue_shift: rng.random_range(-JITTER_STRENGTH..JITTER_STRENGTH),
        }
    }

    fn apply(&self, image: &mut FloatImage) {
        for op in self.order {
            match op {
                JitterOp::Brightness => image.scale_brightness(self.brightness),
                JitterOp::Contrast => image.scale_contrast(self.contrast),
                JitterOp::Saturation => image.scale_saturation(self.saturation),
                JitterOp::Hue => image.shift_hue(self.hue_shift),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::resize_shorter_side;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// RandomResizedCrop of a large photo through the data cache (shorter side 1.5× the training
    /// size) against the same crop cut from the full-resolution file, which is what torchvision
    /// does; and, for scale, against a cache that stops at the training size.
    #[test]
    fn crops_from_the_cache_match_crops_of_the_full_photo() {
        use crate::data::{ImageSource, PixelCache, cached_side, load, scan};
        // 1152×864: the 96 px cache is exactly 1/9 and a 64 px cache 1/13.5 of it, so every crop
        // below maps to whole pixels in all three.
        let (width, height) = (1152u32, 864u32);
        let photo = RgbImage::from_fn(width, height, |x, y| {
            let (x, y) = (f64::from(x), f64::from(y));
            let wave = |period: f64, phase: f64| ((x + 0.7 * y) / period + phase).sin();
            image::Rgb([
                (128.0 + 90.0 * wave(37.0, 0.0)) as u8,
                (128.0 + 90.0 * (y / 53.0).cos() * wave(91.0, 1.0)) as u8,
                (128.0 + 60.0 * wave(23.0, 2.0)) as u8,
            ])
        });
        let folder = tempfile::tempdir().unwrap();
        photo.save(folder.path().join("photo.png")).unwrap();
        photo.save(folder.path().join("copy.png")).unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let size = 64;
        let set = load(
            &scan(folder.path()).unwrap(),
            &PixelCache::at(cache_dir.path()),
            size,
            &|_, _| true,
        )
        .unwrap();
        let cached = set.image(0).unwrap().into_owned();
        assert_eq!(cached_side(size), 96);
        assert_eq!(cached.dimensions(), (128, 96));
        let at_training_size = resize_shorter_side(&photo, size);
        let whole = PixelRect {
            left: 0,
            top: 0,
            width: size,
            height: size,
        };
        let scaled = |rect: PixelRect, numerator: u32, denominator: u32| PixelRect {
            left: rect.left * numerator / denominator,
            top: rect.top * numerator / denominator,
            width: rect.width * numerator / denominator,
            height: rect.height * numerator / denominator,
        };
        let difference = |a: &FloatImage, b: &FloatImage| {
            a.pixels
                .iter()
                .zip(&b.pixels)
                .flat_map(|(p, q)| (0..3).map(move |c| f64::from((p[c] - q[c]).abs()) * 255.0))
                .sum::<f64>()
                / (a.pixels.len() * 3) as f64
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut from_cache, mut from_small) = (0.0, 0.0);
        let crops = 24;
        for _ in 0..crops {
            // Crops drawn on the cache, snapped to multiples of 2 px there (so 18 px of the
            // photo and 12 px of the small cache).
            let rect = sample_crop_rect(128, 96, &mut rng);
            let snap = |v: u32| (v / 2 * 2).max(2);
            let rect = PixelRect {
                left: snap(rect.left),
                top: snap(rect.top),
                width: snap(rect.width).min(128 - snap(rect.left)),
                height: snap(rect.height).min(96 - snap(rect.top)),
            };
            let reference = resize_region(&photo, scaled(rect, 9, 1), (size, size), whole);
            let cached_view = resize_region(&cached, rect, (size, size), whole);
            let small_view =
                resize_region(&at_training_size, scaled(rect, 2, 3), (size, size), whole);
            from_cache += difference(&cached_view, &reference) / f64::from(crops);
            from_small += difference(&small_view, &reference) / f64::from(crops);
        }
        assert!(from_cache < 4.0, "mean difference {from_cache:.2} levels");
        assert!(
            from_cache < 0.6 * from_small,
            "the 1.5× cache ({from_cache:.2}) should be much closer than a training-size one ({from_small:.2})"
        );
    }

    fn seeded(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    /// Left-right and top-bottom asymmetric, so flips and crops are visible.
    fn gradient_image(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([
                (x * 255 / width.max(2)) as u8,
                (y * 255 / height.max(2)) as u8,
                ((x * 7 + y * 3) % 256) as u8,
            ])
        })
    }

    fn noise_image(width: u32, height: u32, seed: u64) -> RgbImage {
        let mut rng = seeded(seed);
        RgbImage::from_fn(width, height, |_, _| image::Rgb(rng.random()))
    }

    fn only(configure: impl FnOnce(&mut AugmentOps)) -> AugmentOps {
        let mut ops = AugmentOps::none();
        configure(&mut ops);
        ops
    }

    fn mirrored(image: &RgbImage) -> RgbImage {
        image::imageops::flip_horizontal(image)
    }

    fn is_gray(image: &RgbImage) -> bool {
        image
            .pixels()
            .all(|pixel| pixel[0] == pixel[1] && pixel[1] == pixel[2])
    }

    #[test]
    fn outputs_have_requested_size_for_odd_inputs() {
        let mut rng = seeded(1);
        for (width, height) in [(1, 1), (7, 300), (300, 7), (1, 400), (640, 480)] {
            let src = gradient_image(width, height);
            for size in [1, 8, 33] {
                for ops in [
                    AugmentOps::default(),
                    AugmentOps::none(),
                    only(|ops| ops.crop = true),
                ] {
                    let view = augment_image(&src, size, &ops, &mut rng);
                    assert_eq!(
                        view.dimensions(),
                        (size, size),
                        "{width}x{height} -> {size}, {ops:?}"
                    );
                    let mut out = vec![0u8; (3 * size * size) as usize];
                    augment_into(&src, size, &ops, &mut rng, &mut out);
                }
                assert_eq!(center_view(&src, size).dimensions(), (size, size));
                let mut out = vec![0u8; (3 * size * size) as usize];
                fixed_view_into(&src, size, FixedView::Center, &mut out);
            }
        }
    }

    #[test]
    #[should_panic(expected = "output buffer must hold")]
    fn wrong_output_length_is_rejected() {
        let mut out = vec![0u8; 10];
        fixed_view_into(&gradient_image(4, 4), 4, FixedView::Center, &mut out);
    }

    #[test]
    fn same_seed_reproduces_and_different_seeds_differ() {
        let src = noise_image(64, 48, 7);
        let ops = AugmentOps::default();
        let first = augment_image(&src, 32, &ops, &mut seeded(3));
        assert_eq!(first, augment_image(&src, 32, &ops, &mut seeded(3)));
        assert_ne!(first, augment_image(&src, 32, &ops, &mut seeded(4)));
    }

    #[test]
    fn no_augmentation_is_exactly_the_center_view_and_draws_nothing() {
        let src = noise_image(45, 30, 2);
        let expected = center_view(&src, 16);
        for seed in 0..20 {
            let mut rng = seeded(seed);
            assert_eq!(
                augment_image(&src, 16, &AugmentOps::none(), &mut rng),
                expected
            );
            assert_eq!(
                rng.next_u64(),
                seeded(seed).next_u64(),
                "no-DA must not consume randomness"
            );
        }
    }

    #[test]
    fn flip_only_gives_the_center_view_or_its_mirror_about_equally() {
        let src = gradient_image(20, 12);
        let center = center_view(&src, 10);
        let mirror = mirrored(&center);
        assert_ne!(center, mirror);
        let mut rng = seeded(5);
        let draws = 1000;
        let mut mirrored_count = 0;
        for _ in 0..draws {
            let view = augment_image(&src, 10, &only(|ops| ops.flip = true), &mut rng);
            if view == mirror {
                mirrored_count += 1;
            } else {
                assert_eq!(view, center);
            }
        }
        assert!(
            (420..=580).contains(&mirrored_count),
            "{mirrored_count} of {draws} mirrored"
        );
    }

    #[test]
    fn grayscale_only_gives_the_center_view_or_gray_about_one_in_five() {
        let src = gradient_image(12, 9);
        let center = center_view(&src, 8);
        assert!(!is_gray(&center));
        let mut rng = seeded(6);
        let draws = 2000;
        let mut gray_count = 0;
        for _ in 0..draws {
            let view = augment_image(&src, 8, &only(|ops| ops.grayscale = true), &mut rng);
            if is_gray(&view) {
                gray_count += 1;
            } else {
                assert_eq!(view, center);
            }
        }
        let fraction = f64::from(gray_count) / f64::from(draws);
        assert!(
            (0.17..=0.23).contains(&fraction),
            "gray fraction {fraction}"
        );
    }

    #[test]
    fn crop_only_stays_within_the_source_value_range_and_varies() {
        // Red spans 40..=200, green is constant, blue has one colour per quadrant.
        let src = RgbImage::from_fn(60, 40, |x, y| {
            let quadrant = u8::from(x >= 30) + 2 * u8::from(y >= 20);
            image::Rgb([40 + (x * 160 / 59) as u8, 77, 10 + 60 * quadrant])
        });
        let center = center_view(&src, 16);
        let mut rng = seeded(8);
        let mut distinct_from_center = 0;
        for _ in 0..100 {
            let view = augment_image(&src, 16, &only(|ops| ops.crop = true), &mut rng);
            for pixel in view.pixels() {
                assert!((40..=200).contains(&pixel[0]), "{pixel:?}");
                assert_eq!(pixel[1], 77, "resampling weights must sum to one");
                assert!((10..=190).contains(&pixel[2]), "{pixel:?}");
            }
            distinct_from_center += usize::from(view != center);
        }
        assert!(distinct_from_center > 90);
    }

    #[test]
    fn random_crops_respect_scale_and_ratio_ranges() {
        let (width, height) = (200u32, 150u32);
        let area = f64::from(width * height);
        let mut rng = seeded(9);
        let (mut smallest, mut largest) = (f64::MAX, 0.0f64);
        for _ in 0..2000 {
            let rect = sample_crop_rect(width, height, &mut rng);
            assert!(
                rect.width >= 1 && rect.left + rect.width <= width,
                "{rect:?}"
            );
            assert!(
                rect.height >= 1 && rect.top + rect.height <= height,
                "{rect:?}"
            );
            let fraction = f64::from(rect.width * rect.height) / area;
            // Rounding each side to whole pixels moves the area by at most a couple of percent here.
            assert!(
                (0.2 * 0.97..=1.0).contains(&fraction),
                "{rect:?}: {fraction}"
            );
            let ratio = f64::from(rect.width) / f64::from(rect.height);
            assert!(
                (0.75 * 0.97..=4.0 / 3.0 * 1.03).contains(&ratio),
                "{rect:?}: {ratio}"
            );
            smallest = smallest.min(fraction);
            largest = largest.max(fraction);
        }
        assert!(
            smallest < 0.22 && largest > 0.95,
            "fractions span {smallest}..{largest}"
        );
    }

    #[test]
    fn random_crops_fall_back_to_a_centered_crop_for_extreme_aspect_ratios() {
        let cases = [
            ((1, 400), (0, 199, 1, 1)),
            ((400, 1), (199, 0, 1, 1)),
            // Width 3 is kept; height becomes round(3 / (3/4)) = 4, centred.
            ((3, 200), (0, 98, 3, 4)),
            ((1, 1), (0, 0, 1, 1)),
        ];
        for ((width, height), (left, top, crop_width, crop_height)) in cases {
            for seed in 0..20 {
                let rect = sample_crop_rect(width, height, &mut seeded(seed));
                let expected = PixelRect {
                    left,
                    top,
                    width: crop_width,
                    height: crop_height,
                };
                assert_eq!(rect, expected, "{width}x{height}");
            }
        }
    }

    #[test]
    fn center_view_crops_the_middle_rounding_halves_to_even() {
        // Shorter side already equals `size`, so only the centre crop acts.
        for (width, expected_left) in [(10, 3), (9, 2), (11, 4)] {
            let src = gradient_image(width, 4);
            let expected = image::imageops::crop_imm(&src, expected_left, 0, 4, 4).to_image();
            assert_eq!(center_view(&src, 4), expected, "width {width}");
        }
        let square = noise_image(13, 13, 1);
        assert_eq!(center_view(&square, 13), square);
    }

    #[test]
    fn center_view_keeps_the_aspect_ratio_truncating_the_long_side() {
        // A 10x3 image at size 2 resizes to int(2 * 10 / 3) = 6 by 2, then crops columns 2..4.
        let src = noise_image(10, 3, 4);
        let full = resize_region(
            &src,
            PixelRect::covering(&src),
            (6, 2),
            PixelRect {
                left: 0,
                top: 0,
                width: 6,
                height: 2,
            },
        );
        let expected = image::imageops::crop_imm(&full.to_rgb8(), 2, 0, 2, 2).to_image();
        assert_eq!(center_view(&src, 2), expected);
    }

    #[test]
    fn color_jitter_keeps_gray_gray_and_bounds_brightness() {
        let src = RgbImage::from_pixel(10, 10, image::Rgb([128; 3]));
        let mut rng = seeded(10);
        let (mut lowest, mut highest) = (f64::MAX, 0.0f64);
        for _ in 0..300 {
            let view = augment_image(&src, 6, &only(|ops| ops.color_jitter = true), &mut rng);
            for pixel in view.pixels() {
                let (low, high) = (pixel.0.iter().min(), pixel.0.iter().max());
                assert!(
                    high.zip(low).is_some_and(|(high, low)| high - low <= 1),
                    "{pixel:?}"
                );
            }
            let ratio = f64::from(view.get_pixel(0, 0)[0]) / 128.0;
            assert!(
                (0.6 - 1.0 / 128.0..=1.4 + 1.0 / 128.0).contains(&ratio),
                "{ratio}"
            );
            lowest = lowest.min(ratio);
            highest = highest.max(ratio);
        }
        assert!(
            lowest < 0.7 && highest > 1.3,
            "brightness ratios span {lowest}..{highest}"
        );
    }

    #[test]
    fn color_jitter_parameters_are_in_range_and_order_is_a_permutation() {
        let mut rng = seeded(11);
        let mut first_ops = Vec::new();
        for _ in 0..200 {
            let jitter = ColorJitter::sample(&mut rng);
            for op in [
                JitterOp::Brightness,
                JitterOp::Contrast,
                JitterOp::Saturation,
                JitterOp::Hue,
            ] {
                assert_eq!(jitter.order.iter().filter(|&&drawn| drawn == op).count(), 1);
            }
            for factor in [jitter.brightness, jitter.contrast, jitter.saturation] {
                assert!((0.6..1.4).contains(&factor), "{jitter:?}");
            }
            assert!((-0.4..0.4).contains(&jitter.hue_shift), "{jitter:?}");
            if !first_ops.contains(&jitter.order[0]) {
                first_ops.push(jitter.order[0]);
            }
        }
        assert_eq!(first_ops.len(), 4, "every op must sometimes come first");
    }

    fn float_image(pixels: Vec<[f32; 3]>) -> FloatImage {
        FloatImage {
            width: pixels.len() as u32,
            height: 1,
            pixels,
        }
    }

    fn random_colors(count: usize, seed: u64) -> Vec<[f32; 3]> {
        let mut rng = seeded(seed);
        (0..count).map(|_| rng.random::<[f32; 3]>()).collect()
    }

    #[test]
    fn individual_jitter_adjustments_match_their_definitions() {
        let colors = vec![[0.2, 0.4, 0.9], [0.8, 0.1, 0.3], [0.5, 0.5, 0.5]];
        let mut brighter = float_image(colors.clone());
        brighter.scale_brightness(1.4);
        assert_eq!(brighter.pixels[0], [0.2 * 1.4, 0.4 * 1.4, 1.0]);

        let mut flat = float_image(colors.clone());
        flat.scale_contrast(0.0);
        let mean_luma = colors.iter().map(|&color| luma(color)).sum::<f32>() / 3.0;
        for pixel in &flat.pixels {
            for value in pixel {
                assert!((value - mean_luma).abs() < 1e-6);
            }
        }

        let mut desaturated = float_image(colors.clone());
        desaturated.scale_saturation(0.0);
        for (pixel, original) in desaturated.pixels.iter().zip(&colors) {
            assert_eq!(*pixel, [luma(*original); 3]);
        }
    }

    #[test]
    fn hsv_round_trip_and_zero_hue_shift_are_identities() {
        let colors = random_colors(1000, 12);
        for &color in &colors {
            let round_trip = hsv_to_rgb(rgb_to_hsv(color));
            for (value, original) in round_trip.iter().zip(color) {
                assert!(
                    (value - original).abs() < 1e-5,
                    "{color:?} -> {round_trip:?}"
                );
            }
        }
        let mut unshifted = float_image(colors.clone());
        unshifted.shift_hue(0.0);
        for (pixel, original) in unshifted.pixels.iter().zip(&colors) {
            for (value, original) in pixel.iter().zip(original) {
                assert!((value - original).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn hue_shift_of_a_third_rotates_primaries_and_wraps_negative_shifts() {
        let mut primaries = float_image(vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        primaries.shift_hue(1.0 / 3.0);
        let expected = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]];
        for (pixel, expected) in primaries.pixels.iter().zip(expected) {
            for (value, expected) in pixel.iter().zip(expected) {
                assert!((value - expected).abs() < 1e-5, "{:?}", primaries.pixels);
            }
        }
        primaries.shift_hue(-1.0 / 3.0);
        assert!(
            (primaries.pixels[0][0] - 1.0).abs() < 1e-5,
            "{:?}",
            primaries.pixels
        );
    }

    #[test]
    fn augment_into_is_augment_image_in_planar_layout() {
        let src = noise_image(50, 40, 13);
        let size = 24;
        let plane = (size * size) as usize;
        for seed in 0..20 {
            let view = augment_image(&src, size, &AugmentOps::default(), &mut seeded(seed));
            let mut out = vec![0u8; 3 * plane];
            augment_into(
                &src,
                size,
                &AugmentOps::default(),
                &mut seeded(seed),
                &mut out,
            );
            for (index, pixel) in view.pixels().enumerate() {
                for channel in 0..3 {
                    assert_eq!(out[channel * plane + index], pixel[channel], "seed {seed}");
                }
            }
        }
    }

    #[test]
    fn fixed_views_are_the_center_view_its_middle_and_its_mirror() {
        let src = noise_image(50, 40, 5);
        let size = 16;
        let plane = (size * size) as usize;
        let view = |fixed: FixedView| {
            let mut out = vec![0u8; 3 * plane];
            fixed_view_into(&src, size, fixed, &mut out);
            RgbImage::from_fn(size, size, |x, y| {
                let at = (y * size + x) as usize;
                image::Rgb([out[at], out[plane + at], out[2 * plane + at]])
            })
        };
        assert_eq!(view(FixedView::Center), center_view(&src, size));
        assert_eq!(
            view(FixedView::Mirrored),
            mirrored(&center_view(&src, size))
        );
        // The centre view covers the middle 40×40 (from x 5); its middle 32×32 starts at (9, 4).
        let middle = image::imageops::crop_imm(&src, 9, 4, 32, 32).to_image();
        assert_eq!(view(FixedView::Zoomed), center_view(&middle, size));
    }

    #[test]
    fn disable_switches_off_named_ops_and_lists_valid_names() {
        let cases = [
            (
                "crop",
                AugmentOps {
                    crop: false,
                    ..AugmentOps::default()
                },
            ),
            (
                "color",
                AugmentOps {
                    color_jitter: false,
                    ..AugmentOps::default()
                },
            ),
            (
                "gray",
                AugmentOps {
                    grayscale: false,
                    ..AugmentOps::default()
                },
            ),
            (
                "flip",
                AugmentOps {
                    flip: false,
                    ..AugmentOps::default()
                },
            ),
            ("all", AugmentOps::none()),
        ];
        for (name, expected) in cases {
            let mut ops = AugmentOps::default();
            assert_eq!(ops.disable(name), Ok(()));
            assert_eq!(ops, expected, "{name}");
        }
        assert!(AugmentOps::none().is_none() && !AugmentOps::default().is_none());

        let mut ops = AugmentOps::default();
        let error = ops
            .disable("hue")
            .expect_err("unknown names must be rejected");
        for name in ["crop", "color", "gray", "flip", "all"] {
            assert!(error.contains(name), "{error}");
        }
        assert_eq!(ops, AugmentOps::default());
    }
}
