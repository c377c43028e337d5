//! The commands about this machine rather than a folder: what the image cache holds (and filling
//! or clearing it), the GPU adapters `--device` can choose, and throughput benchmarks.

use std::path::Path;

use anyhow::Result;
use spreadout::bench;
use spreadout::data;
use spreadout::device::{self, DeviceChoice};

use crate::cli::BenchArgs;
use crate::progress;

pub fn cache(
    cache: &data::PixelCache,
    clear: bool,
    fill: Option<&Path>,
    image_size: u32,
) -> Result<()> {
    if let Some(dir) = fill {
        let start = std::time::Instant::now();
        let set = data::load_folder(dir, cache, image_size, &progress::loading_bar())?;
        progress::report_skipped(&set.skipped);
        println!(
            "{} images of {} cached for {image_size} px ({} decoded, {} skipped) in {:.1} s",
            set.len(),
            dir.display(),
            set.decoded,
            set.skipped.len(),
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if clear {
        let freed = cache.clear()?;
        println!(
            "cleared {} ({:.1} MiB freed)",
            cache.root().display(),
            freed as f64 / (1 << 20) as f64
        );
        return Ok(());
    }
    let folders = cache.usage();
    let total = cache.disk_bytes();
    println!(
        "image cache in {}: {:.1} MiB",
        cache.root().display(),
        total as f64 / (1 << 20) as f64
    );
    for folder in folders {
        println!(
            "{:>10.1} MiB  {:>7} files at {:>4} px  {}",
            folder.bytes as f64 / (1 << 20) as f64,
            folder.files,
            folder.side,
            folder.folder.display()
        );
    }
    Ok(())
}

pub fn devices() -> Result<()> {
    let adapters = device::describe_compute(device::list_adapters());
    if adapters.is_empty() {
        println!(
            "no wgpu adapters found (no Vulkan/Metal/DX12 driver); --device auto trains on the CPU"
        );
    }
    for adapter in &adapters {
        let compute = adapter
            .compute
            .as_ref()
            .map_or_else(|| "could not be opened".to_owned(), |c| c.summary());
        println!(
            "{}\t{}\t{:?}\t{}\t{}\t{compute}",
            adapter.index, adapter.name, adapter.kind, adapter.api, adapter.driver
        );
    }
    let auto = device::select_from(DeviceChoice::Auto, &adapters)?;
    println!("auto → {}", auto.name);
    println!(
        "kernel cache: {}",
        spreadout::paths::default_cache_dir().display()
    );
    Ok(())
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let print = |row: &bench::BenchRow| {
        if args.json {
            println!("{}", serde_json::to_string(row).expect("rows serialise"));
        } else {
            let wait = row
                .data_wait_fraction
                .map_or_else(String::new, |w| format!("{:.1} %", 100.0 * w));
            let budget = row.budget.as_ref().map_or_else(
                || " | | | ".to_owned(),
                |budget| {
                    format!(
                        "{} | {:.3} | {:.1} | {:.1}",
                        budget
                            .launches_per_step
                            .map_or_else(|| "native".to_owned(), |n| format!("{n:.0}")),
                        budget.blocking_reads_per_step,
                        budget.host_ms_per_step,
                        budget.upload_bytes_per_step / 1024.0
                    )
                },
            );
            println!(
                "| {} | {} | {} | {:.1} | {:.4} | {wait} | {budget} |",
                row.detail, row.device, row.compiler, row.images_per_sec, row.seconds
            );
            if let Some(budget) = row.budget.as_ref().filter(|_| args.launches) {
                for (kernel, per_step) in &budget.launches {
                    println!("|   {per_step:.1} × {kernel} | | | | | | | | | |");
                }
            }
        }
    };
    if !args.json {
        println!(
            "| task | device | compiler | images/s | seconds | data wait | launches/step | blocking reads/step | host ms/step | upload KiB/step |"
        );
        println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    }
    if !args.no_train {
        for selected in bench::devices(args.device, args.include_software)? {
            for &precision in &args.precision {
                for &width in &args.widths {
                    let case = bench::TrainingCase {
                        width,
                        batch_size: args.batch_size,
                        image_size: args.image_size,
                        precision,
                        augment_on: args.augment_on,
                    };
                    match bench::training(&selected, case, args.warmup, args.steps) {
                        Ok(row) => print(&row),
                        // One unsupported precision must not hide the other rows.
                        Err(error) => eprintln!("{}: {error}", selected.name),
                    }
                }
            }
        }
    }
    if args.neighbors > 0 {
        print(&bench::neighbor_query(args.neighbors, 128, 10)?);
    }
    if args.duplicates > 0 {
        // On the device a collection would use: the chosen one, else the first GPU or the CPU.
        let selected = device::select(args.device.unwrap_or_default())?;
        print(&bench::duplicate_search(args.duplicates, 128, &selected)?);
        print(&bench::hash_search(args.duplicates));
    }
    if args.map > 0 {
        print(&bench::umap_map(args.map, 128)?);
    }
    if !args.no_data {
        // The kernel's rows on the adapter asked for (`--device`), when it is a GPU one.
        let gpu = match args.device {
            Some(choice) => Some(device::select(choice)?).filter(|selected| selected.is_wgpu),
            None => None,
        };
        for row in
            bench::data_pipeline(args.photos.as_deref(), 2000, &args.data_sizes, gpu.as_ref())?
        {
            print(&row);
        }
    }
    Ok(())
}
