//! Inference: images in, L2-normalised embeddings out, in batches on any device.
//!
//! The network runs in evaluation mode (batch norm uses its running statistics) on the
//! deterministic centre view of each image, or on random training views when the two-view
//! similarity distribution is wanted.
//!
//! The file `spreadout embed` writes ([`EmbeddedFolder::write`]) and reads back
//! ([`EmbeddingsFile`]) has its home in `file`.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::augment::{self, AugmentOps, DeviceViews, FixedView, KeptImages, Normalization};
use crate::data::{DataError, ImageSource, Subset};
use crate::model::EmbeddingNet;
use crate::model_files;

mod file;
pub use file::EmbeddingsFile;

/// How each image is turned into the network's input.
#[derive(Debug, Clone, Copy)]
pub enum View {
    /// A deterministic view: the centre view (evaluation, retrieval, export, [`View::CENTER`]),
    /// or one of the near-duplicate finder's test-time views.
    Fixed(FixedView),
    /// A random training view; image `i` uses a generator seeded with `seed + i`.
    Augmented {
        /// Operations to apply.
        ops: AugmentOps,
        /// Base seed.
        seed: u64,
    },
}

impl View {
    /// The centre view.
    pub const CENTER: View = View::Fixed(FixedView::Center);
}

/// A batch of network inputs as the host prepares them: planar 8-bit pixels, `[n, 3, size,
/// size]`, packed four to a 32-bit word (a quarter of the bytes of `f32`) on the producer's
/// thread, so that uploading them is a move, not a copy, on the thread that feeds the device.
/// They are unpacked and normalised there ([`PixelBatch::to_device`]), so the host does only what
/// must be done per image: decoding-time geometry and colour augmentation.
///
/// The packing is strided: byte `k` of word `w` is pixel `k · words + w`. Shifting the row of
/// words by 0, 8, 16 and 24 bits (a broadcast against a constant column) then gives the four
/// quarters of the batch as the four rows of one `[4, words]` tensor, already in pixel order: an
/// element-wise expression fusion runs as one kernel, where bytes packed in order would need
/// their four planes interleaved again (a stack, a copy and a slice of their own).
#[derive(Debug, Clone, PartialEq)]
pub struct PixelBatch {
    /// `4 · words` bytes as the device reads them: little-endian 32-bit words.
    packed: Vec<u8>,
    count: usize,
    size: u32,
}

impl PixelBatch {
    /// The views of every image of `images`, read, prepared and packed in parallel on the host.
    ///
    /// # Errors
    /// [`DataError::Cache`] when an image cannot be read from the cache.
    pub fn prepare<S: ImageSource + ?Sized>(
        images: &S,
        size: u32,
        view: View,
    ) -> Result<Self, DataError> {
        let pixels = 3 * (size as usize) * (size as usize);
        let count = images.image_count();
        let mut bytes = vec![0u8; count * pixels];
        bytes
            .par_chunks_mut(pixels)
            .enumerate()
            .try_for_each(|(i, out)| {
                let image = images.image(i)?;
                match view {
                    View::Fixed(fixed) => augment::fixed_view_into(&image, size, fixed, out),
                    View::Augmented { ops, seed } => {
                        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64));
                        augment::augment_into(&image, size, &ops, &mut rng, out)
                    }
                }
                Ok(())
            })?;
        let words = bytes.len().div_ceil(4);
        let mut packed = vec![0u8; 4 * words];
        packed.par_chunks_mut(4).enumerate().for_each(|(w, word)| {
            for k in 0..4 {
                // The byte of value `b << 8k` in the host's own order (the device reads words
                // as the host wrote them).
                let at = if cfg!(target_endian = "little") {
                    k
                } else {
                    3 - k
                };
                word[at] = bytes.get(k * words + w).copied().unwrap_or(0);
            }
        });
        Ok(Self {
            packed,
            count,
            size,
        })
    }

    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of pixels in the batch.
    fn pixel_count(&self) -> usize {
        self.count * 3 * (self.size as usize).pow(2)
    }

    /// The planar pixels, image after image, unpacked on the host.
    #[cfg(test)]
    pub(crate) fn pixels(&self) -> Vec<u8> {
        let words = self.packed.len() / 4;
        (0..self.pixel_count())
            .map(|p| {
                let k = p / words;
                let at = if cfg!(target_endian = "little") {
                    k
                } else {
                    3 - k
                };
                self.packed[4 * (p % words) + at]
            })
            .collect()
    }

    /// Uploads the pixels and normalises them on the device of `normalization`:
    /// `(x / 255 − mean) / std` per channel, the `[n, 3, size, size]` float input of the network.
    pub fn to_device(self, normalization: &DeviceNormalization) -> Tensor<4> {
        let device = &normalization.scale.device();
        let total = self.pixel_count();
        let words = self.packed.len() / 4;
        let packed = Tensor::<2, Int>::from_data(
            crate::support::uploads::counted(TensorData::from_bytes_vec(
                self.packed,
                [1, words],
                DType::I32,
            )),
            device,
        );
        // An arithmetic shift sign-extends the top byte; the mask keeps the eight bits wanted.
        let side = self.size as usize;
        let pixels = packed
            .bitwise_right_shift(normalization.byte_shifts.clone())
            .bitwise_and_scalar(0xff)
            .reshape([4 * words]);
        let pixels = if total == 4 * words {
            pixels
        } else {
            pixels.slice(0..total)
        };
        let pixels = pixels.reshape([self.count, 3, side, side]).float();
        pixels * normalization.scale.clone() + normalization.shift.clone()
    }
}

/// A batch of the network's input as the host leaves it: built there as 8-bit pixels, or drawn
/// there and built on the device by `spreadout-shaders`' kernel.
pub enum Input {
    /// Pixels built on the host, to upload.
    Built(PixelBatch),
    /// Views to build on the device.
    ToBuild(DeviceViews),
}

impl Input {
    /// The network's input on the device of `constants`; views to build are built where their
    /// images are kept, or, for a batch's own images, on `views_on` (its CubeCL device).
    ///
    /// # Panics
    /// When views of a batch's own images come without the device to build them on.
    pub fn to_device(
        self,
        constants: &DeviceNormalization,
        views_on: Option<&cubecl::Device>,
    ) -> Tensor<4> {
        match self {
            Self::Built(pixels) => pixels.to_device(constants),
            Self::ToBuild(views) => views.to_device(views_on, constants.host),
        }
    }
}

/// The constants of the device's input path, uploaded once per run or embedding pass, not per
/// batch: a [`Normalization`] as the two per-channel constants the device applies,
/// `x · 1 / (255 · std) − mean / std`, and the column of shifts that unpacks a [`PixelBatch`].
#[derive(Debug, Clone)]
pub struct DeviceNormalization {
    /// The normalisation itself, for views built on the device.
    host: Normalization,
    scale: Tensor<4>,
    shift: Tensor<4>,
    /// `[[0], [8], [16], [24]]`: the bits of each byte of a packed word.
    byte_shifts: Tensor<2, Int>,
}

impl DeviceNormalization {
    /// The constants of `normalization` on `device`.
    pub fn new(normalization: &Normalization, device: &Device) -> Self {
        let channel = |values: [f32; 3]| {
            Tensor::<4>::from_data(
                crate::support::uploads::counted(TensorData::new(values.to_vec(), [1, 3, 1, 1])),
                device,
            )
        };
        let (scale, shift) = normalization.byte_scale_and_shift();
        Self {
            host: *normalization,
            scale: channel(scale),
            shift: channel(shift),
            byte_shifts: Tensor::from_data(
                crate::support::uploads::counted(TensorData::new(vec![0i32, 8, 16, 24], [4, 1])),
                device,
            ),
        }
    }
}

/// Embeds every image of `images`; returns a row-major `n × dim` matrix.
///
/// # Errors
/// [`DataError::Cache`] when an image cannot be read from the cache.
pub fn embed_images<S: ImageSource + ?Sized>(
    net: &EmbeddingNet,
    images: &S,
    size: u32,
    normalization: &Normalization,
    view: View,
    batch_size: usize,
) -> Result<Vec<f32>, DataError> {
    embed_images_until(net, images, size, normalization, view, batch_size, &|| true)
        .map(|embedded| embedded.expect("never stopped"))
}

/// [`embed_images`] that asks `keep_going` before each batch and returns `None` once it says
/// no. The next batch is read and prepared on the host while the device embeds the current one,
/// so only a few batches of pixels are ever in memory, however many images there are.
///
/// # Errors
/// [`DataError::Cache`] when an image cannot be read from the cache.
pub fn embed_images_until<S: ImageSource + ?Sized>(
    net: &EmbeddingNet,
    images: &S,
    size: u32,
    normalization: &Normalization,
    view: View,
    batch_size: usize,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Vec<f32>>, DataError> {
    let pass = EmbedPass {
        images,
        kept: None,
        size,
        view,
        batch_size,
    };
    embed_pass(net, &pass, normalization, false, keep_going)
        .map(|embedded| embedded.map(|embedded| embedded.rows))
}

/// Embeddings read back to the host and, when asked for, still on the device too.
pub struct KeptEmbeddings {
    /// Row-major `n × dim`.
    pub rows: Vec<f32>,
    /// The same rows on the device, `[n, dim]`; `None` when not kept or for no images.
    pub on_device: Option<Tensor<2>>,
}

/// What an embedding pass embeds, batch by batch.
pub struct EmbedPass<'a, S: ?Sized> {
    /// The images, read from the cache and prepared on the host ...
    pub images: &'a S,
    /// ... unless they are kept on the device too (image `i` as its row `i`, as a run keeps its
    /// training images): their views are then built there, and no pixel is read on the host.
    pub kept: Option<&'a KeptImages>,
    /// The network's input side.
    pub size: u32,
    /// How each image becomes the network's input.
    pub view: View,
    /// Images per batch.
    pub batch_size: usize,
}

/// The loop behind [`embed_images_until`]: the rows of `pass` read back, and, with `keep`, the
/// same rows still on the device (for a search there, an evaluation's kNN, that then needs no
/// second upload). Asks `keep_going` before each batch and returns `None` once it says no.
///
/// # Errors
/// [`DataError::Cache`] when an image cannot be read from the cache.
///
/// # Panics
/// When `pass` keeps fewer images on the device than it embeds.
pub fn embed_pass<S: ImageSource + ?Sized>(
    net: &EmbeddingNet,
    pass: &EmbedPass<'_, S>,
    normalization: &Normalization,
    keep: bool,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Option<KeptEmbeddings>, DataError> {
    let EmbedPass {
        images,
        kept,
        size,
        view,
        batch_size,
    } = *pass;
    if let Some(kept) = kept {
        assert!(
            kept.len() >= images.image_count(),
            "every image embedded is kept"
        );
    }
    let net = net.valid();
    let device = net.devices().first().cloned().unwrap_or_default();
    let constants = DeviceNormalization::new(normalization, &device);
    let batch_size = batch_size.max(1);
    let order: Vec<usize> = (0..images.image_count()).collect();
    let chunks: Vec<&[usize]> = order.chunks(batch_size).collect();
    let prepare = |chunk_index: usize| {
        let view = match view {
            View::Fixed(fixed) => View::Fixed(fixed),
            View::Augmented { ops, seed } => View::Augmented {
                ops,
                seed: seed.wrapping_add((chunk_index * batch_size) as u64),
            },
        };
        let rows = chunks[chunk_index];
        Ok(match kept {
            Some(kept) => Input::ToBuild(match view {
                View::Fixed(fixed) => DeviceViews::fixed(kept, rows, size, fixed),
                View::Augmented { ops, seed } => {
                    DeviceViews::prepare_kept(kept, rows, size, &ops, seed)
                }
            }),
            None => Input::Built(PixelBatch::prepare(
                &Subset {
                    source: images,
                    indices: rows,
                },
                size,
                view,
            )?),
        })
    };
    crate::support::prefetch::scoped(PREFETCH_DEPTH, chunks.len(), prepare, |prepared| {
        // Grows batch by batch: the row width is the model's `dim`, known once a batch is back.
        // Each batch is read one batch late, once the next is queued, so the device works on
        // the next while the host waits for this one (as training reads its loss).
        let mut out = Vec::new();
        let mut on_device = Vec::new();
        let mut read = |embedded: Tensor<2>, out: &mut Vec<f32>| {
            if keep {
                on_device.push(embedded.clone());
            }
            out.extend(
                embedded
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("embeddings are floats"),
            );
        };
        let mut pending: Option<Tensor<2>> = None;
        for batch in prepared {
            if !keep_going() {
                return Ok(None);
            }
            // Views of kept images are built where those are.
            let embedded = net.forward(batch?.to_device(&constants, None));
            if let Some(previous) = pending.replace(embedded) {
                read(previous, &mut out);
            }
        }
        if let Some(last) = pending {
            read(last, &mut out);
        }
        let on_device = (keep && !on_device.is_empty()).then(|| Tensor::cat(on_device, 0));
        Ok(Some(KeptEmbeddings {
            rows: out,
            on_device,
        }))
    })
}

/// The embedding of one image file from anywhere with `model`, decoded and centre-cropped the
/// way its training data was: a query from outside a collection.
///
/// # Errors
/// [`DataError`] naming the file when it cannot be decoded.
pub fn embed_file(model: &model_files::LoadedModel, path: &Path) -> Result<Vec<f32>, DataError> {
    let size = model.config.model.image_size;
    let image = crate::data::load_image(path, size)?;
    embed_images(
        &model.net,
        std::slice::from_ref(&image),
        size,
        &model.config.normalization,
        View::CENTER,
        1,
    )
}

/// Batches prepared ahead of the device while embedding.
const PREFETCH_DEPTH: usize = 2;

/// A folder embedded with a trained model: the decoded set (entries, labels, skipped files) and
/// one row per usable image.
pub struct EmbeddedFolder {
    /// The images and what was skipped.
    pub set: crate::data::ImageSet,
    /// Row-major `set.entries.len() × dim` embeddings, centre views.
    pub embeddings: Vec<f32>,
    /// Embedding dimension.
    pub dim: usize,
}

/// Embeds every image of `dir` with `model`, centre views at its input size. Images come from
/// the folder's pixel cache (filled first where needed; `progress` is that of
/// [`crate::data::load`], return `false` to cancel), and the embeddings themselves are kept in
/// the cache ([`embed_set`]), so opening the same pair again embeds nothing.
///
/// # Errors
/// Those of [`crate::data::load`].
pub fn embed_folder(
    model: &model_files::LoadedModel,
    dir: &Path,
    cache: &crate::data::PixelCache,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<EmbeddedFolder, DataError> {
    let size = model.config.model.image_size;
    let set = crate::data::load_folder(dir, cache, size, progress)?;
    // The fill is done; asking its callback again at its end before each batch keeps a cancel
    // (the app's, the CLI's Ctrl-C) honoured during the forward passes too.
    let keep_going = || progress(set.len(), set.len());
    let embeddings = embed_set(model, &set, cache, FixedView::Center, &keep_going)?
        .ok_or_else(|| DataError::Canceled(dir.to_owned()))?;
    Ok(EmbeddedFolder {
        set,
        embeddings,
        dim: model.config.model.dim,
    })
}

/// `view` of every image of `set` (cached at `model`'s input size) embedded with `model`:
/// row-major `n × dim`, kept in `cache` per (model file content, folder content, view), so that
/// asking again embeds nothing. `None` once `keep_going` says no (asked before each batch).
///
/// # Errors
/// [`DataError::Cache`] when an image cannot be read from the cache.
pub fn embed_set(
    model: &model_files::LoadedModel,
    set: &crate::data::ImageSet,
    cache: &crate::data::PixelCache,
    view: FixedView,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Vec<f32>>, DataError> {
    let size = model.config.model.image_size;
    let dim = model.config.model.dim;
    let view_name = match view {
        // The centre view's key has no suffix: caches kept before there were other views stay.
        FixedView::Center => "",
        FixedView::Zoomed => "-zoomed",
        FixedView::Mirrored => "-mirrored",
    };
    let key = format!(
        "{}-{}-{size}{view_name}",
        model.digest, set.fingerprint.digest
    );
    if let Some(embeddings) = cache.embeddings(&key, set.len(), dim) {
        return Ok(Some(embeddings));
    }
    let Some(embeddings) = embed_images_until(
        &model.net,
        set,
        size,
        &model.config.normalization,
        View::Fixed(view),
        256,
        keep_going,
    )?
    else {
        return Ok(None);
    };
    if let Err(error) = cache.keep_embeddings(&key, &embeddings, dim) {
        // Only a later reopening gets slower.
        tracing::warn!("{error}");
    }
    Ok(Some(embeddings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    #[test]
    fn device_normalization_is_the_host_formula_for_every_byte() {
        // 3 images of 5×5: 225 bytes, not a multiple of four, so the last word is padded.
        let images: Vec<RgbImage> = (0..3u32)
            .map(|k| {
                RgbImage::from_fn(5, 5, |x, y| {
                    image::Rgb([
                        (x * 50 + k) as u8,
                        (y * 60 + 7 * k) as u8,
                        255 - (x * y * 9) as u8,
                    ])
                })
            })
            .collect();
        let batch = PixelBatch::prepare(images.as_slice(), 5, View::CENTER).unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.pixels().len(), 3 * 3 * 25);
        let norm = Normalization {
            mean: [0.45, 0.5, 0.55],
            std: [0.2, 0.25, 0.3],
        };
        let bytes = batch.pixels();
        let on_device: Vec<f32> = batch
            .to_device(&DeviceNormalization::new(&norm, &Device::flex()))
            .into_data()
            .try_to_vec()
            .unwrap();
        for (index, (&byte, &value)) in bytes.iter().zip(&on_device).enumerate() {
            let channel = (index / 25) % 3;
            let expected = (f32::from(byte) / 255.0 - norm.mean[channel]) / norm.std[channel];
            assert!(
                (value - expected).abs() < 1e-5,
                "pixel {index}: {value} vs {expected}"
            );
        }
        // The centre view of a 5×5 image at size 5 is the image itself, planar.
        assert_eq!(
            bytes[..25],
            images[0].pixels().map(|p| p[0]).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn an_image_at_the_mean_normalizes_to_zero() {
        let color = [30u8, 140, 220];
        let image = RgbImage::from_pixel(17, 11, image::Rgb(color));
        let norm = Normalization {
            mean: color.map(|value| f32::from(value) / 255.0),
            std: [0.1, 0.2, 0.3],
        };
        let values: Vec<f32> = PixelBatch::prepare(std::slice::from_ref(&image), 8, View::CENTER)
            .unwrap()
            .to_device(&DeviceNormalization::new(&norm, &Device::flex()))
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(values.iter().all(|value| value.abs() < 1e-4), "{values:?}");
    }

    #[test]
    fn an_embeddings_file_reads_back_names_that_are_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        let odd = {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(b"caf\xe9, \xff.png").to_owned()
        };
        #[cfg(not(unix))]
        let odd = std::ffi::OsString::from("café, ü.png");
        let names = [std::ffi::OsString::from("a.png"), odd];
        let entries = names
            .iter()
            .map(|name| crate::data::ImageEntry {
                path: dir.path().join(name),
                label: None,
                stamp: crate::data::FileStamp::default(),
            })
            .collect();
        let folder = EmbeddedFolder {
            set: crate::data::ImageSet::in_memory(
                dir.path().to_owned(),
                entries,
                vec![RgbImage::new(2, 2); 2],
                Vec::new(),
            ),
            embeddings: vec![1.0, 0.0, 0.6, 0.8],
            dim: 2,
        };
        // The model's name is not UTF-8 either; it need not exist to be recorded.
        let model = dir.path().join(&names[1]).with_extension("safetensors");
        let out = dir.path().join("embeddings.safetensors");
        folder.write(&out, &model).unwrap();
        assert!(EmbeddingsFile::is_one(&out));
        let read = EmbeddingsFile::read(&out).unwrap();
        assert_eq!(
            read,
            EmbeddingsFile {
                embeddings: folder.embeddings.clone(),
                dim: 2,
                paths: names.iter().map(|name| dir.path().join(name)).collect(),
                model,
            }
        );
    }

    #[test]
    fn a_cancel_during_the_forward_passes_of_a_folder_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        for i in 0..3 {
            RgbImage::new(8, 8)
                .save(images.join(format!("{i}.png")))
                .unwrap();
        }
        let model_config = crate::model::ModelConfig::resnet18(2, 4, 8);
        let model = model_files::LoadedModel {
            net: model_config.init(&Device::flex()),
            config: model_files::ExportedConfig {
                model: model_config,
                normalization: Normalization::IDENTITY,
                tau: 0.1,
                steps: 0,
            },
            digest: "test".to_owned(),
        };
        let cache = crate::data::PixelCache::at(dir.path().join("cache"));
        // The fill ends by reporting all done; a Ctrl-C (or the app's Cancel) comes after it,
        // while the images are embedded.
        let ends = std::sync::atomic::AtomicUsize::new(0);
        let progress = |done: usize, total: usize| {
            done < total || ends.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
        };
        let canceled = embed_folder(&model, &images, &cache, &progress);
        assert!(
            matches!(canceled, Err(DataError::Canceled(ref folder)) if *folder == images),
            "{:?}",
            canceled.err()
        );
        assert!(embed_folder(&model, &images, &cache, &|_, _| true).is_ok());
    }

    #[test]
    fn a_stopped_embedding_returns_nothing() {
        let net = crate::model::ModelConfig::resnet18(2, 4, 8).init(&Device::flex());
        let images: Vec<RgbImage> = (0..6).map(|_| RgbImage::new(8, 8)).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let stopped = embed_images_until(
            &net,
            images.as_slice(),
            8,
            &Normalization::IDENTITY,
            View::CENTER,
            2,
            &|| calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 1,
        );
        assert!(stopped.unwrap().is_none());
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "stops at the second batch"
        );
        let all = embed_images(
            &net,
            images.as_slice(),
            8,
            &Normalization::IDENTITY,
            View::CENTER,
            4,
        )
        .unwrap();
        assert_eq!(all.len(), 6 * 4);
    }
}
