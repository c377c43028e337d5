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

/// A batch of training views drawn on the host, to be built on the device: the batch's source
/// images (each once, however many views it has) and each view's description. Made on the batch
/// producer's thread ([`DeviceViews::prepare`]); the training thread only uploads and launches
/// ([`DeviceViews::build`]).
pub struct DeviceViews {
    sources: Vec<RgbImage>,
    specs: Vec<ViewSpec>,
    size: u32,
}

impl DeviceViews {
    /// The views `View::Augmented { ops, seed }` draws for `rows` of `sources` (row `r` from a
    /// generator seeded `seed + r`, as the CPU path draws them), at `size`×`size`.
    pub fn prepare(
        sources: Vec<RgbImage>,
        rows: &[usize],
        size: u32,
        ops: &AugmentOps,
        seed: u64,
    ) -> Self {
        let specs = rows
            .iter()
            .enumerate()
            .map(|(row, &source)| {
                let image = &sources[source];
                let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(row as u64));
                let draw = ViewDraw::sample(image.width(), image.height(), ops, &mut rng);
                view_spec(&draw, source, image.width(), image.height(), size)
            })
            .collect();
        Self {
            sources,
            specs,
            size,
        }
    }

    /// The shape of the built views: `[views, 3, size, size]`.
    pub fn shape(&self) -> [usize; 4] {
        let side = self.size as usize;
        [self.specs.len(), 3, side, side]
    }

    /// Bytes that [`DeviceViews::build`] uploads: the sources and the views' tables.
    pub fn upload_bytes(&self) -> u64 {
        let sources: usize = self.sources.iter().map(|image| image.as_raw().len()).sum();
        (sources + views::table_bytes(self.specs.len(), self.size)) as u64
    }

    /// Whether the kernel can build these views (each crop within its taps).
    ///
    /// # Errors
    /// [`ViewError`] naming the view that it cannot.
    pub fn check(&self) -> Result<(), ViewError> {
        views::check(&self.sources(), &self.specs, self.size)
    }

    fn sources(&self) -> Vec<Source<'_>> {
        self.sources
            .iter()
            .map(|image| Source {
                width: image.width(),
                height: image.height(),
                pixels: image.as_raw(),
            })
            .collect()
    }

    /// The views built on the device of `client`: the network's input normalised with
    /// `normalization`, `[n, 3, size, size]` f32, in a buffer there.
    ///
    /// # Errors
    /// [`ViewError`] when a view exceeds the kernel's limits (a crop more than about 3× the
    /// output's side; the cache's images give at most 2×).
    pub fn build(
        &self,
        client: &Client,
        normalization: &Normalization,
    ) -> Result<Handle, ViewError> {
        views::build_views(
            client,
            &self.sources(),
            &self.specs,
            self.size,
            &constants(normalization),
        )
    }
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
