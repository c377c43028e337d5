//! Serving this machine's device to Spreadout on other machines (`spreadout serve`): binding
//! the address asked for, letting in only clients that present the token, answering the
//! handshake of `crate::remote` and the views of `crate::augment` built from images kept here,
//! and logging each client. The sessions themselves are Burn's
//! remote server, over its WebSocket transport (unencrypted) or its Iroh transport with relays
//! disabled (QUIC: encrypted, and clients check this server's key): the clients keep the
//! autodiff graph and the run folder, this machine runs the tensor operations.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use burn::backend::{Cube, Flex};
use burn::server::{
    AuthorizationRequest, IrohIdentity, IrohRelays, IrohTransport, PeerAuthorizer, RemoteServer,
    TokenAuthorizer, Transport, WebSocketTransport,
};

use crate::augment;
use crate::device::{self, DeviceChoice, DeviceError, SelectedDevice};
use crate::remote::{self, HELLO_OP};

/// Why a server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is taken or not this machine's.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The device cannot be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Serving another machine's device is not something a server does.
    #[error("a server serves this machine's own device, not another server's")]
    RemoteDevice,
    /// Burn's Iroh transport binds its port on every interface, so only that may be asked for.
    #[error(
        "over Iroh the server listens on every interface of this machine (Burn binds its port on all of them): give --listen 0.0.0.0:PORT, with the port clients will dial, rather than {0}"
    )]
    IrohAddress(SocketAddr),
    /// The server's key could not be read or created.
    #[error("server key {}: {source}", .path.display())]
    Identity {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Burn's server failed.
    #[error("serving failed: {0}")]
    Serve(String),
}

/// How clients reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Burn's WebSocket transport: plain TCP, on exactly the address asked for.
    WebSocket,
    /// Burn's Iroh transport with relays disabled: QUIC over UDP, encrypted, the server known by
    /// the key kept in `identity` (created there on first use, readable by its owner only).
    Iroh {
        /// The key file.
        identity: PathBuf,
    },
}

/// What the server listens with (the key boxed: it is 224 bytes).
enum Listener {
    WebSocket(TcpListener),
    Iroh {
        identity: Box<IrohIdentity>,
        port: u16,
    },
}

/// A server bound to its address, with its device chosen, not yet serving.
pub struct Server {
    listener: Listener,
    selected: SelectedDevice,
    token: String,
}

impl Server {
    /// Binds `listen` (over WebSocket exactly that address: a loopback address serves this
    /// machine alone; over Iroh its port, on every interface, which `listen` must say) and
    /// chooses `device` as `train --device` would. The token must not be empty
    /// (`remote::read_token` refuses one).
    ///
    /// # Errors
    /// The address cannot be bound or is not one Iroh can serve, the key cannot be read, or the
    /// device cannot be used.
    pub fn bind(
        listen: SocketAddr,
        via: &Via,
        token: String,
        device: DeviceChoice,
    ) -> Result<Self, ServeError> {
        if matches!(device, DeviceChoice::Remote(_)) {
            return Err(ServeError::RemoteDevice);
        }
        let listener = match via {
            Via::WebSocket => Listener::WebSocket(TcpListener::bind(listen).map_err(|source| {
                ServeError::Bind {
                    address: listen,
                    source,
                }
            })?),
            // Port 0 too: clients could not be told which port the system chose.
            Via::Iroh { .. } if !listen.ip().is_unspecified() || listen.port() == 0 => {
                return Err(ServeError::IrohAddress(listen));
            }
            Via::Iroh { identity } => Listener::Iroh {
                identity: Box::new(load_identity(identity)?),
                port: listen.port(),
            },
        };
        let selected = device::select(device)?;
        Ok(Self {
            listener,
            selected,
            token,
        })
    }

    /// The address listened on (the port the system chose, when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        match &self.listener {
            Listener::WebSocket(listener) => listener
                .local_addr()
                .expect("a bound listener has an address"),
            Listener::Iroh { port, .. } => SocketAddr::from(([0, 0, 0, 0], *port)),
        }
    }

    /// What a client gives `--device`, with `host` for this machine's name or address.
    pub fn client_address(&self, host: &str) -> String {
        let port = self.address().port();
        match &self.listener {
            Listener::WebSocket(_) => format!("ws://{host}:{port}"),
            Listener::Iroh { identity, .. } => format!("iroh://{}@{host}:{port}", identity.id()),
        }
    }

    /// Whether the connection is encrypted (Iroh) rather than plain (WebSocket).
    pub fn is_encrypted(&self) -> bool {
        matches!(self.listener, Listener::Iroh { .. })
    }

    /// The device served.
    pub fn device(&self) -> &SelectedDevice {
        &self.selected
    }

    /// Serves until the process receives Ctrl-C or SIGTERM. A client that disappears ends only its
    /// own session; the next client is served.
    ///
    /// # Errors
    /// Burn's server could not run.
    pub fn serve(self) -> Result<(), ServeError> {
        let served = match self.selected.compute() {
            Some(compute) => format!("{}, {}", self.selected.name, compute.summary()),
            None => self.selected.name.clone(),
        };
        let tokens = TokenAuthorizer::new(self.token.as_str())
            .map_err(|e| ServeError::Serve(e.to_string()))?;
        let server =
            RemoteServer::new([self.selected.device.clone()]).with_authorizer(Logged(tokens));
        // The custom operations (the handshake, views built from kept images) are registered
        // for the served backend alone: Burn refuses a server holding operations of another
        // backend.
        let server = match self.selected.cube_device() {
            Some(cube) => {
                let max_buffer = cube.client().properties().memory.max_page_size;
                server
                    .with_custom_op::<Cube, _>(
                        HELLO_OP,
                        remote::hello_handler::<Cube>(&served, true, max_buffer),
                    )
                    .with_custom_op::<Cube, _>(augment::VIEWS_OP, augment::views_on_gpu())
            }
            None => server
                .with_custom_op::<Flex, _>(
                    HELLO_OP,
                    remote::hello_handler::<Flex>(&served, false, u64::MAX),
                )
                .with_custom_op::<Flex, _>(augment::VIEWS_OP, augment::views_on_cpu()),
        };
        let transport: Transport = match self.listener {
            Listener::WebSocket(listener) => WebSocketTransport::from_listener(listener).into(),
            Listener::Iroh { identity, port } => IrohTransport::new(*identity)
                .with_relays(IrohRelays::Disabled)
                .with_port(port)
                .into(),
        };
        server
            .serve(transport)
            .map_err(|e| ServeError::Serve(e.to_string()))
    }
}

/// The server's Iroh key in `path`, created there (readable by its owner only) on first use, so
/// that its id, and so the address clients keep, survives a restart.
fn load_identity(path: &Path) -> Result<IrohIdentity, ServeError> {
    let error = |source| ServeError::Identity {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    IrohIdentity::load_or_create(path).map_err(error)
}

/// Whether `address` reaches beyond this machine, where the unencrypted transport needs a
/// trusted network or an SSH tunnel.
pub fn is_exposed(address: SocketAddr) -> bool {
    !address.ip().is_loopback()
}

/// The token check, with each client's session logged: who was let in, who was refused.
struct Logged(TokenAuthorizer);

impl PeerAuthorizer for Logged {
    fn authorize(&self, request: AuthorizationRequest<'_>) -> Result<(), String> {
        let client = request.client;
        let verdict = self.0.authorize(request);
        match &verdict {
            Ok(()) => tracing::info!("{client}: session opened"),
            Err(reason) => tracing::warn!("{client}: refused ({reason})"),
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_stay_on_this_machine() {
        assert!(!is_exposed("127.0.0.1:7800".parse().unwrap()));
        assert!(!is_exposed("[::1]:7800".parse().unwrap()));
        assert!(is_exposed("0.0.0.0:7800".parse().unwrap()));
        assert!(is_exposed("192.168.1.20:7800".parse().unwrap()));
    }

    #[test]
    fn a_taken_address_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let error = Server::bind(address, &Via::WebSocket, "t".into(), DeviceChoice::Cpu)
            .err()
            .expect("the port is taken");
        assert!(error.to_string().contains(&address.to_string()), "{error}");
    }

    #[test]
    fn iroh_is_asked_for_every_interface_and_a_port_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let via = Via::Iroh {
            identity: dir.path().join("keys/server.key"),
        };
        for refused in ["127.0.0.1:7800", "0.0.0.0:0"] {
            let error = Server::bind(
                refused.parse().unwrap(),
                &via,
                "t".into(),
                DeviceChoice::Cpu,
            )
            .err()
            .expect("Iroh binds every interface, on a known port");
            assert!(matches!(error, ServeError::IrohAddress(_)), "{error}");
        }
        let listen: SocketAddr = "0.0.0.0:7800".parse().unwrap();
        let first = Server::bind(listen, &via, "t".into(), DeviceChoice::Cpu).unwrap();
        let again = Server::bind(listen, &via, "t".into(), DeviceChoice::Cpu).unwrap();
        assert!(first.is_encrypted());
        let address = first.client_address("gpu-box");
        assert_eq!(address, again.client_address("gpu-box"));
        assert!(
            crate::remote::RemoteTarget::parse(&address).is_some(),
            "{address}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = std::fs::metadata(dir.path().join("keys/server.key")).unwrap();
            assert_eq!(key.permissions().mode() & 0o077, 0);
        }
    }
}
