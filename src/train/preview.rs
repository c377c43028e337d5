//! The Augmentations screen's preview: two training views of a few images, built where a run
//! with the same settings builds them (on the device by `spreadout-shaders`' kernel, or on the
//! CPU), from the images as the cache loads them.

use std::path::PathBuf;

use image::RgbImage;

use super::{AugmentOn, TrainError};
use crate::augment::{self, AugmentOps};
use crate::data;
use crate::device::{self, DeviceChoice};

/// Two training views of each of a few images.
pub struct ViewsPreview {
    /// Each image as training loads it (shorter side as the cache keeps it) and two random views
    /// of it.
    pub pairs: Vec<(PathBuf, RgbImage, [RgbImage; 2])>,
    /// Where the views were built: the GPU adapter's name, or the CPU.
    pub built_on: String,
}

/// Two training views of each of `paths` at `size` with `ops`, image `i` drawn from seed
/// `seed + 2i` as [`augment::two_views`] draws it, built where a run on `device` with
/// `augment_on` builds its views.
///
/// # Errors
/// [`TrainError::Data`] naming an image that cannot be read, [`TrainError::Device`] when
/// `device` cannot be opened, [`TrainError::Config`] when `augment_on` asks for a device that
/// is not a GPU.
pub fn preview_views(
    paths: Vec<PathBuf>,
    size: u32,
    ops: &AugmentOps,
    seed: u64,
    device: DeviceChoice,
    augment_on: AugmentOn,
) -> Result<ViewsPreview, TrainError> {
    let images = paths
        .iter()
        .map(|path| data::load_image(path, size))
        .collect::<Result<Vec<_>, _>>()?;
    // The CPU's views need no adapter: only ask the drivers when the device might build them.
    let on_device = match augment_on {
        AugmentOn::Cpu => None,
        AugmentOn::Auto | AugmentOn::Device => {
            let selected = device::select(device)?;
            // A served device builds the CPU path's views (within one level of 255): they are
            // shown from here rather than sent for.
            (augment_on.on_device(&selected)? && selected.is_wgpu).then_some(selected)
        }
    };
    let (views, built_on) = match on_device {
        Some(selected) => {
            let cube = selected
                .cube_device()
                .expect("a GPU adapter is a CubeCL device");
            let views = augment::two_views_on(&cube, images.clone(), size, ops, seed)?;
            (views, selected.name)
        }
        None => (
            images
                .iter()
                .enumerate()
                .map(|(i, image)| {
                    augment::two_views(image, size, ops, seed.wrapping_add(2 * i as u64))
                })
                .collect(),
            "CPU".to_owned(),
        ),
    };
    Ok(ViewsPreview {
        pairs: paths
            .into_iter()
            .zip(images)
            .zip(views)
            .map(|((path, image), views)| (path, image, views))
            .collect(),
        built_on,
    })
}
