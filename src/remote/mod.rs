//! Reaching a device that another machine serves with `spreadout serve`: the address and token
//! file a client is given ([`RemoteTarget`]), the connection (Burn's remote backend, over
//! WebSocket through a relay on this machine that counts the bytes each way, or over Iroh with
//! relays disabled: QUIC, encrypted and authenticated by the server's key), the handshake that
//! checks both sides run the same Spreadout, and the words for what went wrong. Token files live
//! in `token`, the relay in `relay`, the handshake in `hello`; the serving side is `crate::serve`.
//!
//! Burn's remote backend keeps the autodiff graph here and runs every tensor operation on the
//! server, so the whole engine trains on a served device unchanged. Spreadout's own views kernel
//! runs there as a custom operation of the server's (`crate::augment`'s `served`): a run's images
//! cross the network once, and each step sends only its views' draws.

mod hello;
mod relay;
mod token;

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use burn::remote::{ConnectError, EndpointId, IrohHost, IrohRelays, RemoteHost};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

pub(crate) use hello::{HELLO_OP, hello_handler};
pub use relay::Traffic;
pub use token::{new_token, read_token, write_token};

use hello::{Hello, hello};
use relay::start_relay;

/// The port `spreadout serve` listens on unless told otherwise, and a client assumes when its
/// address names none.
pub const DEFAULT_PORT: u16 = 7800;

/// A device served by `spreadout serve`, as `--device ws://HOST:PORT --token-file FILE` (or
/// `iroh://ID@HOST:PORT`) names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct RemoteTarget {
    /// The server, `ws://HOST:PORT` or `iroh://ID@HOST:PORT`.
    pub address: String,
    /// The file holding the server's token; a client without one is refused before connecting.
    #[serde(with = "crate::paths::option")]
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
    /// `text` as a server address, when it is one (`ws://HOST[:PORT]`, or
    /// `iroh://ID@HOST[:PORT]` with the server's id as `spreadout serve --iroh` prints it);
    /// `None` for any other device name. The port defaults to [`DEFAULT_PORT`].
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let rest = rest.trim_end_matches('/');
        let host = match scheme {
            "ws" => rest,
            "iroh" => {
                let (id, host) = rest.split_once('@')?;
                id.parse::<EndpointId>().ok()?;
                host
            }
            _ => return None,
        };
        if host.is_empty() {
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
            _ => Route::WebSocket {
                host_port: self.address.trim_start_matches("ws://"),
            },
        }
    }
}

/// A server's transport and where it listens, read off its address.
enum Route<'a> {
    /// Burn's WebSocket transport, through the counting relay.
    WebSocket { host_port: &'a str },
    /// Burn's Iroh transport with relays disabled: a direct QUIC connection to `host_port`,
    /// which only the holder of `id`'s key can answer.
    Iroh { id: &'a str, host_port: &'a str },
}

/// Why a served device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Not a server's address.
    #[error(
        "'{0}' is not a server's address: write ws://HOST:PORT or iroh://ID@HOST:PORT (the address `spreadout serve` printed)"
    )]
    Address(String),
    /// A served device without a token file.
    #[error(
        "{0} needs the server's token: give the file `spreadout serve` wrote with --token-file FILE"
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

/// A connected server: where it is, what it serves, and the traffic so far.
#[derive(Debug, Clone)]
pub struct RemoteLink {
    /// The server, as its [`RemoteTarget`] names it.
    pub address: String,
    /// The device it serves, in its own words, e.g. "NVIDIA H200 (Vulkan, discrete GPU)".
    pub served: String,
    /// Whether that device is a GPU.
    pub gpu: bool,
    /// The largest buffer the device holds, in bytes: the most images a run keeps there.
    pub max_buffer: u64,
    /// Bytes each way, counted since the connection opened; over Iroh, whose encrypted UDP
    /// datagrams Burn sends from an endpoint of its own, they are not counted.
    pub traffic: Option<Arc<Traffic>>,
}

/// Connects to the device `target` serves and checks that the server runs this release.
///
/// Over WebSocket, Burn connects through a relay on this machine's loopback, which forwards every
/// byte to the server and counts it: the bytes per step that `bench` and the Train screen report
/// are what crossed the network. Each connection gets a relay of its own, so a server restarted
/// since an earlier connection is met by a fresh session. Over Iroh, Burn dials the server's
/// addresses directly from an endpoint without relays, and the QUIC handshake fails unless the
/// far side holds the key of the id in the address.
///
/// # Errors
/// No token, the server unreachable, the token refused, or another release on the server.
pub fn connect(target: &RemoteTarget) -> Result<(Device, RemoteLink), RemoteError> {
    let address = target.address.clone();
    let token_file = target
        .token_file
        .clone()
        .ok_or_else(|| RemoteError::NoToken(address.clone()))?;
    let token = read_token(&token_file)?;
    let unreachable = |reason: String| RemoteError::Unreachable {
        address: address.clone(),
        reason,
    };
    let resolve = |host_port: &str| -> Result<Vec<SocketAddr>, RemoteError> {
        let addresses: Vec<SocketAddr> = host_port
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?
            .collect();
        if addresses.is_empty() {
            return Err(unreachable("the name resolves to no address".to_owned()));
        }
        Ok(addresses)
    };
    let (host, traffic) = match target.route() {
        Route::WebSocket { host_port } => {
            let upstream = resolve(host_port)?[0];
            // Dialled here, so that an unreachable server is named as such rather than as a
            // failed handshake through the relay; the relay hands this connection to Burn's
            // first one.
            let first = TcpStream::connect_timeout(&upstream, std::time::Duration::from_secs(10))
                .map_err(|e| unreachable(e.to_string()))?;
            let traffic = Arc::new(Traffic::default());
            let relay = start_relay(first, upstream, traffic.clone())
                .map_err(|e| unreachable(e.to_string()))?;
            (
                RemoteHost::websocket(&format!("ws://{relay}")),
                Some(traffic),
            )
        }
        Route::Iroh { id, host_port } => {
            let id: EndpointId = id
                .parse()
                .map_err(|_| RemoteError::Address(address.clone()))?;
            // Every address the name resolves to: the server may listen on only one of IPv4
            // and IPv6.
            let host = resolve(host_port)?.into_iter().fold(
                IrohHost::new(id).with_relays(IrohRelays::Disabled),
                IrohHost::with_address,
            );
            (RemoteHost::iroh(host), None)
        }
    };
    let host = host.with_credential(token.as_str());
    let device = Device::remote_options(&host)
        .init()
        .map_err(|error| match error {
            ConnectError::Unauthorized => RemoteError::Refused {
                address: address.clone(),
                token_file: token_file.clone(),
            },
            ConnectError::IncompatibleProtocol {
                client_version,
                server_version,
            } => RemoteError::Version {
                address: address.clone(),
                client: format!("Burn Remote protocol {client_version}"),
                server: format!("Burn Remote protocol {server_version}"),
            },
            ConnectError::Unreachable { reason } => unreachable(reason),
            other => RemoteError::Session {
                address: address.clone(),
                reason: other.to_string(),
            },
        })?;
    let Hello {
        version,
        served,
        gpu,
        max_buffer,
    } = hello(&device).map_err(|reason| RemoteError::Session {
        address: address.clone(),
        reason,
    })?;
    let ours = env!("CARGO_PKG_VERSION");
    if version != ours {
        return Err(RemoteError::Version {
            address,
            client: format!("Spreadout {ours}"),
            server: format!("Spreadout {version}"),
        });
    }
    Ok((
        device,
        RemoteLink {
            address,
            served,
            gpu,
            max_buffer,
            traffic,
        },
    ))
}

/// Keeps `token` (when given; else the one kept before) for the server at `address` in a file of
/// the app's own, readable by this user only, connects, and says what the server serves: the
/// app's "Another machine…" in one call.
///
/// # Errors
/// Not an address, no token kept, or any failure of [`connect`].
pub fn remember(address: &str, token: Option<&str>) -> Result<RemoteDevice, RemoteError> {
    let mut target = RemoteTarget::parse(address.trim())
        .ok_or_else(|| RemoteError::Address(address.to_owned()))?;
    let token_file = crate::paths::default_data_dir()
        .join("servers")
        .join(format!(
            "{:016x}.token",
            xxhash_rust::xxh3::xxh3_64(target.address.as_bytes())
        ));
    match token.map(str::trim).filter(|token| !token.is_empty()) {
        Some(token) => write_token(&token_file, token, true)?,
        None if !token_file.exists() => return Err(RemoteError::NoToken(target.address)),
        None => {}
    }
    target.token_file = Some(token_file);
    let (_, link) = connect(&target)?;
    Ok(RemoteDevice {
        target,
        served: link.served,
        gpu: link.gpu,
    })
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
        assert!(RemoteTarget::parse("gpu").is_none());
        assert!(RemoteTarget::parse("http://gpu-box:9000").is_none());
    }
}
