//! PIL's antialiased bilinear ("triangle") resampling, exact to the sample, which is what
//! torchvision's `Resize` and `RandomResizedCrop` do to a PIL image. Two users: the data cache
//! shrinks photos with it when it decodes them ([`resize_shorter_side`]), and augmentation cuts its
//! crops and centre views with it (`resize_region`). It is not an augmentation itself, so it
//! lives here, below both.
//!
//! Resampled pixels stay `f32` in `[0, 1]` (`FloatImage`) until they are stored as 8-bit, so
//! augmentation's colour adjustments that follow do not quantise in between.

use std::ops::Deref;

use image::{ImageBuffer, Rgb, RgbImage};
use spreadout_shaders::views::Tap;

/// A `[0, 1]` value as the 8-bit pixel PIL would store (ToTensor later divides by 255).
fn to_u8(value: f32) -> u8 {
    (value.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Panics on what no view or resize can be made of (an empty image or output).
pub(crate) fn check_inputs(src: &RgbImage, size: u32) {
    assert!(size > 0, "augmentation output size must be positive");
    assert!(
        src.width() > 0 && src.height() > 0,
        "cannot augment an empty {}x{} image",
        src.width(),
        src.height()
    );
}

/// torchvision `Resize(size)` on a PIL image: the shorter side becomes `size`, the longer one is
/// scaled and truncated, with PIL's antialiased bilinear filter. The data cache shrinks photos
/// with it, so cached pixels are those torchvision's first resize would give.
///
/// # Panics
/// If `size` is 0 or `src` has no pixels.
pub fn resize_shorter_side(src: &RgbImage, size: u32) -> RgbImage {
    check_inputs(src, size);
    let (width, height) = resized_shorter_side(src.width(), src.height(), size);
    let whole = PixelRect {
        left: 0,
        top: 0,
        width,
        height,
    };
    resize_region(src, PixelRect::covering(src), (width, height), whole).to_rgb8()
}

/// Width and height of a `width`×`height` image after torchvision's `Resize(size)`.
pub(crate) fn resized_shorter_side(width: u32, height: u32, size: u32) -> (u32, u32) {
    let scaled_long_side = |long: u32, short: u32| {
        u32::try_from(u64::from(size) * u64::from(long) / u64::from(short)).unwrap_or(u32::MAX)
    };
    if width <= height {
        (size, scaled_long_side(height, width))
    } else {
        (scaled_long_side(width, height), size)
    }
}

/// An axis-aligned rectangle of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PixelRect {
    pub(crate) left: u32,
    pub(crate) top: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl PixelRect {
    /// The whole of `image`.
    pub(crate) fn covering(image: &RgbImage) -> Self {
        Self {
            left: 0,
            top: 0,
            width: image.width(),
            height: image.height(),
        }
    }
}

/// Resamples `region` of `src` to `resized` (width, height) with PIL's antialiased bilinear
/// (triangle) filter, which is what torchvision uses for PIL images, but computes only the
/// `window` of that resized image. This keeps the centre view cheap for extreme aspect ratios:
/// the vertical pass covers only the columns the window's column taps read, so the work follows
/// the window, not the region. `src` may borrow its pixels (a served device's kept buffer).
pub(crate) fn resize_region<C: Deref<Target = [u8]>>(
    src: &ImageBuffer<Rgb<u8>, C>,
    region: PixelRect,
    resized: (u32, u32),
    window: PixelRect,
) -> FloatImage {
    let row_taps = triangle_taps(region.height, resized.1, window.top, window.height);
    let column_taps = triangle_taps(region.width, resized.0, window.left, window.width);
    let source: &[u8] = src.as_raw();
    let source_stride = src.width() as usize * 3;
    // The region's columns that the column taps read, first to last.
    let span_first = column_taps.iter().map(|tap| tap.first as usize).min();
    let span_end = column_taps
        .iter()
        .map(|tap| tap.first as usize + tap.weights.len())
        .max();
    let (span_first, span_end) = span_first.zip(span_end).unwrap_or((0, 0));
    // At least one, so that the passes below chunk the buffer even for an empty window.
    let span_width = (span_end - span_first).max(1);
    let span_start = (region.left as usize + span_first) * 3;

    // Vertical pass first, over the columns read, in 0–255 units.
    let mut rows_resampled = vec![[0.0f32; 3]; window.height as usize * span_width];
    for (taps, resampled_row) in row_taps
        .iter()
        .zip(rows_resampled.chunks_exact_mut(span_width))
    {
        for (offset, &weight) in taps.weights.iter().enumerate() {
            let y = region.top as usize + taps.first as usize + offset;
            let row_start = y * source_stride + span_start;
            let source_row = &source[row_start..row_start + (span_end - span_first) * 3];
            for (accumulated, pixel) in resampled_row.iter_mut().zip(source_row.chunks_exact(3)) {
                for channel in 0..3 {
                    accumulated[channel] += weight * f32::from(pixel[channel]);
                }
            }
        }
    }

    let mut pixels = Vec::with_capacity(window.width as usize * window.height as usize);
    for resampled_row in rows_resampled.chunks_exact(span_width) {
        for taps in &column_taps {
            let mut accumulated = [0.0f32; 3];
            for (weight, pixel) in taps
                .weights
                .iter()
                .zip(&resampled_row[taps.first as usize - span_first..])
            {
                for channel in 0..3 {
                    accumulated[channel] += weight * pixel[channel];
                }
            }
            pixels.push(accumulated.map(|value| (value / 255.0).clamp(0.0, 1.0)));
        }
    }
    FloatImage {
        width: window.width,
        height: window.height,
        pixels,
    }
}

/// The source samples, `first..end`, that each output sample of `window_start..` (`window_len`
/// of them) reads when `input_len` samples are resampled to `output_len` with PIL's triangle:
/// the spans of [`triangle_taps`], found without computing a weight, so that a caller can bound
/// the taps before it computes them.
pub(crate) fn tap_spans(
    input_len: u32,
    output_len: u32,
    window_start: u32,
    window_len: u32,
) -> impl Iterator<Item = (usize, usize, f64)> {
    let scale = f64::from(input_len) / f64::from(output_len);
    let support = scale.max(1.0);
    (window_start..window_start + window_len).map(move |output| {
        let center = (f64::from(output) + 0.5) * scale;
        let first = (center - support + 0.5).floor().max(0.0) as usize;
        let end = ((center + support + 0.5).floor() as usize).min(input_len as usize);
        (first, end, center)
    })
}

/// PIL's antialiased bilinear weights of each output sample of the window (see [`tap_spans`]).
///
/// A tap (the source samples, and their normalised weights, that make up one output sample) is
/// the device kernel's type, which builds views from the same taps.
pub(crate) fn triangle_taps(
    input_len: u32,
    output_len: u32,
    window_start: u32,
    window_len: u32,
) -> Vec<Tap> {
    let filter_scale = (f64::from(input_len) / f64::from(output_len)).max(1.0);
    tap_spans(input_len, output_len, window_start, window_len)
        .map(|(first, end, center)| {
            let raw: Vec<f64> = (first..end)
                .map(|input| (1.0 - ((input as f64 - center + 0.5) / filter_scale).abs()).max(0.0))
                .collect();
            // The source sample containing `center` always has weight >= 0.5, so total > 0.
            let total: f64 = raw.iter().sum();
            Tap {
                first: first as u32,
                weights: raw.iter().map(|weight| (weight / total) as f32).collect(),
            }
        })
        .collect()
}

/// An RGB image as `f32` in `[0, 1]`, row-major HWC: what the resampler produces. Augmentation
/// adds its colour operations to it (`crate::augment`), which is why the fields are the crate's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FloatImage {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixels: Vec<[f32; 3]>,
}

impl FloatImage {
    /// As 8-bit pixels, rounded as PIL stores them.
    pub(crate) fn to_rgb8(&self) -> RgbImage {
        RgbImage::from_fn(self.width, self.height, |x, y| {
            image::Rgb(self.pixels[y as usize * self.width as usize + x as usize].map(to_u8))
        })
    }

    /// As planar (CHW) 8-bit values into `out` (len 3 × pixels), the layout the network reads.
    pub(crate) fn write_planar_u8(&self, out: &mut [u8]) {
        let plane = self.pixels.len();
        assert_eq!(
            out.len(),
            3 * plane,
            "output buffer must hold 3 * {} * {} bytes",
            self.width,
            self.height
        );
        for (channel, out_plane) in out.chunks_exact_mut(plane).enumerate() {
            for (value, pixel) in out_plane.iter_mut().zip(&self.pixels) {
                *value = to_u8(pixel[channel]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn noise_image(width: u32, height: u32, seed: u64) -> RgbImage {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        RgbImage::from_fn(width, height, |_, _| image::Rgb(rng.random()))
    }

    #[test]
    fn resizing_a_window_matches_cropping_the_full_resize() {
        let src = noise_image(37, 23, 3);
        let region = PixelRect {
            left: 3,
            top: 2,
            width: 30,
            height: 19,
        };
        let resized = (50, 31);
        let full = resize_region(
            &src,
            region,
            resized,
            PixelRect {
                left: 0,
                top: 0,
                width: 50,
                height: 31,
            },
        );
        let window = PixelRect {
            left: 7,
            top: 5,
            width: 20,
            height: 10,
        };
        let windowed = resize_region(&src, region, resized, window);
        for y in 0..window.height {
            for x in 0..window.width {
                let full_index = ((y + window.top) * full.width + x + window.left) as usize;
                assert_eq!(
                    windowed.pixels[(y * window.width + x) as usize],
                    full.pixels[full_index]
                );
            }
        }
    }

    #[test]
    fn triangle_taps_follow_pil_antialiased_bilinear() {
        // Halving: the triangle widens to support 2, centred at 1.0 for the first output.
        let halving = triangle_taps(4, 2, 0, 2);
        assert_eq!(halving[0].first, 0);
        let expected = [0.75 / 1.75, 0.75 / 1.75, 0.25 / 1.75];
        for (weight, expected) in halving[0].weights.iter().zip(expected) {
            assert!((weight - expected).abs() < 1e-6, "{:?}", halving[0]);
        }
        for taps in triangle_taps(7, 3, 0, 3)
            .iter()
            .chain(&triangle_taps(3, 7, 0, 7))
        {
            let total: f32 = taps.weights.iter().sum();
            assert!((total - 1.0).abs() < 1e-6);
        }
        for (output, taps) in triangle_taps(5, 5, 0, 5).iter().enumerate() {
            let kept: Vec<_> = taps
                .weights
                .iter()
                .enumerate()
                .filter(|(_, weight)| **weight > 0.0)
                .collect();
            assert_eq!(
                kept,
                [(output - taps.first as usize, &1.0)],
                "same size must be the identity"
            );
        }
    }
}
