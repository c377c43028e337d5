//! What the test binaries that host a server in their own process share (`tests/remote.rs`,
//! `tests/served_views.rs`): a server of a device of this process, a token file, and the choice
//! that trains on the server.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use spreadout::device::DeviceChoice;
use spreadout::remote::{self, RemoteTarget};
use spreadout::serve::{Server, Via};

/// A server of `device` on a free port, reached `via`, serving until the process ends; its
/// address as a client on this machine dials it.
pub fn serve_here(token: &str, via: &Via, device: DeviceChoice) -> String {
    let listen = match via {
        Via::WebSocket => "127.0.0.1:0".parse().unwrap(),
        // Iroh binds every interface, on a port it must be told: one the system has just freed.
        Via::Iroh { .. } => {
            let port = UdpSocket::bind("0.0.0.0:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            SocketAddr::from(([0, 0, 0, 0], port))
        }
    };
    let server = Server::bind(listen, via, token.to_owned(), device).unwrap();
    let address = server.client_address("127.0.0.1");
    std::thread::spawn(move || server.serve().unwrap());
    address
}

/// `token` written to `dir/name` as `spreadout serve` writes a token file.
pub fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let path = dir.join(name);
    remote::write_token(&path, token, false).unwrap();
    path
}

/// The device served at `address`, with the token in `token_file`.
pub fn served(address: &str, token_file: &Path) -> DeviceChoice {
    DeviceChoice::Remote(RemoteTarget {
        address: address.to_owned(),
        token_file: Some(token_file.to_owned()),
    })
}
