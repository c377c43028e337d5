//! A view's host draws ([`ViewDraw`]) described as the kernel of `spreadout_shaders::views` takes
//! them: the taps of the same PIL filter the CPU path uses, offset to the crop and with the flip
//! folded into the column taps, the jitter's draw, and the normalisation's constants. Used where
//! the kernel runs: this machine's GPU (`on_device`) and a served one (`served`).

use spreadout_shaders::views::{Constants, Jitter, JitterOp as DeviceOp, MAX_TAPS, Tap, ViewSpec};

use super::{ColorJitter, Geometry, JitterOp, LUMA_WEIGHTS, ViewDraw};
use crate::resample::{tap_spans, triangle_taps};

/// The kernel's description of `draws` on sources of `sizes` at `size`.
pub(super) fn specs(sizes: &[(u32, u32)], draws: &[(usize, ViewDraw)], size: u32) -> Vec<ViewSpec> {
    draws
        .iter()
        .map(|&(source, ref draw)| {
            let (width, height) = sizes[source];
            view_spec(draw, source, width, height, size)
        })
        .collect()
}

/// `draw` on source `source` (`width`×`height`) at `size`, as the kernel takes it.
pub(super) fn view_spec(
    draw: &ViewDraw,
    source: usize,
    width: u32,
    height: u32,
    size: u32,
) -> ViewSpec {
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

/// Whether every output sample of `draw` on a `width`×`height` source at `size` reads 1 to
/// [`MAX_TAPS`] source samples, found from the spans [`view_spec`]'s taps would have, without
/// computing them (a request's numbers can make them span the whole source).
///
/// # Errors
/// The axis (`"rows"` or `"columns"`) of the first sample that does not, and how many it reads.
pub(super) fn taps_within(
    draw: &ViewDraw,
    width: u32,
    height: u32,
    size: u32,
) -> Result<(), (&'static str, usize)> {
    let Geometry {
        region,
        resized,
        window,
    } = draw.geometry(width, height, size);
    for (axis, spans) in [
        (
            "rows",
            tap_spans(region.height, resized.1, window.top, window.height),
        ),
        (
            "columns",
            tap_spans(region.width, resized.0, window.left, window.width),
        ),
    ] {
        for (first, end, _) in spans {
            let taps = end.saturating_sub(first);
            if taps == 0 || taps > MAX_TAPS {
                return Err((axis, taps));
            }
        }
    }
    Ok(())
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

/// The kernel's constants for a normalisation's scale and shift of an 8-bit value
/// (`Normalization::byte_scale_and_shift`).
pub(super) fn constants((scale, shift): ([f32; 3], [f32; 3])) -> Constants {
    Constants {
        scale,
        shift,
        luma: LUMA_WEIGHTS,
    }
}
