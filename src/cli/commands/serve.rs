//! `spreadout serve`: this machine's GPU served to Spreadout on other machines, over TLS,
//! Iroh or (on loopback, or asked for) plain WebSocket, behind [`spreadout::serve`]'s checks.

use std::path::PathBuf;

use anyhow::{Context, Result};
use spreadout::device::DeviceChoice;
use spreadout::serve::{self, Server, TokenFileChange, Via};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on. Loopback by default (clients then come through `ssh -L`); give this
    /// machine's LAN address, or 0.0.0.0 for every interface, to be reached directly: beyond
    /// loopback the server speaks TLS (wss://) unless --plaintext or --iroh says otherwise.
    #[arg(long, default_value_t = std::net::SocketAddr::from(([127, 0, 0, 1], spreadout::remote::DEFAULT_PORT)))]
    pub listen: std::net::SocketAddr,
    /// File holding the token clients must present (and, over TLS, the pin of this server's
    /// key); written with a fresh random token (readable by you alone) when it does not exist
    /// yet. Copy it to the clients. A file others can read is refused.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// The device to serve: auto, gpu, cpu or an adapter number from `spreadout devices`.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Clients served at once; one more is told the server is busy. Every client with the token
    /// can use the device fully, and memory one client's run freed is handed to the next
    /// allocation without being cleared, whether the next client runs at the same time or after
    /// it: serve people who must not see each other's images from separate servers, restarted
    /// between them. Raise it only for people who may.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub clients: u16,
    /// Serve over TLS (wss://) on loopback too; beyond loopback it is the default.
    #[arg(long, conflicts_with_all = ["plaintext", "iroh"])]
    pub tls: bool,
    /// Serve unencrypted (ws://) beyond loopback: anyone on the path can read the images and the
    /// token, and answer in this server's place. For a network you control end to end.
    #[arg(long, conflicts_with = "iroh")]
    pub plaintext: bool,
    /// The server's TLS key, made on first use (readable by you alone); clients pin it
    /// [default: serve-tls.key in Spreadout's data folder].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["plaintext", "iroh"])]
    pub tls_key: Option<PathBuf>,
    /// Serve over Iroh (QUIC over UDP) instead: encrypted, and clients check this server's key
    /// (its id is in the address); direct connections only, on exactly --listen, with no relays
    /// and no port mapping.
    #[arg(long)]
    pub iroh: bool,
    /// The server's Iroh key, created on first use (readable by you alone) so its id survives
    /// restarts [default: serve-identity.key in Spreadout's data folder].
    #[arg(long, value_name = "FILE", requires = "iroh")]
    pub identity: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
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
