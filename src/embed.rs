//! Inference: images in, L2-normalised embeddings out, in batches on any device.
//!
//! The network runs in evaluation mode (batch norm uses its running statistics) on the
//! deterministic centre view of each image, or on random training views when the two-view
//! similarity distribution is wanted.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::augment::{self, AugmentOps, Normalization};
use crate::model::EmbeddingNet;

/// How each image is turned into the network's input.
#[derive(Debug, Clone, Copy)]
pub enum View {
    /// The deterministic centre view (evaluation, retrieval, export).
    Center,
    /// A random training view; image `i` uses a generator seeded with `seed + i`.
    Augmented {
        /// Operations to apply.
        ops: AugmentOps,
        /// Base seed.
        seed: u64,
    },
}

/// Builds the normalised `[n, 3, size, size]` input for `images`, in parallel.
pub fn input_batch(
    images: &[&RgbImage],
    size: u32,
    normalization: &Normalization,
    view: View,
    device: &Device,
) -> Tensor<4> {
    let pixels = 3 * (size as usize) * (size as usize);
    let mut data = vec![0f32; images.len() * pixels];
    data.par_chunks_mut(pixels)
        .zip(images.par_iter())
        .enumerate()
        .for_each(|(i, (out, image))| match view {
            View::Center => augment::center_view_into(image, size, normalization, out),
            View::Augmented { ops, seed } => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64));
                augment::augment_into(image, size, &ops, normalization, &mut rng, out)
            }
        });
    Tensor::from_data(
        TensorData::new(data, [images.len(), 3, size as usize, size as usize]),
        device,
    )
}

/// Embeds every image (owned or borrowed, so a sample needs no copies); returns a row-major
/// `n × dim` matrix.
pub fn embed_images<I: std::borrow::Borrow<RgbImage>>(
    net: &EmbeddingNet,
    images: &[I],
    size: u32,
    normalization: &Normalization,
    view: View,
    batch_size: usize,
) -> Vec<f32> {
    let net = net.valid();
    let device = net.devices().first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (chunk_index, chunk) in images.chunks(batch_size.max(1)).enumerate() {
        let refs: Vec<&RgbImage> = chunk.iter().map(|image| image.borrow()).collect();
        let view = match view {
            View::Center => View::Center,
            View::Augmented { ops, seed } => View::Augmented {
                ops,
                seed: seed.wrapping_add((chunk_index * batch_size) as u64),
            },
        };
        let input = input_batch(&refs, size, normalization, view, &device);
        let embeddings: Vec<f32> = net
            .forward(input)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("embeddings are floats");
        out.extend(embeddings);
    }
    out
}

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

/// Decodes every image of `dir` at the model's input size and embeds it; `progress` is that of
/// [`crate::data::load`] (return `false` to cancel).
pub fn embed_folder(
    model: &crate::export::LoadedModel,
    dir: &std::path::Path,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<EmbeddedFolder, crate::data::DataError> {
    let size = model.config.model.image_size;
    let set = crate::data::load_folder(dir, size, progress)?;
    let embeddings = embed_images(
        &model.net,
        &set.images,
        size,
        &model.config.normalization,
        View::Center,
        256,
    );
    Ok(EmbeddedFolder {
        set,
        embeddings,
        dim: model.config.model.dim,
    })
}

impl EmbeddedFolder {
    /// Writes the embeddings as safetensors: tensor `embeddings` `[n, dim]`, metadata `paths` (a
    /// JSON list of the files, row order) and `model` (where the model came from). Atomic: a
    /// failed write leaves any previous file intact.
    ///
    /// # Errors
    /// [`crate::export::ExportError`] naming the file.
    pub fn write(
        &self,
        out: &std::path::Path,
        model: &std::path::Path,
    ) -> Result<(), crate::export::ExportError> {
        let paths: Vec<&std::path::Path> =
            self.set.entries.iter().map(|e| e.path.as_path()).collect();
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert(
            "paths".to_owned(),
            serde_json::to_string(&paths).expect("paths serialise"),
        );
        metadata.insert(
            "model".to_owned(),
            std::fs::canonicalize(model)
                .unwrap_or_else(|_| model.to_owned())
                .display()
                .to_string(),
        );
        crate::export::write_tensors(
            out,
            &[crate::export::NamedTensor {
                name: "embeddings".to_owned(),
                shape: vec![self.set.entries.len(), self.dim],
                values: crate::export::TensorValues::F32(self.embeddings.clone()),
            }],
            metadata,
        )
    }
}
