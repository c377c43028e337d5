//! `spreadout bench`: training, data, neighbour-query, duplicate and map throughput, printed as
//! a table (or JSON lines) from [`spreadout::lab::bench`]'s rows.

use std::path::PathBuf;

use anyhow::Result;
use spreadout::device::{self, DeviceChoice};
use spreadout::lab::bench;
use spreadout::model::Precision;
use spreadout::train::AugmentOn;

#[derive(clap::Args)]
pub struct Args {
    /// Network widths to time.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub widths: Vec<usize>,
    /// Images per batch (each gives two views).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Square input size of the training rows (≤ 64 px: CIFAR stem, else ImageNet stem).
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    /// Convolution precisions to time (f16 needs a GPU with shader-f16).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32")]
    pub precision: Vec<Precision>,
    /// Where the training rows build their views: auto (on a GPU adapter or a served device,
    /// there), device, cpu.
    #[arg(long, value_enum, default_value_t = AugmentOn::Auto)]
    pub augment_on: AugmentOn,
    /// Timed steps per configuration.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed warm-up steps (kernel compilation, autotuning).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// auto, gpu, cpu, an adapter number or a server (wss://HOST:PORT, ws://…, iroh://…); without it, the CPU and every GPU.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// The server's token, for a served --device.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Also time software rasterisers such as lavapipe (very slow); only without --device.
    #[arg(long)]
    pub include_software: bool,
    /// Folder of photos (JPEG) for the decode and augment rows; generated PNGs otherwise.
    #[arg(long)]
    pub photos: Option<PathBuf>,
    /// Input sizes of the decode and augment rows.
    #[arg(long, value_delimiter = ',', default_value = "32,224")]
    pub data_sizes: Vec<u32>,
    /// Skip the decode and augment rows.
    #[arg(long)]
    pub no_data: bool,
    /// Embeddings searched by the neighbour-query row, e.g. 100000 (0, the default, skips it:
    /// the training and data rows come alone unless the others are asked for).
    #[arg(long, alias = "neighbours", default_value_t = 0)]
    pub neighbors: usize,
    /// Embeddings searched for near-duplicates by the duplicates row, e.g. 100000 (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub duplicates: usize,
    /// Embeddings laid out by the UMAP map row, e.g. 10000 (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub map: usize,
    /// Skip the training rows.
    #[arg(long)]
    pub no_train: bool,
    /// After each training row, its kernel launches per step by kernel name.
    #[arg(long)]
    pub launches: bool,
    /// After each CPU training row, the step's time by phase: forward, loss, backward (its
    /// convolutions, batch norms and the rest) and the SGD update.
    #[arg(long)]
    pub phases: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The device asked for, with its token file.
    pub fn device(&self) -> Option<DeviceChoice> {
        self.device
            .clone()
            .map(|choice| choice.with_token_file(self.token_file.clone()))
    }
}

pub fn run(args: &Args) -> Result<()> {
    let print = |row: &bench::BenchRow| {
        if args.json {
            println!("{}", serde_json::to_string(row).expect("rows serialise"));
        } else {
            let wait = row
                .data_wait_fraction
                .map_or_else(String::new, |w| format!("{:.1} %", 100.0 * w));
            let budget = row.budget.as_ref().map_or_else(
                || " | | | | ".to_owned(),
                |budget| {
                    let network = budget.network.map_or_else(String::new, |n| {
                        format!(
                            "{:.1} / {:.1}",
                            n.sent_bytes / 1024.0,
                            n.received_bytes / 1024.0
                        )
                    });
                    format!(
                        "{} | {:.3} | {:.1} | {:.1} | {network}",
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
                    println!("|   {per_step:.1} × {kernel} | | | | | | | | | | |");
                }
            }
        }
    };
    if !args.json {
        println!(
            "| task | device | compiler | images/s | seconds | data wait | launches/step | blocking reads/step | host ms/step | upload KiB/step | network KiB/step sent / received |"
        );
        println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    if !args.no_train {
        for selected in bench::devices(args.device(), args.include_software)? {
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
                    if args.phases {
                        match bench::step_phases(&selected, case, args.steps) {
                            Ok(rows) => rows.iter().for_each(&print),
                            Err(error) => eprintln!("{}: {error}", selected.name),
                        }
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
        let selected = device::select(args.device().unwrap_or_default())?;
        bench::duplicate_search(args.duplicates, 128, &selected)?
            .iter()
            .for_each(&print);
        print(&bench::hash_search(args.duplicates));
    }
    if args.map > 0 {
        print(&bench::umap_map(args.map, 128)?);
    }
    if !args.no_data {
        // The kernel's rows on the adapter asked for (`--device`), when it is a GPU one.
        let gpu = match args.device() {
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
