//! Reaching a device that another machine serves with `spreadout serve`: the address and token
//! file a client is given ([`RemoteTarget`]), the token files themselves, the connection (Burn's
//! remote backend over WebSocket, through a relay on this machine that counts the bytes each way,
//! [`Traffic`]), the handshake that checks both sides run the same Spreadout, and the words for
//! what went wrong. The serving side is `crate::serve`.
//!
//! Burn's remote backend keeps the autodiff graph here and runs every tensor operation on the
//! server, so the whole engine trains on a served device unchanged; only Spreadout's own CubeCL
//! kernels, which launch on a local GPU, are out of reach (the views are then built here).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use burn::backend::ops::FloatTensorOps;
use burn::backend::{DispatchDevice, Remote};
use burn::remote::{ConnectError, CustomOpClient, RemoteHost};
use burn::tensor::{DType, Device, Shape, TensorData};
use burn_ir::{BackendIr, CustomOpIr, HandleContainer, TensorIr};
use serde::{Deserialize, Serialize};

/// The port `spreadout serve` listens on unless told otherwise, and a client assumes when its
/// address names none.
pub const DEFAULT_PORT: u16 = 7800;

/// The custom operation that answers a client's first question: which Spreadout serves, on what.
pub(crate) const HELLO_OP: &str = "spreadout.hello";
/// Floats in the hello's answer: the version's three numbers, 1 for a GPU (else 0), the
/// description's length, then the description's UTF-8 bytes, one per float (exact: every byte is
/// an integer below 2^24).
const HELLO_LEN: usize = 260;
/// Floats before the description's bytes.
const HELLO_HEADER: usize = 5;

/// A device served by `spreadout serve`, as `--device ws://HOST:PORT --token-file FILE` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct RemoteTarget {
    /// The server, `ws://HOST:PORT`.
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
    /// `text` as a server address, when it is one (`ws://HOST[:PORT]`); `None` for any other
    /// device name. The port defaults to [`DEFAULT_PORT`].
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("ws://")?.trim_end_matches('/');
        let address = if rest
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        {
            format!("ws://{rest}")
        } else {
            format!("ws://{rest}:{DEFAULT_PORT}")
        };
        Some(Self {
            address,
            token_file: None,
        })
    }

    /// `HOST:PORT`, what the relay dials.
    fn host_port(&self) -> &str {
        self.address.trim_start_matches("ws://")
    }
}

/// Why a served device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Not a server's address.
    #[error(
        "'{0}' is not a server's address: write ws://HOST:PORT (the address `spreadout serve` printed)"
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

/// Reads the token in `path`: its first line, without surrounding white space.
///
/// # Errors
/// The file cannot be read, or holds no token.
pub fn read_token(path: &Path) -> Result<String, RemoteError> {
    let text = std::fs::read_to_string(path).map_err(|source| RemoteError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(RemoteError::EmptyToken(path.to_owned()));
    }
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "token file {} is readable by other users of this machine (chmod 600 it)",
                path.display()
            );
        }
    }
    Ok(token.to_owned())
}

/// A fresh random token: 32 bytes from the thread's cryptographically secure generator, in hex.
pub fn new_token() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `token` to `path`, readable and writable by this user only. With `replace` false an
/// existing file is an error (`serve` creates a token file only where none is); the app replaces
/// only the file it keeps for itself.
///
/// # Errors
/// The file cannot be written (or exists, without `replace`).
pub fn write_token(path: &Path, token: &str, replace: bool) -> Result<(), RemoteError> {
    let error = |source| RemoteError::TokenFile {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(error)?;
    // A replaced file keeps the mode it had; tighten it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
    }
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(error)
}

/// Bytes that crossed to and from a server, counted by the relay on their way.
#[derive(Debug, Default)]
pub struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    /// Bytes sent to the server so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bytes received from the server so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// A connected server: where it is, what it serves, and the traffic so far.
#[derive(Debug, Clone)]
pub struct RemoteLink {
    /// The server, `ws://HOST:PORT`.
    pub address: String,
    /// The device it serves, in its own words, e.g. "NVIDIA H200 (Vulkan, discrete GPU)".
    pub served: String,
    /// Whether that device is a GPU.
    pub gpu: bool,
    /// Bytes each way, counted since the connection opened.
    pub traffic: Arc<Traffic>,
}

/// Connects to the device `target` serves and checks that the server runs this release.
///
/// Burn connects through a relay on this machine's loopback, which forwards every byte to the
/// server and counts it: the bytes per step that `bench` and the Train screen report are what
/// crossed the network. Each connection gets a relay of its own, so a server restarted since an
/// earlier connection is met by a fresh session.
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
    let upstream = target
        .host_port()
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("the name resolves to no address".to_owned()))?;
    // Dialled here, so that an unreachable server is named as such rather than as a failed
    // handshake through the relay; the relay hands this connection to Burn's first one.
    let first = TcpStream::connect_timeout(&upstream, std::time::Duration::from_secs(10))
        .map_err(|e| unreachable(e.to_string()))?;
    let traffic = Arc::new(Traffic::default());
    let relay =
        start_relay(first, upstream, traffic.clone()).map_err(|e| unreachable(e.to_string()))?;
    let host = RemoteHost::websocket(&format!("ws://{relay}")).with_credential(token.as_str());
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

/// Asks the server which release it runs and what it serves (the [`HELLO_OP`] custom operation,
/// one round trip).
fn hello(device: &Device) -> Result<Hello, String> {
    let DispatchDevice::Remote(remote) = device.as_dispatch() else {
        return Err("not a served device".to_owned());
    };
    let client = CustomOpClient::new(remote);
    let output = TensorIr::uninit(
        client.create_empty_handle(),
        Shape::new([HELLO_LEN]),
        DType::F32,
    );
    let answer = client
        .register(CustomOpIr::new(HELLO_OP, &[], &[output]))
        .remove(0);
    let data = pollster::block_on(<Remote as FloatTensorOps<Remote>>::float_into_data(answer))
        .map_err(|e| format!("the handshake failed: {e:?}"))?;
    let words: Vec<f32> = data
        .try_to_vec::<f32>()
        .map_err(|e| format!("the handshake's answer is unreadable: {e:?}"))?;
    decode_hello(&words).ok_or_else(|| "the handshake's answer is malformed".to_owned())
}

/// What the server says of itself.
#[derive(Debug, PartialEq)]
struct Hello {
    /// Its Spreadout release.
    version: String,
    /// The device it serves, in its own words.
    served: String,
    /// Whether that device is a GPU.
    gpu: bool,
}

/// The server's side of the handshake for backend `B`: this release's version, `served`, and
/// whether it is a GPU.
pub(crate) fn hello_handler<B: BackendIr>(
    served: &str,
    gpu: bool,
) -> impl Fn(&mut HandleContainer<B::Handle>, &CustomOpIr, &B::Device) + Send + Sync + 'static {
    let words = encode_hello(&Hello {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        served: served.to_owned(),
        gpu,
    });
    move |handles, op, device| {
        let answer = B::float_from_data(TensorData::new(words.clone(), [HELLO_LEN]), device);
        handles.register_float_tensor::<B>(&op.outputs[0].id, answer);
    }
}

fn encode_hello(hello: &Hello) -> Vec<f32> {
    let served = hello.served.as_str();
    let mut numbers = hello
        .version
        .split('.')
        .map(|n| n.parse::<f32>().unwrap_or(-1.0));
    let mut words: Vec<f32> = (0..3).map(|_| numbers.next().unwrap_or(0.0)).collect();
    words.push(if hello.gpu { 1.0 } else { 0.0 });
    // Cut on a character boundary so the description stays valid UTF-8.
    let mut end = served.len().min(HELLO_LEN - HELLO_HEADER);
    while !served.is_char_boundary(end) {
        end -= 1;
    }
    words.push(end as f32);
    words.extend(served.as_bytes()[..end].iter().map(|&b| f32::from(b)));
    words.resize(HELLO_LEN, 0.0);
    words
}

fn decode_hello(words: &[f32]) -> Option<Hello> {
    if words.len() != HELLO_LEN {
        return None;
    }
    let version = words[..3]
        .iter()
        .map(|&n| (n as i64).to_string())
        .collect::<Vec<_>>()
        .join(".");
    let len = words[HELLO_HEADER - 1] as usize;
    let bytes: Vec<u8> = words
        .get(HELLO_HEADER..HELLO_HEADER + len)?
        .iter()
        .map(|&b| b as u8)
        .collect();
    Some(Hello {
        version,
        served: String::from_utf8(bytes).ok()?,
        gpu: words[3] == 1.0,
    })
}

/// Listens on a free loopback port and forwards each connection to `upstream` (the first through
/// `first`, already connected), counting the bytes each way into `traffic`. Returns the port's
/// address; the relay lives as long as the process.
fn start_relay(
    first: TcpStream,
    upstream: SocketAddr,
    traffic: Arc<Traffic>,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let local = listener.local_addr()?;
    let mut first = Some(first);
    thread::Builder::new()
        .name("spreadout-relay".to_owned())
        .spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let server = match first
                    .take()
                    .map_or_else(|| TcpStream::connect(upstream), Ok)
                {
                    Ok(server) => server,
                    Err(error) => {
                        tracing::warn!("cannot reach the training server at {upstream}: {error}");
                        continue;
                    }
                };
                // Steps are small messages answered in turn; Nagle's delay would stall each one.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(client_too), Ok(server_too)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let sent = traffic.clone();
                let received = traffic.clone();
                pipe(client, server, move |n| {
                    sent.sent.fetch_add(n, Ordering::Relaxed);
                });
                pipe(server_too, client_too, move |n| {
                    received.received.fetch_add(n, Ordering::Relaxed);
                });
            }
        })?;
    Ok(local)
}

/// Copies `from` into `to` on a thread of its own, telling `count` each chunk's size; when either
/// end closes, closes both ways, so the far side learns of it at once.
fn pipe(mut from: TcpStream, mut to: TcpStream, count: impl Fn(u64) + Send + 'static) {
    let spawned = thread::Builder::new()
        .name("spreadout-relay-pipe".to_owned())
        .spawn(move || {
            let mut buffer = vec![0u8; 256 << 10];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                        count(n as u64);
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    if let Err(error) = spawned {
        tracing::warn!("cannot start a relay thread: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_addresses_and_nothing_else() {
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

    #[test]
    fn the_hello_carries_the_version_and_the_description() {
        let hello = Hello {
            version: "1.22.3".to_owned(),
            served: "NVIDIA H200 (Vulkan, discrete GPU) — ü".to_owned(),
            gpu: true,
        };
        let words = encode_hello(&hello);
        assert_eq!(words.len(), HELLO_LEN);
        assert_eq!(decode_hello(&words).unwrap(), hello);
        // Too long a description is cut on a character boundary.
        let long = Hello {
            version: "0.1.0".to_owned(),
            served: "é".repeat(400),
            gpu: false,
        };
        let cut = decode_hello(&encode_hello(&long)).unwrap();
        assert!(!cut.gpu && long.served.starts_with(&cut.served));
        assert!(cut.served.len() <= HELLO_LEN - HELLO_HEADER);
    }

    #[test]
    fn token_files_are_private_never_overwritten_by_serve_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/token");
        let token = new_token();
        assert_eq!(token.len(), 64);
        write_token(&path, &token, false).unwrap();
        assert_eq!(read_token(&path).unwrap(), token);
        assert!(matches!(
            write_token(&path, "other", false),
            Err(RemoteError::TokenFile { .. })
        ));
        assert_eq!(read_token(&path).unwrap(), token);
        write_token(&path, "replaced", true).unwrap();
        assert_eq!(read_token(&path).unwrap(), "replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(read_token(&path), Err(RemoteError::EmptyToken(_))));
    }

    #[test]
    fn the_relay_forwards_and_counts_both_ways() {
        let server = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let upstream = server.local_addr().unwrap();
        let echo = thread::spawn(move || {
            let (mut stream, _) = server.accept().unwrap();
            let mut got = [0u8; 5];
            stream.read_exact(&mut got).unwrap();
            stream.write_all(b"ok").unwrap();
            got
        });
        let traffic = Arc::new(Traffic::default());
        let first = TcpStream::connect(upstream).unwrap();
        let relay = start_relay(first, upstream, traffic.clone()).unwrap();
        let mut client = TcpStream::connect(relay).unwrap();
        client.write_all(b"hello").unwrap();
        let mut reply = [0u8; 2];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"ok");
        assert_eq!(&echo.join().unwrap(), b"hello");
        assert_eq!((traffic.sent(), traffic.received()), (5, 2));
    }
}
