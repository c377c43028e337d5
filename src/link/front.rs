//! The server's side of the link: owns the port `spreadout serve` listens on, and lets a
//! connection through to Burn's server (on this machine's loopback) only once it has said the
//! right token within [`HANDSHAKE_DEADLINE`] in a first line of at most [`super::MAX_LINE`] bytes, runs
//! this release, and finds a client's place free.
//!
//! A stranger can make it hold at most [`MAX_HANDSHAKES`] handshakes, each a line buffer and, over
//! TLS or QUIC, one handshake's state: a few tens of KiB in all, however many connections it
//! opens and however large a frame it starts to send. A new connection beyond the cap closes the
//! oldest handshake rather than being turned away, so a client with the token, which says its
//! line at once, gets through a flood.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::{
    HANDSHAKE_DEADLINE, MAX_HANDSHAKES, ServerKey, Verdict, block_on, iroh, keep_alive,
    parse_hello, read_line, runtime, same_token, write_line,
};

/// What the front lets through.
#[derive(Debug, Clone)]
pub struct FrontOptions {
    /// The token clients must say.
    pub token: String,
    /// Clients served at once; one more is told the server is busy.
    pub clients: usize,
    /// How long a connection has for its transport's handshake and its first line
    /// ([`HANDSHAKE_DEADLINE`] for `spreadout serve`).
    pub deadline: std::time::Duration,
}

/// A bound port, not yet served.
pub enum Listening {
    /// TCP, plain (loopback, SSH tunnels, or `--plaintext`) or TLS with the server's key.
    Tcp {
        /// The bound socket.
        listener: std::net::TcpListener,
        /// TLS's server half, when encrypted.
        tls: Option<Arc<rustls::ServerConfig>>,
    },
    /// Iroh's QUIC on exactly the address asked for.
    Iroh(::iroh::Endpoint),
}

impl Listening {
    /// TCP on `listen`, encrypted with `key` when given.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn tcp(listen: SocketAddr, key: Option<&ServerKey>) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        Ok(Self::Tcp {
            listener,
            tls: key.map(ServerKey::server_config),
        })
    }

    /// Iroh on `listen`, as the endpoint whose key is `secret`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn iroh(listen: SocketAddr, secret: [u8; 32]) -> Result<Self, String> {
        let secret = ::iroh::SecretKey::from_bytes(&secret);
        block_on(iroh::endpoint(secret, listen, None, true)).map(Self::Iroh)
    }

    /// The address bound (the port the system chose, when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        match self {
            Self::Tcp { listener, .. } => listener
                .local_addr()
                .expect("a bound listener has an address"),
            Self::Iroh(endpoint) => endpoint.bound_sockets()[0],
        }
    }
}

/// The front of a running server.
pub struct Front;

impl Front {
    /// Serves `listening` in the background, forwarding each admitted client to Burn's server at
    /// `burn` (a loopback address), until the process ends.
    pub fn spawn(listening: Listening, options: FrontOptions, burn: SocketAddr) {
        let shared = Arc::new(Shared {
            clients: Arc::new(Semaphore::new(options.clients)),
            options,
            burn,
            handshakes: Mutex::new(Handshakes::default()),
        });
        runtime().spawn(async move {
            match listening {
                Listening::Tcp { listener, tls } => accept_tcp(listener, tls, shared).await,
                Listening::Iroh(endpoint) => accept_iroh(endpoint, shared).await,
            }
        });
    }
}

/// What every connection's task shares.
struct Shared {
    options: FrontOptions,
    burn: SocketAddr,
    clients: Arc<Semaphore>,
    handshakes: Mutex<Handshakes>,
}

/// The handshakes in flight, oldest first, each with the sender whose drop closes it.
#[derive(Default)]
struct Handshakes {
    next: u64,
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Shared {
    /// Counts a new handshake in, closing the oldest when [`MAX_HANDSHAKES`] are in flight; the
    /// receiver resolves when this one is closed so.
    fn admit(&self) -> (u64, oneshot::Receiver<()>) {
        let mut handshakes = self.handshakes.lock().expect("never poisoned");
        if handshakes.waiting.len() >= MAX_HANDSHAKES {
            // Dropping its sender wakes the oldest handshake's task, which closes it.
            handshakes.waiting.pop_front();
        }
        let (evict, evicted) = oneshot::channel();
        let id = handshakes.next;
        handshakes.next += 1;
        handshakes.waiting.push_back((id, evict));
        (id, evicted)
    }

    fn finished(&self, id: u64) {
        let mut handshakes = self.handshakes.lock().expect("never poisoned");
        handshakes.waiting.retain(|(waiting, _)| *waiting != id);
    }

    /// Runs `handshake` (the transport's own handshake, then the first line) under the deadline
    /// and the cap; `None` when it failed, ran out of time or was closed for a newer one.
    async fn handshake<T>(
        &self,
        peer: &str,
        handshake: impl Future<Output = Result<T, String>>,
    ) -> Option<T> {
        let (id, evicted) = self.admit();
        let outcome = tokio::select! {
            _ = evicted => Err("closed for a newer connection".to_owned()),
            done = tokio::time::timeout(self.options.deadline, handshake) => {
                done.unwrap_or_else(|_| Err("no first line in time".to_owned()))
            }
        };
        self.finished(id);
        outcome
            .inspect_err(|reason| tracing::debug!("{peer}: dropped before the token ({reason})"))
            .ok()
    }

    /// Answers a client's first `line` on `stream`, and when it is let in, forwards it to Burn
    /// until either side closes.
    async fn serve<S>(&self, peer: &str, mut stream: S, line: Option<String>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ours = env!("CARGO_PKG_VERSION");
        let Some((version, token)) = line.as_deref().and_then(parse_hello) else {
            tracing::debug!("{peer}: refused (not a Spreadout client)");
            let _ = write_line(&mut stream, &Verdict::Refused.line()).await;
            return;
        };
        if !same_token(token, &self.options.token) {
            tracing::warn!("{peer}: refused (wrong token)");
            let _ = write_line(&mut stream, &Verdict::Refused.line()).await;
            return;
        }
        if version != ours {
            tracing::warn!("{peer}: refused (runs Spreadout {version}, this server {ours})");
            let _ = write_line(&mut stream, &Verdict::Version(ours.to_owned()).line()).await;
            return;
        }
        let Ok(permit) = self.clients.clone().try_acquire_owned() else {
            tracing::warn!(
                "{peer}: refused (already serving {} client(s); --clients allows more)",
                self.options.clients
            );
            let _ = write_line(&mut stream, &Verdict::Busy(self.options.clients).line()).await;
            return;
        };
        self.forward(peer, stream, permit).await;
    }

    async fn forward<S>(&self, peer: &str, mut stream: S, permit: OwnedSemaphorePermit)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut burn = match tokio::net::TcpStream::connect(self.burn).await {
            Ok(burn) => burn,
            Err(error) => {
                tracing::error!("{peer}: cannot reach this server's own Burn port: {error}");
                return;
            }
        };
        let _ = burn.set_nodelay(true);
        if write_line(
            &mut stream,
            &Verdict::Ok(env!("CARGO_PKG_VERSION").to_owned()).line(),
        )
        .await
        .is_err()
        {
            return;
        }
        tracing::info!("{peer}: client connected");
        let started = Instant::now();
        // Either side ending ends the client: Burn's protocol never half-closes, and waiting
        // for Burn to close its side after a client vanished would hold the client's place.
        let (mut from_client, mut to_client) = tokio::io::split(stream);
        let (mut from_burn, mut to_burn) = burn.split();
        let ended = tokio::select! {
            moved = tokio::io::copy(&mut from_client, &mut to_burn) => moved.map(|_| "the client closed"),
            moved = tokio::io::copy(&mut from_burn, &mut to_client) => moved.map(|_| "Burn closed the session"),
        };
        tracing::info!(
            "{peer}: client left after {:.0} s ({})",
            started.elapsed().as_secs_f64(),
            ended.unwrap_or("the connection ended")
        );
        drop(permit);
    }
}

async fn accept_tcp(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("a non-blocking bound listener");
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, most likely: wait for some to close rather than spin.
                tracing::warn!("cannot accept a connection: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        keep_alive(&socket);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let peer = peer.to_string();
            match acceptor {
                None => {
                    let mut socket = socket;
                    let Some(line) = shared
                        .handshake(&peer, async {
                            read_line(&mut socket).await.map_err(|e| e.to_string())
                        })
                        .await
                    else {
                        return;
                    };
                    shared.serve(&peer, socket, line).await;
                }
                Some(acceptor) => {
                    let Some((stream, line)) = shared
                        .handshake(&peer, async {
                            let mut stream =
                                acceptor.accept(socket).await.map_err(|e| e.to_string())?;
                            let line = read_line(&mut stream).await.map_err(|e| e.to_string())?;
                            Ok((stream, line))
                        })
                        .await
                    else {
                        return;
                    };
                    shared.serve(&peer, stream, line).await;
                }
            }
        });
    }
}

async fn accept_iroh(endpoint: ::iroh::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let peer = format!("{:?}", incoming.remote_addr());
            let Some((connection, stream, line)) = shared
                .handshake(&peer, async {
                    let connection = incoming
                        .accept()
                        .map_err(|e| e.to_string())?
                        .await
                        .map_err(|e| e.to_string())?;
                    let (send, mut recv) =
                        connection.accept_bi().await.map_err(|e| e.to_string())?;
                    let line = read_line(&mut recv).await.map_err(|e| e.to_string())?;
                    Ok((connection, tokio::io::join(recv, send), line))
                })
                .await
            else {
                return;
            };
            let peer = format!("{} ({peer})", connection.remote_id().fmt_short());
            shared.serve(&peer, stream, line).await;
            // Closing at once could drop the answer still in flight; the client closes once it
            // has read it (or, let in, once it is done).
            let _ = tokio::time::timeout(HANDSHAKE_DEADLINE, connection.closed()).await;
            connection.close(::iroh::endpoint::VarInt::from_u32(0), b"done");
        });
    }
}
