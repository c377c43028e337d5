//! Augmentation on the device: a view's host draws ([`ViewDraw`]) described as the kernel of
//! `spreadout_shaders::views` takes them (the taps of the same PIL filter the CPU path uses, the
//! flip folded into the column taps), and batches of views built there.

use cubecl::prelude::Client;
use cubecl::server::Handle;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spreadout_shaders::views::{
    self, Constants, Jitter, JitterOp as DeviceOp, Source, Tap, ViewError, ViewSpec,
};

use super::{AugmentOps, ColorJitter, Geometry, JitterOp, LUMA_WEIGHTS, Normalization, ViewDraw};
use crate::resample::triangle_taps;

/// The training views `View::Augmented { ops, seed }` draws for `images` (image `i` from a
/// generator seeded `seed + i`, as the CPU path draws them), built on the device of `client`:
/// the network's normalised input, `[n, 3, size, size]` f32, in a buffer there.
///
/// # Errors
/// [`ViewError`] when a view exceeds the kernel's limits (a crop more than about 7× the output's
/// side).
pub fn augmented_views_on(
    client: &Client,
    images: &[RgbImage],
    size: u32,
    ops: &AugmentOps,
    seed: u64,
    normalization: &Normalization,
) -> Result<Handle, ViewError> {
    let specs: Vec<ViewSpec> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64));
            let draw = ViewDraw::sample(image.width(), image.height(), ops, &mut rng);
            view_spec(&draw, i, image.width(), image.height(), size)
        })
        .collect();
    let sources: Vec<Source<'_>> = images
        .iter()
        .map(|image| Source {
            width: image.width(),
            height: image.height(),
            pixels: image.as_raw(),
        })
        .collect();
    views::build_views(client, &sources, &specs, size, &constants(normalization))
}

/// `draw` on source `source` (`width`×`height`) at `size`, as the kernel takes it.
fn view_spec(draw: &ViewDraw, source: usize, width: u32, height: u32, size: u32) -> ViewSpec {
    let Geometry {
        region,
        resized,
        window,
    } = draw.geometry(width, height, size);
    // The CPU path offsets the taps by the region as it reads; the kernel reads the source whole.
    let offset = |taps: Vec<Tap>, by: u32| -> Vec<Tap> {
        taps.into_iter()
            .map(|tap| Tap {
                first: tap.first + by,
                ..tap
            })
            .collect()
    };
    let rows = offset(
        triangle_taps(region.height, resized.1, window.top, window.height),
        region.top,
    );
    let mut columns = offset(
        triangle_taps(region.width, resized.0, window.left, window.width),
        region.left,
    );
    // Every colour operation is per pixel or over the whole view, so mirroring the sampling is
    // mirroring the finished view, as the CPU path does last.
    if draw.flip {
        columns.reverse();
    }
    ViewSpec {
        source,
        rows,
        columns,
        jitter: draw.jitter.as_ref().map(device_jitter),
        grayscale: draw.grayscale,
    }
}

fn device_jitter(jitter: &ColorJitter) -> Jitter {
    Jitter {
        order: jitter.order.map(|op| match op {
            JitterOp::Brightness => DeviceOp::Brightness,
            JitterOp::Contrast => DeviceOp::Contrast,
            JitterOp::Saturation => DeviceOp::Saturation,
            JitterOp::Hue => DeviceOp::Hue,
        }),
        brightness: jitter.brightness,
        contrast: jitter.contrast,
        saturation: jitter.saturation,
        hue_shift: jitter.hue_shift,
    }
}

/// The kernel's constants for `normalization`.
fn constants(normalization: &Normalization) -> Constants {
    let (scale, shift) = normalization.byte_scale_and_shift();
    Constants {
        scale,
        shift,
        luma: LUMA_WEIGHTS,
    }
}
