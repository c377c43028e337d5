//! `spreadout devices`: the GPU adapters `--device` can choose, or the device a server serves.

use std::path::PathBuf;

use anyhow::{Result, bail};
use spreadout::device::{self, DeviceChoice};

#[derive(clap::Args)]
pub struct Args {
    /// A machine running `spreadout serve`: describe the device it serves instead.
    #[arg(
        long,
        value_name = "ws://HOST:PORT | wss://HOST:PORT | iroh://ID@HOST:PORT"
    )]
    remote: Option<String>,
    /// The server's token (with --remote).
    #[arg(long, value_name = "FILE", requires = "remote")]
    token_file: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let Args { remote, token_file } = args;
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
            "no wgpu adapters found (no {} driver); --device auto trains on the CPU",
            device::GRAPHICS_APIS
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
