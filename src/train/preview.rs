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
    /// Where the views were built: the GPU adapter's name, or the CPU (this machine's, for a
    /// served device).
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
    // A served device builds the CPU path's views (its GPU within one level of 255): they are
    // shown from here, without a connection to the server.
    let served = matches!(device, DeviceChoice::Remote(_)) && augment_on != AugmentOn::Cpu;
    let on_device = match augment_on {
        AugmentOn::Cpu => None,
        _ if served => None,
        AugmentOn::Auto | AugmentOn::Device => {
            let selected = device::select(device)?;
            augment_on.on_device(&selected)?.then_some(selected)
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
            if served {
                "this machine's CPU (the server builds the same views)".to_owned()
            } else {
                "CPU".to_owned()
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::RemoteTarget;

    /// A served device's preview is this machine's CPU path, shown without reaching the server
    /// (none listens at this address, and no token is given).
    #[test]
    fn a_served_device_is_previewed_here_without_a_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]))
            .save(&path)
            .unwrap();
        let served = DeviceChoice::Remote(RemoteTarget {
            address: "ws://127.0.0.1:1".to_owned(),
            token_file: None,
        });
        let preview = preview_views(
            vec![path],
            16,
            &AugmentOps::default(),
            7,
            served,
            AugmentOn::Auto,
        )
        .unwrap();
        assert!(
            preview.built_on.contains("this machine's CPU"),
            "{}",
            preview.built_on
        );
        let (_, image, views) = &preview.pairs[0];
        assert_eq!(
            views,
            &augment::two_views(image, 16, &AugmentOps::default(), 7)
        );
    }
}
