//! Serving this machine's device to Spreadout on other machines (`spreadout serve`): binding
//! the address asked for behind the link's front (`crate::link`: a cap on handshakes, a deadline,
//! the token checked before anything reaches Burn, a cap on clients), choosing the transport
//! (plain TCP for loopback and SSH tunnels, TLS with a key made once and pinned by clients, or
//! Iroh's QUIC with relays and port mapping off), answering the handshake of `crate::remote` and
//! the views of `crate::augment` built from images kept here, and the token file clients copy.
//! The sessions themselves are Burn's remote server, on this machine's loopback: the clients keep
//! the autodiff graph and the run folder, this machine runs the tensor operations.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use burn::backend::{Cube, Flex};
use burn::server::{IrohIdentity, RemoteServer, TokenAuthorizer, Transport, WebSocketTransport};

use crate::augment;
use crate::device::{self, DeviceChoice, DeviceError, SelectedDevice};
use crate::link::{self, Front, FrontOptions, Listening, Pin, ServerKey};
use crate::remote::{self, HELLO_OP, RemoteError, Secret};
use crate::support::error_kind::ErrorKind;

/// Why a server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is taken or not this machine's.
    #[error("cannot listen on {address}: {reason}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The device cannot be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Serving another machine's device is not something a server does.
    #[error("a server serves this machine's own device, not another server's")]
    RemoteDevice,
    /// No clients at all would be served.
    #[error("--clients must be at least 1")]
    NoClients,
    /// The server's key could not be read or created, or others can read it.
    #[error("server key {}: {reason}", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The token file cannot be used.
    #[error(transparent)]
    Token(#[from] RemoteError),
    /// Burn's server failed.
    #[error("serving failed: {0}")]
    Serve(String),
}

impl ServeError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Device(error) => error.kind(),
            Self::Token(error) => error.kind(),
            Self::Key { .. } => ErrorKind::Files,
            Self::Bind { .. } | Self::RemoteDevice | Self::NoClients | Self::Serve(_) => {
                ErrorKind::Device
            }
        }
    }
}

/// How clients reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Plain TCP (`ws://`): for loopback, where clients come through an SSH tunnel, and beyond it
    /// only when asked for (`--plaintext`): anyone on the path can read and alter it.
    Plain,
    /// TLS (`wss://`) with the key kept in `key` (made there on first use, readable by its owner
    /// alone); clients accept only that key, whose pin the token file carries.
    Tls {
        /// The key file.
        key: PathBuf,
    },
    /// Iroh's QUIC over UDP (`iroh://`), the server known by the key kept in `identity`.
    Iroh {
        /// The key file.
        identity: PathBuf,
    },
}

/// A server bound to its address, with its device chosen, not yet serving.
pub struct Server {
    listening: Listening,
    /// Burn's own port, on loopback: the front forwards admitted clients there.
    burn: TcpListener,
    selected: SelectedDevice,
    clients: usize,
    pin: Option<Pin>,
    iroh_id: Option<String>,
}

impl Server {
    /// Binds `listen` `via` its transport (exactly that address: a loopback address serves this
    /// machine alone) and chooses `device` as `train --device` would; `clients` are served at
    /// once.
    ///
    /// # Errors
    /// The address cannot be bound, a key cannot be read or made, or the device cannot be used.
    pub fn bind(
        listen: SocketAddr,
        via: &Via,
        device: DeviceChoice,
        clients: usize,
    ) -> Result<Self, ServeError> {
        if matches!(device, DeviceChoice::Remote(_)) {
            return Err(ServeError::RemoteDevice);
        }
        if clients == 0 {
            return Err(ServeError::NoClients);
        }
        let bind_error = |reason: String| ServeError::Bind {
            address: listen,
            reason,
        };
        let (listening, pin, iroh_id) = match via {
            Via::Plain => (
                Listening::tcp(listen, None).map_err(|e| bind_error(e.to_string()))?,
                None,
                None,
            ),
            Via::Tls { key } => {
                let key = ServerKey::load_or_create(key).map_err(|e| ServeError::Key {
                    path: key.clone(),
                    reason: e.to_string(),
                })?;
                let listening =
                    Listening::tcp(listen, Some(&key)).map_err(|e| bind_error(e.to_string()))?;
                (listening, Some(key.pin()), None)
            }
            Via::Iroh { identity } => {
                let identity = load_identity(identity)?;
                let listening = Listening::iroh(listen, identity.to_bytes()).map_err(bind_error)?;
                (listening, None, Some(identity.id().to_string()))
            }
        };
        let burn = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| bind_error(e.to_string()))?;
        let selected = device::select(device)?;
        Ok(Self {
            listening,
            burn,
            selected,
            clients,
            pin,
            iroh_id,
        })
    }

    /// The address listened on (the port the system chose, when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.listening.address()
    }

    /// What a client gives `--device`, with `host` for this machine's name or address.
    pub fn client_address(&self, host: &str) -> String {
        let port = self.address().port();
        match (&self.iroh_id, self.pin) {
            (Some(id), _) => format!("iroh://{id}@{host}:{port}"),
            (None, Some(_)) => format!("wss://{host}:{port}"),
            (None, None) => format!("ws://{host}:{port}"),
        }
    }

    /// The pin of the server's TLS key, when it serves TLS: the token file carries it.
    pub fn pin(&self) -> Option<Pin> {
        self.pin
    }

    /// Whether the connection is encrypted (TLS or Iroh) rather than plain.
    pub fn is_encrypted(&self) -> bool {
        self.pin.is_some() || self.iroh_id.is_some()
    }

    /// The device served.
    pub fn device(&self) -> &SelectedDevice {
        &self.selected
    }

    /// Serves clients presenting `token` until the process receives Ctrl-C or SIGTERM. A client
    /// that disappears ends only its own session; the next client is served.
    ///
    /// # Errors
    /// Burn's server could not run.
    pub fn serve(self, token: &str) -> Result<(), ServeError> {
        let served = match self.selected.compute() {
            Some(compute) => format!("{}, {}", self.selected.name, compute.summary()),
            None => self.selected.name.clone(),
        };
        // Burn checks the token too: its loopback port is open to every user of this machine.
        let tokens = TokenAuthorizer::new(token).map_err(|e| ServeError::Serve(e.to_string()))?;
        let server = RemoteServer::new([self.selected.device.clone()]).with_authorizer(tokens);
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
        let burn = self
            .burn
            .local_addr()
            .map_err(|e| ServeError::Serve(e.to_string()))?;
        Front::spawn(
            self.listening,
            FrontOptions {
                token: token.to_owned(),
                clients: self.clients,
                deadline: link::HANDSHAKE_DEADLINE,
            },
            burn,
        );
        let transport: Transport = WebSocketTransport::from_listener(self.burn).into();
        server
            .serve(transport)
            .map_err(|e| ServeError::Serve(e.to_string()))
    }
}

/// What [`token_file`] did to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFileChange {
    /// It did not exist: it holds a new token now.
    Created,
    /// It holds the same token, and now the pin of this server's TLS key (it had none, or
    /// another key's).
    Pinned,
    /// It was used as it was.
    Kept,
}

/// The secret clients must present, from the token file at `path`: made there with a fresh token
/// (readable by its owner alone) when it does not exist; given `pin`, with that pin, added to a
/// file that lacks it without changing its token. A file others can read, or a token under 128
/// bits, is refused.
///
/// # Errors
/// The file cannot be read or written, or is refused.
pub fn token_file(path: &Path, pin: Option<Pin>) -> Result<(Secret, TokenFileChange), ServeError> {
    if !path.exists() {
        let secret = Secret::generate(pin);
        remote::write_token(path, &secret, false)?;
        return Ok((secret, TokenFileChange::Created));
    }
    let secret = remote::read_token(path)?;
    match pin {
        Some(pin) if secret.pin != Some(pin) => {
            let secret = Secret {
                pin: Some(pin),
                ..secret
            };
            remote::write_token(path, &secret, true)?;
            Ok((secret, TokenFileChange::Pinned))
        }
        _ => Ok((secret, TokenFileChange::Kept)),
    }
}

/// The server's Iroh key in `path`, created there (readable by its owner only) on first use, so
/// that its id, and so the address clients keep, survives a restart; refused when others can
/// read it, since they could then answer as this server.
fn load_identity(path: &Path) -> Result<IrohIdentity, ServeError> {
    let error = |reason: String| ServeError::Key {
        path: path.to_owned(),
        reason,
    };
    if path.exists() {
        if crate::support::private_file::is_exposed(path).map_err(|e| error(e.to_string()))? {
            return Err(error(format!(
                "other users of this machine can read it: {}, or delete it and let serve make another (clients then need the new address)",
                crate::support::private_file::REMEDY
            )));
        }
    } else if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
    }
    IrohIdentity::load_or_create(path).map_err(|e| error(e.to_string()))
}

/// Whether `address` reaches beyond this machine, where a plain connection needs a trusted
/// network or an SSH tunnel.
pub fn is_exposed(address: SocketAddr) -> bool {
    !address.ip().is_loopback()
}

/// How a server on `listen` is reached unless asked otherwise: plain on loopback (clients come
/// through an SSH tunnel, which encrypts), TLS with the key in `key` beyond it.
pub fn default_via(listen: SocketAddr, key: PathBuf) -> Via {
    if is_exposed(listen) {
        Via::Tls { key }
    } else {
        Via::Plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_stay_on_this_machine_and_the_rest_is_encrypted_by_default() {
        assert!(!is_exposed("127.0.0.1:7800".parse().unwrap()));
        assert!(!is_exposed("[::1]:7800".parse().unwrap()));
        assert!(is_exposed("0.0.0.0:7800".parse().unwrap()));
        assert!(is_exposed("192.168.1.20:7800".parse().unwrap()));
        let key = PathBuf::from("k");
        assert_eq!(
            default_via("127.0.0.1:7800".parse().unwrap(), key.clone()),
            Via::Plain
        );
        assert_eq!(
            default_via("0.0.0.0:7800".parse().unwrap(), key.clone()),
            Via::Tls { key }
        );
    }

    #[test]
    fn a_taken_address_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let error = Server::bind(address, &Via::Plain, DeviceChoice::Cpu, 1)
            .err()
            .expect("the port is taken");
        assert!(error.to_string().contains(&address.to_string()), "{error}");
        assert!(matches!(
            Server::bind(
                "127.0.0.1:0".parse().unwrap(),
                &Via::Plain,
                DeviceChoice::Cpu,
                0
            ),
            Err(ServeError::NoClients)
        ));
    }

    #[test]
    fn keys_are_made_once_kept_private_and_their_addresses_survive_a_restart() {
        if crate::support::private_file::skipped_without_access_lists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        for via in [
            Via::Iroh {
                identity: dir.path().join("keys/iroh.key"),
            },
            Via::Tls {
                key: dir.path().join("keys/tls.key"),
            },
        ] {
            let first = Server::bind(listen, &via, DeviceChoice::Cpu, 1).unwrap();
            let again = Server::bind(listen, &via, DeviceChoice::Cpu, 1).unwrap();
            assert!(first.is_encrypted());
            assert_eq!(first.pin(), again.pin());
            let address = first.client_address("gpu-box");
            let port = again.address().port().to_string();
            assert_eq!(
                address.replace(&first.address().port().to_string(), "P"),
                again.client_address("gpu-box").replace(&port, "P")
            );
            assert!(
                crate::remote::RemoteTarget::parse(&address).is_some(),
                "{address}"
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in ["keys/iroh.key", "keys/tls.key"] {
                let key = dir.path().join(key);
                assert_eq!(
                    std::fs::metadata(&key).unwrap().permissions().mode() & 0o077,
                    0
                );
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            for via in [
                Via::Iroh {
                    identity: dir.path().join("keys/iroh.key"),
                },
                Via::Tls {
                    key: dir.path().join("keys/tls.key"),
                },
            ] {
                let refused = Server::bind(listen, &via, DeviceChoice::Cpu, 1)
                    .err()
                    .unwrap();
                assert!(refused.to_string().contains("chmod 600"), "{refused}");
            }
        }
    }

    #[test]
    fn a_token_file_is_made_once_and_gains_the_pin_without_a_new_token() {
        if crate::support::private_file::skipped_without_access_lists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let (made, change) = token_file(&path, None).unwrap();
        assert_eq!(change, TokenFileChange::Created);
        assert_eq!(
            token_file(&path, None).unwrap(),
            (made.clone(), TokenFileChange::Kept)
        );
        let pin: Pin = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        let (pinned, change) = token_file(&path, Some(pin)).unwrap();
        assert_eq!(
            (change, pinned.token.as_str(), pinned.pin),
            (TokenFileChange::Pinned, made.token.as_str(), Some(pin))
        );
        assert_eq!(
            token_file(&path, Some(pin)).unwrap().1,
            TokenFileChange::Kept
        );
    }
}
