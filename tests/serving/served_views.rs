//! Views built on a served device from images kept there (`augment::KeepOn::Served`, the
//! `spreadout.views` custom operation) against the CPU path that stays their reference: a server
//! of the first wgpu adapter (lavapipe here and in CI), whose training kernel builds them, within
//! 1/255 per channel once the normalisation is undone; and a server of the CPU backend, whose CPU
//! path builds them, the same bytes. Training views of every operation, and the evaluation's
//! fixed views.
//!
//! In the `serving` test binary: a process that hosts a Burn server switches every read to Burn's
//! asynchronous runtime, which the tests of the `it` binary must not inherit; one test, so the
//! adapter is served once.

use std::path::Path;

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spreadout::augment::{
    self, AugmentOps, DeviceViews, FixedView, KeepOn, KeptImages, Normalization,
};
use spreadout::device::{self, DeviceChoice, SelectedDevice};
use spreadout::serve::Via;

use crate::server::{serve_here, served, token_file};

const NORMALIZATION: Normalization = Normalization {
    mean: [0.45, 0.5, 0.55],
    std: [0.2, 0.25, 0.3],
};

/// A server of `device` on a free loopback port, and a client's connection to it.
fn serve_and_connect(device: DeviceChoice, dir: &Path, name: &str) -> SelectedDevice {
    let server = serve_here(&Via::Plain, device, 1);
    device::select(served(
        &server.address,
        &token_file(dir, name, &server.secret),
    ))
    .unwrap()
}

#[test]
fn views_built_on_a_served_device_match_the_cpu_views() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Sources as the cache keeps them (the shorter side 1.5× the view's), odd sizes, a wide one.
    let sources: Vec<RgbImage> = [(24, 24), (37, 25), (25, 41), (64, 23), (31, 31), (48, 36)]
        .into_iter()
        .map(|(width, height)| RgbImage::from_fn(width, height, |_, _| image::Rgb(rng.random())))
        .collect();
    let adapter = device::list_adapters()
        .first()
        .expect("a wgpu adapter (lavapipe on machines without a GPU)")
        .index;
    let mut failures = Vec::new();
    for (name, served, tolerance) in [
        ("cpu", DeviceChoice::Cpu, 0.0),
        ("gpu", DeviceChoice::Adapter(adapter), 1.0),
    ] {
        let client = serve_and_connect(served, dir.path(), name);
        let link = client.remote.as_ref().expect("a served device");
        assert_eq!(link.gpu, name == "gpu", "{}", link.served);
        let kept = KeptImages::upload(
            KeepOn::Served {
                device: &client.device,
                max_buffer: link.max_buffer,
            },
            [Ok::<_, std::convert::Infallible>(sources.clone())],
            u64::MAX,
        )
        .unwrap()
        .expect("six small images fit");
        assert_eq!(kept.len(), sources.len());
        let rows: Vec<usize> = (0..sources.len()).chain(0..sources.len()).collect();
        for (ops_name, ops) in [("none", AugmentOps::none()), ("all", AugmentOps::default())] {
            for (size, seed) in [(16u32, 3u64), (15, 40)] {
                let built = read(DeviceViews::prepare_kept(&kept, &rows, size, &ops, seed));
                let worst = worst_level(&built, size, |row, out| {
                    let mut view_rng = ChaCha8Rng::seed_from_u64(seed + row as u64);
                    augment::augment_into(&sources[rows[row]], size, &ops, &mut view_rng, out);
                });
                eprintln!("{name} server, {ops_name}, {size} px: within {worst:.3}/255");
                if worst > tolerance + 1e-3 {
                    failures.push(format!("{name} server, {ops_name}, {size} px: {worst}/255"));
                }
            }
        }
        for view in [FixedView::Center, FixedView::Zoomed, FixedView::Mirrored] {
            let all: Vec<usize> = (0..sources.len()).collect();
            let built = read(DeviceViews::fixed(&kept, &all, 16, view));
            let worst = worst_level(&built, 16, |row, out| {
                augment::fixed_view_into(&sources[row], 16, view, out);
            });
            eprintln!("{name} server, {view:?}: within {worst:.3}/255");
            if worst > tolerance + 1e-3 {
                failures.push(format!("{name} server, {view:?}: {worst}/255"));
            }
        }
        // More views than one request may ask for (4 096) are asked in several and joined there,
        // in order; on the served CPU, where building 4 100 views takes a moment.
        if name == "cpu" {
            let many: Vec<usize> = (0..4100).map(|row| row % sources.len()).collect();
            let built = read(DeviceViews::fixed(&kept, &many, 16, FixedView::Center));
            let worst = worst_level(&built, 16, |row, out| {
                augment::fixed_view_into(&sources[many[row]], 16, FixedView::Center, out);
            });
            if built.len() != many.len() * 3 * 16 * 16 || worst > 1e-3 {
                failures.push(format!("{name} server, 4100 views: {worst}/255"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The views built where they are kept, read back.
fn read(views: DeviceViews) -> Vec<f32> {
    views
        .to_device(None, NORMALIZATION)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("views are floats")
}

/// The largest difference, in levels of 255, between `built` (normalised) and the 8-bit planar
/// views `cpu` writes for each row.
fn worst_level(built: &[f32], size: u32, cpu: impl Fn(usize, &mut [u8])) -> f32 {
    let plane = (size * size) as usize;
    let mut worst = 0.0f32;
    for (row, view) in built.chunks(3 * plane).enumerate() {
        let mut expected = vec![0u8; 3 * plane];
        cpu(row, &mut expected);
        for (k, (&value, &byte)) in view.iter().zip(&expected).enumerate() {
            let channel = k / plane;
            let level = (value * NORMALIZATION.std[channel] + NORMALIZATION.mean[channel]) * 255.0;
            worst = worst.max((level - f32::from(byte)).abs());
        }
    }
    worst
}
