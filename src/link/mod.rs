//! The wire between a client and `spreadout serve`, beneath Burn: how the bytes travel (plain TCP
//! on loopback or through an SSH tunnel, TLS with the server's key pinned, or Iroh's QUIC with
//! the server's id), and the few lines each side says before any of Burn's bytes cross. The
//! server's [`front`] owns its port: a cap on handshakes in flight, a deadline for each, a first
//! line of at most [`MAX_LINE`] bytes and the token compared in constant time, then a cap on
//! clients; only then does it open a connection to Burn's server on its own loopback. A client's
//! [`dial`] says the same lines and hands the opened link to Burn through a one-use relay on its
//! loopback that counts the bytes each way.
//!
//! Burn's own transports read a first frame of up to 1 GiB before they check a token, have no
//! cap on connections and no handshake deadline, and Burn's Iroh transport binds every interface
//! with Iroh's port mapper on; putting Spreadout's front before Burn closes all of that in one
//! place, for every transport alike.
//!
//! The lines, ASCII, each ending in `\n` and at most [`MAX_LINE`] bytes:
//! - client: `spreadout-link 1 VERSION TOKEN`, the client's Spreadout release and the token;
//! - server: `ok VERSION` (Burn's bytes follow), `refused` (a wrong or malformed first line: a
//!   stranger learns nothing, not even the release), `version VERSION` (the right token, another
//!   release), `busy N` (the right token, `N` clients already served).

mod dial;
mod front;
mod iroh;
mod tls;

use std::future::Future;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::error_kind::ErrorKind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use dial::{Dial, Open, Traffic, relay};
pub use front::{Front, FrontOptions, Listening};
pub use tls::{Pin, ServerKey};

/// The protocol's name and revision, the first two words a client says.
const HELLO: &str = "spreadout-link 1";
/// The longest line either side says, in bytes with its `\n`: what a stranger can make the server
/// read before it is refused.
pub const MAX_LINE: usize = 512;
/// How long a connection may take from its first packet to its first line (the TLS or QUIC
/// handshake included) before it is dropped.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Handshakes the server lets run at once; a new connection beyond them closes the oldest, so a
/// flood of strangers cannot keep a client with the token out.
pub const MAX_HANDSHAKES: usize = 8;

/// Why a link could not be opened, or what the server answered instead of `ok`.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The server cannot be reached, or the connection broke during the handshake.
    #[error("{0}")]
    Unreachable(String),
    /// The server refused the token (or did not understand the first line).
    #[error("the server refused the token")]
    Refused,
    /// The server runs another release.
    #[error("the server runs Spreadout {0}")]
    Version(String),
    /// The server already serves as many clients as it allows.
    #[error(
        "the server already serves {0} client(s), as many as it allows (spreadout serve --clients)"
    )]
    Busy(usize),
    /// The server over TLS holds another key than the one pinned.
    #[error("the server presented key {presented}, not the pinned {pinned}")]
    Impostor {
        /// The key the token file pins.
        pinned: Pin,
        /// The key the server presented.
        presented: Pin,
    },
    /// The server answered something this release does not understand.
    #[error("the server's answer is not Spreadout's: {0:?}")]
    Garbled(String),
}

impl LinkError {
    /// The kind of this error, which each shell keys its remedy on.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Device
    }
}

/// What the server answers a client's first line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Ok(String),
    Refused,
    Version(String),
    Busy(usize),
}

impl Verdict {
    fn line(&self) -> String {
        match self {
            Self::Ok(version) => format!("ok {version}\n"),
            Self::Refused => "refused\n".to_owned(),
            Self::Version(version) => format!("version {version}\n"),
            Self::Busy(clients) => format!("busy {clients}\n"),
        }
    }

    fn parse(line: &str) -> Option<Self> {
        let mut words = line.split(' ');
        let verdict = match (words.next()?, words.next()) {
            ("ok", Some(version)) => Self::Ok(version.to_owned()),
            ("refused", None) => Self::Refused,
            ("version", Some(version)) => Self::Version(version.to_owned()),
            ("busy", Some(clients)) => Self::Busy(clients.parse().ok()?),
            _ => return None,
        };
        words.next().is_none().then_some(verdict)
    }
}

/// A client's first line.
fn hello_line(version: &str, token: &str) -> String {
    format!("{HELLO} {version} {token}\n")
}

/// The release and token of a client's first line; `None` when it is not one.
fn parse_hello(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(HELLO)?.strip_prefix(' ')?;
    let (version, token) = rest.split_once(' ')?;
    (!version.is_empty() && !token.is_empty() && !token.contains(' ')).then_some((version, token))
}

/// Whether `given` is `expected`, in time that does not depend on where they differ: both are
/// hashed and the digests compared whole, so neither the token nor its length leaks.
fn same_token(given: &str, expected: &str) -> bool {
    use ring::digest::{SHA256, digest};
    let (given, expected) = (
        digest(&SHA256, given.as_bytes()),
        digest(&SHA256, expected.as_bytes()),
    );
    given
        .as_ref()
        .iter()
        .zip(expected.as_ref())
        .fold(0u8, |differ, (a, b)| differ | (a ^ b))
        == 0
}

/// Reads one line of at most [`MAX_LINE`] bytes, without reading past its `\n` (Burn's bytes may
/// follow it on the same stream). `None` when the stream ends first, the line is longer, or it is
/// not text.
async fn read_line(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<String>> {
    let mut line = Vec::with_capacity(64);
    while line.len() < MAX_LINE {
        let byte = match stream.read_u8().await {
            Ok(byte) => byte,
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(error) => return Err(error),
        };
        if byte == b'\n' {
            return Ok(String::from_utf8(line)
                .ok()
                .filter(|line| line.chars().all(|c| c == ' ' || c.is_ascii_graphic())));
        }
        line.push(byte);
    }
    Ok(None)
}

async fn write_line(stream: &mut (impl AsyncWrite + Unpin), line: &str) -> io::Result<()> {
    stream.write_all(line.as_bytes()).await?;
    stream.flush().await
}

/// Probes a connection that has been idle for 10 s every 5 s and drops it after 4 unanswered
/// probes: a peer that vanished without closing (a crash, a dropped network, a sleeping laptop)
/// would otherwise hold a server's place for a client, or a client's run, forever, since TCP
/// alone never notices while nothing is sent. The link works without it, so a failure is logged.
fn keep_alive(socket: &tokio::net::TcpStream) {
    let probes = socket2::TcpKeepalive::new().with_time(Duration::from_secs(10));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let probes = probes.with_interval(Duration::from_secs(5)).with_retries(4);
    if let Err(error) = socket2::SockRef::from(socket).set_tcp_keepalive(&probes) {
        tracing::warn!(
            "cannot set TCP keep-alive, so a vanished peer will not be noticed: {error}"
        );
    }
}

/// The runtime the front and every client link run on: two workers, started on first use.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("spreadout-link")
            .enable_all()
            .build()
            .expect("the link runtime starts")
    })
}

/// Runs `future` on the link runtime and waits for it, from any thread (a Tauri command's, one of
/// Burn's runtime's, or the main thread).
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match pollster::block_on(runtime().spawn(future)) {
        Ok(output) => output,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn lines_read_back_and_nothing_else_passes() {
        let line = hello_line("0.1.0", "abc123");
        assert_eq!(parse_hello(line.trim_end()), Some(("0.1.0", "abc123")));
        for bad in [
            "spreadout-link 2 0.1.0 abc",
            "spreadout-link 1 0.1.0",
            "spreadout-link 1  abc",
            "spreadout-link 1 0.1.0 a b",
            "GET / HTTP/1.1",
        ] {
            assert_eq!(parse_hello(bad), None, "{bad}");
        }
        for verdict in [
            Verdict::Ok("0.1.0".into()),
            Verdict::Refused,
            Verdict::Version("0.2.0".into()),
            Verdict::Busy(3),
        ] {
            assert_eq!(Verdict::parse(verdict.line().trim_end()), Some(verdict));
        }
        assert_eq!(Verdict::parse("ok"), None);
        assert_eq!(Verdict::parse("busy many"), None);
        assert_eq!(Verdict::parse("refused now"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("a1b2", "a1b2"));
        assert!(!same_token("a1b3", "a1b2"));
        assert!(!same_token("a1b", "a1b2"));
        assert!(!same_token("", "a1b2"));
    }

    #[test]
    fn a_line_is_read_up_to_its_end_and_no_further_and_never_past_the_limit() {
        block_on(async {
            let mut input: &[u8] = b"ok 0.1.0\nBURN";
            assert_eq!(
                read_line(&mut input).await.unwrap().as_deref(),
                Some("ok 0.1.0")
            );
            assert_eq!(input, b"BURN");
            let long = vec![b'a'; MAX_LINE * 4];
            let mut input: &[u8] = &long;
            assert_eq!(read_line(&mut input).await.unwrap(), None);
            assert_eq!(input.len(), MAX_LINE * 3, "read no more than the limit");
            let mut input: &[u8] = b"ok \x1b[2J\n";
            assert_eq!(read_line(&mut input).await.unwrap(), None);
            let mut input: &[u8] = b"unfinished";
            assert_eq!(read_line(&mut input).await.unwrap(), None);
        });
    }

    /// A front on a free loopback port (TLS with a fresh key when `tls`) before an echo server
    /// standing in for Burn's, with `clients` places and `deadline`; its address, and the key.
    fn front(
        tls: bool,
        clients: usize,
        deadline: Duration,
    ) -> (SocketAddr, Option<ServerKey>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let key = tls.then(|| ServerKey::load_or_create(&dir.path().join("tls.key")).unwrap());
        let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let burn = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in echo.incoming() {
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let mut writer = stream;
                    let _ = std::io::copy(&mut reader, &mut writer);
                });
            }
        });
        let listening = Listening::tcp("127.0.0.1:0".parse().unwrap(), key.as_ref()).unwrap();
        let address = listening.address();
        let options = FrontOptions {
            token: TOKEN.to_owned(),
            clients,
            deadline,
        };
        Front::spawn(listening, options, burn);
        (address, key, dir)
    }

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    /// Says `bytes` through the relay `open` gives Burn, and what comes back.
    fn echo_through(open: &Open, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(open.address())?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(bytes)?;
        let mut back = vec![0; bytes.len()];
        stream.read_exact(&mut back)?;
        Ok(back)
    }

    #[test]
    fn a_client_with_the_token_gets_through_plain_and_tls_and_counts_its_bytes() {
        for tls in [false, true] {
            let (address, key, _dir) = front(tls, 1, HANDSHAKE_DEADLINE);
            let dial = match &key {
                Some(key) => Dial::Tls {
                    address,
                    pin: key.pin(),
                },
                None => Dial::Tcp(address),
            };
            let traffic = Arc::new(Traffic::default());
            let open = relay(dial, TOKEN, traffic.clone()).unwrap();
            assert_eq!(
                echo_through(&open, b"tensor bytes").unwrap(),
                b"tensor bytes"
            );
            assert!(traffic.sent() >= 12 + hello_line("0.1.0", TOKEN).len() as u64);
            assert!(traffic.received() >= 12);
            // The relay took Burn's connection; another one finds nothing there.
            assert!(echo_through(&open, b"again").is_err(), "tls: {tls}");
        }
    }

    #[test]
    fn wrong_tokens_wrong_keys_and_a_full_house_are_named() {
        let (address, key, _dir) = front(true, 1, HANDSHAKE_DEADLINE);
        let pin = key.unwrap().pin();
        let other = ServerKey::load_or_create(&tempfile::tempdir().unwrap().path().join("k"))
            .unwrap()
            .pin();
        let dial = |pin| Dial::Tls { address, pin };
        let traffic = || Arc::new(Traffic::default());
        assert!(matches!(
            relay(dial(pin), "fedcba9876543210fedcba9876543210", traffic()),
            Err(LinkError::Refused)
        ));
        let error = relay(dial(other), TOKEN, traffic()).unwrap_err();
        assert!(
            matches!(error, LinkError::Impostor { pinned, presented } if pinned == other && presented == pin),
            "{error:?}"
        );
        // A plain client at a TLS server, and a TLS client at a plain one, are told apart.
        assert!(matches!(
            relay(Dial::Tcp(address), TOKEN, traffic()),
            Err(LinkError::Unreachable(_))
        ));
        let first = relay(dial(pin), TOKEN, traffic()).unwrap();
        assert!(matches!(
            relay(dial(pin), TOKEN, traffic()),
            Err(LinkError::Busy(1))
        ));
        // Letting go of the link frees the place at once.
        drop(first);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match relay(dial(pin), TOKEN, traffic()) {
                Ok(_) => break,
                Err(LinkError::Busy(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => panic!("{error:?}"),
            }
        }
    }

    #[test]
    fn strangers_are_dropped_at_the_deadline_and_the_oldest_make_way_for_the_newest() {
        use std::io::{Read, Write};
        let (address, _, _dir) = front(false, 1, Duration::from_millis(300));
        // Silent: dropped at the deadline, told nothing.
        let mut silent = std::net::TcpStream::connect(address).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        silent.read_to_end(&mut answer).unwrap();
        assert!(answer.is_empty() && started.elapsed() >= Duration::from_millis(250));
        // More half-said handshakes than the cap: the oldest are closed, the newest kept.
        let strangers: Vec<_> = (0..MAX_HANDSHAKES * 2)
            .map(|_| {
                let mut stream = std::net::TcpStream::connect(address).unwrap();
                stream.write_all(b"spreadout-link 1").unwrap();
                stream
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let closed = strangers
            .iter()
            .filter(|stream| {
                let mut stream: &std::net::TcpStream = stream;
                stream
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                match stream.read(&mut [0; 16]) {
                    Ok(read) => read == 0,
                    Err(e) => !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                }
            })
            .count();
        assert!(closed >= MAX_HANDSHAKES, "{closed} closed");
        // A client with the token still gets through while they hang on.
        let open = relay(Dial::Tcp(address), TOKEN, Arc::new(Traffic::default())).unwrap();
        assert_eq!(echo_through(&open, b"x").unwrap(), b"x");
        // A line past the limit is refused without reading further.
        let mut long = std::net::TcpStream::connect(address).unwrap();
        long.write_all(&[b'a'; MAX_LINE + 1]).unwrap();
        long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        let _ = long.read_to_string(&mut answer);
        assert_eq!(answer, "refused\n");
    }
}
