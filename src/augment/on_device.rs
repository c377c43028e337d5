//! Augmentation on the device: batches of views drawn on the host ([`ViewDraw`]) and built there
//! (described for the kernel by `kernel_input`), from their own images
//! or from images kept there ([`KeptImages`]: a run's training set, built once for its steps and
//! its evaluations), on this machine's GPU or on a served device (`served`).

use std::sync::Arc;

use burn::tensor::{Device, Tensor};
use cubecl::prelude::Client;
use cubecl::server::Handle;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spreadout_shaders::views::{
    self, Constants, DeviceSources, PackedSources, Source, ViewError, ViewSpec,
};

use super::kernel_input::{constants, specs};
use super::served::{self, ServedSources};
use super::{AugmentOps, FixedView, Normalization, ViewDraw};

/// Images kept on a device for a run (its training set, `train::resident`): views of them are
/// built there with no pixel read on the host, and, on a served device, none sent.
#[derive(Clone)]
pub struct KeptImages {
    home: Home,
}

/// Where kept images are.
#[derive(Clone)]
enum Home {
    /// On this machine's GPU, with the CubeCL device the kernel launches on.
    Local {
        sources: Arc<DeviceSources>,
        device: cubecl::Device,
    },
    /// On a served device, built there by [`served::VIEWS_OP`].
    Served(Arc<ServedSources>),
}

/// The device [`KeptImages::upload`] keeps images on.
#[derive(Clone, Copy)]
pub enum KeepOn<'a> {
    /// This machine's GPU (the CubeCL device of the training device).
    Local(&'a cubecl::Device),
    /// A device another machine serves (`spreadout serve`), whose largest buffer is
    /// `max_buffer` bytes (as its server said).
    Served {
        /// The served device.
        device: &'a Device,
        /// Its largest buffer.
        max_buffer: u64,
    },
}

impl KeptImages {
    /// `images` packed as they come and uploaded to `on`, when their bytes fit `budget` and one
    /// buffer of the device: `Ok(None)` otherwise. Each image is dropped once packed, so only the packed
    /// bytes and the batch being packed are held, not both copies of the set.
    ///
    /// # Errors
    /// The first error `images` gives.
    pub fn upload<E>(
        on: KeepOn<'_>,
        images: impl IntoIterator<Item = Result<Vec<RgbImage>, E>>,
        budget: u64,
    ) -> Result<Option<Self>, E> {
        let budget = match on {
            KeepOn::Local(device) => budget.min(device.client().properties().memory.max_page_size),
            KeepOn::Served { max_buffer, .. } => budget.min(max_buffer),
        };
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
        let home = match on {
            KeepOn::Local(device) => Home::Local {
                sources: Arc::new(packed.upload(&device.client())),
                device: device.clone(),
            },
            KeepOn::Served { device, .. } => {
                Home::Served(Arc::new(ServedSources::upload(packed, device)))
            }
        };
        Ok(Some(Self { home }))
    }

    /// Width and height of each image.
    fn sizes(&self) -> &[(u32, u32)] {
        match &self.home {
            Home::Local { sources, .. } => sources.sizes(),
            Home::Served(sources) => sources.sizes(),
        }
    }

    /// Images kept.
    pub fn len(&self) -> usize {
        self.sizes().len()
    }

    /// Whether no image is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the images take on the device.
    pub fn bytes(&self) -> u64 {
        match &self.home {
            Home::Local { sources, .. } => sources.bytes() as u64,
            Home::Served(sources) => sources.bytes(),
        }
    }
}

/// Where a batch's views read their pixels on this machine's device.
enum LocalSources {
    /// The batch's own images, uploaded with it (each once, however many views it has).
    Batch(Vec<RgbImage>),
    /// Images kept on the device ([`KeptImages`]).
    Kept {
        sources: Arc<DeviceSources>,
        device: cubecl::Device,
    },
}

/// How a batch's views are built.
enum Work {
    /// By the kernel on this machine's GPU, from each view's taps (computed here).
    Local {
        sources: LocalSources,
        specs: Vec<ViewSpec>,
    },
    /// On a served device, from each view's draws alone (the taps computed there).
    Served {
        sources: Arc<ServedSources>,
        views: Vec<(usize, ViewDraw)>,
    },
}

/// A batch of training views drawn on the host, to be built on the device: where their pixels
/// are and each view's description. Made on the batch producer's thread
/// ([`DeviceViews::prepare`], [`DeviceViews::prepare_kept`], [`DeviceViews::fixed`]); the
/// thread that feeds the device only uploads and launches ([`DeviceViews::to_device`]).
pub struct DeviceViews {
    work: Work,
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
            work: Work::Local {
                specs: specs(&sizes, &draw_views(&sizes, rows, ops, seed), size),
                sources: LocalSources::Batch(sources),
            },
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
        Self::of_kept(kept, draw_views(kept.sizes(), rows, ops, seed), size)
    }

    /// The `view`s (evaluation's centre views, `embed::View::CENTER`, or a test-time view) of
    /// `rows` of `kept`.
    pub fn fixed(kept: &KeptImages, rows: &[usize], size: u32, view: FixedView) -> Self {
        let sizes = kept.sizes();
        let draws = rows
            .iter()
            .map(|&row| (row, view.draw(sizes[row].0, sizes[row].1)))
            .collect();
        Self::of_kept(kept, draws, size)
    }

    /// `draws` (each a row of `kept` and its view's draws) at `size`, to build where `kept` is.
    fn of_kept(kept: &KeptImages, draws: Vec<(usize, ViewDraw)>, size: u32) -> Self {
        let work = match &kept.home {
            Home::Local { sources, device } => Work::Local {
                specs: specs(sources.sizes(), &draws, size),
                sources: LocalSources::Kept {
                    sources: Arc::clone(sources),
                    device: device.clone(),
                },
            },
            Home::Served(sources) => Work::Served {
                sources: Arc::clone(sources),
                views: draws,
            },
        };
        Self { work, size }
    }

    /// Views in the batch.
    fn count(&self) -> usize {
        match &self.work {
            Work::Local { specs, .. } => specs.len(),
            Work::Served { views, .. } => views.len(),
        }
    }

    /// The shape of the built views: `[views, 3, size, size]`.
    pub fn shape(&self) -> [usize; 4] {
        let side = self.size as usize;
        [self.count(), 3, side, side]
    }

    /// Bytes that [`DeviceViews::to_device`] sends the device: a batch's images and the views'
    /// tables, or, to a served device, the views' draws.
    pub fn upload_bytes(&self) -> u64 {
        match &self.work {
            Work::Local { sources, specs } => {
                let images = match sources {
                    LocalSources::Batch(images) => {
                        images.iter().map(|image| image.as_raw().len()).sum()
                    }
                    LocalSources::Kept { .. } => 0,
                };
                (images + views::table_bytes(specs.len(), self.size)) as u64
            }
            Work::Served { views, .. } => served::argument_bytes(views.len()),
        }
    }

    /// Whether the kernel can build these views (each crop within its taps); a served device
    /// checks its own, from the draws.
    ///
    /// # Errors
    /// [`ViewError`] naming the view that it cannot.
    pub fn check(&self) -> Result<(), ViewError> {
        match &self.work {
            Work::Local {
                sources: LocalSources::Batch(images),
                specs,
            } => {
                let sizes: Vec<(u32, u32)> = images.iter().map(RgbImage::dimensions).collect();
                views::check(&sizes, specs, self.size)
            }
            Work::Local {
                sources: LocalSources::Kept { sources, .. },
                specs,
            } => views::check(sources.sizes(), specs, self.size),
            Work::Served { .. } => Ok(()),
        }
    }

    /// The network's input: these views built on the device (on `views_on`, the CubeCL device of
    /// the training device, for a batch's own images; where they are kept, otherwise) and
    /// normalised with `normalization`, as a Burn tensor there. Counts the bytes sent
    /// ([`crate::support::uploads`]).
    ///
    /// # Panics
    /// When a view exceeds the kernel's taps: the cache's images keep every crop within them
    /// (see `spreadout_shaders::views::MAX_TAPS`), so anything else is a defect, refused here
    /// rather than inside Burn's fusion stream. When a batch's own images come without
    /// `views_on`.
    pub fn to_device(
        self,
        views_on: Option<&cubecl::Device>,
        normalization: Normalization,
    ) -> Tensor<4> {
        crate::support::uploads::count(self.upload_bytes());
        self.check()
            .unwrap_or_else(|error| panic!("views on the device: {error}"));
        let shape = self.shape();
        let size = self.size;
        match self.work {
            Work::Served { sources, views } => {
                Tensor::from_inner(served::build(&sources, &views, size, &normalization))
            }
            Work::Local { sources, specs } => {
                let device = match &sources {
                    LocalSources::Kept { device, .. } => device.clone(),
                    LocalSources::Batch(_) => views_on
                        .expect("a batch's own views are built on the training device")
                        .clone(),
                };
                let constants = constants(normalization.byte_scale_and_shift());
                Tensor::from_inner(spreadout_shaders::burn_glue::float_tensor_from_kernel(
                    "spreadout views",
                    shape,
                    &device,
                    move |client| {
                        build(client, &sources, &specs, size, &constants)
                            .expect("checked before it was queued")
                    },
                ))
            }
        }
    }
}

/// `specs` of views of `sources` built on the device of `client` at `size`: the network's input,
/// `[n, 3, size, size]` f32, in a buffer there.
///
/// # Errors
/// [`ViewError`] when a view exceeds the kernel's limits (a crop more than about 3× the
/// output's side; the cache's images give at most 2×).
fn build(
    client: &Client,
    sources: &LocalSources,
    specs: &[ViewSpec],
    size: u32,
    constants: &Constants,
) -> Result<Handle, ViewError> {
    match sources {
        LocalSources::Batch(images) => {
            let uploaded =
                DeviceSources::upload(client, &images.iter().map(as_source).collect::<Vec<_>>())?;
            views::build_views(client, &uploaded, specs, size, constants)
        }
        LocalSources::Kept { sources, .. } => {
            views::build_views(client, sources, specs, size, constants)
        }
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
        .to_device(Some(device), Normalization::IDENTITY)
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

/// The draws `View::Augmented { ops, seed }` makes for `rows` of sources of `sizes` (row `r`
/// from a generator seeded `seed + r`), each with the source it is of.
fn draw_views(
    sizes: &[(u32, u32)],
    rows: &[usize],
    ops: &AugmentOps,
    seed: u64,
) -> Vec<(usize, ViewDraw)> {
    rows.iter()
        .enumerate()
        .map(|(row, &source)| {
            let (width, height) = sizes[source];
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(row as u64));
            (source, ViewDraw::sample(width, height, ops, &mut rng))
        })
        .collect()
}
