//! The device's training views (`spreadout_shaders::views`, through `augment::DeviceViews`)
//! against the CPU path that stays their reference, on the first
//! wgpu adapter (lavapipe here and in CI): noise-filled sources of several sizes, odd widths
//! among them, each operation alone and all together, within 1/255 per channel once the
//! normalisation is undone. One test, so the binary opens the device once.

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spreadout::augment::{self, AugmentOps, Normalization};
use spreadout::device::{self, DeviceChoice};

#[test]
fn device_views_match_the_cpu_views_for_every_operation() {
    let adapter = device::list_adapters()
        .first()
        .expect("a wgpu adapter (lavapipe on machines without a GPU)")
        .index;
    let gpu = device::select(DeviceChoice::Adapter(adapter)).expect("adapter selectable");
    let cube = gpu
        .cube_device()
        .expect("a wgpu adapter is a CubeCL device");
    let normalization = Normalization {
        mean: [0.45, 0.5, 0.55],
        std: [0.2, 0.25, 0.3],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Sources as the cache keeps them (the shorter side 1.5× the view's), odd sizes, a wide one.
    let sources: Vec<RgbImage> = [(24, 24), (37, 25), (25, 41), (64, 23), (31, 31), (48, 36)]
        .into_iter()
        .map(|(width, height)| RgbImage::from_fn(width, height, |_, _| image::Rgb(rng.random())))
        .collect();
    let none = AugmentOps::none();
    let cases = [
        ("crop", AugmentOps { crop: true, ..none }),
        (
            "color",
            AugmentOps {
                color_jitter: true,
                ..none
            },
        ),
        (
            "gray",
            AugmentOps {
                grayscale: true,
                ..none
            },
        ),
        ("flip", AugmentOps { flip: true, ..none }),
        ("none", none),
        ("all", AugmentOps::default()),
    ];
    let mut failures = Vec::new();
    for size in [16u32, 15] {
        for (name, ops) in cases {
            for seed in [3u64, 40] {
                let worst = worst_difference(&cube, &sources, size, &ops, seed, &normalization);
                eprintln!(
                    "{name}, {size} px, seed {seed}: within {:.3}/255",
                    worst * 255.0
                );
                if worst > 1.0 / 255.0 + 1e-6 {
                    failures.push(format!(
                        "{name}, {size} px, seed {seed}: {}/255",
                        worst * 255.0
                    ));
                }
            }
        }
    }
    // The ImageNet resolution, from cache-sized sources (1.5× on the shorter side), all at once.
    let large: Vec<RgbImage> = [(336, 448), (501, 336)]
        .into_iter()
        .map(|(width, height)| RgbImage::from_fn(width, height, |_, _| image::Rgb(rng.random())))
        .collect();
    let worst = worst_difference(
        &cube,
        &large,
        224,
        &AugmentOps::default(),
        9,
        &normalization,
    );
    eprintln!("all, 224 px: within {:.3}/255", worst * 255.0);
    if worst > 1.0 / 255.0 + 1e-6 {
        failures.push(format!("all, 224 px: {}/255", worst * 255.0));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The largest difference, per channel in `[0, 1]` units, between the device's views of `sources`
/// and the CPU path's, once the normalisation is undone.
fn worst_difference(
    cube: &cubecl::Device,
    sources: &[RgbImage],
    size: u32,
    ops: &AugmentOps,
    seed: u64,
    normalization: &Normalization,
) -> f32 {
    // Through the glue that runs the kernel in Burn's stream, as training takes it.
    let side = size as usize;
    let (images, ops, normalization) = (sources.to_vec(), *ops, *normalization);
    let device: Vec<f32> = spreadout_shaders::burn_glue::float_tensor_from_kernel(
        "views under test",
        [sources.len(), 3, side, side],
        cube,
        move |client| {
            let rows: Vec<usize> = (0..images.len()).collect();
            augment::DeviceViews::prepare(images.clone(), &rows, size, &ops, seed)
                .build(client, &normalization)
                .unwrap_or_else(|error| panic!("{ops:?}: {error}"))
        },
    )
    .into_data()
    .convert::<f32>()
    .try_to_vec()
    .expect("views are floats");
    let plane = (size * size) as usize;
    let mut worst = 0.0f32;
    for (i, source) in sources.iter().enumerate() {
        let mut cpu = vec![0u8; 3 * plane];
        let mut view_rng = ChaCha8Rng::seed_from_u64(seed + i as u64);
        augment::augment_into(source, size, &ops, &mut view_rng, &mut cpu);
        for (k, &byte) in cpu.iter().enumerate() {
            let channel = k / plane;
            let value = device[i * 3 * plane + k] * normalization.std[channel]
                + normalization.mean[channel];
            worst = worst.max((value - f32::from(byte) / 255.0).abs());
        }
    }
    worst
}
