//! The data path's benchmark rows: decoding into the cache, reading it back, and a batch's
//! training views built on the CPU, drawn for the device, and built there by the views kernel.

use std::path::Path;
use std::time::Instant;

use super::{BenchError, BenchRow, compiler_of, host_row};
use crate::augment::{AugmentOps, DeviceViews, KeepOn, KeptImages};
use crate::data::{self, DataError, ImageSet};
use crate::device::SelectedDevice;
use crate::embed::{PixelBatch, View};
use crate::lab::demo::{self, DemoSpec};

/// Decoding (files → RGB at the training size) and augmentation (two random training views per
/// image, as 8-bit planar pixels) throughput on this machine's CPU cores, at each of `sizes`.
/// The images are the JPEGs (or any images) under `photos`, at most `limit` of them; without
/// `photos`, generated PNG shapes (which decode far faster than photographs). With `gpu` (a wgpu
/// adapter), also the views built there by the training kernel, from uploaded and from kept
/// images.
///
/// # Errors
/// [`BenchError`] when the images cannot be made or read.
pub fn data_pipeline(
    photos: Option<&Path>,
    limit: usize,
    sizes: &[u32],
    gpu: Option<&SelectedDevice>,
) -> Result<Vec<BenchRow>, BenchError> {
    let source = BenchImages::find(photos, limit)?;
    let mut rows = Vec::new();
    for &size in sizes {
        // Only the first `limit` files: the scan is cheap, decoding is what is measured.
        let mut scan = data::scan(&source.dir)?;
        scan.entries.truncate(limit);
        // A fresh cache, so the first load decodes everything and the second decodes nothing.
        let cache_dir = tempfile::tempdir().map_err(|source| DataError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let cache = data::PixelCache::at(cache_dir.path());
        let start = Instant::now();
        let _ = data::load(&scan, &cache, size, &|_, _| true)?;
        let decode_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let set = data::load(&scan, &cache, size, &|_, _| true)?;
        let cached_seconds = start.elapsed().as_secs_f64();
        let rows_of_batch: Vec<usize> = (0..set.len()).chain(0..set.len()).collect();
        let start = Instant::now();
        // As a training batch: each image read from the cache once, then its two views.
        let all: Vec<usize> = (0..set.len()).collect();
        let images = set.images(&all)?;
        let batch = PixelBatch::prepare(
            &data::Subset {
                source: images.as_slice(),
                indices: &rows_of_batch,
            },
            size,
            View::Augmented {
                ops: AugmentOps::default(),
                seed: 0,
            },
        )?;
        let augment_seconds = start.elapsed().as_secs_f64();
        // The producer's work when the device builds the views (`--augment-on device`): the
        // same reads, then only the draws and the resampling taps.
        let start = Instant::now();
        let images = set.images(&all)?;
        let drawn = DeviceViews::prepare(images, &rows_of_batch, size, &AugmentOps::default(), 0);
        let draw_seconds = start.elapsed().as_secs_f64();
        let timings = HostTimings {
            images: set.len(),
            decode_seconds,
            cached_seconds,
            views: batch.len(),
            augment_seconds,
            drawn_views: drawn.shape()[0],
            drawn_upload_bytes: drawn.upload_bytes(),
            draw_seconds,
        };
        rows.extend(host_rows(size, source.kind, &timings));
        if let Some(gpu) = gpu {
            rows.extend(device_view_rows(gpu, &set, size)?);
        }
    }
    Ok(rows)
}

/// The images a data-path benchmark reads: the folder of photos given, or generated shapes.
struct BenchImages {
    dir: std::path::PathBuf,
    /// What they are, as the rows' details say.
    kind: &'static str,
    /// The folder of the generated images, removed when the benchmark is done with them.
    _generated: Option<tempfile::TempDir>,
}

impl BenchImages {
    /// The images under `photos`, or, without, about `limit` generated PNG shapes.
    fn find(photos: Option<&Path>, limit: usize) -> Result<Self, BenchError> {
        if let Some(dir) = photos {
            return Ok(Self {
                dir: dir.to_owned(),
                kind: "photos",
                _generated: None,
            });
        }
        let generated = tempfile::tempdir().map_err(BenchError::TempDir)?;
        let spec = DemoSpec {
            classes: 6,
            train_per_class: limit.div_ceil(6),
            test_per_class: 0,
            size: 64,
            seed: 0,
        };
        Ok(Self {
            dir: demo::generate(generated.path(), &spec)?.train,
            kind: "generated PNG",
            _generated: Some(generated),
        })
    }
}

/// What the host's data path took at one size, and how much it made.
struct HostTimings {
    images: usize,
    decode_seconds: f64,
    cached_seconds: f64,
    /// Views the CPU built.
    views: usize,
    augment_seconds: f64,
    /// Views drawn for the device to build, and the bytes their upload takes.
    drawn_views: usize,
    drawn_upload_bytes: u64,
    draw_seconds: f64,
}

/// The host rows of 8-bit pixels at `size`: decoding into the cache, reading it back, the views
/// built on the CPU and those drawn for the device; `kind` says what the images are.
fn host_rows(size: u32, kind: &str, timings: &HostTimings) -> [BenchRow; 4] {
    let row = |task: &str, detail: String, count: usize, seconds: f64| BenchRow {
        precision: "u8".to_owned(),
        batch: count,
        image_size: size,
        ..host_row(task, detail, count, seconds)
    };
    let images = timings.images;
    [
        row(
            "decode",
            format!(
                "decode + resize {images} {kind} into a new cache ({} px shorter side)",
                data::cached_side(size)
            ),
            images,
            timings.decode_seconds,
        ),
        row(
            "cached load",
            format!("the same {images} files again, from the cache"),
            images,
            timings.cached_seconds,
        ),
        row(
            "augment",
            format!(
                "two augmented views, {size} px ({} views), read and built on the CPU",
                timings.views
            ),
            timings.views,
            timings.augment_seconds,
        ),
        row(
            "augment",
            format!(
                "the same views read and drawn for the GPU to build ({} views, {:.0} KiB to upload)",
                timings.drawn_views,
                timings.drawn_upload_bytes as f64 / 1024.0
            ),
            timings.drawn_views,
            timings.draw_seconds,
        ),
    ]
}

/// The training kernel's views on `gpu`: two views of each of the first 64 images of `set` (half
/// the paper's batch: 128 views at 224 px are 77 MB, within WebGPU's guaranteed 128 MiB binding)
/// built from their uploaded images and from images kept there, timed to the device's finish (a
/// one-value read), after a first build that compiles the kernel.
fn device_view_rows(
    gpu: &SelectedDevice,
    set: &ImageSet,
    size: u32,
) -> Result<Vec<BenchRow>, BenchError> {
    let cube = gpu
        .cube_device()
        .expect("a wgpu adapter is a CubeCL device");
    let first: Vec<usize> = (0..set.len().min(64)).collect();
    let rows_of_batch: Vec<usize> = first.iter().chain(&first).copied().collect();
    let ops = AugmentOps::default();
    let images = set.images(&first)?;
    let kept = KeptImages::upload(
        KeepOn::Local(&cube),
        [Ok::<_, DataError>(images.clone())],
        u64::MAX,
    )?;
    let timed = |views: DeviceViews| {
        let start = Instant::now();
        let built = views.to_device(Some(&cube), crate::augment::Normalization::IDENTITY);
        let _ = built.sum().into_data();
        start.elapsed().as_secs_f64()
    };
    timed(DeviceViews::prepare(
        images.clone(),
        &rows_of_batch,
        size,
        &ops,
        0,
    ));
    let mut out = Vec::new();
    let mut push = |from: &str, seconds: f64| {
        out.push(BenchRow {
            device: gpu.name.clone(),
            backend: gpu.backend.to_owned(),
            compiler: compiler_of(gpu),
            precision: "f32".to_owned(),
            batch: rows_of_batch.len(),
            image_size: size,
            ..host_row(
                "augment",
                format!(
                    "the same views' kernel on the GPU, {} views of {} images {from}",
                    rows_of_batch.len(),
                    first.len()
                ),
                rows_of_batch.len(),
                seconds,
            )
        });
    };
    push(
        "uploaded with them",
        timed(DeviceViews::prepare(images, &rows_of_batch, size, &ops, 0)),
    );
    if let Some(kept) = &kept {
        push(
            "kept on the device",
            timed(DeviceViews::prepare_kept(
                kept,
                &rows_of_batch,
                size,
                &ops,
                0,
            )),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows_cover_each_size() {
        let rows = data_pipeline(None, 12, &[16, 40], None).unwrap();
        let sizes: Vec<(String, u32)> = rows
            .iter()
            .map(|r| (r.task.clone(), r.image_size))
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("decode".to_owned(), 16),
                ("cached load".to_owned(), 16),
                ("augment".to_owned(), 16),
                ("augment".to_owned(), 16),
                ("decode".to_owned(), 40),
                ("cached load".to_owned(), 40),
                ("augment".to_owned(), 40),
                ("augment".to_owned(), 40)
            ]
        );
        assert!(rows.iter().all(|r| r.images_per_sec > 0.0));
    }
}
