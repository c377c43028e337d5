//! Augmentation on the device: a view's host draws ([`ViewDraw`]) described as the kernel of
//! `spreadout_shaders::views` takes them (the taps of the same PIL filter the CPU path uses, the
//! flip folded into the column taps), and batches of views built there, from their own images
//! or from images kept there ([`KeptImages`]: a run's training set, built once for its steps and
//! its evaluations).

use std::sync::Arc;

use burn::tensor::Tensor;
use cubecl::prelude::Client;
use cubecl::server::Handle;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spreadout_shaders::views::{
    self, Constants, DeviceSources, Jitter, JitterOp as DeviceOp, PackedSources, Source, Tap,
    ViewError, ViewSpec,
};

use super::{
    AugmentOps, ColorJitter, FixedView, Geometry, JitterOp, LUMA_WEIGHTS, Normalization, ViewDraw,
};
use crate::resample::triangle_taps;

/// Images kept on a device for a run (its training set, `train::resident`), with the CubeCL
/// device they are on: views of them are built there with no pixel read on the host.
#[derive(Clone)]
pub struct KeptImages {
    sources: Arc<DeviceSources>,
    device: cubecl::Device,
}

impl KeptImages {
    /// `images` packed as they come and uploaded to `device`, when their bytes fit `budget` and
    /// one buffer of the device (`Ok(None)` otherwise). Each image is dropped once packed, so
    /// only the packed bytes and the batch being packed are held, not both copies of the set.
    ///
    /// # Errors
    /// The first error `images` gives.
    pub fn upload<E>(
        device: &cubecl::Device,
        images: impl IntoIterator<Item = Result<Vec<RgbImage>, E>>,
        budget: u64,
    ) -> Result<Option<Self>, E> {
        let client = device.client();
        let budget = budget.min(client.properties().memory.max_page_size);
        let mut packed = PackedSources::default();
        for batch in images {
            for image in batch? {
                if (packed.len() + image.as_raw().len()) as u64 > budget
                    || packed.push(as_source(&image)).is_err()
                {
                    return Ok(None);
                }
            }
        }
        Ok(Some(Self {
            sources: Arc::new(packed.upload(&client)),
            device: device.clone(),
        }))
    }

    /// Images kept.
    pub fn len(&self) -> usize {
        self.sources.sizes().len()
    }

    /// Whether no image is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the images take on the device.
    pub fn bytes(&self) -> u64 {
        self.sources.bytes() as u64
    }

    /// The device they are on.
    pub fn device(&self) -> &cubecl::Device {
        &self.device
    }
}

/// Where a batch's views read their pixels on the device.
enum ViewSources {
    /// The batch's own images, uploaded with it (each once, however many views it has).
    Batch(Vec<RgbImage>),
    /// Images kept on the device ([`KeptImages`]).
    Kept(Arc<DeviceSources>),
}

/// A batch of training views drawn on the host, to be built on the device: where their pixels
/// are and each view's description. Made on the batch producer's thread
/// ([`DeviceViews::prepare`], [`DeviceViews::prepare_kept`], [`DeviceViews::fixed`]); the
/// thread that feeds the device only uploads and launches ([`DeviceViews::to_device`]).
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

    /// [`DeviceViews::prepare`] for views of images kept on the device: `rows` index `kept`'s
    /// images, and no pixel is read on the host.
    pub fn prepare_kept(
        kept: &KeptImages,
        rows: &[usize],
        size: u32,
        ops: &AugmentOps,
        seed: u64,
    ) -> Self {
        Self {
            specs: draw_specs(kept.sources.sizes(), rows, size, ops, seed),
            sources: ViewSources::Kept(Arc::clone(&kept.sources)),
            size,
        }
    }

    /// The `view`s (evaluation's centre views, `embed::View::CENTER`, or a test-time view) of
    /// `rows` of `kept`.
    pub fn fixed(kept: &KeptImages, rows: &[usize], size: u32, view: FixedView) -> Self {
        let sizes = kept.sources.sizes();
        Self {
            specs: rows
                .iter()
                .map(|&row| {
                    let (width, height) = sizes[row];
                    view_spec(&view.draw(width, height), row, width, height, size)
                })
                .collect(),
            sources: ViewSources::Kept(Arc::clone(&kept.sources)),
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
            ViewSources::Kept(_) => 0,
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
            ViewSources::Kept(kept) => views::check(kept.sizes(), &self.specs, self.size),
        }
    }

    /// The views built on the device of `client`: the network's input normalised with
    /// `normalization`, `[n, 3, size, size]` f32, in a buffer there.
    ///
    /// # Errors
    /// [`ViewError`] when a view exceeds the kernel's limits (a crop more than about 3× the
    /// output's side; the cache's images give at most 2×).
    fn build(&self, client: &Client, normalization: &Normalization) -> Result<Handle, ViewError> {
        let constants = constants(normalization);
        match &self.sources {
            ViewSources::Batch(images) => {
                let uploaded = DeviceSources::upload(
                    client,
                    &images.iter().map(as_source).collect::<Vec<_>>(),
                )?;
                views::build_views(client, &uploaded, &self.specs, self.size, &constants)
            }
            ViewSources::Kept(kept) => {
                views::build_views(client, kept, &self.specs, self.size, &constants)
            }
        }
    }

    /// The network's input: these views built on `device` (the CubeCL device of the Burn device
    /// the network is on; for kept images, theirs) and normalised with `normalization`, as a
    /// Burn tensor there. Counts the bytes uploaded ([`crate::uploads`]).
    ///
    /// # Panics
    /// When a view exceeds the kernel's taps: the cache's images keep every crop within them
    /// (see `spreadout_shaders::views::MAX_TAPS`), so anything else is a defect, refused here
    /// rather than inside Burn's fusion stream.
    pub fn to_device(self, device: &cubecl::Device, normalization: Normalization) -> Tensor<4> {
        crate::uploads::count(self.upload_bytes());
        self.check()
            .unwrap_or_else(|error| panic!("views on the device: {error}"));
        let shape = self.shape();
        Tensor::from_inner(spreadout_shaders::burn_glue::float_tensor_from_kernel(
            "spreadout views",
            shape,
            device,
            move |client| {
                self.build(client, &normalization)
                    .expect("checked before it was queued")
            },
        ))
    }
}

/// Two training views of each of `images`, built on `device` and read back as 8-bit images: the
/// draws of [`super::two_views`] with image `i` seeded `seed + 2i`, so a preview shows the views
/// the device builds for training, the same as the CPU path's (within one level of 255).
///
/// # Errors
/// [`ViewError`] when an image is too large for the kernel's taps at `size` (more than about 3×
/// the side; images loaded as the cache loads them are at most 2×).
pub fn two_views_on(
    device: &cubecl::Device,
    images: Vec<RgbImage>,
    size: u32,
    ops: &AugmentOps,
    seed: u64,
) -> Result<Vec<[RgbImage; 2]>, ViewError> {
    let count = images.len();
    let rows: Vec<usize> = (0..count).flat_map(|i| [i, i]).collect();
    let views = DeviceViews::prepare(images, &rows, size, ops, seed);
    views.check()?;
    let values = views
        .to_device(device, Normalization::IDENTITY)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("views are floats");
    let plane = (size * size) as usize;
    let view = |row: usize| {
        RgbImage::from_fn(size, size, |x, y| {
            let at = row * 3 * plane + (y * size + x) as usize;
            image::Rgb([0, 1, 2].map(|channel| {
                (values[at + channel * plane] * 255.0)
                    .round()
                    .clamp(0.0, 255.0) as u8
            }))
        })
    };
    Ok((0..count).map(|i| [view(2 * i), view(2 * i + 1)]).collect())
}

/// `image` as a source of the kernel.
fn as_source(image: &RgbImage) -> Source<'_> {
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
