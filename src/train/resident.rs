//! A run's training images kept on the device, when views are built there and the images fit:
//! uploaded once at the run's start (as 8-bit RGB, the cache's size), so a step uploads only its
//! views' tables and the producer reads no pixel at all. Built from the folder the run trains on,
//! so a resume on a changed folder keeps the new images.

use std::sync::Arc;

use cubecl::prelude::Client;
use spreadout_shaders::views::{DeviceSources, PackedSources};

use crate::augment::as_source;
use crate::data::{DataError, ImageSet};

/// The images of `train` kept on the device of `client` for a run, when their bytes fit
/// `budget` and one buffer of the device (`None` otherwise: batches then upload their own).
/// Reads every image once, from the cache.
///
/// # Errors
/// [`DataError`] naming an image the cache cannot give.
pub(crate) fn upload(
    train: &ImageSet,
    client: &Client,
    budget: u64,
) -> Result<Option<Arc<DeviceSources>>, DataError> {
    let budget = budget.min(client.properties().memory.max_page_size);
    // Packed as they are read, each image dropped once packed: the run holds the packed bytes
    // and one chunk of images at a time, not both copies of the set.
    let mut packed = PackedSources::default();
    let all: Vec<usize> = (0..train.len()).collect();
    for chunk in all.chunks(1024) {
        for image in train.images(chunk)? {
            if (packed.len() + image.as_raw().len()) as u64 > budget
                || packed.push(as_source(&image)).is_err()
            {
                return Ok(None);
            }
        }
    }
    Ok(Some(Arc::new(packed.upload(client))))
}
