//! Augmentation on the device: a view's host draws ([`ViewDraw`]) described as the kernel of
//! `spreadout_shaders::views` takes them (the taps of the same PIL filter the CPU path uses, the
//! flip folded into the column taps), and batches of views built there, from their own images
//! or from a training set kept there for the run.

use std::sync::Arc;

use cubecl::prelude::Client;
use cubecl::server::Handle;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spreadout_shaders::views::{
    self, Constants, DeviceSources, Jitter, JitterOp as DeviceOp, Source, Tap, ViewError, ViewSpec,
};

use super::{AugmentOps, ColorJitter, Geometry, JitterOp, LUMA_WEIGHTS, Normalization, ViewDraw};
use crate::resample::triangle_taps;

/// Where a batch's views read their pixels on the device.
enum ViewSources {
    /// The batch's own images, uploaded with it (each once, however many views it has).
    Batch(Vec<RgbImage>),
    /// A training set kept on the device for the run (`train::resident`).
    Resident(Arc<DeviceSources>),
}

/// A batch of training views drawn on the host, to be built on the device: where their pixels
/// are and each view's description. Made on the batch producer's thread
/// ([`DeviceViews::prepare`], [`DeviceViews::prepare_resident`]); the training thread only
/// uploads and launches ([`DeviceViews::build`]).
pub struct DeviceViews {
    sources: ViewSources,
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
        let sizes: Vec<(u32, u32)> = sources.iter().map(RgbImage::dimensions).collect();
        Self {
            specs: draw_specs(&sizes, rows, size, ops, seed),
            sources: ViewSources::Batch(sources),
            size,
        }
    }

    /// [`DeviceViews::prepare`] for views of images kept on the device: `rows` index `resident`'s
    /// images, and no pixel is read on the host.
    pub fn prepare_resident(
        resident: &Arc<DeviceSources>,
        rows: &[usize],
        size: u32,
        ops: &AugmentOps,
        seed: u64,
    ) -> Self {
        Self {
            specs: draw_specs(resident.sizes(), rows, size, ops, seed),
            sources: ViewSources::Resident(Arc::clone(resident)),
            size,
        }
    }

    /// The shape of the built views: `[views, 3, size, size]`.
    pub fn shape(&self) -> [usize; 4] {
        let side = self.size as usize;
        [self.specs.len(), 3, side, side]
    }

    /// Bytes that [`DeviceViews::build`] uploads: a batch's images, and the views' tables.
    pub fn upload_bytes(&self) -> u64 {
        let sources = match &self.sources {
            ViewSources::Batch(images) => images.iter().map(|image| image.as_raw().len()).sum(),
            ViewSources::Resident(_) => 0,
        };
        (sources + views::table_bytes(self.specs.len(), self.size)) as u64
    }

    /// Whether the kernel can build these views (each crop within its taps).
    ///
    /// # Errors
    /// [`ViewError`] naming the view that it cannot.
    pub fn check(&self) -> Result<(), ViewError> {
        match &self.sources {
            ViewSources::Batch(images) => {
                let sizes: Vec<(u32, u32)> = images.iter().map(RgbImage::dimensions).collect();
                views::check(&sizes, &self.specs, self.size)
            }
            ViewSources::Resident(resident) => {
                views::check(resident.sizes(), &self.specs, self.size)
            }
        }
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
        let constants = constants(normalization);
        match &self.sources {
            ViewSources::Batch(images) => {
                let uploaded = DeviceSources::upload(
                    client,
                    &images.iter().map(as_source).collect::<Vec<_>>(),
                )?;
                views::build_views(client, &uploaded, &self.specs, self.size, &constants)
            }
            ViewSources::Resident(resident) => {
                views::build_views(client, resident, &self.specs, self.size, &constants)
            }
        }
    }
}

/// `image` as a source of the kernel.
pub(crate) fn as_source(image: &RgbImage) -> Source<'_> {
    Source {
        width: image.width(),
        height: image.height(),
        pixels: image.as_raw(),
    }
}

/// The views `View::Augmented { ops, seed }` draws for `rows` of sources of `sizes`.
fn draw_specs(
    sizes: &[(u32, u32)],
    rows: &[usize],
    size: u32,
    ops: &AugmentOps,
    seed: u64,
) -> Vec<ViewSpec> {
    rows.iter()
        .enumerate()
        .map(|(row, &source)| {
            let (width, height) = sizes[source];
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(row as u64));
            let draw = ViewDraw::sample(width, height, ops, &mut rng);
            view_spec(&draw, source, width, height, size)
        })
        .collect()
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
