//! Reaching a device that another machine serves with `spreadout serve`: the address and token
//! file a client is given ([`RemoteTarget`]), the connection (Burn's remote backend through the
//! link of `crate::link`: plain TCP on loopback or through a tunnel, TLS with the server's key
//! pinned, or Iroh's QUIC with the server's id), the handshake that says what the server serves,
//! and the words for what went wrong. Token files live in `token`, the handshake in `hello`; the
//! serving side is `crate::serve`.
//!
//! Burn's remote backend keeps the autodiff graph here and runs every tensor operation on the
//! server, so the whole engine trains on a served device unchanged. Spreadout's own views kernel
//! runs there as a custom operation of the server's (`crate::augment`'s `served`): a run's images
//! cross the network once, and each step sends only its views' draws.

mod hello;
mod token;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::remote::{ConnectError, EndpointId, RemoteHost};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::link::{self, Dial, LinkError, Pin};

pub(crate) use hello::{HELLO_OP, hello_handler};
pub use link::Traffic;
pub use token::{Secret, read_token, write_token};

use crate::support::error_kind::ErrorKind;
use hello::{Hello, hello};

/// How long a client waits for a busy server's place before saying it is busy: long enough for
/// the end of a connection closed a moment ago to reach the server.
const BUSY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The port `spreadout serve` listens on unless told otherwise, and a client assumes when its
/// address names none.
pub const DEFAULT_PORT: u16 = 7800;

/// A device served by `spreadout serve`, as `--device ADDRESS --token-file FILE` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct RemoteTarget {
    /// The server, `ws://HOST:PORT`, `wss://HOST:PORT` or `iroh://ID@HOST:PORT`.
    pub address: String,
    /// The file holding the server's token (and, for `wss://`, its key's pin); a client without
    /// one is refused before connecting.
    #[serde(with = "crate::support::paths::option")]
    #[ts(type = "string | null")]
    pub token_file: Option<PathBuf>,
}

/// A served device the app connected to: the target to train on, and what it is.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RemoteDevice {
    /// What the device picker keeps (`{"remote": target}`).
    pub target: RemoteTarget,
    /// The device the server serves, in its own words.
    pub served: String,
    /// Whether that device is a GPU: the Train screen's defaults follow it.
    pub gpu: bool,
}

impl RemoteTarget {
    /// `text` as a server address, when it is one (`ws://HOST[:PORT]` plain, `wss://HOST[:PORT]`
    /// over TLS, or `iroh://ID@HOST[:PORT]` with the server's id as `spreadout serve --iroh`
    /// prints it); `None` for any other device name. The port defaults to [`DEFAULT_PORT`].
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let rest = rest.trim_end_matches('/');
        let host = match scheme {
            "ws" | "wss" => rest,
            "iroh" => {
                let (id, host) = rest.split_once('@')?;
                id.parse::<EndpointId>().ok()?;
                host
            }
            _ => return None,
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return None;
        }
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        Some(Self {
            address: if has_port {
                format!("{scheme}://{rest}")
            } else {
                format!("{scheme}://{rest}:{DEFAULT_PORT}")
            },
            token_file: None,
        })
    }

    /// How the server is reached.
    fn route(&self) -> Route<'_> {
        match self.address.split_once("://") {
            Some(("iroh", rest)) => {
                let (id, host_port) = rest.split_once('@').unwrap_or(("", rest));
                Route::Iroh { id, host_port }
            }
            Some(("wss", host_port)) => Route::Tls { host_port },
            Some((_, host_port)) => Route::Plain { host_port },
            None => Route::Plain {
                host_port: &self.address,
            },
        }
    }
}

/// A server's transport and where it listens, read off its address.
enum Route<'a> {
    /// Plain TCP: loopback or an SSH tunnel.
    Plain { host_port: &'a str },
    /// TLS, the server's key pinned by the token file.
    Tls { host_port: &'a str },
    /// Iroh's QUIC to `host_port`, which only the holder of `id`'s key can answer.
    Iroh { id: &'a str, host_port: &'a str },
}

/// Why a served device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Not a server's address.
    #[error(
        "'{0}' is not a server's address: write ws://HOST:PORT, wss://HOST:PORT or iroh://ID@HOST:PORT (the address `spreadout serve` printed)"
    )]
    Address(String),
    /// A served device without a token file.
    #[error(
        "{0} needs the server's token: give the file `spreadout serve` wrote there (--token-file FILE; in the app, paste its content under \"Another machine…\")"
    )]
    NoToken(String),
    /// The token file could not be read or written.
    #[error("token file {}: {source}", .path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The token file holds nothing.
    #[error("token file {} is empty", .0.display())]
    EmptyToken(PathBuf),
    /// Other users of this machine can read the token file.
    #[error(
        "token file {} can be read by other users of this machine, so its token may be theirs too: {} (and, if others may have read it, delete it and restart `spreadout serve` for a new token)",
        .0.display(),
        crate::support::private_file::REMEDY
    )]
    TokenExposed(PathBuf),
    /// The token file holds something other than a token and a pin.
    #[error("token file {}: {reason}", .path.display())]
    TokenInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `wss://` server without its key's pin.
    #[error(
        "{address} is reached over TLS, and the token file {} does not pin the server's key (a `tls-key sha256:…` line): copy the token file `spreadout serve` wrote on that machine",
        .token_file.display()
    )]
    NoPin {
        /// The server.
        address: String,
        /// The token file.
        token_file: PathBuf,
    },
    /// The server over TLS presented another key than the pinned one.
    #[error(
        "the server at {address} presented key {presented}, and the token file {} pins {pinned}: if its key was replaced, copy its new token file; otherwise someone else is answering at that address, and nothing was sent to it",
        .token_file.display()
    )]
    Impostor {
        /// The server.
        address: String,
        /// The token file.
        token_file: PathBuf,
        /// The key pinned.
        pinned: Pin,
        /// The key presented.
        presented: Pin,
    },
    /// The address does not resolve, or nothing answers there.
    #[error("cannot reach the training server at {address}: {reason}")]
    Unreachable {
        /// The server.
        address: String,
        /// What failed.
        reason: String,
    },
    /// The server's token is not the one given.
    #[error(
        "the training server at {address} refused the token in {}: copy the token file `spreadout serve` printed from that machine",
        .token_file.display()
    )]
    Refused {
        /// The server.
        address: String,
        /// The file whose token was refused.
        token_file: PathBuf,
    },
    /// The server already serves as many clients as it allows.
    #[error(
        "the training server at {address} already serves {clients} client(s), as many as it allows: wait for them to finish, or restart it with a larger --clients"
    )]
    Busy {
        /// The server.
        address: String,
        /// How many it serves.
        clients: usize,
    },
    /// The two machines run different Spreadout (or Burn) releases.
    #[error(
        "the training server at {address} runs {server} and this machine {client}: install the same release on both"
    )]
    Version {
        /// The server.
        address: String,
        /// What this machine runs.
        client: String,
        /// What the server runs.
        server: String,
    },
    /// Any other failure of the session.
    #[error("the training server at {address}: {reason}")]
    Session {
        /// The server.
        address: String,
        /// What failed.
        reason: String,
    },
}

impl RemoteError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TokenFile { .. } | Self::EmptyToken(_) | Self::TokenExposed(_) => {
                ErrorKind::Files
            }
            _ => ErrorKind::Device,
        }
    }
}

/// A connected server: where it is, what it serves, and the traffic so far.
#[derive(Debug, Clone)]
pub struct RemoteLink {
    /// The server, as its [`RemoteTarget`] names it.
    pub address: String,
    /// The device it serves, in its own words (control characters escaped), e.g. "NVIDIA H200
    /// (Vulkan, discrete GPU)".
    pub served: String,
    /// Whether that device is a GPU.
    pub gpu: bool,
    /// The largest buffer the device holds, in bytes: the most images a run keeps there.
    pub max_buffer: u64,
    /// Bytes each way, counted since the connection opened (below TLS, so its overhead counts).
    pub traffic: Arc<Traffic>,
    /// The link itself: when the last clone of this goes, the connection closes and the server
    /// can serve another client.
    _open: Arc<link::Open>,
}

/// Connects to the device `target` serves and checks that the server runs this release.
///
/// The link (`crate::link`) is opened here, the token said and the server's answer read before
/// Burn is involved, so that an unreachable server, a wrong token, a server that is not the one
/// pinned, another release or a busy server is named as such, and nothing of a run crosses until
/// then. Burn then connects through the link's one-use relay on this machine's loopback; the
/// connection closes when the returned link's last clone is dropped (Burn keeps its side of a
/// session for the life of the process, which would hold the server's place for a client).
///
/// # Errors
/// No token, the server unreachable or not the pinned one, the token refused, the server busy, or
/// another release on the server.
pub fn connect(target: &RemoteTarget) -> Result<(Device, RemoteLink), RemoteError> {
    let token_file = target
        .token_file
        .clone()
        .ok_or_else(|| RemoteError::NoToken(target.address.clone()))?;
    let secret = read_token(&token_file)?;
    let names = Names {
        address: &target.address,
        token_file: &token_file,
    };
    let dial = dial(target, &secret, &names)?;
    let traffic = Arc::new(Traffic::default());
    // A place let go of a moment ago (by this process's previous link, or a client that just
    // finished) is free once its end reaches the server: wait that moment before saying busy.
    let patience = std::time::Instant::now() + BUSY_PATIENCE;
    let relay = loop {
        match link::relay(dial.clone(), &secret.token, traffic.clone()) {
            Err(LinkError::Busy(_)) if std::time::Instant::now() < patience => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            opened => break opened.map_err(|error| names.link(error))?,
        }
    };
    let host = RemoteHost::websocket(&format!("ws://{}", relay.address()))
        .with_credential(secret.token.as_str());
    let device = Device::remote_options(&host)
        .init()
        .map_err(|error| names.burn(error))?;
    let Hello {
        version,
        served,
        gpu,
        max_buffer,
    } = hello(&device).map_err(|reason| names.session(reason))?;
    let ours = env!("CARGO_PKG_VERSION");
    if version != ours {
        return Err(RemoteError::Version {
            address: target.address.clone(),
            client: format!("Spreadout {ours}"),
            server: format!("Spreadout {version}"),
        });
    }
    Ok((
        device,
        RemoteLink {
            address: target.address.clone(),
            served,
            gpu,
            max_buffer,
            traffic,
            _open: Arc::new(relay),
        },
    ))
}

/// How the link reaches the server `target` names: its address resolved, and over TLS the pin
/// `secret` holds.
fn dial(target: &RemoteTarget, secret: &Secret, names: &Names<'_>) -> Result<Dial, RemoteError> {
    let resolve = |host_port: &str| -> Result<Vec<SocketAddr>, RemoteError> {
        let addresses: Vec<SocketAddr> = host_port
            .to_socket_addrs()
            .map_err(|e| names.unreachable(e.to_string()))?
            .collect();
        if addresses.is_empty() {
            return Err(names.unreachable("the name resolves to no address".to_owned()));
        }
        Ok(addresses)
    };
    Ok(match target.route() {
        Route::Plain { host_port } => Dial::Tcp(resolve(host_port)?[0]),
        Route::Tls { host_port } => Dial::Tls {
            address: resolve(host_port)?[0],
            pin: secret.pin.ok_or_else(|| RemoteError::NoPin {
                address: names.address.to_owned(),
                token_file: names.token_file.to_owned(),
            })?,
        },
        Route::Iroh { id, host_port } => Dial::Iroh {
            id: id
                .parse()
                .map_err(|_| RemoteError::Address(names.address.to_owned()))?,
            // Every address the name resolves to: the server may listen on only one of IPv4
            // and IPv6.
            addresses: resolve(host_port)?,
        },
    })
}

/// The server and token file a failure names, and the words for each failure.
struct Names<'a> {
    address: &'a str,
    token_file: &'a Path,
}

impl Names<'_> {
    fn unreachable(&self, reason: String) -> RemoteError {
        RemoteError::Unreachable {
            address: self.address.to_owned(),
            reason,
        }
    }

    fn session(&self, reason: String) -> RemoteError {
        RemoteError::Session {
            address: self.address.to_owned(),
            reason,
        }
    }

    fn refused(&self) -> RemoteError {
        RemoteError::Refused {
            address: self.address.to_owned(),
            token_file: self.token_file.to_owned(),
        }
    }

    /// What the link's handshake answered, in a client's words.
    fn link(&self, error: LinkError) -> RemoteError {
        match error {
            LinkError::Unreachable(reason) | LinkError::Garbled(reason) => self.unreachable(reason),
            LinkError::Refused => self.refused(),
            LinkError::Version(server) => RemoteError::Version {
                address: self.address.to_owned(),
                client: format!("Spreadout {}", env!("CARGO_PKG_VERSION")),
                server: format!("Spreadout {}", printable(&server)),
            },
            LinkError::Busy(clients) => RemoteError::Busy {
                address: self.address.to_owned(),
                clients,
            },
            LinkError::Impostor { pinned, presented } => RemoteError::Impostor {
                address: self.address.to_owned(),
                token_file: self.token_file.to_owned(),
                pinned,
                presented,
            },
        }
    }

    /// What Burn's session said when it opened, in a client's words.
    fn burn(&self, error: ConnectError) -> RemoteError {
        match error {
            ConnectError::Unauthorized => self.refused(),
            ConnectError::IncompatibleProtocol {
                client_version,
                server_version,
            } => RemoteError::Version {
                address: self.address.to_owned(),
                client: format!("Burn Remote protocol {client_version}"),
                server: format!("Burn Remote protocol {server_version}"),
            },
            ConnectError::Unreachable { reason } => self.unreachable(reason),
            other => self.session(other.to_string()),
        }
    }
}

/// The file the app keeps the token of the server at `address` in, under `servers` (a folder of
/// the app's data folder): named by the address's digest, so the webview never names a file.
///
/// # Errors
/// Not an address.
pub fn kept_token_file(servers: &Path, address: &str) -> Result<RemoteTarget, RemoteError> {
    let mut target = RemoteTarget::parse(address.trim())
        .ok_or_else(|| RemoteError::Address(address.to_owned()))?;
    target.token_file = Some(servers.join(format!(
        "{:016x}.token",
        xxhash_rust::xxh3::xxh3_64(target.address.as_bytes())
    )));
    Ok(target)
}

/// Connects to the server at `address` with the token file text `token` (what `spreadout serve`
/// wrote: the token, and for `wss://` its key's pin), or without one with the token kept before,
/// and says what it serves: the app's "Another machine…" in one call. A new token is kept in
/// `servers` (readable by this user alone) only once it has connected, so a typo or a wrong
/// address never replaces a token that works.
///
/// # Errors
/// Not an address, no token kept, a token file text that is not one, or any failure of
/// [`connect`].
pub fn remember(
    servers: &Path,
    address: &str,
    token: Option<&str>,
) -> Result<RemoteDevice, RemoteError> {
    let target = kept_token_file(servers, address)?;
    let kept = target.token_file.clone().expect("named above");
    let link = match token.map(str::trim).filter(|token| !token.is_empty()) {
        Some(text) => {
            let secret = Secret::parse(text, Path::new("(the token pasted)"))?;
            let trial = kept.with_extension("trial");
            write_token(&trial, &secret, true)?;
            let connected = connect(&RemoteTarget {
                token_file: Some(trial.clone()),
                ..target.clone()
            });
            let kept_now = connected
                .as_ref()
                .map_or(Ok(()), |_| write_token(&kept, &secret, true));
            // Spreadout's own trial file, written just above.
            let _ = std::fs::remove_file(&trial);
            kept_now?;
            connected?.1
        }
        None if !kept.exists() => return Err(RemoteError::NoToken(target.address)),
        None => connect(&target)?.1,
    };
    Ok(RemoteDevice {
        target,
        served: link.served,
        gpu: link.gpu,
    })
}

/// `text` with every control character escaped (`\u{1b}`), so that what a server says of itself
/// cannot move a terminal's cursor, set its clipboard or rewrite what it shows.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_addresses_and_nothing_else() {
        let id = burn::server::IrohIdentity::from_bytes([7; 32]).id();
        let target = RemoteTarget::parse(&format!("iroh://{id}@gpu-box")).unwrap();
        assert_eq!(
            target.address,
            format!("iroh://{id}@gpu-box:{DEFAULT_PORT}")
        );
        assert!(matches!(
            target.route(),
            Route::Iroh {
                host_port: "gpu-box:7800",
                ..
            }
        ));
        assert!(RemoteTarget::parse("iroh://not-an-id@gpu-box:7800").is_none());
        assert!(RemoteTarget::parse(&format!("iroh://{id}")).is_none());
        assert!(RemoteTarget::parse("ws://").is_none());
        let target = RemoteTarget::parse("ws://gpu-box:9000").unwrap();
        assert_eq!(target.address, "ws://gpu-box:9000");
        assert_eq!(
            RemoteTarget::parse("ws://10.0.0.2/").unwrap().address,
            format!("ws://10.0.0.2:{DEFAULT_PORT}")
        );
        assert_eq!(
            RemoteTarget::parse("ws://[::1]:7").unwrap().address,
            "ws://[::1]:7"
        );
        assert_eq!(
            RemoteTarget::parse("wss://gpu-box").unwrap().address,
            format!("wss://gpu-box:{DEFAULT_PORT}")
        );
        assert!(matches!(
            RemoteTarget::parse("wss://gpu-box:9").unwrap().route(),
            Route::Tls {
                host_port: "gpu-box:9"
            }
        ));
        assert!(RemoteTarget::parse("ws://a@b:1").is_none());
        assert!(RemoteTarget::parse("gpu").is_none());
        assert!(RemoteTarget::parse("http://gpu-box:9000").is_none());
    }

    #[test]
    fn what_a_server_says_is_printed_with_its_control_characters_escaped() {
        assert_eq!(printable("NVIDIA H200 — ü"), "NVIDIA H200 — ü");
        let hostile = "GPU\u{1b}]52;c;aGk=\u{7}\r\n";
        let shown = printable(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(shown, "GPU\\u{1b}]52;c;aGk=\\u{7}\\u{d}\\u{a}");
    }

    #[test]
    fn the_app_keeps_a_token_only_once_it_has_connected() {
        if crate::support::private_file::skipped_without_access_lists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = kept_token_file(dir.path(), "ws://127.0.0.1:9").unwrap();
        let kept = target.token_file.unwrap();
        assert!(kept.starts_with(dir.path()));
        let working = Secret::generate(None);
        write_token(&kept, &working, false).unwrap();
        // Nothing listens on port 9 of loopback: the new token is not kept.
        let new = Secret::generate(None).text();
        let error = remember(dir.path(), "ws://127.0.0.1:9", Some(&new)).unwrap_err();
        assert!(matches!(error, RemoteError::Unreachable { .. }), "{error}");
        assert_eq!(read_token(&kept).unwrap(), working);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no trial file left"
        );
        let error = remember(dir.path(), "ws://127.0.0.1:9", Some("hunter2")).unwrap_err();
        assert!(matches!(error, RemoteError::TokenInvalid { .. }), "{error}");
        assert!(matches!(
            kept_token_file(dir.path(), "http://x"),
            Err(RemoteError::Address(_))
        ));
    }
}
