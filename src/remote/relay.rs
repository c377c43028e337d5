//! The relay a WebSocket session runs through: a loopback port on this machine that forwards
//! every byte to the server and counts it each way ([`Traffic`]), so the bytes per step that
//! `bench` and the Train screen report are what crossed the network.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

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

/// Listens on a free loopback port and forwards each connection to `upstream` (the first through
/// `first`, already connected), counting the bytes each way into `traffic`. Returns the port's
/// address; the relay lives as long as the process.
pub(super) fn start_relay(
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
