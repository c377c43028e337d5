//! A client's side of the link: dials the server (TCP, TLS with its key pinned, or Iroh), says
//! the first line, reads the server's answer, and on `ok` hands the opened link to Burn through a
//! relay on this machine's loopback that accepts one connection, Burn's, and counts the bytes each
//! way ([`Traffic`]): the bytes per step that `bench` and the Train screen report are what crossed
//! the network (below TLS, so its overhead is in them). The relay closes with its connection, and
//! the connection closes when the client lets go of it ([`Open`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin as Pinned;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::{
    HANDSHAKE_DEADLINE, LinkError, Pin, Verdict, block_on, hello_line, iroh, keep_alive, read_line,
    runtime, tls, write_line,
};

/// How long the relay waits for Burn's connection before it closes the link.
const RELAY_WAIT: Duration = Duration::from_secs(30);

/// Bytes that crossed to and from a server, counted on their way.
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

/// Where a server is and how it is reached.
#[derive(Debug, Clone)]
pub enum Dial {
    /// Plain TCP: loopback, an SSH tunnel, or a server run with `--plaintext`.
    Tcp(SocketAddr),
    /// TLS, accepting only the server whose key `pin` names.
    Tls {
        /// The server.
        address: SocketAddr,
        /// Its key, from the token file.
        pin: Pin,
    },
    /// Iroh's QUIC, accepting only the server holding `id`'s key, at any of `addresses`.
    Iroh {
        /// The server's id.
        id: ::iroh::EndpointId,
        /// Where it may listen.
        addresses: Vec<SocketAddr>,
    },
}

/// An open link, as Burn sees it: the loopback address of its relay. Dropping it closes the
/// connection to the server (and the relay), so that the server's place for a client is freed as
/// soon as this process no longer uses the device, not when it exits.
#[derive(Debug)]
pub struct Open {
    local: SocketAddr,
    _close: oneshot::Sender<()>,
}

impl Open {
    /// Where Burn connects: a loopback port that accepts one connection.
    pub fn address(&self) -> SocketAddr {
        self.local
    }
}

/// Opens a link to the server `dial` names with `token`, checks that it runs this release, and
/// returns its relay (once: the relay closes when its connection ends, when the [`Open`] is
/// dropped, or if no connection comes within 30 s).
///
/// # Errors
/// The server cannot be reached, is not the one pinned, refuses the token, runs another release
/// or is busy.
pub fn relay(dial: Dial, token: &str, traffic: Arc<Traffic>) -> Result<Open, LinkError> {
    let line = hello_line(env!("CARGO_PKG_VERSION"), token);
    block_on(async move {
        let opened = tokio::time::timeout(HANDSHAKE_DEADLINE, open(dial, line, traffic)).await;
        let mut upstream = opened.unwrap_or_else(|_| {
            Err(LinkError::Unreachable(
                "the server did not answer within 10 s".to_owned(),
            ))
        })?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| LinkError::Unreachable(format!("cannot open a loopback port: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| LinkError::Unreachable(e.to_string()))?;
        let (close, closed) = oneshot::channel::<()>();
        runtime().spawn(async move {
            let forward = async {
                let Ok(Ok((mut burn, _))) =
                    tokio::time::timeout(RELAY_WAIT, listener.accept()).await
                else {
                    return;
                };
                drop(listener);
                let _ = burn.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut burn, &mut upstream.stream).await;
            };
            tokio::select! {
                () = forward => {}
                _ = closed => {}
            }
            drop(upstream);
        });
        Ok(Open {
            local,
            _close: close,
        })
    })
}

/// A byte stream to the server.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// An opened link: its stream, and over Iroh the endpoint and connection it lives on.
struct Upstream {
    stream: Box<dyn Stream>,
    /// Held, not read: the stream lives on them.
    _keep: Option<(::iroh::Endpoint, ::iroh::endpoint::Connection)>,
}

async fn open(dial: Dial, line: String, traffic: Arc<Traffic>) -> Result<Upstream, LinkError> {
    let unreachable = |e: &dyn std::fmt::Display| LinkError::Unreachable(e.to_string());
    let mut upstream = match dial {
        Dial::Tcp(address) => {
            let socket = connect(address).await?;
            Upstream {
                stream: Box::new(Counted::new(socket, traffic)),
                _keep: None,
            }
        }
        Dial::Tls { address, pin } => {
            let socket = Counted::new(connect(address).await?, traffic);
            let (config, verifier) = tls::client_config(pin);
            let name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, socket)
                .await
                .map_err(|error| match verifier.mismatch() {
                    Some((pinned, presented)) => LinkError::Impostor { pinned, presented },
                    None => LinkError::Unreachable(format!(
                        "the TLS handshake failed ({error}): does the server serve TLS (an address of wss://)?"
                    )),
                })?;
            Upstream {
                stream: Box::new(stream),
                _keep: None,
            }
        }
        Dial::Iroh { id, addresses } => {
            let endpoint = iroh::endpoint(
                ::iroh::SecretKey::generate(),
                SocketAddr::from(([0, 0, 0, 0], 0)),
                Some(SocketAddr::from(([0u16; 8], 0))),
                false,
            )
            .await
            .map_err(|e| unreachable(&e))?;
            let address = addresses.into_iter().fold(
                ::iroh::EndpointAddr::new(id),
                ::iroh::EndpointAddr::with_ip_addr,
            );
            let connection = endpoint
                .connect(address, iroh::ALPN)
                .await
                .map_err(|e| unreachable(&e))?;
            let (send, recv) = connection.open_bi().await.map_err(|e| unreachable(&e))?;
            Upstream {
                stream: Box::new(Counted::new(tokio::io::join(recv, send), traffic)),
                _keep: Some((endpoint, connection)),
            }
        }
    };
    write_line(&mut upstream.stream, &line)
        .await
        .map_err(|e| unreachable(&e))?;
    let answer = read_line(&mut upstream.stream)
        .await
        .map_err(|e| unreachable(&e))?
        .ok_or_else(|| {
            LinkError::Unreachable(
                "the server closed the connection without answering: is it `spreadout serve`, and does the address's kind match it (ws:// plain, wss:// TLS, iroh://)?"
                    .to_owned(),
            )
        })?;
    match Verdict::parse(&answer) {
        Some(Verdict::Ok(_)) => Ok(upstream),
        Some(Verdict::Refused) => Err(LinkError::Refused),
        Some(Verdict::Version(version)) => Err(LinkError::Version(version)),
        Some(Verdict::Busy(clients)) => Err(LinkError::Busy(clients)),
        None => Err(LinkError::Garbled(answer)),
    }
}

async fn connect(address: SocketAddr) -> Result<tokio::net::TcpStream, LinkError> {
    let socket = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| LinkError::Unreachable(e.to_string()))?;
    // Steps are small messages answered in turn; Nagle's delay would stall each one.
    let _ = socket.set_nodelay(true);
    keep_alive(&socket);
    Ok(socket)
}

/// A stream whose bytes are counted into a [`Traffic`]: reads as received, writes as sent.
struct Counted<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S> Counted<S> {
    fn new(inner: S, traffic: Arc<Traffic>) -> Self {
        Self { inner, traffic }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pinned<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pinned::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.traffic.received.fetch_add(read, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pinned<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pinned::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            self.traffic
                .sent
                .fetch_add(written as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pinned<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pinned::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pinned<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pinned::new(&mut self.inner).poll_shutdown(cx)
    }
}
