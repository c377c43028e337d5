//! The commands about this machine rather than a folder: what the image cache holds (and filling
//! or clearing it), the GPU adapters `--device` can choose, and throughput benchmarks.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use spreadout::data;
use spreadout::device::{self, DeviceChoice};
use spreadout::lab::bench;
use spreadout::serve::{self, Server, TokenFileChange, Via};

use crate::cli::{BenchArgs, ServeArgs};
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
        match set.retried {
            0 => {}
            1 => println!("1 file an earlier release had skipped was tried again"),
            retried => println!("{retried} files an earlier release had skipped were tried again"),
        }
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

pub fn devices(remote: Option<String>, token_file: Option<PathBuf>) -> Result<()> {
    if let Some(address) = remote {
        let choice = address
            .parse::<DeviceChoice>()
            .map_err(anyhow::Error::msg)?
            .with_token_file(token_file);
        if !matches!(choice, DeviceChoice::Remote(_)) {
            bail!(
                "--remote takes a server's address, ws://HOST:PORT, wss://HOST:PORT or iroh://ID@HOST:PORT"
            );
        }
        let selected = device::select(choice)?;
        let link = selected.remote.expect("a served device has its link");
        println!("{} serves {}", link.address, link.served);
        println!(
            "handshake: {} bytes sent, {} received ({})",
            link.traffic.sent(),
            link.traffic.received(),
            match link.address.split_once("://").map(|(scheme, _)| scheme) {
                Some("wss") => "TLS, the server's key pinned by the token file",
                Some("iroh") => "Iroh: encrypted, the server known by its id, no relays",
                _ => "plain: not encrypted",
            }
        );
        return Ok(());
    }
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
        spreadout::support::paths::default_cache_dir().display()
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
        print(&bench::duplicate_search(args.duplicates, 128, &selected)?);
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

pub fn serve(args: &ServeArgs) -> Result<()> {
    // Keys stay in the per-user data folder, never in a shared temporary one, where another user
    // could plant a key of their own.
    let key_path = |given: &Option<PathBuf>, name: &str, flag: &str| -> Result<PathBuf> {
        match given {
            Some(path) => Ok(path.clone()),
            None => spreadout::support::paths::private_data_dir()
                .map(|dir| dir.join(name))
                .with_context(|| format!("this account has no data folder to keep the server's key in: give {flag} FILE")),
        }
    };
    let via = if args.iroh {
        Via::Iroh {
            identity: key_path(&args.identity, "serve-identity.key", "--identity")?,
        }
    } else if args.plaintext {
        Via::Plain
    } else if args.tls {
        Via::Tls {
            key: key_path(&args.tls_key, "serve-tls.key", "--tls-key")?,
        }
    } else {
        serve::default_via(
            args.listen,
            key_path(&args.tls_key, "serve-tls.key", "--tls-key")?,
        )
    };
    let server = Server::bind(
        args.listen,
        &via,
        args.device.clone(),
        usize::from(args.clients),
    )
    .with_context(|| format!("cannot serve on {}", args.listen))?;
    let (secret, change) = serve::token_file(&args.token_file, server.pin())?;
    let file = args.token_file.display();
    match change {
        TokenFileChange::Created => eprintln!(
            "wrote a new token to {file} (readable by you alone): copy that file to each client, which passes it with --token-file (in the app: paste its content)"
        ),
        TokenFileChange::Pinned => eprintln!(
            "added this server's TLS key to {file}: copy that file to each client again (its token is unchanged)"
        ),
        TokenFileChange::Kept => {}
    }
    let address = server.address();
    eprintln!(
        "serving {} on {address} to {} client(s) at a time; clients train with --device {} --token-file FILE (HOST: this machine as they reach it). Ctrl-C stops.",
        server.device().name,
        args.clients,
        server.client_address("HOST")
    );
    match &via {
        Via::Tls { .. } => eprintln!(
            "over TLS: encrypted, and clients accept only this server's key, whose pin {} is in the token file",
            server.pin().expect("a TLS server has a key")
        ),
        Via::Iroh { .. } => eprintln!(
            "over Iroh: encrypted, and clients check this server's key (its id is in the address); no relays, no port mapping: open UDP port {} to them",
            address.port()
        ),
        Via::Plain if serve::is_exposed(address) => eprintln!(
            "warning: --plaintext: the connection is not encrypted and the server not authenticated, and {address} is reachable from other machines: anyone on the path can read the images and the token, or answer in this server's place"
        ),
        Via::Plain => {}
    }
    server.serve(&secret.token)?;
    Ok(())
}
