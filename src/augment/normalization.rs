//! Input normalisation: torchvision's `Normalize(mean, std)`, the last step of the pipeline, with
//! the mean and std measured on the training folder. Statistics are exact integer sums
//! ([`ChannelTotals`]) that the data cache keeps per image, so a run's normalisation costs no
//! pass over the pixels and does not depend on the order images are summed in.

use image::RgbImage;

/// Keeps `Normalize` finite for datasets with a (near-)constant channel.
const MIN_STD: f32 = 1e-3;

/// Per-channel mean/std used by Normalize.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Normalization {
    /// Per-channel (R, G, B) mean, in `[0, 1]` units.
    pub mean: [f32; 3],
    /// Per-channel (R, G, B) standard deviation, in `[0, 1]` units.
    pub std: [f32; 3],
}

impl Normalization {
    /// Leaves values unchanged: mean 0, std 1.
    pub const IDENTITY: Self = Self {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// Channel mean and std (population) over all pixels of all images, in `[0, 1]` units; a std
    /// below 1e-3 is clamped to 1e-3.
    ///
    /// Images are weighted by their pixel count. With no pixels at all this returns
    /// [`Normalization::IDENTITY`], since there is nothing to estimate from.
    /// (The engine gathers the sums while caching, [`Normalization::from_totals`]; this form
    /// serves the tests.)
    #[cfg(test)]
    pub fn from_images(images: &[RgbImage]) -> Self {
        Self::from_totals(&ChannelTotals::of(images))
    }

    /// Per channel, the scale and shift that normalise an 8-bit value `x` as `x · scale + shift`:
    /// `1 / (255 · std)` and `−mean / std` (what the device applies, in one multiply-add).
    pub(crate) fn byte_scale_and_shift(&self) -> ([f32; 3], [f32; 3]) {
        (
            std::array::from_fn(|c| 1.0 / (255.0 * self.std[c])),
            std::array::from_fn(|c| -self.mean[c] / self.std[c]),
        )
    }

    /// [`Normalization::from_images`] from sums gathered beforehand (the cache keeps them per image).
    pub(crate) fn from_totals(totals: &ChannelTotals) -> Self {
        if totals.pixels == 0 {
            return Self::IDENTITY;
        }
        let pixels = totals.pixels as f64;
        let mut mean = [0.0; 3];
        let mut std = [0.0; 3];
        for channel in 0..3 {
            // Totals are exact integers, so E[x²] − E[x]² loses nothing to summation order.
            let channel_mean = totals.sum[channel] as f64 / pixels;
            let variance = (totals.sum_of_squares[channel] as f64 / pixels
                - channel_mean * channel_mean)
                .max(0.0);
            mean[channel] = (channel_mean / 255.0) as f32;
            std[channel] = ((variance.sqrt() / 255.0) as f32).max(MIN_STD);
        }
        Self { mean, std }
    }
}

/// Exact per-channel sums of 8-bit values over a set of images.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelTotals {
    pub(crate) sum: [u64; 3],
    pub(crate) sum_of_squares: [u64; 3],
    pub(crate) pixels: u64,
}

impl ChannelTotals {
    pub(crate) fn of(images: &[RgbImage]) -> Self {
        let mut totals = Self::default();
        for image in images {
            for pixel in image.pixels() {
                for (channel, &value) in pixel.0.iter().enumerate() {
                    let value = u64::from(value);
                    totals.sum[channel] += value;
                    totals.sum_of_squares[channel] += value * value;
                }
            }
            totals.pixels += u64::from(image.width()) * u64::from(image.height());
        }
        totals
    }

    pub(crate) fn merge(mut self, other: Self) -> Self {
        for channel in 0..3 {
            self.sum[channel] += other.sum[channel];
            self.sum_of_squares[channel] += other.sum_of_squares[channel];
        }
        self.pixels += other.pixels;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_statistics_are_population_moments_weighted_by_pixels() {
        let black = RgbImage::from_pixel(1, 1, image::Rgb([0; 3]));
        let white = RgbImage::from_pixel(3, 1, image::Rgb([255; 3]));
        let stats = Normalization::from_images(&[black, white]);
        for channel in 0..3 {
            assert!((stats.mean[channel] - 0.75).abs() < 1e-6, "{stats:?}");
            assert!(
                (stats.std[channel] - 0.75f32.sqrt() * 0.5).abs() < 1e-6,
                "{stats:?}"
            );
        }

        let per_channel = RgbImage::from_fn(4, 2, |x, _| {
            image::Rgb([255, 51, if x % 2 == 0 { 0 } else { 255 }])
        });
        let stats = Normalization::from_images(&[per_channel]);
        assert_eq!(stats.mean, [1.0, 0.2, 0.5]);
        assert_eq!(stats.std, [MIN_STD, MIN_STD, 0.5]);

        assert_eq!(Normalization::from_images(&[]), Normalization::IDENTITY);
    }
}
