//! The device's training views (`spreadout_shaders::views`, through `augment::DeviceViews`)
//! against the CPU path that stays their reference, on the first
//! wgpu adapter (lavapipe here and in CI): noise-filled sources of several sizes, odd widths
//! among them, each operation alone and all together, within 1/255 per channel once the
//! normalisation is undone; the Augmentations preview built there; and an evaluation's
//! embedding pass over images kept on the device against the same pass from the host. One test,
//! so it opens the device once (the `it` binary's wgpu tests share it).

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
    preview_views_match_the_cpu_views(&cube, &sources);
    embedding_kept_images_matches_embedding_from_the_host(&gpu, &sources);
}

/// The Augmentations preview built on the device: the CPU's `two_views` draws, within one level.
fn preview_views_match_the_cpu_views(cube: &cubecl::Device, sources: &[RgbImage]) {
    let ops = AugmentOps::default();
    let built = augment::two_views_on(cube, sources.to_vec(), 16, &ops, 21).unwrap();
    let mut worst = 0u8;
    for (i, (source, views)) in sources.iter().zip(&built).enumerate() {
        let cpu = augment::two_views(source, 16, &ops, 21 + 2 * i as u64);
        for (device_view, cpu_view) in views.iter().zip(&cpu) {
            for (a, b) in device_view.as_raw().iter().zip(cpu_view.as_raw()) {
                worst = worst.max(a.abs_diff(*b));
            }
        }
    }
    eprintln!("preview: within {worst}/255");
    assert!(worst <= 1, "preview views {worst}/255 from the CPU's");
}

/// An embedding pass (centre views, the near-duplicate finder's zoomed and mirrored views, then
/// training views) over images kept on the device against
/// the same pass reading them on the host: the views the kernel builds from the kept images are
/// the host's, so the embeddings agree to rounding.
fn embedding_kept_images_matches_embedding_from_the_host(
    gpu: &device::SelectedDevice,
    sources: &[RgbImage],
) {
    use spreadout::embed::{self, EmbedPass, View};
    let cube = gpu.cube_device().unwrap();
    let kept = augment::KeptImages::upload(
        augment::KeepOn::Local(&cube),
        [Ok::<_, std::convert::Infallible>(sources.to_vec())],
        1 << 20,
    )
    .unwrap()
    .expect("six small images fit");
    let config = spreadout::train::TrainConfig {
        width: 2,
        dim: 8,
        image_size: 16,
        ..Default::default()
    };
    let net = config.model_config().init_seeded(&gpu.device, 3);
    let normalization = Normalization {
        mean: [0.45, 0.5, 0.55],
        std: [0.2, 0.25, 0.3],
    };
    let views = [
        View::CENTER,
        View::Fixed(augment::FixedView::Zoomed),
        View::Fixed(augment::FixedView::Mirrored),
        View::Augmented {
            ops: AugmentOps::default(),
            seed: 8,
        },
    ];
    for view in views {
        let embedded = |kept: Option<&augment::KeptImages>| {
            let pass = EmbedPass {
                images: sources,
                kept,
                size: 16,
                view,
                // Two batches, the second partial: the seeds follow the image across batches.
                batch_size: 4,
            };
            embed::embed_pass(&net, &pass, &normalization, false, &|| true)
                .unwrap()
                .unwrap()
                .rows
        };
        let (from_host, from_kept) = (embedded(None), embedded(Some(&kept)));
        let apart = from_host
            .iter()
            .zip(&from_kept)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{view:?}: embeddings of kept images within {apart:.1e} of the host's");
        assert_eq!(from_host.len(), from_kept.len());
        assert!(apart < 1e-4, "{view:?}: {apart}");
    }
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
    let rows: Vec<usize> = (0..sources.len()).collect();
    let views = augment::DeviceViews::prepare(sources.to_vec(), &rows, size, ops, seed);
    let device: Vec<f32> = views
        .to_device(Some(cube), *normalization)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("views are floats");
    let plane = (size * size) as usize;
    let mut worst = 0.0f32;
    for (i, source) in sources.iter().enumerate() {
        let mut cpu = vec![0u8; 3 * plane];
        let mut view_rng = ChaCha8Rng::seed_from_u64(seed + i as u64);
        augment::augment_into(source, size, ops, &mut view_rng, &mut cpu);
        for (k, &byte) in cpu.iter().enumerate() {
            let channel = k / plane;
            let value = device[i * 3 * plane + k] * normalization.std[channel]
                + normalization.mean[channel];
            worst = worst.max((value - f32::from(byte) / 255.0).abs());
        }
    }
    worst
}
